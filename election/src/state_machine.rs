//! openraft's state machine: the [`Ledger`] plus the last applied log id and membership,
//! written to the [`RaftDisk`] after every applied batch and readable by the agent at any time
//! through a [`LedgerReader`]. Snapshots are that same image.

use std::io::Cursor;
use std::sync::{Arc, RwLock};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta,
    StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};

use crate::disk::RaftDisk;
use crate::ledger::{Applied, Ledger};
use crate::types::{io_error, LedgerEntry, LedgerRaft, StorageError};

const MACHINE: &str = "machine";
const SNAPSHOT: &str = "snapshot";

/// Everything the state machine holds; also the snapshot format.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineImage {
    /// The last log entry applied.
    pub last_applied: Option<LogId<u64>>,
    /// The last membership applied.
    pub membership: StoredMembership<u64, BasicNode>,
    /// The notification ledger.
    pub ledger: Ledger,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<u64, BasicNode>,
    data: Vec<u8>,
}

/// A read-only view of the ledger for the rest of the agent.
#[derive(Debug, Clone)]
pub struct LedgerReader {
    image: Arc<RwLock<MachineImage>>,
}

impl LedgerReader {
    /// A copy of the ledger as applied so far.
    pub fn ledger(&self) -> Ledger {
        self.image
            .read()
            .map(|i| i.ledger.clone())
            .unwrap_or_default()
    }

    /// The last applied log id.
    pub fn last_applied(&self) -> Option<LogId<u64>> {
        self.image.read().ok().and_then(|i| i.last_applied)
    }
}

/// The ledger state machine of one node.
#[derive(Debug, Clone)]
pub struct LedgerMachine<D> {
    disk: D,
    image: Arc<RwLock<MachineImage>>,
}

impl<D: RaftDisk> LedgerMachine<D> {
    /// Loads the image kept on `disk`, or starts empty.
    pub fn open(disk: D) -> Result<Self, StorageError> {
        let image = match disk
            .get_meta(MACHINE)
            .map_err(|e| io_error(StorageIOError::read_state_machine, &e))?
        {
            Some(bytes) => postcard::from_bytes(&bytes)
                .map_err(|e| io_error(StorageIOError::read_state_machine, &e))?,
            None => MachineImage::default(),
        };
        Ok(Self {
            disk,
            image: Arc::new(RwLock::new(image)),
        })
    }

    /// A reader sharing this machine's image.
    pub fn reader(&self) -> LedgerReader {
        LedgerReader {
            image: self.image.clone(),
        }
    }

    fn snapshot_image(&self) -> Result<MachineImage, StorageError> {
        self.image.read().map(|i| i.clone()).map_err(|_| {
            io_error(
                StorageIOError::read_state_machine,
                &crate::disk::DiskError("poisoned".into()),
            )
        })
    }

    fn persist(&self, image: &MachineImage) -> Result<(), StorageError> {
        let bytes = postcard::to_stdvec(image)
            .map_err(|e| io_error(StorageIOError::write_state_machine, &e))?;
        self.disk
            .put_meta(MACHINE, &bytes)
            .and_then(|()| self.disk.flush())
            .map_err(|e| io_error(StorageIOError::write_state_machine, &e))
    }

    fn replace(&self, image: MachineImage) -> Result<(), StorageError> {
        self.persist(&image)?;
        if let Ok(mut current) = self.image.write() {
            *current = image;
        }
        Ok(())
    }
}

