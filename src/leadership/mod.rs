//! Leadership: the Raft group of the notification ledger on this agent, the fallback leader of
//! a partition without quorum, and what `leader` and `info` show.
//!
//! One owner task ([`owner`]) holds the state: the Raft node (published on a watch), the side
//! ledgers ([`fallback`]), the SWIM view it last read, and the decisions made from them. It is
//! fed by an [`owner::Input`] enum (requests answered by oneshot, and reports of the work it
//! spawned) and wakes on the Raft metrics watch, on membership changes and on its own
//! deadlines, never on a polling tick. Peer RPCs (greetings, membership changes, merges) run in
//! spawned tasks that report back, so a slow peer never stalls it.
//!
//! - [`node`] runs the openraft node on the sled trees; [`transport`] carries its RPCs over
//!   the sealed cluster port.
//! - [`lease`] keeps when a leader was last heard, on a monotonic clock. A follower counts the
//!   Raft leader as present only while that leader's heartbeats say it heard from a quorum
//!   recently (the `lease` flag of our RPC frame): a leader cut off with a minority stops
//!   counting, so the minority falls back instead of waiting on it forever.
//! - Elections are gated by SWIM (`rover_election::group::election_gate`): a voter that cannot
//!   see a majority of the voters never calls one, so a healed partition never deposes the
//!   majority's leader with an inflated term.
//! - A Raft node that openraft stopped on a storage error is started again once a probe write
//!   through the same storage succeeds (with backoff), so the node is a voter again without a
//!   restart of the agent.

pub mod fallback;
mod gate;
mod leader_duties;
pub mod lease;
mod mode;
pub mod node;
pub mod owner;
mod pre_vote;
mod recovery;
mod side_work;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::raft::AppendEntriesResponse;
use openraft::{BasicNode, ServerState};
use rover_election::group::ClusterStamp;
use rover_election::ledger::{Applied, Incident, LeaderMode, Ledger, LedgerCommand, Notification};
use rover_election::network::{serve, RaftReply, RaftRequest};
use rover_election::state_machine::LedgerReader;
use rover_membership::MembershipHandle;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use self::lease::LeaderContact;
use self::node::RaftNode;
use self::owner::Input;
use self::transport::Directory;
use crate::peer::{PeerConnection, PeerMessage, EXCHANGE_TIMEOUT};

pub use self::owner::spawn;

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
    /// A leader SWIM still lists alive blocks elections until it has been silent this long
    /// (longer than SWIM takes to declare a cut-off member failed).
    pub silent_leader_after: Duration,
}

/// How this node's partition is led, as `leader` and `info` show it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A Raft leader with a quorum leads.
    Raft,
    /// No Raft leader for `fallback_after`: the partition's fallback leader leads.
    Fallback,
    /// Nobody leads yet.
    #[default]
    #[serde(rename = "none")]
    Waiting,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Raft => "raft",
            Self::Fallback => "fallback",
            Self::Waiting => "none",
        })
    }
}

impl Mode {
    /// How a leader in this mode records what it does, if anyone leads.
    pub fn leading(self) -> Option<LeaderMode> {
        match self {
            Self::Raft => Some(LeaderMode::Raft),
            Self::Fallback => Some(LeaderMode::Fallback),
            Self::Waiting => None,
        }
    }
}

/// What `leader` and `info` show.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderStatus {
    /// `raft`, `fallback` or `none`.
    pub mode: Mode,
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
    /// This node's Raft state (`leader`, `follower`, `candidate`, `learner`, or `stopped`
    /// while the node waits for its storage to work again).
    pub raft_state: String,
    /// The group id (hex), if this node is in a group.
    pub cluster_id: Option<String>,
    /// This node's Raft id (hex).
    pub node_id: String,
    /// Ledger commands waiting to be merged into the Raft ledger.
    pub pending_merge: usize,
    /// Incidents in this node's fallback ledger, not handed over yet.
    #[serde(default)]
    pub fallback_incidents: usize,
    /// Why this node may not call a Raft election now (`None`: it may, or it is no voter).
    #[serde(default)]
    pub elections_held: Option<String>,
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

