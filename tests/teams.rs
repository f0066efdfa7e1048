//! Teams linked by border agents (seed 000), with the built binary on loopback: each team is a
//! cluster of its own (its own key), the first agent of a team is its border agent, and each
//! link has a pairwise key only its two teams hold.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::smtp::SmtpSink;
use common::teams::{diamond, mail_config, team, team_with, Plan, Team};
use common::{wait_for, write_new_key};
use serde_json::Value;

fn state(link: &Option<Value>) -> String {
    link.as_ref()
        .and_then(|l| l["state"].as_str())
        .unwrap_or("none")
        .to_owned()
}

#[test]
fn three_teams_linked_pairwise_show_every_teams_alerts_and_a_clear_reaches_everyone() {
    let dir = tempfile::tempdir().unwrap();
    let plan = Plan::new(
        &["a", "b", "c"],
        &[
            ("a", "b", "direct"),
            ("a", "c", "direct"),
            ("b", "c", "direct"),
        ],
        dir.path(),
    );
    let teams: Vec<Team> = ["a", "b", "c"].iter().map(|t| team(t, 2, &plan)).collect();
    for t in &teams {
        t.trust_links();
    }
    for t in &teams {
        t.raise(1, "disk");
    }
    for t in &teams {
        for origin in &teams {
            let host = format!("{}2", origin.name);
            assert!(
                wait_for(Duration::from_secs(30), || t
                    .all_show((&origin.name, &host, "disk"), "firing"))
                .is_some(),
                "team {} does not show {}'s alert on every host: {:?}; links {:?}",
                t.name,
                origin.name,
                t.alerts_on(1),
                t.links()
            );
        }
    }
    // The path names the border agents it left a team by, origin first.
    let on_b2 = teams[1].alerts_on(1);
    let (_, path) = &on_b2[&("a".into(), "a2".into(), "disk".into())];
    assert_eq!(path, "a/a1>b/b1");
    teams[0].clear(1, "disk");
    for t in &teams {
        assert!(
            wait_for(Duration::from_secs(30), || t
                .all_show(("a", "a2", "disk"), "resolved"))
            .is_some(),
            "team {} still shows a's alert firing",
            t.name
        );
    }
    // One UpdateAlert per change per link: a raise and a clear.
    let link = teams[1].link("a").unwrap();
    assert!(link["updates_in"].as_u64().unwrap() <= 4, "{link}");
}

#[test]
fn a_chain_of_direct_links_keeps_each_end_teams_alerts_from_the_other_end() {
    let dir = tempfile::tempdir().unwrap();
    let plan = Plan::new(
        &["a", "b", "c"],
        &[("a", "b", "direct"), ("b", "c", "direct")],
        dir.path(),
    );
    let a = team("a", 1, &plan);
    let b = team("b", 2, &plan);
    let c = team("c", 1, &plan);
    for t in [&a, &b, &c] {
        t.trust_links();
    }
    a.raise(0, "disk");
    c.raise(0, "disk");
    assert!(
        wait_for(Duration::from_secs(30), || b
            .all_show(("a", "a1", "disk"), "firing")
            && b.all_show(("c", "c1", "disk"), "firing"))
        .is_some(),
        "the middle team does not show both ends' alerts: {:?}",
        b.alerts_on(1)
    );
    // b's own alert reaches both ends: the links work both ways.
    b.raise(1, "load");
    assert!(wait_for(Duration::from_secs(30), || a
        .all_show(("b", "b2", "load"), "firing")
        && c.all_show(("b", "b2", "load"), "firing"))
    .is_some());
    assert!(
        !a.any_shows_team("c"),
        "a sees c's alerts: {:?}",
        a.alerts_on(0)
    );
    assert!(
        !c.any_shows_team("a"),
        "c sees a's alerts: {:?}",
        c.alerts_on(0)
    );
}

