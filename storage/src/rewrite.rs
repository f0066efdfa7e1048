//! Keeping sled's file bounded: copying the database into a fresh file and swapping it in.
//!
//! sled 0.34 reuses the space of deleted and rewritten pages poorly and never shrinks its file:
//! with history compaction bounding the live data, the file still grows by megabytes per hour
//! (see `examples/history_size.rs`). [`crate::Storage::rewrite_if_bloated`] bounds it: when the
//! file takes more than `max(min_bytes, factor * live_bytes)`, every tree is copied into a
//! fresh database, which holds only live data, and that database replaces the old one.
//!
//! # The swap
//!
//! For a database directory `P` (the path given to [`crate::Storage::open`], for example
//! `<data-dir>/db`) the rewrite uses two siblings, `P.rewrite-tmp` (`T`) and `P.old` (`O`).
//! While it holds the write guard of the shared database (no store operation runs):
//!
//! 1. flush `P`; remove any stale `T`;
//! 2. copy every tree of `P` into a new database at `T`, flush it and close it;
//! 3. create the marker file `T/rewrite-complete` and fsync it and `T`: `T` is now complete;
//! 4. rename `P` to `O`;
//! 5. rename `T` to `P`, fsync the parent directory, remove the marker from `P`;
//! 6. open `P` and put it in place of the old database, which is closed;
//! 7. remove `O`.
//!
//! If step 4, 5 or 6 fails, the renames are undone and the old database stays in use. (If
//! undoing a rename fails too, the error is returned with the old database still in use but
//! its directory at `O`; writes made after that are lost when the next open keeps `P`.)
//!
//! # Recovery on open
//!
//! A crash may stop the rewrite between any two steps. [`crate::Storage::open`] looks at the
//! three directories before opening and decides deterministically:
//!
//! | `P` | `T` | `O` | reached by a crash | what open does |
//! |---|---|---|---|---|
//! | yes | any | any | before step 4, or after step 5 | keep `P`; remove `T`, `O` and a marker in `P` |
//! | no | complete | any | between steps 4 and 5 | rename `T` to `P`; remove `O` |
//! | no | absent or incomplete | yes | (a rename undone halfway) | rename `O` to `P`; remove `T` |
//! | no | absent or incomplete | no | (a fresh data dir) | remove `T`; create `P` |
//!
//! `P` is always authoritative when it exists: before step 4 it is the database every write
//! went to, and after step 5 it is the complete copy (the writes stopped while the copy was
//! made). Removing `T` and `O` happens only once sled's lock on `P` is held, so a second
//! process started on a data dir in use never touches the first one's rewrite; when `P` is
//! missing, `O` is opened first to check that no process still uses it.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::db::{Open, Shared};
use crate::error::{printable_key, StorageError};

/// Suffix of the sibling directory a rewrite copies into.
pub const REWRITE_TMP_SUFFIX: &str = "rewrite-tmp";

/// Suffix the replaced database directory gets until it is removed.
pub const OLD_SUFFIX: &str = "old";

/// The file that marks a copy as complete, inside the copy's directory.
pub const COMPLETE_MARKER: &str = "rewrite-complete";

/// How long a rewrite waits for sled to release the closed copy's lock.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// How many keys one sled batch of the copy holds at most.
const COPY_BATCH: usize = 1024;

/// What one rewrite did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RewriteStats {
    /// sled's size on disk before, in bytes.
    pub size_before: u64,
    /// sled's size on disk of the fresh database, in bytes.
    pub size_after: u64,
    /// Live bytes (keys and values of every tree) when the rewrite was decided.
    pub live_bytes: u64,
    /// How many trees were copied, sled's default tree included.
    pub trees: usize,
    /// How many key-value pairs were copied, over all trees.
    pub entries: u64,
    /// How long the database was locked for the copy and swap.
    pub locked_for: Duration,
}

