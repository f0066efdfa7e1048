//! Opening the database only when it holds what this node last knew to be on disk.
//!
//! sled opens almost any damage without a word: with the first 512 bytes of its file zeroed,
//! or the file truncated to nothing, it opens empty; with bytes flipped or the file cut in
//! half it opens the prefix before the damage (it treats the rest as a torn tail). An agent
//! that trusted such a clean open forgot its Raft vote and log, which Raft assumes cannot
//! happen. So the database is checked against a file kept beside it, the **watermark**
//! (`P.watermark` for the database directory `P`):
//!
//! - [`crate::Storage::checkpoint`] bumps a counter (the seal, in [`trees::META`]), flushes
//!   the database, then writes the seal with the database's epoch and a few counts to the
//!   watermark (through a temporary file, a rename and a directory sync). The agent does that
//!   every few seconds, so the watermark never claims more than the disk holds, and lags it by
//!   at most one checkpoint.
//! - [`crate::Storage::open_checked`] compares: a database whose seal is below the
//!   watermark's lost flushed data; one without an epoch while the watermark has one came
//!   back empty; one with another epoch is another database. Then it decodes every record of
//!   every tree the crate knows (alerts, members, meta, history, grid-control records; Raft
//!   log keys), since sled's checksums cover its log, not what the records mean.
//!
//! A database that fails any of this is moved aside to `P.corrupt-<UTC time>` (kept for
//! inspection, never deleted) and replaced by an empty one with a **new epoch**; the caller
//! is told what the last watermark counted, so it can say what is lost. The epoch is a random
//! number chosen when a database is created: the agent derives its Raft node id from its node
//! key and the epoch, so a node that lost its Raft state rejoins as a new Raft node instead of
//! reusing a vote it no longer remembers. A database from before epochs keeps epoch 0.
//!
//! What is not caught: damage that loses only writes made after the last checkpoint (the same
//! as a crash before it), and a data dir restored whole from a backup (watermark and database
//! agree; the Raft group sees an old node, which is the rollback case of the agent).

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use crate::alerts::AlertStore;
use crate::db::Shared;
use crate::error::StorageError;
use crate::health::sibling;
use crate::members::MemberStore;
use crate::meta::MetaStore;
use crate::{rewrite, trees, Storage};

/// Suffix of the watermark file beside the database directory.
pub const WATERMARK_SUFFIX: &str = "watermark";

/// Suffix (before the time) of a damaged database moved aside.
pub const CORRUPT_SUFFIX: &str = "corrupt";

/// Key in [`trees::META`] of the database's epoch.
pub const EPOCH_KEY: &str = "db_epoch";

/// Key in [`trees::META`] of the database's seal (the checkpoint counter).
pub const SEAL_KEY: &str = "db_seal";

/// First word of a watermark file, with its format version.
const WATERMARK_HEADER: &str = "rover-db-watermark/1";

/// What the watermark says was on disk at the last checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermark {
    /// The database's epoch.
    pub epoch: u64,
    /// The database's seal at that checkpoint.
    pub seal: u64,
    /// When the checkpoint was made (Unix ms).
    pub at_ms: u64,
    /// Alerts stored then.
    pub alerts: u64,
    /// Members remembered then.
    pub members: u64,
    /// Raft log entries stored then.
    pub raft_entries: u64,
    /// Whether Raft state (a vote, a group id, a ledger) was stored then.
    pub raft_state: bool,
}

impl Watermark {
    /// The watermark as one line of `key=value` words.
    fn to_line(self) -> String {
        format!(
            "{WATERMARK_HEADER} epoch={:016x} seal={} at_ms={} alerts={} members={} raft_entries={} raft_state={}\n",
            self.epoch,
            self.seal,
            self.at_ms,
            self.alerts,
            self.members,
            self.raft_entries,
            u8::from(self.raft_state)
        )
    }

