//! The sans-IO membership core: foca, the keyring and our own bookkeeping, with no sockets and
//! no clock.
//!
//! Every input is a `handle_*` call that carries the current time (milliseconds on whatever
//! clock the driver uses); every effect is an [`Output`] the driver drains with
//! [`MembershipCore::poll_output`]: a sealed datagram to send, a timer to schedule, or a
//! [`MemberEvent`]. Randomness comes from the seed given at construction, so a simulation that
//! replays the same inputs gets the same outputs.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use foca::{AccumulatingRuntime, Foca, OwnedNotification, State};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::broadcast::{BroadcastInbox, BroadcastItem, Topic};
use crate::codec::WireCodec;
use crate::error::{BroadcastError, PacketError};
use crate::identity::NodeIdentity;
use crate::keyring::Keyring;
pub use crate::member::{MemberEvent, MemberInfo, MemberStatus};
use crate::member_id::MemberId;
use crate::peek::peek;
use crate::profile::Tunables;
use crate::replay::{self, ReplayGuard};
use crate::stale_suspicion::StaleSuspicions;

mod dissemination;
pub use dissemination::EAGER_GOSSIP_DELAY;
mod known_members;
mod lifeguard;
mod member_views;
mod name_conflict;
mod operator;
mod suspicion_timers;
mod swim_events;
pub use swim_events::PROBE_EVENT_EVERY;

/// Re-announce to seeds this soon after going idle, then back off up to [`REANNOUNCE_MAX`].
pub const REANNOUNCE_FIRST: Duration = Duration::from_secs(1);
/// The longest wait between two re-announcements while idle.
pub const REANNOUNCE_MAX: Duration = Duration::from_secs(30);

type SwimTimer = foca::Timer<MemberId>;
type SwimFoca = Foca<MemberId, WireCodec, StdRng, BroadcastInbox>;

/// A timer the driver must hand back through [`MembershipCore::handle_timer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreTimer {
    /// One of foca's protocol timers.
    Swim(SwimTimer),
    /// Re-announce to the known seeds if we are still alone.
    Reannounce,
    /// Look for suspicions nobody settled (see [`crate::stale_suspicion`]).
    SuspicionSweep,
    /// A suspicion's time may have run out (see [`crate::suspicion`]).
    SuspicionDeadline,
    /// Gossip news now rather than at the next periodic round.
    EagerGossip,
}

/// What the core asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send this sealed datagram.
    Send {
        /// Destination gossip address.
        to: SocketAddr,
        /// Sealed bytes.
        packet: Vec<u8>,
    },
    /// Call `handle_timer(timer)` after this long.
    Schedule {
        /// Delay from now.
        after: Duration,
        /// The timer to hand back.
        timer: CoreTimer,
    },
    /// Something happened to the cluster.
    Event(MemberEvent),
}

/// Traffic and drop counters, for `info` and `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Datagrams handed to `handle_packet`.
    pub packets_in: u64,
    /// Bytes handed to `handle_packet`.
    pub bytes_in: u64,
    /// Sealed datagrams produced.
    pub packets_out: u64,
    /// Sealed bytes produced.
    pub bytes_out: u64,
    /// Datagrams that failed to open (wrong key, forged, garbage); never parsed.
    pub dropped_unsealed: u64,
    /// Datagrams in an envelope version this build does not speak (an older or newer agent).
    pub dropped_version: u64,
    /// Datagrams that opened but were already seen inside the replay window.
    pub dropped_replayed: u64,
    /// Datagrams that opened but were sent outside the replay window (clock skew or replay).
    pub dropped_stale: u64,
    /// Datagrams that opened but foca rejected.
    pub dropped_rejected: u64,
    /// Stray "you are down" messages foca wanted to send to a member that had refuted.
    pub suppressed_turn_undead: u64,
    /// Custom broadcasts still being retransmitted (a gauge, not a counter).
    pub broadcast_backlog: u64,
    /// Probes this node started (pings).
    #[serde(default)]
    pub probes_sent: u64,
    /// Probes of ours that got no ack, direct or indirect (each raised or confirmed a
    /// suspicion).
    #[serde(default)]
    pub probes_failed: u64,
    /// Datagrams from, or gossip about, another agent using our node name.
    #[serde(default)]
    pub name_conflicts: u64,
    /// The address of the last agent seen using our node name.
    #[serde(default)]
    pub name_conflict_with: Option<SocketAddr>,
    /// When (the driver's ms) that agent was last seen using our name.
    #[serde(default)]
    pub name_conflict_at_ms: u64,
    /// Datagrams from agents of another team that hold our key (a team is one cluster).
    #[serde(default)]
    pub dropped_other_team: u64,
}

