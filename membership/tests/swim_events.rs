//! Suspicions, refutations and failed direct probes are reported as membership events, in the
//! simulation. Each test prints its seeds; `ROVER_SIM_SEED=<seed>` replays one.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use rover_membership::core::PROBE_EVENT_EVERY;
use rover_membership::sim::{ObservedEvent, SimNetwork};
use rover_membership::{MemberEvent, Profile};

const SECOND: Duration = Duration::from_secs(1);

fn seeds() -> Vec<u64> {
    match std::env::var("ROVER_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(seed) => vec![seed],
        None => (1..=4).collect(),
    }
}

fn converged(seed: u64, n: usize) -> SimNetwork {
    let mut sim = SimNetwork::new(seed, Profile::Lan);
    sim.record_events(true);
    sim.add_converged_nodes(n);
    sim.run_for(SECOND * 5);
    assert!(sim.converged(), "{n} nodes not converged (seed {seed})");
    sim
}

fn count(events: &[ObservedEvent], what: impl Fn(&MemberEvent) -> bool) -> usize {
    events.iter().filter(|e| what(&e.event)).count()
}

#[test]
fn a_paused_member_is_probed_in_vain_suspected_and_refutes_after_it_resumes() {
    for seed in seeds() {
        let mut sim = converged(seed, 5);
        let victim = 3;
        let name = sim.name(victim).to_owned();
        let start = sim.observed().len();
        sim.pause(victim);
        // Until a member suspects it (the next probe of it fails), then a little longer.
        let suspected = sim.run_until(SECOND * 10, SECOND / 10, |sim| {
            count(
                &sim.observed()[start..],
                |e| matches!(e, MemberEvent::Suspected { name: n, .. } if *n == name),
            ) > 0
        });
        assert!(suspected.is_some(), "seed {seed}: nobody suspected {name}");
        sim.run_for(SECOND / 2);
        sim.resume(victim);
        sim.run_for(SECOND * 10);
        let events = &sim.observed()[start..];
        let probes = count(
            events,
            |e| matches!(e, MemberEvent::ProbeFailed { name: n, .. } if *n == name),
        );
        let suspected = count(
            events,
            |e| matches!(e, MemberEvent::Suspected { name: n, .. } if *n == name),
        );
        let refuted = count(
            events,
            |e| matches!(e, MemberEvent::Refuted { name: n, .. } if *n == name),
        );
        let failed = count(
            events,
            |e| matches!(e, MemberEvent::Failed(info) if info.name == name),
        );
        eprintln!("seed {seed}: {probes} failed probes, {suspected} suspected, {refuted} refuted");
        assert!(
            probes >= 1 && suspected >= 1 && refuted >= 1 && failed == 0,
            "seed {seed}: {probes} failed probes, {suspected} suspected, {refuted} refuted, \
             {failed} failed: {events:#?}"
        );
    }
}

#[test]
fn a_killed_member_s_failed_probes_are_reported_at_most_once_per_interval_per_observer() {
    for seed in seeds() {
        let mut sim = converged(seed, 5);
        let victim = 2;
        let name = sim.name(victim).to_owned();
        let start = sim.observed().len();
        sim.kill(victim);
        sim.run_for(SECOND * 40);
        let events = &sim.observed()[start..];
        assert!(
            count(
                events,
                |e| matches!(e, MemberEvent::Suspected { name: n, .. } if *n == name)
            ) >= 1,
            "seed {seed}: {events:#?}"
        );
        for observer in 0..5 {
            let at: Vec<Duration> = events
                .iter()
                .filter(|e| e.observer == observer)
                .filter(
                    |e| matches!(&e.event, MemberEvent::ProbeFailed { name: n, .. } if *n == name),
                )
                .map(|e| e.at)
                .collect();
            assert!(
                at.windows(2).all(|w| w[1] - w[0] >= PROBE_EVENT_EVERY),
                "seed {seed}: observer {observer} reported failed probes at {at:?}"
            );
        }
    }
}