    /// Parses [`Watermark::to_line`]; `None` for anything else.
    fn parse(text: &str) -> Option<Watermark> {
        let mut words = text.split_whitespace();
        if words.next()? != WATERMARK_HEADER {
            return None;
        }
        let mut mark = Watermark {
            epoch: 0,
            seal: 0,
            at_ms: 0,
            alerts: 0,
            members: 0,
            raft_entries: 0,
            raft_state: false,
        };
        let mut seen = 0;
        for word in words {
            let (key, value) = word.split_once('=')?;
            let number = |radix| u64::from_str_radix(value, radix).ok();
            match key {
                "epoch" => mark.epoch = number(16)?,
                "seal" => mark.seal = number(10)?,
                "at_ms" => mark.at_ms = number(10)?,
                "alerts" => mark.alerts = number(10)?,
                "members" => mark.members = number(10)?,
                "raft_entries" => mark.raft_entries = number(10)?,
                "raft_state" => mark.raft_state = number(10)? != 0,
                _ => continue,
            }
            seen += 1;
        }
        (seen == 7).then_some(mark)
    }
}

/// What was wrong with a database that [`crate::Storage::open_checked`] replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// The database directory is gone, though the watermark says there was one.
    Missing,
    /// sled refused to open it.
    Unopenable(String),
    /// sled panicked while opening it.
    Panicked(String),
    /// It opened empty: it holds no epoch, though the watermark names one.
    Emptied,
    /// It holds another database (its epoch is not the watermark's).
    Foreign {
        /// The watermark's epoch.
        expected: u64,
        /// The database's epoch.
        found: u64,
    },
    /// It holds an older state than was on disk: sled recovered only a prefix of its file.
    RolledBack {
        /// The seal the watermark says was on disk.
        expected: u64,
        /// The seal the database holds.
        found: u64,
    },
    /// A record failed its check.
    BadRecord(String),
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::Missing => write!(f, "the database is missing"),
            Damage::Unopenable(why) => write!(f, "sled cannot open it: {why}"),
            Damage::Panicked(why) => write!(f, "sled panicked opening it: {why}"),
            Damage::Emptied => write!(f, "it opened empty (sled found nothing it could read)"),
            Damage::Foreign { expected, found } => write!(
                f,
                "it is another database (epoch {found:016x}, expected {expected:016x})"
            ),
            Damage::RolledBack { expected, found } => write!(
                f,
                "it lost flushed data (checkpoint {found}, the watermark says {expected} was on disk)"
            ),
            Damage::BadRecord(why) => write!(f, "a record fails its check: {why}"),
        }
    }
}

/// How [`crate::Storage::open_checked`] found the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenState {
    /// There was neither a database nor a watermark: a new, empty database was made.
    Created,
    /// The database matched its watermark and every record passed its check.
    Verified,
    /// Every record passed its check, but there was no readable watermark to compare with (a
    /// data dir from before watermarks, or a lost watermark): the database is trusted and a
    /// watermark is written now.
    Unverified,
    /// The database was damaged: it was moved aside (if there was anything to move) and an
    /// empty one with a new epoch took its place.
    Replaced {
        /// What was wrong.
        damage: Damage,
        /// Where the damaged database now is.
        moved_to: Option<PathBuf>,
        /// What the last watermark counted: what is lost, as far as it is known.
        lost: Option<Watermark>,
        /// How many alerts the damaged copy still reads, if it opened.
        readable_alerts: Option<usize>,
    },
}

/// What [`crate::Storage::open_checked`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// How the database was found.
    pub state: OpenState,
    /// The epoch of the database now open (0: a database from before epochs).
    pub epoch: u64,
}

impl OpenReport {
    /// Whether the database now open is not the one this node used before (so its Raft
    /// state, alerts, history and members are gone).
    pub fn replaced(&self) -> bool {
        matches!(self.state, OpenState::Replaced { .. })
    }
}

