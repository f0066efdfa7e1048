//! Anti-entropy for alerts: exchange digests with one random peer over sealed TCP and pull and
//! push what each side lacks. Runs on joining and every `sync_interval`, so a new or restarted
//! agent holds the whole table within seconds even if it missed the gossip.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Result};
use rand::seq::IndexedRandom;
use rover_membership::{MemberStatus, MembershipHandle};
use tokio::sync::Notify;

use super::{AlertInput, AlertsHandle};
use crate::peer::{PeerConnection, PeerMessage};

/// Counts of one exchange.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Alerts we received.
    pub pulled: usize,
    /// Alerts we sent.
    pub pushed: usize,
}

/// One digest exchange with `peer`.
pub async fn sync_with(
    peer: SocketAddr,
    membership: &MembershipHandle,
    alerts: &AlertsHandle,
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
        pushed: 0,
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
        match sync_with(peer, &membership, &alerts).await {
            Ok(stats) if stats.pulled + stats.pushed > 0 => {
                tracing::debug!(%peer, pulled = stats.pulled, pushed = stats.pushed, "alerts synced");
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(%peer, error = %e, "alert sync failed"),
        }
    }
}
