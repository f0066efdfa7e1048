//! openraft's state machine: the notification [`Ledger`] plus the last applied log id and
//! membership.
//!
//! - On disk it is one record per incident and per notification ([`crate::machine_records`]):
//!   an applied batch writes the records its commands touched and where the log stands, never
//!   the whole ledger. It is not flushed per batch: the log append that precedes every apply
//!   flushes, and after a crash the entries applied since the last flush are applied again
//!   from the log (the ledger's commands are idempotent).
//! - Readers ([`LedgerReader`]) share the applied ledger as an `Arc` snapshot published on a
//!   watch, and can wait for it to change; an apply changes the ledger in place unless a
//!   reader still holds the previous snapshot.
//! - A snapshot is the whole image ([`MachineImage`]), built when openraft asks and kept on
//!   its own (`RaftDisk::put_snapshot`); installing one replaces every record at once.

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta,
    StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::disk::{DiskError, MachineWrite, RaftDisk};
use crate::ledger::{Applied, Changes, Ledger};
use crate::machine_records::{self, AppliedState};
use crate::types::{io_error, LedgerEntry, LedgerRaft, StorageError};

/// Where versions before the per-record layout kept the whole image; moved on open.
const LEGACY_MACHINE: &str = "machine";
/// Where those versions kept the snapshot, among the meta values; moved on open.
const LEGACY_SNAPSHOT: &str = "snapshot";

/// Everything the state machine holds; also the snapshot format.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct MachineImage {
    /// The last log entry applied.
    pub last_applied: Option<LogId<u64>>,
    /// The last membership applied.
    pub membership: StoredMembership<u64, BasicNode>,
    /// The notification ledger.
    pub ledger: Ledger,
}

/// [`MachineImage`] borrowed, for serializing without a copy (same fields, same bytes).
#[derive(Serialize)]
struct MachineImageRef<'a> {
    last_applied: &'a Option<LogId<u64>>,
    membership: &'a StoredMembership<u64, BasicNode>,
    ledger: &'a Ledger,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<u64, BasicNode>,
    data: Vec<u8>,
}

/// The stored snapshot starts with this when it is LZ4-compressed (the ledger image repeats
/// incident ids, hosts and channel names: it shrinks to a fraction, and so does the stale
/// copy sled keeps until it reclaims the space). Without it, it is the plain postcard of an
/// older version.
const COMPRESSED_SNAPSHOT: &[u8] = b"rover-lz4\0";

impl StoredSnapshot {
    fn encode(&self) -> Result<Vec<u8>, StorageError> {
        let plain = postcard::to_stdvec(self)
            .map_err(|e| io_error(StorageIOError::write_state_machine, &e))?;
        let mut bytes = COMPRESSED_SNAPSHOT.to_vec();
        bytes.extend(lz4_flex::compress_prepend_size(&plain));
        Ok(bytes)
    }

    fn decode(bytes: &[u8]) -> Result<Self, StorageError> {
        let plain = match bytes.strip_prefix(COMPRESSED_SNAPSHOT) {
            Some(compressed) => lz4_flex::decompress_size_prepended(compressed)
                .map_err(|e| io_error(StorageIOError::read_state_machine, &e))?,
            None => bytes.to_vec(),
        };
        postcard::from_bytes(&plain).map_err(|e| io_error(StorageIOError::read_state_machine, &e))
    }
}

/// What the machine publishes after every applied batch.
#[derive(Debug, Clone, Default)]
struct MachineView {
    applied: AppliedState,
    ledger: Arc<Ledger>,
}

/// The state machine is gone (its Raft node was stopped and replaced).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the ledger state machine has stopped")]
pub struct MachineStopped;

/// A read-only view of the applied ledger for the rest of the agent. Clones share the
/// machine; each remembers which version it has seen for [`LedgerReader::changed`].
#[derive(Debug, Clone)]
pub struct LedgerReader {
    view: watch::Receiver<MachineView>,
}

impl LedgerReader {
    /// The ledger as applied so far: a shared snapshot, not a copy.
    pub fn ledger(&self) -> Arc<Ledger> {
        Arc::clone(&self.view.borrow().ledger)
    }

