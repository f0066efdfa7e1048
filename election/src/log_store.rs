//! openraft's log storage over a [`RaftDisk`]: entries, vote, committed and purged log ids.
//! An append is reported complete only after the disk has flushed it; flushes run on tokio's
//! blocking threads so that an fsync does not stall the runtime.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogId, LogState, OptionalSend, RaftLogId, RaftLogReader, StorageIOError, Vote};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::disk::{DiskError, RaftDisk};
use crate::types::{io_error, LedgerEntry, LedgerRaft, StorageError};

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

/// The Raft log of one node.
#[derive(Debug, Clone)]
pub struct LogStore<D> {
    disk: D,
}

impl<D: RaftDisk> LogStore<D> {
    /// A log store on `disk`.
    pub fn new(disk: D) -> Self {
        Self { disk }
    }

    fn read_meta<T: DeserializeOwned>(
        &self,
        key: &str,
        kind: fn(openraft::AnyError) -> StorageIOError<u64>,
    ) -> Result<Option<T>, StorageError> {
        let bytes = self.disk.get_meta(key).map_err(|e| io_error(kind, &e))?;
        bytes
            .map(|b| postcard::from_bytes(&b).map_err(|e| io_error(kind, &e)))
            .transpose()
    }

    async fn write_meta<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        kind: fn(openraft::AnyError) -> StorageIOError<u64>,
    ) -> Result<(), StorageError> {
        let bytes = postcard::to_stdvec(value).map_err(|e| io_error(kind, &e))?;
        self.disk
            .put_meta(key, &bytes)
            .map_err(|e| io_error(kind, &e))?;
        self.flush().await.map_err(|e| io_error(kind, &e))
    }

    /// Makes everything written so far durable. Inside a tokio runtime (of either flavour) the
    /// blocking flush runs on a blocking thread and this awaits it; outside one it runs here.
    async fn flush(&self) -> Result<(), DiskError> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return self.disk.flush();
        };
        let disk = self.disk.clone();
        runtime
            .spawn_blocking(move || disk.flush())
            .await
            .map_err(|e| DiskError(format!("the flush task did not finish: {e}")))?
    }
}

fn decode_entry(bytes: &[u8]) -> Result<LedgerEntry, StorageError> {
    postcard::from_bytes(bytes).map_err(|e| io_error(StorageIOError::read_logs, &e))
}

fn index_range(range: impl RangeBounds<u64>) -> (u64, u64) {
    let from = match range.start_bound() {
        Bound::Included(i) => *i,
        Bound::Excluded(i) => i.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let to = match range.end_bound() {
        Bound::Included(i) => i.saturating_add(1),
        Bound::Excluded(i) => *i,
        Bound::Unbounded => u64::MAX,
    };
    (from, to)
}

impl<D: RaftDisk> RaftLogReader<LedgerRaft> for LogStore<D> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<LedgerEntry>, StorageError> {
        let (from, to) = index_range(range);
        self.disk
            .entries(from, to)
            .map_err(|e| io_error(StorageIOError::read_logs, &e))?
            .iter()
            .map(|(_, bytes)| decode_entry(bytes))
            .collect()
    }
}

impl<D: RaftDisk> RaftLogStorage<LedgerRaft> for LogStore<D> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<LedgerRaft>, StorageError> {
        let last_purged: Option<LogId<u64>> =
            self.read_meta(LAST_PURGED, StorageIOError::read_logs)?;
        let last = match self
            .disk
            .last_entry()
            .map_err(|e| io_error(StorageIOError::read_logs, &e))?
        {
            Some((_, bytes)) => Some(*decode_entry(&bytes)?.get_log_id()),
            None => last_purged,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError> {
        self.write_meta(VOTE, vote, StorageIOError::write_vote)
            .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        self.read_meta(VOTE, StorageIOError::read_vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> Result<(), StorageError> {
        self.write_meta(COMMITTED, &committed, StorageIOError::write_logs)
            .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError> {
        Ok(self
            .read_meta::<Option<LogId<u64>>>(COMMITTED, StorageIOError::read_logs)?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<LedgerRaft>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = LedgerEntry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        for entry in entries {
            let bytes = postcard::to_stdvec(&entry)
                .map_err(|e| io_error(StorageIOError::write_logs, &e))?;
            encoded.push((entry.get_log_id().index, bytes));
        }
        let written = match self.disk.put_entries(&encoded) {
            Ok(()) => self.flush().await,
            Err(e) => Err(e),
        };
        match written {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(io_error(StorageIOError::write_logs, &e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError> {
        self.disk
            .delete_from(log_id.index)
            .map_err(|e| io_error(StorageIOError::write_logs, &e))?;
        self.flush()
            .await
            .map_err(|e| io_error(StorageIOError::write_logs, &e))
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError> {
        self.write_meta(LAST_PURGED, &log_id, StorageIOError::write_logs)
            .await?;
        self.disk
            .delete_through(log_id.index)
            .map_err(|e| io_error(StorageIOError::write_logs, &e))?;
        self.flush()
            .await
            .map_err(|e| io_error(StorageIOError::write_logs, &e))
    }
}
