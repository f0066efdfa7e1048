//! The stored alert table: every alert this agent knows, so a restarted agent serves and syncs
//! it at once instead of waiting for gossip.
//!
//! [`AlertStore`] is the interface; [`SledAlertStore`] keeps alerts in the [`trees::ALERTS`]
//! tree keyed by `team 0x00 host 0x00 name`, and [`MemoryAlertStore`] keeps them in memory for
//! tests of other crates. Both refuse key parts holding a NUL byte (it would make two keys
//! collide) and pass the same [`crate::conformance`] suite.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::db::Shared;
use crate::error::{printable_key, StorageError};
use crate::keys::KEY_SEPARATOR;
use crate::record;
use crate::records::{Alert, AlertKey};
use crate::trees;

/// Stored alerts, by [`AlertKey`].
pub trait AlertStore {
    /// Inserts or replaces the alert with `alert.key()`. Fails with
    /// [`StorageError::InvalidKey`] when its team, host or name holds a NUL byte.
    fn put(&self, alert: &Alert) -> Result<(), StorageError>;
    /// The alert with `key`, or `None` if there is none.
    fn get(&self, key: &AlertKey) -> Result<Option<Alert>, StorageError>;
    /// Every alert, sorted by key. Fails as a whole if any record is unreadable.
    fn all(&self) -> Result<Vec<Alert>, StorageError>;
    /// Removes the alert with `key`; removing an absent alert is not an error.
    fn remove(&self, key: &AlertKey) -> Result<(), StorageError>;
    /// How many alerts are stored.
    fn len(&self) -> Result<usize, StorageError>;
    /// Whether no alert is stored.
    fn is_empty(&self) -> Result<bool, StorageError> {
        Ok(self.len()? == 0)
    }
}

/// The sled key of `key`: `team 0x00 host 0x00 name`, or `None` when a part holds a NUL byte.
///
/// Parts without NUL make byte order of keys equal the order of [`AlertKey`].
fn key_bytes(key: &AlertKey) -> Option<Vec<u8>> {
    let parts = [&key.team, &key.host, &key.name];
    if parts
        .iter()
        .any(|part| part.as_bytes().contains(&KEY_SEPARATOR))
    {
        return None;
    }
    let mut bytes = Vec::with_capacity(key.team.len() + key.host.len() + key.name.len() + 2);
    bytes.extend_from_slice(key.team.as_bytes());
    bytes.push(KEY_SEPARATOR);
    bytes.extend_from_slice(key.host.as_bytes());
    bytes.push(KEY_SEPARATOR);
    bytes.extend_from_slice(key.name.as_bytes());
    Some(bytes)
}

/// The error for an alert whose key parts hold a NUL byte; nothing is written.
fn invalid_key(key: &AlertKey) -> StorageError {
    StorageError::InvalidKey {
        tree: trees::ALERTS.to_owned(),
        key: printable_key(key.to_string().as_bytes()),
        reason: "team, host and alert name must not contain a NUL byte".to_owned(),
    }
}

/// Alerts in the [`trees::ALERTS`] sled tree. Obtained from [`crate::Storage::alerts`]; cheap
/// to clone, clones share the tree, and keep working after a
/// [`crate::Storage::rewrite_if_bloated`].
#[derive(Debug, Clone)]
pub struct SledAlertStore {
    shared: Shared,
}

impl SledAlertStore {
    pub(crate) fn new(shared: Shared) -> Self {
        Self { shared }
    }

    /// Decodes the value at `key` and checks that it is stored under its own key.
    fn decode(key: &[u8], bytes: &[u8]) -> Result<Alert, StorageError> {
        let alert: Alert = record::decode(trees::ALERTS, key, bytes)?;
        if key_bytes(&alert.key()).as_deref() != Some(key) {
            return Err(StorageError::Corrupt {
                tree: trees::ALERTS.to_owned(),
                key: printable_key(key),
                reason: format!("record names alert `{}`", alert.key()),
            });
        }
        Ok(alert)
    }

    fn scan_error(source: sled::Error) -> StorageError {
        StorageError::Scan {
            tree: trees::ALERTS.to_owned(),
            source,
        }
    }
}

impl AlertStore for SledAlertStore {
    fn put(&self, alert: &Alert) -> Result<(), StorageError> {
        let open = self.shared.read();
        let alert_key = alert.key();
        let key = key_bytes(&alert_key).ok_or_else(|| invalid_key(&alert_key))?;
        let bytes = record::encode(alert)?;
        open.alerts
            .insert(&key, bytes)
            .map_err(|source| StorageError::Write {
                tree: trees::ALERTS.to_owned(),
                key: printable_key(&key),
                source,
            })?;
        Ok(())
    }