    /// The last applied log id.
    pub fn last_applied(&self) -> Option<LogId<u64>> {
        self.view.borrow().applied.last_applied
    }

    /// Waits until the ledger changes after the version this reader saw last (returns at
    /// once if it already has), and marks the new one seen.
    pub async fn changed(&mut self) -> Result<(), MachineStopped> {
        self.view.changed().await.map_err(|_| MachineStopped)
    }

    /// Marks the current version seen.
    pub fn mark_seen(&mut self) {
        self.view.mark_unchanged();
    }

    /// Whether both read the same state machine.
    pub fn same_machine(&self, other: &LedgerReader) -> bool {
        self.view.same_channel(&other.view)
    }
}

/// The ledger state machine of one node.
#[derive(Debug, Clone)]
pub struct LedgerMachine<D> {
    disk: D,
    view: Arc<watch::Sender<MachineView>>,
}

fn read_error(error: DiskError) -> StorageError {
    io_error(StorageIOError::read_state_machine, &error)
}

fn write_error(error: DiskError) -> StorageError {
    io_error(StorageIOError::write_state_machine, &error)
}

impl<D: RaftDisk> LedgerMachine<D> {
    /// Loads the records kept on `disk` (moving a whole image left by an older version to
    /// records first), or starts empty. Damaged records are an error, never an empty ledger.
    pub fn open(disk: D) -> Result<Self, StorageError> {
        let mut records = disk.machine_records().map_err(read_error)?;
        let legacy = disk.get_meta(LEGACY_MACHINE).map_err(read_error)?;
        if let Some(bytes) = legacy {
            if records.is_empty() {
                let image: MachineImage = postcard::from_bytes(&bytes)
                    .map_err(|e| io_error(StorageIOError::read_state_machine, &e))?;
                let applied = AppliedState {
                    last_applied: image.last_applied,
                    membership: image.membership,
                };
                records =
                    machine_records::all_records(&image.ledger, &applied).map_err(write_error)?;
                disk.replace_machine(&records).map_err(write_error)?;
                tracing::info!(
                    incidents = image.ledger.incident_count(),
                    "ledger moved from one image to one record per incident and notification"
                );
            }
            disk.remove_meta(LEGACY_MACHINE)
                .and_then(|()| disk.flush())
                .map_err(write_error)?;
        }
        if let Some(snapshot) = disk.get_meta(LEGACY_SNAPSHOT).map_err(read_error)? {
            if disk.get_snapshot().map_err(read_error)?.is_none() {
                disk.put_snapshot(&snapshot).map_err(write_error)?;
            }
            disk.remove_meta(LEGACY_SNAPSHOT)
                .and_then(|()| disk.flush())
                .map_err(write_error)?;
        }
        let (applied, ledger) = machine_records::decode_all(&records).map_err(read_error)?;
        let (view, _) = watch::channel(MachineView {
            applied,
            ledger: Arc::new(ledger),
        });
        Ok(Self {
            disk,
            view: Arc::new(view),
        })
    }

    /// A reader sharing this machine's ledger.
    pub fn reader(&self) -> LedgerReader {
        LedgerReader {
            view: self.view.subscribe(),
        }
    }

    /// The writes that store what `changes` touched and where the log now stands.
    fn writes(&self, changes: &Changes) -> Result<Vec<MachineWrite>, DiskError> {
        let view = self.view.borrow();
        let mut writes = Vec::with_capacity(changes.len() + 1);
        for key in changes.keys() {
            writes.push(machine_records::write_of(&view.ledger, key)?);
        }
        writes.push(machine_records::applied_write(&view.applied)?);
        Ok(writes)
    }
}

