//! The beacon (seed 002, issue 14 item 4): a collector outside the cluster that agents send
//! their cluster events to, so whoever runs a test sees the cluster's story from every node
//! even when the nodes' own addresses are out of reach.
//!
//! - `rover-agent beacon --key-file K` forks ([`daemonize`]): the background process binds
//!   (port 0 by default), tells the foreground its address over a pipe, and the foreground
//!   prints `addr=IP:PORT` and exits 0 only then, so `addr=$(rover-agent beacon ...)` is ready
//!   before any node starts.
//! - The beacon's port ([`server`]) is a cluster port in miniature: the same Noise handshake
//!   keyed by the cluster key ([`crate::peer::PeerConnection`]), the same connection limits,
//!   handshake and idle timeouts; only the `Beacon*` [`crate::peer::PeerMessage`]s are
//!   answered. What it collects is bounded per node and in nodes ([`store`]), drops counted.
//! - An agent started with `--beacon ADDR` (`introspection.beacon`) hands every event its
//!   event log records to a bounded queue without waiting ([`sender::Feed`]); a supervised
//!   task sends them in batches, from the first event on, holding them until the beacon
//!   answers and reconnecting with backoff ([`sender`]). Events that do not fit are dropped
//!   and counted, and the count travels with the next batch.
//! - `beacon dump` and `beacon stop` ask over the same sealed port (with the key): what was
//!   collected, per node in time order; stop writes it to `--out` and exits.

pub mod daemonize;
pub mod sender;
pub mod server;
pub mod store;

use serde::{Deserialize, Serialize};

use crate::introspection::ClusterEvent;
use crate::peer::limits::RefusalCounts;

/// Events kept at most per sending node; past that the oldest go (counted).
pub const MAX_EVENTS_PER_NODE: usize = 10_000;

/// Sending nodes kept at most; batches from further nodes are dropped (counted).
pub const MAX_NODES: usize = 1_024;

/// Events at most in one batch (a sender splits longer runs; the beacon refuses longer ones).
pub const MAX_BATCH: usize = 256;

/// One batch of events from an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// The sending agent's node name.
    pub node: String,
    /// Events the agent could not queue for the beacon since it started (its queue was full).
    pub dropped: u64,
    /// The events, oldest first.
    pub events: Vec<ClusterEvent>,
}

/// One event as the beacon holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arrived {
    /// When the beacon received it (Unix ms, the beacon's clock).
    pub received_ms: u64,
    /// The event, as the agent recorded it.
    pub event: ClusterEvent,
}

/// What the beacon holds from one agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEvents {
    /// The sending agent's node name.
    pub node: String,
    /// Its events in time order (the agent's `at_ms`, then `seq`).
    pub events: Vec<Arrived>,
    /// Events the agent said it dropped before sending (its queue was full).
    pub dropped_by_agent: u64,
    /// Events the beacon let go because it held [`MAX_EVENTS_PER_NODE`] of this node.
    pub dropped_here: u64,
    /// Batches received from it.
    pub batches: u64,
}

/// Everything the beacon collected (the answer to `dump`, the `--out` file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collected {
    /// The beacon process's id.
    pub pid: u32,
    /// The address it listens on.
    pub listening: String,
    /// When it started (Unix ms).
    pub started_ms: u64,
    /// Per sending node, by name.
    pub nodes: Vec<NodeEvents>,
    /// Batches dropped because the beacon already held [`MAX_NODES`] nodes.
    pub dropped_nodes: u64,
    /// Connections the beacon's port refused, by reason.
    pub refused: RefusalCounts,
}

/// The answer to `beacon stop`: the file written (`None` without `--out`), or why it could not
/// be written (the beacon then keeps running, so nothing is lost).
pub type StopAnswer = Result<Option<String>, String>;
