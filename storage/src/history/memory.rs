//! The in-memory [`HistoryStore`](super::HistoryStore): the same rules as sled, for tests.

use crate::compaction::{CompactStats, Cutoffs, Folder};
use crate::error::StorageError;
use crate::records::{HistoryEntry, StatusSample};
use std::collections::{btree_map, BTreeMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::*;

/// History in memory, for tests of other crates; fails only on an invalid host name.
#[derive(Debug, Default)]
pub struct MemoryHistoryStore {
    inner: Mutex<MemoryHistory>,
}

#[derive(Debug, Default)]
struct MemoryHistory {
    entries: BTreeMap<MemoryKey, HistoryEntry>,
    next_seq: u32,
}

impl MemoryHistory {
    /// Stores `entry` under a sequence number no entry of its host and millisecond holds.
    fn insert(&mut self, entry: HistoryEntry) {
        loop {
            let key = (entry.host.clone(), entry.at_ms, self.next_seq);
            self.next_seq = self.next_seq.wrapping_add(1);
            if let btree_map::Entry::Vacant(slot) = self.entries.entry(key) {
                slot.insert(entry);
                return;
            }
        }
    }

    /// The entries of `host`, in key order.
    fn of_host<'a>(&'a self, host: &str) -> impl DoubleEndedIterator<Item = &'a HistoryEntry> + 'a {
        let from = (host.to_owned(), 0, 0);
        let to = (host.to_owned(), u64::MAX, u32::MAX);
        self.entries.range(from..=to).map(|(_, entry)| entry)
    }
}

impl MemoryHistoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The entries; every change is made of whole map operations, so a panic while the lock
    /// is held leaves the map consistent and a poisoned lock is taken over.
    fn inner(&self) -> MutexGuard<'_, MemoryHistory> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl HistoryStore for MemoryHistoryStore {
    fn append(&self, entry: &HistoryEntry) -> Result<(), StorageError> {
        if host_prefix(&entry.host).is_none() {
            return Err(invalid_host(&entry.host));
        }
        self.inner().insert(entry.clone());
        Ok(())
    }

    fn range(
        &self,
        host: &str,
        since_ms: u64,
        until_ms: u64,
    ) -> Result<Vec<HistoryEntry>, StorageError> {
        if since_ms >= until_ms {
            return Ok(Vec::new());
        }
        let from = (host.to_owned(), since_ms, 0);
        let to = (host.to_owned(), until_ms, 0);
        Ok(self
            .inner()
            .entries
            .range(from..to)
            .map(|(_, entry)| entry.clone())
            .collect())
    }

    fn hosts(&self) -> Result<Vec<String>, StorageError> {
        let mut hosts: Vec<String> = Vec::new();
        for (host, ..) in self.inner().entries.keys() {
            if hosts.last() != Some(host) {
                hosts.push(host.clone());
            }
        }
        Ok(hosts)
    }

    fn last_sample(&self, host: &str) -> Result<Option<StatusSample>, StorageError> {
        Ok(self
            .inner()
            .of_host(host)
            .rev()
            .find_map(|entry| entry.event.sample().cloned()))
    }

    fn len(&self) -> Result<usize, StorageError> {
        Ok(self.inner().entries.len())
    }

    fn compact(
        &self,
        now_ms: u64,
        raw_retention_ms: u64,
        retention_ms: u64,
    ) -> Result<CompactStats, StorageError> {
        let cutoffs = Cutoffs::new(now_ms, raw_retention_ms, retention_ms);
        let mut inner = self.inner();
        let before = inner.entries.len();
        inner
            .entries
            .retain(|_, entry| entry.at_ms >= cutoffs.expire_before);
        let mut stats = CompactStats {
            expired: before - inner.entries.len(),
            ..CompactStats::default()
        };

        let mut folder = Folder::new(cutoffs);
        let mut plans = Vec::new();
        for (key, entry) in &inner.entries {
            plans.extend(folder.push(key.clone(), entry));
        }
        plans.extend(folder.finish());

        for plan in plans {
            for key in &plan.delete {
                inner.entries.remove(key);
            }
            stats.add(&plan);
            if let Some(entry) = plan.write {
                inner.insert(entry);
            }
        }
        Ok(stats)
    }
}
