//! The history rules: appending and reading ([`history_store`]) and compaction
//! ([`history_compaction`]), with their fixtures.

use super::ok;
use crate::compaction::{CompactStats, MINUTE_MS};
use crate::error::StorageError;
use crate::history::HistoryStore;
use crate::records::{
    AlertState, CheckLevel, DiskUsage, HistoryEntry, HistoryEvent, Severity, StatusSample,
};

/// A sample fixture of `host` at `at_ms`: load `[load, 2 load, 3 load]`, memory `10 load`
/// percent, disks `/` at `20 load` and `/var` at `load` percent, uptime `at_ms / 1000`,
/// worst check OK.
pub fn status_sample(host: &str, at_ms: u64, load: f32) -> StatusSample {
    StatusSample {
        host: host.to_owned(),
        team: "ops".to_owned(),
        at_ms,
        load: [load, 2.0 * load, 3.0 * load],
        mem_used_pct: 10.0 * load,
        disks: vec![
            DiskUsage {
                mount: "/".to_owned(),
                used_pct: 20.0 * load,
            },
            DiskUsage {
                mount: "/var".to_owned(),
                used_pct: load,
            },
        ],
        uptime_s: at_ms / 1000,
        worst_check: CheckLevel::Ok,
    }
}

/// A history entry holding [`status_sample`]`(host, at_ms, load)`.
pub fn sample_entry(host: &str, at_ms: u64, load: f32) -> HistoryEntry {
    HistoryEntry {
        host: host.to_owned(),
        at_ms,
        event: HistoryEvent::Sample(status_sample(host, at_ms, load)),
    }
}

/// A history entry of a membership change of `host` at `at_ms` to `"alive"`, with `detail`.
pub fn membership_entry(host: &str, at_ms: u64, detail: &str) -> HistoryEntry {
    HistoryEntry {
        host: host.to_owned(),
        at_ms,
        event: HistoryEvent::Membership {
            status: "alive".to_owned(),
            detail: detail.to_owned(),
        },
    }
}

/// A minute mean of `host` at `at_ms` holding [`status_sample`]`(host, at_ms, load)`.
pub fn mean_entry(host: &str, at_ms: u64, load: f32, count: u32) -> HistoryEntry {
    HistoryEntry {
        host: host.to_owned(),
        at_ms,
        event: HistoryEvent::MinuteMean {
            sample: status_sample(host, at_ms, load),
            count,
        },
    }
}

/// A minute start, for history fixtures.
const T0: u64 = 1_700_000_040_000;