/// Why a ledger write or read did not happen. Each variant says what it did to the ledger.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeadershipError {
    /// Nothing was written: this node does not lead (`leader` does, if known).
    #[error("{}", not_leader(leader.as_deref()))]
    NotLeader {
        /// The leader of this partition, if there is one.
        leader: Option<String>,
    },
    /// The Raft group did not commit within [`RAFT_WRITE_TIMEOUT`] (the leader lost its
    /// quorum): the write may still commit later, or never.
    #[error("the raft group did not commit within {RAFT_WRITE_TIMEOUT:?}: no quorum")]
    NoQuorum,
    /// Forwarding to the leader failed before it answered: the write may or may not have
    /// been applied there.
    #[error("the leader {leader} is unreachable: {reason}")]
    Unreachable {
        /// The leader asked.
        leader: String,
        /// What failed.
        reason: String,
    },
    /// The leader answered that it did not apply the write.
    #[error("{leader}: {reason}")]
    Refused {
        /// The leader asked.
        leader: String,
        /// Its answer.
        reason: String,
    },
    /// Nothing was written and nothing can be here until this is fixed: the Raft node is
    /// stopped (storage) or the side ledger could not be stored or the task is gone.
    #[error("{0}")]
    Fatal(String),
}

fn not_leader(leader: Option<&str>) -> String {
    match leader {
        Some(leader) => format!("not the leader (the leader is {leader})"),
        None => "no leader in this partition yet".to_owned(),
    }
}

impl LeadershipError {
    fn stopped() -> Self {
        Self::Fatal("the leadership task has stopped".into())
    }
}

/// Whether these metrics are those of a leader that heard from a quorum within the lease (a
/// group of one always has).
fn holds_lease(metrics: &openraft::RaftMetrics<u64, BasicNode>) -> bool {
    if metrics.state != ServerState::Leader || metrics.running_state.is_err() {
        return false;
    }
    let alone = metrics.membership_config.membership().voter_ids().count() == 1;
    alone
        || metrics
            .millis_since_quorum_ack
            .is_some_and(|ms| ms < LEASE_MS)
}

/// What the transport stamps on requests, read from the published node.
struct NodeStamp(watch::Receiver<Option<RaftNode>>);

impl transport::RequestStamp for NodeStamp {
    fn cluster(&self) -> u64 {
        self.0
            .borrow()
            .as_ref()
            .and_then(|n| n.cluster)
            .unwrap_or(0)
    }

    fn lease(&self) -> bool {
        self.0
            .borrow()
            .as_ref()
            .is_some_and(|n| holds_lease(&n.raft.metrics().borrow()))
    }
}

/// Writes through this partition's leader: the Raft node here, or the leader over the
/// cluster port. Used by the handle and by the owner's merges (in a spawned task).
#[derive(Clone)]
struct Writer {
    status: watch::Receiver<LeaderStatus>,
    node: watch::Receiver<Option<RaftNode>>,
    directory: Directory,
    membership: MembershipHandle,
}

impl Writer {
    /// Commits `commands` one by one through the Raft node here.
    async fn raft(&self, commands: Vec<LedgerCommand>) -> Result<Vec<Applied>, LeadershipError> {
        let node = self
            .node
            .borrow()
            .clone()
            .ok_or_else(|| LeadershipError::Fatal("the raft node is not running".into()))?;
        let mut applied = Vec::with_capacity(commands.len());
        for command in commands {
            let response =
                tokio::time::timeout(RAFT_WRITE_TIMEOUT, node.raft.client_write(command))
                    .await
                    .map_err(|_| LeadershipError::NoQuorum)?
                    .map_err(client_write_error)?;
            applied.push(response.data);
        }
        Ok(applied)
    }

