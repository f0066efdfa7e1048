//! [`Storage`]: the one sled database of the process and its trees.
//!
//! Opening takes the data directory's lock, so a second agent on the same directory fails
//! fast with [`StorageError::Locked`] instead of sharing files. Writes are buffered by sled
//! and flushed every [`FLUSH_EVERY_MS`]; call [`Storage::flush`] or [`Storage::flush_async`]
//! where a write must be durable before going on (for example before announcing a new
//! identity generation).
//!
//! The open database sits behind one shared lock (`Shared`): every store operation holds a
//! read guard for its duration, and [`Storage::rewrite_if_bloated`] (see [`crate::rewrite`])
//! holds the write guard while it copies the database into a fresh file and swaps it in, so
//! stores obtained before a rewrite keep working after it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::alerts::SledAlertStore;
use crate::error::StorageError;
use crate::health::{self, HealthCell, StorageHealth};
use crate::history::SledHistoryStore;
use crate::members::SledMemberStore;
use crate::meta::SledMetaStore;
use crate::raft::RaftTrees;
use crate::rewrite::{self, RewriteStats};
use crate::trees;

/// Upper bound of sled's page cache, in bytes.
pub const CACHE_CAPACITY_BYTES: u64 = 32 * 1024 * 1024;

/// How often sled flushes buffered writes to disk in the background, in milliseconds.
pub const FLUSH_EVERY_MS: u64 = 500;

/// The text sled puts in the I/O error it returns when the directory's lock is held.
const LOCK_HELD_MESSAGE: &str = "could not acquire lock";

/// One open sled database and the trees the stores use; a rewrite replaces it as a whole.
#[derive(Debug)]
pub(crate) struct Open {
    pub(crate) db: sled::Db,
    pub(crate) members: sled::Tree,
    pub(crate) meta: sled::Tree,
    pub(crate) alerts: sled::Tree,
    pub(crate) history: sled::Tree,
    pub(crate) grid: sled::Tree,
    pub(crate) raft_log: sled::Tree,
    pub(crate) raft_meta: sled::Tree,
    pub(crate) topology: sled::Tree,
    pub(crate) last_samples: sled::Tree,
    pub(crate) raft_machine: sled::Tree,
    pub(crate) raft_snapshot: sled::Tree,
    pub(crate) event_log: sled::Tree,
    /// sled's size on disk right after the rewrite that produced this database, if one did.
    pub(crate) rewritten_size: Option<u64>,
}

impl Open {
    /// Opens (creating if needed) the sled database in the directory `path` and its trees.
    pub(crate) fn at(path: &Path) -> Result<Open, StorageError> {
        Self::with(
            sled::Config::new()
                .path(path)
                .cache_capacity(CACHE_CAPACITY_BYTES)
                .flush_every_ms(Some(FLUSH_EVERY_MS)),
            path,
        )
    }

    /// An empty database at `path` that sled removes when it is dropped: it stands in while
    /// a failed database is closed and opened again (see [`crate::health`]).
    pub(crate) fn temporary(path: &Path) -> Result<Open, StorageError> {
        Self::with(
            sled::Config::new()
                .path(path)
                .temporary(true)
                .flush_every_ms(None),
            path,
        )
    }

    fn with(config: sled::Config, path: &Path) -> Result<Open, StorageError> {
        let db = config.open().map_err(|err| open_error(path, err))?;
        let open_tree = |name: &str| {
            db.open_tree(name).map_err(|source| StorageError::Open {
                path: path.to_path_buf(),
                source,
            })
        };
        Ok(Open {
            members: open_tree(trees::MEMBERS)?,
            meta: open_tree(trees::META)?,
            alerts: open_tree(trees::ALERTS)?,
            history: open_tree(trees::HISTORY)?,
            grid: open_tree(trees::GRID)?,
            raft_log: open_tree(trees::RAFT_LOG)?,
            raft_meta: open_tree(trees::RAFT_META)?,
            topology: open_tree(trees::TOPOLOGY)?,
            last_samples: open_tree(trees::LAST_SAMPLES)?,
            raft_machine: open_tree(trees::RAFT_MACHINE)?,
            raft_snapshot: open_tree(trees::RAFT_SNAPSHOT)?,
            event_log: open_tree(trees::EVENT_LOG)?,
            db,
            rewritten_size: None,
        })
    }
}

