//! Two agents with the same node name: the second is refused, and both say so at ERROR with
//! the other's address; `join` from the second answers with the conflict.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{wait_for, Cluster};

/// Whether `log` has an ERROR line naming the agent at `other` as holding our name.
fn names_other(log: &str, other: std::net::SocketAddr) -> bool {
    log.lines().any(|line| {
        line.contains("ERROR")
            && line.contains(&format!("another agent at {other} uses our node name"))
    })
}

#[test]
fn a_second_agent_of_the_same_name_is_refused_loudly_on_both_sides() {
    let mut cluster = Cluster::new();
    cluster.add_agent();
    let twin = cluster.add_agent_named("n1", 0);
    let (first, second) = (&cluster.agents[0], &cluster.agents[twin]);
    assert_eq!(second.name, "n1");
    let names_other = names_other;
    let both = wait_for(Duration::from_secs(20), || {
        names_other(&first.log(), second.gossip) && names_other(&second.log(), first.gossip)
    });
    assert!(
        both.is_some(),
        "first:\n{}\nsecond:\n{}",
        first.log(),
        second.log()
    );
    assert_eq!(first.members().len(), 1, "{:?}", first.members());
    assert_eq!(second.members().len(), 1, "{:?}", second.members());

    let out = second.cli(&[
        "--data-dir",
        second.data_dir.to_str().unwrap(),
        "join",
        &first.gossip.to_string(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr.contains(&format!(
            "the agent at {} already uses our node name",
            first.gossip
        )),
        "{stderr}"
    );

    // A third agent with a name of its own joins as usual.
    let third = cluster.add_agent();
    wait_for(Duration::from_secs(20), || {
        cluster.agents[0].members().len() == 2
    })
    .unwrap_or_else(|| panic!("{:?}", cluster.agents[third].members()));
}

#[test]
fn two_agents_of_one_name_meeting_through_a_third_are_both_told() {
    let mut cluster = Cluster::new();
    cluster.add_agent();
    cluster.add_agent();
    cluster.wait_converged(Duration::from_secs(30));
    // A second "n1" joins through n2, which knows the first n1.
    let twin = cluster.add_agent_named("n1", 1);
    let (first, second) = (&cluster.agents[0], &cluster.agents[twin]);
    let both = wait_for(Duration::from_secs(30), || {
        names_other(&first.log(), second.gossip) && names_other(&second.log(), first.gossip)
    });
    assert!(
        both.is_some(),
        "first:\n{}\nsecond:\n{}\nn2:\n{}",
        first.log(),
        second.log(),
        cluster.agents[1].log()
    );
}
