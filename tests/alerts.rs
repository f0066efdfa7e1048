//! Alerts, checks, status samples and history across real agents on 127.0.0.1: a check that
//! fails on one host shows on every host, a late joiner gets the whole table, a survivor keeps
//! the last sample time of a dead host, and a kill -9 loses nothing that was flushed.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{wait_for, Cluster};

const CHECK_TCP: &str = "/usr/lib/nagios/plugins/check_tcp";

fn fast_status() -> String {
    "[status]\ninterval = \"1s\"\nfull_every = \"1s\"\n[gossip]\nsync_interval = \"2s\"\n"
        .to_owned()
}

fn require_plugins() {
    assert!(
        std::path::Path::new(CHECK_TCP).exists(),
        "{CHECK_TCP} is missing: run scripts/test.sh, which installs monitoring-plugins-basic"
    );
}

#[test]
fn a_check_failing_on_one_agent_shows_on_all_five_and_its_recovery_too() {
    require_plugins();
    let service = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = service.local_addr().unwrap().port();
    let mut cluster = Cluster::new();
    cluster.config_for = Some(Box::new(move |index| {
        let mut config = fast_status();
        if index == 2 {
            config.push_str(&format!(
                "[[check]]\nname = \"service\"\ncommand = [\"{CHECK_TCP}\", \"-H\", \"127.0.0.1\", \"-p\", \"{port}\"]\ninterval = \"1s\"\nretries = 2\n"
            ));
        }
        config
    }));
    for _ in 0..5 {
        cluster.add_agent();
    }
    cluster.wait_converged(Duration::from_secs(30));
    let all = |state: &str| {
        (0..5).all(|i| cluster.agents[i].alert_state("n3", "service").as_deref() == Some(state))
    };

    drop(service);
    let fired_at = Instant::now();
    let fired = wait_for(Duration::from_secs(30), || all("firing"));
    assert!(
        fired.is_some(),
        "not firing everywhere: {:?}\n{}",
        cluster.agents[0].alerts(),
        cluster.agents[2].log()
    );
    eprintln!("check failure to firing on all 5: {:?}", fired_at.elapsed());
    let alert = cluster.agents[0]
        .alerts()
        .into_iter()
        .find(|a| a["name"] == "service")
        .unwrap();
    assert_eq!(alert["severity"], "critical");
    assert_eq!(alert["team"], "default");

    let _service = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let resolved = wait_for(Duration::from_secs(30), || all("resolved"));
    assert!(
        resolved.is_some(),
        "not resolved everywhere: {:?}",
        cluster.agents[0].alerts()
    );

    // Both transitions are in the history of every agent.
    let history = cluster.agents[4].get_json("/v1/history?host=n3").unwrap();
    let transitions: Vec<&str> = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event"]["alert"]["state"].as_str())
        .collect();
    assert_eq!(transitions, vec!["firing", "resolved"], "{history}");
}