#[test]
fn a_lost_link_takes_back_its_alerts_and_raises_a_rover_alert_until_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let plan = Plan::new(&["a", "b"], &[("a", "b", "direct")], dir.path());
    let a = team("a", 2, &plan);
    let mut b = team("b", 1, &plan);
    a.trust_links();
    b.trust_links();
    b.raise(0, "disk");
    assert!(wait_for(Duration::from_secs(30), || a
        .all_show(("b", "b1", "disk"), "firing"))
    .is_some());
    b.cluster.agents[0].kill();
    let killed = std::time::Instant::now();
    assert!(
        wait_for(Duration::from_secs(30), || !a.any_shows_team("b")
            && a.all_show(("a", "a1", "team-link/b"), "firing"))
        .is_some(),
        "b's alerts were not taken back, or no ROVER alert: {:?}",
        a.alerts_on(1)
    );
    assert_eq!(state(&a.link("b")), "lost");
    eprintln!("lost after {:?}", killed.elapsed());
    b.cluster.agents[0].restart();
    assert!(
        wait_for(Duration::from_secs(40), || a
            .all_show(("b", "b1", "disk"), "firing")
            && a.all_show(("a", "a1", "team-link/b"), "resolved"))
        .is_some(),
        "after the restart: {:?}; link {:?}",
        a.alerts_on(1),
        a.link("b")
    );
    assert_eq!(state(&a.link("b")), "up");
}

#[test]
fn a_wrong_pairwise_key_never_brings_the_link_up_and_the_counter_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let plan = Plan::new(&["a", "b"], &[("a", "b", "direct")], dir.path());
    let a = team("a", 1, &plan);
    // b's end gets a key of its own.
    let (_, _, _, key) = plan.ends.iter().find(|e| e.0 == "b").unwrap().clone();
    write_new_key(&key);
    let b = team("b", 1, &plan);
    let refused = |t: &Team| {
        t.link(if t.name == "a" { "b" } else { "a" })
            .map(|l| l["dropped"]["handshake"].as_u64().unwrap_or(0))
            .unwrap_or(0)
    };
    assert!(
        wait_for(Duration::from_secs(20), || refused(&a) > 0
            || refused(&b) > 0)
        .is_some(),
        "no refused handshake counted: {:?} {:?}",
        a.links(),
        b.links()
    );
    assert_eq!(state(&a.link("b")), "down");
    assert_eq!(state(&b.link("a")), "down");
}

#[test]
fn without_a_trust_record_nothing_is_sent_over_a_link_that_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let plan = Plan::new(&["a", "b"], &[("a", "b", "direct")], dir.path());
    let a = team("a", 1, &plan);
    let b = team("b", 1, &plan);
    b.trust_links(); // b trusts a; a trusts nobody yet
    b.raise(0, "disk");
    a.raise(0, "disk");
    let refused_at_a = || {
        a.link("b")
            .map(|l| l["dropped"]["not_trusted"].as_u64().unwrap_or(0))
            .unwrap_or(0)
    };
    assert!(
        wait_for(Duration::from_secs(20), || refused_at_a() > 0).is_some(),
        "b's alert was not refused as untrusted at a: {:?}",
        a.links()
    );
    assert!(!a.any_shows_team("b"), "a took b's alert without a record");
    assert!(!b.any_shows_team("a"), "a sent its alert without a record");
    assert_eq!(a.link("b").unwrap()["alerts_out"], 0);
    a.trust_links();
    assert!(
        wait_for(Duration::from_secs(20), || b
            .all_show(("a", "a1", "disk"), "firing"))
        .is_some(),
        "a's alert did not go out once trusted"
    );
}

/// The path of `(team, host, name)` on agent `index` of `t`, if it lists it.
fn path_on(t: &Team, index: usize, key: (&str, &str, &str)) -> Option<String> {
    t.alerts_on(index)
        .get(&(key.0.to_owned(), key.1.to_owned(), key.2.to_owned()))
        .map(|(_, path)| path.clone())
}

fn updates_in(t: &Team, from: &str) -> u64 {
    t.link(from)
        .and_then(|l| l["updates_in"].as_u64())
        .unwrap_or(0)
}

