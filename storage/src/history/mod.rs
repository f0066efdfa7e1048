//! The recorded history of every host: status samples, membership changes, alert changes and
//! notifications, in time order, downsampled and expired by [`HistoryStore::compact`].
//!
//! [`HistoryStore`] is the interface; [`SledHistoryStore`] keeps entries in the
//! [`trees::HISTORY`] tree and [`MemoryHistoryStore`] keeps them in memory for tests of other
//! crates. Both pass the same [`crate::conformance`] suite.
//!
//! A sled key is `host 0x00 at_ms seq`: the host name, the separator, 8 big-endian bytes of
//! time and 4 big-endian bytes of a process-wide sequence number, so one host's entries are
//! one key prefix in time order, and two entries of the same host and millisecond both stay.
//! A host name holding a NUL byte is refused ([`StorageError::InvalidKey`]).

use std::ops::Bound;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::compaction::{CompactStats, Cutoffs, Folder, MinutePlan};
use crate::db::Shared;
use crate::error::{printable_key, StorageError};
use crate::keys::{time_prefix, KEY_SEPARATOR, TIME_PREFIX_LEN};
use crate::record;
use crate::records::{HistoryEntry, StatusSample};
use crate::trees;

mod memory;

/// How many keys one sled batch of a compaction deletes or writes at most (a batch may exceed
/// it by one minute of one host, which is never split).
pub const COMPACT_BATCH: usize = 512;

/// Length of the sequence number at the end of a history key.
const SEQ_LEN: usize = 4;

/// The sequence number of the next entry appended by this process, shared by every sled
/// history store so two entries of one host and millisecond never get the same key.
static NEXT_SEQ: AtomicU32 = AtomicU32::new(0);

/// Host histories, in time order.
pub trait HistoryStore {
    /// Records `entry`. Never replaces an earlier entry, even one of the same host and
    /// millisecond. Fails with [`StorageError::InvalidKey`] when the host holds a NUL byte.
    fn append(&self, entry: &HistoryEntry) -> Result<(), StorageError>;
    /// The entries of `host` with `since_ms <= at_ms < until_ms`, in time order (entries of
    /// one millisecond in the order they were appended). Fails as a whole if any record in
    /// the window is unreadable.
    fn range(
        &self,
        host: &str,
        since_ms: u64,
        until_ms: u64,
    ) -> Result<Vec<HistoryEntry>, StorageError>;
    /// Every host with at least one entry, sorted.
    fn hosts(&self) -> Result<Vec<String>, StorageError>;
    /// The newest sample of `host`, raw or a minute mean, or `None` if it has none.
    fn last_sample(&self, host: &str) -> Result<Option<StatusSample>, StorageError>;
    /// How many entries are stored, of all hosts and kinds.
    fn len(&self) -> Result<usize, StorageError>;
    /// Whether no entry is stored.
    fn is_empty(&self) -> Result<bool, StorageError> {
        Ok(self.len()? == 0)
    }
    /// Downsamples raw samples older than `now_ms - raw_retention_ms` into one mean per host
    /// and minute, and deletes every entry older than `now_ms - retention_ms`; see
    /// [`crate::compaction`] for the exact rules. Running it twice at the same `now_ms`
    /// changes nothing the second time.
    fn compact(
        &self,
        now_ms: u64,
        raw_retention_ms: u64,
        retention_ms: u64,
    ) -> Result<CompactStats, StorageError>;
}

/// The error for a host name holding a NUL byte; nothing is written.
fn invalid_host(host: &str) -> StorageError {
    StorageError::InvalidKey {
        tree: trees::HISTORY.to_owned(),
        key: printable_key(host.as_bytes()),
        reason: "a host name must not contain a NUL byte".to_owned(),
    }
}

/// The key prefix of every entry of `host`: its name and the separator; `None` when the
/// name holds a NUL byte (no such host can have entries).
fn host_prefix(host: &str) -> Option<Vec<u8>> {
    if host.as_bytes().contains(&KEY_SEPARATOR) {
        return None;
    }
    let mut prefix = Vec::with_capacity(host.len() + 1 + TIME_PREFIX_LEN + SEQ_LEN);
    prefix.extend_from_slice(host.as_bytes());
    prefix.push(KEY_SEPARATOR);
    Some(prefix)
}