/// The open database, shared by a [`Storage`], its clones and every store obtained from them,
/// and whether it takes writes ([`HealthCell`]).
///
/// Store operations hold [`Shared::read`] for their whole duration (and never take it twice:
/// a waiting rewrite would deadlock a nested read); a rewrite or a reopen holds
/// [`Shared::write`]. The guarded value is only ever replaced whole, so a panic while a guard
/// is held cannot leave it half-changed and a poisoned lock is taken over.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    open: Arc<RwLock<Open>>,
    pub(crate) health: Arc<HealthCell>,
}

impl Shared {
    pub(crate) fn new(open: Open) -> Self {
        Self {
            open: Arc::new(RwLock::new(open)),
            health: Arc::new(HealthCell::default()),
        }
    }

    /// The current database, for the duration of one operation.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Open> {
        self.open.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current database, exclusively: no store operation runs while this is held.
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Open> {
        self.open.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a failed write or flush in the health (see [`crate::health`]); passes the result
    /// on unchanged.
    pub(crate) fn noted<T>(&self, result: Result<T, StorageError>) -> Result<T, StorageError> {
        if let Err(err) = &result {
            self.health.failed(err);
        }
        result
    }

    /// See [`Storage::flush`].
    pub(crate) fn flush(&self) -> Result<(), StorageError> {
        let flushed = self
            .read()
            .db
            .flush()
            .map(drop)
            .map_err(|source| StorageError::Flush { source });
        self.noted(flushed)
    }

    /// See [`Storage::flush_async`].
    pub(crate) async fn flush_async(&self) -> Result<(), StorageError> {
        let db = self.read().db.clone();
        let flushed = db
            .flush_async()
            .await
            .map(drop)
            .map_err(|source| StorageError::Flush { source });
        self.noted(flushed)
    }
}

/// The persistent state of the agent: one sled database per process, one tree per keyspace.
///
/// Cheap to clone; clones share the same database and trees. The lock on the data directory
/// is released when the last clone (and every store obtained from it) is dropped.
#[derive(Debug, Clone)]
pub struct Storage {
    pub(crate) shared: Shared,
    path: PathBuf,
}

impl Storage {
    /// Opens (creating if needed) the database in the directory `path` and its trees.
    ///
    /// First finishes or undoes a rewrite that a crash interrupted (see [`crate::rewrite`]
    /// for the states and what each becomes). Fails with [`StorageError::Locked`] when
    /// another process, or another open `Storage` of this process, holds the directory.
    pub fn open(path: impl AsRef<Path>) -> Result<Storage, StorageError> {
        let path = path.as_ref().to_path_buf();
        let open = rewrite::recover_and_open(&path)?;
        tracing::debug!(path = %path.display(), "storage opened");
        Ok(Storage {
            shared: Shared::new(open),
            path,
        })
    }

    /// Opens the database at `path` only if it holds what this node last knew to be on disk,
    /// otherwise moves it aside and opens an empty one (see [`crate::integrity`] for the
    /// checks); the report says which, and what is lost. `now_ms` names a moved-aside
    /// database; `new_epoch` (random, nonzero) is the epoch of a database made here.
    ///
    /// Fails, without moving anything, when the directory is locked or not accessible, or
    /// when a record was written by a newer build ([`StorageError::UnknownVersion`]).
    pub fn open_checked(
        path: impl AsRef<Path>,
        now_ms: u64,
        new_epoch: u64,
    ) -> Result<(Storage, crate::integrity::OpenReport), StorageError> {
        crate::integrity::open_checked(path.as_ref(), now_ms, new_epoch)
    }

    /// Bumps the database's seal, flushes, and records the seal in the watermark beside the
    /// database (see [`crate::integrity`]); returns what it recorded. An agent calls this
    /// every few seconds: a later [`Storage::open_checked`] refuses a database that holds less
    /// than the last checkpoint. Blocks for two fsyncs.
    pub fn checkpoint(&self, now_ms: u64) -> Result<crate::integrity::Watermark, StorageError> {
        crate::integrity::checkpoint(self, now_ms)
    }

    /// The data directory this storage was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The persisted cluster members, in the [`trees::MEMBERS`] tree.
    pub fn members(&self) -> SledMemberStore {
        SledMemberStore::new(self.shared.clone())
    }

    /// The node's small named values, in the [`trees::META`] tree.
    pub fn meta(&self) -> SledMetaStore {
        SledMetaStore::new(self.shared.clone())
    }

