//! The behaviour every [`MemberStore`], [`MetaStore`], [`AlertStore`] and
//! [`crate::HistoryStore`] implementation must share.
//!
//! Plain functions that take a store, exercise it, and panic with a message naming the broken
//! rule. This crate's tests run them against the sled and the in-memory implementations;
//! another crate with its own implementation can run them too. Each suite expects an empty
//! store and leaves data behind.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::alerts::AlertStore;
use crate::error::StorageError;
use crate::members::{MemberStore, StoredMember};
use crate::meta::MetaStore;
use crate::records::{Alert, AlertState, Severity};

mod history;

pub use self::history::{
    history_compaction, history_store, mean_entry, membership_entry, sample_entry, status_sample,
};

/// A member fixture: name `name`, generation `generation`, status `"alive"`, and an address
/// and update time derived from the generation.
pub fn member(name: &str, generation: u64) -> StoredMember {
    StoredMember {
        name: name.to_owned(),
        team: "ops".to_owned(),
        addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 7900),
        generation,
        status: "alive".to_owned(),
        updated_ms: 1_700_000_000_000 + generation,
    }
}

/// Runs every member-store rule against `store`, which must start empty.
///
/// # Panics
///
/// On the first broken rule, with a message naming it.
pub fn member_store(store: &impl MemberStore) {
    let start = ok(store.all(), "listing an empty store");
    assert!(
        start.is_empty(),
        "the member suite needs an empty store, found {start:?}"
    );

    // An absent name reads as None.
    assert_eq!(
        ok(store.get("nobody"), "getting an absent member"),
        None,
        "an absent member must read as None"
    );

    // Put then get returns the same member.
    let alpha = member("alpha", 1);
    ok(store.put(&alpha), "putting a member");
    assert_eq!(
        ok(store.get("alpha"), "getting a member"),
        Some(alpha.clone()),
        "get must return what put stored"
    );

    // Put again replaces.
    let alpha2 = StoredMember {
        status: "suspect".to_owned(),
        ..member("alpha", 2)
    };
    ok(store.put(&alpha2), "overwriting a member");
    assert_eq!(
        ok(store.get("alpha"), "getting an overwritten member"),
        Some(alpha2.clone()),
        "a second put must replace the first"
    );

    // All is sorted by name, whatever the insertion order; names compare as UTF-8 bytes.
    for name in ["émile", "charlie", "bravo"] {
        ok(store.put(&member(name, 1)), "putting a member");
    }
    let names: Vec<String> = ok(store.all(), "listing members")
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(
        names,
        ["alpha", "bravo", "charlie", "émile"],
        "all must return every member once, sorted by name"
    );
    let listed_alpha = ok(store.all(), "listing members")
        .into_iter()
        .find(|m| m.name == "alpha");
    assert_eq!(
        listed_alpha,
        Some(alpha2),
        "all must return the latest version of a member"
    );

    // Remove deletes one member; removing an absent one is fine.
    ok(store.remove("bravo"), "removing a member");
    assert_eq!(
        ok(store.get("bravo"), "getting a removed member"),
        None,
        "a removed member must read as None"
    );
    ok(store.remove("bravo"), "removing an absent member");
    let names: Vec<String> = ok(store.all(), "listing members")
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(
        names,
        ["alpha", "charlie", "émile"],
        "all must not return a removed member"
    );
}

/// Runs every meta-store rule against `store`, which must start empty.
///
/// # Panics
///
/// On the first broken rule, with a message naming it.
pub fn meta_store(store: &impl MetaStore) {
    // Absent keys read as None, for both kinds.
    assert_eq!(
        ok(store.get_u64("generation"), "getting an absent u64"),
        None,
        "an absent u64 must read as None"
    );
    assert_eq!(
        ok(store.get_bytes("node_key"), "getting absent bytes"),
        None,
        "absent bytes must read as None"
    );

    // u64 values round-trip, including the extremes, and a second put replaces the first.
    for value in [0, 7, u64::MAX] {
        ok(store.put_u64("generation", value), "putting a u64");
        assert_eq!(
            ok(store.get_u64("generation"), "getting a u64"),
            Some(value),
            "get_u64 must return what put_u64 stored"
        );
    }

    // Bytes round-trip; empty bytes are a value, not an absence.
    ok(store.put_bytes("node_key", b"\x00\xffkey"), "putting bytes");
    assert_eq!(
        ok(store.get_bytes("node_key"), "getting bytes"),
        Some(b"\x00\xffkey".to_vec()),
        "get_bytes must return what put_bytes stored"
    );
    ok(store.put_bytes("empty", b""), "putting empty bytes");
    assert_eq!(
        ok(store.get_bytes("empty"), "getting empty bytes"),
        Some(Vec::new()),
        "empty bytes must read as Some(empty)"
    );

    // Keys are independent.
    assert_eq!(
        ok(store.get_u64("generation"), "getting a u64"),
        Some(u64::MAX),
        "putting one key must not change another"
    );

    // Reading a value as the other kind is refused and leaves the value alone.
    match store.get_bytes("generation") {
        Err(StorageError::WrongKind { .. }) => {}
        other => panic!("reading a u64 as bytes must be WrongKind, got {other:?}"),
    }
    match store.get_u64("node_key") {
        Err(StorageError::WrongKind { .. }) => {}
        other => panic!("reading bytes as a u64 must be WrongKind, got {other:?}"),
    }
    assert_eq!(
        ok(store.get_u64("generation"), "getting a u64"),
        Some(u64::MAX),
        "a refused read must not change the value"
    );

    // A put of the other kind replaces the value.
    ok(
        store.put_bytes("generation", b"now bytes"),
        "replacing a u64 with bytes",
    );
    assert_eq!(
        ok(store.get_bytes("generation"), "getting replaced bytes"),
        Some(b"now bytes".to_vec()),
        "put_bytes must replace a u64"
    );
}