/// Runs the history rules of appending and reading against `store`, which must start empty.
///
/// # Panics
///
/// On the first broken rule, with a message naming it.
pub fn history_store(store: &impl HistoryStore) {
    assert_eq!(
        ok(store.len(), "counting an empty store"),
        0,
        "the history suite needs an empty store"
    );
    assert_eq!(
        ok(store.hosts(), "listing hosts"),
        Vec::<String>::new(),
        "an empty store has no hosts"
    );
    assert_eq!(
        ok(store.last_sample("web-1"), "reading a last sample"),
        None,
        "a host without entries has no last sample"
    );

    // Appended out of order, read back in time order; bounds are [since, until).
    let entries = [
        sample_entry("web-1", T0 + 1_000, 1.0),
        membership_entry("web-1", T0 + 2_000, "joined"),
        sample_entry("web-2", T0 + 1_500, 2.0),
        HistoryEntry {
            host: "web-1".to_owned(),
            at_ms: T0 + 3_000,
            event: HistoryEvent::Alert {
                name: "disk".to_owned(),
                state: AlertState::Firing,
                severity: Severity::Critical,
                summary: "/var 97%".to_owned(),
            },
        },
        membership_entry("web-1", T0 + 500, "booted"),
        membership_entry("web", T0 + 1_000, "a host named like a prefix of others"),
    ];
    for entry in &entries {
        ok(store.append(entry), "appending an entry");
    }
    let web1 = ok(store.range("web-1", T0, T0 + 10_000), "reading a range");
    assert_eq!(
        web1,
        [
            entries[4].clone(),
            entries[0].clone(),
            entries[1].clone(),
            entries[3].clone()
        ],
        "range must return the host's entries in time order, and only that host's"
    );
    assert_eq!(
        ok(
            store.range("web-1", T0 + 1_000, T0 + 3_000),
            "reading a range"
        ),
        [entries[0].clone(), entries[1].clone()],
        "range must include since and exclude until"
    );
    assert_eq!(
        ok(
            store.range("web-1", T0 + 3_000, T0 + 3_000),
            "reading an empty range"
        ),
        [],
        "an empty window is empty"
    );
    assert_eq!(
        ok(
            store.range("web-1", T0 + 5_000, T0),
            "reading a reversed range"
        ),
        [],
        "a reversed window is empty"
    );
    assert_eq!(
        ok(store.range("web", 0, u64::MAX), "reading a range"),
        [entries[5].clone()],
        "a host must not see the entries of a host its name prefixes"
    );

    // Two entries of one host and millisecond are both kept, in append order.
    let first = membership_entry("web-1", T0 + 4_000, "first");
    let second = membership_entry("web-1", T0 + 4_000, "second");
    ok(store.append(&first), "appending an entry");
    ok(
        store.append(&second),
        "appending an entry of the same millisecond",
    );
    assert_eq!(
        ok(
            store.range("web-1", T0 + 4_000, T0 + 4_001),
            "reading one millisecond"
        ),
        [first, second],
        "entries of the same host and millisecond must both be kept, in append order"
    );

    assert_eq!(
        ok(store.hosts(), "listing hosts"),
        ["web", "web-1", "web-2"],
        "hosts must list every host once, sorted"
    );
    assert_eq!(
        ok(store.len(), "counting entries"),
        entries.len() + 2,
        "len must count every entry"
    );
    assert!(
        !ok(store.is_empty(), "asking a full store"),
        "a store with entries is not empty"
    );

    // The last sample is the newest sample, not the newest entry; a minute mean counts.
    assert_eq!(
        ok(store.last_sample("web-1"), "reading a last sample"),
        Some(status_sample("web-1", T0 + 1_000, 1.0)),
        "last_sample must skip newer entries that are not samples"
    );
    ok(
        store.append(&sample_entry("web-1", T0 + 500, 9.0)),
        "appending an older sample",
    );
    assert_eq!(
        ok(store.last_sample("web-1"), "reading a last sample"),
        Some(status_sample("web-1", T0 + 1_000, 1.0)),
        "last_sample must go by time, not by append order"
    );
    ok(
        store.append(&mean_entry("web-1", T0 + 5_000, 4.0, 12)),
        "appending a minute mean",
    );
    assert_eq!(
        ok(store.last_sample("web-1"), "reading a last sample"),
        Some(status_sample("web-1", T0 + 5_000, 4.0)),
        "last_sample must return a newer minute mean's sample"
    );
    assert_eq!(
        ok(store.last_sample("web"), "reading a last sample"),
        None,
        "a host with only events has no last sample"
    );

    // A host name holding NUL is refused and stores nothing.
    let len = ok(store.len(), "counting entries");
    match store.append(&sample_entry("web\0x", T0, 1.0)) {
        Err(StorageError::InvalidKey { .. }) => {}
        other => panic!("a NUL in a host name must be InvalidKey, got {other:?}"),
    }
    assert_eq!(
        ok(store.len(), "counting entries"),
        len,
        "a refused append must store nothing"
    );
    assert_eq!(
        ok(store.range("web\0x", 0, u64::MAX), "reading a refused host"),
        [],
        "a refused host has no entries"
    );
}

