//! Who leads: the Raft leader the agents agree on, and their log tails for failure messages.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Agent, Cluster};

/// This agent's `/v1/leader` answer.
pub fn leader(agent: &Agent) -> Option<Value> {
    agent.get_json("/v1/leader")
}

/// The leader an answer names.
pub fn leader_name(status: &Value) -> Option<String> {
    status["leader"].as_str().map(String::from)
}

/// A list field of an answer (`voters`, `learners`) as a set.
pub fn names(status: &Value, field: &str) -> BTreeSet<String> {
    status[field]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The Raft leader every agent in `observers` agrees on, with `voters` voters, if they agree.
pub fn agreed_raft_leader(cluster: &Cluster, observers: &[usize], voters: usize) -> Option<String> {
    let statuses: Vec<Value> = observers
        .iter()
        .map(|i| leader(&cluster.agents[*i]))
        .collect::<Option<_>>()?;
    let first = leader_name(&statuses[0])?;
    let agreed = statuses.iter().all(|s| {
        s["mode"] == "raft"
            && leader_name(s).as_deref() == Some(first.as_str())
            && names(s, "voters").len() == voters
    });
    let claimants = statuses.iter().filter(|s| s["is_me"] == true).count();
    (agreed && claimants == 1).then_some(first)
}

/// The last 30 log lines of every agent.
pub fn logs(cluster: &Cluster) -> String {
    if let Ok(dir) = std::env::var("ROVER_DUMP_LOGS") {
        for a in &cluster.agents {
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(format!("{dir}/{}.log", a.name), a.log());
        }
    }
    cluster
        .agents
        .iter()
        .map(|a| {
            let log = a.log();
            let lines: Vec<&str> = log.lines().collect();
            // A panic (openraft's RaftCore among others) is said far above the tail: show it.
            let panics: Vec<&str> = lines
                .iter()
                .enumerate()
                .filter(|(_, l)| l.contains("panicked at"))
                .take(2)
                .flat_map(|(i, _)| lines[i..lines.len().min(i + 3)].iter().copied())
                .collect();
            let tail: Vec<&str> = lines.iter().rev().take(30).rev().copied().collect();
            format!(
                "--- {} ---\n{}{}",
                a.name,
                if panics.is_empty() {
                    String::new()
                } else {
                    format!("panics:\n{}\n...\n", panics.join("\n"))
                },
                tail.join("\n")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
