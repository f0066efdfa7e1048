//! A damaged database is never an empty start in silence: with the sled file of a killed
//! agent zeroed at the start, flipped in 50 places, truncated to nothing or to half, or the
//! database deleted, the restarted agent says so at ERROR with the path, moves the damaged
//! database aside (`db.corrupt-<time>`), rejoins the Raft group as a new node id, refills its
//! alert table from its peers, and no notification already sent is sent again (counted at a
//! real SMTP server).

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::leaders::{leader, logs, names};
use common::smtp::SmtpSink;
use common::{wait_for, Cluster};

/// The alerts raised, on the victim and on one peer.
const ALERTS: usize = 4;

/// How the database is damaged while the agent is down.
#[derive(Debug, Clone, Copy)]
enum Harm {
    ZeroFirst512,
    Flip50,
    TruncateToZero,
    TruncateToHalf,
    Delete,
}

fn sled_file(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("db").join("db")
}

fn harm(data_dir: &Path, how: Harm) {
    let file = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(sled_file(data_dir))
            .unwrap()
    };
    match how {
        Harm::ZeroFirst512 => file().write_all_at(&[0u8; 512], 0).unwrap(),
        Harm::Flip50 => {
            let file = file();
            let len = file.metadata().unwrap().len();
            let mut seed = 0x2545_f491_4f6c_dd1d_u64;
            for _ in 0..50 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let offset = seed % len;
                let mut byte = [0u8];
                file.read_exact_at(&mut byte, offset).unwrap();
                file.write_all_at(&[!byte[0]], offset).unwrap();
            }
        }
        Harm::TruncateToZero => file().set_len(0).unwrap(),
        Harm::TruncateToHalf => {
            let file = file();
            let len = file.metadata().unwrap().len();
            file.set_len(len / 2).unwrap();
        }
        Harm::Delete => std::fs::remove_dir_all(data_dir.join("db")).unwrap(),
    }
}

/// The counts of the watermark beside the agent's database.
fn watermark_alerts(data_dir: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(data_dir.join("db.watermark")).ok()?;
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("alerts="))?
        .parse()
        .ok()
}

fn alert_names(cluster: &Cluster, i: usize) -> Vec<String> {
    cluster.agents[i]
        .alerts()
        .iter()
        .filter_map(|a| a["name"].as_str().map(str::to_owned))
        .collect()
}

fn node_id(cluster: &Cluster, i: usize) -> Option<String> {
    leader(&cluster.agents[i])?["node_id"]
        .as_str()
        .map(str::to_owned)
}

/// Every panic in the agents' logs, with the lines after it.
fn panics(cluster: &Cluster) -> String {
    let mut out = String::new();
    for agent in &cluster.agents {
        let log = agent.log();
        let lines: Vec<&str> = log.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.contains("panicked at") {
                out.push_str(&format!("--- {} ---\n", agent.name));
                out.push_str(&lines[i..(i + 6).min(lines.len())].join("\n"));
                out.push('\n');
            }
        }
    }
    out
}

/// Messages that name one of our alerts.
fn alert_messages(smtp: &SmtpSink) -> usize {
    smtp.messages()
        .iter()
        .filter(|m| m.body.contains("stored-") || m.subject.contains("stored-"))
        .count()
}

