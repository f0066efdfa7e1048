//! The topology table (which switch each host hangs off) as raw bytes, one value per host in
//! the [`trees::TOPOLOGY`] tree, keyed by host name. The agent encodes and decodes the values
//! (a version byte and its own record); this store only keeps them, so a restarted agent has
//! the map at once instead of waiting for the anti-entropy sync.

use crate::db::Shared;
use crate::error::{printable_key, StorageError};
use crate::trees;

/// The topology records, in the [`trees::TOPOLOGY`] sled tree. Obtained from
/// [`crate::Storage::topology`]; cheap to clone, clones share the tree, and keep working after
/// a [`crate::Storage::rewrite_if_bloated`].
#[derive(Debug, Clone)]
pub struct TopologyTree {
    shared: Shared,
}

impl TopologyTree {
    pub(crate) fn new(shared: Shared) -> Self {
        Self { shared }
    }

    /// Stores `value` for `host`, replacing what was there.
    pub fn put(&self, host: &str, value: &[u8]) -> Result<(), StorageError> {
        self.shared
            .read()
            .topology
            .insert(host.as_bytes(), value)
            .map(drop)
            .map_err(|source| StorageError::Write {
                tree: trees::TOPOLOGY.to_owned(),
                key: printable_key(host.as_bytes()),
                source,
            })
    }

    /// Removes the value of `host`; removing an absent one is not an error.
    pub fn remove(&self, host: &str) -> Result<(), StorageError> {
        self.shared
            .read()
            .topology
            .remove(host.as_bytes())
            .map(drop)
            .map_err(|source| StorageError::Write {
                tree: trees::TOPOLOGY.to_owned(),
                key: printable_key(host.as_bytes()),
                source,
            })
    }

    /// Every `(host, value)`, by host name. A key that is not UTF-8 is reported as corrupt.
    pub fn all(&self) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let open = self.shared.read();
        open.topology
            .iter()
            .map(|entry| {
                let (key, value) = entry.map_err(|source| StorageError::Scan {
                    tree: trees::TOPOLOGY.to_owned(),
                    source,
                })?;
                let host = String::from_utf8(key.to_vec()).map_err(|_| StorageError::Corrupt {
                    tree: trees::TOPOLOGY.to_owned(),
                    key: printable_key(&key),
                    reason: "a host name that is not UTF-8".into(),
                })?;
                Ok((host, value.to_vec()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::Storage;

    #[test]
    fn values_are_kept_by_host_across_a_reopen_and_removed_on_request() {
        let dir = tempfile::tempdir().unwrap();
        {
            let storage = Storage::open(dir.path()).unwrap();
            let tree = storage.topology();
            tree.put("n2", b"two").unwrap();
            tree.put("n1", b"one").unwrap();
            tree.put("n1", b"uno").unwrap();
            storage.flush().unwrap();
        }
        let storage = crate::test_support::reopen(dir.path());
        let tree = storage.topology();
        assert_eq!(
            tree.all().unwrap(),
            vec![
                ("n1".to_owned(), b"uno".to_vec()),
                ("n2".to_owned(), b"two".to_vec())
            ]
        );
        tree.remove("n1").unwrap();
        tree.remove("n9").unwrap();
        assert_eq!(tree.all().unwrap().len(), 1);
    }
}