    /// Asks `leader` over the cluster port to apply `commands`.
    async fn forward(
        &self,
        leader: &str,
        commands: Vec<LedgerCommand>,
    ) -> Result<(), LeadershipError> {
        let unreachable = |reason: String| LeadershipError::Unreachable {
            leader: leader.to_owned(),
            reason,
        };
        let addr = self
            .directory
            .get(leader)
            .ok_or_else(|| unreachable("no address known".into()))?;
        let keyring = self
            .membership
            .status()
            .await
            .map_err(|e| unreachable(e.to_string()))?
            .keyring;
        let mut connection = PeerConnection::connect(addr, keyring)
            .await
            .map_err(|e| unreachable(format!("{e:#}")))?;
        match connection
            .ask(&PeerMessage::LedgerWrite(commands), EXCHANGE_TIMEOUT)
            .await
            .map_err(|e| unreachable(format!("{e:#}")))?
        {
            PeerMessage::LedgerWriteAnswer(None) => Ok(()),
            PeerMessage::LedgerWriteAnswer(Some(reason)) => Err(LeadershipError::Refused {
                leader: leader.to_owned(),
                reason,
            }),
            _ => Err(unreachable("answered with an unexpected message".into())),
        }
    }
}

fn client_write_error(error: RaftError<u64, ClientWriteError<u64, BasicNode>>) -> LeadershipError {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => {
            LeadershipError::NotLeader {
                leader: forward.leader_node.map(|n| n.addr),
            }
        }
        RaftError::APIError(other) => LeadershipError::Fatal(other.to_string()),
        RaftError::Fatal(fatal) => {
            LeadershipError::Fatal(format!("the raft node stopped: {fatal}"))
        }
    }
}

/// Cheap handle to the leadership of this agent.
#[derive(Clone)]
pub struct LeadershipHandle {
    inputs: mpsc::Sender<Input>,
    writer: Writer,
    contact: Arc<LeaderContact>,
    node_id: u64,
    name: Arc<str>,
}

impl std::fmt::Debug for LeadershipHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeadershipHandle")
            .field("status", &*self.writer.status.borrow())
            .finish_non_exhaustive()
    }
}

impl LeadershipHandle {
    /// The latest status.
    pub fn status(&self) -> LeaderStatus {
        self.writer.status.borrow().clone()
    }

    /// The status as a watch: changes whenever mode, leader, group or side ledgers change.
    pub fn watch_status(&self) -> watch::Receiver<LeaderStatus> {
        self.writer.status.clone()
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Input,
    ) -> Result<T, LeadershipError> {
        let (reply, answer) = oneshot::channel();
        self.inputs
            .send(make(reply))
            .await
            .map_err(|_| LeadershipError::stopped())?;
        answer.await.map_err(|_| LeadershipError::stopped())
    }

    /// A reader of the Raft ledger applied here, which can wait for it to change; `None`
    /// without a Raft node. The node is replaced when its group yields: a reader of the old
    /// one then reports that its machine stopped.
    pub fn applied_ledger(&self) -> Option<LedgerReader> {
        self.writer.node.borrow().as_ref().map(|n| n.reader.clone())
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
        let node = self.writer.node.borrow().clone();
        let for_me = target == self.node_id;
        let Some(node) = node.filter(|n| for_me && n.cluster == Some(cluster)) else {
            return PeerMessage::RaftRefused(self.stamp());
        };
        let reply = serve(&node.raft, request).await;
        if let RaftReply::AppendEntries(Ok(answer)) = &reply {
            let accepted = matches!(
                answer,
                AppendEntriesResponse::Success
                    | AppendEntriesResponse::PartialSuccess(_)
                    | AppendEntriesResponse::Conflict
            );
            if accepted && self.contact.note_entries(lease) {
                // The leader is back after a silence: the owner looks now, not at a deadline.
                let _ = self.inputs.try_send(Input::ContactResumed);
            }
        }
        PeerMessage::RaftAnswer(reply)
    }

