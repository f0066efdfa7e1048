//! The Raft log and metadata of the election crate, as raw bytes in two sled trees.
//!
//! [`RaftTrees`] stores what the election crate gives it without decoding it: log entries in
//! [`trees::RAFT_LOG`], keyed by big-endian `u64` index so that sled's key order is index order,
//! small named values (vote, committed id) in [`trees::RAFT_META`], the state machine's
//! records (keys and values of the election crate's choosing) in [`trees::RAFT_MACHINE`],
//! written a few records at a time as entries are applied, and the last snapshot alone in
//! [`trees::RAFT_SNAPSHOT`] (a big value beside small ones that change on every commit would
//! be rewritten with them: sled writes a node whole). Writes are
//! durable once [`RaftTrees::flush`] or [`RaftTrees::flush_async`] returns.

use std::convert::Infallible;
use std::ops::RangeBounds;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use crate::db::Shared;
use crate::error::{printable_key, StorageError};
use crate::trees;

/// The Raft log, metadata, state machine and snapshot of one node, in the
/// [`trees::RAFT_LOG`], [`trees::RAFT_META`], [`trees::RAFT_MACHINE`] and
/// [`trees::RAFT_SNAPSHOT`] sled trees. Obtained from [`crate::Storage::raft`]; cheap to clone, clones share the trees,
/// and keep working after a [`crate::Storage::rewrite_if_bloated`].
#[derive(Debug, Clone)]
pub struct RaftTrees {
    shared: Shared,
}

/// One state machine record: its key and value, as the election crate encodes them.
pub type MachineRecord = (Vec<u8>, Vec<u8>);

/// A state machine record to store (`Some` value) or remove (`None`).
pub type MachineWrite = (Vec<u8>, Option<Vec<u8>>);

/// The key of the snapshot in [`trees::RAFT_SNAPSHOT`].
const SNAPSHOT_KEY: &[u8] = b"snapshot";

/// The sled key of the log entry at `index`.
fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// The index of the log entry stored under `key`.
fn key_index(key: &[u8]) -> Result<u64, StorageError> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| StorageError::Corrupt {
        tree: trees::RAFT_LOG.to_owned(),
        key: printable_key(key),
        reason: format!("a log key is 8 bytes, this one is {}", key.len()),
    })?;
    Ok(u64::from_be_bytes(bytes))
}

/// A [`StorageError::Scan`] of the tree `tree`.
fn scan_error(tree: &str) -> impl FnOnce(sled::Error) -> StorageError + '_ {
    move |source| StorageError::Scan {
        tree: tree.to_owned(),
        source,
    }
}

/// A [`StorageError::Write`] of `key` (printable) in the tree `tree`.
fn write_error(tree: &str, key: String) -> impl FnOnce(sled::Error) -> StorageError + '_ {
    move |source| StorageError::Write {
        tree: tree.to_owned(),
        key,
        source,
    }
}

impl RaftTrees {
    pub(crate) fn new(shared: Shared) -> Self {
        Self { shared }
    }

