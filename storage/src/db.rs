//! [`Storage`]: the one sled database of the process and its trees.
//!
//! Opening takes the data directory's lock, so a second agent on the same directory fails
//! fast with [`StorageError::Locked`] instead of sharing files. Writes are buffered by sled
//! and flushed every [`FLUSH_EVERY_MS`]; call [`Storage::flush`] or [`Storage::flush_async`]
//! where a write must be durable before going on (for example before announcing a new
//! identity generation).

use std::path::{Path, PathBuf};

use crate::alerts::SledAlertStore;
use crate::error::StorageError;
use crate::history::SledHistoryStore;
use crate::members::SledMemberStore;
use crate::meta::SledMetaStore;
use crate::trees;

/// Upper bound of sled's page cache, in bytes.
pub const CACHE_CAPACITY_BYTES: u64 = 32 * 1024 * 1024;

/// How often sled flushes buffered writes to disk in the background, in milliseconds.
pub const FLUSH_EVERY_MS: u64 = 500;

/// The text sled puts in the I/O error it returns when the directory's lock is held.
const LOCK_HELD_MESSAGE: &str = "could not acquire lock";

/// The persistent state of the agent: one sled database per process, one tree per keyspace.
///
/// Cheap to clone; clones share the same database and trees. The lock on the data directory
/// is released when the last clone (and every store obtained from it) is dropped.
#[derive(Debug, Clone)]
pub struct Storage {
    pub(crate) db: sled::Db,
    path: PathBuf,
    members: sled::Tree,
    meta: sled::Tree,
    alerts: sled::Tree,
    history: sled::Tree,
}

impl Storage {
    /// Opens (creating if needed) the database in the directory `path` and its trees.
    ///
    /// Fails with [`StorageError::Locked`] when another process, or another open `Storage`
    /// of this process, holds the directory.
    pub fn open(path: impl AsRef<Path>) -> Result<Storage, StorageError> {
        let path = path.as_ref().to_path_buf();
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(CACHE_CAPACITY_BYTES)
            .flush_every_ms(Some(FLUSH_EVERY_MS))
            .open()
            .map_err(|err| open_error(&path, err))?;
        let open_tree = |name: &str| {
            db.open_tree(name).map_err(|source| StorageError::Open {
                path: path.clone(),
                source,
            })
        };
        let members = open_tree(trees::MEMBERS)?;
        let meta = open_tree(trees::META)?;
        let alerts = open_tree(trees::ALERTS)?;
        let history = open_tree(trees::HISTORY)?;
        tracing::debug!(path = %path.display(), "storage opened");
        Ok(Storage {
            db,
            path,
            members,
            meta,
            alerts,
            history,
        })
    }

    /// The data directory this storage was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The persisted cluster members, in the [`trees::MEMBERS`] tree.
    pub fn members(&self) -> SledMemberStore {
        SledMemberStore::new(self.members.clone())
    }

    /// The node's small named values, in the [`trees::META`] tree.
    pub fn meta(&self) -> SledMetaStore {
        SledMetaStore::new(self.meta.clone())
    }

    /// The alert table, in the [`trees::ALERTS`] tree.
    pub fn alerts(&self) -> SledAlertStore {
        SledAlertStore::new(self.alerts.clone())
    }

    /// The hosts' history, in the [`trees::HISTORY`] tree.
    pub fn history(&self) -> SledHistoryStore {
        SledHistoryStore::new(self.history.clone())
    }

    /// Writes every buffered change of every tree to disk and waits for the fsync. Blocks the
    /// calling thread; from async code use [`Storage::flush_async`].
    pub fn flush(&self) -> Result<(), StorageError> {
        self.db
            .flush()
            .map(drop)
            .map_err(|source| StorageError::Flush { source })
    }

    /// Like [`Storage::flush`], but the disk work runs on sled's thread pool and the caller
    /// awaits it instead of blocking.
    pub async fn flush_async(&self) -> Result<(), StorageError> {
        self.db
            .flush_async()
            .await
            .map(drop)
            .map_err(|source| StorageError::Flush { source })
    }
}

/// Maps the error of opening `path`: a held lock becomes [`StorageError::Locked`], anything
/// else [`StorageError::Open`].
fn open_error(path: &Path, err: sled::Error) -> StorageError {
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
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    use std::thread::{self, Thread};

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
        let storage = Storage::open(dir.path()).unwrap();
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
            block_on(storage.flush_async()).unwrap();
        }
        let storage = Storage::open(dir.path()).unwrap();
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
        Storage::open(dir.path()).unwrap();
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
    fn opening_a_path_that_is_a_file_is_an_open_error() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let err = Storage::open(file.path()).unwrap_err();
        assert!(matches!(err, StorageError::Open { .. }), "{err:?}");
    }

    /// Runs a future to completion on this thread; enough for sled's flush future.
    fn block_on<F: Future>(future: F) -> F::Output {
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