fn a_damaged_database_is_reported_moved_aside_and_refilled(how: Harm) {
    let smtp = SmtpSink::start();
    let mut cluster = Cluster::new();
    let config = format!(
        "[notify]\ngroup_wait = \"1s\"\n\n[[notify.email]]\nsmtp_host = \"127.0.0.1\"\n\
         smtp_port = {}\ntls = \"none\"\nfrom = \"rover@example.org\"\nto = [\"ops@example.org\"]\n",
        smtp.port()
    );
    cluster.config_for = Some(Box::new(move |_| config.clone()));
    for _ in 0..3 {
        cluster.add_agent();
    }
    cluster.wait_converged(Duration::from_secs(30));
    let mut leader_name = None;
    wait_for(Duration::from_secs(30), || {
        leader_name = common::leaders::agreed_raft_leader(&cluster, &[0, 1, 2], 3);
        leader_name.is_some()
    })
    .unwrap_or_else(|| panic!("no leader:\n{}", logs(&cluster)));
    let leader_name = leader_name.unwrap();
    let victim = (0..3)
        .find(|i| cluster.agents[*i].name != leader_name)
        .unwrap();
    let peer = (0..3).find(|i| *i != victim).unwrap();

    for (i, agent) in [victim, peer].into_iter().enumerate() {
        for n in 0..ALERTS / 2 {
            let name = format!("stored-{i}-{n}");
            let out = cluster.agents[agent].cli(&[
                "alert",
                "raise",
                &name,
                "--severity",
                "warning",
                "--summary",
                "kept by peers",
            ]);
            assert!(out.status.success(), "{out:?}");
        }
    }
    // Every alert notified once, and every agent (the victim's watermark too) holds them all.
    wait_for(Duration::from_secs(60), || {
        (0..3).all(|i| alert_names(&cluster, i).len() == ALERTS)
            && watermark_alerts(&cluster.agents[victim].data_dir) == Some(ALERTS)
    })
    .unwrap_or_else(|| panic!("alerts did not spread:\n{}", logs(&cluster)));
    let sent = smtp.wait_for_count(1, Duration::from_secs(60));
    assert!(!sent.is_empty(), "no notification:\n{}", logs(&cluster));
    // Nothing more is on its way: the count holds for a few seconds.
    let mut before = alert_messages(&smtp);
    while wait_for(Duration::from_secs(4), || alert_messages(&smtp) != before).is_some() {
        before = alert_messages(&smtp);
    }
    let old_id = node_id(&cluster, victim).unwrap();

    let data_dir = cluster.agents[victim].data_dir.clone();
    cluster.agents[victim].kill();
    harm(&data_dir, how);
    let restarted = Instant::now();
    cluster.agents[victim].restart();

    let agent = &cluster.agents[victim];
    let log = agent.log();
    let db = data_dir.join("db");
    let reported = log.lines().any(|l| {
        l.contains("ERROR") && l.contains(&db.display().to_string()) && l.contains("Lost")
            || l.contains("ERROR") && l.contains("missing")
    });
    assert!(reported, "{how:?}: no ERROR naming the database:\n{log}");
    let moved: Vec<_> = std::fs::read_dir(&data_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("db.corrupt-"))
        .collect();
    match how {
        Harm::Delete => assert!(moved.is_empty()),
        _ => assert_eq!(moved.len(), 1, "{how:?}: nothing moved aside:\n{log}"),
    }

    // Refilled from its peers, as a new Raft node in the group.
    let refilled = wait_for(Duration::from_secs(60), || {
        alert_names(&cluster, victim).len() == ALERTS
    })
    .unwrap_or_else(|| panic!("{how:?}: alerts not refilled:\n{}", logs(&cluster)));
    let new_id = node_id(&cluster, victim).unwrap();
    assert_ne!(new_id, old_id, "{how:?}: the Raft node id was reused");
    let victim_name = agent.name.clone();
    wait_for(Duration::from_secs(60), || {
        leader(&cluster.agents[peer]).is_some_and(|s| names(&s, "voters").contains(&victim_name))
            && leader(&cluster.agents[victim]).is_some_and(|s| s["mode"] == "raft")
    })
    .unwrap_or_else(|| {
        panic!(
            "{how:?}: not a voter again:\n{}\n{}",
            logs(&cluster),
            panics(&cluster)
        )
    });
    eprintln!(
        "{how:?}: refilled {ALERTS} alerts {:?} after the restart, back in the group {:?} after it",
        refilled,
        restarted.elapsed()
    );

    // Nothing already sent is sent again.
    let resent = wait_for(Duration::from_secs(10), || alert_messages(&smtp) > before);
    assert!(
        resent.is_none(),
        "{how:?}: a notification was sent again: {:?}",
        smtp.messages()
            .iter()
            .map(|m| m.subject.clone())
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_database_whose_first_512_bytes_are_zeroed_is_reported_moved_aside_and_refilled() {
    a_damaged_database_is_reported_moved_aside_and_refilled(Harm::ZeroFirst512);
}

#[test]
fn a_database_with_50_flipped_bytes_is_reported_moved_aside_and_refilled() {
    a_damaged_database_is_reported_moved_aside_and_refilled(Harm::Flip50);
}

#[test]
fn a_database_truncated_to_nothing_is_reported_moved_aside_and_refilled() {
    a_damaged_database_is_reported_moved_aside_and_refilled(Harm::TruncateToZero);
}

#[test]
fn a_database_truncated_to_half_is_reported_moved_aside_and_refilled() {
    a_damaged_database_is_reported_moved_aside_and_refilled(Harm::TruncateToHalf);
}

#[test]
fn a_deleted_database_is_reported_and_refilled() {
    a_damaged_database_is_reported_moved_aside_and_refilled(Harm::Delete);
}
