//! Raft RPCs over the sealed cluster port: one connection kept open per peer, opened again
//! after any failure. Nodes are named in the Raft membership by their node name; the address
//! comes from the SWIM view (the [`Directory`]), so a peer that restarts on a new address is
//! still reached.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rover_election::network::{RaftReply, RaftRequest, RaftTransport, TransportError};
use rover_membership::Keyring;

use crate::peer::{PeerConnection, PeerMessage};

/// Node name to current cluster address, from the SWIM view; and which peers lately refused
/// our Raft RPCs because they are in another group.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    addrs: Arc<RwLock<HashMap<String, SocketAddr>>>,
    refused: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Directory {
    /// Replaces the whole map.
    pub fn replace(&self, addrs: HashMap<String, SocketAddr>) {
        if let Ok(mut current) = self.addrs.write() {
            *current = addrs;
        }
    }

    /// The address of `name`, if SWIM knows it.
    pub fn get(&self, name: &str) -> Option<SocketAddr> {
        self.addrs.read().ok()?.get(name).copied()
    }

    /// Records that `name` refused a Raft RPC: it is in another group.
    pub fn note_refusal(&self, name: &str) {
        if let Ok(mut refused) = self.refused.lock() {
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
    /// The keyring to seal with.
    fn keyring(&self) -> Keyring;
}

type Slot = Arc<tokio::sync::Mutex<Option<PeerConnection>>>;

/// [`RaftTransport`] over [`PeerConnection`]s.
#[derive(Clone)]
pub struct PeerTransport {
    directory: Directory,
    stamp: Arc<dyn RequestStamp>,
    connections: Arc<Mutex<HashMap<u64, Slot>>>,
}

/// Per-RPC answer timeout. Heartbeats answer in a millisecond on a LAN; a snapshot can take
/// longer.
const RPC_TIMEOUT: Duration = Duration::from_secs(2);
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(10);

impl PeerTransport {
    /// A transport resolving names through `directory`.
    pub fn new(directory: Directory, stamp: Arc<dyn RequestStamp>) -> Self {
        Self {
            directory,
            stamp,
            connections: Arc::default(),
        }
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
                PeerConnection::connect(addr, self.stamp.keyring()).await?
            }
        };
        let answer = connection.ask(message, timeout).await?;
        *slot = Some(connection);
        Ok(answer)
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
        match self.exchange(&mut slot, name, &message, timeout).await {
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
        }
    }
}
