//! Two agents with the same node name: the second is refused, and both say so at ERROR with
//! the other's address; `join` from the second answers with the conflict. A second agent that
//! joins through a third member is refused too: the holder keeps its name, and stays listed
//! alive after the other one leaves.

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

/// Whether `agent` lists `name` alive at `addr`.
fn lists_alive_at(agent: &common::Agent, name: &str, addr: std::net::SocketAddr) -> bool {
    agent
        .members()
        .iter()
        .any(|m| m.name == name && m.addr == addr && m.status.as_str() == "alive")
}

#[test]
fn a_second_agent_of_a_name_joining_through_a_third_is_refused_and_the_holder_stays_alive() {
    let mut cluster = Cluster::new();
    cluster.add_agent();
    cluster.add_agent();
    cluster.wait_converged(Duration::from_secs(30));
    // An impostor "n1" joins through n2, which knows the real n1.
    let twin = cluster.add_agent_named("n1", 1);
    let (holder, third, impostor) = (
        &cluster.agents[0],
        &cluster.agents[1],
        &cluster.agents[twin],
    );
    let dump = || {
        format!(
            "holder:\n{}\nthird:\n{}\nimpostor:\n{}\nthird lists: {:?}",
            holder.log(),
            third.log(),
            impostor.log(),
            third.members()
        )
    };
    let both = wait_for(Duration::from_secs(30), || {
        names_other(&holder.log(), impostor.gossip) && names_other(&impostor.log(), holder.gossip)
    });
    assert!(both.is_some(), "{}", dump());
    // The holder keeps its name: n2 lists n1 alive at the holder's address, not the impostor's.
    let kept = wait_for(Duration::from_secs(30), || {
        lists_alive_at(third, "n1", holder.gossip)
    });
    assert!(kept.is_some(), "{}", dump());
    assert!(
        impostor
            .log()
            .lines()
            .any(|l| l.contains("ERROR") && l.contains("this agent is the duplicate")),
        "{}",
        dump()
    );

    // The impostor leaves; the holder stays listed alive on n2 throughout.
    cluster.agents[twin].signal("TERM");
    assert!(cluster.agents[twin].wait_exit(Duration::from_secs(10)));
    let (holder, third) = (&cluster.agents[0], &cluster.agents[1]);
    let lost = wait_for(Duration::from_secs(15), || {
        !lists_alive_at(third, "n1", holder.gossip)
    });
    assert!(
        lost.is_none(),
        "n2 stopped listing the holder alive {lost:?} after the impostor left: {:?}\n{}",
        third.members(),
        third.log()
    );
    assert_eq!(holder.status_of("n2").as_deref(), Some("alive"));
}

#[test]
fn an_agent_restarted_on_its_data_dir_at_another_address_is_the_same_member_without_conflict() {
    let mut cluster = Cluster::start(3);
    cluster.wait_converged(Duration::from_secs(30));
    // kill -9 and start again at once on the same data dir, at another gossip address: the
    // others still list the previous run alive when the new one announces.
    cluster.agents[2].kill();
    let moved = common::free_udp_port();
    cluster.agents[2].gossip = moved;
    cluster.agents[2].restart_as_started();
    let back = wait_for(Duration::from_secs(30), || {
        [0, 1]
            .iter()
            .all(|i| lists_alive_at(&cluster.agents[*i], "n3", moved))
    });
    assert!(
        back.is_some(),
        "{:?}\n{:?}",
        cluster.agents[0].members(),
        cluster.agents[1].members()
    );
    for agent in &cluster.agents {
        assert!(
            !agent.log().contains("uses our node name")
                && !agent.log().contains("both use the node name"),
            "{}",
            agent.log()
        );
    }
}
