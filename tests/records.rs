//! Multi-process tests of grid-control records with the built binary on 127.0.0.1: a named
//! service reaches every agent, a later joiner and a restarted one; forged, replayed and
//! truncated records (at the cluster port and as gossip items) are dropped and counted; and
//! agents restarted without `--join` find each other through their address records.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::grid::{
    dropped, forget_members, push_records, read_key, records, service_get, stderr, Intruder,
};
use common::{wait_for, Cluster};
use rover_storage::grid::SignedRecord;

const CONVERGE: Duration = Duration::from_secs(30);
const SPREAD: Duration = Duration::from_secs(20);

fn set(cluster: &Cluster, agent: usize, name: &str, addr: &str) {
    let out = cluster.agents[agent].cli(&["service", "set", name, addr]);
    assert!(out.status.success(), "service set failed: {}", stderr(&out));
}

fn all_answer(cluster: &Cluster, name: &str, addr: &str) -> bool {
    cluster
        .agents
        .iter()
        .all(|a| service_get(a, name).as_deref() == Some(addr))
}

/// The encoded record of `name` that `agent` holds.
fn encoded(cluster: &Cluster, agent: usize, name: &str) -> Vec<u8> {
    let held = records(&cluster.agents[agent], Some(name));
    assert_eq!(held.len(), 1, "{held:?}");
    URL_SAFE_NO_PAD
        .decode(held[0]["encoded"].as_str().unwrap())
        .unwrap()
}

#[test]
fn a_service_set_on_one_of_five_agents_reaches_all_a_later_joiner_and_survives_a_restart() {
    let mut cluster = Cluster::start(5);
    cluster.wait_converged(CONVERGE);
    set(&cluster, 0, "registry", "127.0.0.1:9999");
    let took = wait_for(SPREAD, || {
        all_answer(&cluster, "registry", "127.0.0.1:9999")
    });
    assert!(
        took.is_some(),
        "not every agent answers service get registry: {:?}",
        cluster
            .agents
            .iter()
            .map(|a| service_get(a, "registry"))
            .collect::<Vec<_>>()
    );
    eprintln!("service set to answered by all 5: {took:?}");

    // Once no agent retransmits a broadcast any more, a later joiner can only get the record
    // through the anti-entropy sync.
    let quiet = wait_for(SPREAD, || {
        cluster.agents.iter().all(|a| {
            a.info()
                .is_some_and(|i| i["counters"]["broadcast_backlog"].as_u64() == Some(0))
        })
    });
    assert!(quiet.is_some(), "gossip never went quiet");
    let late = cluster.add_agent_joining(2);
    let took = wait_for(SPREAD, || {
        service_get(&cluster.agents[late], "registry").as_deref() == Some("127.0.0.1:9999")
    });
    assert!(took.is_some(), "the later joiner never got the record");
    let held = records(&cluster.agents[late], Some("registry"));
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["node"], "n1");
    assert_eq!(held[0]["fingerprint"].as_str().unwrap().len(), 16);
    assert!(held[0]["seqnum"].as_u64().unwrap() > 0);

    // Alone after a restart (every other agent is gone), it still answers from its storage.
    for i in cluster.others(1) {
        cluster.agents[i].kill();
    }
    cluster.agents[1].restart();
    assert_eq!(
        service_get(&cluster.agents[1], "registry").as_deref(),
        Some("127.0.0.1:9999")
    );
    let list = cluster.agents[1].cli(&["service", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("registry  127.0.0.1:9999"));
}

#[test]
fn forged_replayed_and_truncated_records_at_the_cluster_port_or_by_gossip_are_dropped_and_counted()
{
    let cluster = Cluster::start(3);
    cluster.wait_converged(CONVERGE);
    set(&cluster, 0, "registry", "127.0.0.1:1111");
    assert!(wait_for(SPREAD, || all_answer(
        &cluster,
        "registry",
        "127.0.0.1:1111"
    ))
    .is_some());
    let old = encoded(&cluster, 0, "registry");
    set(&cluster, 0, "registry", "127.0.0.1:9999");
    assert!(wait_for(SPREAD, || all_answer(
        &cluster,
        "registry",
        "127.0.0.1:9999"
    ))
    .is_some());
    let current = encoded(&cluster, 0, "registry");
    let mut forged = SignedRecord::decode_verified(&current).unwrap();
    forged.seqnum += 1;
    forged.payload =
        rover_storage::grid::payload::encode(&rover_storage::grid::payload::NamedService {
            addr: Some("10.6.6.6:1".into()),
        });
    let forged = forged.encode();
    let truncated = current[..current.len() / 2].to_vec();
    let held_before = records(&cluster.agents[1], None).len();

    let key = read_key(&cluster.key_file);
    push_records(
        cluster.agents[1].gossip,
        &key,
        vec![old.clone(), forged.clone(), truncated.clone()],
    );
    let counted = wait_for(SPREAD, || {
        let n2 = &cluster.agents[1];
        dropped(n2, "stale") >= 1
            && dropped(n2, "bad_signature") >= 1
            && dropped(n2, "malformed") >= 1
    });
    assert!(
        counted.is_some(),
        "n2 did not count the drops: {}",
        common::grid::counters(&cluster.agents[1])
    );
    let metrics = cluster.agents[1].http_get("/metrics").unwrap();
    assert!(
        metrics.contains("rover_records_dropped_total{reason=\"bad_signature\"} 1"),
        "{metrics}"
    );

    let before = |reason| dropped(&cluster.agents[2], reason);
    let (stale, forged_seen, malformed) = (
        before("stale"),
        before("bad_signature"),
        before("malformed"),
    );
    let intruder = Intruder::join(cluster.agents[2].gossip, &key, "intruder");
    intruder.gossip_records(vec![old, forged, truncated]);
    let counted = wait_for(SPREAD, || {
        let n3 = &cluster.agents[2];
        dropped(n3, "stale") > stale
            && dropped(n3, "bad_signature") > forged_seen
            && dropped(n3, "malformed") > malformed
    });
    drop(intruder);
    assert!(
        counted.is_some(),
        "n3 did not count the gossiped drops: {}",
        common::grid::counters(&cluster.agents[2])
    );

    assert!(all_answer(&cluster, "registry", "127.0.0.1:9999"));
    assert_eq!(records(&cluster.agents[1], None).len(), held_before);
    for agent in &cluster.agents {
        assert!(
            !agent.log().contains("panicked"),
            "{} panicked:\n{}",
            agent.name,
            agent.log()
        );
    }
}

#[test]
fn five_agents_restarted_without_join_or_remembered_members_find_each_other_through_address_records(
) {
    let mut cluster = Cluster::start(5);
    cluster.wait_converged(CONVERGE);
    let recorded = wait_for(SPREAD, || {
        cluster
            .agents
            .iter()
            .all(|a| records(a, Some("addresses")).len() == 5)
    });
    assert!(
        recorded.is_some(),
        "not every agent holds 5 address records"
    );
    for agent in &mut cluster.agents {
        agent.kill();
    }
    for agent in &cluster.agents {
        forget_members(&agent.data_dir);
    }
    for agent in &mut cluster.agents {
        agent.restart();
    }
    let took = cluster.wait_converged(CONVERGE);
    eprintln!("5 agents restarted without --join: one cluster again {took:?} after the last start");
    for agent in &cluster.agents {
        assert!(
            agent
                .log()
                .contains("announcing to the addresses of the stored address records"),
            "{} did not bootstrap from its address records:\n{}",
            agent.name,
            agent.log()
        );
    }
}