/// A [`StorageError::Watermark`] for `action` on `path`.
fn watermark_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StorageError {
    let path = path.to_path_buf();
    move |source| StorageError::Watermark {
        action,
        path,
        source,
    }
}

/// Reads the watermark beside `path`: `None` when there is none; a file that does not parse
/// is reported and treated as none.
fn read_watermark(file: &Path) -> Result<Option<Watermark>, StorageError> {
    match fs::read_to_string(file) {
        Ok(text) => {
            let mark = Watermark::parse(&text);
            if mark.is_none() {
                tracing::warn!(path = %file.display(), "the database watermark is unreadable; the database cannot be compared with it");
            }
            Ok(mark)
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(watermark_error("read", file)(err)),
    }
}

/// Writes `mark` to `file` through a temporary file, a rename and a sync of the directory.
fn write_watermark(file: &Path, mark: Watermark) -> Result<(), StorageError> {
    let tmp = sibling(file, "tmp");
    File::create(&tmp)
        .and_then(|mut out| {
            out.write_all(mark.to_line().as_bytes())?;
            out.sync_all()
        })
        .map_err(watermark_error("write", &tmp))?;
    fs::rename(&tmp, file).map_err(watermark_error("rename", &tmp))?;
    let dir = match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(watermark_error("sync", dir))
}

/// See [`crate::Storage::checkpoint`].
pub(crate) fn checkpoint(storage: &Storage, now_ms: u64) -> Result<Watermark, StorageError> {
    let meta = storage.meta();
    let epoch = match meta.get_u64(EPOCH_KEY)? {
        Some(epoch) => epoch,
        None => {
            meta.put_u64(EPOCH_KEY, 0)?;
            0
        }
    };
    let seal = meta.get_u64(SEAL_KEY)?.unwrap_or(0).saturating_add(1);
    storage.shared.noted(meta.put_u64(SEAL_KEY, seal))?;
    let (raft_entries, raft_state) = {
        let open = storage.shared.read();
        (open.raft_log.len() as u64, !open.raft_meta.is_empty())
    };
    let mark = Watermark {
        epoch,
        seal,
        at_ms: now_ms,
        alerts: storage.alerts().len()? as u64,
        members: storage.members().all()?.len() as u64,
        raft_entries,
        raft_state,
    };
    storage.flush()?;
    let written = write_watermark(&sibling(storage.path(), WATERMARK_SUFFIX), mark);
    storage.shared.noted(written)?;
    Ok(mark)
}

/// Whether sled's open error says something about the environment (permissions, a held
/// lock, a path that is not a directory) rather than the database: such errors stop the
/// start instead of moving the database aside.
fn is_environment_error(err: &StorageError) -> bool {
    match err {
        StorageError::Locked { .. } | StorageError::Rewrite { .. } => true,
        StorageError::Open {
            source: sled::Error::Io(io),
            ..
        } => matches!(
            io.kind(),
            io::ErrorKind::PermissionDenied
                | io::ErrorKind::NotADirectory
                | io::ErrorKind::ReadOnlyFilesystem
                | io::ErrorKind::StorageFull
                | io::ErrorKind::QuotaExceeded
        ),
        _ => false,
    }
}

/// The text of a panic payload.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// Checks an open database against the watermark and decodes every record. `Ok(None)`: it
/// passes; `Ok(Some(damage))`: it is damaged; `Err`: it cannot be judged (a record of a newer
/// build, an I/O error).
fn judge(storage: &Storage, mark: Option<Watermark>) -> Result<Option<Damage>, StorageError> {
    let bad = |err: StorageError| match &err {
        StorageError::Corrupt { .. } | StorageError::WrongKind { .. } => {
            Ok(Some(Damage::BadRecord(err.to_string())))
        }
        // sled checks its pages as it reads them: a page it cannot read is damage too.
        StorageError::Scan { source, .. } | StorageError::Read { source, .. } if !matches!(source, sled::Error::Io(io) if io.kind() == io::ErrorKind::PermissionDenied) => {
            Ok(Some(Damage::BadRecord(err.to_string())))
        }
        _ => Err(err),
    };
    let meta = storage.meta();
    let (epoch, seal) = match (meta.get_u64(EPOCH_KEY), meta.get_u64(SEAL_KEY)) {
        (Ok(epoch), Ok(seal)) => (epoch, seal.unwrap_or(0)),
        (Err(err), _) | (_, Err(err)) => return bad(err),
    };
    if let Some(mark) = mark {
        match epoch {
            None => return Ok(Some(Damage::Emptied)),
            Some(found) if found != mark.epoch => {
                return Ok(Some(Damage::Foreign {
                    expected: mark.epoch,
                    found,
                }))
            }
            Some(_) if seal < mark.seal => {
                return Ok(Some(Damage::RolledBack {
                    expected: mark.seal,
                    found: seal,
                }))
            }
            Some(_) => {}
        }
    }
    let checks = [
        storage.alerts().all().map(|a| a.len() as u64),
        storage.members().all().map(|m| m.len() as u64),
        storage.meta().verify(),
        storage.history().verify(),
        storage.last_samples().all().map(|s| s.len() as u64),
        storage.grid().verify(),
        raft_log_keys(&storage.shared),
    ];
    for check in checks {
        if let Err(err) = check {
            return bad(err);
        }
    }
    Ok(None)
}

/// Reads every Raft value and checks that every Raft log key is a big-endian `u64` index;
/// returns how many entries there are. (The election crate decodes the values when its Raft
/// node starts; reading them here makes sled check its own checksums of every page.)
fn raft_log_keys(shared: &Shared) -> Result<u64, StorageError> {
    let open = shared.read();
    for item in open.raft_meta.iter() {
        item.map_err(|source| StorageError::Scan {
            tree: trees::RAFT_META.to_owned(),
            source,
        })?;
    }
    open.raft_log.iter().keys().try_fold(0, |count, key| {
        let key = key.map_err(|source| StorageError::Scan {
            tree: trees::RAFT_LOG.to_owned(),
            source,
        })?;
        if key.len() != 8 {
            return Err(StorageError::Corrupt {
                tree: trees::RAFT_LOG.to_owned(),
                key: crate::error::printable_key(&key),
                reason: format!("a log key is 8 bytes, this one is {}", key.len()),
            });
        }
        Ok(count + 1)
    })
}

/// Whether anything of a database is at `path` (it, or a rewrite's copy or old directory).
fn any_database(path: &Path) -> bool {
    path.exists()
        || sibling(path, rewrite::REWRITE_TMP_SUFFIX).exists()
        || sibling(path, rewrite::OLD_SUFFIX).exists()
}

/// `YYYYMMDDTHHMMSSZ` for the Unix time `ms`.
fn utc_stamp(ms: u64) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

/// Moves the database at `path` (and a rewrite's leftovers beside it) to a free
/// `P.corrupt-<time>` name; returns where it went, or `None` when nothing was there.
fn move_aside(path: &Path, now_ms: u64) -> Result<Option<PathBuf>, StorageError> {
    let base = sibling(path, &format!("{CORRUPT_SUFFIX}-{}", utc_stamp(now_ms)));
    let mut to = base.clone();
    let mut n = 1;
    while to.exists() || sibling(&to, rewrite::OLD_SUFFIX).exists() {
        n += 1;
        to = PathBuf::from(format!("{}-{n}", base.display()));
    }
    let rename = |from: &Path, to: &Path| {
        fs::rename(from, to).map_err(|source| StorageError::Rewrite {
            action: "move aside",
            path: from.to_path_buf(),
            source,
        })
    };
    let mut moved = None;
    if path.exists() {
        rename(path, &to)?;
        moved = Some(to.clone());
    }
    for suffix in [rewrite::REWRITE_TMP_SUFFIX, rewrite::OLD_SUFFIX] {
        let leftover = sibling(path, suffix);
        if leftover.exists() {
            let target = sibling(&to, suffix);
            rename(&leftover, &target)?;
            moved.get_or_insert(target);
        }
    }
    Ok(moved)
}

/// Opens a database that is new at `path` with `epoch` and writes its first watermark.
fn create(path: &Path, epoch: u64, now_ms: u64) -> Result<Storage, StorageError> {
    let storage = Storage::open(path)?;
    storage.meta().put_u64(EPOCH_KEY, epoch)?;
    storage.meta().put_u64(SEAL_KEY, 0)?;
    checkpoint(&storage, now_ms)?;
    Ok(storage)
}

/// Waits for sled to let go of a database this process just dropped.
fn release(storage: Storage) {
    let path = storage.path().to_path_buf();
    drop(storage);
    if let Ok(open) = rewrite::open_when_released(&path) {
        drop(open);
    }
}

/// See [`crate::Storage::open_checked`].
pub(crate) fn open_checked(
    path: &Path,
    now_ms: u64,
    new_epoch: u64,
) -> Result<(Storage, OpenReport), StorageError> {
    let new_epoch = new_epoch.max(1);
    let mark = read_watermark(&sibling(path, WATERMARK_SUFFIX))?;
    if !any_database(path) {
        let storage = create(path, new_epoch, now_ms)?;
        let state = match mark {
            None => OpenState::Created,
            Some(lost) => OpenState::Replaced {
                damage: Damage::Missing,
                moved_to: None,
                lost: Some(lost),
                readable_alerts: None,
            },
        };
        return Ok((
            storage,
            OpenReport {
                state,
                epoch: new_epoch,
            },
        ));
    }
    let opened = panic::catch_unwind(AssertUnwindSafe(|| Storage::open(path)));
    let (damage, readable_alerts) = match opened {
        Err(payload) => (Damage::Panicked(panic_text(payload.as_ref())), None),
        Ok(Err(err)) if is_environment_error(&err) => return Err(err),
        Ok(Err(err)) => (Damage::Unopenable(err.to_string()), None),
        Ok(Ok(storage)) => match judge(&storage, mark)? {
            None => return adopt(storage, mark, now_ms, new_epoch),
            Some(damage) => {
                let readable = storage.alerts().all().ok().map(|a| a.len());
                release(storage);
                (damage, readable)
            }
        },
    };
    let moved_to = move_aside(path, now_ms)?;
    let storage = create(path, new_epoch, now_ms)?;
    let state = OpenState::Replaced {
        damage,
        moved_to,
        lost: mark,
        readable_alerts,
    };
    Ok((
        storage,
        OpenReport {
            state,
            epoch: new_epoch,
        },
    ))
}

/// Keeps a database that passed [`judge`]: gives it an epoch if it has none (0 when it holds
/// data from before epochs), and writes a watermark.
fn adopt(
    storage: Storage,
    mark: Option<Watermark>,
    now_ms: u64,
    new_epoch: u64,
) -> Result<(Storage, OpenReport), StorageError> {
    let epoch = match storage.meta().get_u64(EPOCH_KEY)? {
        Some(epoch) => epoch,
        None => {
            let holds_data = {
                let open = storage.shared.read();
                !(open.meta.is_empty() && open.raft_meta.is_empty() && open.raft_log.is_empty())
            };
            let epoch = if holds_data { 0 } else { new_epoch };
            storage.meta().put_u64(EPOCH_KEY, epoch)?;
            epoch
        }
    };
    checkpoint(&storage, now_ms)?;
    let state = if mark.is_some() {
        OpenState::Verified
    } else {
        OpenState::Unverified
    };
    Ok((storage, OpenReport { state, epoch }))
}

#[cfg(test)]
mod tests;
