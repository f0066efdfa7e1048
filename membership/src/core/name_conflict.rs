//! Another agent using our node name. foca keys members by name, so two agents of one name
//! cannot both be members: foca silently drops what the other sends ("data from ourselves"),
//! and a third member takes the one of the newer generation for a restart of the other. We
//! make that loud on both sides instead, and the agent that started first keeps its name.
//!
//! Evidence, read from each datagram we open, before foca sees it:
//! - a datagram whose sender has our name and another address: the other holder talks to us
//!   (it announces to us when it joins through us; or it sends a notice, below);
//! - gossip about a member with our name, another address and a newer generation: another
//!   agent of our name started after us elsewhere in the cluster, and third members take it for
//!   us. (An older generation is no evidence: it may be our own previous run elsewhere.)
//! - at a third member, a datagram from an older generation of a name that a newer one holds at
//!   another address: a restarted agent's previous run cannot send, so both are alive. The
//!   datagram is refused and both are told about the other.
//!
//! Each holder is logged at ERROR with its address (at most once a minute per address) and
//! counted ([`super::Counters::name_conflicts`], with the last address, for `join` to answer).
//! We answer an announce, and evidence from third members, with one notice straight to the
//! other holder (a header-only Ack from us, at most once a second per address) that says when
//! we started; a notice itself is answered at most once a minute, so two holders cannot keep
//! each other busy. Knowing both starts, each side judges alike ([`claims::verdict`]): the one
//! that started first keeps the name (announcing itself above the other's generation if third
//! members know the other), the other says at ERROR that it is the duplicate and stands back:
//! it refuses every datagram and sends only announces, so the cluster refuses it as it would
//! refuse a newcomer, until it has heard nothing from the holder for a minute.

mod claims;

use std::net::SocketAddr;

use foca::{Codec, Header, Member, Message, PostcardCodec, State};

use super::{MembershipCore, Output};
use crate::error::PacketError;
use crate::identity::NodeIdentity;
use crate::member::MemberEvent;
use crate::member_id::MemberId;
use crate::peek::PeekedId;
pub(super) use claims::Claims as NameConflicts;
use claims::{due, recent, verdict, Verdict};

/// Log a conflicting holder again after this long.
const LOG_EVERY_MS: u64 = 60_000;
/// Send a holder a notice at most this often.
const NOTICE_EVERY_MS: u64 = 1_000;
/// Answer a holder's own notice with ours at most this often.
const ANSWER_EVERY_MS: u64 = 60_000;
/// The duplicate stands back this long after the last word of the holder.
const STAND_BACK_MS: u64 = 60_000;

/// The notice's Ack number: from the holder itself (its header's `dst` generation is the
/// generation the holder started with).
const NOTICE_OWN: u8 = 0;
/// The notice's Ack number: from a third member that knows the holder as active.
const NOTICE_RELAYED: u8 = 1;
/// The notice's Ack number: from a third member that knows the holder as down.
const NOTICE_RELAYED_DOWN: u8 = 2;

/// How we heard of another holder of our name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Heard {
    /// It announced to us.
    Announce,
    /// Its own notice, saying when it started.
    Notice {
        /// The generation it started with.
        since: u64,
    },
    /// A third member's notice.
    Relayed {
        /// Whether the third member knows it as down.
        down: bool,
    },
    /// Gossip about it (the datagram still goes to foca).
    Gossip {
        /// Whether the gossip says it is down.
        down: bool,
    },
    /// Some other datagram from it.
    Other,
}

/// What one datagram says about node names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Evidence {
    /// Another agent claims our name.
    Holder {
        /// The other agent, as claimed.
        holder: NodeIdentity,
        /// How we heard.
        heard: Heard,
    },
    /// Two other agents claim one name: this datagram comes from `older`, while we know
    /// `newer` (a newer generation at another address). The datagram is refused.
    Between {
        /// The sender.
        older: NodeIdentity,
        /// The member we know of the same name.
        newer: NodeIdentity,
        /// Whether we know `newer` as down.
        newer_down: bool,
    },
}

/// What we know of a member: address, generation, and whether it is down.
pub(super) type Known = (SocketAddr, u64, bool);