impl<D: RaftDisk> RaftSnapshotBuilder<LedgerRaft> for LedgerMachine<D> {
    async fn build_snapshot(&mut self) -> Result<Snapshot<LedgerRaft>, StorageError> {
        let image = self.snapshot_image()?;
        let data = postcard::to_stdvec(&image)
            .map_err(|e| io_error(StorageIOError::read_state_machine, &e))?;
        let snapshot_id = match image.last_applied {
            Some(id) => format!("{}-{}-{}", id.leader_id, id.index, data.len()),
            None => format!("empty-{}", data.len()),
        };
        let meta = SnapshotMeta {
            last_log_id: image.last_applied,
            last_membership: image.membership.clone(),
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        };
        let bytes = postcard::to_stdvec(&stored)
            .map_err(|e| io_error(StorageIOError::write_state_machine, &e))?;
        self.disk
            .put_meta(SNAPSHOT, &bytes)
            .and_then(|()| self.disk.flush())
            .map_err(|e| io_error(StorageIOError::write_state_machine, &e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl<D: RaftDisk> RaftStateMachine<LedgerRaft> for LedgerMachine<D> {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError> {
        let image = self.snapshot_image()?;
        Ok((image.last_applied, image.membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = LedgerEntry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut image = self.snapshot_image()?;
        let mut answers = Vec::new();
        for entry in entries {
            image.last_applied = Some(entry.log_id);
            let answer = match entry.payload {
                EntryPayload::Blank => Applied::AlreadyRecorded,
                EntryPayload::Normal(command) => image.ledger.apply(&command),
                EntryPayload::Membership(membership) => {
                    image.membership = StoredMembership::new(Some(entry.log_id), membership);
                    Applied::Changed
                }
            };
            answers.push(answer);
        }
        self.replace(image)?;
        Ok(answers)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let image: MachineImage = postcard::from_bytes(&data)
            .map_err(|e| io_error(StorageIOError::read_state_machine, &e))?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        let bytes = postcard::to_stdvec(&stored)
            .map_err(|e| io_error(StorageIOError::write_state_machine, &e))?;
        self.disk
            .put_meta(SNAPSHOT, &bytes)
            .map_err(|e| io_error(StorageIOError::write_state_machine, &e))?;
        self.replace(MachineImage {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            ledger: image.ledger,
        })
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<LedgerRaft>>, StorageError> {
        let Some(bytes) = self
            .disk
            .get_meta(SNAPSHOT)
            .map_err(|e| io_error(StorageIOError::read_state_machine, &e))?
        else {
            return Ok(None);
        };
        let stored: StoredSnapshot = postcard::from_bytes(&bytes)
            .map_err(|e| io_error(StorageIOError::read_state_machine, &e))?;
        Ok(Some(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::MemoryDisk;
    use crate::log_store::LogStore;
    use rover_storage::{RaftTrees, Storage};

    struct MemoryBuilder;

    impl
        openraft::testing::StoreBuilder<LedgerRaft, LogStore<MemoryDisk>, LedgerMachine<MemoryDisk>>
        for MemoryBuilder
    {
        async fn build(
            &self,
        ) -> Result<((), LogStore<MemoryDisk>, LedgerMachine<MemoryDisk>), StorageError> {
            let disk = MemoryDisk::default();
            Ok(((), LogStore::new(disk.clone()), LedgerMachine::open(disk)?))
        }
    }

    #[test]
    fn the_memory_store_passes_openrafts_storage_suite() {
        openraft::testing::Suite::test_all(MemoryBuilder).unwrap();
    }

    /// Builds each store on a fresh sled database in its own temporary directory, which the
    /// guard keeps until the test is done with the store.
    struct SledBuilder;

    impl
        openraft::testing::StoreBuilder<
            LedgerRaft,
            LogStore<RaftTrees>,
            LedgerMachine<RaftTrees>,
            tempfile::TempDir,
        > for SledBuilder
    {
        async fn build(
            &self,
        ) -> Result<
            (
                tempfile::TempDir,
                LogStore<RaftTrees>,
                LedgerMachine<RaftTrees>,
            ),
            StorageError,
        > {
            let dir = tempfile::tempdir().unwrap();
            let disk = Storage::open(dir.path()).unwrap().raft();
            Ok((dir, LogStore::new(disk.clone()), LedgerMachine::open(disk)?))
        }
    }

    #[test]
    fn the_sled_store_passes_openrafts_storage_suite() {
        openraft::testing::Suite::test_all(SledBuilder).unwrap();
    }
}
