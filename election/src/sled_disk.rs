//! [`RaftDisk`] on the agent's sled database: [`RaftTrees`] (from `Storage::raft`) keeps the
//! log, the named values and the ledger records as the bytes [`crate::log_store`] and [`crate::state_machine`]
//! encode; its errors become [`DiskError`]s saying what was being done.

use rover_storage::raft::RaftTrees;
use rover_storage::StorageError;

use crate::disk::{DiskError, MachineRecord, MachineWrite, RaftDisk};

/// A [`DiskError`] for a failed `doing` (such as `reading raft meta value \`vote\``), carrying
/// sled's error, which names the tree and key.
fn disk_error(doing: impl std::fmt::Display) -> impl FnOnce(StorageError) -> DiskError {
    move |err| DiskError(format!("{doing} in sled: {err}"))
}

impl RaftDisk for RaftTrees {
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, DiskError> {
        RaftTrees::get_meta(self, key)
            .map_err(disk_error(format_args!("reading raft meta value `{key}`")))
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), DiskError> {
        RaftTrees::put_meta(self, key, value)
            .map_err(disk_error(format_args!("writing raft meta value `{key}`")))
    }

    fn remove_meta(&self, key: &str) -> Result<(), DiskError> {
        RaftTrees::remove_meta(self, key)
            .map_err(disk_error(format_args!("removing raft meta value `{key}`")))
    }

    fn get_snapshot(&self) -> Result<Option<Vec<u8>>, DiskError> {
        RaftTrees::get_snapshot(self).map_err(disk_error("reading the raft snapshot"))
    }

    fn put_snapshot(&self, bytes: &[u8]) -> Result<(), DiskError> {
        RaftTrees::put_snapshot(self, bytes).map_err(disk_error(format_args!(
            "writing the raft snapshot ({} bytes)",
            bytes.len()
        )))
    }

    fn machine_records(&self) -> Result<Vec<MachineRecord>, DiskError> {
        RaftTrees::machine_records(self).map_err(disk_error("reading the ledger records"))
    }

    fn write_machine(&self, changes: &[MachineWrite]) -> Result<(), DiskError> {
        RaftTrees::write_machine(self, changes).map_err(disk_error(format_args!(
            "writing {} ledger records",
            changes.len()
        )))
    }

    fn replace_machine(&self, records: &[MachineRecord]) -> Result<(), DiskError> {
        RaftTrees::replace_machine(self, records).map_err(disk_error(format_args!(
            "replacing the ledger with {} records",
            records.len()
        )))
    }

    fn put_entries(&self, entries: &[(u64, Vec<u8>)]) -> Result<(), DiskError> {
        RaftTrees::put_entries(self, entries).map_err(disk_error(format_args!(
            "appending {} raft log entries",
            entries.len()
        )))
    }

    fn entries(&self, from: u64, to: u64) -> Result<Vec<(u64, Vec<u8>)>, DiskError> {
        RaftTrees::entries(self, from, to).map_err(disk_error(format_args!(
            "reading raft log entries {from}..{to}"
        )))
    }

    fn last_entry(&self) -> Result<Option<(u64, Vec<u8>)>, DiskError> {
        RaftTrees::last_entry(self).map_err(disk_error("reading the last raft log entry"))
    }

    fn delete_from(&self, from: u64) -> Result<(), DiskError> {
        RaftTrees::delete_from(self, from).map_err(disk_error(format_args!(
            "truncating the raft log from index {from}"
        )))
    }

    fn delete_through(&self, through: u64) -> Result<(), DiskError> {
        RaftTrees::delete_through(self, through).map_err(disk_error(format_args!(
            "purging the raft log through index {through}"
        )))
    }

    fn clear(&self) -> Result<(), DiskError> {
        RaftTrees::clear(self).map_err(disk_error("clearing the raft state"))
    }

    fn flush(&self) -> Result<(), DiskError> {
        RaftTrees::flush(self).map_err(disk_error("flushing the raft state"))
    }
}

#[cfg(test)]
mod tests {
    use rover_storage::Storage;

    use super::*;

    #[test]
    fn the_sled_disk_keeps_entries_and_meta_values_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let disk = Storage::open(dir.path()).unwrap().raft();
            RaftDisk::put_entries(&disk, &[(1, b"a".to_vec()), (2, b"b".to_vec())]).unwrap();
            RaftDisk::put_meta(&disk, "vote", b"v").unwrap();
            RaftDisk::flush(&disk).unwrap();
        }
        let disk = reopen(dir.path()).raft();
        assert_eq!(
            RaftDisk::entries(&disk, 0, 3).unwrap(),
            vec![(1, b"a".to_vec()), (2, b"b".to_vec())]
        );
        assert_eq!(
            RaftDisk::get_meta(&disk, "vote").unwrap(),
            Some(b"v".to_vec())
        );
    }

    #[test]
    fn clearing_the_sled_disk_forgets_the_log_and_every_meta_value() {
        let dir = tempfile::tempdir().unwrap();
        crate::disk::tests::clear_forgets_everything(Storage::open(dir.path()).unwrap().raft());
    }

    #[test]
    fn a_sled_error_becomes_a_disk_error_saying_what_was_done() {
        let err = disk_error(format_args!("reading raft meta value `{}`", "vote"))(
            StorageError::Locked {
                path: "/data".into(),
            },
        );
        assert_eq!(
            err.to_string(),
            "raft storage: reading raft meta value `vote` in sled: \
             data dir /data is in use by another process"
        );
    }

    /// Reopens a storage just dropped: sled's threads may hold its lock a moment longer.
    fn reopen(path: &std::path::Path) -> Storage {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match Storage::open(path) {
                Err(StorageError::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                opened => return opened.unwrap(),
            }
        }
    }
}
