//! The cluster TCP port (same number as gossip): [`PeerMessage`]s over connections that start
//! with a Noise handshake keyed by the cluster key (see `rover_membership::sealed_stream`).
//!
//! It carries the alert and grid-control record anti-entropy exchange, key rotation steps, the Raft RPCs of the ledger group (on a
//! connection kept open per peer), the group's hello and adopt messages, ledger writes
//! forwarded to the leader and history queries to a host's replicas (and, on a beacon's port,
//! the beacon's messages: [`crate::beacon`]). Later features add their message kinds at the end of the enum
//! (postcard encodes the variant index, so only append).

pub mod limits;
pub mod server;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use rover_election::group::ClusterStamp;
use rover_election::ledger::LedgerCommand;
use rover_election::network::{RaftReply, RaftRequest};
use rover_election::pre_vote::PreVoteRequest;
use rover_membership::sealed_stream::{self, SealedStream};
use rover_membership::Keyring;
use rover_storage::Alert;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

use crate::alerts::table::DigestEntry;
use crate::grid::table::DigestEntry as GridDigestEntry;

/// How long one request may wait for its answer, or a connection for its first message.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a connection may take to finish its handshake (either side) before it is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

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
        /// The Raft node id the RPC is for: a host that came back with a new node id (its
        /// database was lost) refuses RPCs for its old one instead of answering for it.
        target: u64,
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
    /// "Here is which topology record versions I hold."
    TopologyDigest(Vec<crate::topology::table::DigestEntry>),
    /// The answer: the records the server holds newer, and its own digest.
    TopologyDelta {
        /// Records newer on the server than in the client's digest.
        records: Vec<crate::topology::record::HostTopology>,
        /// The server's digest, so the client can push what the server lacks.
        digest: Vec<crate::topology::table::DigestEntry>,
    },
    /// What the client holds newer than the server's digest.
    TopologyPush(Vec<crate::topology::record::HostTopology>),
    /// "Here is which grid-control records I hold" (see [`crate::grid::sync`]).
    RecordDigest(Vec<GridDigestEntry>),
    /// The answer: the records the server holds newer (each encoded), and its digest.
    RecordDelta {
        /// Encoded records newer on the server.
        records: Vec<Vec<u8>>,
        /// The server's digest.
        digest: Vec<GridDigestEntry>,
    },
    /// Encoded records the client holds newer than the server's digest.
    RecordPush(Vec<Vec<u8>>),
    /// "Which keys do you hold?" (fingerprints only; see [`crate::keys`]).
    KeyringQuery,
    /// The answer to [`PeerMessage::KeyringQuery`].
    KeyringSummary(crate::keys::KeyringSummary),
    /// "Apply this rotation step" (persisted before the answer).
    KeyringChange(crate::keys::KeyChange),
    /// The answer to [`PeerMessage::KeyringChange`]: what the member holds now, or why not.
    KeyringChangeAnswer(Result<crate::keys::KeyringSummary, String>),
    /// "Send me your keyring" (a member that was away during a rotation).
    KeyringFetch,
    /// The answer to [`PeerMessage::KeyringFetch`].
    KeyringFetchAnswer(crate::keys::state::KeyringWire),
    /// "Send me the history you keep of `host`" (see [`crate::history_remote`]).
    HistoryQuery {
        /// The host.
        host: String,
        /// Entries at or after this Unix time in ms.
        since_ms: u64,
        /// The newest this many at most (the server caps it at
        /// [`crate::history_remote::MAX_ENTRIES`]).
        limit: u32,
    },
    /// The answer to [`PeerMessage::HistoryQuery`]: the entries, in time order.
    HistoryAnswer {
        /// The entries.
        entries: Vec<rover_storage::HistoryEntry>,
        /// Whether older entries in the window were left out.
        truncated: bool,
    },
    /// A read from outside the cluster (`members`, `info`, `events --via`; see
    /// [`crate::introspection::remote`]).
    IntrospectQuery(crate::introspection::remote::IntrospectQuery),
    /// The answer to [`PeerMessage::IntrospectQuery`]: JSON text, or why not.
    IntrospectAnswer(crate::introspection::remote::IntrospectAnswer),
    /// "Would you vote for me?", asked by a voter of group `cluster` before it raises its term
    /// to call a Raft election (see [`rover_election::pre_vote`]).
    PreVote {
        /// The asking voter's group id.
        cluster: u64,
        /// The term it would campaign in and its log.
        request: PreVoteRequest,
    },
    /// The answer to [`PeerMessage::PreVote`]: whether it is granted.
    PreVoteAnswer(bool),
    /// Events an agent sends to a beacon (see [`crate::beacon`]); only a beacon answers it.
    BeaconEvents(crate::beacon::Batch),
    /// The beacon's answer to [`PeerMessage::BeaconEvents`]: how many of them were new.
    BeaconAck(u64),
    /// "What did you collect?" (`beacon dump`).
    BeaconDump,
    /// The answer to [`PeerMessage::BeaconDump`].
    BeaconDumpAnswer(crate::beacon::Collected),
    /// "Write what you collected to your `--out` file and exit" (`beacon stop`).
    BeaconStop,
    /// The answer to [`PeerMessage::BeaconStop`].
    BeaconStopAnswer(crate::beacon::StopAnswer),
    /// "Here is a hash of my alert digest and of my record digest" (anti-entropy asks this
    /// first: tables in step cost two hashes, not two digests; see [`crate::alerts::sync`]).
    SyncSummary {
        /// SHA-256 of the alert digest.
        alerts: [u8; 32],
        /// SHA-256 of the grid-control record digest.
        records: [u8; 32],
    },
    /// The answer to [`PeerMessage::SyncSummary`]: which tables are already in step.
    SyncSummaryAnswer {
        /// The alert digests are equal.
        alerts_same: bool,
        /// The record digests are equal.
        records_same: bool,
    },
    /// "Here is a hash of my topology digest" (the topology sync asks this first).
    TopologySummary([u8; 32]),
    /// The answer to [`PeerMessage::TopologySummary`]: whether the digests are equal.
    TopologySummaryAnswer(bool),
}