/// Everything the core needs at construction.
#[derive(Debug, Clone)]
pub struct CoreSettings {
    /// Our identity.
    pub identity: NodeIdentity,
    /// SWIM timings and knobs.
    pub tunables: Tunables,
    /// Keys to seal and open with.
    pub keyring: Keyring,
    /// Seed for every random choice the core makes (probe order, nonces).
    pub rng_seed: u64,
}

/// The membership state machine. See the module docs.
pub struct MembershipCore {
    foca: SwimFoca,
    runtime: AccumulatingRuntime<MemberId>,
    news: mpsc::Receiver<BroadcastItem>,
    keyring: Keyring,
    replay: ReplayGuard,
    nonce_rng: StdRng,
    tunables: Tunables,
    sized_for: usize,
    seeds: BTreeSet<SocketAddr>,
    left_notices: HashMap<String, u64>,
    /// When each member's status last changed here; members learnt in bulk
    /// ([`Self::handle_known_members`]) have no entry and use `roster_since_ms`.
    status_since: HashMap<String, u64>,
    roster_since_ms: Option<u64>,
    reannounce_armed: bool,
    reannounce_delay: Duration,
    refuted_suspect: Option<MemberId>,
    stale_suspicions: StaleSuspicions,
    name_conflicts: name_conflict::NameConflicts,
    /// Addresses of other teams' agents already warned about (bounded).
    other_teams_told: std::collections::HashSet<SocketAddr>,
    sweep_armed: bool,
    lifeguard: lifeguard::Lifeguard,
    probe_events: swim_events::ProbeEvents,
    eager: dissemination::EagerGossip,
    has_left: bool,
    now_ms: u64,
    out: VecDeque<Output>,
    counters: Counters,
}

impl MembershipCore {
    /// A core that knows nobody yet; call [`Self::handle_join`] to meet a seed.
    pub fn new(settings: CoreSettings) -> Self {
        let (inbox, news) = BroadcastInbox::new();
        let codec = WireCodec::new(settings.identity.name.clone());
        let foca = Foca::with_custom_broadcast(
            MemberId::from(&settings.identity),
            settings.tunables.foca_config(1),
            StdRng::seed_from_u64(settings.rng_seed),
            codec,
            inbox,
        );
        Self {
            foca,
            runtime: AccumulatingRuntime::new(),
            news,
            keyring: settings.keyring,
            replay: ReplayGuard::new(settings.tunables.replay_window, replay::DEFAULT_CAPACITY),
            nonce_rng: StdRng::seed_from_u64(settings.rng_seed ^ 0x5eed_5eed_5eed_5eed),
            tunables: settings.tunables,
            sized_for: 1,
            seeds: BTreeSet::new(),
            left_notices: HashMap::new(),
            status_since: HashMap::new(),
            roster_since_ms: None,
            reannounce_armed: false,
            reannounce_delay: REANNOUNCE_FIRST,
            refuted_suspect: None,
            stale_suspicions: StaleSuspicions::default(),
            name_conflicts: name_conflict::NameConflicts::new(settings.identity.generation),
            other_teams_told: Default::default(),
            sweep_armed: false,
            lifeguard: lifeguard::Lifeguard::new(&settings.identity.name),
            probe_events: swim_events::ProbeEvents::default(),
            eager: dissemination::EagerGossip::default(),
            has_left: false,
            now_ms: 0,
            out: VecDeque::new(),
            counters: Counters::default(),
        }
    }

    /// Our current identity (its generation changes when we rejoin).
    pub fn identity(&self) -> NodeIdentity {
        self.foca.identity().to_identity()
    }

    /// Our current identity in the compact form foca keeps (cheap to clone and share).
    pub fn member_id(&self) -> &MemberId {
        self.foca.identity()
    }