/// `prefix` followed by the time prefix of `at_ms`: a range bound within one host.
fn at(prefix: &[u8], at_ms: u64) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(&time_prefix(at_ms));
    key
}

/// The key of the entry of the host with `prefix` at `at_ms` with sequence number `seq`.
fn entry_key(prefix: &[u8], at_ms: u64, seq: u32) -> Vec<u8> {
    let mut key = at(prefix, at_ms);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Splits a history key into host bytes, time and sequence number; `None` when it does not
/// have that layout.
fn parse_key(key: &[u8]) -> Option<(&[u8], u64, u32)> {
    let split = key.iter().position(|byte| *byte == KEY_SEPARATOR)?;
    let (host, rest) = key.split_at(split);
    let rest = rest.get(1..)?;
    let (time, seq) = rest.split_first_chunk::<TIME_PREFIX_LEN>()?;
    let seq: [u8; SEQ_LEN] = seq.try_into().ok()?;
    Some((host, u64::from_be_bytes(*time), u32::from_be_bytes(seq)))
}

/// History in the [`trees::HISTORY`] sled tree. Obtained from [`crate::Storage::history`];
/// cheap to clone, clones share the tree, and keep working after a
/// [`crate::Storage::rewrite_if_bloated`].
#[derive(Debug, Clone)]
pub struct SledHistoryStore {
    shared: Shared,
}

impl SledHistoryStore {
    pub(crate) fn new(shared: Shared) -> Self {
        Self { shared }
    }

    /// Decodes every entry and checks its key, without keeping them; returns how many there
    /// are. Fails on the first bad one (see [`crate::integrity`]).
    pub(crate) fn verify(&self) -> Result<u64, StorageError> {
        self.with(|tree| {
            tree.tree.iter().try_fold(0, |count, item| {
                let (key, bytes) = item.map_err(HistoryTree::scan_error)?;
                HistoryTree::decode(&key, &bytes).map(|_| count + 1)
            })
        })
    }

    /// Runs `op` on the history tree of the current database, holding the read guard
    /// throughout so a rewrite cannot swap the database under it.
    fn with<T>(&self, op: impl FnOnce(&HistoryTree<'_>) -> T) -> T {
        let open = self.shared.read();
        op(&HistoryTree {
            tree: &open.history,
        })
    }
}

impl HistoryStore for SledHistoryStore {
    fn append(&self, entry: &HistoryEntry) -> Result<(), StorageError> {
        self.with(|tree| tree.append(entry))
    }

    fn range(
        &self,
        host: &str,
        since_ms: u64,
        until_ms: u64,
    ) -> Result<Vec<HistoryEntry>, StorageError> {
        self.with(|tree| tree.range(host, since_ms, until_ms))
    }

    fn hosts(&self) -> Result<Vec<String>, StorageError> {
        self.with(|tree| tree.hosts())
    }

    fn last_sample(&self, host: &str) -> Result<Option<StatusSample>, StorageError> {
        self.with(|tree| tree.last_sample(host))
    }

    fn len(&self) -> Result<usize, StorageError> {
        self.with(|tree| tree.len())
    }

    fn compact(
        &self,
        now_ms: u64,
        raw_retention_ms: u64,
        retention_ms: u64,
    ) -> Result<CompactStats, StorageError> {
        self.with(|tree| tree.compact(now_ms, raw_retention_ms, retention_ms))
    }
}

/// The history tree of one database, borrowed for one operation of [`SledHistoryStore`].
struct HistoryTree<'a> {
    tree: &'a sled::Tree,
}

impl HistoryTree<'_> {
    /// Decodes the value at `key` and checks that the key names the entry's host and time.
    fn decode(key: &[u8], bytes: &[u8]) -> Result<HistoryEntry, StorageError> {
        let entry: HistoryEntry = record::decode(trees::HISTORY, key, bytes)?;
        match parse_key(key) {
            Some((host, at_ms, _)) if host == entry.host.as_bytes() && at_ms == entry.at_ms => {
                Ok(entry)
            }
            _ => Err(StorageError::Corrupt {
                tree: trees::HISTORY.to_owned(),
                key: printable_key(key),
                reason: format!("record is for host `{}` at {} ms", entry.host, entry.at_ms),
            }),
        }
    }

    fn scan_error(source: sled::Error) -> StorageError {
        StorageError::Scan {
            tree: trees::HISTORY.to_owned(),
            source,
        }
    }

    fn write_error(key: &[u8], source: sled::Error) -> StorageError {
        StorageError::Write {
            tree: trees::HISTORY.to_owned(),
            key: printable_key(key),
            source,
        }
    }

    /// Decodes every entry of a scan, failing as a whole on the first bad one.
    fn decode_all(iter: sled::Iter) -> Result<Vec<HistoryEntry>, StorageError> {
        iter.map(|item| {
            let (key, bytes) = item.map_err(Self::scan_error)?;
            Self::decode(&key, &bytes)
        })
        .collect()
    }

    /// The host part of every key, in order, as raw bytes: one seek per host.
    fn host_names(&self) -> Result<Vec<Vec<u8>>, StorageError> {
        let mut names = Vec::new();
        let mut from = Bound::Unbounded;
        while let Some(item) = self
            .tree
            .range::<Vec<u8>, _>((from, Bound::Unbounded))
            .next()
        {
            let (key, _) = item.map_err(Self::scan_error)?;
            let end = key
                .iter()
                .position(|byte| *byte == KEY_SEPARATOR)
                .unwrap_or(key.len());
            let name = key[..end].to_vec();
            // Every key of this host is below `name 0x01`; the next host is at or above it.
            let mut next = name.clone();
            next.push(KEY_SEPARATOR + 1);
            from = Bound::Included(next);
            names.push(name);
        }
        Ok(names)
    }

    /// Deletes every entry under `prefix` older than `before`, in batches; returns how many.
    fn expire(&self, prefix: &[u8], before: u64) -> Result<usize, StorageError> {
        let end = at(prefix, before);
        let mut expired = 0;
        loop {
            let keys = self
                .tree
                .range(prefix..end.as_slice())
                .keys()
                .take(COMPACT_BATCH)
                .collect::<Result<Vec<_>, _>>()
                .map_err(Self::scan_error)?;
            let Some(last) = keys.last().cloned() else {
                return Ok(expired);
            };
            let mut batch = sled::Batch::default();
            for key in &keys {
                batch.remove(key);
            }
            self.tree
                .apply_batch(batch)
                .map_err(|source| Self::write_error(&last, source))?;
            expired += keys.len();
        }
    }

    /// Folds the raw samples under `prefix` in the fold window, a chunk of keys at a time;
    /// each minute's plan goes into one batch whole.
    fn fold(
        &self,
        prefix: &[u8],
        cutoffs: Cutoffs,
        stats: &mut CompactStats,
    ) -> Result<(), StorageError> {
        if cutoffs.expire_before >= cutoffs.fold_before {
            return Ok(());
        }
        let end = at(prefix, cutoffs.fold_before);
        let mut from = Bound::Included(at(prefix, cutoffs.expire_before));
        let mut folder = Folder::new(cutoffs);
        loop {
            let chunk = self
                .tree
                .range::<Vec<u8>, _>((from.clone(), Bound::Excluded(end.clone())))
                .take(COMPACT_BATCH)
                .collect::<Result<Vec<_>, _>>()
                .map_err(Self::scan_error)?;
            let Some((last, _)) = chunk.last() else {
                break;
            };
            from = Bound::Excluded(last.to_vec());
            let mut pending = Pending::default();
            for (key, bytes) in chunk {
                let entry = match Self::decode(&key, &bytes) {
                    Ok(entry) => entry,
                    Err(err) => {
                        // Left in place: expiry goes by key, so it still ages out.
                        tracing::warn!(error = %err, "compaction skips an unreadable entry");
                        continue;
                    }
                };
                if let Some(plan) = folder.push(key, &entry) {
                    pending.add(self, prefix, plan)?;
                }
            }
            pending.apply(self, stats)?;
        }
        let mut pending = Pending::default();
        if let Some(plan) = folder.finish() {
            pending.add(self, prefix, plan)?;
        }
        pending.apply(self, stats)
    }

    /// A key for a new entry of the host with `prefix` at `at_ms` that no entry holds yet.
    fn free_key(&self, prefix: &[u8], at_ms: u64) -> Result<Vec<u8>, StorageError> {
        loop {
            let key = entry_key(prefix, at_ms, NEXT_SEQ.fetch_add(1, Ordering::Relaxed));
            let taken = self
                .tree
                .contains_key(&key)
                .map_err(|source| StorageError::Read {
                    tree: trees::HISTORY.to_owned(),
                    key: printable_key(&key),
                    source,
                })?;
            if !taken {
                return Ok(key);
            }
        }
    }
}