impl<D: RaftDisk> RaftSnapshotBuilder<LedgerRaft> for LedgerMachine<D> {
    async fn build_snapshot(&mut self) -> Result<Snapshot<LedgerRaft>, StorageError> {
        let view = self.view.borrow().clone();
        let image = MachineImageRef {
            last_applied: &view.applied.last_applied,
            membership: &view.applied.membership,
            ledger: &view.ledger,
        };
        let data = postcard::to_stdvec(&image)
            .map_err(|e| io_error(StorageIOError::read_state_machine, &e))?;
        let snapshot_id = match view.applied.last_applied {
            Some(id) => format!("{}-{}-{}", id.leader_id, id.index, data.len()),
            None => format!("empty-{}", data.len()),
        };
        let meta = SnapshotMeta {
            last_log_id: view.applied.last_applied,
            last_membership: view.applied.membership.clone(),
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        };
        let bytes = stored.encode()?;
        self.disk
            .put_snapshot(&bytes)
            .and_then(|()| self.disk.flush())
            .map_err(write_error)?;
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
        let applied = self.view.borrow().applied.clone();
        Ok((applied.last_applied, applied.membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = LedgerEntry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut changes = Changes::default();
        let mut answers = Vec::new();
        self.view.send_if_modified(|view| {
            for entry in entries {
                view.applied.last_applied = Some(entry.log_id);
                let answer = match entry.payload {
                    EntryPayload::Blank => Applied::AlreadyRecorded,
                    EntryPayload::Normal(command) => {
                        Arc::make_mut(&mut view.ledger).apply_recording(&command, &mut changes)
                    }
                    EntryPayload::Membership(membership) => {
                        view.applied.membership =
                            StoredMembership::new(Some(entry.log_id), membership);
                        Applied::Changed
                    }
                };
                answers.push(answer);
            }
            // Readers wait for the ledger; where the log stands is theirs to read, not news.
            !changes.is_empty()
        });
        let writes = self.writes(&changes).map_err(write_error)?;
        self.disk.write_machine(&writes).map_err(write_error)?;
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
        let applied = AppliedState {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        let records = machine_records::all_records(&image.ledger, &applied).map_err(write_error)?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        let bytes = stored.encode()?;
        // The records first: sled recovers writes in order, so a snapshot found after a crash
        // always has its records.
        self.disk
            .replace_machine(&records)
            .and_then(|()| self.disk.put_snapshot(&bytes))
            .and_then(|()| self.disk.flush())
            .map_err(write_error)?;
        self.view.send_replace(MachineView {
            applied,
            ledger: Arc::new(image.ledger),
        });
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<LedgerRaft>>, StorageError> {
        let Some(bytes) = self.disk.get_snapshot().map_err(read_error)? else {
            return Ok(None);
        };
        let stored = StoredSnapshot::decode(&bytes)?;
        Ok(Some(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::{MachineRecord, MemoryDisk};
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
    fn a_snapshot_is_stored_compressed_and_one_stored_plain_by_an_older_version_still_reads() {
        let stored = StoredSnapshot {
            meta: SnapshotMeta::default(),
            // Like a ledger image: the same ids and names again and again.
            data: b"incident down/web-12/1796190373694/1 channel ops-mail ".repeat(200),
        };
        let bytes = stored.encode().unwrap();
        assert!(bytes.starts_with(COMPRESSED_SNAPSHOT));
        let plain = postcard::to_stdvec(&stored).unwrap();
        assert!(
            bytes.len() * 5 < plain.len(),
            "{} vs {}",
            bytes.len(),
            plain.len()
        );
        assert_eq!(StoredSnapshot::decode(&bytes).unwrap().data, stored.data);
        assert_eq!(StoredSnapshot::decode(&plain).unwrap().data, stored.data);
        let mut broken = bytes.clone();
        broken.truncate(bytes.len() / 2);
        assert!(StoredSnapshot::decode(&broken).is_err());
    }

    #[test]
    fn the_sled_store_passes_openrafts_storage_suite() {
        openraft::testing::Suite::test_all(SledBuilder).unwrap();
    }

    use crate::ledger::{
        Incident, IncidentKind, LeaderMode, LedgerCommand, Notification, Outcome, Phase,
    };
    use openraft::{CommittedLeaderId, Entry};

    fn entry(index: u64, command: LedgerCommand) -> LedgerEntry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(command),
        }
    }

    fn open(id: &str) -> LedgerCommand {
        LedgerCommand::Open(Incident::new(id, IncidentKind::HostDown, id, 100))
    }

    fn intend(id: &str) -> LedgerCommand {
        LedgerCommand::Intend {
            record: Notification {
                incident: id.into(),
                phase: Phase::Opened,
                channel: "email".into(),
                by_node: "n1".into(),
                mode: LeaderMode::Raft,
                intent_at_ms: 110,
                outcome: Outcome::Pending,
            },
        }
    }

    fn sent(id: &str) -> LedgerCommand {
        LedgerCommand::Complete {
            incident: id.into(),
            phase: Phase::Opened,
            channel: "email".into(),
            outcome: Outcome::Sent {
                at_ms: 120,
                reference: None,
            },
        }
    }

    /// A memory disk that counts the bytes each state machine write carries.
    #[derive(Debug, Clone, Default)]
    struct CountingDisk {
        inner: MemoryDisk,
        written: Arc<std::sync::Mutex<Vec<usize>>>,
    }

    impl RaftDisk for CountingDisk {
        fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, DiskError> {
            self.inner.get_meta(key)
        }
        fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), DiskError> {
            self.inner.put_meta(key, value)
        }
        fn remove_meta(&self, key: &str) -> Result<(), DiskError> {
            self.inner.remove_meta(key)
        }
        fn get_snapshot(&self) -> Result<Option<Vec<u8>>, DiskError> {
            self.inner.get_snapshot()
        }
        fn put_snapshot(&self, bytes: &[u8]) -> Result<(), DiskError> {
            self.inner.put_snapshot(bytes)
        }
        fn machine_records(&self) -> Result<Vec<MachineRecord>, DiskError> {
            self.inner.machine_records()
        }
        fn write_machine(&self, changes: &[MachineWrite]) -> Result<(), DiskError> {
            let bytes = changes
                .iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
                .sum();
            self.written.lock().unwrap().push(bytes);
            self.inner.write_machine(changes)
        }
        fn replace_machine(&self, records: &[MachineRecord]) -> Result<(), DiskError> {
            self.inner.replace_machine(records)
        }
        fn put_entries(&self, entries: &[(u64, Vec<u8>)]) -> Result<(), DiskError> {
            self.inner.put_entries(entries)
        }
        fn entries(&self, from: u64, to: u64) -> Result<Vec<(u64, Vec<u8>)>, DiskError> {
            self.inner.entries(from, to)
        }
        fn last_entry(&self) -> Result<Option<(u64, Vec<u8>)>, DiskError> {
            self.inner.last_entry()
        }
        fn delete_from(&self, from: u64) -> Result<(), DiskError> {
            self.inner.delete_from(from)
        }
        fn delete_through(&self, through: u64) -> Result<(), DiskError> {
            self.inner.delete_through(through)
        }
        fn clear(&self) -> Result<(), DiskError> {
            self.inner.clear()
        }
        fn flush(&self) -> Result<(), DiskError> {
            self.inner.flush()
        }
    }

    fn run<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn an_applied_batch_writes_what_it_touched_however_big_the_ledger_is() {
        let disk = CountingDisk::default();
        let mut machine = LedgerMachine::open(disk.clone()).unwrap();
        run(async {
            let mut index = 0;
            for n in 0..1_000 {
                let id = format!("down/host-{n}/1");
                for command in [open(&id), intend(&id)] {
                    index += 1;
                    machine.apply([entry(index, command)]).await.unwrap();
                }
            }
            machine
                .apply([entry(index + 1, sent("down/host-500/1"))])
                .await
                .unwrap();
        });
        let written = disk.written.lock().unwrap().clone();
        let (first, last) = (written[1], *written.last().unwrap());
        assert!(
            last < 400,
            "completing one record of 1 000 incidents wrote {last} bytes"
        );
        assert!(
            written.iter().all(|w| *w < 400),
            "the biggest batch wrote {} bytes",
            written.iter().max().unwrap()
        );
        assert!(first > 0);
        // One record per incident and per notification, plus where the log stands.
        assert_eq!(disk.machine_records().unwrap().len(), 2_001);
    }

    #[test]
    fn the_ledger_comes_back_from_its_records_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let before = {
            let disk = Storage::open(dir.path()).unwrap().raft();
            let mut machine = LedgerMachine::open(disk.clone()).unwrap();
            run(async {
                machine
                    .apply([
                        entry(1, open("a")),
                        entry(2, intend("a")),
                        entry(3, open("b")),
                    ])
                    .await
                    .unwrap();
                machine.apply([entry(4, sent("a"))]).await.unwrap();
            });
            disk.flush().unwrap();
            machine.reader().ledger()
        };
        let disk = reopen(dir.path()).raft();
        let machine = LedgerMachine::open(disk).unwrap();
        let reader = machine.reader();
        assert_eq!(*reader.ledger(), *before);
        assert_eq!(reader.last_applied().map(|id| id.index), Some(4));
    }

    #[test]
    fn a_whole_image_and_a_snapshot_left_by_an_older_version_move_to_their_new_places() {
        let disk = MemoryDisk::default();
        let mut ledger = Ledger::default();
        ledger.apply(&open("a"));
        ledger.apply(&intend("a"));
        let image = MachineImage {
            last_applied: Some(LogId::new(CommittedLeaderId::new(3, 1), 7)),
            membership: StoredMembership::default(),
            ledger: ledger.clone(),
        };
        let old = MachineImageRef {
            last_applied: &image.last_applied,
            membership: &image.membership,
            ledger: &image.ledger,
        };
        disk.put_meta(LEGACY_MACHINE, &postcard::to_stdvec(&old).unwrap())
            .unwrap();
        disk.put_meta(LEGACY_SNAPSHOT, b"old snapshot").unwrap();
        let machine = LedgerMachine::open(disk.clone()).unwrap();
        assert_eq!(disk.get_meta(LEGACY_SNAPSHOT).unwrap(), None);
        assert_eq!(disk.get_snapshot().unwrap(), Some(b"old snapshot".to_vec()));
        assert_eq!(*machine.reader().ledger(), ledger);
        assert_eq!(machine.reader().last_applied(), image.last_applied);
        assert_eq!(disk.get_meta(LEGACY_MACHINE).unwrap(), None);
        assert_eq!(disk.machine_records().unwrap().len(), 3);
        let again = LedgerMachine::open(disk).unwrap();
        assert_eq!(*again.reader().ledger(), ledger);
    }

    #[test]
    fn a_damaged_record_fails_the_open_instead_of_starting_empty() {
        let disk = MemoryDisk::default();
        disk.write_machine(&[(b"ia".to_vec(), Some(vec![0xff, 0xff]))])
            .unwrap();
        let err = LedgerMachine::open(disk).unwrap_err();
        assert!(
            err.to_string().contains("ledger record ia is damaged"),
            "{err}"
        );
    }

    #[test]
    fn readers_share_one_snapshot_and_wake_only_when_the_ledger_changes() {
        let mut machine = LedgerMachine::open(MemoryDisk::default()).unwrap();
        let mut reader = machine.reader();
        assert!(Arc::ptr_eq(&reader.ledger(), &machine.reader().ledger()));
        run(async {
            machine
                .apply([Entry {
                    log_id: LogId::new(CommittedLeaderId::new(1, 1), 1),
                    payload: EntryPayload::Blank,
                }])
                .await
                .unwrap();
            let woke = tokio::time::timeout(Duration::from_millis(50), reader.changed()).await;
            assert!(woke.is_err(), "a blank entry is no news");
            machine.apply([entry(2, open("a"))]).await.unwrap();
            tokio::time::timeout(Duration::from_secs(1), reader.changed())
                .await
                .unwrap()
                .unwrap();
        });
        assert!(reader.ledger().incident("a").is_some());
        drop(machine);
        assert_eq!(run(reader.changed()), Err(MachineStopped));
    }

    /// Reopens a storage just dropped: sled's threads may hold its lock a moment longer.
    fn reopen(path: &std::path::Path) -> Storage {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match Storage::open(path) {
                Err(rover_storage::StorageError::Locked { .. })
                    if std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                opened => return opened.unwrap(),
            }
        }
    }

    use std::time::Duration;
}