#[test]
fn a_chain_of_transit_links_brings_the_far_teams_alerts_with_their_path() {
    let dir = tempfile::tempdir().unwrap();
    let plan = Plan::new(
        &["a", "b", "c"],
        &[("a", "b", "transit"), ("b", "c", "transit")],
        dir.path(),
    );
    let a = team("a", 2, &plan);
    let b = team("b", 1, &plan);
    let c = team("c", 1, &plan);
    for t in [&a, &b, &c] {
        t.trust_links();
    }
    c.raise(0, "disk");
    assert!(
        wait_for(Duration::from_secs(30), || a
            .all_show(("c", "c1", "disk"), "firing"))
        .is_some(),
        "a does not show c's alert through b: {:?}; links {:?}",
        a.alerts_on(1),
        a.links()
    );
    assert_eq!(
        path_on(&a, 1, ("c", "c1", "disk")).as_deref(),
        Some("c/c1>b/b1>a/a1")
    );
    assert_eq!(a.link("b").unwrap()["mode"], "transit");
}

#[test]
fn in_a_diamond_of_transit_links_the_far_team_gets_each_alert_once_and_a_lost_hop_reroutes() {
    let dir = tempfile::tempdir().unwrap();
    let plan = diamond(dir.path());
    let a = team("a", 1, &plan);
    let mut b = team("b", 1, &plan);
    let c = team("c", 1, &plan);
    let d = team("d", 2, &plan);
    for t in [&a, &b, &c, &d] {
        t.trust_links();
    }
    // Every border knows every link before the alerts go.
    assert!(wait_for(Duration::from_secs(30), || [&a, &b, &c, &d]
        .iter()
        .all(|t| t.links().iter().all(|l| l["state"] == "up")))
    .is_some());
    for name in ["disk", "load", "swap"] {
        a.raise(0, name);
    }
    b.raise(0, "mail");
    let all_at_d = |d: &Team| {
        ["disk", "load", "swap"]
            .iter()
            .all(|n| d.all_show(("a", "a1", n), "firing"))
    };
    assert!(
        wait_for(Duration::from_secs(30), || all_at_d(&d)
            && d.all_show(("b", "b1", "mail"), "firing"))
        .is_some(),
        "d does not show a's alerts: {:?}",
        d.alerts_on(1)
    );
    // One more alert after them: once d has it, anything c would have passed on of the first
    // ones has arrived too.
    a.raise(0, "last");
    assert!(wait_for(Duration::from_secs(30), || d
        .all_show(("a", "a1", "last"), "firing"))
    .is_some());
    // Each of a's alerts crossed into d once, by b (the lower name of two equal paths).
    let (via_b, via_c) = (updates_in(&d, "b"), updates_in(&d, "c"));
    eprintln!("UpdateAlert frames into d: via b {via_b}, via c {via_c}");
    assert_eq!(
        path_on(&d, 1, ("a", "a1", "disk")).as_deref(),
        Some("a/a1>b/b1>d/d1")
    );
    assert_eq!(via_c, 0, "c forwarded a's alerts to d too");
    assert_eq!(via_b, 5, "b sent a's 4 alerts and its own once each");
    // b's border goes: d keeps a's alerts, now through c, and b's own alert is gone.
    b.cluster.agents[0].kill();
    assert!(
        wait_for(Duration::from_secs(30), || all_at_d(&d)
            && path_on(&d, 1, ("a", "a1", "disk")).as_deref()
                == Some("a/a1>c/c1>d/d1")
            && !d.any_shows_team("b"))
        .is_some(),
        "after losing b: {:?}",
        d.alerts_on(1)
    );
}

fn subjects(smtp: &SmtpSink) -> Vec<String> {
    smtp.messages().into_iter().map(|m| m.subject).collect()
}