    fn get(&self, key: &AlertKey) -> Result<Option<Alert>, StorageError> {
        let open = self.shared.read();
        // A key with a NUL byte can never have been stored.
        let Some(key) = key_bytes(key) else {
            return Ok(None);
        };
        let bytes = open.alerts.get(&key).map_err(|source| StorageError::Read {
            tree: trees::ALERTS.to_owned(),
            key: printable_key(&key),
            source,
        })?;
        bytes.map(|bytes| Self::decode(&key, &bytes)).transpose()
    }

    fn all(&self) -> Result<Vec<Alert>, StorageError> {
        let open = self.shared.read();
        // sled iterates in key order, which is the order of AlertKey.
        open.alerts
            .iter()
            .map(|entry| {
                let (key, bytes) = entry.map_err(Self::scan_error)?;
                Self::decode(&key, &bytes)
            })
            .collect()
    }

    fn remove(&self, key: &AlertKey) -> Result<(), StorageError> {
        let open = self.shared.read();
        let Some(key) = key_bytes(key) else {
            return Ok(());
        };
        open.alerts
            .remove(&key)
            .map_err(|source| StorageError::Write {
                tree: trees::ALERTS.to_owned(),
                key: printable_key(&key),
                source,
            })?;
        Ok(())
    }

    fn len(&self) -> Result<usize, StorageError> {
        let open = self.shared.read();
        open.alerts.iter().keys().try_fold(0, |count, key| {
            key.map(|_| count + 1).map_err(Self::scan_error)
        })
    }
}

/// Alerts in memory, for tests of other crates; fails only on an invalid key.
#[derive(Debug, Default)]
pub struct MemoryAlertStore {
    alerts: Mutex<BTreeMap<AlertKey, Alert>>,
}

impl MemoryAlertStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The map; each operation is a single map call, so a poisoned lock is taken over.
    fn alerts(&self) -> MutexGuard<'_, BTreeMap<AlertKey, Alert>> {
        self.alerts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl AlertStore for MemoryAlertStore {
    fn put(&self, alert: &Alert) -> Result<(), StorageError> {
        let key = alert.key();
        if key_bytes(&key).is_none() {
            return Err(invalid_key(&key));
        }
        self.alerts().insert(key, alert.clone());
        Ok(())
    }

    fn get(&self, key: &AlertKey) -> Result<Option<Alert>, StorageError> {
        Ok(self.alerts().get(key).cloned())
    }

    fn all(&self) -> Result<Vec<Alert>, StorageError> {
        Ok(self.alerts().values().cloned().collect())
    }

    fn remove(&self, key: &AlertKey) -> Result<(), StorageError> {
        self.alerts().remove(key);
        Ok(())
    }

    fn len(&self) -> Result<usize, StorageError> {
        Ok(self.alerts().len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::alert;
    use crate::record::Record;
    use crate::{conformance, Storage};

    fn open() -> (tempfile::TempDir, Storage) {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        (dir, storage)
    }

    #[test]
    fn the_sled_alert_store_passes_the_conformance_suite() {
        let (_dir, storage) = open();
        conformance::alert_store(&storage.alerts());
    }

    #[test]
    fn the_memory_alert_store_passes_the_conformance_suite() {
        conformance::alert_store(&MemoryAlertStore::new());
    }

    #[test]
    fn an_alert_is_keyed_by_team_host_and_name_separated_by_nul() {
        let (_dir, storage) = open();
        storage
            .alerts()
            .put(&alert("ops", "web-1", "disk", 1))
            .unwrap();
        let raw = storage.raw_tree(trees::ALERTS);
        let keys: Vec<Vec<u8>> = raw.iter().keys().map(|key| key.unwrap().to_vec()).collect();
        assert_eq!(keys, [b"ops\0web-1\0disk".to_vec()]);
    }

    #[test]
    fn a_corrupt_alert_names_its_tree_and_key() {
        let (_dir, storage) = open();
        let raw = storage.raw_tree(trees::ALERTS);
        raw.insert("ops\0web-1\0disk", &[<Alert as Record>::VERSION, 0xff])
            .unwrap();
        let key = alert("ops", "web-1", "disk", 1).key();

        let err = storage.alerts().get(&key).unwrap_err();
        assert!(
            matches!(&err, StorageError::Corrupt { tree, key, .. }
                if tree == trees::ALERTS && key == "0x6f7073007765622d31006469736b"),
            "{err:?}"
        );
        assert!(storage.alerts().all().is_err(), "a scan must not skip it");
    }

    #[test]
    fn an_alert_stored_under_another_key_is_corrupt() {
        let (_dir, storage) = open();
        let raw = storage.raw_tree(trees::ALERTS);
        let bytes = record::encode(&alert("ops", "web-2", "disk", 1)).unwrap();
        raw.insert("ops\0web-1\0disk", bytes).unwrap();

        let err = storage
            .alerts()
            .get(&alert("ops", "web-1", "disk", 1).key())
            .unwrap_err();
        assert!(
            matches!(&err, StorageError::Corrupt { reason, .. } if reason.contains("ops/web-2/disk")),
            "{err:?}"
        );
    }
}