    fn stamp(&self) -> Option<ClusterStamp> {
        let node = self.writer.node.borrow().clone()?;
        node.stamp(self.writer.status.borrow().mode == Mode::Raft)
    }

    /// Who this node is, for a leader that wants to add it.
    pub fn hello(&self) -> PeerMessage {
        PeerMessage::GroupHelloAnswer {
            node_id: self.node_id,
            name: self.name.to_string(),
            cluster: self.stamp(),
        }
    }

    /// Yields to group `theirs` if it should (see `rover_election::group::should_yield`);
    /// true when this node now belongs to that group.
    pub async fn adopt(&self, theirs: ClusterStamp) -> bool {
        self.ask(|reply| Input::Adopt { theirs, reply })
            .await
            .unwrap_or(false)
    }

    /// Applies ledger commands here, as this partition's leader (Raft or fallback), and says
    /// what each did. A Raft write that does not commit within [`RAFT_WRITE_TIMEOUT`] fails
    /// with [`LeadershipError::NoQuorum`].
    pub async fn write_here(
        &self,
        commands: Vec<LedgerCommand>,
    ) -> Result<Vec<Applied>, LeadershipError> {
        let status = self.status();
        if !status.is_me {
            return Err(LeadershipError::NotLeader {
                leader: status.leader,
            });
        }
        match status.mode {
            Mode::Fallback => {
                self.ask(|reply| Input::WriteFallback { commands, reply })
                    .await?
            }
            Mode::Raft | Mode::Waiting => self.writer.raft(commands).await,
        }
    }

    /// The ledger this node writes to while it leads, and how it leads: the Raft ledger as
    /// Raft leader, the fallback ledger as fallback leader. `None` when it does not lead.
    pub async fn leading_ledger(&self) -> Option<(LeaderMode, Arc<Ledger>)> {
        let status = self.status();
        if !status.is_me {
            return None;
        }
        match status.mode {
            // What this node recorded as fallback leader must be in the Raft ledger before it
            // works from that ledger, or it would announce it again.
            Mode::Raft if status.pending_merge == 0 && status.fallback_incidents == 0 => {
                let node = self.writer.node.borrow().clone()?;
                Some((LeaderMode::Raft, node.reader.ledger()))
            }
            Mode::Fallback => self
                .ask(|reply| Input::LeadingLedger { reply })
                .await
                .ok()
                .flatten(),
            Mode::Raft | Mode::Waiting => None,
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
    ) -> Result<(), LeadershipError> {
        if commands.is_empty() {
            return Ok(());
        }
        if mode == LeaderMode::Fallback {
            let (commands, kept) = self
                .ask(|reply| Input::RecordFallbackOutcomes { commands, reply })
                .await??;
            if kept {
                return Ok(());
            }
            return self.write(commands).await;
        }
        self.write(commands).await
    }

    /// Applies ledger commands through this partition's leader, wherever it is.
    pub async fn write(&self, commands: Vec<LedgerCommand>) -> Result<(), LeadershipError> {
        let status = self.status();
        if status.is_me {
            return self.write_here(commands).await.map(drop);
        }
        let leader = status
            .leader
            .ok_or(LeadershipError::NotLeader { leader: None })?;
        self.writer.forward(&leader, commands).await
    }

    /// The Raft ledger as applied here, and this node's unmerged fallback incidents.
    pub async fn ledger(&self) -> LedgerView {
        let ledger = self
            .writer
            .node
            .borrow()
            .as_ref()
            .map(|n| n.reader.ledger())
            .unwrap_or_default();
        let fallback_incidents = self
            .ask(|reply| Input::FallbackIncidents { reply })
            .await
            .unwrap_or_default();
        LedgerView {
            incidents: ledger.incidents().cloned().collect(),
            notifications: ledger.notifications().cloned().collect(),
            fallback_incidents,
        }
    }
}
