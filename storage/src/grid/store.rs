//! The grid-control records on disk, in the [`trees::GRID`] tree: key `signer (32 bytes) |
//! service`, value the record's encoded form ([`SignedRecord::encode`]).
//!
//! The store keeps what it is given: signatures and the replacement rules are the caller's
//! ([`super::order`], [`SignedRecord::verify`]), checked on receipt and again on load.

use crate::db::Shared;
use crate::error::{printable_key, StorageError};
use crate::grid::signed::SignedRecord;
use crate::record;
use crate::trees;

/// Stored grid-control records, by `(signer, service)`.
pub trait GridStore {
    /// Inserts or replaces the record of `record.signer` and `record.service`.
    fn put(&self, record: &SignedRecord) -> Result<(), StorageError>;
    /// The record of `signer` for `service`, if there is one.
    fn get(&self, signer: &[u8; 32], service: &str) -> Result<Option<SignedRecord>, StorageError>;
    /// Every record, by signer then service. Fails as a whole if one does not decode.
    fn all(&self) -> Result<Vec<SignedRecord>, StorageError>;
    /// Removes the record of `signer` for `service`; removing an absent one is no error.
    fn remove(&self, signer: &[u8; 32], service: &str) -> Result<(), StorageError>;
}

fn key_of(signer: &[u8; 32], service: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(32 + service.len());
    key.extend_from_slice(signer);
    key.extend_from_slice(service.as_bytes());
    key
}

/// Records in the [`trees::GRID`] sled tree. Obtained from [`crate::Storage::grid`]; cheap to
/// clone, clones share the tree, and keep working after a rewrite.
#[derive(Debug, Clone)]
pub struct SledGridStore {
    shared: Shared,
}

impl SledGridStore {
    pub(crate) fn new(shared: Shared) -> Self {
        Self { shared }
    }

    /// Decodes the value at `key` and checks that it is stored under its own slot.
    fn decode(key: &[u8], bytes: &[u8]) -> Result<SignedRecord, StorageError> {
        let record: SignedRecord = record::decode(trees::GRID, key, bytes)?;
        if key_of(&record.signer, &record.service) != key {
            return Err(StorageError::Corrupt {
                tree: trees::GRID.to_owned(),
                key: printable_key(key),
                reason: format!("record names service `{}` of another slot", record.service),
            });
        }
        Ok(record)
    }

    /// How many records are stored.
    pub fn len(&self) -> usize {
        self.shared.read().grid.len()
    }

    /// Whether no record is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decodes every record, without keeping them; returns how many there are. Fails on the
    /// first bad one (see [`crate::integrity`]).
    pub(crate) fn verify(&self) -> Result<u64, StorageError> {
        let open = self.shared.read();
        open.grid.iter().try_fold(0, |count, item| {
            let (key, bytes) = item.map_err(|source| StorageError::Scan {
                tree: trees::GRID.to_owned(),
                source,
            })?;
            Self::decode(&key, &bytes).map(|_| count + 1)
        })
    }
}

impl GridStore for SledGridStore {
    fn put(&self, record: &SignedRecord) -> Result<(), StorageError> {
        let key = key_of(&record.signer, &record.service);
        let bytes = record::encode(record)?;
        let written = self
            .shared
            .read()
            .grid
            .insert(&key, bytes)
            .map(drop)
            .map_err(|source| StorageError::Write {
                tree: trees::GRID.to_owned(),
                key: printable_key(&key),
                source,
            });
        self.shared.noted(written)
    }

    fn get(&self, signer: &[u8; 32], service: &str) -> Result<Option<SignedRecord>, StorageError> {
        let key = key_of(signer, service);
        let bytes = self
            .shared
            .read()
            .grid
            .get(&key)
            .map_err(|source| StorageError::Read {
                tree: trees::GRID.to_owned(),
                key: printable_key(&key),
                source,
            })?;
        bytes.map(|bytes| Self::decode(&key, &bytes)).transpose()
    }

    fn all(&self) -> Result<Vec<SignedRecord>, StorageError> {
        let open = self.shared.read();
        open.grid
            .iter()
            .map(|item| {
                let (key, bytes) = item.map_err(|source| StorageError::Scan {
                    tree: trees::GRID.to_owned(),
                    source,
                })?;
                Self::decode(&key, &bytes)
            })
            .collect()
    }

    fn remove(&self, signer: &[u8; 32], service: &str) -> Result<(), StorageError> {
        let key = key_of(signer, service);
        let removed = self
            .shared
            .read()
            .grid
            .remove(&key)
            .map(drop)
            .map_err(|source| StorageError::Write {
                tree: trees::GRID.to_owned(),
                key: printable_key(&key),
                source,
            });
        self.shared.noted(removed)
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::Storage;

    fn record(signer: u8, service: &str, seqnum: u64) -> SignedRecord {
        let key = SigningKey::from_bytes(&[signer; 32]);
        SignedRecord::sign(&key, service, seqnum, b"x".to_vec()).unwrap()
    }

    #[test]
    fn records_are_kept_by_signer_and_service_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let a = record(1, "service/registry", 3);
        let b = record(2, "service/registry", 4);
        let c = record(1, "addresses", 1);
        {
            let storage = Storage::open(dir.path()).unwrap();
            let grid = storage.grid();
            for r in [&a, &b, &c] {
                grid.put(r).unwrap();
            }
            let newer = record(1, "service/registry", 5);
            grid.put(&newer).unwrap();
            assert_eq!(grid.len(), 3);
            assert_eq!(
                grid.get(&a.signer, "service/registry").unwrap(),
                Some(newer)
            );
            storage.flush().unwrap();
        }
        let storage = crate::test_support::reopen(dir.path());
        let all = storage.grid().all().unwrap();
        assert_eq!(all.len(), 3);
        storage.grid().remove(&b.signer, &b.service).unwrap();
        storage.grid().remove(&b.signer, &b.service).unwrap();
        assert_eq!(storage.grid().len(), 2);
    }

    #[test]
    fn a_record_stored_under_another_slot_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let r = record(1, "addresses", 1);
        storage
            .raw_tree(trees::GRID)
            .insert(b"elsewhere", record::encode(&r).unwrap())
            .unwrap();
        assert!(matches!(
            storage.grid().all(),
            Err(StorageError::Corrupt { .. })
        ));
        assert!(storage.grid().verify().is_err());
    }
}