/// Finds evidence in an opened datagram (read in place, nothing copied unless there is
/// evidence); `known` looks up the member we know by a name.
pub(super) fn evidence(
    me: &MemberId,
    plaintext: &[u8],
    known: impl Fn(&str) -> Option<Known>,
) -> Option<Evidence> {
    let (header, mut rest) = postcard::take_from_bytes::<Header<PeekedId<'_>>>(plaintext).ok()?;
    if header.src.name == me.name() && header.src.addr != me.socket_addr() {
        let heard = match header.message {
            Message::Announce => Heard::Announce,
            Message::Ack(kind) if header.dst.name == header.src.name => match kind {
                NOTICE_RELAYED => Heard::Relayed { down: false },
                NOTICE_RELAYED_DOWN => Heard::Relayed { down: true },
                _ => Heard::Notice {
                    since: header.dst.generation,
                },
            },
            _ => Heard::Other,
        };
        return Some(Evidence::Holder {
            holder: header.src.to_identity(),
            heard,
        });
    }
    if let Some((addr, generation, down)) = known(header.src.name)
        .filter(|(addr, gen, _)| *addr != header.src.addr && *gen > header.src.generation)
    {
        let older = header.src.to_identity();
        let newer = NodeIdentity {
            addr,
            generation,
            ..older.clone()
        };
        return Some(Evidence::Between {
            older,
            newer,
            newer_down: down,
        });
    }
    if matches!(header.message, Message::Broadcast) || rest.len() < 2 {
        return None;
    }
    let count = u16::from_be_bytes([rest[0], rest[1]]);
    rest = &rest[2..];
    for _ in 0..count {
        let (member, after) = postcard::take_from_bytes::<Member<PeekedId<'_>>>(rest).ok()?;
        rest = after;
        let id = member.id();
        if id.name == me.name() && id.addr != me.socket_addr() && id.generation > me.generation() {
            return Some(Evidence::Holder {
                holder: id.to_identity(),
                heard: Heard::Gossip {
                    down: member.state() == State::Down,
                },
            });
        }
    }
    None
}

impl MembershipCore {
    /// What we know of the member called `name`, if anything.
    fn known_named(&self, name: &str) -> Option<Known> {
        self.member_named(name).map(|m| {
            (
                m.id().socket_addr(),
                m.id().generation(),
                m.state() == State::Down,
            )
        })
    }

    /// Reads what an opened datagram says about node names and acts on it. An error means the
    /// datagram must not reach foca: it came from another holder of our name, or from an
    /// older holder of a name another agent holds now, or we stand back for the holder of ours.
    pub(super) fn screen_names(&mut self, plaintext: &[u8]) -> Result<(), PacketError> {
        let found = evidence(self.foca.identity(), plaintext, |n| self.known_named(n));
        match found {
            None => {}
            Some(Evidence::Holder { holder, heard }) => {
                let addr = holder.addr;
                self.on_holder(holder, heard);
                if !matches!(heard, Heard::Gossip { .. }) {
                    return Err(PacketError::NameConflict(addr));
                }
            }
            Some(Evidence::Between {
                older,
                newer,
                newer_down,
            }) => {
                let holder = newer.addr;
                self.relay_name_conflict(older, newer, newer_down);
                return Err(PacketError::OutdatedName(holder));
            }
        }
        match self.name_conflicts.parked(self.now_ms) {
            Some(holder) => Err(PacketError::NameConflict(holder)),
            None => Ok(()),
        }
    }

    /// Whether a datagram of ours carrying `message` is held back: while we stand back for
    /// the holder of our name, we only announce.
    pub(super) fn holds_back(&self, message: &Message<PeekedId<'_>>) -> bool {
        self.name_conflicts.parked(self.now_ms).is_some() && !matches!(message, Message::Announce)
    }

    /// Remembers, counts, logs and answers another holder of our name, then judges who keeps
    /// it.
    fn on_holder(&mut self, holder: NodeIdentity, heard: Heard) {
        let now = self.now_ms;
        let addr = holder.addr;
        let name = holder.name;
        let claim = self.name_conflicts.at(addr, now);
        claim.generation = claim.generation.max(holder.generation);
        match heard {
            Heard::Notice { since } => claim.since = Some(since),
            Heard::Relayed { .. } | Heard::Gossip { .. } => claim.in_cluster = true,
            Heard::Announce | Heard::Other => {}
        }
        if matches!(
            heard,
            Heard::Relayed { down: true } | Heard::Gossip { down: true }
        ) {
            return self.after_holder_gone(addr);
        }
        let logged = due(&mut claim.logged_at, now, LOG_EVERY_MS);
        let answer = match heard {
            Heard::Notice { .. } => !recent(claim.noticed_at, now, ANSWER_EVERY_MS),
            Heard::Other => false,
            _ => true,
        };
        let notify = answer && due(&mut claim.noticed_at, now, NOTICE_EVERY_MS);
        self.counters.name_conflicts += 1;
        self.counters.name_conflict_with = Some(addr);
        self.counters.name_conflict_at_ms = now;
        if logged {
            tracing::error!(
                node = %name,
                other = %addr,
                "another agent at {addr} uses our node name {name:?}: node names must be unique \
                 in a cluster; start one of them with another --node (its datagrams are refused)"
            );
        }
        if notify {
            self.send_name_notice(addr);
        }
        self.judge(addr);
    }