/// The sibling directories `(P.rewrite-tmp, P.old)` of the database directory `path`, or
/// `None` when `path` has no final name to extend (such as `/` or `..`).
fn siblings(path: &Path) -> Option<(PathBuf, PathBuf)> {
    // Components drop a trailing separator, so `db/` has the siblings of `db`.
    let path: PathBuf = path.components().collect();
    let name = path.file_name()?.to_os_string();
    let with = |suffix: &str| {
        let mut sibling = name.clone();
        sibling.push(".");
        sibling.push(suffix);
        path.with_file_name(sibling)
    };
    Some((with(REWRITE_TMP_SUFFIX), with(OLD_SUFFIX)))
}

/// A [`StorageError::Rewrite`] for `action` on `path`.
fn fs_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StorageError {
    let path = path.to_path_buf();
    move |source| StorageError::Rewrite {
        action,
        path,
        source,
    }
}

/// Removes the directory `path` and everything in it; an absent directory is not an error.
fn remove_dir(path: &Path) -> Result<(), StorageError> {
    match fs::remove_dir_all(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(fs_error("remove", path)(err)),
        _ => Ok(()),
    }
}

/// Removes the file `path`; an absent file is not an error.
fn remove_file(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(fs_error("remove", path)(err)),
        _ => Ok(()),
    }
}

/// Renames `from` to `to`.
fn rename(from: &Path, to: &Path) -> Result<(), StorageError> {
    fs::rename(from, to).map_err(fs_error("rename", from))
}

/// Makes the entries of directory `dir` (creations, renames) durable.
fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(fs_error("sync", dir))
}

/// The parent directory of `path`, for syncing renames in it.
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Whether the directory `dir` holds a complete copy.
fn is_complete(dir: &Path) -> bool {
    dir.join(COMPLETE_MARKER).is_file()
}

/// Finishes or undoes an interrupted rewrite of the database directory `path` (see the
/// module docs for the states), then opens it.
pub(crate) fn recover_and_open(path: &Path) -> Result<Open, StorageError> {
    let Some((tmp, old)) = siblings(path) else {
        return Open::at(path);
    };
    if !path.exists() {
        if is_complete(&tmp) {
            tracing::warn!(path = %path.display(), "finishing an interrupted rewrite");
            rename(&tmp, path)?;
        } else if old.exists() {
            // Opening takes sled's lock: a process still using `O` makes this fail Locked.
            drop(Open::at(&old)?);
            tracing::warn!(path = %path.display(), "undoing an interrupted rewrite");
            rename(&old, path)?;
        }
        sync_dir(parent(path))?;
    }
    let open = Open::at(path)?;
    // sled's lock on `P` is held: no rewrite of another process can be under way.
    let stand_in = crate::health::sibling(path, crate::health::REOPEN_TMP_SUFFIX);
    for (leftover, what) in [
        (&tmp, "copy of an interrupted rewrite"),
        (&old, "replaced database of an interrupted rewrite"),
        (&stand_in, "stand-in database of an interrupted reopen"),
    ] {
        if leftover.exists() {
            tracing::warn!(path = %leftover.display(), "removing the {what}");
            remove_dir(leftover)?;
        }
    }
    remove_file(&path.join(COMPLETE_MARKER))?;
    Ok(open)
}

/// sled's size on disk of `db`.
pub(crate) fn size_on_disk(db: &sled::Db) -> Result<u64, StorageError> {
    db.size_on_disk().map_err(|source| StorageError::Scan {
        tree: "*".to_owned(),
        source,
    })
}

/// The sum of the lengths of every key and value of every tree of `db`.
pub(crate) fn live_bytes(db: &sled::Db) -> Result<u64, StorageError> {
    let mut total = 0;
    for name in db.tree_names() {
        let tree = open_tree(db, &name)?;
        for item in tree.iter() {
            let (key, value) = item.map_err(scan_error(&name))?;
            total += (key.len() + value.len()) as u64;
        }
    }
    Ok(total)
}

/// The tree `name` of `db`.
fn open_tree(db: &sled::Db, name: &[u8]) -> Result<sled::Tree, StorageError> {
    db.open_tree(name).map_err(scan_error(name))
}

