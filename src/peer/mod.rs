//! The cluster TCP port (same number as gossip): sealed frames carrying [`PeerMessage`]s.
//!
//! It carries the alert anti-entropy exchange, the Raft RPCs of the ledger group (on a
//! connection kept open per peer), the group's hello and adopt messages and ledger writes
//! forwarded to the leader. Later features add their message kinds at the end of the enum
//! (postcard encodes the variant index, so only append).

pub mod server;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use rover_election::group::ClusterStamp;
use rover_election::ledger::LedgerCommand;
use rover_election::network::{RaftReply, RaftRequest};
use rover_membership::sealed_stream::{read_frame, write_frame};
use rover_membership::Keyring;
use rover_storage::Alert;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

use crate::alerts::table::DigestEntry;

/// How long one request may wait for its answer, or a connection for its first message.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);

/// An open connection with no message for this long is closed (Raft connections carry a
/// heartbeat every few hundred milliseconds; anti-entropy connections close after use).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Messages on the cluster TCP port. Only append variants.
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerMessage {
    /// "Here is which alert versions I hold."
    AlertDigest(Vec<DigestEntry>),
    /// The answer: what the server holds newer, and its own digest.
    AlertDelta {
        /// Alerts newer on the server than in the client's digest.
        alerts: Vec<Alert>,
        /// The server's digest, so the client can push what the server lacks.
        digest: Vec<DigestEntry>,
    },
    /// What the client holds newer than the server's digest.
    AlertPush(Vec<Alert>),
    /// A Raft RPC for the group `cluster`. `lease` says the sending leader heard from a quorum
    /// recently, so a follower that accepts its entries may count the leader as confirmed.
    Raft {
        /// The sender's group id.
        cluster: u64,
        /// The sender is a leader with a recent quorum acknowledgement.
        lease: bool,
        /// The RPC.
        request: RaftRequest,
    },
    /// The answer to [`PeerMessage::Raft`].
    RaftAnswer(RaftReply),
    /// The receiver is not in the sender's group (it names its own, if any).
    RaftRefused(Option<ClusterStamp>),
    /// "Which node are you, and which group are you in?"
    GroupHello,
    /// The answer to [`PeerMessage::GroupHello`].
    GroupHelloAnswer {
        /// The Raft node id (from the node key).
        node_id: u64,
        /// The node name.
        name: String,
        /// Its group, if it is in one.
        cluster: Option<ClusterStamp>,
    },
    /// "My group won: join it." The receiver yields only if it agrees it should.
    GroupAdopt(ClusterStamp),
    /// The answer to [`PeerMessage::GroupAdopt`]: whether the receiver now waits to be added.
    GroupAdoptAnswer(bool),
    /// Ledger commands for the receiver to apply as leader (Raft or fallback).
    LedgerWrite(Vec<LedgerCommand>),
    /// The answer to [`PeerMessage::LedgerWrite`]: an error text if they were not applied.
    LedgerWriteAnswer(Option<String>),
}

/// One open, sealed connection to a peer.
pub struct PeerConnection {
    stream: TcpStream,
    keyring: Keyring,
}

impl PeerConnection {
    /// Connects to a peer's cluster port.
    pub async fn connect(addr: SocketAddr, keyring: Keyring) -> Result<Self> {
        let stream = tokio::time::timeout(EXCHANGE_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow!("connecting to {addr} timed out"))?
            .with_context(|| format!("connecting to {addr}"))?;
        Ok(Self::from_stream(stream, keyring))
    }

    /// Wraps an accepted stream.
    pub fn from_stream(stream: TcpStream, keyring: Keyring) -> Self {
        let _ = stream.set_nodelay(true);
        Self { stream, keyring }
    }

    /// Sends one message.
    pub async fn send(&mut self, message: &PeerMessage) -> Result<()> {
        let bytes = postcard::to_stdvec(message)?;
        let mut rng: rand::rngs::StdRng = rand::make_rng();
        write_frame(&mut self.stream, &self.keyring, &bytes, &mut rng).await?;
        Ok(())
    }

    /// Sends `message` and waits (at most `timeout`) for the answer.
    pub async fn ask(&mut self, message: &PeerMessage, timeout: Duration) -> Result<PeerMessage> {
        tokio::time::timeout(timeout, async {
            self.send(message).await?;
            self.receive()
                .await?
                .ok_or_else(|| anyhow!("the peer closed the connection"))
        })
        .await
        .map_err(|_| anyhow!("no answer within {timeout:?}"))?
    }

    /// Receives one message; `None` if the peer closed.
    pub async fn receive(&mut self) -> Result<Option<PeerMessage>> {
        let Some(bytes) = read_frame(&mut self.stream, &self.keyring).await? else {
            return Ok(None);
        };
        Ok(Some(
            postcard::from_bytes(&bytes).context("undecodable peer message")?,
        ))
    }
}
