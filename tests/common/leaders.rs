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
    cluster
        .agents
        .iter()
        .map(|a| {
            let log = a.log();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            format!(
                "--- {} ---\n{}",
                a.name,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
