//! Leadership: the Raft group of the notification ledger on this agent, the fallback leader of
//! a partition without quorum, and what `leader` and `info` show.
//!
//! - [`node`] runs the openraft node on the sled trees; [`transport`] carries its RPCs over
//!   the sealed cluster port.
//! - [`watch_loop`] is the owner task: every tick it reads the SWIM view and the Raft metrics,
//!   decides the mode with `rover_election::policy`, lets the Raft leader make the group
//!   follow SWIM (`rover_election::group`), merges side ledgers once a Raft leader is back,
//!   and publishes a [`LeaderStatus`]. Only it replaces the Raft node (when the group yields).
//! - [`fallback`] keeps the fallback ledger and the pending merge.
//!
//! A follower counts the Raft leader as present only while that leader's heartbeats say it
//! heard from a quorum recently (the `lease` flag of our RPC frame): a leader cut off with a
//! minority stops counting, so the minority falls back instead of waiting on it forever.

pub mod fallback;
pub mod node;
pub mod transport;
pub mod watch_loop;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use openraft::raft::AppendEntriesResponse;
use openraft::ServerState;
use rover_election::group::ClusterStamp;
use rover_election::ledger::{Applied, Incident, LeaderMode, Ledger, LedgerCommand, Notification};
use rover_election::network::{serve, RaftReply, RaftRequest};
use rover_election::state_machine::LedgerReader;
use rover_membership::runtime::unix_ms;
use rover_membership::Keyring;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use self::fallback::SideLedgers;
use self::node::RaftNode;
use self::transport::{Directory, RequestStamp};
use crate::peer::{PeerConnection, PeerMessage, EXCHANGE_TIMEOUT};

/// A leader that heard from a quorum within this long holds the lease; a follower that got
/// entries from a lease holder within this long counts that leader as present.
pub const LEASE_MS: u64 = 3_000;

/// A Raft write that has not committed after this long fails: the leader lost its quorum.
pub const RAFT_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// How the group and the fallback behave.
#[derive(Debug, Clone)]
pub struct LeadershipSettings {
    /// This node's name.
    pub name: String,
    /// This node's Raft id (from the node key).
    pub node_id: u64,
    /// The team (the Raft cluster name).
    pub team: String,
    /// Whether this node may start a group of its own (standalone, no `--join`).
    pub bootstrap: bool,
    /// At most this many voters.
    pub max_voters: usize,
    /// A member failed for this long leaves the group.
    pub voter_reap_after: Duration,
    /// Without a Raft leader for this long, a partition falls back.
    pub fallback_after: Duration,
}

/// What `leader` and `info` show.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderStatus {
    /// `raft`, `fallback` or `none`.
    pub mode: String,
    /// The leader's name, if there is one.
    pub leader: Option<String>,
    /// Whether this node is the leader.
    pub is_me: bool,
    /// The Raft term this node knows.
    pub term: u64,
    /// Since when (unix ms) mode and leader have been what they are.
    pub stable_since_ms: u64,
    /// Voters of the group, by name.
    pub voters: Vec<String>,
    /// Learners of the group, by name.
    pub learners: Vec<String>,
    /// This node's Raft state (`leader`, `follower`, `candidate`, `learner`).
    pub raft_state: String,
    /// The group id (hex), if this node is in a group.
    pub cluster_id: Option<String>,
    /// This node's Raft id (hex).
    pub node_id: String,
    /// Ledger commands waiting to be merged into the Raft ledger.
    pub pending_merge: usize,
}

/// The ledger as this node sees it, for the API.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LedgerView {
    /// Incidents of the Raft ledger.
    pub incidents: Vec<Incident>,
    /// Notification records of the Raft ledger.
    pub notifications: Vec<Notification>,
    /// Incidents recorded while this node led a partition without quorum, not merged yet.
    pub fallback_incidents: Vec<Incident>,
}

/// State shared by the owner task, the cluster-port server and the API.
pub(crate) struct Shared {
    settings: LeadershipSettings,
    node: RwLock<Option<RaftNode>>,
    directory: Directory,
    keyring: RwLock<Keyring>,
    confirmed_at_ms: AtomicU64,
    /// Whether the last tick saw a Raft leader of this node's group (mode `raft`).
    raft_led: AtomicBool,
    side: tokio::sync::Mutex<SideLedgers>,
}

impl Shared {
    fn current(&self) -> Option<RaftNode> {
        self.node.read().ok()?.clone()
    }

    fn stamp(&self) -> Option<ClusterStamp> {
        let node = self.current()?;
        let size = node
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .nodes()
            .count();
        Some(ClusterStamp {
            id: node.cluster?,
            size: u32::try_from(size).unwrap_or(u32::MAX),
            led: self.raft_led.load(Ordering::Relaxed),
        })
    }

