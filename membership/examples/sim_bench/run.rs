//! One benchmark run: a converged cluster of N on the lan profile, its idle traffic, then a few
//! nodes joining one after the other (each through a random member), then as many members
//! killed one after the other like kill -9. Each event starts once the previous one is known
//! everywhere and its updates have been sent their last time.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rover_membership::sim::{Heard, NodeId, SimNetwork, Traffic};
use rover_membership::{NodeIdentity, Profile, Tunables};
use thiserror::Error;

/// Periods run after the cluster formed, before measuring, so that the few updates nodes
/// exchanged while they were learning the roster have been sent their last time.
const SETTLE_PERIODS: u32 = 5;
/// Periods run after everyone knows of a join or death, still counted in its traffic: nodes go
/// on sending an update until they sent it `max_transmissions` times.
const DRAIN_PERIODS: u32 = 3;
/// How long a join or a death may take to be known everywhere (beyond the suspicion timeout)
/// before the run is declared failed.
const PATIENCE_PERIODS: u32 = 60;
/// How often (in periods) the run checks whether everyone knows.
const CHECK_EVERY_PERIODS: f64 = 0.05;

/// Why a run gave no figures.
#[derive(Debug, Error)]
pub enum RunError {
    /// The pre-converged start was not converged one probe period later.
    #[error("{n} nodes started converged were not converged after one period (seed {seed})")]
    NotConverged {
        /// Cluster size.
        n: usize,
        /// Simulation seed.
        seed: u64,
    },
    /// Some node never heard of the event within the patience.
    #[error("not every node heard of the {what} within {periods} periods (seed {seed})")]
    NotHeard {
        /// "join" or "death".
        what: &'static str,
        /// The patience.
        periods: f64,
        /// Simulation seed.
        seed: u64,
    },
}

/// Traffic over a window, per node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrafficRate {
    /// Datagrams sent per node per period.
    pub datagrams: f64,
    /// Bytes sent per node per period.
    pub bytes: f64,
    /// Datagrams sent per node in the whole window, beyond the idle rate.
    pub extra_datagrams: f64,
}

/// One join; times in probe periods.
#[derive(Debug, Clone, Copy)]
pub struct JoinFigures {
    /// Join → every member heard the new node is up.
    pub all_know: f64,
    /// Traffic from the join until `DRAIN_PERIODS` after everyone knew.
    pub traffic: TrafficRate,
}

/// One death; times in probe periods since the kill.
#[derive(Debug, Clone, Copy)]
pub struct DeathFigures {
    /// The first node suspected the victim (its own probe failed).
    pub first_suspicion: f64,
    /// The first node declared it down.
    pub first_down: f64,
    /// Every survivor declared it down.
    pub all_know: f64,
    /// Traffic from the kill until `DRAIN_PERIODS` after everyone knew.
    pub traffic: TrafficRate,
}

/// The figures of one run.
#[derive(Debug, Clone)]
pub struct RunFigures {
    /// Simulation seed.
    pub seed: u64,
    /// An identity like the members', for sizing datagrams in theory.
    pub sample_identity: NodeIdentity,
    /// Wall time to build the converged cluster.
    pub bootstrap_wall: Duration,
    /// Wall time of the whole run.
    pub total_wall: Duration,
    /// Traffic while nothing happens.
    pub idle: TrafficRate,
    /// Periods the idle traffic was measured over.
    pub idle_periods: u32,
    /// The joins, in order.
    pub joins: Vec<JoinFigures>,
    /// The deaths, in order.
    pub deaths: Vec<DeathFigures>,
}