/// The plans of one compaction chunk, gathered into one sled batch.
#[derive(Default)]
struct Pending {
    batch: sled::Batch,
    plans: Vec<MinutePlan<sled::IVec>>,
    last_key: Vec<u8>,
}

impl Pending {
    fn add(
        &mut self,
        store: &HistoryTree<'_>,
        prefix: &[u8],
        plan: MinutePlan<sled::IVec>,
    ) -> Result<(), StorageError> {
        for key in &plan.delete {
            self.batch.remove(key);
            self.last_key = key.to_vec();
        }
        if let Some(entry) = &plan.write {
            let key = store.free_key(prefix, entry.at_ms)?;
            self.batch.insert(key.as_slice(), record::encode(entry)?);
        }
        self.plans.push(plan);
        Ok(())
    }

    fn apply(self, store: &HistoryTree<'_>, stats: &mut CompactStats) -> Result<(), StorageError> {
        if self.plans.is_empty() {
            return Ok(());
        }
        store
            .tree
            .apply_batch(self.batch)
            .map_err(|source| HistoryTree::write_error(&self.last_key, source))?;
        for plan in &self.plans {
            stats.add(plan);
        }
        Ok(())
    }
}

impl HistoryStore for HistoryTree<'_> {
    fn append(&self, entry: &HistoryEntry) -> Result<(), StorageError> {
        let prefix = host_prefix(&entry.host).ok_or_else(|| invalid_host(&entry.host))?;
        let bytes = sled::IVec::from(record::encode(entry)?);
        loop {
            let key = entry_key(
                &prefix,
                entry.at_ms,
                NEXT_SEQ.fetch_add(1, Ordering::Relaxed),
            );
            // Insert only if absent: after a restart the sequence starts over, and an earlier
            // entry of the same host and millisecond must not be replaced.
            let swapped = self
                .tree
                .compare_and_swap(&key, None::<&[u8]>, Some(bytes.clone()))
                .map_err(|source| Self::write_error(&key, source))?;
            if swapped.is_ok() {
                return Ok(());
            }
        }
    }

    fn range(
        &self,
        host: &str,
        since_ms: u64,
        until_ms: u64,
    ) -> Result<Vec<HistoryEntry>, StorageError> {
        let Some(prefix) = host_prefix(host) else {
            return Ok(Vec::new());
        };
        if since_ms >= until_ms {
            return Ok(Vec::new());
        }
        Self::decode_all(
            self.tree
                .range(at(&prefix, since_ms)..at(&prefix, until_ms)),
        )
    }

    fn hosts(&self) -> Result<Vec<String>, StorageError> {
        self.host_names()?
            .into_iter()
            .map(|name| {
                String::from_utf8(name).map_err(|err| StorageError::Corrupt {
                    tree: trees::HISTORY.to_owned(),
                    key: printable_key(err.as_bytes()),
                    reason: "host name is not UTF-8".to_owned(),
                })
            })
            .collect()
    }

    fn last_sample(&self, host: &str) -> Result<Option<StatusSample>, StorageError> {
        let Some(prefix) = host_prefix(host) else {
            return Ok(None);
        };
        for item in self.tree.scan_prefix(&prefix).rev() {
            let (key, bytes) = item.map_err(Self::scan_error)?;
            let entry = Self::decode(&key, &bytes)?;
            if let Some(sample) = entry.event.sample() {
                return Ok(Some(sample.clone()));
            }
        }
        Ok(None)
    }

    fn len(&self) -> Result<usize, StorageError> {
        self.tree.iter().keys().try_fold(0, |count, key| {
            key.map(|_| count + 1).map_err(Self::scan_error)
        })
    }

    fn compact(
        &self,
        now_ms: u64,
        raw_retention_ms: u64,
        retention_ms: u64,
    ) -> Result<CompactStats, StorageError> {
        let cutoffs = Cutoffs::new(now_ms, raw_retention_ms, retention_ms);
        let mut stats = CompactStats::default();
        for mut prefix in self.host_names()? {
            prefix.push(KEY_SEPARATOR);
            stats.expired += self.expire(&prefix, cutoffs.expire_before)?;
            self.fold(&prefix, cutoffs, &mut stats)?;
        }
        tracing::debug!(
            folded = stats.folded,
            means_written = stats.means_written,
            expired = stats.expired,
            "history compacted"
        );
        Ok(stats)
    }
}

