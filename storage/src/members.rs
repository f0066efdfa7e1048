//! The persisted snapshot of known cluster members, so a restarted agent can rejoin its known
//! peers without `--join`.
//!
//! [`MemberStore`] is the interface; [`SledMemberStore`] keeps members in the
//! [`trees::MEMBERS`] tree keyed by name, and [`MemoryMemberStore`] keeps them in memory for
//! tests of other crates. Both pass the same [`crate::conformance`] suite.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use crate::db::Shared;
use crate::error::{printable_key, StorageError};
use crate::record::{self, Record};
use crate::trees;

/// What the agent last knew about one cluster member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMember {
    /// Unique member name; the key of the record.
    pub name: String,
    /// The team the member belongs to.
    pub team: String,
    /// Gossip address of the member.
    pub addr: SocketAddr,
    /// Identity generation of the member, bumped each time it rejoins.
    pub generation: u64,
    /// Last known status: `"alive"`, `"suspect"`, `"failed"` or `"left"`.
    pub status: String,
    /// Unix time in milliseconds of the last change to this record.
    pub updated_ms: u64,
}

impl Record for StoredMember {
    const VERSION: u8 = 1;
}

/// Persisted members, by name.
pub trait MemberStore {
    /// Inserts or replaces the member named `m.name`.
    fn put(&self, m: &StoredMember) -> Result<(), StorageError>;
    /// The member named `name`, or `None` if there is none.
    fn get(&self, name: &str) -> Result<Option<StoredMember>, StorageError>;
    /// Every member, sorted by name. Fails as a whole if any record is unreadable.
    fn all(&self) -> Result<Vec<StoredMember>, StorageError>;
    /// Removes the member named `name`; removing an absent member is not an error.
    fn remove(&self, name: &str) -> Result<(), StorageError>;
}

/// Members in the [`trees::MEMBERS`] sled tree, key = name bytes. Obtained from
/// [`crate::Storage::members`]; cheap to clone, clones share the tree.
#[derive(Debug, Clone)]
pub struct SledMemberStore {
    shared: Shared,
}

impl SledMemberStore {
    pub(crate) fn new(shared: Shared) -> Self {
        Self { shared }
    }

    /// Decodes the value at `key` and checks that it is stored under its own name.
    fn decode(key: &[u8], bytes: &[u8]) -> Result<StoredMember, StorageError> {
        let member: StoredMember = record::decode(trees::MEMBERS, key, bytes)?;
        if member.name.as_bytes() != key {
            return Err(StorageError::Corrupt {
                tree: trees::MEMBERS.to_owned(),
                key: printable_key(key),
                reason: format!("record names member `{}`", member.name),
            });
        }
        Ok(member)
    }
}

impl MemberStore for SledMemberStore {
    fn put(&self, m: &StoredMember) -> Result<(), StorageError> {
        let open = self.shared.read();
        let bytes = record::encode(m)?;
        open.members
            .insert(m.name.as_bytes(), bytes)
            .map_err(|source| StorageError::Write {
                tree: trees::MEMBERS.to_owned(),
                key: printable_key(m.name.as_bytes()),
                source,
            })?;
        Ok(())
    }

    fn get(&self, name: &str) -> Result<Option<StoredMember>, StorageError> {
        let open = self.shared.read();
        let key = name.as_bytes();
        let bytes = open.members.get(key).map_err(|source| StorageError::Read {
            tree: trees::MEMBERS.to_owned(),
            key: printable_key(key),
            source,
        })?;
        bytes.map(|bytes| Self::decode(key, &bytes)).transpose()
    }

    fn all(&self) -> Result<Vec<StoredMember>, StorageError> {
        let open = self.shared.read();
        // sled iterates in key order, and the key is the name: the result is sorted by name.
        open.members
            .iter()
            .map(|entry| {
                let (key, bytes) = entry.map_err(|source| StorageError::Scan {
                    tree: trees::MEMBERS.to_owned(),
                    source,
                })?;
                Self::decode(&key, &bytes)
            })
            .collect()
    }

