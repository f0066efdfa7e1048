//! `/metrics` as Prometheus reads it: two agents, one running a failing Nagios check and
//! sending through an exec channel; once an alert has fired and been notified, the page passes
//! `promtool check metrics` (Debian's `prometheus`, installed by scripts/test.sh) and holds
//! every family an operator graphs, with the values this cluster must show.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{free_tcp_port, wait_for, Cluster};

const CHECK_TCP: &str = "/usr/lib/nagios/plugins/check_tcp";
const PROMTOOL: &str = "promtool";

/// The value of the first sample of `name` whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find(|line| {
            let (series, _) = line.rsplit_once(' ').unwrap_or((line, ""));
            let bare = series.split('{').next().unwrap_or(series);
            bare == name && labels.iter().all(|l| series.contains(l))
        })
        .and_then(|line| line.rsplit_once(' '))
        .and_then(|(_, value)| value.parse().ok())
}

#[test]
fn the_metrics_page_passes_promtool_and_shows_alerts_checks_sends_and_leadership() {
    assert!(
        std::path::Path::new(CHECK_TCP).exists(),
        "{CHECK_TCP} is missing: run scripts/test.sh, which installs monitoring-plugins-basic"
    );
    let closed = free_tcp_port(); // nothing listens there: the check is CRITICAL
    let calls = tempfile::tempdir().unwrap();
    let record = calls.path().join("calls");
    let script = calls.path().join("record.sh");
    std::fs::write(&script, format!("#!/bin/sh\ncat >> {}\n", record.display())).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut cluster = Cluster::new();
    let config = format!(
        "[status]\ninterval = \"1s\"\nfull_every = \"1s\"\n[gossip]\nsync_interval = \"2s\"\n\
         [notify]\ngroup_wait = \"1s\"\n\n[[notify.exec]]\ncommand = [\"{}\"]\n\n\
         [[check]]\nname = \"port-closed\"\ncommand = [\"{CHECK_TCP}\", \"-H\", \"127.0.0.1\", \"-p\", \"{}\"]\n\
         interval = \"1s\"\nretries = 1\n",
        script.display(),
        closed.port()
    );
    cluster.config_for = Some(Box::new(move |_| config.clone()));
    cluster.add_agent();
    cluster.add_agent();
    cluster.wait_converged(Duration::from_secs(30));

    let agent = &cluster.agents[0];
    let mut text = String::new();
    let ready = wait_for(Duration::from_secs(60), || {
        text = agent.http_get("/metrics").unwrap_or_default();
        sample(
            &text,
            "rover_notify_sends_total",
            &["outcome=\"delivered\""],
        )
        .unwrap_or(0.0)
            >= 1.0
            && sample(&text, "rover_alerts", &["state=\"firing\""]).unwrap_or(0.0) >= 1.0
    });
    assert!(
        ready.is_some(),
        "no delivered send and firing alert in /metrics:\n{text}\n{}",
        agent.log()
    );

    let mut promtool = match Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            panic!("{PROMTOOL} cannot run ({e}): run scripts/test.sh, which installs prometheus")
        }
    };
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics failed:\n{}{}\n--- the page ---\n{text}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    for family in [
        "rover_members",
        "rover_alerts",
        "rover_incidents_open",
        "rover_ledger_notifications",
        "rover_notify_sends_total",
        "rover_notify_send_duration_seconds",
        "rover_raft_term",
        "rover_leader",
        "rover_leader_mode",
        "rover_sync_rounds_total",
        "rover_sync_alerts_total",
        "rover_sync_records_total",
        "rover_storage_size_bytes",
        "rover_gossip_dropped_total",
        "rover_cluster_refused_total",
        "rover_check_runs_total",
        "rover_topology_nodes",
        "rover_events_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "no {family} family in /metrics:\n{text}"
        );
    }
    assert_eq!(
        sample(&text, "rover_members", &["status=\"alive\""]),
        Some(2.0),
        "{text}"
    );
    assert!(
        sample(&text, "rover_raft_term", &[]).unwrap() >= 1.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, "rover_leader_mode", &["mode=\"raft\""]),
        Some(1.0),
        "{text}"
    );
    assert!(
        sample(&text, "rover_incidents_open", &["kind=\"alert_firing\""]).unwrap() >= 1.0,
        "{text}"
    );
    assert!(
        sample(
            &text,
            "rover_check_runs_total",
            &["check=\"port-closed\"", "state=\"CRITICAL\""]
        )
        .unwrap()
            >= 1.0,
        "{text}"
    );
    assert!(
        sample(&text, "rover_notify_send_duration_seconds_count", &[]).unwrap() >= 1.0,
        "{text}"
    );
    assert!(
        sample(&text, "rover_storage_size_bytes", &[]).unwrap() > 0.0,
        "{text}"
    );
}
