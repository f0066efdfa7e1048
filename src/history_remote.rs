//! `history --host H` on an agent that does not keep H's full history: it asks H's replicas
//! (see [`crate::history_replicas`]) over the cluster port and merges their answers with
//! what it holds itself (H's membership changes, which every agent records).
//!
//! All replicas are asked at once and their answers merged, so a replica chosen only since
//! the last membership change (which holds only the samples since) is completed by the
//! others. An answer holds at most [`MAX_ENTRIES`] entries (the newest), well under the
//! cluster port's 16 MiB message limit; each replica has [`super::peer::EXCHANGE_TIMEOUT`].

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use rover_membership::{MemberStatus, MembershipHandle};
use rover_storage::{HistoryEntry, HistoryStore, Storage};
use tokio::task::JoinSet;

use crate::history_replicas::{replica_count, replicas};
use crate::peer::{PeerConnection, PeerMessage, EXCHANGE_TIMEOUT};

/// The most entries one answer carries (about 1 MB; a day of 5 s samples is 17 280).
pub const MAX_ENTRIES: usize = 20_000;

/// What the replicas of a host answered.
#[derive(Debug, Default)]
pub struct Remote {
    /// Every entry the replicas sent, merged, in time order, without duplicates.
    pub entries: Vec<HistoryEntry>,
    /// The replicas that answered.
    pub answered: Vec<String>,
    /// The replicas asked that did not answer, with why.
    pub failed: Vec<(String, String)>,
    /// Whether an answer left older entries out.
    pub truncated: bool,
}

/// The replicas of `host` among `members` (alive or suspect, us included), if we are not one
/// of them; `None` when we keep its history ourselves.
pub fn remote_replicas(
    own: &str,
    host: &str,
    members: &[String],
    configured: usize,
) -> Option<Vec<String>> {
    if host == own {
        return None;
    }
    let count = replica_count(configured, members.len());
    let chosen = replicas(host, members.iter().map(String::as_str), count);
    (!chosen.iter().any(|r| r == own)).then_some(chosen)
}

/// Asks every replica of `host` (from the live member list) for its entries since
/// `since_ms`; `None` when this agent is a replica (its own history is complete).
pub async fn fetch(
    membership: &MembershipHandle,
    configured: usize,
    host: &str,
    since_ms: u64,
    limit: usize,
) -> Result<Option<Remote>> {
    let status = membership.status().await?;
    let members = membership.members().await?;
    let alive: Vec<_> = members
        .iter()
        .filter(|m| matches!(m.status, MemberStatus::Alive | MemberStatus::Suspect))
        .collect();
    let names: Vec<String> = alive.iter().map(|m| m.name.clone()).collect();
    let Some(chosen) = remote_replicas(&status.identity.name, host, &names, configured) else {
        return Ok(None);
    };
    let limit = u32::try_from(limit.min(MAX_ENTRIES)).unwrap_or(u32::MAX);
    let mut asks = JoinSet::new();
    for name in chosen {
        let Some(addr) = alive.iter().find(|m| m.name == name).map(|m| m.addr) else {
            continue;
        };
        let keyring = status.keyring.clone();
        let query = PeerMessage::HistoryQuery {
            host: host.to_owned(),
            since_ms,
            limit,
        };
        asks.spawn(async move {
            let answer = async {
                let mut connection = PeerConnection::connect(addr, keyring).await?;
                connection.ask(&query, EXCHANGE_TIMEOUT).await
            }
            .await;
            (name, answer)
        });
    }
    let mut remote = Remote::default();
    let mut seen = BTreeSet::new();
    while let Some(joined) = asks.join_next().await {
        let Ok((name, answer)) = joined else {
            continue;
        };
        match answer {
            Ok(PeerMessage::HistoryAnswer { entries, truncated }) => {
                remote.truncated |= truncated;
                for entry in entries.into_iter().filter(|e| e.host == host) {
                    if seen.insert(entry_key(&entry)) {
                        remote.entries.push(entry);
                    }
                }
                remote.answered.push(name);
            }
            Ok(_) => remote
                .failed
                .push((name, "an answer of another kind".to_owned())),
            Err(e) => remote.failed.push((name, format!("{e:#}"))),
        }
    }
    remote.entries.sort_by_key(|e| e.at_ms);
    Ok(Some(remote))
}

/// Merges `local` entries into `remote`'s (without duplicates), in time order, keeping the
/// newest `limit`.
pub fn merge(
    local: Vec<HistoryEntry>,
    remote: Vec<HistoryEntry>,
    limit: Option<usize>,
) -> Vec<HistoryEntry> {
    let mut seen = BTreeSet::new();
    let mut all: Vec<HistoryEntry> = local
        .into_iter()
        .chain(remote)
        .filter(|e| seen.insert(entry_key(e)))
        .collect();
    all.sort_by_key(|e| e.at_ms);
    if let Some(limit) = limit {
        let skip = all.len().saturating_sub(limit);
        all.drain(..skip);
    }
    all
}

/// What makes two copies of one entry the same: its time and its encoded content.
fn entry_key(entry: &HistoryEntry) -> (u64, Vec<u8>) {
    (
        entry.at_ms,
        postcard::to_stdvec(&entry.event).unwrap_or_default(),
    )
}

/// The answer to a [`PeerMessage::HistoryQuery`] from our own history.
pub async fn answer(
    storage: &Storage,
    host: String,
    since_ms: u64,
    limit: u32,
) -> Result<PeerMessage> {
    let history = storage.history();
    let limit = usize::try_from(limit)
        .unwrap_or(usize::MAX)
        .min(MAX_ENTRIES);
    tokio::task::spawn_blocking(move || {
        let mut entries = history.range(&host, since_ms, u64::MAX)?;
        let skip = entries.len().saturating_sub(limit);
        entries.drain(..skip);
        Ok::<_, rover_storage::StorageError>(PeerMessage::HistoryAnswer {
            entries,
            truncated: skip > 0,
        })
    })
    .await
    .context("history query task")?
    .context("reading history for a peer")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rover_storage::HistoryEvent;

    fn entry(at_ms: u64, status: &str) -> HistoryEntry {
        HistoryEntry {
            host: "h".into(),
            at_ms,
            event: HistoryEvent::Membership {
                status: status.into(),
                detail: String::new(),
            },
        }
    }

    #[test]
    fn copies_of_one_entry_from_several_replicas_are_kept_once_in_time_order() {
        let merged = merge(
            vec![entry(3, "alive"), entry(1, "alive")],
            vec![entry(2, "failed"), entry(3, "alive"), entry(1, "alive")],
            None,
        );
        let times: Vec<u64> = merged.iter().map(|e| e.at_ms).collect();
        assert_eq!(times, vec![1, 2, 3]);
        assert_eq!(merge(merged.clone(), Vec::new(), Some(2)).len(), 2);
    }

    #[test]
    fn only_a_host_that_is_no_replica_asks_the_replicas() {
        let members: Vec<String> = (0..40).map(|i| format!("n{i}")).collect();
        let chosen = remote_replicas("n0", "n7", &members, 0);
        match chosen {
            Some(replicas) => {
                assert_eq!(replicas.len(), 5);
                assert!(!replicas.contains(&"n0".to_owned()));
            }
            None => {
                let count = replica_count(0, 40);
                assert!(replicas("n7", members.iter().map(String::as_str), count)
                    .contains(&"n0".to_owned()));
            }
        }
        assert!(remote_replicas("n0", "n0", &members, 0).is_none());
        assert!(
            remote_replicas("n0", "n7", &members[..10], 0).is_none(),
            "small: all keep all"
        );
    }
}
