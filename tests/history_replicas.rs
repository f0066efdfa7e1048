//! `history.replicas`: a host's full history is kept only by its replicas (rendezvous hashing
//! over the members), every agent keeps every host's last sample, and `history --host H` on
//! any agent shows H's samples by asking a replica over the cluster port.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{wait_for, Cluster};
use rover_agent::api::HistoryResponse;
use rover_agent::history_replicas::replicas;

fn history_of(cluster: &Cluster, at: usize, host: &str) -> Option<HistoryResponse> {
    let out = cluster.agents[at].cli(&["history", "--host", host, "--format", "json"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

fn samples(history: &HistoryResponse) -> usize {
    history
        .entries
        .iter()
        .filter(|e| e.event.sample().is_some())
        .count()
}

#[test]
fn a_host_s_samples_live_on_its_replica_and_any_agent_shows_them_by_asking_it() {
    let mut cluster = Cluster::new();
    cluster.config_for = Some(Box::new(|_| {
        "[status]\ninterval = \"1s\"\nfull_every = \"1s\"\n[history]\nreplicas = 1\n".to_owned()
    }));
    for _ in 0..4 {
        cluster.add_agent();
    }
    cluster.wait_converged(Duration::from_secs(30));
    let names: Vec<String> = cluster.agents.iter().map(|a| a.name.clone()).collect();
    let host = names[0].clone();
    let replica = replicas(&host, names.iter().map(String::as_str), 1)
        .pop()
        .unwrap();
    let replica_at = names.iter().position(|n| *n == replica).unwrap();
    // An agent that is neither the host nor its replica.
    let asker = (1..4).find(|i| *i != replica_at).unwrap();

    let shown = wait_for(Duration::from_secs(30), || {
        history_of(&cluster, asker, &host).is_some_and(|h| samples(&h) >= 5)
    });
    let answer = history_of(&cluster, asker, &host).unwrap();
    eprintln!(
        "{} shows {host}'s history from {:?}: {} samples",
        names[asker],
        answer.sources,
        samples(&answer)
    );
    assert!(
        shown.is_some(),
        "{} never showed {host}'s samples",
        names[asker]
    );
    if replica != host {
        assert_eq!(answer.sources, vec![replica.clone()], "asked the replica");
    }
    assert!(
        answer.last_heard_ms.is_some(),
        "every agent keeps the last sample"
    );

    // With the replica (and the host, which keeps its own) gone, the asker has nothing but
    // the host's last sample and its membership events: it never stored the samples.
    let mut gone = vec![replica_at];
    if replica_at != 0 {
        gone.push(0);
    }
    for i in &gone {
        cluster.agents[*i].kill();
    }
    let left = history_of(&cluster, asker, &host).unwrap();
    eprintln!(
        "with {gone:?} killed: sources {:?}, unanswered {:?}, {} samples",
        left.sources,
        left.unanswered,
        samples(&left)
    );
    assert_eq!(samples(&left), 0, "the asker kept none of {host}'s samples");
    assert!(left.last_sample.is_some(), "but it kept the last one");
}
