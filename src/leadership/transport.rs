//! Raft RPCs over the sealed cluster port: one connection kept open per peer, opened again
//! after any failure. Nodes are named in the Raft membership by their node name; the address
//! comes from the SWIM view (the [`Directory`]), so a peer that restarts on a new address is
//! still reached.
//!
//! A peer that stops answering is logged once when it becomes unreachable (at info when SWIM
//! already lists it failed: that is no news) and once when it answers again; every failed RPC
//! in between is only counted ([`PeerTransport::failed_rpcs`]). openraft's own line per failed
//! RPC is left out of the log (`daemon::log_sink`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rover_election::network::{RaftReply, RaftRequest, RaftTransport, TransportError};
use rover_membership::{MemberStatus, MembershipHandle};

use crate::peer::{PeerConnection, PeerMessage};

/// Node name to current cluster address and SWIM status, from the SWIM view; and which peers
/// lately refused our Raft RPCs because they are in another group. Written by the owner task.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    members: Arc<RwLock<HashMap<String, (SocketAddr, MemberStatus)>>>,
    refused: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Directory {
    /// Replaces the whole map.
    pub fn replace(&self, members: HashMap<String, (SocketAddr, MemberStatus)>) {
        if let Ok(mut current) = self.members.write() {
            *current = members;
        }
    }

    /// The address of `name`, if SWIM knows it.
    pub fn get(&self, name: &str) -> Option<SocketAddr> {
        self.members.read().ok()?.get(name).map(|(addr, _)| *addr)
    }

    /// Whether SWIM lists `name` failed or left.
    pub fn is_gone(&self, name: &str) -> bool {
        self.members.read().is_ok_and(|m| {
            m.get(name)
                .is_some_and(|(_, s)| matches!(s, MemberStatus::Failed | MemberStatus::Left))
        })
    }

    /// Records that `name` refused a Raft RPC: it is in another group.
    pub fn note_refusal(&self, name: &str) {
        if let Ok(mut refused) = self.refused.lock() {
            if refused.len() > 4096 {
                refused.clear();
            }
            refused.insert(name.to_owned(), Instant::now());
        }
    }

    /// The peers that refused a Raft RPC within `within`.
    pub fn refused_within(&self, within: Duration) -> Vec<String> {
        let Ok(mut refused) = self.refused.lock() else {
            return Vec::new();
        };
        refused.retain(|_, at| at.elapsed() < within);
        refused.keys().cloned().collect()
    }
}

/// What the transport stamps on every request: our group and whether we hold a lease.
pub trait RequestStamp: Send + Sync + 'static {
    /// Our group id (0 when in none: peers refuse it).
    fn cluster(&self) -> u64;
    /// Whether we are a leader with a recent quorum acknowledgement.
    fn lease(&self) -> bool;
}

type Slot = Arc<tokio::sync::Mutex<Option<PeerConnection>>>;

/// [`RaftTransport`] over [`PeerConnection`]s.
#[derive(Clone)]
pub struct PeerTransport {
    directory: Directory,
    stamp: Arc<dyn RequestStamp>,
    membership: MembershipHandle,
    connections: Arc<Mutex<HashMap<u64, Slot>>>,
    /// Peers whose last RPC failed.
    unreachable: Arc<Mutex<HashMap<u64, String>>>,
    failed: Arc<AtomicU64>,
}

/// Per-RPC answer timeout. Heartbeats answer in a millisecond on a LAN; a snapshot can take
/// longer.
const RPC_TIMEOUT: Duration = Duration::from_secs(2);
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(10);

impl PeerTransport {
    /// A transport resolving names through `directory`, sealing with the keyring the
    /// membership task holds when a connection opens.
    pub fn new(
        directory: Directory,
        stamp: Arc<dyn RequestStamp>,
        membership: MembershipHandle,
    ) -> Self {
        Self {
            directory,
            stamp,
            membership,
            connections: Arc::default(),
            unreachable: Arc::default(),
            failed: Arc::default(),
        }
    }