/// One run for a cluster of `n` on the lan profile with `events` joins then `events` deaths,
/// every random choice derived from `seed`.
pub fn run_once(n: usize, seed: u64, events: usize) -> Result<RunFigures, RunError> {
    let started = Instant::now();
    let tunables = Tunables::from(Profile::Lan);
    let config = tunables.foca_config(n);
    let period = config.probe_period;
    let mut choices = StdRng::seed_from_u64(seed.rotate_left(17) ^ 0xb5ad_4ece_da1c_e2a9);
    let mut sim = SimNetwork::new(seed, tunables);
    sim.check_invariants_after_each_event(false);
    sim.record_events(false);

    let members = sim.add_converged_nodes(n);
    sim.run_for(period);
    if !sim.converged() {
        return Err(RunError::NotConverged { n, seed });
    }
    let bootstrap_wall = started.elapsed();
    let sample_identity = sample_identity(&sim, members[n / 2]);
    sim.run_for(period * SETTLE_PERIODS);

    // Long enough to include every node's periodic announce once.
    let idle_periods = config
        .periodic_announce
        .as_ref()
        .map(|p| p.frequency.as_secs_f64() / period.as_secs_f64())
        .unwrap_or(0.0)
        .ceil()
        .max(10.0) as u32;
    let before = sim.traffic();
    sim.run_for(period * idle_periods);
    let idle = rate(before, sim.traffic(), n, f64::from(idle_periods), None);

    let mut joins = Vec::with_capacity(events);
    for _ in 0..events {
        let seed_member = members[choices.random_range(0..n)];
        let joiner = sim.add_node();
        sim.watch(joiner);
        let (all_know, traffic) = measure(&mut sim, period, idle, "join", |sim| {
            sim.join(joiner, seed_member);
            (joiner, Heard::Up, PATIENCE_PERIODS)
        })?;
        joins.push(JoinFigures { all_know, traffic });
    }

    let suspicion_periods = config.suspect_to_down_after.as_secs_f64() / period.as_secs_f64();
    let patience = PATIENCE_PERIODS + suspicion_periods.ceil() as u32;
    let mut deaths = Vec::with_capacity(events);
    for _ in 0..events {
        let alive: Vec<NodeId> = members
            .iter()
            .copied()
            .filter(|m| sim.is_running(*m))
            .collect();
        let victim = alive[choices.random_range(0..alive.len())];
        // Kill at a random instant of the probe cycle.
        sim.run_for(period.mul_f64(choices.random_range(0.0..1.0)));
        sim.watch(victim);
        let kill_at = sim.now();
        let (all_know, traffic) = measure(&mut sim, period, idle, "death", |sim| {
            sim.kill(victim);
            (victim, Heard::Down, patience)
        })?;
        let watched = sim.watched(victim);
        let since_kill = |at: Option<Duration>| {
            at.map_or(f64::NAN, |at| {
                (at - kill_at).as_secs_f64() / period.as_secs_f64()
            })
        };
        deaths.push(DeathFigures {
            first_suspicion: since_kill(watched.and_then(|w| w.first_suspected_at)),
            first_down: since_kill(watched.and_then(|w| w.first_down_at)),
            all_know,
            traffic,
        });
    }
    Ok(RunFigures {
        seed,
        sample_identity,
        bootstrap_wall,
        total_wall: started.elapsed(),
        idle,
        idle_periods,
        joins,
        deaths,
    })
}

/// Starts an event with `start` (which says whom to watch for what, and the patience in
/// periods), runs until every running node heard it, then `DRAIN_PERIODS` more. Returns the
/// periods until the last node heard, and the traffic of the whole window.
fn measure(
    sim: &mut SimNetwork,
    period: Duration,
    idle: TrafficRate,
    what: &'static str,
    start: impl FnOnce(&mut SimNetwork) -> (NodeId, Heard, u32),
) -> Result<(f64, TrafficRate), RunError> {
    let started_at = sim.now();
    let before = sim.traffic();
    let (subject, heard, patience) = start(sim);
    let everyone_heard = |sim: &SimNetwork| sim.heard_by_all_at(subject, heard).is_some();
    let not_heard = RunError::NotHeard {
        what,
        periods: f64::from(patience),
        seed: sim.seed(),
    };
    sim.run_until(
        period * patience,
        period.mul_f64(CHECK_EVERY_PERIODS),
        everyone_heard,
    )
    .ok_or(not_heard)?;
    let last_heard = sim
        .heard_by_all_at(subject, heard)
        .unwrap_or_else(|| sim.now());
    let periods = (last_heard - started_at).as_secs_f64() / period.as_secs_f64();
    sim.run_for(period * DRAIN_PERIODS);
    let window = (sim.now() - started_at).as_secs_f64() / period.as_secs_f64();
    let traffic = rate(
        before,
        sim.traffic(),
        sim.running_count(),
        window,
        Some(idle),
    );
    Ok((periods, traffic))
}

/// Per-node rates between two traffic counts `periods` apart; with `idle`, also the datagrams
/// sent beyond it.
fn rate(
    before: Traffic,
    after: Traffic,
    nodes: usize,
    periods: f64,
    idle: Option<TrafficRate>,
) -> TrafficRate {
    let per_node = |count: u64| count as f64 / nodes.max(1) as f64;
    let datagrams = per_node(after.packets - before.packets);
    TrafficRate {
        datagrams: datagrams / periods,
        bytes: per_node(after.bytes - before.bytes) / periods,
        extra_datagrams: idle.map_or(0.0, |idle| datagrams - idle.datagrams * periods),
    }
}

/// The identity node `id` is known by, as another member lists it.
fn sample_identity(sim: &SimNetwork, id: NodeId) -> NodeIdentity {
    let observer = usize::from(id == 0);
    let name = sim.name(id);
    sim.members_of(observer)
        .into_iter()
        .find(|m| m.name == name)
        .map(|m| NodeIdentity {
            name: m.name,
            team: m.team,
            addr: m.addr,
            generation: m.generation,
            tags: Default::default(),
        })
        .unwrap_or_else(|| NodeIdentity {
            name: name.to_owned(),
            team: String::new(),
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], 7900)),
            generation: 0,
            tags: Default::default(),
        })
}