    fn confirm_leader_now(&self) {
        self.confirmed_at_ms.store(unix_ms(), Ordering::Relaxed);
    }
}

impl RequestStamp for Shared {
    fn cluster(&self) -> u64 {
        self.current().and_then(|n| n.cluster).unwrap_or(0)
    }

    fn lease(&self) -> bool {
        self.current()
            .is_some_and(|n| holds_lease(&n.raft.metrics().borrow()))
    }

    fn keyring(&self) -> Keyring {
        match self.keyring.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// Whether these metrics are those of a leader that heard from a quorum within the lease (a
/// group of one always has).
fn holds_lease(metrics: &openraft::RaftMetrics<u64, openraft::BasicNode>) -> bool {
    if metrics.state != ServerState::Leader {
        return false;
    }
    let alone = metrics.membership_config.membership().voter_ids().count() == 1;
    alone
        || metrics
            .millis_since_quorum_ack
            .is_some_and(|ms| ms < LEASE_MS)
}

/// A request to the owner task: yield to a bigger group.
pub(crate) struct AdoptRequest {
    theirs: ClusterStamp,
    reply: oneshot::Sender<bool>,
}

/// Cheap handle to the leadership of this agent.
#[derive(Clone)]
pub struct LeadershipHandle {
    shared: Arc<Shared>,
    adopt: mpsc::Sender<AdoptRequest>,
    status: watch::Receiver<LeaderStatus>,
}

impl std::fmt::Debug for LeadershipHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeadershipHandle")
            .field("status", &*self.status.borrow())
            .finish_non_exhaustive()
    }
}

impl LeadershipHandle {
    /// The latest status.
    pub fn status(&self) -> LeaderStatus {
        self.status.borrow().clone()
    }

    /// The status as it changes (the incident engine waits on it).
    pub fn status_changes(&self) -> watch::Receiver<LeaderStatus> {
        self.status.clone()
    }

    /// A reader of the Raft ledger applied here, which can wait for it to change; `None`
    /// without a Raft node. The node is replaced when its group yields: a reader of the old
    /// one then reports that its machine stopped.
    pub fn applied_ledger(&self) -> Option<LedgerReader> {
        self.shared.current().map(|n| n.reader)
    }

    /// Answers a Raft RPC from a peer of group `cluster` for the node `target`. An RPC for
    /// another node id (the one this host had before its database was lost) is refused like
    /// one of another group, so the leader greets this host and learns its new id.
    pub async fn serve_raft(
        &self,
        cluster: u64,
        target: u64,
        lease: bool,
        request: RaftRequest,
    ) -> PeerMessage {
        let node = self.shared.current();
        let for_me = target == self.shared.settings.node_id;
        let Some(node) = node.filter(|n| for_me && n.cluster == Some(cluster)) else {
            return PeerMessage::RaftRefused(self.shared.stamp());
        };
        let reply = serve(&node.raft, request).await;
        if let RaftReply::AppendEntries(Ok(answer)) = &reply {
            let accepted = matches!(
                answer,
                AppendEntriesResponse::Success
                    | AppendEntriesResponse::PartialSuccess(_)
                    | AppendEntriesResponse::Conflict
            );
            if lease && accepted {
                self.shared.confirm_leader_now();
            }
        }
        PeerMessage::RaftAnswer(reply)
    }

    /// Who this node is, for a leader that wants to add it.
    pub fn hello(&self) -> PeerMessage {
        PeerMessage::GroupHelloAnswer {
            node_id: self.shared.settings.node_id,
            name: self.shared.settings.name.clone(),
            cluster: self.shared.stamp(),
        }
    }

    /// Yields to group `theirs` if it should (see `rover_election::group::should_yield`);
    /// true when this node now belongs to that group.
    pub async fn adopt(&self, theirs: ClusterStamp) -> bool {
        let (reply, answer) = oneshot::channel();
        if self
            .adopt
            .send(AdoptRequest { theirs, reply })
            .await
            .is_err()
        {
            return false;
        }
        answer.await.unwrap_or(false)
    }