    /// Raft RPCs that got no answer since the start.
    pub fn failed_rpcs(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    fn slot(&self, target: u64) -> Slot {
        let mut connections = match self.connections.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        connections.entry(target).or_default().clone()
    }

    /// Sends `message` on the connection kept for `name` (opening one if needed) and reads
    /// its answer. The connection is taken out of its slot for the exchange and put back only
    /// after the answer was read: if openraft drops this future halfway (its RPC deadline), the
    /// connection is dropped with it, so a late answer can never be read as the answer to a
    /// later request.
    async fn exchange(
        &self,
        slot: &mut Option<PeerConnection>,
        name: &str,
        message: &PeerMessage,
        timeout: Duration,
    ) -> anyhow::Result<PeerMessage> {
        let mut connection = match slot.take() {
            Some(connection) => connection,
            None => {
                let addr = self
                    .directory
                    .get(name)
                    .ok_or_else(|| anyhow::anyhow!("no address known for {name}"))?;
                let keyring = self.membership.status().await?.keyring;
                PeerConnection::connect(addr, keyring).await?
            }
        };
        let answer = connection.ask(message, timeout).await?;
        *slot = Some(connection);
        Ok(answer)
    }

    /// Asks `name` one question on a connection of its own, opened and closed here, with an
    /// answer within `timeout` in all: for rare questions (the pre-vote) that must not wait
    /// behind a Raft RPC on the kept connection.
    pub async fn ask_once(
        &self,
        name: &str,
        message: &PeerMessage,
        timeout: Duration,
    ) -> anyhow::Result<PeerMessage> {
        let exchange = async {
            let addr = self
                .directory
                .get(name)
                .ok_or_else(|| anyhow::anyhow!("no address known for {name}"))?;
            let keyring = self.membership.status().await?.keyring;
            let mut connection = PeerConnection::connect(addr, keyring).await?;
            connection.ask(message, timeout).await
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| anyhow::anyhow!("no answer from {name} within {timeout:?}"))?
    }

    /// Logs `name` becoming unreachable (once) or reachable again, and counts failures.
    fn note_outcome(&self, target: u64, name: &str, failure: Option<&str>) {
        let Ok(mut unreachable) = self.unreachable.lock() else {
            return;
        };
        match failure {
            Some(reason) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if unreachable.contains_key(&target) {
                    return;
                }
                if unreachable.len() > 4096 {
                    unreachable.clear();
                }
                unreachable.insert(target, name.to_owned());
                if self.directory.is_gone(name) {
                    tracing::info!(peer = %name, %reason, "raft peer unreachable (SWIM lists it failed)");
                } else {
                    tracing::warn!(peer = %name, %reason, "raft peer unreachable");
                }
            }
            None => {
                if unreachable.remove(&target).is_some() {
                    tracing::info!(peer = %name, "raft peer reachable again");
                }
            }
        }
    }
}

impl RaftTransport for PeerTransport {
    async fn call(
        &self,
        target: u64,
        name: &str,
        request: RaftRequest,
    ) -> Result<RaftReply, TransportError> {
        let timeout = match request {
            RaftRequest::InstallSnapshot(_) => SNAPSHOT_TIMEOUT,
            _ => RPC_TIMEOUT,
        };
        let message = PeerMessage::Raft {
            cluster: self.stamp.cluster(),
            lease: self.stamp.lease(),
            request,
            target,
        };
        let slot = self.slot(target);
        let mut slot = slot.lock().await;
        let failed = |reason: String| TransportError {
            addr: name.to_owned(),
            reason,
        };
        let result = match self.exchange(&mut slot, name, &message, timeout).await {
            Ok(PeerMessage::RaftAnswer(reply)) => Ok(reply),
            Ok(PeerMessage::RaftRefused(theirs)) => {
                self.directory.note_refusal(name);
                Err(failed(format!("not in our group (theirs: {theirs:?})")))
            }
            Ok(_) => {
                *slot = None;
                Err(failed("answered with an unexpected message".into()))
            }
            Err(e) => Err(failed(format!("{e:#}"))),
        };
        self.note_outcome(
            target,
            name,
            result.as_ref().err().map(|e| e.reason.as_str()),
        );
        result
    }
}
