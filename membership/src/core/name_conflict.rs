//! Another agent using our node name. foca keys members by name, so two agents of one name
//! cannot both be members: foca silently drops what the other sends ("data from ourselves")
//! and the second one stays alone. We make that loud on both sides instead.
//!
//! Evidence, read from each datagram we open, before foca sees it:
//! - a datagram whose sender has our name and another address: the other holder talks to us
//!   (it announces to us when it joins through us; or it got our notice, below);
//! - gossip about a member with our name, another address and a newer generation that is not
//!   down: another agent of our name started after us elsewhere in the cluster. (An older
//!   generation is no evidence: it may be our own previous run at another address.)
//!
//! Each holder is logged at ERROR with its address (at most once a minute per address) and
//! counted ([`super::Counters::name_conflicts`], with the last address, for `join` to answer).
//! We answer an announce, and gossip evidence, with one notice straight to the other holder (a
//! header-only Ack from us, at most once a second per address), which is the first kind of
//! evidence there: so the joining side learns it too. A notice is never answered, so two
//! holders cannot keep each other busy.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use foca::{Codec, Header, Member, Message, PostcardCodec, State};

use super::{MembershipCore, Output};
use crate::identity::NodeIdentity;
use crate::member_id::MemberId;
use crate::peek::PeekedId;

/// Log a conflicting holder again after this long.
const LOG_EVERY_MS: u64 = 60_000;
/// Send a holder a notice at most this often.
const NOTICE_EVERY_MS: u64 = 1_000;
/// Addresses remembered at most (then the oldest memory is dropped).
const REMEMBERED: usize = 64;

/// What one datagram says about our name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Evidence {
    /// The other holder itself sent it; foca would drop it, so we do not hand it over.
    FromHolder {
        /// Where the other holder is.
        addr: SocketAddr,
        /// Whether it was an announce (which we answer with a notice).
        announce: bool,
    },
    /// It gossips about another holder; foca still gets the datagram.
    AboutHolder(SocketAddr),
    /// Two other agents claim one name: this datagram comes from `older`, while we know
    /// `newer` (a newer generation at another address) as active. A restarted agent's old
    /// identity cannot send, so both are alive. foca still gets the datagram.
    Between {
        /// The sender.
        older: NodeIdentity,
        /// The active member of the same name.
        newer: NodeIdentity,
    },
}

/// When we last logged each holder and last sent each a notice.
#[derive(Debug, Default)]
pub(super) struct NameConflicts {
    logged_at: BTreeMap<SocketAddr, u64>,
    noticed_at: BTreeMap<SocketAddr, u64>,
}

