//! The newest status sample of every host, one record per host in the
//! [`trees::LAST_SAMPLES`] tree: what `history` shows for a host whose full history this node
//! does not keep (it is not one of the host's replicas), and when every host was last heard.

use crate::db::Shared;
use crate::error::{printable_key, StorageError};
use crate::record;
use crate::records::StatusSample;
use crate::trees;

/// The last samples. Obtained from [`crate::Storage::last_samples`]; cheap to clone, clones
/// share the tree, and keep working after a [`crate::Storage::rewrite_if_bloated`].
#[derive(Debug, Clone)]
pub struct LastSamples {
    shared: Shared,
}

impl LastSamples {
    pub(crate) fn new(shared: Shared) -> Self {
        Self { shared }
    }

    /// Keeps `sample` as its host's last one unless the one stored is as new or newer; returns
    /// whether it was kept. An unreadable stored record is replaced.
    pub fn put(&self, sample: &StatusSample) -> Result<bool, StorageError> {
        if self
            .get(&sample.host)
            .ok()
            .flatten()
            .is_some_and(|known| known.at_ms >= sample.at_ms)
        {
            return Ok(false);
        }
        let bytes = record::encode(sample)?;
        self.shared
            .read()
            .last_samples
            .insert(sample.host.as_bytes(), bytes)
            .map_err(|source| StorageError::Write {
                tree: trees::LAST_SAMPLES.to_owned(),
                key: printable_key(sample.host.as_bytes()),
                source,
            })?;
        Ok(true)
    }

    /// The last sample of `host`, if one is stored.
    pub fn get(&self, host: &str) -> Result<Option<StatusSample>, StorageError> {
        let value = self
            .shared
            .read()
            .last_samples
            .get(host.as_bytes())
            .map_err(|source| StorageError::Read {
                tree: trees::LAST_SAMPLES.to_owned(),
                key: printable_key(host.as_bytes()),
                source,
            })?;
        value
            .map(|bytes| record::decode(trees::LAST_SAMPLES, host.as_bytes(), &bytes))
            .transpose()
    }

    /// Every stored last sample, by host name.
    pub fn all(&self) -> Result<Vec<StatusSample>, StorageError> {
        let open = self.shared.read();
        open.last_samples
            .iter()
            .map(|entry| {
                let (key, value) = entry.map_err(|source| StorageError::Scan {
                    tree: trees::LAST_SAMPLES.to_owned(),
                    source,
                })?;
                record::decode(trees::LAST_SAMPLES, &key, &value)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::{CheckLevel, StatusSample, Storage};

    fn sample(host: &str, at_ms: u64) -> StatusSample {
        StatusSample {
            host: host.into(),
            team: "t".into(),
            at_ms,
            load: [0.5, 0.4, 0.3],
            mem_used_pct: 40.0,
            disks: Vec::new(),
            uptime_s: 100,
            worst_check: CheckLevel::Ok,
        }
    }

    #[test]
    fn only_a_newer_sample_replaces_a_host_s_last_one_and_it_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let storage = Storage::open(dir.path()).unwrap();
            let last = storage.last_samples();
            assert!(last.put(&sample("n1", 2_000)).unwrap());
            assert!(!last.put(&sample("n1", 1_000)).unwrap());
            assert!(!last.put(&sample("n1", 2_000)).unwrap());
            assert!(last.put(&sample("n2", 500)).unwrap());
            storage.flush().unwrap();
        }
        let storage = crate::test_support::reopen(dir.path());
        let last = storage.last_samples();
        assert_eq!(last.get("n1").unwrap().unwrap().at_ms, 2_000);
        assert!(last.get("n3").unwrap().is_none());
        let hosts: Vec<String> = last.all().unwrap().into_iter().map(|s| s.host).collect();
        assert_eq!(hosts, vec!["n1", "n2"]);
    }
}
