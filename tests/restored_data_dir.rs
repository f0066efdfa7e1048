//! A follower started from an older copy of its whole data dir (a restored backup: database
//! and watermark agree, so the agent cannot tell) has a Raft log behind what its leader knows
//! it held. openraft's leader panicked on it ("follower log reversion is not allowed"), and the
//! agent ran on naming itself leader with a dead Raft core: no DOWN was ever sent again. Now
//! the leader takes the follower back from where its log is (openraft's
//! `loosen-follower-log-revert`), and a Raft core that ends anyway is noticed and restarted.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::leaders::{agreed_raft_leader, logs};
use common::{wait_for, Cluster};

const SETTLE: Duration = Duration::from_secs(60);

fn incident_ids(cluster: &Cluster, i: usize) -> Vec<String> {
    cluster.agents[i]
        .get_json("/v1/incidents")
        .and_then(|v| {
            v["incidents"].as_array().map(|list| {
                list.iter()
                    .filter_map(|x| x["id"].as_str().map(String::from))
                    .collect()
            })
        })
        .unwrap_or_default()
}

#[test]
fn a_follower_restored_from_an_old_data_dir_neither_stops_the_leader_nor_its_notices() {
    let mut cluster = Cluster::start(3);
    cluster.wait_converged(SETTLE);
    let all = [0, 1, 2];
    let leader = wait_for(SETTLE, || agreed_raft_leader(&cluster, &all, 3).is_some());
    assert!(leader.is_some(), "no leader\n{}", logs(&cluster));
    let leader = agreed_raft_leader(&cluster, &all, 3).unwrap();
    let f = all
        .into_iter()
        .find(|i| cluster.agents[*i].name != leader)
        .unwrap();
    let l = all
        .into_iter()
        .find(|i| cluster.agents[*i].name == leader)
        .unwrap();
    // A backup of the follower's data dir, taken while it is down.
    cluster.agents[f].kill();
    let dir = cluster.agents[f].data_dir.clone();
    let backup = dir.with_extension("backup");
    assert!(Command::new("cp")
        .arg("-a")
        .arg(&dir)
        .arg(&backup)
        .status()
        .unwrap()
        .success());
    cluster.agents[f].restart_as_started();
    cluster.wait_converged(SETTLE);
    // The follower's Raft log grows past the backup: incidents for three alerts of its own.
    for name in ["r1", "r2", "r3"] {
        let out = cluster.agents[f].cli(&["alert", "raise", name, "--severity", "critical"]);
        assert!(out.status.success(), "{out:?}");
    }
    let grown = wait_for(SETTLE, || {
        incident_ids(&cluster, f)
            .iter()
            .filter(|id| id.contains("/r"))
            .count()
            == 3
    });
    assert!(grown.is_some(), "no incidents\n{}", logs(&cluster));
    // Back to the backup.
    cluster.agents[f].kill();
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::rename(&backup, &dir).unwrap();
    cluster.agents[f].restart_as_started();
    let healthy = wait_for(SETTLE, || {
        agreed_raft_leader(&cluster, &all, 3).is_some()
            && incident_ids(&cluster, f)
                .iter()
                .filter(|id| id.contains("/r"))
                .count()
                == 3
    });
    assert!(
        healthy.is_some(),
        "the restored follower was not brought up to date\n{}",
        logs(&cluster)
    );
    // The leader still does its work: a kill of the follower becomes an incident.
    let victim = cluster.agents[f].name.clone();
    cluster.agents[f].kill();
    let down = wait_for(SETTLE, || {
        incident_ids(&cluster, l)
            .iter()
            .any(|id| id.starts_with(&format!("down/{victim}/")))
    });
    assert!(down.is_some(), "no DOWN incident\n{}", logs(&cluster));
    let panics: Vec<String> = cluster
        .agents
        .iter()
        .filter(|a| a.log().contains("panicked at"))
        .map(|a| a.name.clone())
        .collect();
    assert!(
        panics.is_empty(),
        "panics in {panics:?}\n{}",
        logs(&cluster)
    );
}