/// Finds evidence of two holders of one name in an opened datagram (read in place, nothing
/// copied unless there is evidence); `active` looks up the active member of a name.
pub(super) fn evidence(
    me: &MemberId,
    plaintext: &[u8],
    active: impl Fn(&str) -> Option<NodeIdentity>,
) -> Option<Evidence> {
    let (header, mut rest) = postcard::take_from_bytes::<Header<PeekedId<'_>>>(plaintext).ok()?;
    if header.src.name == me.name() && header.src.addr != me.socket_addr() {
        return Some(Evidence::FromHolder {
            addr: header.src.addr,
            announce: matches!(header.message, Message::Announce),
        });
    }
    if let Some(newer) = active(header.src.name)
        .filter(|known| known.addr != header.src.addr && known.generation > header.src.generation)
    {
        return Some(Evidence::Between {
            older: header.src.to_identity(),
            newer,
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
        if id.name == me.name()
            && id.addr != me.socket_addr()
            && id.generation > me.generation()
            && member.state() != State::Down
        {
            return Some(Evidence::AboutHolder(id.addr));
        }
    }
    None
}

impl NameConflicts {
    /// Whether `map` has `addr` from less than `every` ago; records `now` if not.
    fn due(map: &mut BTreeMap<SocketAddr, u64>, addr: SocketAddr, now: u64, every: u64) -> bool {
        if map
            .get(&addr)
            .is_some_and(|last| now.saturating_sub(*last) < every)
        {
            return false;
        }
        if map.len() >= REMEMBERED && !map.contains_key(&addr) {
            let oldest = map.iter().min_by_key(|(_, t)| **t).map(|(a, _)| *a);
            if let Some(oldest) = oldest {
                map.remove(&oldest);
            }
        }
        map.insert(addr, now);
        true
    }
}

impl MembershipCore {
    /// The active member called `name`, if we know one.
    pub(super) fn active_named(&self, name: &str) -> Option<NodeIdentity> {
        self.member_named(name)
            .filter(|m| m.state() != State::Down)
            .map(|m| m.id().to_identity())
    }

    /// Counts, logs and answers evidence of another holder of our name; for two other agents
    /// of one name, tells each about the other.
    pub(super) fn handle_name_conflict(&mut self, evidence: Evidence) {
        let (addr, notify) = match evidence {
            Evidence::FromHolder { addr, announce } => (addr, announce),
            Evidence::AboutHolder(addr) => (addr, true),
            Evidence::Between { older, newer } => return self.relay_name_conflict(older, newer),
        };
        self.counters.name_conflicts += 1;
        self.counters.name_conflict_with = Some(addr);
        self.counters.name_conflict_at_ms = self.now_ms;
        let now = self.now_ms;
        let name = self.identity().name.clone();
        if NameConflicts::due(&mut self.name_conflicts.logged_at, addr, now, LOG_EVERY_MS) {
            tracing::error!(
                node = %name,
                other = %addr,
                "another agent at {addr} uses our node name {name:?}: node names must be unique \
                 in a cluster; start one of them with another --node (its datagrams are refused)"
            );
        }
        if notify
            && NameConflicts::due(
                &mut self.name_conflicts.noticed_at,
                addr,
                now,
                NOTICE_EVERY_MS,
            )
        {
            self.send_name_notice(addr);
        }
    }

    fn relay_name_conflict(&mut self, older: NodeIdentity, newer: NodeIdentity) {
        let now = self.now_ms;
        if NameConflicts::due(
            &mut self.name_conflicts.logged_at,
            older.addr,
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
            if NameConflicts::due(
                &mut self.name_conflicts.noticed_at,
                to,
                now,
                NOTICE_EVERY_MS,
            ) {
                self.send_notice(to, holder);
            }
        }
    }

    /// A notice that we hold our name, to the other holder.
    fn send_name_notice(&mut self, to: SocketAddr) {
        let me = self.identity();
        self.send_notice(to, me);
    }

    /// A header-only Ack whose sender is `holder`, to the agent at `to` that has the same
    /// name: evidence it recognises, never answered.
    fn send_notice(&mut self, to: SocketAddr, holder: NodeIdentity) {
        let header = Header {
            dst: NodeIdentity {
                addr: to,
                ..holder.clone()
            },
            src: holder,
            src_incarnation: 0,
            message: Message::Ack(0),
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
    use crate::core::CoreSettings;
    use crate::envelope::ClusterKey;
    use crate::error::PacketError;
    use crate::keyring::Keyring;
    use crate::profile::Profile;

    fn core(name: &str, port: u16, generation: u64, key: &ClusterKey) -> MembershipCore {
        MembershipCore::new(CoreSettings {
            identity: NodeIdentity {
                name: name.into(),
                team: "t".into(),
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                generation,
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
        second.handle_join(1, &[SocketAddr::from(([127, 0, 0, 1], 7001))]);
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
        assert!(sends(&mut second).is_empty(), "a notice is never answered");
        assert_eq!(first.active_members(), 0);
        assert_eq!(second.active_members(), 0);

        // A second announce within the second is counted but gets no second notice.
        second.handle_join(4, &[SocketAddr::from(([127, 0, 0, 1], 7001))]);
        let again = sends(&mut second);
        let _ = first.handle_packet(5, &again[0].1);
        assert_eq!(first.counters().name_conflicts, 2);
        assert!(sends(&mut first).is_empty());
    }

    #[test]
    fn members_of_other_names_are_no_conflict() {
        let key = ClusterKey::generate(&mut rand::rng());
        let mut first = core("n1", 7011, 10, &key);
        let mut second = core("n2", 7012, 20, &key);
        second.handle_join(1, &[SocketAddr::from(([127, 0, 0, 1], 7011))]);
        let announce = sends(&mut second);
        first.handle_packet(2, &announce[0].1).unwrap();
        assert_eq!(first.counters().name_conflicts, 0);
        assert_eq!(first.active_members(), 1);
    }

    /// Delivers every datagram `from` has queued to whichever of `cores` it is addressed to.
    fn deliver(from: &mut MembershipCore, cores: &mut [&mut MembershipCore], now: u64) -> usize {
        let mut delivered = 0;
        for (to, packet) in sends(from) {
            if let Some(core) = cores.iter_mut().find(|c| c.identity().addr == to) {
                let _ = core.handle_packet(now, &packet);
                delivered += 1;
            }
        }
        delivered
    }

    #[test]
    fn a_third_agent_tells_two_live_agents_of_one_name_about_each_other() {
        let key = ClusterKey::generate(&mut rand::rng());
        let mut other = core("n2", 7022, 5, &key);
        let mut older = core("n1", 7021, 10, &key);
        let mut newer = core("n1", 7023, 30, &key);
        let other_addr = other.identity().addr;
        newer.handle_join(1, &[other_addr]);
        deliver(&mut newer, &mut [&mut other], 2);
        deliver(&mut other, &mut [&mut newer], 3);
        assert_eq!(other.active_members(), 1);

        // The older n1, still alive, joins through n2, which knows the newer one.
        older.handle_join(4, &[other_addr]);
        deliver(&mut older, &mut [&mut other], 5);
        let sent = sends(&mut other);
        let to = |addr: SocketAddr| sent.iter().filter(|(a, _)| *a == addr).count();
        assert!(
            to(older.identity().addr) >= 1 && to(newer.identity().addr) == 1,
            "{sent:?}"
        );
        for (to, packet) in sent {
            for core in [&mut older, &mut newer] {
                if core.identity().addr == to {
                    let _ = core.handle_packet(6, &packet);
                }
            }
        }
        assert_eq!(
            older.counters().name_conflict_with,
            Some(newer.identity().addr)
        );
        assert_eq!(
            newer.counters().name_conflict_with,
            Some(older.identity().addr)
        );
    }
}
