//! The names of the sled trees, one per keyspace, in one place.
//!
//! A tree name is part of the on-disk format: renaming a constant orphans the data stored
//! under the old name. To add a keyspace, add its constant here, open it in
//! [`crate::Storage::open`] and give `Storage` an accessor that wraps it in a typed store.

/// Known cluster members, keyed by member name; values are [`crate::StoredMember`] records.
pub const MEMBERS: &str = "members";

/// Small named values of this node (for example its last identity generation), keyed by name.
pub const META: &str = "meta";

/// Alerts raised or received, keyed by `team 0x00 host 0x00 name`; values are
/// [`crate::Alert`] records.
pub const ALERTS: &str = "alerts";

/// Each host's samples and events over time, keyed by `host 0x00 at_ms seq` (big-endian time
/// and sequence number); values are [`crate::HistoryEntry`] records.
pub const HISTORY: &str = "history";

/// Reserved: replicated records of the cluster state machine. Not used yet.
pub const RECORDS: &str = "records";

/// Signed grid-control records (addresses, named services, trust), keyed by `signer (32
/// bytes) | service`; values are [`crate::grid::SignedRecord`] encodings.
pub const GRID: &str = "grid_control";

/// Entries of the election crate's Raft log, keyed by big-endian `u64` index; values are the
/// bytes the election crate encodes (see [`crate::RaftTrees`]).
pub const RAFT_LOG: &str = "raft_log";

/// Small named values of the election crate's Raft node (its vote, committed and last purged
/// log ids), keyed by name; values are the bytes the
/// election crate encodes (see [`crate::RaftTrees`]).
pub const RAFT_META: &str = "raft_meta";

/// The election crate's state machine (the notification ledger), one record per incident and
/// per notification plus the last applied log id, keyed and encoded by the election crate (see
/// [`crate::RaftTrees`]).
pub const RAFT_MACHINE: &str = "raft_machine";

/// The election crate's last Raft snapshot, alone in its tree under one key: a big value
/// kept apart from the small ones written on every commit (sled rewrites a node whole, and a
/// node holding a big value is written as a file of its own each time).
pub const RAFT_SNAPSHOT: &str = "raft_snapshot";

/// Reserved: Raft hard state. Not used yet (the vote is kept in [`RAFT_META`]).
pub const RAFT_STATE: &str = "raft_state";

/// Which switch each host hangs off, keyed by host name; values are the agent's encoded
/// topology records (see [`crate::TopologyTree`]).
pub const TOPOLOGY: &str = "topology";

/// The newest status sample of every host, keyed by host name; values are
/// [`crate::StatusSample`] records. Every host keeps every host's last sample here, while the
/// full history of a host lives only on its replicas (`history.replicas`).
pub const LAST_SAMPLES: &str = "last_samples";

/// The agent's cluster event log (joins, downs, leader changes...), keyed by big-endian `u64`
/// sequence number; values are the agent's encoded events (see [`crate::EventLogTree`]).
pub const EVENT_LOG: &str = "event_log";

/// Every tree name, used and reserved; no two may be equal.
pub const ALL: &[&str] = &[
    MEMBERS,
    META,
    ALERTS,
    HISTORY,
    RECORDS,
    GRID,
    RAFT_LOG,
    RAFT_META,
    RAFT_MACHINE,
    RAFT_SNAPSHOT,
    RAFT_STATE,
    TOPOLOGY,
    LAST_SAMPLES,
    EVENT_LOG,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_two_trees_share_a_name() {
        let mut names = ALL.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
    }

    #[test]
    fn no_tree_uses_sleds_default_tree_name() {
        assert!(ALL.iter().all(|name| *name != "__sled__default"));
    }
}