/// A [`StorageError::Scan`] of the tree `name`.
fn scan_error(name: &[u8]) -> impl FnOnce(sled::Error) -> StorageError + '_ {
    move |source| StorageError::Scan {
        tree: printable_key(name),
        source,
    }
}

/// Whether `size` on disk is too much for `live` bytes.
fn is_bloated(size: u64, live: u64, factor: f64, min_bytes: u64) -> bool {
    let allowed = (factor * live as f64).max(min_bytes as f64);
    size as f64 > allowed
}

/// See [`crate::Storage::rewrite_if_bloated`].
pub(crate) fn rewrite_if_bloated(
    shared: &Shared,
    path: &Path,
    factor: f64,
    min_bytes: u64,
) -> Result<Option<RewriteStats>, StorageError> {
    // Decided under a read guard, so writers wait only for the copy itself.
    let (size_before, live, rewritten_size) = {
        let open = shared.read();
        (
            size_on_disk(&open.db)?,
            live_bytes(&open.db)?,
            open.rewritten_size,
        )
    };
    if !is_bloated(size_before, live, factor, min_bytes)
        || size_before < rewritten_size.unwrap_or(0).saturating_mul(2)
    {
        return Ok(None);
    }
    let Some((tmp, old)) = siblings(path) else {
        return Err(fs_error("find the siblings of", path)(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path has no final name",
        )));
    };
    let mut open = shared.write();
    let started = Instant::now();
    open.db
        .flush()
        .map_err(|source| StorageError::Flush { source })?;
    remove_dir(&tmp)?;
    let (trees, entries) = copy_into(&open.db, &tmp)?;
    File::create(tmp.join(COMPLETE_MARKER))
        .and_then(|marker| marker.sync_all())
        .map_err(fs_error("create the marker in", &tmp))?;
    sync_dir(&tmp)?;

    let mut fresh = swap_dirs(path, &tmp, &old)?;
    let size_after = size_on_disk(&fresh.db)?;
    fresh.rewritten_size = Some(size_after);
    // The old database is closed here; its files are under `O`.
    drop(std::mem::replace(&mut *open, fresh));
    let locked_for = started.elapsed();
    drop(open);
    remove_dir(&old)?;
    let stats = RewriteStats {
        size_before,
        size_after,
        live_bytes: live,
        trees,
        entries,
        locked_for,
    };
    tracing::info!(?stats, path = %path.display(), "database rewritten");
    Ok(Some(stats))
}

/// Copies every tree of `db` into a new database at `tmp`, flushes and closes it; returns how
/// many trees and entries it copied.
fn copy_into(db: &sled::Db, tmp: &Path) -> Result<(usize, u64), StorageError> {
    let copy = sled::Config::new()
        .path(tmp)
        .create_new(true)
        .open()
        .map_err(|source| StorageError::Open {
            path: tmp.to_path_buf(),
            source,
        })?;
    let names = db.tree_names();
    let mut entries = 0;
    for name in &names {
        let from = open_tree(db, name)?;
        let to = copy.open_tree(name).map_err(|source| StorageError::Open {
            path: tmp.to_path_buf(),
            source,
        })?;
        let mut batch = sled::Batch::default();
        let mut in_batch = 0;
        let mut last_key = sled::IVec::default();
        for item in from.iter() {
            let (key, value) = item.map_err(scan_error(name))?;
            batch.insert(key.clone(), value);
            last_key = key;
            in_batch += 1;
            if in_batch == COPY_BATCH {
                apply(&to, std::mem::take(&mut batch), name, &last_key)?;
                entries += in_batch as u64;
                in_batch = 0;
            }
        }
        apply(&to, batch, name, &last_key)?;
        entries += in_batch as u64;
    }
    copy.flush()
        .map_err(|source| StorageError::Flush { source })?;
    Ok((names.len(), entries))
}

