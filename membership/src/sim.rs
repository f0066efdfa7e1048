//! `SimNetwork`: many [`MembershipCore`]s in one process on a virtual clock.
//!
//! Datagrams and timers are events in one ordered queue; links have loss and delay; nodes can
//! be partitioned, healed, killed and restarted. Every random choice comes from one seed, so a
//! failing run is replayed exactly by its seed (printed in every failure message). After each
//! event the invariants of [`SimNetwork::check_invariants`] are checked, unless a benchmark
//! turns that off ([`SimNetwork::check_invariants_after_each_event`]).
//!
//! A cluster forms either by joining (every node announces to a seed, as in production) or,
//! for large benchmarks, already converged ([`SimNetwork::add_converged_nodes`]). What nodes
//! learn about a node of interest is tracked from their events ([`SimNetwork::watch`]).
//!
//! Nodes get addresses in 127.0.0.0/8; nothing is ever sent on a real network.

mod invariants;
mod operator;
mod pause;
mod watch;

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};

use crate::core::{
    CoreSettings, CoreTimer, MemberEvent, MemberInfo, MemberStatus, MembershipCore, Output,
};
use crate::envelope::ClusterKey;
use crate::identity::NodeIdentity;
use crate::keyring::Keyring;
use crate::member_id::MemberId;
use crate::profile::Tunables;
use crate::timer_queue::TimerQueue;
use watch::Watches;
pub use watch::{Heard, WatchedNode};

/// Index of a node in the simulation.
pub type NodeId = usize;

/// Loss and delay of a link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkSpec {
    /// Probability in [0, 1] that a datagram is lost.
    pub loss: f64,
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Extra uniformly random delay in [0, jitter).
    pub jitter: Duration,
}

impl Default for LinkSpec {
    fn default() -> Self {
        Self {
            loss: 0.0,
            delay: Duration::from_millis(1),
            jitter: Duration::from_millis(1),
        }
    }
}

/// One event observed by a node, with the virtual time it happened.
#[derive(Debug, Clone)]
pub struct ObservedEvent {
    /// Virtual time.
    pub at: Duration,
    /// The node that observed it.
    pub observer: NodeId,
    /// What it observed.
    pub event: MemberEvent,
}

/// Datagram and byte counts over the whole run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Datagrams sent by any node.
    pub packets: u64,
    /// Bytes sent by any node (sealed).
    pub bytes: u64,
    /// Datagrams lost to loss, partitions or dead receivers.
    pub lost: u64,
}

enum SimEvent {
    Deliver {
        to: NodeId,
        packet: Vec<u8>,
    },
    Timer {
        node: NodeId,
        life: u32,
        timer: CoreTimer,
    },
    /// The node learns the roster as members it has always known (see `add_converged_nodes`).
    LearnRoster {
        node: NodeId,
        life: u32,
        roster: Arc<[MemberId]>,
    },
}

struct SimNode {
    name: String,
    addr: SocketAddr,
    core: Option<MembershipCore>,
    /// Bumped at every (re)start so that timers of an earlier life are ignored.
    life: u32,
    last_generation: u64,
    /// While paused (see [`SimNetwork::pause`]): what arrived for it, in order.
    held: Option<Vec<SimEvent>>,
}

/// The simulated network. See the module docs.
pub struct SimNetwork {
    seed: u64,
    rng: StdRng,
    now: Duration,
    tunables: Tunables,
    key: ClusterKey,
    nodes: Vec<SimNode>,
    by_addr: HashMap<SocketAddr, NodeId>,
    queue: TimerQueue<SimEvent>,
    link: LinkSpec,
    link_overrides: HashMap<(NodeId, NodeId), LinkSpec>,
    partition: Option<Vec<u32>>,
    observed: Vec<ObservedEvent>,
    traffic: Traffic,
    keep_events: bool,
    check_each_event: bool,
    watches: Watches,
}