/// An alert fixture: firing warning `name` of `host` in `team` at version `version`.
pub fn alert(team: &str, host: &str, name: &str, version: u64) -> Alert {
    Alert {
        team: team.to_owned(),
        host: host.to_owned(),
        name: name.to_owned(),
        severity: Severity::Warning,
        summary: format!("{name} is high"),
        first_seen_ms: 1_700_000_000_000,
        last_change_ms: 1_700_000_000_000 + version,
        version,
        state: AlertState::Firing,
        path: Vec::new(),
    }
}

/// Runs every alert-store rule against `store`, which must start empty.
///
/// # Panics
///
/// On the first broken rule, with a message naming it.
pub fn alert_store(store: &impl AlertStore) {
    assert_eq!(
        ok(store.len(), "counting an empty store"),
        0,
        "the alert suite needs an empty store"
    );
    assert!(
        ok(store.is_empty(), "asking an empty store"),
        "an empty store must say so"
    );
    let disk = alert("ops", "web-1", "disk", 1);
    assert_eq!(
        ok(store.get(&disk.key()), "getting an absent alert"),
        None,
        "an absent alert must read as None"
    );

    // Put then get returns the same alert; a second put replaces it.
    ok(store.put(&disk), "putting an alert");
    assert_eq!(
        ok(store.get(&disk.key()), "getting an alert"),
        Some(disk.clone()),
        "get must return what put stored"
    );
    let resolved = Alert {
        state: AlertState::Resolved,
        severity: Severity::Critical,
        path: vec!["border-a".to_owned()],
        ..alert("ops", "web-1", "disk", 2)
    };
    ok(store.put(&resolved), "overwriting an alert");
    assert_eq!(
        ok(store.get(&disk.key()), "getting an overwritten alert"),
        Some(resolved.clone()),
        "a second put must replace the first"
    );
    assert_eq!(
        ok(store.len(), "counting alerts"),
        1,
        "an overwrite must not add an alert"
    );

    // All is sorted by (team, host, name), whatever the insertion order; a host that is a
    // prefix of another sorts first.
    for (team, host, name) in [
        ("ops", "web", "z"),
        ("db", "pg-1", "load"),
        ("ops", "web-1", "cpu"),
        ("ops", "web", "a"),
    ] {
        ok(store.put(&alert(team, host, name, 1)), "putting an alert");
    }
    let keys: Vec<String> = ok(store.all(), "listing alerts")
        .iter()
        .map(|a| a.key().to_string())
        .collect();
    assert_eq!(
        keys,
        [
            "db/pg-1/load",
            "ops/web/a",
            "ops/web/z",
            "ops/web-1/cpu",
            "ops/web-1/disk"
        ],
        "all must return every alert once, sorted by key"
    );
    assert_eq!(
        ok(store.len(), "counting alerts"),
        5,
        "len must count every alert"
    );
    assert!(
        !ok(store.is_empty(), "asking a full store"),
        "a store with alerts is not empty"
    );

    // Remove deletes one alert; removing an absent one is fine.
    ok(store.remove(&disk.key()), "removing an alert");
    assert_eq!(
        ok(store.get(&disk.key()), "getting a removed alert"),
        None,
        "a removed alert must read as None"
    );
    ok(store.remove(&disk.key()), "removing an absent alert");
    assert_eq!(
        ok(store.len(), "counting alerts"),
        4,
        "remove must delete exactly one alert"
    );

    // A key part holding NUL would collide with another key: it is refused, nothing stored.
    let bad = alert("ops", "web\0x", "disk", 1);
    match store.put(&bad) {
        Err(StorageError::InvalidKey { .. }) => {}
        other => panic!("a NUL in a key part must be InvalidKey, got {other:?}"),
    }
    assert_eq!(
        ok(store.get(&bad.key()), "getting a refused alert"),
        None,
        "a refused alert must not be stored"
    );
    assert_eq!(
        ok(store.len(), "counting alerts"),
        4,
        "a refused put must not add an alert"
    );
}

/// The value of `result`, or a panic naming what the suite was doing.
fn ok<T>(result: Result<T, StorageError>, doing: &str) -> T {
    match result {
        Ok(value) => value,
        Err(err) => panic!("{doing} failed: {err}"),
    }
}