    /// The next thing the driver must do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Traffic and drop counters.
    pub fn counters(&self) -> Counters {
        Counters {
            broadcast_backlog: self.foca.custom_broadcast_backlog() as u64,
            ..self.counters
        }
    }

    /// The keyring in use.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Replaces the keyring (after an install, use or remove).
    pub fn set_keyring(&mut self, keyring: Keyring) {
        self.keyring = keyring;
    }

    /// The seeds we announce to when alone.
    pub fn seeds(&self) -> impl Iterator<Item = &SocketAddr> {
        self.seeds.iter()
    }

    /// Number of members other than us that are alive or suspect.
    pub fn active_members(&self) -> usize {
        self.foca.num_members()
    }

    /// Whether this node has left the cluster on purpose.
    pub fn has_left(&self) -> bool {
        self.has_left
    }

    /// A datagram arrived. Packets that do not open, or that opened but were sent outside the
    /// replay window or already seen inside it, are dropped and counted, never parsed.
    pub fn handle_packet(&mut self, now_ms: u64, packet: &[u8]) -> Result<(), PacketError> {
        self.now_ms = now_ms;
        self.counters.packets_in += 1;
        self.counters.bytes_in += packet.len() as u64;
        let opened = match self.keyring.open(packet) {
            Ok(opened) => opened,
            Err(e @ crate::error::OpenError::UnknownVersion(_)) => {
                self.counters.dropped_version += 1;
                return Err(e.into());
            }
            Err(e) => {
                self.counters.dropped_unsealed += 1;
                return Err(e.into());
            }
        };
        match self.replay.admit(now_ms, opened.sent_ms, &opened.nonce) {
            Ok(()) => {}
            Err(replay::Refusal::Replayed) => {
                self.counters.dropped_replayed += 1;
                return Err(PacketError::Replayed);
            }
            Err(replay::Refusal::Stale { skew_ms }) => {
                self.counters.dropped_stale += 1;
                return Err(PacketError::Stale { skew_ms });
            }
        }
        self.screen_names(&opened.plaintext)?;
        let sized = match peek(&opened.plaintext) {
            Some(peeked) if peeked.src.team != self.foca.identity().team() => {
                self.counters.dropped_other_team += 1;
                let (team, addr) = (peeked.src.team.to_owned(), peeked.src.addr);
                if self.other_teams_told.len() < 1024 && self.other_teams_told.insert(addr) {
                    tracing::warn!(%addr, %team, ours = %self.foca.identity().team(),
                        "refused an agent of another team that holds our cluster key: a team is one cluster (link teams with [[team.link]])");
                }
                return Err(PacketError::OtherTeam { team, addr });
            }
            Some(peeked) => {
                self.observe_incoming(&peeked);
                self.size_for_packet(peeked.updates)
            }
            None => false,
        };
        let result = self.foca.handle_data(&opened.plaintext, &mut self.runtime);
        self.drain();
        if sized {
            self.unsize_after_packet();
        }
        result.map_err(|e| {
            self.counters.dropped_rejected += 1;
            PacketError::Rejected(e.to_string())
        })
    }

    /// A timer scheduled through [`Output::Schedule`] is due.
    pub fn handle_timer(&mut self, now_ms: u64, timer: CoreTimer) {
        self.now_ms = now_ms;
        match timer {
            CoreTimer::Swim(timer) => {
                let suspect = match &timer {
                    foca::Timer::ChangeSuspectToDown { member_id, .. } => Some(member_id.clone()),
                    _ => None,
                };
                self.note_direct_probe(&timer);
                if let Err(e) = self.foca.handle_timer(timer, &mut self.runtime) {
                    tracing::debug!(error = %e, "foca timer failed");
                }
                // foca 2.0.0 sends TurnUndead from this timer even when the suspect refuted in
                // time (its condition check fails but the message still goes out), which makes
                // a healthy member believe it is down and rejoin. Drop that stray message.
                self.refuted_suspect = suspect.filter(|id| self.is_active(id));
            }
            CoreTimer::Reannounce => self.reannounce(),
            CoreTimer::SuspicionSweep => self.sweep_suspicions(),
            CoreTimer::SuspicionDeadline => self.on_suspicion_deadline(),
            CoreTimer::EagerGossip => self.eager_gossip(),
        }
        self.drain();
    }