#[test]
fn a_team_cut_off_gives_one_rover_message_per_team_and_one_resolved_once_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let plan = Plan::new(
        &["a", "b", "c"],
        &[("a", "b", "direct"), ("c", "b", "direct")],
        dir.path(),
    );
    let (smtp_a, smtp_c) = (SmtpSink::start(), SmtpSink::start());
    let a = team_with("a", 2, &plan, &mail_config(&smtp_a, "2s"), false);
    let mut b = team("b", 1, &plan);
    let c = team_with("c", 2, &plan, &mail_config(&smtp_c, "2s"), false);
    for t in [&a, &b, &c] {
        t.trust_links();
    }
    b.raise(0, "disk");
    assert!(wait_for(Duration::from_secs(30), || a
        .all_show(("b", "b1", "disk"), "firing")
        && c.all_show(("b", "b1", "disk"), "firing"))
    .is_some());
    // Shown, not notified: notify_remote is off.
    assert!(subjects(&smtp_a).is_empty() && subjects(&smtp_c).is_empty());

    b.cluster.agents[0].kill();
    let firing_a = smtp_a.wait_for_count(1, Duration::from_secs(60));
    let firing_c = smtp_c.wait_for_count(1, Duration::from_secs(60));
    assert_eq!(firing_a[0].subject, "rover: FIRING team-link/b on a1");
    assert_eq!(firing_c[0].subject, "rover: FIRING team-link/b on c1");
    assert!(!a.any_shows_team("b") && !c.any_shows_team("b"));

    b.cluster.agents[0].restart();
    let resolved_a = smtp_a.wait_for_count(2, Duration::from_secs(60));
    let resolved_c = smtp_c.wait_for_count(2, Duration::from_secs(60));
    assert_eq!(resolved_a[1].subject, "rover: RESOLVED team-link/b on a1");
    assert_eq!(resolved_c[1].subject, "rover: RESOLVED team-link/b on c1");
    assert!(a.all_show(("b", "b1", "disk"), "firing"));
    // Nothing more: one message each way per team.
    let more = wait_for(Duration::from_secs(8), || {
        smtp_a.messages().len() > 2 || smtp_c.messages().len() > 2
    });
    assert!(
        more.is_none(),
        "{:?} {:?}",
        subjects(&smtp_a),
        subjects(&smtp_c)
    );
}

#[test]
fn with_notify_remote_the_receiving_team_notifies_another_teams_alert_once_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let plan = Plan::new(&["a", "b"], &[("a", "b", "direct")], dir.path());
    let smtp = SmtpSink::start();
    let a = team_with("a", 2, &plan, &mail_config(&smtp, "2s"), true);
    let b = team("b", 1, &plan);
    a.trust_links();
    b.trust_links();
    b.raise(0, "disk");
    let mails = smtp.wait_for_count(1, Duration::from_secs(60));
    assert_eq!(mails[0].subject, "rover: FIRING disk on b1 (team b)");
    b.clear(0, "disk");
    let mails = smtp.wait_for_count(2, Duration::from_secs(60));
    assert_eq!(mails[1].subject, "rover: RESOLVED disk on b1 (team b)");
    let more = wait_for(Duration::from_secs(8), || smtp.messages().len() > 2);
    assert!(more.is_none(), "{:?}", subjects(&smtp));
}

/// A `[team]` section with one link.
fn one_link(listen: SocketAddr, to: &str, peer: SocketAddr, key: &Path) -> String {
    format!(
        "[team]\nlink_bind = \"{listen}\"\nlink_timeout = \"3s\"\n[[team.link]]\nteam = \"{to}\"\n\
         peer = \"{peer}\"\nkey_file = \"{}\"\n",
        key.display()
    )
}

