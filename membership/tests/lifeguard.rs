//! Lifeguard in the simulation: a pause shorter than the suspicion is never a failure, a death
//! is declared sooner the more members confirm it, and a node whose probes fail slows down.
//! Each test prints its seeds; `ROVER_SIM_SEED=<seed>` replays one.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use rover_membership::sim::{Heard, LinkSpec, SimNetwork};
use rover_membership::{MemberEvent, Profile};

const SECOND: Duration = Duration::from_secs(1);

fn seeds(default: std::ops::RangeInclusive<u64>) -> Vec<u64> {
    match std::env::var("ROVER_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(seed) => vec![seed],
        None => default.collect(),
    }
}

/// `n` nodes already converged and idle for a few periods.
fn converged(seed: u64, n: usize) -> SimNetwork {
    let mut sim = SimNetwork::new(seed, Profile::Lan);
    sim.add_converged_nodes(n);
    sim.run_for(SECOND * 5);
    assert!(sim.converged(), "{n} nodes not converged (seed {seed})");
    sim
}

fn failures_of(sim: &SimNetwork, from: usize, name: &str) -> usize {
    sim.observed()[from..]
        .iter()
        .filter(|e| matches!(&e.event, MemberEvent::Failed(info) if info.name == name))
        .count()
}

#[test]
fn a_node_paused_for_two_seconds_is_never_declared_down() {
    for n in [5, 20, 50] {
        for seed in seeds(1..=8) {
            let mut sim = converged(seed, n);
            // Pause at a different instant of the probe cycle in every run.
            sim.run_for(Duration::from_millis(137 * seed));
            let victim = (seed as usize * 7) % n;
            let name = sim.name(victim).to_owned();
            let start = sim.observed().len();
            sim.pause(victim);
            sim.run_for(SECOND * 2);
            sim.resume(victim);
            sim.run_for(SECOND * 40);
            let failed = failures_of(&sim, start, &name);
            let rejoined = sim.observed()[start..]
                .iter()
                .filter(|e| matches!(e.event, MemberEvent::Rejoined(_)))
                .count();
            eprintln!("N={n} seed {seed}: {name} paused 2 s: {failed} failed, {rejoined} rejoins");
            assert_eq!(
                (failed, rejoined),
                (0, 0),
                "N={n}: a 2 s pause of {name} was taken for a failure (seed {seed})"
            );
            assert!(
                sim.converged(),
                "N={n}: not converged after the pause (seed {seed})"
            );
        }
    }
}

#[test]
fn a_killed_node_is_declared_down_well_before_an_unconfirmed_suspicion_would_end() {
    for seed in seeds(1..=4) {
        let n = 20;
        let mut sim = converged(seed, n);
        let timeouts = Profile::Lan.suspicion_timeouts(n);
        let victim = 11;
        sim.watch(victim);
        sim.kill(victim);
        let done = sim.run_until(SECOND * 60, SECOND / 20, |sim| {
            sim.heard_by_all_at(victim, Heard::Down).is_some()
        });
        assert!(done.is_some(), "never declared down (seed {seed})");
        let watched = sim.watched(victim).unwrap();
        let suspected = watched.first_suspected_at.unwrap();
        let down = watched.first_down_at.unwrap();
        let all = sim.heard_by_all_at(victim, Heard::Down).unwrap();
        eprintln!(
            "seed {seed}: suspected {suspected:?}, first down {:?} later, all know {:?} later \
             (timeouts {:?} to {:?})",
            down - suspected,
            all - suspected,
            timeouts.min,
            timeouts.max
        );
        // Every survivor's probe of a dead node fails: the confirmations bring the timeout
        // down from max towards min.
        assert!(
            down - suspected < timeouts.min + (timeouts.max - timeouts.min) / 2,
            "first down {:?} after the first suspicion (seed {seed})",
            down - suspected
        );
    }
}

#[test]
fn a_node_whose_probes_all_fail_probes_more_slowly() {
    let seed = seeds(3..=3)[0];
    let mut sim = converged(seed, 10);
    let (slow, healthy) = (4, 6);
    // Nothing reaches node 4 any more (its acks and indirect acks are lost), while what it
    // sends still goes out: every probe of its fails.
    for other in (0..10).filter(|o| *o != slow) {
        sim.set_link_between(
            other,
            slow,
            LinkSpec {
                loss: 1.0,
                ..LinkSpec::default()
            },
        );
    }
    let before = (
        sim.counters(slow).unwrap().probes_sent,
        sim.counters(healthy).unwrap().probes_sent,
    );
    sim.run_for(SECOND * 20);
    let slow_probes = sim.counters(slow).unwrap().probes_sent - before.0;
    let healthy_probes = sim.counters(healthy).unwrap().probes_sent - before.1;
    let health = sim.local_health(slow).unwrap();
    eprintln!(
        "seed {seed}: in 20 s the cut-off node probed {slow_probes} times (health {health}), \
         a healthy one {healthy_probes}"
    );
    assert!(health >= 3, "local health score {health} (seed {seed})");
    assert!(
        slow_probes * 2 < healthy_probes,
        "{slow_probes} probes against {healthy_probes} (seed {seed})"
    );
}
