//! Two membership cores driven by hand, with the datagrams between them captured: a replayed
//! datagram is refused and counted whether it comes back at once or two minutes later, and
//! the member list and events are as if it never arrived. Another envelope version is counted
//! as such, not as a wrong key; an alert-sized broadcast larger than half a datagram goes out.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use rover_membership::envelope::{self, ClusterKey};
use rover_membership::error::PacketError;
use rover_membership::{
    BroadcastItem, CoreSettings, Keyring, MemberEvent, MembershipCore, NodeIdentity, Output,
    Profile, Topic, Tunables,
};

const T0: u64 = 1_800_000_000_000;

fn core(name: &str, port: u16) -> MembershipCore {
    MembershipCore::new(CoreSettings {
        identity: NodeIdentity {
            name: name.into(),
            team: "default".into(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            generation: 1,
            tags: Default::default(),
        },
        tunables: Tunables::from(Profile::Lan),
        keyring: Keyring::new(ClusterKey::from_bytes([7; 32])),
        rng_seed: u64::from(port),
    })
}

/// Drains a core's outputs: datagrams (destination, bytes) and events.
fn drain(core: &mut MembershipCore) -> (Vec<(SocketAddr, Vec<u8>)>, Vec<MemberEvent>) {
    let (mut sent, mut events) = (Vec::new(), Vec::new());
    while let Some(output) = core.poll_output() {
        match output {
            Output::Send { to, packet } => sent.push((to, packet)),
            Output::Event(event) => events.push(event),
            Output::Schedule { .. } => {}
        }
    }
    (sent, events)
}

/// a joins b; datagrams flow until quiet. Returns every datagram b received.
fn joined() -> (MembershipCore, MembershipCore, Vec<Vec<u8>>) {
    let (mut a, mut b) = (core("a", 1), core("b", 2));
    a.handle_join(T0, &[SocketAddr::from(([127, 0, 0, 1], 2))]);
    let mut to_b = Vec::new();
    for _ in 0..10 {
        let (from_a, _) = drain(&mut a);
        for (_, packet) in &from_a {
            let _ = b.handle_packet(T0 + 10, packet);
            to_b.push(packet.clone());
        }
        let (from_b, _) = drain(&mut b);
        for (_, packet) in &from_b {
            let _ = a.handle_packet(T0 + 20, packet);
        }
        if from_a.is_empty() && from_b.is_empty() {
            break;
        }
    }
    assert!(b.members().iter().any(|m| m.name == "a"), "b never met a");
    (a, b, to_b)
}

#[test]
fn a_replayed_datagram_is_refused_and_counted_with_membership_unchanged() {
    let (_a, mut b, to_b) = joined();
    let before = b.members();
    let counters = b.counters();
    for packet in &to_b {
        assert!(matches!(
            b.handle_packet(T0 + 1_000, packet),
            Err(PacketError::Replayed)
        ));
    }
    let (sent, events) = drain(&mut b);
    assert!(sent.is_empty(), "a replay was answered");
    assert!(events.is_empty(), "a replay made events: {events:?}");
    assert_eq!(b.members(), before);
    let after = b.counters();
    assert_eq!(
        after.dropped_replayed - counters.dropped_replayed,
        to_b.len() as u64
    );
    assert_eq!(after.dropped_rejected, counters.dropped_rejected);
}

#[test]
fn a_datagram_replayed_two_minutes_later_is_refused_as_stale() {
    let (_a, mut b, to_b) = joined();
    let before = b.members();
    for packet in &to_b {
        assert!(matches!(
            b.handle_packet(T0 + 120_000, packet),
            Err(PacketError::Stale { skew_ms }) if skew_ms >= 119_000
        ));
    }
    let (sent, events) = drain(&mut b);
    assert!(sent.is_empty() && events.is_empty());
    assert_eq!(b.members(), before);
    assert_eq!(b.counters().dropped_stale, to_b.len() as u64);
}

#[test]
fn another_envelope_version_is_counted_as_such_not_as_unsealed() {
    let mut b = core("b", 2);
    let key = ClusterKey::from_bytes([7; 32]);
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut packet = envelope::seal(&key, T0, b"from the future", &mut rng);
    packet[0] = envelope::ENVELOPE_VERSION + 1;
    assert!(b.handle_packet(T0, &packet).is_err());
    let counters = b.counters();
    assert_eq!(counters.dropped_version, 1);
    assert_eq!(counters.dropped_unsealed, 0);
}

#[test]
fn a_broadcast_larger_than_half_a_datagram_is_queued_and_sent_at_once() {
    let (mut a, mut b, _) = joined();
    drain(&mut a);
    let item = BroadcastItem {
        topic: Topic::Alert,
        key: "default/a/big".into(),
        version: 1,
        payload: vec![0xe3; 1_100],
    };
    assert!(a.handle_broadcast(&item).unwrap());
    let (sent, _) = drain(&mut a);
    assert!(!sent.is_empty(), "the big item waited");
    for (_, packet) in &sent {
        let _ = b.handle_packet(T0 + 50, packet);
    }
    let (_, events) = drain(&mut b);
    assert!(events
        .iter()
        .any(|e| matches!(e, MemberEvent::Broadcast(got) if *got == item)));
}
