//! Typed errors of the storage crate.
//!
//! Every variant says what happened to the stored state, so a caller can decide between
//! retrying, skipping a record, or stopping. Keys are carried in printable form (see
//! [`printable_key`]) so an operator can find the record that failed.

use std::path::PathBuf;

use thiserror::Error;

/// Why a storage operation failed.
#[derive(Debug, Error)]
pub enum StorageError {
    /// Another process holds the data directory's lock; nothing was opened and the other
    /// process's data is untouched.
    #[error("data dir {} is in use by another process", path.display())]
    Locked {
        /// The data directory we tried to open.
        path: PathBuf,
    },
    /// sled could not open the data directory (permissions, disk, on-disk corruption);
    /// nothing was opened.
    #[error("cannot open data dir {}: {source}", path.display())]
    Open {
        /// The data directory we tried to open.
        path: PathBuf,
        /// The error sled reported.
        #[source]
        source: sled::Error,
    },
    /// Reading one key failed inside sled; nothing was changed.
    #[error("cannot read key `{key}` of tree `{tree}`: {source}")]
    Read {
        /// The tree that was read.
        tree: String,
        /// The key that was read, printable.
        key: String,
        /// The error sled reported.
        #[source]
        source: sled::Error,
    },
    /// Iterating over a tree failed inside sled; nothing was changed, and no partial
    /// result was returned.
    #[error("cannot scan tree `{tree}`: {source}")]
    Scan {
        /// The tree that was scanned.
        tree: String,
        /// The error sled reported.
        #[source]
        source: sled::Error,
    },
    /// Writing or removing one key failed inside sled; the change may or may not have been
    /// applied, so read the key again to know.
    #[error("cannot write key `{key}` of tree `{tree}`: {source}")]
    Write {
        /// The tree that was written.
        tree: String,
        /// The key that was written or removed, printable.
        key: String,
        /// The error sled reported.
        #[source]
        source: sled::Error,
    },
    /// Flushing to disk failed; recent writes are still readable in this process but are not
    /// known to be durable. A later flush may succeed.
    #[error("cannot flush data to disk: {source}")]
    Flush {
        /// The error sled reported.
        #[source]
        source: sled::Error,
    },
    /// A file-system step of a rewrite, or of the recovery from an interrupted one, failed.
    /// A rewrite undoes its renames before returning this, and the database in use is the
    /// one from before; on open, nothing was opened.
    #[error("cannot {action} {}: {source}", path.display())]
    Rewrite {
        /// What was being done, such as `rename` or `remove`.
        action: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The error the file system reported.
        #[source]
        source: std::io::Error,
    },
    /// Getting a failed database back (see [`crate::Storage::recover`]) failed at a file-system
    /// step: the disk still refuses writes, or the database could not be opened again.
    #[error("cannot {action} {}: {source}", path.display())]
    Reopen {
        /// What was being done, such as `write a probe file at`.
        action: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The error the file system reported.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing the database's watermark (see [`crate::integrity`]) failed; the
    /// database itself is unchanged.
    #[error("cannot {action} the database watermark {}: {source}", path.display())]
    Watermark {
        /// What was being done, such as `write` or `rename`.
        action: &'static str,
        /// The file it was done to.
        path: PathBuf,
        /// The error the file system reported.
        #[source]
        source: std::io::Error,
    },
    /// A value could not be encoded; nothing was written.
    #[error("cannot encode a `{record}`: {reason}")]
    Encode {
        /// The Rust type of the value.
        record: &'static str,
        /// What the encoder reported.
        reason: String,
    },
    /// A key cannot be stored as given, for example because one of its parts (a team, host or
    /// alert name) holds the NUL byte that separates key parts; nothing was written.
    #[error("cannot store key `{key}` in tree `{tree}`: {reason}")]
    InvalidKey {
        /// The tree that was to be written.
        tree: String,
        /// The refused key, printable.
        key: String,
        /// Why it is refused.
        reason: String,
    },
    /// A stored value could not be decoded; it is left as is in the tree and nothing was
    /// changed.
    #[error("corrupt record in tree `{tree}` at key `{key}`: {reason}")]
    Corrupt {
        /// The tree that holds the value.
        tree: String,
        /// The key of the value, printable.
        key: String,
        /// What is wrong with the bytes.
        reason: String,
    },
    /// A stored value carries a version byte this build does not read (written by a newer
    /// build, or by something else); it is left as is and nothing was changed.
    #[error(
        "record in tree `{tree}` at key `{key}` has version {version}, \
         this build reads version {supported}"
    )]
    UnknownVersion {
        /// The tree that holds the value.
        tree: String,
        /// The key of the value, printable.
        key: String,
        /// The version byte found.
        version: u8,
        /// The version this build reads for that record type.
        supported: u8,
    },
    /// A named value holds another kind than the one asked for (for example bytes where a
    /// `u64` was expected); it is left as is and nothing was changed.
    #[error("key `{key}` of tree `{tree}` holds {found}, not {expected}")]
    WrongKind {
        /// The tree that holds the value.
        tree: String,
        /// The key of the value, printable.
        key: String,
        /// The kind the caller asked for.
        expected: &'static str,
        /// The kind stored.
        found: &'static str,
    },
}

/// A key in a form fit for messages and logs: the text itself when the bytes are UTF-8 with
/// no control characters, otherwise `0x` followed by lowercase hex.
pub fn printable_key(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(text) if !text.is_empty() && !text.chars().any(char::is_control) => text.to_owned(),
        _ => {
            let mut out = String::with_capacity(2 + key.len() * 2);
            out.push_str("0x");
            for byte in key {
                out.push_str(&format!("{byte:02x}"));
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_key_prints_as_itself() {
        assert_eq!(printable_key(b"node-a"), "node-a");
    }

    #[test]
    fn a_binary_or_empty_key_prints_as_hex() {
        assert_eq!(printable_key(&[0, 1, 0xff]), "0x0001ff");
        assert_eq!(printable_key(b"a\nb"), "0x610a62");
        assert_eq!(printable_key(b""), "0x");
    }

    #[test]
    fn the_locked_error_names_the_data_dir() {
        let err = StorageError::Locked {
            path: PathBuf::from("/var/lib/rover"),
        };
        assert_eq!(
            err.to_string(),
            "data dir /var/lib/rover is in use by another process"
        );
    }
}