#[test]
fn two_border_agents_per_team_keep_one_copy_and_the_alerts_survive_losing_one() {
    let dir = tempfile::tempdir().unwrap();
    let (k1, k2) = (dir.path().join("k1.key"), dir.path().join("k2.key"));
    write_new_key(&k1);
    write_new_key(&k2);
    let ports: Vec<SocketAddr> = (0..4).map(|_| common::free_tcp_port()).collect();
    // a1 - b1 over k1, a2 - b2 over k2.
    let configs = [
        one_link(ports[0], "b", ports[2], &k1),
        one_link(ports[1], "b", ports[3], &k2),
        one_link(ports[2], "a", ports[0], &k1),
        one_link(ports[3], "a", ports[1], &k2),
    ];
    let mut teams = Vec::new();
    for (t, offset) in [("a", 0), ("b", 2)] {
        let mut cluster = common::Cluster::new();
        let mine = [configs[offset].clone(), configs[offset + 1].clone()];
        cluster.config_for = Some(Box::new(move |i| mine[i].clone()));
        for i in 1..=2 {
            cluster.add_agent_called(&format!("{t}{i}"), &["--team".into(), t.into()]);
        }
        teams.push(Team {
            name: t.into(),
            cluster,
        });
    }
    let (a, mut b) = {
        let mut it = teams.into_iter();
        (it.next().unwrap(), it.next().unwrap())
    };
    for t in [&a, &b] {
        for i in 0..2 {
            for link in t.cluster.agents[i]
                .get_json("/v1/teams")
                .and_then(|v| v.as_array().cloned())
                .unwrap_or_default()
            {
                let out = t.cluster.agents[i].cli(&[
                    "trust",
                    "add",
                    link["link_id"].as_str().unwrap(),
                    "--petname",
                    "other",
                    "--what",
                    "send-alerts-to,accept-alerts-from",
                ]);
                assert!(out.status.success());
            }
        }
    }
    b.raise(1, "disk");
    assert!(
        wait_for(Duration::from_secs(30), || a
            .all_show(("b", "b2", "disk"), "firing"))
        .is_some(),
        "{:?}",
        a.alerts_on(0)
    );
    // Both borders of a brought it; the team holds it once.
    assert_eq!(
        a.alerts_on(1).keys().filter(|k| k.0 == "b").count(),
        1,
        "{:?}",
        a.alerts_on(1)
    );
    // b1 goes: a1's link is lost and a1 takes back what it brought, but a2 still brings it.
    b.cluster.agents[0].kill();
    assert!(wait_for(Duration::from_secs(30), || a
        .all_show(("a", "a1", "team-link/b"), "firing"))
    .is_some());
    assert!(
        wait_for(Duration::from_secs(10), || a
            .all_show(("b", "b2", "disk"), "firing"))
        .is_some(),
        "the alert did not survive losing one of two links: {:?}",
        a.alerts_on(1)
    );
}

#[test]
fn an_agent_of_another_team_holding_our_key_is_refused_and_told_about() {
    let mut cluster = common::Cluster::new();
    cluster.add_agent_called("h1", &["--team".into(), "home".into()]);
    // Same key, another team, joining h1.
    cluster.add_agent_called("c1", &["--team".into(), "cabin".into()]);
    let refused = |i: usize| {
        cluster.agents[i]
            .info()
            .and_then(|info| info["counters"]["dropped_other_team"].as_u64())
            .unwrap_or(0)
    };
    assert!(
        wait_for(Duration::from_secs(20), || refused(0) > 0).is_some(),
        "h1 did not refuse c1: {:?}",
        cluster.agents[0].info()
    );
    assert!(cluster.agents[0]
        .log()
        .contains("refused an agent of another team that holds our cluster key"));
    // Neither lists the other.
    assert!(cluster.agents[0].members().iter().all(|m| m.name != "c1"));
    assert!(cluster.agents[1].members().iter().all(|m| m.name != "h1"));
}

