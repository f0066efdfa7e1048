//! Where the Raft log, the vote and the ledger live: the [`RaftDisk`] trait, blocking and
//! durable on return of [`RaftDisk::flush`]. The state machine is kept as records (one per
//! incident and per notification, see [`crate::state_machine`]) that each applied batch adds,
//! replaces or removes a few at a time. The agent uses the sled trees of
//! [`crate::sled_disk`]; tests use [`MemoryDisk`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub use rover_storage::raft::{MachineRecord, MachineWrite};

/// A disk operation failed; the Raft node stops using the store (openraft treats storage
/// errors as fatal).
#[derive(Debug, thiserror::Error)]
#[error("raft storage: {0}")]
pub struct DiskError(pub String);

/// Durable storage for one Raft node. Entries are stored by log index as opaque bytes.
pub trait RaftDisk: Clone + Send + Sync + 'static {
    /// A small named value (vote, committed id, last purged id).
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, DiskError>;
    /// Stores a small named value.
    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), DiskError>;
    /// Removes a named value (nothing if there is none).
    fn remove_meta(&self, key: &str) -> Result<(), DiskError>;
    /// The last snapshot, if any (kept apart from the small values that change on every
    /// commit).
    fn get_snapshot(&self) -> Result<Option<Vec<u8>>, DiskError>;
    /// Stores the snapshot, replacing the last one.
    fn put_snapshot(&self, bytes: &[u8]) -> Result<(), DiskError>;
    /// Every record of the state machine, in key order.
    fn machine_records(&self) -> Result<Vec<MachineRecord>, DiskError>;
    /// Stores (`Some`) or removes (`None`) state machine records, all or none.
    fn write_machine(&self, changes: &[MachineWrite]) -> Result<(), DiskError>;
    /// Replaces every state machine record with `records`, all or none.
    fn replace_machine(&self, records: &[MachineRecord]) -> Result<(), DiskError>;
    /// Stores entries by index (replacing any with the same index).
    fn put_entries(&self, entries: &[(u64, Vec<u8>)]) -> Result<(), DiskError>;
    /// Entries with `from <= index < to`, in index order.
    fn entries(&self, from: u64, to: u64) -> Result<Vec<(u64, Vec<u8>)>, DiskError>;
    /// The entry with the highest index.
    fn last_entry(&self) -> Result<Option<(u64, Vec<u8>)>, DiskError>;
    /// Deletes entries with `index >= from` (conflict truncation).
    fn delete_from(&self, from: u64) -> Result<(), DiskError>;
    /// Deletes entries with `index <= through` (purge after a snapshot).
    fn delete_through(&self, through: u64) -> Result<(), DiskError>;
    /// Forgets the whole Raft state: log, vote, state machine and snapshot (every entry and
    /// every named value). Durable after the next [`RaftDisk::flush`].
    fn clear(&self) -> Result<(), DiskError>;
    /// Makes everything written so far durable.
    fn flush(&self) -> Result<(), DiskError>;
}

/// An in-memory [`RaftDisk`] (tests; clones share one store).
#[derive(Debug, Clone, Default)]
pub struct MemoryDisk {
    inner: Arc<Mutex<MemoryInner>>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    meta: BTreeMap<String, Vec<u8>>,
    entries: BTreeMap<u64, Vec<u8>>,
    machine: BTreeMap<Vec<u8>, Vec<u8>>,
    snapshot: Option<Vec<u8>>,
}

impl MemoryDisk {
    fn with<T>(&self, f: impl FnOnce(&mut MemoryInner) -> T) -> Result<T, DiskError> {
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| DiskError("memory disk poisoned".into()))?;
        Ok(f(&mut inner))
    }
}

impl RaftDisk for MemoryDisk {
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, DiskError> {
        self.with(|i| i.meta.get(key).cloned())
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), DiskError> {
        self.with(|i| {
            i.meta.insert(key.to_owned(), value.to_vec());
        })
    }

    fn remove_meta(&self, key: &str) -> Result<(), DiskError> {
        self.with(|i| {
            i.meta.remove(key);
        })
    }

    fn get_snapshot(&self) -> Result<Option<Vec<u8>>, DiskError> {
        self.with(|i| i.snapshot.clone())
    }

    fn put_snapshot(&self, bytes: &[u8]) -> Result<(), DiskError> {
        self.with(|i| i.snapshot = Some(bytes.to_vec()))
    }

    fn machine_records(&self) -> Result<Vec<MachineRecord>, DiskError> {
        self.with(|i| {
            i.machine
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
    }

    fn write_machine(&self, changes: &[MachineWrite]) -> Result<(), DiskError> {
        self.with(|i| {
            for (key, value) in changes {
                match value {
                    Some(value) => i.machine.insert(key.clone(), value.clone()),
                    None => i.machine.remove(key),
                };
            }
        })
    }

    fn replace_machine(&self, records: &[MachineRecord]) -> Result<(), DiskError> {
        self.with(|i| i.machine = records.iter().cloned().collect())
    }

    fn put_entries(&self, entries: &[(u64, Vec<u8>)]) -> Result<(), DiskError> {
        self.with(|i| {
            for (index, bytes) in entries {
                i.entries.insert(*index, bytes.clone());
            }
        })
    }

    fn entries(&self, from: u64, to: u64) -> Result<Vec<(u64, Vec<u8>)>, DiskError> {
        if from >= to {
            return Ok(Vec::new());
        }
        self.with(|i| {
            i.entries
                .range(from..to)
                .map(|(k, v)| (*k, v.clone()))
                .collect()
        })
    }

    fn last_entry(&self) -> Result<Option<(u64, Vec<u8>)>, DiskError> {
        self.with(|i| i.entries.iter().next_back().map(|(k, v)| (*k, v.clone())))
    }

    fn delete_from(&self, from: u64) -> Result<(), DiskError> {
        self.with(|i| {
            i.entries.split_off(&from);
        })
    }

    fn delete_through(&self, through: u64) -> Result<(), DiskError> {
        self.with(|i| {
            i.entries = i.entries.split_off(&through.saturating_add(1));
        })
    }

    fn clear(&self) -> Result<(), DiskError> {
        self.with(|i| {
            i.meta.clear();
            i.entries.clear();
            i.machine.clear();
            i.snapshot = None;
        })
    }

    fn flush(&self) -> Result<(), DiskError> {
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Fills `disk`, clears it and checks that nothing is left.
    pub(crate) fn clear_forgets_everything(disk: impl RaftDisk) {
        disk.put_entries(&[(1, b"a".to_vec()), (2, b"b".to_vec())])
            .unwrap();
        for key in ["vote", "committed", "machine", "snapshot"] {
            disk.put_meta(key, key.as_bytes()).unwrap();
        }
        disk.write_machine(&[(b"i".to_vec(), Some(b"x".to_vec()))])
            .unwrap();
        disk.put_snapshot(b"s").unwrap();
        disk.clear().unwrap();
        disk.flush().unwrap();
        assert_eq!(disk.last_entry().unwrap(), None);
        assert_eq!(disk.entries(0, u64::MAX).unwrap(), vec![]);
        for key in ["vote", "committed", "machine", "snapshot"] {
            assert_eq!(disk.get_meta(key).unwrap(), None, "{key}");
        }
        assert_eq!(disk.machine_records().unwrap(), vec![]);
        assert_eq!(disk.get_snapshot().unwrap(), None);
    }

    #[test]
    fn clearing_the_memory_disk_forgets_the_log_and_every_meta_value() {
        clear_forgets_everything(MemoryDisk::default());
    }
}
