//! A short pause of one agent (SIGSTOP for 2 s, as a long GC pause, a VM migration or a
//! swapped-out process would cause) is not a failure: real agents on 127.0.0.1, default `lan`
//! timings, where the Lifeguard suspicion minimum is 2 s.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{wait_for, Cluster};

/// The pause, shorter than any suspicion timeout once the suspect is told at once.
const PAUSE: Duration = Duration::from_secs(2);
/// How long after SIGCONT the others are watched: past the longest (unconfirmed) suspicion
/// timeout of a 5-agent cluster, 12 s.
const WATCH_AFTER: Duration = Duration::from_secs(15);

fn generation_at(cluster: &Cluster, observer: usize, name: &str) -> Option<u64> {
    cluster.agents[observer]
        .members()
        .into_iter()
        .find(|m| m.name == name)
        .map(|m| m.generation)
}

#[test]
fn an_agent_stopped_for_two_seconds_is_never_listed_failed_and_keeps_its_generation() {
    let cluster = Cluster::start(5);
    cluster.wait_converged(Duration::from_secs(30));
    for victim in [3, 1] {
        let name = cluster.agents[victim].name.clone();
        let others = cluster.others(victim);
        let before = generation_at(&cluster, others[0], &name).unwrap();
        let mut failed_seen = Vec::new();
        let mut watch = |cluster: &Cluster| {
            for i in &others {
                if cluster.agents[*i].status_of(&name).as_deref() == Some("failed") {
                    failed_seen.push(cluster.agents[*i].name.clone());
                }
            }
        };
        cluster.agents[victim].signal("STOP");
        let stopped = Instant::now();
        // The pause is the stimulus: the others are watched all along it.
        while stopped.elapsed() < PAUSE {
            watch(&cluster);
        }
        cluster.agents[victim].signal("CONT");
        let resumed = Instant::now();
        while resumed.elapsed() < WATCH_AFTER {
            watch(&cluster);
        }
        let alive = wait_for(Duration::from_secs(30), || {
            cluster.all_list_alive(&(0..5).collect::<Vec<_>>(), 5)
        });
        let after = generation_at(&cluster, others[0], &name).unwrap();
        eprintln!(
            "{name} stopped {:?}: listed failed by {failed_seen:?}, generation {before} -> {after}",
            PAUSE
        );
        assert!(
            failed_seen.is_empty(),
            "{name} was listed failed by {failed_seen:?} after a {PAUSE:?} stop\n{}",
            cluster.agents[others[0]].log()
        );
        assert_eq!(after, before, "{name} had to rejoin after a {PAUSE:?} stop");
        assert!(alive.is_some(), "the cluster did not settle after SIGCONT");
    }
}
