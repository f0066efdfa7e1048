//! Whether the database takes writes, and getting it back when it stopped.
//!
//! sled makes an I/O error sticky: once a flush fails (a full disk, say), every later write
//! and flush of that database fails too, even after space is freed, and the writes it had
//! buffered since the last good flush are gone. So every failed write or flush is recorded in
//! the [`HealthCell`] of the open database ([`crate::Storage::health`] reads it), and
//! [`crate::Storage::recover`] gets the database back in place, without a restart:
//!
//! 1. it writes, syncs and removes a probe file of [`PROBE_BYTES`] beside the database, so
//!    nothing is touched while the disk is still full;
//! 2. under the write guard (no store operation runs), it drops the failed database (an empty
//!    temporary database at `P.reopen-tmp` stands in while it does, so the guard always holds
//!    an open database), opens `P` again, and writes and flushes a probe value;
//! 3. stores obtained before keep working, on the reopened database.
//!
//! The reopened database holds what was on disk at the last good flush: a caller that needs a
//! write to be durable (an API write that answers 200) flushes before it answers.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::db::{Open, Shared};
use crate::error::StorageError;
use crate::trees;

/// Size of the probe file written beside the database before a reopen: about two of sled's
/// log segments, which a reopen may need.
pub const PROBE_BYTES: usize = 1024 * 1024;

/// Suffix of the temporary database that stands in while the failed one is dropped.
pub const REOPEN_TMP_SUFFIX: &str = "reopen-tmp";

/// Suffix of the probe file written beside the database.
pub const PROBE_SUFFIX: &str = "space-probe";

/// Key of the value a probe writes in [`trees::META`].
pub const PROBE_KEY: &str = "storage_probe";

/// Whether the database takes writes, as [`crate::Storage::health`] tells it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageHealth {
    /// Why writes fail, since when; `None` while they succeed.
    pub failing: Option<StorageFailure>,
    /// How many times the database was reopened after failing, since it was opened.
    pub recoveries: u64,
    /// Whether a reopen left the database closed (it could not be opened again): nothing can
    /// be read or written until the agent restarts, which verifies it.
    pub closed: bool,
}

impl StorageHealth {
    /// Whether writes currently succeed.
    pub fn is_ok(&self) -> bool {
        self.failing.is_none() && !self.closed
    }
}

/// A failure of writes, as [`StorageHealth`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageFailure {
    /// When the first failed write or flush happened (Unix ms).
    pub since_ms: u64,
    /// The latest error, as text.
    pub error: String,
    /// How many writes and flushes failed since then.
    pub failed_writes: u64,
}

/// The health of one [`crate::Storage`] and its clones.
#[derive(Debug, Default)]
pub(crate) struct HealthCell(Mutex<StorageHealth>);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Whether `err` says the disk refused a write (rather than a bad key or record).
fn is_io_failure(err: &StorageError) -> bool {
    matches!(
        err,
        StorageError::Write { .. }
            | StorageError::Flush { .. }
            | StorageError::Reopen { .. }
            | StorageError::Watermark { .. }
    )
}

impl HealthCell {
    /// The state; every change replaces a few fields at once, so a poisoned lock is taken over.
    fn state(&self) -> MutexGuard<'_, StorageHealth> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `err` if it is a failed write or flush.
    pub(crate) fn failed(&self, err: &StorageError) {
        if !is_io_failure(err) {
            return;
        }
        let mut state = self.state();
        let error = err.to_string();
        match &mut state.failing {
            Some(failure) => {
                failure.failed_writes += 1;
                failure.error = error;
            }
            None => {
                tracing::error!(error = %error, "storage is failing: writes are refused until it recovers");
                state.failing = Some(StorageFailure {
                    since_ms: now_ms(),
                    error,
                    failed_writes: 1,
                });
            }
        }
    }

    fn recovered(&self) {
        let mut state = self.state();
        if let Some(failure) = state.failing.take() {
            let down_ms = now_ms().saturating_sub(failure.since_ms);
            tracing::warn!(
                down_ms,
                failed_writes = failure.failed_writes,
                "storage recovered: the database was reopened and takes writes again"
            );
            state.recoveries += 1;
        }
        state.closed = false;
    }

    fn closed(&self) {
        self.state().closed = true;
    }

    pub(crate) fn snapshot(&self) -> StorageHealth {
        self.state().clone()
    }
}

/// `P.suffix` beside the database directory `path`.
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let path: PathBuf = path.components().collect();
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    path.with_file_name(name)
}