/// Runs the history rules of compaction (downsampling, expiry, idempotence) against `store`,
/// which must start empty.
///
/// # Panics
///
/// On the first broken rule, with a message naming it.
pub fn history_compaction(store: &impl HistoryStore) {
    assert_eq!(
        ok(store.len(), "counting an empty store"),
        0,
        "the compaction suite needs an empty store"
    );
    let (raw_retention, retention) = (10 * MINUTE_MS, 60 * MINUTE_MS);
    let mut warning = sample_entry("db-1", T0 + 20_000, 2.0);
    if let HistoryEvent::Sample(sample) = &mut warning.event {
        sample.worst_check = CheckLevel::Warning;
    }
    let young = sample_entry("db-1", T0 + 10 * MINUTE_MS + 5_000, 7.0);
    let event = membership_entry("db-1", T0 + 30_000, "between samples");
    let entries = [
        sample_entry("db-1", T0, 1.0),
        warning,
        sample_entry("db-1", T0 + 40_000, 3.0),
        sample_entry("db-1", T0 + MINUTE_MS, 4.0),
        sample_entry("db-1", T0 + MINUTE_MS + 20_000, 6.0),
        event.clone(),
        young.clone(),
        sample_entry("db-2", T0 + 5_000, 10.0),
    ];
    for entry in &entries {
        ok(store.append(entry), "appending an entry");
    }

    // Samples older than the raw retention fold into one mean per host and minute.
    let now = T0 + 12 * MINUTE_MS;
    let stats = ok(store.compact(now, raw_retention, retention), "compacting");
    assert_eq!(
        stats,
        CompactStats {
            folded: 6,
            means_written: 3,
            expired: 0
        },
        "compaction must fold every old sample"
    );
    let mut minute0 = status_sample("db-1", T0, 2.0);
    minute0.uptime_s = (T0 + 40_000) / 1000;
    minute0.worst_check = CheckLevel::Warning;
    let mut minute1 = status_sample("db-1", T0 + MINUTE_MS, 5.0);
    minute1.uptime_s = (T0 + MINUTE_MS + 20_000) / 1000;
    let mean = |sample: &StatusSample, count| HistoryEntry {
        host: sample.host.clone(),
        at_ms: sample.at_ms,
        event: HistoryEvent::MinuteMean {
            sample: sample.clone(),
            count,
        },
    };
    let expected = vec![
        mean(&minute0, 3),
        event.clone(),
        mean(&minute1, 2),
        young.clone(),
    ];
    assert_eq!(
        ok(store.range("db-1", 0, u64::MAX), "reading a compacted host"),
        expected,
        "means must hold the mean load, memory and disks, the highest uptime and the worst check, \
         at the minute's start; other entries and young samples must stay"
    );
    assert_eq!(
        ok(store.last_sample("db-2"), "reading a last sample"),
        Some(StatusSample {
            uptime_s: (T0 + 5_000) / 1000,
            ..status_sample("db-2", T0, 10.0)
        }),
        "a host's last sample may be a mean"
    );

    // Compacting again at the same time changes nothing.
    let again = ok(
        store.compact(now, raw_retention, retention),
        "compacting again",
    );
    assert_eq!(
        again,
        CompactStats::default(),
        "compaction must be idempotent"
    );
    assert_eq!(
        ok(store.range("db-1", 0, u64::MAX), "reading a compacted host"),
        expected,
        "a second compaction must not change entries"
    );

    // A late sample of a compacted minute merges into its mean, weighted by count.
    ok(
        store.append(&sample_entry("db-1", T0 + 50_000, 6.0)),
        "appending a late sample",
    );
    let late = ok(
        store.compact(now, raw_retention, retention),
        "compacting a late sample",
    );
    assert_eq!(
        late,
        CompactStats {
            folded: 1,
            means_written: 1,
            expired: 0
        },
        "a late sample must be folded"
    );
    let minute0 = ok(store.range("db-1", T0, T0 + MINUTE_MS), "reading a minute")
        .into_iter()
        .filter_map(|entry| match entry.event {
            HistoryEvent::MinuteMean { sample, count } => Some((sample.load[0], count)),
            _ => None,
        })
        .collect::<Vec<_>>();
    assert_eq!(
        minute0,
        [(3.0, 4)],
        "a minute must keep one mean, over all its samples"
    );

    // Entries older than the retention expire, of every kind; younger ones stay.
    let kept = membership_entry("db-1", T0 + 2 * MINUTE_MS, "younger than retention");
    ok(store.append(&kept), "appending an entry");
    let now = T0 + 61 * MINUTE_MS;
    let stats = ok(
        store.compact(now, raw_retention, retention),
        "compacting with expiry",
    );
    assert_eq!(
        stats,
        CompactStats {
            folded: 1,
            means_written: 1,
            expired: 3
        },
        "expiry must delete old entries of every kind"
    );
    let mut minute10 = status_sample("db-1", T0 + 10 * MINUTE_MS, 7.0);
    minute10.uptime_s = young.at_ms / 1000;
    assert_eq!(
        ok(store.range("db-1", 0, u64::MAX), "reading an expired host"),
        [mean(&minute1, 2), kept, mean(&minute10, 1)],
        "only entries older than the retention may go"
    );
    assert_eq!(
        ok(store.hosts(), "listing hosts"),
        ["db-1"],
        "a host whose entries all expired is gone"
    );
    assert_eq!(
        ok(store.len(), "counting entries"),
        3,
        "len must follow compaction"
    );
    let again = ok(
        store.compact(now, raw_retention, retention),
        "compacting again",
    );
    assert_eq!(again, CompactStats::default(), "expiry must be idempotent");
}
