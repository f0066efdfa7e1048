//! Getting back into the cluster without `--join` (seed 004: records "available at reboot").
//!
//! At start this node states its address record (name, team, advertise address, generation)
//! and announces to every address stored in the other nodes' records. Then, every few
//! seconds while it has no alive member (it was alone at start, or has been since), it
//! announces to the addresses it has not tried yet, and asks one of the known addresses for
//! its keyring: a node that was down during a key rotation, and still holds a key the
//! cluster opens, takes the newer keyring and is back at once (the checks back off to once a
//! minute while nobody answers). When it joins a cluster it asks one member which keyring
//! version it holds, and takes its keyring if that is newer, so a node that missed only part
//! of a rotation is brought up to date. Its address record is stated again whenever its address or
//! generation changes.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::seq::{IndexedRandom, SliceRandom};
use rover_membership::{MemberStatus, MembershipHandle, NodeIdentity};
use rover_storage::grid::payload::node_addresses;
use tokio::sync::Notify;

use super::services::publish_addresses;
use super::GridHandle;
use crate::keys::KeysHandle;

/// How long after start the first check for being alone runs.
pub const FIRST_CHECK: Duration = Duration::from_secs(2);

/// How often a node checks whether it is alone.
pub const ALONE_CHECK: Duration = Duration::from_secs(5);

/// The longest wait between two checks while alone with nobody answering.
pub const ALONE_CHECK_MAX: Duration = Duration::from_secs(60);

/// How many addresses one check asks for a keyring.
const KEYRING_ASKS: usize = 3;

/// What the bootstrap loop needs.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// The records owner task.
    pub grid: GridHandle,
    /// The keys owner task.
    pub keys: KeysHandle,
    /// The membership owner task.
    pub membership: MembershipHandle,
    /// Notified when this node joins a cluster (it asks a member for its keyring then).
    pub joined: Arc<Notify>,
}

impl Bootstrap {
    /// Runs until the membership task stops.
    pub async fn run(self) {
        let Ok(status) = self.membership.status().await else {
            return;
        };
        let mut stated = self.state_addresses(&status.identity, None).await;
        let stored = self.stored_addresses(&status.identity.name).await;
        if !stored.is_empty() {
            tracing::info!(
                addresses = stored.len(),
                "announcing to the addresses of the stored address records"
            );
            if self.membership.join(stored.clone()).await.is_err() {
                return;
            }
        }
        let mut tried: BTreeSet<SocketAddr> = stored.into_iter().collect();
        let mut wait = FIRST_CHECK;
        loop {
            let woken_by_join = tokio::select! {
                () = tokio::time::sleep(wait) => false,
                () = self.joined.notified() => true,
            };
            let Ok(status) = self.membership.status().await else {
                return;
            };
            stated = self.state_addresses(&status.identity, stated).await;
            let Ok(members) = self.membership.members().await else {
                return;
            };
            let me = status.identity.name.clone();
            let alive: Vec<SocketAddr> = members
                .iter()
                .filter(|m| {
                    m.name != me && matches!(m.status, MemberStatus::Alive | MemberStatus::Suspect)
                })
                .map(|m| m.addr)
                .collect();
            if !alive.is_empty() {
                wait = ALONE_CHECK;
                let peer = alive.choose(&mut rand::rng()).copied();
                if let (true, Some(peer)) = (woken_by_join, peer) {
                    self.catch_up(&[peer], &status.seeds).await;
                }
                continue;
            }
            // Alone, and nobody answered the last round: back off (up to a minute).
            wait = (wait * 2).clamp(ALONE_CHECK, ALONE_CHECK_MAX);
            if members
                .iter()
                .any(|m| m.name == me && m.status == MemberStatus::Left)
            {
                return; // we left on purpose: stay out
            }
            let mut candidates = self.stored_addresses(&me).await;
            let new: Vec<SocketAddr> = candidates
                .iter()
                .filter(|a| !tried.contains(a))
                .copied()
                .collect();
            if !new.is_empty() {
                tracing::info!(
                    addresses = new.len(),
                    "alone: announcing to addresses learned from records"
                );
                tried.extend(new.iter().copied());
                let _ = self.membership.join(new).await;
            }
            candidates.extend(status.seeds.iter().copied());
            candidates.sort();
            candidates.dedup();
            candidates.shuffle(&mut rand::rng());
            self.catch_up(&candidates, &candidates).await;
        }
    }

    /// Takes a newer keyring from one of `from`; if it did, announces to `announce` at once
    /// (the keys this node announced with may be the ones the cluster no longer opens).
    async fn catch_up(&self, from: &[SocketAddr], announce: &[SocketAddr]) {
        if let Some(peer) = crate::keys::peer::catch_up(&self.keys, from, KEYRING_ASKS).await {
            // Nothing to worry about: a fresh node invited after a rotation gets here too.
            tracing::info!(%peer, "this node's keyring was behind the cluster's: took the newer one (it missed a key rotation, or joined after one)");
            let _ = self.membership.join(announce.to_vec()).await;
        }
    }

    /// Every address in the other nodes' address records.
    async fn stored_addresses(&self, me: &str) -> Vec<SocketAddr> {
        let records = self.grid.list().await.unwrap_or_default();
        let mine = self.grid.signer();
        let mut addrs: Vec<SocketAddr> = node_addresses(&records)
            .into_iter()
            .filter(|a| a.signer != mine && a.addresses.node != me)
            .flat_map(|a| a.addresses.addrs)
            .collect();
        addrs.sort();
        addrs.dedup();
        addrs
    }

    /// States our address record unless `stated` already says the same.
    async fn state_addresses(
        &self,
        identity: &NodeIdentity,
        stated: Option<(SocketAddr, u64)>,
    ) -> Option<(SocketAddr, u64)> {
        let now = (identity.addr, identity.generation);
        if stated == Some(now) {
            return stated;
        }
        match publish_addresses(
            &self.grid,
            &identity.name,
            &identity.team,
            vec![identity.addr],
            identity.generation,
        )
        .await
        {
            Ok(record) => {
                tracing::debug!(seqnum = record.seqnum, addr = %identity.addr, "address record stated");
                Some(now)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot state this node's address record (trying again later)");
                stated
            }
        }
    }
}