#[test]
fn an_agent_joining_later_holds_the_current_alert_table() {
    let mut cluster = Cluster::new();
    cluster.config_for = Some(Box::new(|_| fast_status()));
    for _ in 0..5 {
        cluster.add_agent();
    }
    cluster.wait_converged(Duration::from_secs(30));
    for (agent, name) in [(1, "backup"), (3, "raid")] {
        let out = cluster.agents[agent].cli(&[
            "alert",
            "raise",
            name,
            "--severity",
            "critical",
            "--summary",
            "manual test",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = cluster.agents[3].cli(&["alert", "clear", "raid"]);
    assert!(out.status.success());
    let spread = wait_for(Duration::from_secs(20), || {
        (0..5).all(|i| cluster.agents[i].alerts().len() == 2)
    });
    assert!(spread.is_some());
    // Once every gossip retransmission is over, a sixth agent joins: only sync can teach it.
    let quiet = wait_for(Duration::from_secs(30), || {
        (0..5).all(|i| {
            cluster.agents[i]
                .info()
                .is_some_and(|info| info["counters"]["broadcast_backlog"] == 0)
        })
    });
    assert!(quiet.is_some(), "broadcasts never finished");
    cluster.add_agent();
    let late = wait_for(Duration::from_secs(20), || {
        cluster.agents[5].alert_state("n2", "backup").as_deref() == Some("firing")
            && cluster.agents[5].alert_state("n4", "raid").as_deref() == Some("resolved")
    });
    assert!(late.is_some(), "n6 holds {:?}", cluster.agents[5].alerts());
    eprintln!("late joiner had the whole table after {late:?}");
}

#[test]
fn history_on_a_survivor_shows_the_last_sample_time_of_a_killed_host() {
    let mut cluster = Cluster::new();
    cluster.config_for = Some(Box::new(|_| fast_status()));
    for _ in 0..3 {
        cluster.add_agent();
    }
    cluster.wait_converged(Duration::from_secs(30));
    let heard = wait_for(Duration::from_secs(20), || {
        cluster.agents[0]
            .get_json("/v1/history?host=n3")
            .is_some_and(|h| h["last_heard_ms"].is_u64())
    });
    assert!(heard.is_some(), "n1 never recorded a sample of n3");
    let before_kill = rover_membership::runtime::unix_ms();
    cluster.agents[2].kill();
    let quiet = wait_for(Duration::from_secs(30), || {
        cluster.agents[0]
            .get_json("/v1/history?host=n3")
            .is_some_and(|h| h["quiet"] == true)
    });
    assert!(quiet.is_some(), "n3 never turned quiet at n1");
    let history = cluster.agents[0].get_json("/v1/history?host=n3").unwrap();
    let last = history["last_heard_ms"].as_u64().unwrap();
    assert!(
        last <= before_kill && before_kill - last < 3_000,
        "last heard {last}, killed at {before_kill}"
    );
    let text =
        String::from_utf8(cluster.agents[0].cli(&["history", "--host", "n3"]).stdout).unwrap();
    assert!(text.starts_with("n3: last heard at 20"), "{text}");
    assert!(text.contains("sample") && text.contains("member"), "{text}");
}

#[test]
fn a_kill_9_while_samples_and_alerts_flow_loses_nothing_that_was_flushed() {
    let mut cluster = Cluster::new();
    cluster.config_for = Some(Box::new(|_| fast_status()));
    for _ in 0..3 {
        cluster.add_agent();
    }
    cluster.wait_converged(Duration::from_secs(30));
    for n in 0..5 {
        let name = format!("flow{n}");
        assert!(cluster.agents[0]
            .cli(&["alert", "raise", &name, "--summary", "flowing"])
            .status
            .success());
    }
    let victim = 1;
    let counts_at = |a: &common::Agent| a.get_json("/v1/storage");
    let has_alerts = wait_for(Duration::from_secs(30), || {
        counts_at(&cluster.agents[victim]).is_some_and(|c| {
            c["alerts"].as_u64() == Some(5) && c["history_entries"].as_u64().unwrap_or(0) >= 30
        })
    });
    assert!(has_alerts.is_some());
    let before = counts_at(&cluster.agents[victim]).unwrap();
    // Every record counted above existed before this instant, so any flush that starts after
    // it has them on disk.
    let counted_at = rover_membership::runtime::unix_ms();
    let flushed = wait_for(Duration::from_secs(10), || {
        counts_at(&cluster.agents[victim])
            .is_some_and(|c| c["flushed_before_ms"].as_u64().unwrap() > counted_at + 50)
    });
    assert!(flushed.is_some(), "no flush reported after the count");
    // Alerts keep flowing while the agent dies.
    assert!(cluster.agents[0]
        .cli(&["alert", "clear", "flow0"])
        .status
        .success());
    cluster.agents[victim].kill();
    cluster.agents[victim].restart();
    let after = counts_at(&cluster.agents[victim]).expect("restarted agent does not answer");
    for key in ["history_entries", "alerts", "members"] {
        assert!(
            after[key].as_u64() >= before[key].as_u64(),
            "{key}: {} before the kill, {} after",
            before[key],
            after[key]
        );
    }
    eprintln!("before kill: {before}; after restart: {after}");
}

/// Waits until `agent` reports a flush that started after now: what it stored is on disk.
fn wait_flushed(agent: &common::Agent) {
    let now = rover_membership::runtime::unix_ms();
    let flushed = wait_for(Duration::from_secs(10), || {
        agent
            .get_json("/v1/storage")
            .is_some_and(|c| c["flushed_before_ms"].as_u64().unwrap_or(0) > now + 50)
    });
    assert!(flushed.is_some(), "{} reports no flush", agent.name);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    let _ = std::fs::remove_dir_all(to);
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success(), "cp -a {from:?} {to:?}");
}

#[test]
fn an_agent_restored_from_an_older_data_dir_takes_its_alerts_versions_from_peers_and_its_next_change_wins(
) {
    let mut cluster = Cluster::new();
    cluster.config_for = Some(Box::new(|_| fast_status()));
    for _ in 0..3 {
        cluster.add_agent();
    }
    cluster.wait_converged(Duration::from_secs(30));
    let origin = 1;
    let alert_on = |cluster: &Cluster, i: usize| {
        cluster.agents[i]
            .alerts()
            .into_iter()
            .find(|a| a["host"] == "n2" && a["name"] == "rollback")
    };
    let everywhere = |cluster: &Cluster, state: &str, version: u64| {
        (0..3).all(|i| {
            alert_on(cluster, i)
                .is_some_and(|a| a["state"] == state && a["version"].as_u64() == Some(version))
        })
    };
    let cli_ok = |cluster: &Cluster, args: &[&str]| {
        let out = cluster.agents[origin].cli(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    cli_ok(
        &cluster,
        &[
            "alert",
            "raise",
            "rollback",
            "--summary",
            "before the backup",
        ],
    );
    assert!(wait_for(Duration::from_secs(30), || everywhere(
        &cluster, "firing", 1
    ))
    .is_some());

    // A backup of the data dir while the alert is firing (version 1).
    wait_flushed(&cluster.agents[origin]);
    cluster.agents[origin].kill();
    let data_dir = cluster.agents[origin].data_dir.clone();
    let backup = cluster.dir.path().join("n2-backup");
    copy_dir(&data_dir, &backup);
    cluster.agents[origin].restart();
    cli_ok(&cluster, &["alert", "clear", "rollback"]);
    assert!(
        wait_for(Duration::from_secs(30), || everywhere(
            &cluster, "resolved", 2
        ))
        .is_some(),
        "{:?}",
        alert_on(&cluster, 0)
    );

    // Restored: the origin holds firing v1, its peers resolved v2.
    cluster.agents[origin].kill();
    copy_dir(&backup, &data_dir);
    cluster.agents[origin].restart();
    let adopted = wait_for(Duration::from_secs(30), || {
        alert_on(&cluster, origin)
            .is_some_and(|a| a["state"] == "resolved" && a["version"].as_u64() == Some(2))
    });
    assert!(
        adopted.is_some(),
        "the restored origin kept {:?}\n{}",
        alert_on(&cluster, origin),
        cluster.agents[origin].log()
    );
    cli_ok(
        &cluster,
        &[
            "alert",
            "raise",
            "rollback",
            "--summary",
            "after the restore",
        ],
    );
    let converged = wait_for(Duration::from_secs(30), || {
        (0..3).all(|i| {
            alert_on(&cluster, i).is_some_and(|a| {
                a["state"] == "firing"
                    && a["version"].as_u64() == Some(3)
                    && a["summary"] == "after the restore"
            })
        })
    });
    assert!(
        converged.is_some(),
        "peers did not take the change: {:?} / {:?} / {:?}",
        alert_on(&cluster, 0),
        alert_on(&cluster, 1),
        alert_on(&cluster, 2)
    );
}