    /// Who keeps our name, between us and the agent at `addr`; acts on it.
    fn judge(&mut self, addr: SocketAddr) {
        let now = self.now_ms;
        let me = self.identity();
        let since = self.name_conflicts.since;
        let claim = self.name_conflicts.at(addr, now);
        match verdict((since, me.addr), claim.since.map(|s| (s, addr))) {
            Verdict::Ours if claim.in_cluster && claim.generation >= me.generation => {
                let above = claim.generation;
                tracing::error!(
                    node = %me.name,
                    other = %addr,
                    "keeping our node name {:?}: the agent at {addr} started after us; announcing \
                     ourselves above its generation so that the cluster takes us, not it",
                    me.name
                );
                self.renew_above(above);
            }
            Verdict::Theirs => {
                let logged = due(&mut claim.judged_at, now, LOG_EVERY_MS);
                self.name_conflicts
                    .park(addr, now.saturating_add(STAND_BACK_MS));
                if logged {
                    tracing::error!(
                        node = %me.name,
                        other = %addr,
                        "the agent at {addr} has used our node name {:?} since before this agent \
                         started: this agent is the duplicate and stays out of the cluster; \
                         start it with another --node",
                        me.name
                    );
                }
            }
            Verdict::Ours | Verdict::Unknown => {}
        }
    }

    /// The agent at `addr` that claimed our name is down: we stop standing back for it, and
    /// announce ourselves above its generation if third members would still prefer it.
    fn after_holder_gone(&mut self, addr: SocketAddr) {
        let now = self.now_ms;
        if self.name_conflicts.unpark(addr) {
            tracing::warn!(
                other = %addr,
                "the agent at {addr} that holds our node name is down: this agent takes the name"
            );
        }
        if self.name_conflicts.parked(now).is_some() {
            return;
        }
        let above = self.name_conflicts.at(addr, now).generation;
        if above >= self.foca.identity().generation() {
            tracing::warn!(
                other = %addr,
                "an agent at {addr} that used our node name is down at a newer generation than \
                 ours: announcing ourselves above it"
            );
            self.renew_above(above);
        }
    }

    /// Takes a generation above `above` (and above ours) and tells the cluster.
    fn renew_above(&mut self, above: u64) {
        let me = self.foca.identity();
        let generation = above.max(me.generation()).saturating_add(1);
        let renewed = me.with_tags(me.tags().clone(), generation);
        if let Err(e) = self.foca.change_identity(renewed, &mut self.runtime) {
            tracing::debug!(error = %e, "renewing our identity failed");
            return;
        }
        let me = self.identity();
        self.out.push_back(Output::Event(MemberEvent::Rejoined(me)));
        self.drain();
    }

    /// At a third member: `older` sent while we know `newer` of the same name at another
    /// address. If `newer` is active, both are alive: tell each about the other. If it is
    /// down, tell `older` (which then takes its name back).
    fn relay_name_conflict(&mut self, older: NodeIdentity, newer: NodeIdentity, newer_down: bool) {
        let now = self.now_ms;
        if newer_down {
            let noticed = &mut self.name_conflicts.at(older.addr, now).noticed_at;
            if due(noticed, now, NOTICE_EVERY_MS) {
                self.send_notice(older.addr, newer, NOTICE_RELAYED_DOWN);
            }
            return;
        }
        if due(
            &mut self.name_conflicts.at(older.addr, now).logged_at,
            now,
            LOG_EVERY_MS,
        ) {
            tracing::warn!(
                node = %older.name,
                older = %older.addr,
                newer = %newer.addr,
                "the agents at {} and {} both use the node name {:?}: telling both",
                older.addr,
                newer.addr,
                older.name
            );
        }
        for (to, holder) in [(older.addr, newer.clone()), (newer.addr, older)] {
            if due(
                &mut self.name_conflicts.at(to, now).noticed_at,
                now,
                NOTICE_EVERY_MS,
            ) {
                self.send_notice(to, holder, NOTICE_RELAYED);
            }
        }
    }