/// The key of an entry in [`MemoryHistoryStore`]: host, time, sequence number, in the order
/// of the sled keys.
type MemoryKey = (String, u64, u32);

pub use self::memory::MemoryHistoryStore;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compaction::MINUTE_MS;
    use crate::conformance::{self, membership_entry, sample_entry};
    use crate::record::Record;
    use crate::Storage;

    const T0: u64 = 1_700_000_040_000;

    fn open() -> (tempfile::TempDir, Storage) {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        (dir, storage)
    }

    #[test]
    fn the_sled_history_store_passes_the_conformance_suite() {
        let (_dir, storage) = open();
        conformance::history_store(&storage.history());
    }

    #[test]
    fn the_memory_history_store_passes_the_conformance_suite() {
        conformance::history_store(&MemoryHistoryStore::new());
    }

    #[test]
    fn the_sled_history_store_passes_the_compaction_suite() {
        let (_dir, storage) = open();
        conformance::history_compaction(&storage.history());
    }

    #[test]
    fn the_memory_history_store_passes_the_compaction_suite() {
        conformance::history_compaction(&MemoryHistoryStore::new());
    }

    #[test]
    fn a_history_key_is_host_nul_time_and_sequence() {
        let (_dir, storage) = open();
        storage
            .history()
            .append(&sample_entry("web-1", T0, 1.0))
            .unwrap();
        let raw = storage.raw_tree(trees::HISTORY);
        let keys: Vec<sled::IVec> = raw.iter().keys().map(Result::unwrap).collect();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].len(), "web-1".len() + 1 + 8 + 4);
        assert!(keys[0].starts_with(b"web-1\0"));
        let (host, at_ms, _) = parse_key(&keys[0]).unwrap();
        assert_eq!((host, at_ms), (&b"web-1"[..], T0));
    }

    #[test]
    fn a_key_without_the_full_layout_does_not_parse() {
        assert_eq!(parse_key(b"web-1"), None);
        assert_eq!(parse_key(b"web-1\0short"), None);
        let mut long = entry_key(b"web-1\0", T0, 7);
        assert_eq!(parse_key(&long), Some((&b"web-1"[..], T0, 7)));
        long.push(0);
        assert_eq!(parse_key(&long), None);
    }

    #[test]
    fn a_corrupt_history_record_names_its_tree_and_key() {
        let (_dir, storage) = open();
        let key = entry_key(b"web-1\0", T0, 3);
        let raw = storage.raw_tree(trees::HISTORY);
        raw.insert(&key, &[HistoryEntry::VERSION, 0xff, 0xff])
            .unwrap();

        let err = storage.history().range("web-1", 0, u64::MAX).unwrap_err();
        let printed = printable_key(&key);
        assert!(
            matches!(&err, StorageError::Corrupt { tree, key, .. }
                if tree == trees::HISTORY && *key == printed),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains("`history`") && message.contains(&printed),
            "{message}"
        );
        assert!(storage.history().last_sample("web-1").is_err());
    }

    #[test]
    fn an_entry_stored_under_another_host_or_time_is_corrupt() {
        let (_dir, storage) = open();
        let raw = storage.raw_tree(trees::HISTORY);
        let bytes = record::encode(&sample_entry("web-2", T0, 1.0)).unwrap();
        raw.insert(entry_key(b"web-1\0", T0, 0), bytes).unwrap();
        let bytes = record::encode(&sample_entry("web-3", T0 + 1, 1.0)).unwrap();
        raw.insert(entry_key(b"web-3\0", T0, 0), bytes).unwrap();

        for host in ["web-1", "web-3"] {
            let err = storage.history().range(host, 0, u64::MAX).unwrap_err();
            assert!(
                matches!(&err, StorageError::Corrupt { reason, .. } if reason.contains("record is for host")),
                "{err:?}"
            );
        }
    }

    #[test]
    fn compaction_skips_an_unreadable_entry_and_expires_it_by_its_key() {
        let (_dir, storage) = open();
        let history = storage.history();
        history.append(&sample_entry("web-1", T0, 1.0)).unwrap();
        let raw = storage.raw_tree(trees::HISTORY);
        raw.insert(entry_key(b"web-1\0", T0 + 1, 0), &[HistoryEntry::VERSION])
            .unwrap();

        let stats = history
            .compact(T0 + 20 * MINUTE_MS, 0, 60 * MINUTE_MS)
            .unwrap();
        assert_eq!((stats.folded, stats.means_written), (1, 1));
        assert_eq!(history.len().unwrap(), 2, "the unreadable entry stays");

        let stats = history
            .compact(T0 + 120 * MINUTE_MS, 0, 60 * MINUTE_MS)
            .unwrap();
        assert_eq!(stats.expired, 2);
        assert_eq!(history.len().unwrap(), 0);
    }

    #[test]
    fn flushed_entries_survive_dropping_and_reopening_the_storage() {
        const N: usize = 500;
        let dir = tempfile::tempdir().unwrap();
        {
            let storage = Storage::open(dir.path()).unwrap();
            let history = storage.history();
            for i in 0..N {
                // Five hosts, and every pair of entries shares a millisecond.
                let host = format!("web-{}", i % 5);
                history
                    .append(&sample_entry(&host, T0 + (i / 10) as u64, 1.0))
                    .unwrap();
            }
            storage.flush().unwrap();
        }
        let storage = crate::test_support::reopen(dir.path());
        assert_eq!(storage.history().len().unwrap(), N);
        assert_eq!(storage.history().hosts().unwrap().len(), 5);
    }

    #[test]
    fn sled_compaction_in_batches_agrees_with_the_memory_store() {
        let (_dir, storage) = open();
        let sled = storage.history();
        let memory = MemoryHistoryStore::new();
        // Three hosts, a sample every 5 s for 90 minutes, an event every 7 minutes: several
        // compaction chunks per host, with minutes straddling chunk boundaries.
        for host in ["a", "b", "c"] {
            for i in 0..(90 * 12) {
                let at_ms = T0 + i * 5_000 + 7;
                let entry = sample_entry(host, at_ms, (i % 17) as f32 / 4.0);
                sled.append(&entry).unwrap();
                memory.append(&entry).unwrap();
                if i % 84 == 0 {
                    let event = membership_entry(host, at_ms, "event");
                    sled.append(&event).unwrap();
                    memory.append(&event).unwrap();
                }
            }
        }
        let now = T0 + 90 * MINUTE_MS;
        for (raw, retention) in [(10, 80), (10, 80), (5, 30)] {
            let stats = sled
                .compact(now, raw * MINUTE_MS, retention * MINUTE_MS)
                .unwrap();
            let expected = memory
                .compact(now, raw * MINUTE_MS, retention * MINUTE_MS)
                .unwrap();
            assert_eq!(stats, expected);
        }
        assert_eq!(sled.len().unwrap(), memory.len().unwrap());
        for host in ["a", "b", "c"] {
            assert_eq!(
                sled.range(host, 0, u64::MAX).unwrap(),
                memory.range(host, 0, u64::MAX).unwrap()
            );
        }
    }
}