impl SimNetwork {
    /// An empty network whose every random choice derives from `seed`.
    pub fn new(seed: u64, tunables: impl Into<Tunables>) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let key = ClusterKey::generate(&mut rng);
        Self {
            seed,
            rng,
            now: Duration::ZERO,
            tunables: tunables.into(),
            key,
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            queue: TimerQueue::default(),
            link: LinkSpec::default(),
            link_overrides: HashMap::new(),
            partition: None,
            observed: Vec::new(),
            traffic: Traffic::default(),
            keep_events: true,
            check_each_event: true,
            watches: Watches::default(),
        }
    }

    /// The seed this run derives from; print it to replay a failure.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Virtual time elapsed.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Number of nodes ever added.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node was added.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Stop recording observed events (saves memory in very large runs). Watches
    /// ([`Self::watch`]) go on regardless.
    pub fn record_events(&mut self, keep: bool) {
        self.keep_events = keep;
    }

    /// Whether to check the invariants of the node that handled each event (on by default).
    /// The check lists the node's members, O(N) per event; benchmarks of thousands of nodes
    /// turn it off.
    pub fn check_invariants_after_each_event(&mut self, check: bool) {
        self.check_each_event = check;
    }

    /// Adds a running node named `n<index>` with an address in 127.0.0.0/8.
    pub fn add_node(&mut self) -> NodeId {
        let id = self.nodes.len();
        let octets = u32::try_from(id + 1).unwrap_or(u32::MAX).to_be_bytes();
        let addr = SocketAddr::from((Ipv4Addr::new(127, octets[1], octets[2], octets[3]), 7900));
        self.nodes.push(SimNode {
            name: format!("n{id}"),
            addr,
            core: None,
            life: 0,
            last_generation: 0,
            held: None,
        });
        self.by_addr.insert(addr, id);
        self.start(id);
        id
    }

    /// Adds `count` nodes and returns their ids.
    pub fn add_nodes(&mut self, count: usize) -> Vec<NodeId> {
        (0..count).map(|_| self.add_node()).collect()
    }

    /// Adds `count` nodes that form one cluster with the running nodes without joining: each
    /// running node (old and new) learns every other as an alive member it has always known
    /// ([`MembershipCore::handle_known_members`]: nothing is gossiped, no `Up` event is
    /// reported). Each node learns at its own random instant within the next probe period,
    /// so that probe timers do not tick in lockstep; once a probe period has passed the
    /// network is [converged](Self::converged).
    ///
    /// foca looks each member up in a list, so this costs O(N²) per node, O(N³) in all.
    pub fn add_converged_nodes(&mut self, count: usize) -> Vec<NodeId> {
        let added = self.add_nodes(count);
        let roster: Arc<[MemberId]> = self
            .nodes
            .iter()
            .filter_map(|node| node.core.as_ref())
            .map(|core| core.member_id().clone())
            .collect();
        let period = self.tunables.foca_config(roster.len()).probe_period;
        let period_ns = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX).max(1);
        for node in 0..self.nodes.len() {
            if !self.is_running(node) {
                continue;
            }
            let at = self.now + Duration::from_nanos(self.rng.random_range(0..period_ns));
            let event = SimEvent::LearnRoster {
                node,
                life: self.nodes[node].life,
                roster: Arc::clone(&roster),
            };
            self.queue.push(at, event);
        }
        added
    }

    /// Node `id` announces itself to node `seed`.
    pub fn join(&mut self, id: NodeId, seed: NodeId) {
        let seed_addr = self.nodes[seed].addr;
        let now_ms = self.now_ms();
        if let Some(core) = self.nodes[id].core.as_mut() {
            core.handle_join(now_ms, &[seed_addr]);
        }
        self.flush(id);
    }

    /// Node `id` queues a custom broadcast for dissemination.
    pub fn broadcast(&mut self, id: NodeId, item: &crate::broadcast::BroadcastItem) {
        if let Some(core) = self.nodes[id].core.as_mut() {
            if let Err(e) = core.handle_broadcast(item) {
                panic!("broadcast refused: {e} (seed {})", self.seed);
            }
        }
        self.flush(id);
    }

    /// Stops node `id` at once, like kill -9: no goodbye; its pending timers die with it.
    pub fn kill(&mut self, id: NodeId) {
        self.nodes[id].core = None;
        self.nodes[id].held = None;
    }

    /// Node `id` leaves gracefully and stops.
    pub fn leave(&mut self, id: NodeId) {
        let now_ms = self.now_ms();
        if let Some(core) = self.nodes[id].core.as_mut() {
            core.handle_leave(now_ms);
        }
        self.flush(id);
        self.nodes[id].core = None;
    }

    /// Starts a killed node again with a newer generation and the same name and address.
    pub fn restart(&mut self, id: NodeId) {
        self.start(id);
    }

    /// Whether node `id` is running.
    pub fn is_running(&self, id: NodeId) -> bool {
        self.nodes[id].core.is_some()
    }

    /// Splits the network: datagrams only flow between nodes of the same group. Nodes not
    /// listed form one more group.
    pub fn partition(&mut self, groups: &[&[NodeId]]) {
        let rest = u32::try_from(groups.len()).unwrap_or(u32::MAX);
        let mut group_of = vec![rest; self.nodes.len()];
        for (g, members) in groups.iter().enumerate() {
            for id in members.iter() {
                group_of[*id] = u32::try_from(g).unwrap_or(u32::MAX);
            }
        }
        self.partition = Some(group_of);
    }

    /// Removes any partition.
    pub fn heal(&mut self) {
        self.partition = None;
    }

    /// Sets loss and delay for every link without an override.
    pub fn set_link(&mut self, link: LinkSpec) {
        self.link = link;
    }

    /// Sets loss and delay for datagrams from `from` to `to`.
    pub fn set_link_between(&mut self, from: NodeId, to: NodeId, link: LinkSpec) {
        self.link_overrides.insert((from, to), link);
    }

    /// Runs events until `duration` of virtual time has passed.
    pub fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        while self.step_before(end) {}
        self.now = end;
    }

    /// Runs until `done` holds (checked every `check_every`) or `limit` passes; returns the
    /// virtual time it took, or `None` on timeout.
    pub fn run_until(
        &mut self,
        limit: Duration,
        check_every: Duration,
        mut done: impl FnMut(&SimNetwork) -> bool,
    ) -> Option<Duration> {
        let start = self.now;
        while self.now - start < limit {
            if done(self) {
                return Some(self.now - start);
            }
            self.run_for(check_every);
        }
        done(self).then(|| self.now - start)
    }

    /// The member list as node `observer` sees it (empty if it is not running).
    pub fn members_of(&self, observer: NodeId) -> Vec<MemberInfo> {
        self.nodes[observer]
            .core
            .as_ref()
            .map(MembershipCore::members)
            .unwrap_or_default()
    }

    /// The status `observer` gives `subject`, if it knows it.
    pub fn status(&self, observer: NodeId, subject: NodeId) -> Option<MemberStatus> {
        let name = &self.nodes[subject].name;
        self.members_of(observer)
            .into_iter()
            .find(|m| &m.name == name)
            .map(|m| m.status)
    }

    /// Number of nodes running.
    pub fn running_count(&self) -> usize {
        self.nodes.iter().filter(|node| node.core.is_some()).count()
    }

    /// Whether every running node lists every running node as alive and no other node as
    /// alive or suspect. Walks each running node's member list once, without copying it.
    pub fn converged(&self) -> bool {
        let running: HashSet<&str> = self
            .nodes
            .iter()
            .filter(|node| node.core.is_some())
            .map(|node| node.name.as_str())
            .collect();
        self.nodes.iter().all(|node| {
            let Some(core) = node.core.as_ref() else {
                return true;
            };
            let mut alive = 0;
            let all_running = core.alive_member_names().all(|name| {
                alive += 1;
                running.contains(name)
            });
            all_running && alive + 1 == running.len() && core.active_members() + 1 == running.len()
        })
    }

    /// Starts tracking what the nodes report about node `subject` from now on (forgetting
    /// what was tracked before): see [`WatchedNode`].
    pub fn watch(&mut self, subject: NodeId) {
        let name = self.nodes[subject].name.clone();
        self.watches.watch(name);
    }

    /// What the nodes reported about `subject` since [`Self::watch`], if it is watched.
    pub fn watched(&self, subject: NodeId) -> Option<&WatchedNode> {
        self.watches.get(&self.nodes[subject].name)
    }

    /// If every running node other than `subject` last reported `heard` about it (since
    /// [`Self::watch`]), when the last of them did; otherwise `None`. O(N).
    pub fn heard_by_all_at(&self, subject: NodeId, heard: Heard) -> Option<Duration> {
        let watched = self.watched(subject)?;
        let mut last = Duration::ZERO;
        for observer in (0..self.nodes.len()).filter(|o| *o != subject && self.is_running(*o)) {
            match watched.heard.get(&observer) {
                Some((said, at)) if *said == heard => last = last.max(*at),
                _ => return None,
            }
        }
        Some(last)
    }

    /// Events observed so far.
    pub fn observed(&self) -> &[ObservedEvent] {
        &self.observed
    }

    /// Traffic counted so far.
    pub fn traffic(&self) -> Traffic {
        self.traffic
    }

    /// The name of node `id`.
    pub fn name(&self, id: NodeId) -> &str {
        &self.nodes[id].name
    }

    fn now_ms(&self) -> u64 {
        self.now.as_millis() as u64
    }

    fn start(&mut self, id: NodeId) {
        let node = &mut self.nodes[id];
        node.life += 1;
        let generation = node.last_generation + 1_000;
        node.last_generation = generation;
        let settings = CoreSettings {
            identity: NodeIdentity {
                name: node.name.clone(),
                team: "sim".into(),
                addr: node.addr,
                generation,
                tags: Default::default(),
            },
            tunables: self.tunables,
            keyring: Keyring::new(self.key.clone()),
            rng_seed: self.rng.next_u64(),
        };
        node.core = Some(MembershipCore::new(settings));
    }

    /// Handles the next event if it is due before `end`; returns whether it did.
    fn step_before(&mut self, end: Duration) -> bool {
        match self.queue.next_deadline() {
            Some(deadline) if deadline <= end => {}
            _ => return false,
        }
        let Some(deadline) = self.queue.next_deadline() else {
            return false;
        };
        self.now = deadline;
        let Some(event) = self.queue.pop_due(deadline) else {
            return false;
        };
        let now_ms = self.now_ms();
        let target = match &event {
            SimEvent::Deliver { to, .. } => *to,
            SimEvent::Timer { node, .. } | SimEvent::LearnRoster { node, .. } => *node,
        };
        if let Some(held) = self.nodes[target].held.as_mut() {
            held.push(event);
            return true;
        }
        let _span =
            tracing::debug_span!("sim", node = %self.nodes[target].name, t = ?self.now).entered();
        let node = match event {
            SimEvent::Deliver { to, packet } => {
                match self.nodes[to].core.as_mut() {
                    Some(core) => {
                        // Rejected packets are counted by the core; the sim only moves them.
                        let _ = core.handle_packet(now_ms, &packet);
                    }
                    None => self.traffic.lost += 1,
                }
                to
            }
            SimEvent::Timer { node, life, timer } => {
                if self.nodes[node].life == life {
                    if let Some(core) = self.nodes[node].core.as_mut() {
                        core.handle_timer(now_ms, timer);
                    }
                }
                node
            }
            SimEvent::LearnRoster { node, life, roster } => {
                if self.nodes[node].life == life {
                    if let Some(core) = self.nodes[node].core.as_mut() {
                        if let Err(e) = core.handle_known_members(now_ms, roster.iter().cloned()) {
                            panic!(
                                "{} refused the roster: {e} (seed {})",
                                self.nodes[node].name, self.seed
                            );
                        }
                    }
                }
                node
            }
        };
        self.flush(node);
        if self.check_each_event {
            self.check_node_invariants(node);
        }
        true
    }

    fn flush(&mut self, id: NodeId) {
        loop {
            let Some(core) = self.nodes[id].core.as_mut() else {
                return;
            };
            let Some(output) = core.poll_output() else {
                return;
            };
            match output {
                Output::Send { to, packet } => self.send(id, to, packet),
                Output::Schedule { after, timer } => {
                    self.watches.on_schedule(self.now, &timer);
                    let life = self.nodes[id].life;
                    self.queue.push(
                        self.now + after,
                        SimEvent::Timer {
                            node: id,
                            life,
                            timer,
                        },
                    );
                }
                Output::Event(event) => {
                    if let MemberEvent::Rejoined(identity) = &event {
                        self.nodes[id].last_generation = identity.generation;
                    }
                    self.watches.on_event(self.now, id, &event);
                    if self.keep_events {
                        self.observed.push(ObservedEvent {
                            at: self.now,
                            observer: id,
                            event,
                        });
                    }
                }
            }
        }
    }

    fn send(&mut self, from: NodeId, to: SocketAddr, packet: Vec<u8>) {
        self.traffic.packets += 1;
        self.traffic.bytes += packet.len() as u64;
        let Some(&to) = self.by_addr.get(&to) else {
            self.traffic.lost += 1;
            return;
        };
        let cut = self
            .partition
            .as_ref()
            .is_some_and(|groups| groups.get(from) != groups.get(to));
        let link = self
            .link_overrides
            .get(&(from, to))
            .copied()
            .unwrap_or(self.link);
        if cut || self.rng.random_bool(link.loss.clamp(0.0, 1.0)) {
            self.traffic.lost += 1;
            return;
        }
        let jitter = if link.jitter.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_nanos(self.rng.random_range(0..link.jitter.as_nanos() as u64))
        };
        self.queue.push(
            self.now + link.delay + jitter,
            SimEvent::Deliver { to, packet },
        );
    }
}

/// The seed for a simulation test: `ROVER_SIM_SEED` if set, otherwise a fresh random one.
/// Tests print it so any failure can be replayed.
pub fn seed_from_env() -> u64 {
    std::env::var("ROVER_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().next_u64())
}