    /// The alert table, in the [`trees::ALERTS`] tree.
    pub fn alerts(&self) -> SledAlertStore {
        SledAlertStore::new(self.shared.clone())
    }

    /// The hosts' history, in the [`trees::HISTORY`] tree.
    pub fn history(&self) -> SledHistoryStore {
        SledHistoryStore::new(self.shared.clone())
    }

    /// The signed grid-control records, in the [`trees::GRID`] tree.
    pub fn grid(&self) -> crate::grid::SledGridStore {
        crate::grid::SledGridStore::new(self.shared.clone())
    }

    /// The Raft log and metadata of the election crate, in the [`trees::RAFT_LOG`] and
    /// [`trees::RAFT_META`] trees.
    pub fn raft(&self) -> RaftTrees {
        RaftTrees::new(self.shared.clone())
    }

    /// The newest status sample of every host, in the [`trees::LAST_SAMPLES`] tree.
    pub fn last_samples(&self) -> crate::LastSamples {
        crate::LastSamples::new(self.shared.clone())
    }

    /// The agent's cluster event log, in the [`trees::EVENT_LOG`] tree.
    pub fn event_log(&self) -> crate::EventLogTree {
        crate::EventLogTree::new(self.shared.clone())
    }

    /// Which switch each host hangs off, in the [`trees::TOPOLOGY`] tree.
    pub fn topology(&self) -> crate::TopologyTree {
        crate::TopologyTree::new(self.shared.clone())
    }

    /// Writes every buffered change of every tree to disk and waits for the fsync. Blocks the
    /// calling thread; from async code use [`Storage::flush_async`].
    pub fn flush(&self) -> Result<(), StorageError> {
        self.shared.flush()
    }

    /// Like [`Storage::flush`], but the disk work runs on sled's thread pool and the caller
    /// awaits it instead of blocking.
    ///
    /// The database is not locked while the flush is awaited. If a rewrite swaps the database
    /// meanwhile, this flushes the replaced one, which is harmless: the rewrite copied every
    /// write made before it started and flushed the copy before swapping it in.
    pub async fn flush_async(&self) -> Result<(), StorageError> {
        self.shared.flush_async().await
    }

    /// The bytes sled's files take on disk now (its log file and blobs).
    pub fn size_on_disk(&self) -> Result<u64, StorageError> {
        rewrite::size_on_disk(&self.shared.read().db)
    }

    /// The bytes of live data: the sum of the lengths of every key and value of every tree.
    /// Scans everything, so it costs about as much as reading the whole database.
    pub fn live_bytes(&self) -> Result<u64, StorageError> {
        rewrite::live_bytes(&self.shared.read().db)
    }

    /// Copies the database into a fresh file and swaps it in when sled's file takes more than
    /// `max(min_bytes, factor * live_bytes)` on disk and, if this process rewrote it before, at
    /// least twice what the last rewrite left; returns what it did, or `None` when the file is
    /// not that large. (Even a fresh copy takes three to five times its live bytes in sled, so
    /// without the second rule a `factor` near that would rewrite at every call.) sled reuses freed space poorly and never shrinks its file, so
    /// an agent calls this periodically (after history compaction) to keep its disk use
    /// bounded by about `factor` times its live data.
    ///
    /// Blocks the calling thread, and every store operation of this process, for the copy (a
    /// few seconds per hundred megabytes); from async code run it on a blocking thread. Stores
    /// obtained before keep working. A crash at any point leaves a data directory that
    /// [`Storage::open`] recovers; see [`crate::rewrite`].
    pub fn rewrite_if_bloated(
        &self,
        factor: f64,
        min_bytes: u64,
    ) -> Result<Option<RewriteStats>, StorageError> {
        rewrite::rewrite_if_bloated(&self.shared, &self.path, factor, min_bytes)
    }

    /// Whether writes currently succeed, and since when they fail if they do not (see
    /// [`crate::health`]). Every failed write or flush of this storage, its clones and its
    /// stores is recorded here.
    pub fn health(&self) -> StorageHealth {
        self.shared.health.snapshot()
    }

    /// Writes and flushes a small probe value: succeeds only if the database takes durable
    /// writes now. A success marks the storage healthy again. Blocks for one fsync.
    pub fn probe(&self) -> Result<(), StorageError> {
        health::probe(&self.shared)
    }