#[test]
fn team_link_add_writes_the_link_and_both_records_and_remove_takes_them_back() {
    let mut cluster = common::Cluster::new();
    cluster.add_agent_called("h1", &["--team".into(), "home".into()]);
    let agent = &cluster.agents[0];
    let key = cluster.dir.path().join("home-cabin.key");
    write_new_key(&key);
    let config = cluster.dir.path().join("border.toml");
    std::fs::write(&config, "[node]\ntags = { site = \"home\" }\n").unwrap();
    let (config_s, key_s) = (config.to_str().unwrap(), key.to_str().unwrap());
    let out = agent.cli(&[
        "team",
        "link",
        "add",
        "cabin",
        "--peer",
        "127.0.0.1:7912",
        "--key-file",
        key_s,
        "--config",
        config_s,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains("[[team.link]]\nteam = \"cabin\"\npeer = \"127.0.0.1:7912\""),
        "{text}"
    );
    assert!(
        text.starts_with("[node]"),
        "the file's own settings are kept: {text}"
    );
    let trust = agent.cli(&["trust", "list"]);
    let listed = String::from_utf8_lossy(&trust.stdout);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("cabin ") && l.contains("accept-alerts-from,send-alerts-to")),
        "{listed}"
    );
    // The file is a config the agent takes.
    rover_agent::config::Layer::from_toml(&text, &config).unwrap();
    let out = agent.cli(&[
        "team",
        "link",
        "remove",
        "cabin",
        "--key-file",
        key_s,
        "--config",
        config_s,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(!text.contains("team.link"), "{text}");
    assert!(text.contains("site = \"home\""), "{text}");
    let trust = agent.cli(&["trust", "list"]);
    assert!(
        !String::from_utf8_lossy(&trust.stdout).contains("cabin "),
        "{}",
        String::from_utf8_lossy(&trust.stdout)
    );
    // Bad usage exits 2 and signs nothing; a config file that cannot be written exits 1 and
    // signs nothing either.
    let peer = "127.0.0.1:7912";
    let cases: Vec<(Vec<&str>, i32)> = vec![
        (
            vec![
                "cabin",
                "--peer",
                peer,
                "--key-file",
                key_s,
                "--mode",
                "mesh",
            ],
            2,
        ),
        (
            vec!["cabin", "--peer", peer, "--key-file", "/nonexistent.key"],
            2,
        ),
        (vec!["home", "--peer", peer, "--key-file", key_s], 2),
        (vec!["bad name!", "--peer", peer, "--key-file", key_s], 2),
        (vec!["", "--peer", peer, "--key-file", key_s], 2),
        (vec!["cabin", "--peer", "nohost", "--key-file", key_s], 2),
        (
            vec!["cabin", "--peer", "127.0.0.1:0", "--key-file", key_s],
            2,
        ),
        (
            vec!["cabin", "--peer", "127.0.0.1:70000", "--key-file", key_s],
            2,
        ),
        (
            vec![
                "cabin",
                "--peer",
                peer,
                "--key-file",
                key_s,
                "--config",
                "/nonexistent/x.toml",
            ],
            1,
        ),
    ];
    for (args, code) in cases {
        let mut all = vec!["team", "link", "add"];
        all.extend(args.iter());
        let out = agent.cli(&all);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let trust = agent.cli(&["trust", "list"]);
        assert!(
            !String::from_utf8_lossy(&trust.stdout).contains("cabin "),
            "{args:?} signed a recommendation"
        );
    }
    // Twice into one file: the second is refused.
    let add = [
        "team",
        "link",
        "add",
        "cabin",
        "--peer",
        peer,
        "--key-file",
        key_s,
        "--config",
        config_s,
    ];
    assert!(agent.cli(&add).status.success());
    assert_eq!(agent.cli(&add).status.code(), Some(2));
    assert_eq!(
        std::fs::read_to_string(&config)
            .unwrap()
            .matches("[[team.link]]")
            .count(),
        1
    );
    // A closed stdout is no panic.
    let piped = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{} team link remove cabin --key-file {key_s} --config {config_s} --api {} --data-dir {} | true; echo \"rc=${{PIPESTATUS[0]}}\"",
            common::binary(),
            agent.api,
            agent.data_dir.display()
        ))
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&piped.stderr).contains("panicked"),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    // A typo'd config file: refused before the recommendation is withdrawn.
    assert!(
        agent.cli(&add).status.success(),
        "the link was not taken out by the piped remove"
    );
    let typo = cluster.dir.path().join("border.tom");
    let out = agent.cli(&[
        "team",
        "link",
        "remove",
        "cabin",
        "--key-file",
        key_s,
        "--config",
        typo.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let trust = agent.cli(&["trust", "list"]);
    assert!(
        String::from_utf8_lossy(&trust.stdout).contains("cabin "),
        "withdrawn despite the typo"
    );
}
