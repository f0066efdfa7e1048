//! Anti-entropy for topology records: like the alerts' sync, a hash of the digest first, then
//! (when they differ) exchange digests with one random alive peer over the sealed cluster port and pull and push what each side lacks, every
//! `sync_interval`. A member that joins late, or missed a broadcast, holds the whole map within
//! one interval.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Result};
use rand::seq::IndexedRandom;
use rover_membership::{MemberStatus, MembershipHandle};

use super::task::TopologyHandle;
use crate::peer::{PeerConnection, PeerMessage, EXCHANGE_TIMEOUT};

/// One digest exchange with `peer`; returns (pulled, pushed).
pub async fn sync_with(
    peer: SocketAddr,
    membership: &MembershipHandle,
    topology: &TopologyHandle,
) -> Result<(usize, usize)> {
    let keyring = membership.status().await?.keyring;
    let mut connection = PeerConnection::connect(peer, keyring).await?;
    let digest = topology.digest().await?;
    let summary = PeerMessage::TopologySummary(crate::alerts::sync::digest_hash(&digest));
    match connection.ask(&summary, EXCHANGE_TIMEOUT).await? {
        PeerMessage::TopologySummaryAnswer(true) => return Ok((0, 0)),
        PeerMessage::TopologySummaryAnswer(false) => {}
        _ => bail!("{peer} did not answer the topology summary"),
    }
    let answer = connection
        .ask(&PeerMessage::TopologyDigest(digest), EXCHANGE_TIMEOUT)
        .await?;
    let PeerMessage::TopologyDelta { records, digest } = answer else {
        bail!("{peer} did not answer the topology digest");
    };
    let pulled = records.len();
    if pulled > 0 {
        topology.synced(records).await?;
    }
    let push = topology.newer_than(digest).await?;
    let pushed = push.len();
    if pushed > 0 {
        connection.send(&PeerMessage::TopologyPush(push)).await?;
    }
    Ok((pulled, pushed))
}

/// How often the sync looks (locally) whether more members are alive than at its last sync.
const NEWCOMER_LOOK: Duration = Duration::from_secs(2);

/// Syncs with a random alive peer every `interval` (the first time soon after start), and
/// within [`NEWCOMER_LOOK`] of more members being alive than at the last sync (a joiner, or a
/// side back after a split, missed the broadcasts sent before). Runs until aborted.
pub async fn run(interval: Duration, membership: MembershipHandle, topology: TopologyHandle) {
    let look = NEWCOMER_LOOK.min(interval);
    let mut since_sync = interval.saturating_sub(look);
    let mut alive_then = 0;
    loop {
        tokio::time::sleep(look).await;
        since_sync += look;
        let Ok(status) = membership.status().await else {
            return;
        };
        let Ok(members) = membership.members().await else {
            return;
        };
        let alive = members
            .iter()
            .filter(|m| m.status == MemberStatus::Alive)
            .count();
        let newcomer = alive > alive_then;
        alive_then = alive;
        if !newcomer && since_sync < interval {
            continue;
        }
        since_sync = Duration::ZERO;
        let peers: Vec<SocketAddr> = members
            .iter()
            .filter(|m| m.status == MemberStatus::Alive && m.name != status.identity.name)
            .map(|m| m.addr)
            .collect();
        let Some(peer) = peers.choose(&mut rand::rng()).copied() else {
            continue;
        };
        match sync_with(peer, &membership, &topology).await {
            Ok((pulled, pushed)) if pulled + pushed > 0 => {
                tracing::debug!(%peer, pulled, pushed, "topology synced");
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(%peer, error = %e, "topology sync failed"),
        }
    }
}