/// Applies `batch` to the tree `to` of the copy.
fn apply(
    to: &sled::Tree,
    batch: sled::Batch,
    name: &[u8],
    last_key: &[u8],
) -> Result<(), StorageError> {
    to.apply_batch(batch).map_err(|source| StorageError::Write {
        tree: printable_key(name),
        key: printable_key(last_key),
        source,
    })
}

/// Opens the copy at `path`, waiting up to [`RELEASE_WAIT`] for sled's lock on it: sled's
/// background threads close a dropped database's file shortly after the drop, not during it.
pub(crate) fn open_when_released(path: &Path) -> Result<Open, StorageError> {
    let deadline = Instant::now() + RELEASE_WAIT;
    loop {
        match Open::at(path) {
            Err(StorageError::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            opened => return opened,
        }
    }
}

/// Steps 4 to 6 of the swap: puts the complete copy `tmp` at `path`, the old database at
/// `old`, and opens the copy. On failure undoes the renames it made, so `path` holds the old
/// database again.
fn swap_dirs(path: &Path, tmp: &Path, old: &Path) -> Result<Open, StorageError> {
    remove_dir(old)?;
    rename(path, old)?;
    let swapped = rename(tmp, path)
        .and_then(|()| sync_dir(parent(path)))
        .and_then(|()| remove_file(&path.join(COMPLETE_MARKER)))
        .and_then(|()| open_when_released(path));
    match swapped {
        Ok(open) => Ok(open),
        Err(err) => {
            tracing::error!(error = %err, path = %path.display(), "rewrite failed; undoing it");
            if path.exists() {
                // The copy is complete; keep it out of the way until it is removed.
                rename(path, tmp)?;
            }
            rename(old, path)?;
            sync_dir(parent(path))?;
            remove_dir(tmp)?;
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{alert, member, sample_entry};
    use crate::{AlertStore, HistoryStore, MemberStore, MetaStore, Storage};

    const T0: u64 = 1_700_000_040_000;

    /// A storage at `<temp>/db` holding a little of everything.
    fn filled() -> (tempfile::TempDir, PathBuf, Storage) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let storage = Storage::open(&path).unwrap();
        fill(&storage, "node");
        (dir, path, storage)
    }

    fn fill(storage: &Storage, prefix: &str) {
        for i in 0..20 {
            storage
                .members()
                .put(&member(&format!("{prefix}-{i}"), i))
                .unwrap();
            storage
                .alerts()
                .put(&alert("ops", &format!("{prefix}-{i}"), "disk", i))
                .unwrap();
        }
        storage.meta().put_u64("generation", 7).unwrap();
        storage.meta().put_bytes("node_key", b"secret").unwrap();
        let history = storage.history();
        for i in 0..2_000 {
            let host = format!("{prefix}-{}", i % 5);
            history
                .append(&sample_entry(&host, T0 + i * 1_000, i as f32))
                .unwrap();
        }
        storage.raw_tree("reserved").insert("k", "v").unwrap();
        storage.flush().unwrap();
    }

    /// Everything the four stores hold, for comparing before and after.
    fn contents(storage: &Storage) -> (Vec<crate::StoredMember>, Vec<crate::Alert>, Vec<u8>) {
        let history = storage.history();
        let mut all_history = Vec::new();
        for host in history.hosts().unwrap() {
            all_history.extend(history.range(&host, 0, u64::MAX).unwrap());
        }
        let mut digest = format!("{all_history:?}").into_bytes();
        digest.extend(storage.meta().get_bytes("node_key").unwrap().unwrap());
        digest.extend(
            storage
                .meta()
                .get_u64("generation")
                .unwrap()
                .unwrap()
                .to_be_bytes(),
        );
        (
            storage.members().all().unwrap(),
            storage.alerts().all().unwrap(),
            digest,
        )
    }

    fn mark_complete(dir: &Path) {
        File::create(dir.join(COMPLETE_MARKER)).unwrap();
    }

    /// A closed database at `path` holding one member named `name`.
    fn database_with(path: &Path, name: &str) {
        let storage = Storage::open(path).unwrap();
        storage.members().put(&member(name, 1)).unwrap();
        storage.flush().unwrap();
    }

    fn names(storage: &Storage) -> Vec<String> {
        storage
            .members()
            .all()
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect()
    }

    #[test]
    fn a_rewrite_keeps_every_record_of_every_tree() {
        let (_dir, path, storage) = filled();
        let before = contents(&storage);
        let live = storage.live_bytes().unwrap();

        let stats = storage.rewrite_if_bloated(0.0, 0).unwrap().unwrap();

        assert_eq!(contents(&storage), before);
        assert_eq!(storage.live_bytes().unwrap(), live);
        assert_eq!(stats.live_bytes, live);
        assert_eq!(stats.entries, 20 + 20 + 2 + 2_000 + 1);
        assert_eq!(storage.history().len().unwrap(), 2_000);
        assert_eq!(
            storage.raw_tree("reserved").get("k").unwrap().unwrap(),
            b"v"
        );
        let (tmp, old) = siblings(&path).unwrap();
        assert!(!tmp.exists() && !old.exists());
        assert!(!path.join(COMPLETE_MARKER).exists());

        drop(storage);
        let reopened = crate::test_support::reopen(&path);
        assert_eq!(contents(&reopened), before);
    }

    #[test]
    fn stores_obtained_before_a_rewrite_keep_working_after_it() {
        let (_dir, path, storage) = filled();
        let (members, meta, alerts, history) = (
            storage.members(),
            storage.meta(),
            storage.alerts(),
            storage.history(),
        );
        let clone = storage.clone();

        storage.rewrite_if_bloated(0.0, 0).unwrap().unwrap();

        members.put(&member("late", 9)).unwrap();
        meta.put_u64("generation", 8).unwrap();
        alerts.put(&alert("ops", "late", "disk", 1)).unwrap();
        history.append(&sample_entry("late", T0, 1.0)).unwrap();
        history.compact(T0 + 3_600_000, 60_000, 86_400_000).unwrap();
        clone.flush().unwrap();
        assert_eq!(
            storage.members().get("late").unwrap(),
            Some(member("late", 9))
        );
        assert_eq!(storage.meta().get_u64("generation").unwrap(), Some(8));
        assert_eq!(storage.alerts().len().unwrap(), 21);
        assert!(storage
            .history()
            .hosts()
            .unwrap()
            .contains(&"late".to_owned()));

        drop((storage, clone, members, meta, alerts, history));
        let reopened = crate::test_support::reopen(&path);
        assert_eq!(
            reopened.members().get("late").unwrap(),
            Some(member("late", 9))
        );
    }

    #[test]
    fn a_rewrite_is_skipped_when_the_file_is_not_bloated() {
        let (_dir, _path, storage) = filled();
        let size = storage.size_on_disk().unwrap();
        assert!(storage.rewrite_if_bloated(1e9, 0).unwrap().is_none());
        assert!(storage.rewrite_if_bloated(0.0, size).unwrap().is_none());
        assert!(storage.rewrite_if_bloated(0.0, size - 1).unwrap().is_some());
    }

    #[test]
    fn a_second_rewrite_waits_until_the_file_doubles_again() {
        let (_dir, _path, storage) = filled();
        let first = storage.rewrite_if_bloated(0.0, 0).unwrap().unwrap();
        assert!(storage.rewrite_if_bloated(0.0, 0).unwrap().is_none());
        let history = storage.history();
        let mut i = 0;
        while storage.size_on_disk().unwrap() < 2 * first.size_after {
            history.append(&sample_entry("busy", T0 + i, 1.0)).unwrap();
            i += 1;
        }
        assert!(storage.rewrite_if_bloated(0.0, 0).unwrap().is_some());
    }

    #[test]
    fn concurrent_writers_lose_nothing_during_rewrites() {
        let (_dir, _path, storage) = filled();
        let writer = {
            let members = storage.members();
            std::thread::spawn(move || {
                for i in 0..500 {
                    members.put(&member(&format!("w-{i:03}"), i)).unwrap();
                }
            })
        };
        for _ in 0..3 {
            storage.rewrite_if_bloated(0.0, 0).unwrap();
        }
        writer.join().unwrap();
        let written = names(&storage)
            .iter()
            .filter(|n| n.starts_with("w-"))
            .count();
        assert_eq!(written, 500);
    }

    #[test]
    fn open_keeps_the_database_and_removes_a_copy_left_before_the_swap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let (tmp, old) = siblings(&path).unwrap();
        database_with(&path, "current");
        database_with(&tmp, "copy");
        for complete in [false, true] {
            if complete {
                database_with(&tmp, "copy");
                mark_complete(&tmp);
            }
            let storage = Storage::open(&path).unwrap();
            assert_eq!(names(&storage), ["current"]);
            assert!(!tmp.exists() && !old.exists());
        }
    }

    #[test]
    fn open_keeps_the_swapped_in_copy_and_removes_the_old_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let (_, old) = siblings(&path).unwrap();
        database_with(&path, "copy");
        mark_complete(&path);
        database_with(&old, "old");

        let storage = Storage::open(&path).unwrap();
        assert_eq!(names(&storage), ["copy"]);
        assert!(!old.exists());
        assert!(!path.join(COMPLETE_MARKER).exists());
    }

    #[test]
    fn open_finishes_a_swap_stopped_between_the_two_renames() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let (tmp, old) = siblings(&path).unwrap();
        database_with(&old, "old");
        database_with(&tmp, "copy");
        mark_complete(&tmp);

        let storage = Storage::open(&path).unwrap();
        assert_eq!(names(&storage), ["copy"]);
        assert!(!tmp.exists() && !old.exists());
        assert!(!path.join(COMPLETE_MARKER).exists());
    }

    #[test]
    fn open_restores_the_old_database_when_the_copy_is_incomplete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let (tmp, old) = siblings(&path).unwrap();
        database_with(&old, "old");
        database_with(&tmp, "copy");

        let storage = Storage::open(&path).unwrap();
        assert_eq!(names(&storage), ["old"]);
        assert!(!tmp.exists() && !old.exists());
    }

    #[test]
    fn open_promotes_a_complete_copy_when_nothing_else_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let (tmp, _) = siblings(&path).unwrap();
        database_with(&tmp, "copy");
        mark_complete(&tmp);

        let storage = Storage::open(&path).unwrap();
        assert_eq!(names(&storage), ["copy"]);
    }

    #[test]
    fn open_discards_an_incomplete_copy_when_nothing_else_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let (tmp, _) = siblings(&path).unwrap();
        database_with(&tmp, "copy");

        let storage = Storage::open(&path).unwrap();
        assert!(names(&storage).is_empty());
        assert!(!tmp.exists());
    }

    #[test]
    fn open_does_not_touch_an_old_database_another_storage_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let (_, old) = siblings(&path).unwrap();
        let holder = Storage::open(&old).unwrap();

        let err = Storage::open(&path).unwrap_err();
        assert!(matches!(err, StorageError::Locked { .. }), "{err:?}");
        assert!(old.exists() && !path.exists());
        drop(holder);
    }

    #[test]
    fn siblings_extend_the_last_name_of_the_path() {
        let (tmp, old) = siblings(Path::new("/var/lib/rover/db/")).unwrap();
        assert_eq!(tmp, Path::new("/var/lib/rover/db.rewrite-tmp"));
        assert_eq!(old, Path::new("/var/lib/rover/db.old"));
        assert_eq!(siblings(Path::new("/")), None);
    }

    #[test]
    fn bloat_is_the_larger_of_the_factor_and_the_floor() {
        assert!(is_bloated(401, 100, 4.0, 0));
        assert!(!is_bloated(400, 100, 4.0, 0));
        assert!(!is_bloated(401, 100, 4.0, 1_000));
        assert!(is_bloated(1_001, 100, 4.0, 1_000));
    }
}