    fn remove(&self, name: &str) -> Result<(), StorageError> {
        let open = self.shared.read();
        open.members
            .remove(name.as_bytes())
            .map_err(|source| StorageError::Write {
                tree: trees::MEMBERS.to_owned(),
                key: printable_key(name.as_bytes()),
                source,
            })?;
        Ok(())
    }
}

/// Members in memory, for tests of other crates; never fails.
#[derive(Debug, Default)]
pub struct MemoryMemberStore {
    members: Mutex<BTreeMap<String, StoredMember>>,
}

impl MemoryMemberStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The map; a panic of another holder cannot leave it half-updated (each operation is a
    /// single map call), so a poisoned lock is taken over.
    fn members(&self) -> MutexGuard<'_, BTreeMap<String, StoredMember>> {
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl MemberStore for MemoryMemberStore {
    fn put(&self, m: &StoredMember) -> Result<(), StorageError> {
        self.members().insert(m.name.clone(), m.clone());
        Ok(())
    }

    fn get(&self, name: &str) -> Result<Option<StoredMember>, StorageError> {
        Ok(self.members().get(name).cloned())
    }

    fn all(&self) -> Result<Vec<StoredMember>, StorageError> {
        Ok(self.members().values().cloned().collect())
    }

    fn remove(&self, name: &str) -> Result<(), StorageError> {
        self.members().remove(name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{conformance, Storage};

    fn open() -> (tempfile::TempDir, Storage) {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        (dir, storage)
    }

    #[test]
    fn the_sled_member_store_passes_the_conformance_suite() {
        let (_dir, storage) = open();
        conformance::member_store(&storage.members());
    }

    #[test]
    fn the_memory_member_store_passes_the_conformance_suite() {
        conformance::member_store(&MemoryMemberStore::new());
    }

    #[test]
    fn a_corrupt_record_names_its_tree_and_key() {
        let (_dir, storage) = open();
        let raw = storage.raw_tree(trees::MEMBERS);
        raw.insert("node-a", &[StoredMember::VERSION, 0xff, 0xff, 0xff])
            .unwrap();

        let err = storage.members().get("node-a").unwrap_err();
        assert!(
            matches!(&err, StorageError::Corrupt { tree, key, .. }
                if tree == trees::MEMBERS && key == "node-a"),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains("`members`") && message.contains("`node-a`"),
            "{message}"
        );
        assert!(
            storage.members().all().is_err(),
            "a scan must not skip a corrupt record"
        );
    }

    #[test]
    fn an_unknown_version_byte_is_reported_not_misread() {
        let (_dir, storage) = open();
        let members = storage.members();
        members.put(&conformance::member("node-a", 1)).unwrap();
        let raw = storage.raw_tree(trees::MEMBERS);
        let mut bytes = raw.get("node-a").unwrap().unwrap().to_vec();
        bytes[0] = 200;
        raw.insert("node-a", bytes).unwrap();

        let err = members.get("node-a").unwrap_err();
        assert!(
            matches!(&err, StorageError::UnknownVersion { tree, key, version: 200, .. }
                if tree == trees::MEMBERS && key == "node-a"),
            "{err:?}"
        );
    }

    #[test]
    fn a_record_stored_under_another_name_is_corrupt() {
        let (_dir, storage) = open();
        let raw = storage.raw_tree(trees::MEMBERS);
        let bytes = record::encode(&conformance::member("node-b", 1)).unwrap();
        raw.insert("node-a", bytes).unwrap();

        let err = storage.members().get("node-a").unwrap_err();
        assert!(
            matches!(&err, StorageError::Corrupt { key, reason, .. }
                if key == "node-a" && reason.contains("node-b")),
            "{err:?}"
        );
    }
}
