//! # rover-storage
//!
//! The persistent state of rover-agent, in one [sled] database per process.
//!
//! - [`Storage`] opens the database in the data directory (failing with
//!   [`StorageError::Locked`] when another process holds it) and hands out one typed store per
//!   keyspace. Each keyspace is a sled tree named in [`trees`].
//! - [`record`] encodes every stored value as a version byte and a postcard body; unreadable
//!   values become [`StorageError::Corrupt`] or [`StorageError::UnknownVersion`] naming the
//!   tree and key, never a panic.
//! - [`records`] defines the domain records the agent stores and gossips: status samples,
//!   alerts and history entries.
//! - [`members`] persists the known cluster members so a restarted agent can rejoin its peers;
//!   [`meta`] keeps small named values such as the last identity generation; [`alerts`] keeps
//!   the alert table; [`history`] records each host's samples and events in time order, and
//!   [`compaction`] downsamples and expires them. Each store has a sled and an in-memory
//!   implementation, held to the same rules by [`conformance`].
//! - [`grid`] keeps the signed grid-control records (addresses, named services, trust) and
//!   decides, by pure rules, which of them hold and why others are dropped.
//! - [`raft`] keeps the election crate's Raft log, vote and state machine as raw bytes
//!   ([`RaftTrees`]); that crate decides what the bytes mean.
//! - [`rewrite`] keeps sled's file bounded: [`Storage::rewrite_if_bloated`] copies the
//!   database into a fresh file when the old one holds too much dead space, and
//!   [`Storage::open`] recovers from a crash in the middle of it.
//! - [`integrity`] opens the database only when it holds what was last known to be on disk
//!   ([`Storage::open_checked`]: a watermark file beside it, every record decoded); a damaged
//!   one is moved aside and replaced by an empty one with a new epoch, and the caller is told.
//! - [`health`] records failed writes ([`Storage::health`]) and gets a failed database back
//!   without a restart ([`Storage::recover`]).
//! - [`keys`] builds big-endian time keys for time-ordered range scans.
//!
//! This crate knows nothing of gossip, HTTP or notifications: it stores what it is given, and
//! callers decide what a stored value means.

// Tests assert with `unwrap`; the library code itself must not use it.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod alerts;
pub mod compaction;
pub mod conformance;
pub mod db;
pub mod error;
pub mod event_log;
pub mod grid;
pub mod health;
pub mod history;
pub mod integrity;
pub mod keys;
pub mod last_samples;
pub mod members;
pub mod meta;
pub mod placement;
pub mod raft;
pub mod record;
pub mod records;
pub mod rewrite;
pub mod topology;
pub mod trees;

pub use crate::alerts::{AlertStore, MemoryAlertStore, SledAlertStore};
pub use crate::compaction::CompactStats;
pub use crate::db::Storage;
pub use crate::error::StorageError;
pub use crate::event_log::EventLogTree;
pub use crate::health::{StorageFailure, StorageHealth};
pub use crate::history::{HistoryStore, MemoryHistoryStore, SledHistoryStore};
pub use crate::integrity::{Damage, OpenReport, OpenState, Watermark};
pub use crate::keys::{parse_time_key, time_key};
pub use crate::last_samples::LastSamples;
pub use crate::members::{MemberStore, MemoryMemberStore, SledMemberStore, StoredMember};
pub use crate::meta::{MemoryMetaStore, MetaStore, SledMetaStore};
pub use crate::raft::RaftTrees;
pub use crate::record::Record;
pub use crate::records::{
    Alert, AlertKey, AlertState, CheckLevel, DiskUsage, HistoryEntry, HistoryEvent, Severity,
    StatusSample,
};
pub use crate::rewrite::RewriteStats;
pub use crate::topology::TopologyTree;

/// Test support shared by the crate's tests.
#[cfg(test)]
pub(crate) mod test_support {
    use std::future::Future;
    use std::path::Path;
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    use std::thread::{self, Thread};
    use std::time::{Duration, Instant};

    use crate::{Storage, StorageError};

    /// Reopens a database just dropped in this process: sled's background thread may hold the
    /// lock a moment longer, so wait for it (at most 5 s).
    pub(crate) fn reopen(path: &Path) -> Storage {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match Storage::open(path) {
                Ok(storage) => return storage,
                Err(StorageError::Locked { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("reopening {}: {e}", path.display()),
            }
        }
    }

    /// Runs a future to completion on this thread; enough for sled's flush future.
    pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
        struct Unpark(Thread);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Unpark(thread::current())));
        let mut context = Context::from_waker(&waker);
        let mut future = pin!(future);
        loop {
            match future.as_mut().poll(&mut context) {
                Poll::Ready(output) => return output,
                Poll::Pending => thread::park(),
            }
        }
    }
}
