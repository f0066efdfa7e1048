//! The cluster event log with real agents: `events` tells what happened in order, `monitor`
//! streams it live and a reader that never reads stays bounded, and `members --via` asks a
//! member from outside the cluster.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::leaders::{agreed_raft_leader, logs};
use common::{binary, wait_for, Agent, Cluster};
use serde_json::Value;

/// `events --format json` on `agent`, as (op, node) pairs.
fn events(agent: &Agent, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["events", "--format", "json"];
    args.extend_from_slice(extra);
    let out = agent.cli(&args);
    assert!(
        out.status.success(),
        "events failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn op_node(event: &Value) -> (String, String) {
    (
        event["op"].as_str().unwrap_or_default().to_owned(),
        event["node"].as_str().unwrap_or_default().to_owned(),
    )
}

fn position(
    seen: &[(String, String)],
    op: &str,
    node: Option<&str>,
    after: usize,
) -> Option<usize> {
    seen.iter()
        .enumerate()
        .skip(after)
        .find(|(_, (o, n))| o == op && node.is_none_or(|node| n == node))
        .map(|(i, _)| i)
}

#[test]
fn events_on_a_survivor_tell_joins_a_leader_a_down_a_reboot_a_rejoin_and_a_leader_change_in_order()
{
    let mut cluster = Cluster::start(5);
    cluster.wait_converged(Duration::from_secs(30));
    let all: Vec<usize> = (0..5).collect();
    let mut leader = None;
    wait_for(Duration::from_secs(60), || {
        leader = agreed_raft_leader(&cluster, &all, 5);
        leader.is_some()
    })
    .unwrap_or_else(|| panic!("no agreed leader\n{}", logs(&cluster)));
    let leader = leader.unwrap();
    let leader_index = cluster
        .agents
        .iter()
        .position(|a| a.name == leader)
        .unwrap();
    // The victim and the observer: neither the leader nor the first agent (the seed).
    let others: Vec<usize> = (1..5).filter(|i| *i != leader_index).collect();
    let (victim, observer) = (others[0], others[1]);
    let victim_name = cluster.agents[victim].name.clone();

    cluster.agents[victim].kill();
    wait_for(Duration::from_secs(30), || {
        cluster.agents[observer].status_of(&victim_name).as_deref() == Some("failed")
    })
    .expect("the victim was not declared failed");
    cluster.agents[victim].restart_as_started();
    wait_for(Duration::from_secs(30), || {
        cluster.agents[observer].status_of(&victim_name).as_deref() == Some("alive")
    })
    .expect("the restarted victim did not come back");
    let survivors: Vec<usize> = (0..5).filter(|i| *i != leader_index).collect();
    cluster.agents[leader_index].kill();
    let mut next = None;
    wait_for(Duration::from_secs(90), || {
        next = agreed_raft_leader(&cluster, &survivors, 5)
            .or_else(|| agreed_raft_leader(&cluster, &survivors, 4))
            .filter(|l| *l != leader);
        next.is_some()
    })
    .unwrap_or_else(|| panic!("no new leader\n{}", logs(&cluster)));
    let observer = &cluster.agents[observer];
    let mut seen: Vec<(String, String)> = Vec::new();
    wait_for(Duration::from_secs(30), || {
        seen = events(observer, &[]).iter().map(op_node).collect();
        position(&seen, "LeaderChange", None, 0).is_some()
    });
    let first_down = position(&seen, "Down", Some(&victim_name), 0)
        .unwrap_or_else(|| panic!("no Down of {victim_name}: {seen:?}"));
    let joins = seen[..first_down]
        .iter()
        .filter(|(o, _)| o == "Join")
        .count();
    assert_eq!(joins, 5, "five joins before the down: {seen:?}");
    let starts = seen[..first_down]
        .iter()
        .filter(|(o, _)| o == "LeaderStart")
        .count();
    assert_eq!(starts, 1, "one LeaderStart before the down: {seen:?}");
    let reboot = position(&seen, "Reboot", Some(&victim_name), first_down)
        .unwrap_or_else(|| panic!("no Reboot of {victim_name} after its Down: {seen:?}"));
    let rejoin = position(&seen, "Rejoin", Some(&victim_name), reboot)
        .unwrap_or_else(|| panic!("no Rejoin of {victim_name} after its Reboot: {seen:?}"));
    position(&seen, "LeaderChange", None, rejoin)
        .unwrap_or_else(|| panic!("no LeaderChange after the Rejoin: {seen:?}"));

    // The leader's Down is seen too; `--op Down` is exactly the downs.
    wait_for(Duration::from_secs(30), || {
        events(observer, &["--op", "Down"])
            .iter()
            .any(|e| e["node"] == leader.as_str())
    })
    .expect("the leader's Down is not in the log");
    let downs: Vec<(String, String)> = events(observer, &["--op", "Down"])
        .iter()
        .map(op_node)
        .collect();
    let all_downs: Vec<(String, String)> = events(observer, &[])
        .iter()
        .map(op_node)
        .filter(|(o, _)| o == "Down")
        .collect();
    assert_eq!(downs, all_downs);
    assert_eq!(
        downs,
        vec![
            ("Down".to_owned(), victim_name.clone()),
            ("Down".to_owned(), leader.clone())
        ]
    );
}

#[test]
fn monitor_prints_a_down_soon_after_the_agent_sees_it() {
    let mut cluster = Cluster::start(3);
    cluster.wait_converged(Duration::from_secs(30));
    let observer = &cluster.agents[0];
    let mut monitor = Command::new(binary())
        .args(["monitor", "--format", "json", "--op", "Down", "--api"])
        .arg(observer.api.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = monitor.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let started = lines.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(started.contains("\"started\""), "{started}");
    let victim_name = cluster.agents[2].name.clone();
    cluster.agents[2].kill();
    let observer = &cluster.agents[0];
    wait_for(Duration::from_secs(30), || {
        events(observer, &["--op", "Down"])
            .iter()
            .any(|e| e["node"] == victim_name.as_str())
    })
    .expect("the agent did not see the Down");
    // It was suspected first (by its probe here, or by the other member's report).
    let suspects = events(observer, &["--op", "Suspect"]);
    assert!(
        suspects.iter().any(|e| e["node"] == victim_name.as_str()),
        "{suspects:?}"
    );
    // Seen by the agent: the monitor prints it within a few seconds.
    let line = lines.recv_timeout(Duration::from_secs(5));
    let _ = monitor.kill();
    let _ = monitor.wait();
    let line = line.expect("monitor printed nothing after the agent saw the Down");
    let printed: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(printed["event"]["op"], "Down");
    assert_eq!(printed["event"]["node"], victim_name.as_str());
}

#[test]
fn a_monitor_reader_that_never_reads_loses_events_counted_instead_of_holding_them() {
    let cluster = Cluster::start(1);
    let agent = &cluster.agents[0];
    // A reader with a small receive window that reads nothing.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&agent.api.into()).unwrap();
    let mut reader: std::net::TcpStream = socket.into();
    write!(
        reader,
        "GET /v1/monitor HTTP/1.1\r\nHost: {}\r\n\r\n",
        agent.api
    )
    .unwrap();
    reader
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = Vec::new();
    let mut buffer = [0u8; 65536];
    wait_for(Duration::from_secs(10), || {
        if let Ok(n) = reader.read(&mut buffer) {
            head.extend_from_slice(&buffer[..n]);
        }
        String::from_utf8_lossy(&head).contains("\"started\"")
    })
    .unwrap_or_else(|| panic!("no start line: {}", String::from_utf8_lossy(&head)));
    let counts = |agent: &Agent| agent.info().map(|i| i["events"].clone());
    let summary = "x".repeat(250);
    // Alert transitions are events: raise and clear until the reader has lost some (bounded).
    let mut lost = 0;
    for round in 0..150 {
        for i in 0..100 {
            let name = format!("a{round}-{i}");
            let raised = agent.post_json(
                "/v1/alerts/raise",
                &serde_json::json!({ "name": name, "severity": "warning", "summary": summary }),
            );
            assert!(raised.is_some(), "raise failed");
        }
        lost = counts(agent)
            .and_then(|c| c["monitor_dropped"].as_u64())
            .unwrap_or(0);
        if lost > 0 {
            eprintln!(
                "the unread reader first lost events after {} (kernel socket buffers hold the rest)",
                (round + 1) * 100
            );
            break;
        }
    }
    assert!(
        lost > 0,
        "the unread reader never lost an event: {:?}",
        counts(agent)
    );
    // The agent still answers, and the reader, once it reads, is told what it lost.
    assert!(agent.info().is_some());
    // Reading again, the reader is told what it lost before the next event it gets.
    reader
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut received = Vec::new();
    let mut nudges = 0;
    let told = wait_for(Duration::from_secs(60), || {
        while let Ok(n) = reader.read(&mut buffer) {
            if n == 0 {
                break;
            }
            received.extend_from_slice(&buffer[..n]);
        }
        nudges += 1;
        agent.post_json(
            "/v1/alerts/raise",
            &serde_json::json!({ "name": format!("nudge{nudges}"), "severity": "warning", "summary": "x" }),
        );
        String::from_utf8_lossy(&received).contains("\"dropped\"")
    });
    assert!(told.is_some(), "the stream never said what it dropped");
}

#[test]
fn members_via_the_cluster_port_answer_with_the_right_key_and_a_wrong_key_gets_nothing_counted() {
    let cluster = Cluster::start(2);
    cluster.wait_converged(Duration::from_secs(30));
    let member = &cluster.agents[1];
    let outside = |key: &std::path::Path, what: &str| {
        Command::new(binary())
            .args([what, "--format", "json", "--via"])
            .arg(member.gossip.to_string())
            .arg("--key-file")
            .arg(key)
            // No local agent there: the answer can only come from --via.
            .args(["--api", "127.0.0.1:1"])
            .output()
            .unwrap()
    };
    let out = outside(&cluster.key_file, "members");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let members: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(members.len(), 2);
    let out = outside(&cluster.key_file, "info");
    assert!(out.status.success());
    let info: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["node"], member.name.as_str());
    assert!(info["events"]["held"].as_u64().unwrap() >= 2);
    let out = outside(&cluster.key_file, "events");
    assert!(out.status.success());

    let refused = |agent: &Agent| {
        agent.info().unwrap()["cluster_port_refused"]["handshakes"]
            .as_u64()
            .unwrap()
    };
    let before = refused(member);
    let wrong = cluster.dir.path().join("wrong.key");
    common::write_new_key(&wrong);
    let out = outside(&wrong, "members");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    wait_for(Duration::from_secs(10), || refused(member) > before)
        .expect("the wrong key's handshake was not counted");
    let metrics = member.http_get("/metrics").unwrap();
    let handshakes: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("rover_cluster_refused_total{reason=\"handshake\"} "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap();
    assert!(handshakes > before, "{metrics}");
    assert!(
        metrics.contains("rover_events_total{op=\"Reboot\"} 1"),
        "{metrics}"
    );
}

#[test]
fn monitor_with_a_log_level_also_prints_the_agent_s_log_lines() {
    let cluster = Cluster::start(1);
    let agent = &cluster.agents[0];
    let mut monitor = Command::new(binary())
        .args([
            "monitor",
            "--format",
            "json",
            "--log-level",
            "info",
            "--api",
        ])
        .arg(agent.api.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = monitor.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let started = lines.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(started.contains("\"started\""), "{started}");
    agent
        .post_json(
            "/v1/alerts/raise",
            &serde_json::json!({ "name": "logged", "severity": "warning", "summary": "seen" }),
        )
        .unwrap();
    let (mut event, mut log) = (false, false);
    while !(event && log) {
        let Ok(line) = lines.recv_timeout(Duration::from_secs(10)) else {
            break;
        };
        let line: Value = serde_json::from_str(&line).unwrap();
        event |= line["event"]["op"] == "Alert";
        log |= line["log"]["level"] == "INFO"
            && line["log"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("logged"));
    }
    let _ = monitor.kill();
    let _ = monitor.wait();
    assert!(event, "no Alert event");
    assert!(log, "no INFO log line about the alert");
}

#[test]
fn events_survive_a_restart_of_the_agent() {
    let mut cluster = Cluster::start(1);
    let name = cluster.agents[0].name.clone();
    let started = events(&cluster.agents[0], &["--op", "Reboot"])[0]["at_ms"]
        .as_u64()
        .unwrap();
    // sled flushes every 500 ms: kill -9 only once the first Reboot is on disk.
    wait_for(Duration::from_secs(10), || {
        cluster.agents[0]
            .get_json("/v1/storage")
            .and_then(|s| s["flushed_before_ms"].as_u64())
            .is_some_and(|flushed| flushed > started)
    })
    .expect("storage never flushed");
    cluster.agents[0].restart();
    let reboots: Vec<Value> = events(&cluster.agents[0], &["--op", "Reboot", "--node", &name]);
    assert_eq!(reboots.len(), 2, "{reboots:?}");
    assert!(reboots[0]["seq"].as_u64() < reboots[1]["seq"].as_u64());
    assert!(reboots[1]["detail"]
        .as_str()
        .is_some_and(|d| d.contains("generation")));
}
