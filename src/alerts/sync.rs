//! Anti-entropy for alerts: exchange digests with one random peer over sealed TCP and pull and
//! push what each side lacks. Runs on joining and every `sync_interval`, so a new or restarted
//! agent holds the whole table within seconds even if it missed the gossip. The grid-control
//! records' digest exchange ([`crate::grid::sync`]) follows on the same connection.

use std::net::SocketAddr;
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

/// One digest exchange with `peer`.
pub async fn sync_with(
    peer: SocketAddr,
    membership: &MembershipHandle,
    alerts: &AlertsHandle,
    grid: &GridHandle,
) -> Result<SyncStats> {
    let keyring = membership.status().await?.keyring;
    let mut connection = PeerConnection::connect(peer, keyring).await?;
    connection
        .send(&PeerMessage::AlertDigest(alerts.digest().await?))
        .await?;
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
    let records = crate::grid::sync::exchange(&mut connection, grid).await?;
    Ok(SyncStats { records, ..stats })
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
        match sync_with(peer, &membership, &alerts, &grid).await {
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