    /// Announce ourselves to `seeds` and remember them for re-announcing when alone.
    pub fn handle_join(&mut self, now_ms: u64, seeds: &[SocketAddr]) {
        self.now_ms = now_ms;
        let own = self.foca.identity().socket_addr();
        for seed in seeds.iter().filter(|s| **s != own) {
            self.seeds.insert(*seed);
            if let Err(e) = self.foca.announce(MemberId::seed(*seed), &mut self.runtime) {
                tracing::debug!(%seed, error = %e, "announce failed");
            }
        }
        self.arm_reannounce();
        self.drain();
    }

    /// Leave on purpose: tell the cluster this is a leave, not a failure, then go quiet.
    pub fn handle_leave(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        // Say goodbye to every active member directly rather than to a few: the leave notice
        // has no other way to reach a member the epidemic happens to miss, and we stop talking
        // right after. (This config is never used again.)
        let mut farewell = self.tunables.foca_config(self.sized_for);
        farewell.num_indirect_probes = std::num::NonZeroUsize::new(self.foca.num_members().max(1))
            .unwrap_or(std::num::NonZeroUsize::MIN);
        farewell.max_transmissions = std::num::NonZeroU8::MAX;
        if let Err(e) = self.foca.set_config(farewell) {
            tracing::debug!(error = %e, "farewell config refused");
        }
        let me = self.foca.identity();
        let notice = BroadcastItem {
            topic: Topic::Leave,
            key: me.name().to_owned(),
            version: me.generation(),
            payload: Vec::new(),
        };
        if let Err(e) = self.foca.add_broadcast(&notice.encode()) {
            tracing::debug!(error = %e, "leave notice not queued");
        }
        self.has_left = true;
        if let Err(e) = self.foca.leave_cluster(&mut self.runtime) {
            tracing::debug!(error = %e, "leave failed");
        }
        self.drain();
    }

    /// Queue a custom broadcast for dissemination (and count it as seen by us).
    pub fn handle_broadcast(&mut self, item: &BroadcastItem) -> Result<bool, BroadcastError> {
        let bytes = item.encode();
        let max_packet = self
            .tunables
            .foca_config(self.sized_for)
            .max_packet_size
            .get();
        if bytes.len() > crate::broadcast::item_capacity(max_packet, self.longest_identity()) {
            return Err(BroadcastError::TooBig(bytes.len()));
        }
        let queued = self
            .foca
            .add_broadcast(&bytes)
            .map_err(|e| BroadcastError::Refused(e.to_string()))?;
        // Our own item is news to the inbox too; it is not an event for us.
        while self.news.try_recv().is_ok() {}
        if queued && bytes.len() > max_packet / 2 {
            // Too big to ride beside pending member updates: send it now in messages of its own
            // (gossip carries it further whenever a datagram has room).
            if let Err(e) = self.foca.broadcast(&mut self.runtime) {
                tracing::debug!(error = %e, "sending a big broadcast failed");
            }
            self.drain();
        }
        Ok(queued)
    }

    fn reannounce(&mut self) {
        self.reannounce_armed = false;
        if self.has_left || self.foca.num_members() > 0 {
            self.reannounce_delay = REANNOUNCE_FIRST;
            return;
        }
        let seeds: Vec<SocketAddr> = self.seeds.iter().copied().collect();
        for seed in seeds {
            if let Err(e) = self.foca.announce(MemberId::seed(seed), &mut self.runtime) {
                tracing::debug!(%seed, error = %e, "re-announce failed");
            }
        }
        self.arm_reannounce();
        self.reannounce_delay = (self.reannounce_delay * 2).min(REANNOUNCE_MAX);
    }

    fn arm_reannounce(&mut self) {
        if !self.reannounce_armed && !self.seeds.is_empty() && !self.has_left {
            self.reannounce_armed = true;
            self.out.push_back(Output::Schedule {
                after: self.reannounce_delay,
                timer: CoreTimer::Reannounce,
            });
        }
    }