    /// Gets a failed database back without a restart: checks that the disk takes writes again
    /// (a probe file beside the database), then closes the database and opens it again in
    /// place, and probes it (see [`crate::health`] for the steps). Stores obtained before keep
    /// working. The reopened database holds what was on disk at the last good flush.
    ///
    /// Fails with [`StorageError::Reopen`] while the disk still refuses writes (nothing is
    /// touched then). If the database cannot be opened again, [`StorageHealth::closed`] is set
    /// and every later operation sees an empty stand-in database: restart the agent then.
    /// Blocks the calling thread, and every store operation, for the reopen.
    pub fn recover(&self) -> Result<(), StorageError> {
        health::recover(&self.shared, &self.path)
    }

    /// A raw sled tree of the current database, for tests that plant bytes.
    #[cfg(test)]
    pub(crate) fn raw_tree(&self, name: &str) -> sled::Tree {
        self.shared.read().db.open_tree(name).unwrap()
    }
}

/// Maps the error of opening `path`: a held lock becomes [`StorageError::Locked`], anything
/// else [`StorageError::Open`].
pub(crate) fn open_error(path: &Path, err: sled::Error) -> StorageError {
    match &err {
        sled::Error::Io(io) if io.to_string().contains(LOCK_HELD_MESSAGE) => {
            tracing::warn!(path = %path.display(), "data dir is locked by another process");
            StorageError::Locked {
                path: path.to_path_buf(),
            }
        }
        _ => StorageError::Open {
            path: path.to_path_buf(),
            source: err,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::member;
    use crate::{MemberStore, MetaStore};

    #[test]
    fn a_flushed_value_survives_dropping_and_reopening_the_storage() {
        let dir = tempfile::tempdir().unwrap();
        {
            let storage = Storage::open(dir.path()).unwrap();
            storage.members().put(&member("node-a", 3)).unwrap();
            storage.meta().put_u64("generation", 3).unwrap();
            storage.flush().unwrap();
        }
        let storage = crate::test_support::reopen(dir.path());
        assert_eq!(
            storage.members().get("node-a").unwrap(),
            Some(member("node-a", 3))
        );
        assert_eq!(storage.meta().get_u64("generation").unwrap(), Some(3));
    }

    #[test]
    fn an_async_flush_makes_a_value_durable_too() {
        let dir = tempfile::tempdir().unwrap();
        {
            let storage = Storage::open(dir.path()).unwrap();
            storage.meta().put_bytes("node_key", b"secret").unwrap();
            crate::test_support::block_on(storage.flush_async()).unwrap();
        }
        let storage = crate::test_support::reopen(dir.path());
        assert_eq!(
            storage.meta().get_bytes("node_key").unwrap(),
            Some(b"secret".to_vec())
        );
    }

    #[test]
    fn opening_a_dir_that_is_already_open_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Storage::open(dir.path()).unwrap();
        let err = Storage::open(dir.path()).unwrap_err();
        assert!(
            matches!(&err, StorageError::Locked { path } if path == dir.path()),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("is in use by another process"),
            "{err}"
        );
    }

    #[test]
    fn the_lock_is_released_when_the_storage_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        drop(Storage::open(dir.path()).unwrap());
        crate::test_support::reopen(dir.path());
    }

    #[test]
    fn sleds_lock_error_maps_to_locked_and_other_io_errors_do_not() {
        let path = Path::new("/data/rover");
        let held = sled::Error::Io(std::io::Error::other(
            "could not acquire lock on \"/data/rover/db\": Os { code: 11, kind: WouldBlock }",
        ));
        assert!(matches!(
            open_error(path, held),
            StorageError::Locked { .. }
        ));

        let denied = sled::Error::Io(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert!(matches!(
            open_error(path, denied),
            StorageError::Open { .. }
        ));
    }

    #[test]
    fn storage_and_its_stores_can_be_shared_across_threads() {
        fn shareable<T: Send + Sync + Clone + 'static>() {}
        shareable::<Storage>();
        shareable::<crate::SledMemberStore>();
        shareable::<crate::SledMetaStore>();
        shareable::<crate::SledAlertStore>();
        shareable::<crate::SledHistoryStore>();
        shareable::<crate::RaftTrees>();
        shareable::<crate::grid::SledGridStore>();
    }

    #[test]
    fn opening_a_path_that_is_a_file_is_an_open_error() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let err = Storage::open(file.path()).unwrap_err();
        assert!(matches!(err, StorageError::Open { .. }), "{err:?}");
    }
}