/// What this process sent on the cluster port: messages and bytes (framing and sealing
/// included), all message kinds and Raft alone, and the handshakes it made.
#[derive(Debug, Default)]
pub struct Traffic {
    frames: AtomicU64,
    bytes: AtomicU64,
    raft_frames: AtomicU64,
    raft_bytes: AtomicU64,
    handshakes: AtomicU64,
    handshake_bytes: AtomicU64,
}

/// A reading of [`Traffic`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficCounts {
    /// Frames sent.
    pub frames_out: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Raft RPC frames and answers sent (pre-votes included).
    pub raft_frames_out: u64,
    /// Bytes of those.
    pub raft_bytes_out: u64,
    /// Handshakes completed (as initiator or responder).
    #[serde(default)]
    pub handshakes: u64,
    /// Bytes this side sent for them (also counted in `bytes_out`).
    #[serde(default)]
    pub handshake_bytes_out: u64,
}

impl Traffic {
    fn count(&self, message: &PeerMessage, bytes: usize) {
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        self.frames.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        if matches!(
            message,
            PeerMessage::Raft { .. }
                | PeerMessage::RaftAnswer(_)
                | PeerMessage::PreVote { .. }
                | PeerMessage::PreVoteAnswer(_)
        ) {
            self.raft_frames.fetch_add(1, Ordering::Relaxed);
            self.raft_bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    fn count_handshake(&self, bytes: usize) {
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        self.handshakes.fetch_add(1, Ordering::Relaxed);
        self.handshake_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn read(&self) -> TrafficCounts {
        TrafficCounts {
            frames_out: self.frames.load(Ordering::Relaxed),
            bytes_out: self.bytes.load(Ordering::Relaxed),
            raft_frames_out: self.raft_frames.load(Ordering::Relaxed),
            raft_bytes_out: self.raft_bytes.load(Ordering::Relaxed),
            handshakes: self.handshakes.load(Ordering::Relaxed),
            handshake_bytes_out: self.handshake_bytes.load(Ordering::Relaxed),
        }
    }
}

/// Everything this process sent on the cluster port (one daemon per process).
pub static SENT: Traffic = Traffic {
    frames: AtomicU64::new(0),
    bytes: AtomicU64::new(0),
    raft_frames: AtomicU64::new(0),
    raft_bytes: AtomicU64::new(0),
    handshakes: AtomicU64::new(0),
    handshake_bytes: AtomicU64::new(0),
};

/// One open, authenticated connection to a peer.
pub struct PeerConnection {
    stream: SealedStream<TcpStream>,
}

impl PeerConnection {
    /// Connects to a peer's cluster port and runs the handshake with our primary key.
    pub async fn connect(addr: SocketAddr, keyring: Keyring) -> Result<Self> {
        let stream = tokio::time::timeout(EXCHANGE_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow!("connecting to {addr} timed out"))?
            .with_context(|| format!("connecting to {addr}"))?;
        let _ = stream.set_nodelay(true);
        let stream =
            tokio::time::timeout(HANDSHAKE_TIMEOUT, sealed_stream::connect(stream, &keyring))
                .await
                .map_err(|_| anyhow!("handshake with {addr} timed out"))?
                .with_context(|| format!("handshake with {addr}"))?;
        SENT.count_handshake(stream.handshake_bytes_out());
        Ok(Self { stream })
    }

    /// Runs the responder's handshake on an accepted stream (the caller bounds its time).
    pub async fn accept(
        stream: TcpStream,
        keyring: &Keyring,
    ) -> Result<Self, sealed_stream::StreamError> {
        let _ = stream.set_nodelay(true);
        let stream = sealed_stream::accept(stream, keyring).await?;
        SENT.count_handshake(stream.handshake_bytes_out());
        Ok(Self { stream })
    }

    /// Sends one message.
    pub async fn send(&mut self, message: &PeerMessage) -> Result<()> {
        let bytes = postcard::to_stdvec(message)?;
        let written = self.stream.send(&bytes).await?;
        SENT.count(message, written);
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
        let Some(bytes) = self.stream.receive().await? else {
            return Ok(None);
        };
        Ok(Some(
            postcard::from_bytes(&bytes).context("undecodable peer message")?,
        ))
    }
}