    /// Moves everything foca produced into our output queue, seals packets and turns
    /// notifications into events. Broadcast news goes first so that a leave notice that
    /// arrived in the same packet as the member's "down" is known before we report it.
    fn drain(&mut self) {
        while let Ok(item) = self.news.try_recv() {
            self.on_broadcast(item);
        }
        while let Some(notification) = self.runtime.to_notify() {
            self.on_notification(notification);
        }
        self.note_refutations();
        let refuted = self.refuted_suspect.take();
        while let Some((to, data)) = self.runtime.to_send() {
            let peeked = peek(&data);
            let turn_undead = peeked
                .as_ref()
                .is_some_and(|p| matches!(p.message, foca::Message::TurnUndead));
            if turn_undead && refuted.as_ref().is_some_and(|id| *id == to) {
                self.counters.suppressed_turn_undead += 1;
                continue;
            }
            if let Some(peeked) = &peeked {
                if self.holds_back(&peeked.message) {
                    continue;
                }
                self.observe_outgoing(peeked);
            }
            self.send_sealed(to.socket_addr(), &data);
        }
        while let Some((after, timer)) = self.runtime.to_schedule() {
            if let foca::Timer::ChangeSuspectToDown {
                member_id,
                incarnation,
                ..
            } = &timer
            {
                self.on_own_probe_failed(member_id, *incarnation);
            }
            self.out.push_back(Output::Schedule {
                after: self.probe_delay(&timer, after),
                timer: CoreTimer::Swim(timer),
            });
        }
    }

    /// Seals `plaintext` and queues it for `to`.
    fn send_sealed(&mut self, to: SocketAddr, plaintext: &[u8]) {
        let packet = self
            .keyring
            .seal(self.now_ms, plaintext, &mut self.nonce_rng);
        self.counters.packets_out += 1;
        self.counters.bytes_out += packet.len() as u64;
        self.out.push_back(Output::Send { to, packet });
    }

    fn on_broadcast(&mut self, item: BroadcastItem) {
        match item.topic {
            Topic::Leave => {}
            Topic::Suspicion => return self.on_report(&item),
            _ => {
                self.out
                    .push_back(Output::Event(MemberEvent::Broadcast(item)));
                return;
            }
        }
        self.left_notices.insert(item.key.clone(), item.version);
        // A notice that arrives after the member was already reported failed turns it to left.
        let already_down = self
            .member_named(&item.key)
            .filter(|m| m.id().generation() == item.version && m.state() == State::Down)
            .map(|m| m.id().clone());
        if let Some(id) = already_down {
            self.status_since.insert(id.name().to_owned(), self.now_ms);
            let info = self.known(&id);
            self.out.push_back(Output::Event(MemberEvent::Left(info)));
        }
    }

    fn on_notification(&mut self, notification: OwnedNotification<MemberId>) {
        let event = match notification {
            OwnedNotification::MemberUp(id) => {
                self.status_since.insert(id.name().to_owned(), self.now_ms);
                self.resize();
                self.arm_eager_gossip();
                self.greet(&id);
                MemberEvent::Up(self.known(&id))
            }
            OwnedNotification::MemberDown(id) => {
                self.status_since.insert(id.name().to_owned(), self.now_ms);
                self.arm_eager_gossip();
                let info = self.known(&id);
                if info.status == MemberStatus::Left {
                    MemberEvent::Left(info)
                } else {
                    MemberEvent::Failed(info)
                }
            }
            OwnedNotification::Rename(from, to) => MemberEvent::Renamed {
                from: from.to_identity(),
                to: to.to_identity(),
            },
            OwnedNotification::Active => {
                self.reannounce_delay = REANNOUNCE_FIRST;
                self.arm_suspicion_sweep();
                MemberEvent::Active
            }
            OwnedNotification::Idle => {
                self.arm_reannounce();
                MemberEvent::Idle
            }
            OwnedNotification::Rejoin(id) => MemberEvent::Rejoined(id.to_identity()),
            OwnedNotification::Defunct => {
                // Leaving makes foca defunct on purpose; otherwise our identity always renews,
                // so say so if it happens.
                if !self.has_left {
                    tracing::warn!("membership core became defunct");
                }
                return;
            }
        };
        self.out.push_back(Output::Event(event));
    }

    /// Re-derives foca's size-dependent settings (suspicion timeout, retransmissions) when the
    /// cluster has grown past the size they were computed for.
    fn resize(&mut self) {
        let size = self.foca.num_members() + 1;
        if size <= self.sized_for {
            return;
        }
        let config = self.tunables.foca_config(size);
        if self.foca.set_config(config).is_ok() {
            self.sized_for = size;
        }
    }
}