    /// The value stored under `key` in [`trees::RAFT_META`], or `None` if there is none.
    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let value = self
            .shared
            .read()
            .raft_meta
            .get(key.as_bytes())
            .map_err(|source| StorageError::Read {
                tree: trees::RAFT_META.to_owned(),
                key: printable_key(key.as_bytes()),
                source,
            })?;
        Ok(value.map(|value| value.to_vec()))
    }

    /// Stores `value` under `key` in [`trees::RAFT_META`], replacing any value there.
    pub fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.shared
            .read()
            .raft_meta
            .insert(key.as_bytes(), value)
            .map_err(write_error(trees::RAFT_META, printable_key(key.as_bytes())))?;
        Ok(())
    }

    /// Stores the log entries `(index, bytes)`, replacing any with the same index, all or none
    /// (one sled batch).
    pub fn put_entries(&self, entries: &[(u64, Vec<u8>)]) -> Result<(), StorageError> {
        let (Some((first, _)), Some((last, _))) = (entries.first(), entries.last()) else {
            return Ok(());
        };
        let mut batch = sled::Batch::default();
        for (index, bytes) in entries {
            batch.insert(&index_key(*index), bytes.as_slice());
        }
        self.shared
            .read()
            .raft_log
            .apply_batch(batch)
            .map_err(write_error(
                trees::RAFT_LOG,
                format!("entries {first} to {last}"),
            ))
    }

    /// The log entries with `from <= index < to`, in index order.
    pub fn entries(&self, from: u64, to: u64) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        if from >= to {
            return Ok(Vec::new());
        }
        let open = self.shared.read();
        open.raft_log
            .range(index_key(from)..index_key(to))
            .map(|item| {
                let (key, value) = item.map_err(scan_error(trees::RAFT_LOG))?;
                Ok((key_index(&key)?, value.to_vec()))
            })
            .collect()
    }

    /// The log entry with the highest index, or `None` when the log is empty.
    pub fn last_entry(&self) -> Result<Option<(u64, Vec<u8>)>, StorageError> {
        let last = self
            .shared
            .read()
            .raft_log
            .last()
            .map_err(scan_error(trees::RAFT_LOG))?;
        last.map(|(key, value)| Ok((key_index(&key)?, value.to_vec())))
            .transpose()
    }

    /// Deletes the log entries with `index >= from`, all or none (one sled batch).
    pub fn delete_from(&self, from: u64) -> Result<(), StorageError> {
        self.delete_range(index_key(from).., format!("entries from {from}"))
    }

    /// Deletes the log entries with `index <= through`, all or none (one sled batch).
    pub fn delete_through(&self, through: u64) -> Result<(), StorageError> {
        self.delete_range(..=index_key(through), format!("entries through {through}"))
    }

    /// Deletes the log entries whose keys are in `range`; `what` names them in errors.
    fn delete_range(
        &self,
        range: impl RangeBounds<[u8; 8]>,
        what: String,
    ) -> Result<(), StorageError> {
        let open = self.shared.read();
        let mut batch = sled::Batch::default();
        for key in open.raft_log.range(range).keys() {
            batch.remove(key.map_err(scan_error(trees::RAFT_LOG))?);
        }
        open.raft_log
            .apply_batch(batch)
            .map_err(write_error(trees::RAFT_LOG, what))
    }

    /// Removes the value stored under `key` in [`trees::RAFT_META`], if any.
    pub fn remove_meta(&self, key: &str) -> Result<(), StorageError> {
        self.shared
            .read()
            .raft_meta
            .remove(key.as_bytes())
            .map_err(write_error(trees::RAFT_META, printable_key(key.as_bytes())))?;
        Ok(())
    }

    /// The stored snapshot, if any.
    pub fn get_snapshot(&self) -> Result<Option<Vec<u8>>, StorageError> {
        let value = self
            .shared
            .read()
            .raft_snapshot
            .get(SNAPSHOT_KEY)
            .map_err(|source| StorageError::Read {
                tree: trees::RAFT_SNAPSHOT.to_owned(),
                key: printable_key(SNAPSHOT_KEY),
                source,
            })?;
        Ok(value.map(|value| value.to_vec()))
    }

    /// Stores the snapshot, replacing the one there.
    pub fn put_snapshot(&self, bytes: &[u8]) -> Result<(), StorageError> {
        self.shared
            .read()
            .raft_snapshot
            .insert(SNAPSHOT_KEY, bytes)
            .map_err(write_error(
                trees::RAFT_SNAPSHOT,
                printable_key(SNAPSHOT_KEY),
            ))?;
        Ok(())
    }

    /// Every record of the state machine, in key order.
    pub fn machine_records(&self) -> Result<Vec<MachineRecord>, StorageError> {
        self.shared
            .read()
            .raft_machine
            .iter()
            .map(|item| {
                let (key, value) = item.map_err(scan_error(trees::RAFT_MACHINE))?;
                Ok((key.to_vec(), value.to_vec()))
            })
            .collect()
    }

    /// Stores (`Some`) or removes (`None`) state machine records, all or none (one sled
    /// batch).
    pub fn write_machine(
        &self,
        changes: &[(Vec<u8>, Option<Vec<u8>>)],
    ) -> Result<(), StorageError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for (key, value) in changes {
            match value {
                Some(value) => batch.insert(key.as_slice(), value.as_slice()),
                None => batch.remove(key.as_slice()),
            }
        }
        self.shared
            .read()
            .raft_machine
            .apply_batch(batch)
            .map_err(write_error(
                trees::RAFT_MACHINE,
                format!("{} state machine records", changes.len()),
            ))
    }

    /// Replaces every record of the state machine with `records`, all or none (one sled
    /// batch): what a snapshot installs.
    pub fn replace_machine(&self, records: &[MachineRecord]) -> Result<(), StorageError> {
        let open = self.shared.read();
        let mut batch = sled::Batch::default();
        for key in open.raft_machine.iter().keys() {
            batch.remove(key.map_err(scan_error(trees::RAFT_MACHINE))?);
        }
        for (key, value) in records {
            batch.insert(key.as_slice(), value.as_slice());
        }
        open.raft_machine.apply_batch(batch).map_err(write_error(
            trees::RAFT_MACHINE,
            format!("every state machine record ({} new)", records.len()),
        ))
    }

    /// Empties the four trees, the log, every named value, the state machine and the
    /// snapshot, in one sled transaction: after a crash either everything or nothing is gone. A write made by
    /// another thread while this runs may survive it.
    pub fn clear(&self) -> Result<(), StorageError> {
        let open = self.shared.read();
        let keys = |tree: &sled::Tree, name: &str| -> Result<Vec<sled::IVec>, StorageError> {
            tree.iter()
                .keys()
                .collect::<Result<_, _>>()
                .map_err(scan_error(name))
        };
        let log_keys = keys(&open.raft_log, trees::RAFT_LOG)?;
        let meta_keys = keys(&open.raft_meta, trees::RAFT_META)?;
        let machine_keys = keys(&open.raft_machine, trees::RAFT_MACHINE)?;
        let snapshot_keys = keys(&open.raft_snapshot, trees::RAFT_SNAPSHOT)?;
        (
            &open.raft_log,
            &open.raft_meta,
            &open.raft_machine,
            &open.raft_snapshot,
        )
            .transaction(|(log, meta, machine, snapshot)| {
                for key in &log_keys {
                    log.remove(key)?;
                }
                for key in &meta_keys {
                    meta.remove(key)?;
                }
                for key in &machine_keys {
                    machine.remove(key)?;
                }
                for key in &snapshot_keys {
                    snapshot.remove(key)?;
                }
                Ok::<(), ConflictableTransactionError<Infallible>>(())
            })
            .map_err(|err| match err {
                TransactionError::Abort(never) => match never {},
                TransactionError::Storage(source) => StorageError::Write {
                    tree: format!(
                        "{}, {}, {} and {}",
                        trees::RAFT_LOG,
                        trees::RAFT_META,
                        trees::RAFT_MACHINE,
                        trees::RAFT_SNAPSHOT
                    ),
                    key: "every key".to_owned(),
                    source,
                },
            })
    }

    /// Writes every buffered change to disk and waits for the fsync (of the whole database,
    /// like [`crate::Storage::flush`]). Blocks the calling thread; from async code use
    /// [`RaftTrees::flush_async`].
    pub fn flush(&self) -> Result<(), StorageError> {
        self.shared.flush()
    }

    /// Like [`RaftTrees::flush`], but the disk work runs on sled's thread pool and the caller
    /// awaits it instead of blocking (see [`crate::Storage::flush_async`]).
    pub async fn flush_async(&self) -> Result<(), StorageError> {
        self.shared.flush_async().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Storage;

    fn entry(index: u64) -> (u64, Vec<u8>) {
        (index, format!("entry {index}").into_bytes())
    }

    /// A store holding the entries `indexes`.
    fn with_entries(indexes: impl IntoIterator<Item = u64>) -> (tempfile::TempDir, RaftTrees) {
        let dir = tempfile::tempdir().unwrap();
        let raft = Storage::open(dir.path()).unwrap().raft();
        let entries: Vec<_> = indexes.into_iter().map(entry).collect();
        raft.put_entries(&entries).unwrap();
        (dir, raft)
    }

    fn indexes(raft: &RaftTrees) -> Vec<u64> {
        raft.entries(0, u64::MAX)
            .unwrap()
            .into_iter()
            .map(|(index, _)| index)
            .collect()
    }

    #[test]
    fn a_meta_value_reads_back_and_a_missing_one_is_none() {
        let (_dir, raft) = with_entries([]);
        assert_eq!(raft.get_meta("vote").unwrap(), None);
        raft.put_meta("vote", b"term 3").unwrap();
        raft.put_meta("vote", b"term 4").unwrap();
        assert_eq!(raft.get_meta("vote").unwrap(), Some(b"term 4".to_vec()));
    }

    #[test]
    fn put_entries_stores_each_entry_by_index_and_replaces_equal_indexes() {
        let (_dir, raft) = with_entries([1, 2, 3]);
        raft.put_entries(&[(2, b"new".to_vec())]).unwrap();
        raft.put_entries(&[]).unwrap();
        assert_eq!(
            raft.entries(0, 10).unwrap(),
            vec![entry(1), (2, b"new".to_vec()), entry(3)]
        );
    }

    #[test]
    fn entries_returns_the_half_open_range_in_index_order() {
        // 255 and 256 differ in their first key byte: big-endian keys keep index order.
        let (_dir, raft) = with_entries([256, 1, 255, 5, 3]);
        assert_eq!(
            raft.entries(3, 256).unwrap(),
            vec![entry(3), entry(5), entry(255)]
        );
        assert_eq!(raft.entries(2, 3).unwrap(), vec![]);
        assert_eq!(raft.entries(5, 5).unwrap(), vec![]);
        assert_eq!(raft.entries(9, 1).unwrap(), vec![]);
        assert_eq!(indexes(&raft), [1, 3, 5, 255, 256]);
    }

    #[test]
    fn last_entry_is_the_highest_index_or_none_when_empty() {
        let (_dir, raft) = with_entries([]);
        assert_eq!(raft.last_entry().unwrap(), None);
        raft.put_entries(&[entry(300), entry(7)]).unwrap();
        assert_eq!(raft.last_entry().unwrap(), Some(entry(300)));
    }

    #[test]
    fn delete_from_removes_the_entry_at_the_index_and_every_later_one() {
        let (_dir, raft) = with_entries(1..=6);
        raft.delete_from(4).unwrap();
        assert_eq!(indexes(&raft), [1, 2, 3]);
        raft.delete_from(10).unwrap();
        assert_eq!(indexes(&raft), [1, 2, 3]);
    }

    #[test]
    fn delete_through_removes_the_entry_at_the_index_and_every_earlier_one() {
        let (_dir, raft) = with_entries(1..=6);
        raft.delete_through(3).unwrap();
        assert_eq!(indexes(&raft), [4, 5, 6]);
        raft.delete_through(0).unwrap();
        assert_eq!(indexes(&raft), [4, 5, 6]);
        raft.delete_through(u64::MAX).unwrap();
        assert_eq!(indexes(&raft), Vec::<u64>::new());
    }

    #[test]
    fn clear_empties_the_log_the_meta_values_and_the_state_machine() {
        let (_dir, raft) = with_entries(1..=3);
        raft.put_meta("vote", b"v").unwrap();
        raft.put_meta("machine", b"m").unwrap();
        raft.write_machine(&[(b"i1".to_vec(), Some(b"x".to_vec()))])
            .unwrap();
        raft.put_snapshot(b"s").unwrap();
        raft.clear().unwrap();
        assert_eq!(raft.get_snapshot().unwrap(), None);
        assert_eq!(raft.last_entry().unwrap(), None);
        assert_eq!(raft.get_meta("vote").unwrap(), None);
        assert_eq!(raft.get_meta("machine").unwrap(), None);
        assert_eq!(raft.machine_records().unwrap(), vec![]);
    }

    fn record(key: &str, value: &str) -> (Vec<u8>, Vec<u8>) {
        (key.as_bytes().to_vec(), value.as_bytes().to_vec())
    }

    #[test]
    fn state_machine_records_are_written_and_removed_a_few_at_a_time() {
        let (_dir, raft) = with_entries([]);
        let put = |k: &str, v: &str| (k.as_bytes().to_vec(), Some(v.as_bytes().to_vec()));
        raft.write_machine(&[put("a", "1"), put("b", "2"), put("c", "3")])
            .unwrap();
        raft.write_machine(&[
            put("b", "22"),
            (b"c".to_vec(), None),
            (b"zz".to_vec(), None),
        ])
        .unwrap();
        raft.write_machine(&[]).unwrap();
        assert_eq!(
            raft.machine_records().unwrap(),
            vec![record("a", "1"), record("b", "22")]
        );
    }

    #[test]
    fn the_snapshot_is_replaced_whole_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let raft = Storage::open(dir.path()).unwrap().raft();
            assert_eq!(raft.get_snapshot().unwrap(), None);
            raft.put_snapshot(b"first").unwrap();
            raft.put_snapshot(b"second").unwrap();
            raft.flush().unwrap();
        }
        let raft = crate::test_support::reopen(dir.path()).raft();
        assert_eq!(raft.get_snapshot().unwrap(), Some(b"second".to_vec()));
    }

    #[test]
    fn replacing_the_state_machine_keeps_only_the_new_records() {
        let (_dir, raft) = with_entries([]);
        raft.write_machine(&[(b"old".to_vec(), Some(b"1".to_vec()))])
            .unwrap();
        raft.replace_machine(&[record("new", "2"), record("other", "3")])
            .unwrap();
        assert_eq!(
            raft.machine_records().unwrap(),
            vec![record("new", "2"), record("other", "3")]
        );
        raft.put_meta("machine", b"legacy").unwrap();
        raft.remove_meta("machine").unwrap();
        raft.remove_meta("never-there").unwrap();
        assert_eq!(raft.get_meta("machine").unwrap(), None);
    }

    #[test]
    fn flushed_entries_and_meta_values_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let raft = Storage::open(dir.path()).unwrap().raft();
            raft.put_entries(&[entry(1), entry(2)]).unwrap();
            raft.put_meta("vote", b"v").unwrap();
            raft.flush().unwrap();
        }
        let raft = crate::test_support::reopen(dir.path()).raft();
        assert_eq!(raft.entries(0, 10).unwrap(), vec![entry(1), entry(2)]);
        assert_eq!(raft.get_meta("vote").unwrap(), Some(b"v".to_vec()));
    }

    #[test]
    fn an_async_flush_makes_entries_durable_too() {
        let dir = tempfile::tempdir().unwrap();
        {
            let raft = Storage::open(dir.path()).unwrap().raft();
            raft.put_entries(&[entry(9)]).unwrap();
            crate::test_support::block_on(raft.flush_async()).unwrap();
        }
        let raft = crate::test_support::reopen(dir.path()).raft();
        assert_eq!(raft.last_entry().unwrap(), Some(entry(9)));
    }

    #[test]
    fn a_rewrite_keeps_the_raft_trees_and_stores_obtained_before_it_keep_working() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path().join("db")).unwrap();
        let raft = storage.raft();
        raft.put_entries(&[entry(1), entry(2)]).unwrap();
        raft.put_meta("vote", b"v").unwrap();
        // sled's file has no size to rewrite before its first flush.
        storage.flush().unwrap();

        assert!(storage.rewrite_if_bloated(0.0, 0).unwrap().is_some());

        assert_eq!(raft.entries(0, 10).unwrap(), vec![entry(1), entry(2)]);
        assert_eq!(raft.get_meta("vote").unwrap(), Some(b"v".to_vec()));
        raft.put_entries(&[entry(3)]).unwrap();
        assert_eq!(storage.raft().last_entry().unwrap(), Some(entry(3)));
    }

    #[test]
    fn a_log_key_that_is_not_eight_bytes_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        storage
            .raw_tree(trees::RAFT_LOG)
            .insert("bad", "x")
            .unwrap();
        let err = storage.raft().last_entry().unwrap_err();
        assert!(
            matches!(&err, StorageError::Corrupt { tree, key, .. }
                if tree == trees::RAFT_LOG && key == "bad"),
            "{err:?}"
        );
    }
}
