//! The agent's cluster event log as raw bytes, one value per event in the
//! [`trees::EVENT_LOG`] tree, keyed by the event's big-endian sequence number. The agent
//! encodes and decodes the values and bounds the count (`introspection.events`); this store
//! keeps them in order, so a restarted agent still shows what happened before it stopped.

use crate::db::Shared;
use crate::error::{printable_key, StorageError};
use crate::trees;

/// The event log, in the [`trees::EVENT_LOG`] sled tree. Obtained from
/// [`crate::Storage::event_log`]; cheap to clone, clones share the tree, and keep working after
/// a [`crate::Storage::rewrite_if_bloated`].
#[derive(Debug, Clone)]
pub struct EventLogTree {
    shared: Shared,
}

impl EventLogTree {
    pub(crate) fn new(shared: Shared) -> Self {
        Self { shared }
    }

    /// Stores `value` as event `seq`, then removes the events older than the newest `keep`
    /// (sequence numbers are contiguous); returns how many it removed.
    pub fn append(&self, seq: u64, value: &[u8], keep: usize) -> Result<usize, StorageError> {
        let open = self.shared.read();
        let tree = &open.event_log;
        tree.insert(seq.to_be_bytes(), value)
            .map_err(|source| StorageError::Write {
                tree: trees::EVENT_LOG.to_owned(),
                key: seq.to_string(),
                source,
            })?;
        // Sequence numbers are contiguous: every event below `seq - keep + 1` is past the bound.
        let first_kept = seq.saturating_sub(keep as u64).saturating_add(1);
        let mut removed = 0;
        loop {
            let oldest = tree.first().map_err(|source| StorageError::Scan {
                tree: trees::EVENT_LOG.to_owned(),
                source,
            })?;
            let Some((key, _)) = oldest else { break };
            let below = <[u8; 8]>::try_from(key.as_ref())
                .map_or(true, |k| u64::from_be_bytes(k) < first_kept);
            if !below {
                break;
            }
            tree.remove(&key).map_err(|source| StorageError::Write {
                tree: trees::EVENT_LOG.to_owned(),
                key: printable_key(&key),
                source,
            })?;
            removed += 1;
        }
        Ok(removed)
    }

    /// The newest `limit` events, oldest first, as `(seq, value)`. A key that is not eight
    /// bytes is reported as corrupt.
    pub fn newest(&self, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        let open = self.shared.read();
        let mut out = Vec::new();
        for entry in open.event_log.iter().rev().take(limit) {
            let (key, value) = entry.map_err(|source| StorageError::Scan {
                tree: trees::EVENT_LOG.to_owned(),
                source,
            })?;
            let seq: [u8; 8] = key.as_ref().try_into().map_err(|_| StorageError::Corrupt {
                tree: trees::EVENT_LOG.to_owned(),
                key: printable_key(&key),
                reason: "an event key is not eight bytes".to_owned(),
            })?;
            out.push((u64::from_be_bytes(seq), value.to_vec()));
        }
        out.reverse();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::Storage;

    #[test]
    fn the_event_log_keeps_the_newest_events_in_order_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let storage = Storage::open(dir.path()).unwrap();
            let log = storage.event_log();
            for seq in 1..=5u64 {
                log.append(seq, format!("e{seq}").as_bytes(), 3).unwrap();
            }
            storage.flush().unwrap();
        }
        let storage = crate::test_support::reopen(dir.path());
        let kept = storage.event_log().newest(10).unwrap();
        let seqs: Vec<u64> = kept.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, vec![3, 4, 5]);
        assert_eq!(kept[2].1, b"e5");
        assert_eq!(storage.event_log().newest(1).unwrap()[0].0, 5);
    }
}