/// A [`StorageError::Reopen`] for `action` on `path`.
fn reopen_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StorageError {
    let path = path.to_path_buf();
    move |source| StorageError::Reopen {
        action,
        path,
        source,
    }
}

/// Writes, syncs and removes a probe file of [`PROBE_BYTES`] beside `path`.
fn probe_space(path: &Path) -> Result<(), StorageError> {
    let probe = sibling(path, PROBE_SUFFIX);
    let written = File::create(&probe)
        .and_then(|mut file| {
            file.write_all(&vec![0u8; PROBE_BYTES])?;
            file.sync_all()
        })
        .map_err(reopen_error("write a probe file at", &probe));
    let _ = fs::remove_file(&probe);
    written
}

/// Writes and flushes the probe value in the open database `open`.
fn probe_write(open: &Open) -> Result<(), StorageError> {
    open.meta
        .insert(PROBE_KEY, crate::meta::encode_u64(now_ms())?)
        .map_err(|source| StorageError::Write {
            tree: trees::META.to_owned(),
            key: PROBE_KEY.to_owned(),
            source,
        })?;
    open.db
        .flush()
        .map(drop)
        .map_err(|source| StorageError::Flush { source })
}

/// See [`crate::Storage::probe`].
pub(crate) fn probe(shared: &Shared) -> Result<(), StorageError> {
    let probed = probe_write(&shared.read());
    shared.noted(probed)?;
    shared.health.recovered();
    Ok(())
}

/// See [`crate::Storage::recover`].
pub(crate) fn recover(shared: &Shared, path: &Path) -> Result<(), StorageError> {
    shared.noted(probe_space(path))?;
    let mut open = shared.write();
    let stand_in = sibling(path, REOPEN_TMP_SUFFIX);
    let _ = fs::remove_dir_all(&stand_in);
    let temporary = Open::temporary(&stand_in)?;
    // Dropping the failed database releases sled's lock on `P` once its threads let go.
    drop(std::mem::replace(&mut *open, temporary));
    match crate::rewrite::open_when_released(path) {
        Ok(fresh) => {
            let probed = probe_write(&fresh);
            // The temporary database is dropped here; sled removes its directory from a
            // background thread, so remove it too rather than leave it to that race.
            *open = fresh;
            drop(open);
            let _ = fs::remove_dir_all(&stand_in);
            shared.noted(probed)?;
            shared.health.recovered();
            Ok(())
        }
        Err(err) => {
            tracing::error!(error = %err, path = %path.display(), "the database cannot be opened again: storage is closed until the agent restarts");
            shared.health.closed();
            shared.health.failed(&err);
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::alert;
    use crate::{AlertStore, Storage};

    #[test]
    fn a_failed_flush_marks_the_storage_failing_and_a_probe_clears_it() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path().join("db")).unwrap();
        assert!(storage.health().is_ok());
        storage.shared.health.failed(&StorageError::Flush {
            source: sled::Error::Io(io::Error::from(io::ErrorKind::StorageFull)),
        });
        let health = storage.health();
        let failure = health.failing.unwrap();
        assert!(failure.error.contains("flush"), "{}", failure.error);
        assert_eq!(failure.failed_writes, 1);

        storage.probe().unwrap();
        let health = storage.health();
        assert!(health.is_ok(), "{health:?}");
        assert_eq!(health.recoveries, 1);
    }

    #[test]
    fn a_bad_key_is_not_a_storage_failure() {
        let cell = HealthCell::default();
        cell.failed(&StorageError::InvalidKey {
            tree: "alerts".into(),
            key: "a".into(),
            reason: "nul".into(),
        });
        assert!(cell.snapshot().is_ok());
    }

    #[test]
    fn a_reopen_keeps_what_was_flushed_and_stores_obtained_before_keep_working() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let storage = Storage::open(&path).unwrap();
        let alerts = storage.alerts();
        alerts.put(&alert("ops", "web-1", "disk", 1)).unwrap();
        storage.flush().unwrap();

        storage.recover().unwrap();

        assert_eq!(alerts.len().unwrap(), 1);
        alerts.put(&alert("ops", "web-2", "disk", 1)).unwrap();
        storage.flush().unwrap();
        assert_eq!(storage.alerts().len().unwrap(), 2);
        assert!(!sibling(&path, REOPEN_TMP_SUFFIX).exists());
        assert!(!sibling(&path, PROBE_SUFFIX).exists());
        assert!(storage.health().is_ok());
    }
}
