//! Anti-entropy for alerts: exchange digests with one random peer over sealed TCP and pull and
//! push what each side lacks. Runs on joining and every `sync_interval`, so a new or restarted
//! agent holds the whole table within seconds even if it missed the gossip. The grid-control
//! records' digest exchange ([`crate::grid::sync`]) follows on the same connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{bail, Result};
use rand::seq::IndexedRandom;
use rover_membership::{MemberStatus, MembershipHandle};
use tokio::sync::Notify;

use super::{AlertInput, AlertsHandle};
use crate::grid::GridHandle;
use crate::peer::{PeerConnection, PeerMessage};

/// Counts of one exchange.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Alerts we received.
    pub pulled: usize,
    /// Alerts we sent.
    pub pushed: usize,
    /// Grid-control records moved (received and sent).
    pub records: crate::grid::sync::RecordSyncStats,
}

/// What the exchanges of this process did, for `/metrics`.
#[derive(Debug, Default)]
pub struct SyncCounts {
    rounds: AtomicU64,
    failed: AtomicU64,
    alerts_pulled: AtomicU64,
    alerts_pushed: AtomicU64,
    records_pulled: AtomicU64,
    records_pushed: AtomicU64,
}

/// A reading of [`SyncCounts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncTotals {
    /// Exchanges that completed.
    pub rounds: u64,
    /// Exchanges that failed (peer gone, refused, timed out).
    pub failed: u64,
    /// Alerts received.
    pub alerts_pulled: u64,
    /// Alerts sent.
    pub alerts_pushed: u64,
    /// Grid-control records received.
    pub records_pulled: u64,
    /// Grid-control records sent.
    pub records_pushed: u64,
}

/// This process's exchanges.
pub static SYNCS: SyncCounts = SyncCounts {
    rounds: AtomicU64::new(0),
    failed: AtomicU64::new(0),
    alerts_pulled: AtomicU64::new(0),
    alerts_pushed: AtomicU64::new(0),
    records_pulled: AtomicU64::new(0),
    records_pushed: AtomicU64::new(0),
};

impl SyncCounts {
    fn count(&self, outcome: &Result<SyncStats>) {
        let add = |counter: &AtomicU64, n: usize| {
            counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
        };
        match outcome {
            Ok(stats) => {
                add(&self.rounds, 1);
                add(&self.alerts_pulled, stats.pulled);
                add(&self.alerts_pushed, stats.pushed);
                add(&self.records_pulled, stats.records.pulled);
                add(&self.records_pushed, stats.records.pushed);
            }
            Err(_) => add(&self.failed, 1),
        }
    }

    /// The counts so far.
    pub fn read(&self) -> SyncTotals {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        SyncTotals {
            rounds: get(&self.rounds),
            failed: get(&self.failed),
            alerts_pulled: get(&self.alerts_pulled),
            alerts_pushed: get(&self.alerts_pushed),
            records_pulled: get(&self.records_pulled),
            records_pushed: get(&self.records_pushed),
        }
    }
}

/// SHA-256 of a digest as postcard encodes it (digests are sorted by key, so equal tables
/// give equal hashes).
pub fn digest_hash<T: serde::Serialize>(digest: &T) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(postcard::to_stdvec(digest).unwrap_or_default()).into()
}

/// What we answer a peer's [`PeerMessage::SyncSummary`].
pub async fn summary_answer(
    alerts_hash: [u8; 32],
    records_hash: [u8; 32],
    alerts: &AlertsHandle,
    grid: &GridHandle,
) -> Result<PeerMessage> {
    Ok(PeerMessage::SyncSummaryAnswer {
        alerts_same: digest_hash(&alerts.digest().await?) == alerts_hash,
        records_same: digest_hash(&grid.digest().await?) == records_hash,
    })
}

/// One exchange with `peer`: hashes of both digests first, then the digests of the tables
/// that differ (so tables in step cost two hashes, however large they are).
pub async fn sync_with(
    peer: SocketAddr,
    membership: &MembershipHandle,
    alerts: &AlertsHandle,
    grid: &GridHandle,
) -> Result<SyncStats> {
    let keyring = membership.status().await?.keyring;
    let mut connection = PeerConnection::connect(peer, keyring).await?;
    let digest = alerts.digest().await?;
    let summary = PeerMessage::SyncSummary {
        alerts: digest_hash(&digest),
        records: digest_hash(&grid.digest().await?),
    };
    connection.send(&summary).await?;
    let Some(PeerMessage::SyncSummaryAnswer {
        alerts_same,
        records_same,
    }) = connection.receive().await?
    else {
        bail!("{peer} did not answer the sync summary");
    };
    let mut stats = SyncStats::default();
    if !alerts_same {
        stats = exchange_alerts(&mut connection, peer, digest, alerts).await?;
    }
    if !records_same {
        stats.records = crate::grid::sync::exchange(&mut connection, grid).await?;
    }
    Ok(stats)
}

/// The alert digest exchange: pull what the peer holds newer, push what it lacks.
async fn exchange_alerts(
    connection: &mut PeerConnection,
    peer: SocketAddr,
    digest: Vec<super::table::DigestEntry>,
    alerts: &AlertsHandle,
) -> Result<SyncStats> {
    connection.send(&PeerMessage::AlertDigest(digest)).await?;
    let Some(PeerMessage::AlertDelta {
        alerts: pulled,
        digest,
    }) = connection.receive().await?
    else {
        bail!("{peer} did not answer the digest");
    };
    let stats = SyncStats {
        pulled: pulled.len(),
        ..SyncStats::default()
    };
    if !pulled.is_empty() {
        alerts.send(AlertInput::Synced(pulled)).await?;
    }
    let push = alerts.newer_than(digest).await?;
    let stats = SyncStats {
        pushed: push.len(),
        ..stats
    };
    if !push.is_empty() {
        connection.send(&PeerMessage::AlertPush(push)).await?;
    }
    Ok(stats)
}

/// Syncs with a random alive peer every `interval`, and at once whenever `now` is notified
/// (on joining a cluster). Runs until aborted.
pub async fn run(
    interval: Duration,
    membership: MembershipHandle,
    alerts: AlertsHandle,
    grid: GridHandle,
    now: std::sync::Arc<Notify>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = now.notified() => {}
        }
        let Ok(members) = membership.members().await else {
            return;
        };
        let Ok(me) = membership.status().await.map(|s| s.identity.name) else {
            return;
        };
        let peers: Vec<SocketAddr> = members
            .iter()
            .filter(|m| m.status == MemberStatus::Alive && m.name != me)
            .map(|m| m.addr)
            .collect();
        let Some(peer) = peers.choose(&mut rand::rng()).copied() else {
            continue;
        };
        let outcome = sync_with(peer, &membership, &alerts, &grid).await;
        SYNCS.count(&outcome);
        match outcome {
            Ok(stats)
                if stats.pulled + stats.pushed + stats.records.pulled + stats.records.pushed
                    > 0 =>
            {
                tracing::debug!(%peer, pulled = stats.pulled, pushed = stats.pushed, records_pulled = stats.records.pulled, records_pushed = stats.records.pushed, "alerts and records synced");
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(%peer, error = %e, "alert sync failed"),
        }
    }
}