    /// Our own notice (we hold our name, since when) to the other holder.
    fn send_name_notice(&mut self, to: SocketAddr) {
        let me = self.identity();
        self.send_notice(to, me, NOTICE_OWN);
    }

    /// A header-only Ack whose sender is `holder`, to the agent at `to` that has the same
    /// name: evidence it recognises. `kind` says who sends it (see [`NOTICE_OWN`]).
    fn send_notice(&mut self, to: SocketAddr, holder: NodeIdentity, kind: u8) {
        let generation = if kind == NOTICE_OWN {
            self.name_conflicts.since
        } else {
            holder.generation
        };
        let header = Header {
            dst: NodeIdentity {
                addr: to,
                generation,
                ..holder.clone()
            },
            src: holder,
            src_incarnation: 0,
            message: Message::Ack(kind),
        };
        let mut data = Vec::new();
        if PostcardCodec.encode_header(&header, &mut data).is_err() {
            return;
        }
        let packet = self.keyring.seal(self.now_ms, &data, &mut self.nonce_rng);
        self.counters.packets_out += 1;
        self.counters.bytes_out += packet.len() as u64;
        self.out.push_back(Output::Send { to, packet });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{CoreSettings, CoreTimer, MemberStatus};
    use crate::envelope::ClusterKey;
    use crate::keyring::Keyring;
    use crate::profile::Profile;

    fn at(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// A generation as agents make them: the wall-clock ms of their start (`T` plus `ms`).
    fn started(ms: u64) -> u64 {
        1_700_000_000_000 + ms
    }

    fn core(name: &str, port: u16, generation: u64, key: &ClusterKey) -> MembershipCore {
        MembershipCore::new(CoreSettings {
            identity: NodeIdentity {
                name: name.into(),
                team: "t".into(),
                addr: at(port),
                generation,
                tags: Default::default(),
            },
            tunables: crate::profile::Tunables::from(Profile::Local),
            keyring: Keyring::new(key.clone()),
            rng_seed: u64::from(port),
        })
    }

    fn sends(core: &mut MembershipCore) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut sent = Vec::new();
        while let Some(output) = core.poll_output() {
            if let Output::Send { to, packet } = output {
                sent.push((to, packet));
            }
        }
        sent
    }

    #[test]
    fn a_second_agent_of_our_name_is_refused_and_both_sides_count_the_other_address() {
        let key = ClusterKey::generate(&mut rand::rng());
        let mut first = core("n1", 7001, 10, &key);
        let mut second = core("n1", 7002, 20, &key);
        second.handle_join(1, &[at(7001)]);
        let announce = sends(&mut second);
        assert_eq!(announce.len(), 1);

        let refused = first.handle_packet(2, &announce[0].1);
        assert!(
            matches!(refused, Err(PacketError::NameConflict(a)) if a.port() == 7002),
            "{refused:?}"
        );
        assert_eq!(first.counters().name_conflicts, 1);
        assert_eq!(
            first.counters().name_conflict_with.map(|a| a.port()),
            Some(7002)
        );
        let notice = sends(&mut first);
        assert_eq!(notice.len(), 1, "one notice to the other holder");
        assert_eq!(notice[0].0.port(), 7002);

        let refused = second.handle_packet(3, &notice[0].1);
        assert!(matches!(refused, Err(PacketError::NameConflict(a)) if a.port() == 7001));
        assert_eq!(
            second.counters().name_conflict_with.map(|a| a.port()),
            Some(7001)
        );
        // The second learns that the first started before it: it is the duplicate, and
        // answers once with its own start.
        assert_eq!(second.name_conflicts.parked(3), Some(at(7001)));
        let answer = sends(&mut second);
        assert_eq!(answer.len(), 1, "a notice is answered once");
        let _ = first.handle_packet(4, &answer[0].1);
        assert!(sends(&mut first).is_empty(), "an answer is not answered");
        assert_eq!(first.name_conflicts.parked(4), None);
        assert_eq!(
            first.identity().generation,
            10,
            "nobody else knows the second"
        );
        assert_eq!(first.active_members(), 0);
        assert_eq!(second.active_members(), 0);

        // A second announce within the second is counted but gets no second notice.
        second.handle_join(5, &[at(7001)]);
        let again = sends(&mut second);
        assert_eq!(
            again.len(),
            1,
            "standing back, the duplicate still announces"
        );
        let _ = first.handle_packet(6, &again[0].1);
        assert_eq!(first.counters().name_conflicts, 3);
        assert!(sends(&mut first).is_empty());
    }

    #[test]
    fn members_of_other_names_are_no_conflict() {
        let key = ClusterKey::generate(&mut rand::rng());
        let mut first = core("n1", 7011, 10, &key);
        let mut second = core("n2", 7012, 20, &key);
        second.handle_join(1, &[at(7011)]);
        let announce = sends(&mut second);
        first.handle_packet(2, &announce[0].1).unwrap();
        assert_eq!(first.counters().name_conflicts, 0);
        assert_eq!(first.active_members(), 1);
    }

    /// A few cores on a virtual clock: every datagram arrives 1 ms after it is sent, every
    /// timer fires when due.
    struct Net {
        cores: Vec<Option<MembershipCore>>,
        now: u64,
        packets: Vec<(u64, SocketAddr, Vec<u8>)>,
        timers: Vec<(u64, usize, CoreTimer)>,
    }

    impl Net {
        fn new(cores: Vec<MembershipCore>) -> Self {
            Self {
                cores: cores.into_iter().map(Some).collect(),
                now: 0,
                packets: Vec::new(),
                timers: Vec::new(),
            }
        }

        fn core(&self, i: usize) -> &MembershipCore {
            self.cores[i].as_ref().unwrap()
        }

        fn flush(&mut self, i: usize) {
            let Some(core) = self.cores[i].as_mut() else {
                return;
            };
            while let Some(output) = core.poll_output() {
                match output {
                    Output::Send { to, packet } => self.packets.push((self.now + 1, to, packet)),
                    Output::Schedule { after, timer } => {
                        let due = self.now + u64::try_from(after.as_millis()).unwrap();
                        self.timers.push((due, i, timer));
                    }
                    Output::Event(_) => {}
                }
            }
        }

        fn join(&mut self, i: usize, seed: usize) {
            let seed = self.core(seed).identity().addr;
            let now = self.now;
            self.cores[i].as_mut().unwrap().handle_join(now, &[seed]);
            self.flush(i);
        }

        fn leave(&mut self, i: usize) {
            let now = self.now;
            self.cores[i].as_mut().unwrap().handle_leave(now);
            self.flush(i);
            self.cores[i] = None;
        }

        fn run_for(&mut self, ms: u64) {
            let until = self.now + ms;
            loop {
                let packet = (0..self.packets.len()).min_by_key(|p| self.packets[*p].0);
                let timer = (0..self.timers.len()).min_by_key(|t| self.timers[*t].0);
                let packet_at = packet.map_or(u64::MAX, |p| self.packets[p].0);
                let timer_at = timer.map_or(u64::MAX, |t| self.timers[t].0);
                if packet_at.min(timer_at) > until {
                    break;
                }
                if packet_at <= timer_at {
                    let (when, to, data) = self.packets.swap_remove(packet.unwrap());
                    self.now = when;
                    let i = self
                        .cores
                        .iter()
                        .position(|c| c.as_ref().is_some_and(|c| c.identity().addr == to));
                    if let Some(i) = i {
                        let _ = self.cores[i].as_mut().unwrap().handle_packet(when, &data);
                        self.flush(i);
                    }
                } else {
                    let (when, i, timer) = self.timers.swap_remove(timer.unwrap());
                    self.now = when;
                    if let Some(core) = self.cores[i].as_mut() {
                        core.handle_timer(when, timer);
                        self.flush(i);
                    }
                }
            }
            self.now = until;
        }

        /// How `observer` lists the member called `name`: address and status.
        fn lists(&self, observer: usize, name: &str) -> Option<(SocketAddr, MemberStatus)> {
            self.core(observer)
                .members()
                .into_iter()
                .find(|m| m.name == name)
                .map(|m| (m.addr, m.status))
        }
    }

    #[test]
    fn the_agent_that_started_first_keeps_its_name_when_a_second_joins_through_a_third() {
        let key = ClusterKey::generate(&mut rand::rng());
        let (holder, third, impostor) = (0, 1, 2);
        let mut net = Net::new(vec![
            core("n1", 7031, started(0), &key),
            core("n2", 7032, started(1_000), &key),
            core("n1", 7033, started(60_000), &key),
        ]);
        net.join(holder, third);
        net.run_for(3_000);
        assert_eq!(
            net.lists(third, "n1"),
            Some((at(7031), MemberStatus::Alive))
        );

        net.join(impostor, third);
        net.run_for(5_000);
        assert_eq!(
            net.lists(third, "n1"),
            Some((at(7031), MemberStatus::Alive)),
            "{:?}",
            net.core(third).members()
        );
        assert!(net.core(holder).identity().generation > started(60_000));
        assert_eq!(
            net.core(holder).counters().name_conflict_with,
            Some(at(7033))
        );
        assert_eq!(
            net.core(impostor).counters().name_conflict_with,
            Some(at(7031))
        );
        assert_eq!(
            net.core(impostor).name_conflicts.parked(net.now),
            Some(at(7031))
        );
        assert_eq!(net.core(holder).name_conflicts.parked(net.now), None);
        assert_eq!(
            net.lists(holder, "n2"),
            Some((at(7032), MemberStatus::Alive))
        );

        // The impostor leaves: the holder stays listed alive.
        net.leave(impostor);
        for _ in 0..30 {
            net.run_for(1_000);
            assert_eq!(
                net.lists(third, "n1"),
                Some((at(7031), MemberStatus::Alive)),
                "at {} ms: {:?}",
                net.now,
                net.core(third).members()
            );
        }
    }

    #[test]
    fn a_holder_whose_second_left_before_it_was_told_takes_its_name_back() {
        let key = ClusterKey::generate(&mut rand::rng());
        let (holder, third, impostor) = (0, 1, 2);
        let mut net = Net::new(vec![
            core("n1", 7051, started(0), &key),
            core("n2", 7052, started(1_000), &key),
            core("n1", 7053, started(60_000), &key),
        ]);
        net.join(holder, third);
        net.run_for(3_000);
        // The impostor joins and leaves at once, before any datagram of the holder's reaches
        // the third member.
        net.join(impostor, third);
        net.run_for(2);
        net.leave(impostor);
        net.run_for(10_000);
        assert_eq!(
            net.lists(third, "n1"),
            Some((at(7051), MemberStatus::Alive)),
            "{:?}",
            net.core(third).members()
        );
    }

    #[test]
    fn an_agent_restarted_at_another_address_is_taken_as_the_same_member_without_conflict() {
        let key = ClusterKey::generate(&mut rand::rng());
        let mut net = Net::new(vec![
            core("n1", 7041, started(0), &key),
            core("n2", 7042, started(1_000), &key),
        ]);
        net.join(0, 1);
        net.run_for(3_000);
        // n1 stops at once and starts again elsewhere with a newer generation, before n2
        // noticed it was gone.
        net.cores[0] = Some(core("n1", 7043, started(60_000), &key));
        net.join(0, 1);
        net.run_for(10_000);
        assert_eq!(net.lists(1, "n1"), Some((at(7043), MemberStatus::Alive)));
        assert_eq!(net.core(0).identity().generation, started(60_000));
        assert_eq!(net.core(0).counters().name_conflicts, 0);
        assert_eq!(net.core(1).counters().name_conflicts, 0);
        assert_eq!(net.lists(0, "n2"), Some((at(7042), MemberStatus::Alive)));
    }

    #[test]
    fn a_third_agent_tells_two_live_agents_of_one_name_about_each_other() {
        let key = ClusterKey::generate(&mut rand::rng());
        let mut net = Net::new(vec![
            core("n2", 7022, started(0), &key),
            core("n1", 7021, started(1_000), &key),
            core("n1", 7023, started(60_000), &key),
        ]);
        // The newer n1 joins first; the older one, still alive, joins through n2 later.
        net.join(2, 0);
        net.run_for(3_000);
        net.join(1, 0);
        net.run_for(5_000);
        assert_eq!(net.core(1).counters().name_conflict_with, Some(at(7023)));
        assert_eq!(net.core(2).counters().name_conflict_with, Some(at(7021)));
        // The older one started first: it keeps the name.
        assert_eq!(net.lists(0, "n1"), Some((at(7021), MemberStatus::Alive)));
        assert_eq!(net.core(2).name_conflicts.parked(net.now), Some(at(7021)));
    }
}