    /// Applies ledger commands here, as this partition's leader (Raft or fallback), and says
    /// what each did. A Raft write that does not commit within [`RAFT_WRITE_TIMEOUT`] fails
    /// (the leader lost its quorum).
    pub async fn write_here(&self, commands: Vec<LedgerCommand>) -> Result<Vec<Applied>> {
        let status = self.status();
        if !status.is_me {
            bail!(
                "not the leader (the leader is {})",
                status.leader.as_deref().unwrap_or("unknown")
            );
        }
        if status.mode == "fallback" {
            let base = self.raft_ledger();
            return self
                .shared
                .side
                .lock()
                .await
                .apply_fallback(&commands, &base);
        }
        let node = self
            .shared
            .current()
            .ok_or_else(|| anyhow!("no raft node"))?;
        let mut applied = Vec::with_capacity(commands.len());
        for command in commands {
            let response =
                tokio::time::timeout(RAFT_WRITE_TIMEOUT, node.raft.client_write(command))
                    .await
                    .map_err(|_| {
                        anyhow!("the raft group did not commit within {RAFT_WRITE_TIMEOUT:?}")
                    })?
                    .map_err(|e| anyhow!("the raft group did not commit: {e}"))?;
            applied.push(response.data);
        }
        Ok(applied)
    }

    /// The ledger this node writes to while it leads, and how it leads: the Raft ledger as
    /// Raft leader, the fallback ledger as fallback leader. `None` when it does not lead.
    pub async fn leading_ledger(&self) -> Option<(LeaderMode, Arc<Ledger>)> {
        let status = self.status();
        if !status.is_me {
            return None;
        }
        match status.mode.as_str() {
            "raft" => {
                // What this node recorded as fallback leader must be in the Raft ledger
                // before it works from that ledger, or it would announce it again.
                let side = self.shared.side.lock().await;
                if side.pending_len() > 0 || side.fallback().incidents().next().is_some() {
                    return None;
                }
                Some((LeaderMode::Raft, self.shared.current()?.reader.ledger()))
            }
            "fallback" => {
                let base = self.raft_ledger();
                let side = self.shared.side.lock().await;
                Some((LeaderMode::Fallback, Arc::new(side.fallback().over(&base))))
            }
            _ => None,
        }
    }

    /// Records the outcomes of notifications this node intended while leading in `mode`, in the
    /// ledger that holds those intents: a fallback intent is completed in the fallback ledger,
    /// or after it in the pending merge if that ledger was already handed over; anything else
    /// goes through the partition's leader (which may have changed during the send).
    pub async fn record_outcomes(
        &self,
        mode: LeaderMode,
        commands: Vec<LedgerCommand>,
    ) -> Result<()> {
        if commands.is_empty() {
            return Ok(());
        }
        if mode == LeaderMode::Fallback {
            let mut side = self.shared.side.lock().await;
            if side.fallback().notifications().next().is_some() {
                side.apply_fallback(&commands, &self.raft_ledger())?;
                return Ok(());
            }
            if side.pending_len() > 0 {
                return side.add_pending(commands);
            }
        }
        self.write(commands).await
    }

    /// Applies ledger commands through this partition's leader, wherever it is.
    pub async fn write(&self, commands: Vec<LedgerCommand>) -> Result<()> {
        let status = self.status();
        if status.is_me {
            return self.write_here(commands).await.map(drop);
        }
        let leader = status
            .leader
            .ok_or_else(|| anyhow!("no leader in this partition yet"))?;
        let addr = self
            .shared
            .directory
            .get(&leader)
            .ok_or_else(|| anyhow!("no address known for the leader {leader}"))?;
        let mut connection = PeerConnection::connect(addr, self.shared.keyring()).await?;
        match connection
            .ask(&PeerMessage::LedgerWrite(commands), EXCHANGE_TIMEOUT)
            .await?
        {
            PeerMessage::LedgerWriteAnswer(None) => Ok(()),
            PeerMessage::LedgerWriteAnswer(Some(error)) => Err(anyhow!("{leader}: {error}")),
            _ => Err(anyhow!("{leader} answered with an unexpected message")),
        }
    }

    /// Stops the Raft node (at shutdown).
    pub async fn shutdown(&self) {
        if let Some(node) = self.shared.current() {
            let _ = node.raft.shutdown().await;
        }
    }

    /// This node's copy of the Raft ledger (as applied here; empty without a Raft node).
    fn raft_ledger(&self) -> Arc<Ledger> {
        self.shared
            .current()
            .map(|n| n.reader.ledger())
            .unwrap_or_default()
    }

    /// The Raft ledger as applied here, and this node's unmerged fallback incidents.
    pub async fn ledger(&self) -> LedgerView {
        let ledger = self
            .shared
            .current()
            .map(|n| n.reader.ledger())
            .unwrap_or_default();
        let side = self.shared.side.lock().await;
        LedgerView {
            incidents: ledger.incidents().cloned().collect(),
            notifications: ledger.notifications().cloned().collect(),
            fallback_incidents: side.fallback().incidents().cloned().collect(),
        }
    }
}

pub use self::watch_loop::spawn;
