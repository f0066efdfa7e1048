//! Small named values of this node, such as the last identity generation.
//!
//! [`MetaStore`] is the interface; [`SledMetaStore`] keeps values in the [`trees::META`] tree
//! keyed by name, and [`MemoryMetaStore`] keeps them in memory for tests of other crates.
//! Each value remembers whether it was stored as a `u64` or as bytes, and reading it as the
//! other kind is a [`StorageError::WrongKind`] in both implementations.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use crate::db::Shared;
use crate::error::{printable_key, StorageError};
use crate::record::{self, Record};
use crate::trees;

/// Small named values, by name.
pub trait MetaStore {
    /// The `u64` stored under `key`, or `None` if there is none.
    fn get_u64(&self, key: &str) -> Result<Option<u64>, StorageError>;
    /// Stores `value` under `key`, replacing any value of either kind.
    fn put_u64(&self, key: &str, value: u64) -> Result<(), StorageError>;
    /// The bytes stored under `key`, or `None` if there is none.
    fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError>;
    /// Stores `value` under `key`, replacing any value of either kind.
    fn put_bytes(&self, key: &str, value: &[u8]) -> Result<(), StorageError>;
}

/// One stored meta value, tagged with its kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum MetaValue {
    U64(u64),
    Bytes(Vec<u8>),
}

impl Record for MetaValue {
    const VERSION: u8 = 1;
}

impl MetaValue {
    const U64_KIND: &'static str = "a u64";
    const BYTES_KIND: &'static str = "bytes";

    fn kind(&self) -> &'static str {
        match self {
            MetaValue::U64(_) => Self::U64_KIND,
            MetaValue::Bytes(_) => Self::BYTES_KIND,
        }
    }

    fn wrong_kind(&self, key: &str, expected: &'static str) -> StorageError {
        StorageError::WrongKind {
            tree: trees::META.to_owned(),
            key: printable_key(key.as_bytes()),
            expected,
            found: self.kind(),
        }
    }

    fn into_u64(self, key: &str) -> Result<u64, StorageError> {
        match self {
            MetaValue::U64(value) => Ok(value),
            other => Err(other.wrong_kind(key, Self::U64_KIND)),
        }
    }

    fn into_bytes(self, key: &str) -> Result<Vec<u8>, StorageError> {
        match self {
            MetaValue::Bytes(value) => Ok(value),
            other => Err(other.wrong_kind(key, Self::BYTES_KIND)),
        }
    }
}

/// The stored bytes of the `u64` `value`, for writers that bypass a [`SledMetaStore`] (the
/// probe of [`crate::health`], which holds the database's write guard).
pub(crate) fn encode_u64(value: u64) -> Result<Vec<u8>, StorageError> {
    record::encode(&MetaValue::U64(value))
}

/// Meta values in the [`trees::META`] sled tree, key = name bytes. Obtained from
/// [`crate::Storage::meta`]; cheap to clone, clones share the tree, and keep working after a
/// [`crate::Storage::rewrite_if_bloated`].
#[derive(Debug, Clone)]
pub struct SledMetaStore {
    shared: Shared,
}

impl SledMetaStore {
    pub(crate) fn new(shared: Shared) -> Self {
        Self { shared }
    }

    /// Decodes every value, without keeping them; returns how many there are. Fails on the
    /// first bad one (see [`crate::integrity`]).
    pub(crate) fn verify(&self) -> Result<u64, StorageError> {
        let open = self.shared.read();
        open.meta.iter().try_fold(0, |count, item| {
            let (key, bytes) = item.map_err(|source| StorageError::Scan {
                tree: trees::META.to_owned(),
                source,
            })?;
            record::decode::<MetaValue>(trees::META, &key, &bytes).map(|_| count + 1)
        })
    }

    fn get(&self, key: &str) -> Result<Option<MetaValue>, StorageError> {
        let bytes = self
            .shared
            .read()
            .meta
            .get(key.as_bytes())
            .map_err(|source| StorageError::Read {
                tree: trees::META.to_owned(),
                key: printable_key(key.as_bytes()),
                source,
            })?;
        bytes
            .map(|bytes| record::decode(trees::META, key.as_bytes(), &bytes))
            .transpose()
    }

    fn put(&self, key: &str, value: &MetaValue) -> Result<(), StorageError> {
        let bytes = record::encode(value)?;
        self.shared
            .read()
            .meta
            .insert(key.as_bytes(), bytes)
            .map_err(|source| StorageError::Write {
                tree: trees::META.to_owned(),
                key: printable_key(key.as_bytes()),
                source,
            })?;
        Ok(())
    }
}

impl MetaStore for SledMetaStore {
    fn get_u64(&self, key: &str) -> Result<Option<u64>, StorageError> {
        self.get(key)?.map(|value| value.into_u64(key)).transpose()
    }

    fn put_u64(&self, key: &str, value: u64) -> Result<(), StorageError> {
        self.put(key, &MetaValue::U64(value))
    }

    fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.get(key)?
            .map(|value| value.into_bytes(key))
            .transpose()
    }

    fn put_bytes(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.put(key, &MetaValue::Bytes(value.to_vec()))
    }
}

/// Meta values in memory, for tests of other crates; fails only on a kind mismatch.
#[derive(Debug, Default)]
pub struct MemoryMetaStore {
    values: Mutex<BTreeMap<String, MetaValue>>,
}

impl MemoryMetaStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The map; each operation is a single map call, so a poisoned lock is taken over.
    fn values(&self) -> MutexGuard<'_, BTreeMap<String, MetaValue>> {
        self.values.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl MetaStore for MemoryMetaStore {
    fn get_u64(&self, key: &str) -> Result<Option<u64>, StorageError> {
        let value = self.values().get(key).cloned();
        value.map(|value| value.into_u64(key)).transpose()
    }

    fn put_u64(&self, key: &str, value: u64) -> Result<(), StorageError> {
        self.values().insert(key.to_owned(), MetaValue::U64(value));
        Ok(())
    }

    fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let value = self.values().get(key).cloned();
        value.map(|value| value.into_bytes(key)).transpose()
    }

    fn put_bytes(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.values()
            .insert(key.to_owned(), MetaValue::Bytes(value.to_vec()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{conformance, Storage};

    #[test]
    fn the_sled_meta_store_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        conformance::meta_store(&storage.meta());
    }

    #[test]
    fn the_memory_meta_store_passes_the_conformance_suite() {
        conformance::meta_store(&MemoryMetaStore::new());
    }

    #[test]
    fn a_corrupt_meta_value_names_its_tree_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let storage = crate::test_support::reopen(dir.path());
        let raw = storage.raw_tree(trees::META);
        raw.insert("generation", &[MetaValue::VERSION, 7]).unwrap();

        let err = storage.meta().get_u64("generation").unwrap_err();
        assert!(
            matches!(&err, StorageError::Corrupt { tree, key, .. }
                if tree == trees::META && key == "generation"),
            "{err:?}"
        );
    }
}
