//! The leadership owner task: it alone holds the Raft node (publishing it on a watch), the
//! side ledgers and the SWIM view it decides from. After every input, metrics change,
//! membership change or deadline it [`Owner::evaluate`]s:
//!
//! 1. reads the Raft metrics and the lease, and decides the mode with
//!    `rover_election::policy::leadership`; publishes the [`LeaderStatus`] if it changed;
//! 2. opens or closes Raft elections with `rover_election::group::election_gate` and, once
//!    that gate is open, a pre-vote of the other voters;
//! 3. once a Raft leader is back, hands the fallback ledger and any pending merge to it;
//! 4. as Raft leader: makes the group follow SWIM ([`super::leader_duties`]);
//! 5. notices a Raft node that openraft stopped (a storage error) and starts it again once a
//!    storage probe succeeds, with backoff;
//! 6. computes its next deadline (lease expiry, fallback due, greetings due, retries).
//!
//! The steps live beside this file: `mode` (1), `gate` and `pre_vote` (2), `side_work` (3), `leader_duties`
//! (4) and `recovery` (5), each an `impl Owner` block.
//!
//! Work that talks to peers or waits on a commit (greetings, membership changes, merges, the
//! restart) runs in spawned tasks that report back as an [`Input`]. Only a yield to a bigger
//! group (rare, bounded by [`YIELD_TIMEOUT`]) is awaited here, since it replaces the node.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use openraft::{BasicNode, RaftMetrics};
use rover_election::group::{should_yield, ClusterStamp, ElectionGate};
use rover_election::ledger::{Applied, Incident, LeaderMode, Ledger, LedgerCommand};
use rover_election::policy::LeadershipMode;
use rover_membership::runtime::unix_ms;
use rover_membership::{MemberInfo, MembershipHandle};
use rover_storage::Storage;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::fallback::SideLedgers;
use super::lease::LeaderContact;
use super::node::{Disk, RaftNode};
use super::transport::{Directory, PeerTransport};
use super::{
    LeaderStatus, LeadershipError, LeadershipHandle, LeadershipSettings, Mode, NodeStamp, Writer,
};

/// A yield to a bigger group (stop the node, clear it, start it empty) gives up after this.
pub const YIELD_TIMEOUT: Duration = Duration::from_secs(15);
/// As Raft leader, the SWIM view is read again at least this often (reaping needs the time
/// members have been failed; suspicions are not events).
const LEADER_REFRESH_MS: u64 = 5_000;

/// What the owner task is asked, or told by the work it spawned.
pub enum Input {
    /// Yield to group `theirs` if ours should; answers whether this node is now in theirs.
    Adopt {
        /// The other group.
        theirs: ClusterStamp,
        /// The answer.
        reply: oneshot::Sender<bool>,
    },
    /// Apply commands to the fallback ledger (this node leads a partition without quorum).
    WriteFallback {
        /// The commands.
        commands: Vec<LedgerCommand>,
        /// What each did.
        reply: oneshot::Sender<Result<Vec<Applied>, LeadershipError>>,
    },
    /// The fallback ledger over this node's copy of the Raft ledger, if it leads as fallback.
    LeadingLedger {
        /// The answer.
        reply: oneshot::Sender<Option<(LeaderMode, Arc<Ledger>)>>,
    },
    /// Record outcomes of fallback intents where those intents are: answers `true` if kept in
    /// the fallback ledger or the pending merge, else gives the commands back to be written
    /// through the partition's leader.
    RecordFallbackOutcomes {
        /// The outcome commands.
        commands: Vec<LedgerCommand>,
        /// The commands, and whether they were kept here.
        reply: oneshot::Sender<Result<(Vec<LedgerCommand>, bool), LeadershipError>>,
    },
    /// The incidents of the fallback ledger.
    FallbackIncidents {
        /// The answer.
        reply: oneshot::Sender<Vec<Incident>>,
    },
    /// A lease holder's entries arrived after a silence.
    ContactResumed,
    /// A greeting finished: the member's node id (`None`: it is in a bigger group, left
    /// alone), or why not.
    Greeted {
        /// The member.
        name: String,
        /// Its node id.
        result: Result<Option<u64>, String>,
    },
    /// A group membership change finished.
    ChangeDone(Result<(), String>),
    /// A merge of side ledgers finished: how many pending commands it carried.
    MergeDone {
        /// Pending commands merged.
        count: usize,
        /// Whether the leader applied them.
        result: Result<(), String>,
    },
    /// A restart of the stopped Raft node finished.
    Restarted(Result<RaftNode, String>),
    /// A pre-vote round ended (see [`super::pre_vote`]).
    PreVoteDone {
        /// The term it asked to campaign in.
        term: u64,
        /// Grants, our own included.
        granted: usize,
        /// Voters in all.
        voters: usize,
    },
}

/// Starts the Raft node (bootstrapping a group of one when allowed); returns the handle and
/// the owner task, to run until `cancel` (then it stops the Raft node).
pub async fn spawn(
    settings: LeadershipSettings,
    storage: Storage,
    membership: MembershipHandle,
    members_changed: watch::Receiver<u64>,
    cancel: CancellationToken,
) -> Result<(
    LeadershipHandle,
    impl std::future::Future<Output = ()> + Send,
)> {
    let (node_tx, node_rx) = watch::channel(None::<RaftNode>);
    let directory = Directory::default();
    let transport = PeerTransport::new(
        directory.clone(),
        Arc::new(NodeStamp(node_rx.clone())),
        membership.clone(),
    );
    let disk = Disk::new(storage.raft());
    let mut node = RaftNode::start(
        settings.node_id,
        &settings.team,
        disk.clone(),
        transport.clone(),
    )
    .await?;
    if node.cluster.is_none() && settings.bootstrap && !node.is_initialized().await {
        node.bootstrap(settings.node_id, &settings.name, &disk)
            .await?;
    }
    let side = SideLedgers::load(storage)?;
    let (status_tx, status_rx) = watch::channel(LeaderStatus {
        node_id: format!("{:016x}", settings.node_id),
        pending_merge: side.pending_len(),
        fallback_incidents: side.fallback().incidents().count(),
        ..LeaderStatus::default()
    });
    let (inputs_tx, inputs) = mpsc::channel(64);
    let contact = Arc::new(LeaderContact::new());
    let writer = Writer {
        status: status_rx,
        node: node_rx,
        directory: directory.clone(),
        membership: membership.clone(),
    };
    let handle = LeadershipHandle {
        inputs: inputs_tx.clone(),
        writer: writer.clone(),
        contact: contact.clone(),
        node_id: settings.node_id,
        name: Arc::from(settings.name.as_str()),
    };
    let mut owner = Owner {
        settings,
        membership,
        members_changed,
        disk,
        transport,
        directory,
        contact,
        writer,
        reports: inputs_tx,
        node_tx,
        metrics: None,
        status_tx,
        side,
        members: BTreeMap::new(),
        heard_ms: 0,
        followed: None,
        leader_visible_since: None,
        elections_open: None,
        gate: ElectionGate::NotVoter,
        pre_vote: Default::default(),
        stable: (Mode::Waiting, None, unix_ms()),
        duties: Default::default(),
        merging: false,
        merge_retry_ms: None,
        restart: None,
        wake_ms: None,
    };
    owner.set_node(node);
    Ok((handle, owner.run(inputs, cancel)))
}

pub(super) struct Owner {
    pub(super) settings: LeadershipSettings,
    pub(super) membership: MembershipHandle,
    pub(super) members_changed: watch::Receiver<u64>,
    pub(super) disk: Disk,
    pub(super) transport: PeerTransport,
    pub(super) directory: Directory,
    pub(super) contact: Arc<LeaderContact>,
    pub(super) writer: Writer,
    /// Where spawned work reports back (the owner's own input channel).
    pub(super) reports: mpsc::Sender<Input>,
    pub(super) node_tx: watch::Sender<Option<RaftNode>>,
    pub(super) metrics: Option<watch::Receiver<RaftMetrics<u64, BasicNode>>>,
    pub(super) status_tx: watch::Sender<LeaderStatus>,
    pub(super) side: SideLedgers,
    /// The SWIM view as last read: one entry per name, the newest generation.
    pub(super) members: BTreeMap<String, MemberInfo>,
    /// When (monotonic ms) a Raft leader was last heard or this node last joined a group: the
    /// fallback clock.
    pub(super) heard_ms: u64,
    /// The leader this node last followed.
    pub(super) followed: Option<String>,
    /// The leader the election gate watches, and since when (monotonic ms) SWIM shows it.
    pub(super) leader_visible_since: Option<(String, u64)>,
    pub(super) elections_open: Option<bool>,
    pub(super) gate: ElectionGate,
    pub(super) pre_vote: super::pre_vote::PreVoteState,
    /// (mode, leader, since when in unix ms), for `stable_since_ms` and for logging changes.
    pub(super) stable: (Mode, Option<String>, u64),
    pub(super) duties: super::leader_duties::Duties,
    pub(super) merging: bool,
    pub(super) merge_retry_ms: Option<u64>,
    pub(super) restart: Option<super::recovery::Restart>,
    /// The earliest deadline noted by the last evaluation (monotonic ms).
    pub(super) wake_ms: Option<u64>,
}

/// One evaluation's reading of the Raft node.
pub(super) struct Reading {
    pub(super) metrics: RaftMetrics<u64, BasicNode>,
    /// Node id to name, from the group's membership.
    pub(super) names: BTreeMap<u64, String>,
}

impl Owner {
    async fn run(mut self, mut inputs: mpsc::Receiver<Input>, cancel: CancellationToken) {
        self.refresh_members().await;
        self.evaluate();
        loop {
            let wake = self.wake_ms.map(|ms| {
                let now = self.contact.now_ms();
                tokio::time::Instant::now() + Duration::from_millis(ms.saturating_sub(now))
            });
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                Some(input) = inputs.recv() => self.handle(input).await,
                changed = metrics_changed(&mut self.metrics) => {
                    if changed.is_err() {
                        self.metrics = None;
                    }
                }
                Ok(()) = self.members_changed.changed() => self.refresh_members().await,
                () = sleep_until(wake) => self.refresh_members().await,
            }
            self.evaluate();
        }
        if let Some(node) = self.node_tx.send_replace(None) {
            let _ = node.raft.shutdown().await;
        }
    }

    pub(super) fn node(&self) -> Option<RaftNode> {
        self.node_tx.borrow().clone()
    }

    /// The published node, for spawned work that must check it is still current.
    pub(super) fn node_watch(&self) -> watch::Receiver<Option<RaftNode>> {
        self.node_tx.subscribe()
    }

    pub(super) fn membership_handle(&self) -> MembershipHandle {
        self.membership.clone()
    }

    pub(super) fn now_ms(&self) -> u64 {
        self.contact.now_ms()
    }

    pub(super) fn set_node(&mut self, node: RaftNode) {
        self.metrics = Some(node.raft.metrics());
        self.elections_open = None;
        self.node_tx.send_replace(Some(node));
    }

    async fn handle(&mut self, input: Input) {
        match input {
            Input::Adopt { theirs, reply } => {
                let adopted = self.adopt(theirs).await;
                let _ = reply.send(adopted);
            }
            Input::WriteFallback { commands, reply } => {
                let _ = reply.send(self.write_fallback(&commands));
            }
            Input::LeadingLedger { reply } => {
                let status = self.status_tx.borrow().clone();
                let ledger = (status.is_me && status.mode == Mode::Fallback).then(|| {
                    (
                        LeaderMode::Fallback,
                        Arc::new(self.side.fallback().over(&self.raft_ledger())),
                    )
                });
                let _ = reply.send(ledger);
            }
            Input::RecordFallbackOutcomes { commands, reply } => {
                let _ = reply.send(self.record_fallback_outcomes(commands));
            }
            Input::FallbackIncidents { reply } => {
                let _ = reply.send(self.side.fallback().incidents().cloned().collect());
            }
            Input::ContactResumed => {}
            Input::Greeted { name, result } => self.greeted(name, result),
            Input::ChangeDone(result) => self.change_done(result),
            Input::MergeDone { count, result } => self.merge_done(count, result),
            Input::Restarted(result) => self.restarted(result),
            Input::PreVoteDone {
                term,
                granted,
                voters,
            } => self.pre_vote_done(term, granted, voters),
        }
    }

    pub(super) fn raft_ledger(&self) -> Arc<Ledger> {
        self.node().map(|n| n.reader.ledger()).unwrap_or_default()
    }

    /// Reads the SWIM view: one entry per name (the newest generation), and the addresses
    /// and statuses for the transport.
    async fn refresh_members(&mut self) {
        let Ok(list) = self.membership.members().await else {
            return;
        };
        let mut members: BTreeMap<String, MemberInfo> = BTreeMap::new();
        for member in list {
            // Sorted by name, newest generation first: keep the first of each name.
            members.entry(member.name.clone()).or_insert(member);
        }
        self.directory.replace(
            members
                .values()
                .map(|m| (m.name.clone(), (m.addr, m.status)))
                .collect::<HashMap<_, _>>(),
        );
        self.members = members;
    }

    /// See the module docs.
    fn evaluate(&mut self) {
        let now = self.contact.now_ms();
        self.wake_ms = None;
        self.check_node(now);
        let reading = self.node().map(|node| {
            let metrics = node.raft.metrics().borrow().clone();
            let names = metrics
                .membership_config
                .membership()
                .nodes()
                .map(|(id, n)| (*id, n.addr.clone()))
                .collect();
            Reading { metrics, names }
        });
        let mode = self.decide(reading.as_ref(), now);
        if let Some(reading) = &reading {
            self.gate_elections(reading, now);
        }
        self.publish(&mode, reading.as_ref());
        if matches!(mode, LeadershipMode::Raft { .. }) {
            self.merge_side_ledgers(now);
        }
        let status = self.status_tx.borrow().clone();
        if let (Some(reading), true) = (&reading, status.is_me && status.mode == Mode::Raft) {
            self.follow_swim(reading, now);
            self.wake_at(now + LEADER_REFRESH_MS);
        }
    }

    pub(super) fn wake_at(&mut self, at_ms: u64) {
        self.wake_ms = Some(self.wake_ms.map_or(at_ms, |w| w.min(at_ms)));
    }

    /// Yields to the group `theirs` if this node's group should (see the module docs).
    async fn adopt(&mut self, theirs: ClusterStamp) -> bool {
        let Some(mut node) = self.node() else {
            return false;
        };
        if node.cluster == Some(theirs.id) {
            return true;
        }
        if node.cluster.is_none() && !node.is_initialized().await {
            if let Err(e) = node.join_cluster(theirs.id, &self.disk) {
                tracing::error!(error = %format!("{e:#}"), "cannot record the raft group id");
                return false;
            }
            node.joining = Some((theirs, std::time::Instant::now()));
            self.node_tx.send_replace(Some(node));
            self.joined_group();
            return true;
        }
        let led = self.status_tx.borrow().mode == Mode::Raft;
        if node
            .stamp(led)
            .is_some_and(|mine| !should_yield(mine, theirs))
        {
            return false;
        }
        tracing::warn!(
            theirs = %format!("{:016x}", theirs.id),
            "our raft group meets a bigger one: yielding (our ledger will be merged into theirs)"
        );
        // Greetings and changes under way speak for the group we leave: stop them.
        self.duties = Default::default();
        let Some(taken) = self.node_tx.send_replace(None) else {
            return false;
        };
        drop(node);
        let (node_id, team) = (self.settings.node_id, self.settings.team.clone());
        let yielded = tokio::time::timeout(
            YIELD_TIMEOUT,
            taken.yield_to(
                theirs.id,
                node_id,
                &team,
                self.disk.clone(),
                self.transport.clone(),
            ),
        )
        .await
        .unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "yielding took longer than {YIELD_TIMEOUT:?}"
            ))
        });
        match yielded {
            Ok((mut fresh, kept)) => {
                fresh.joining = Some((theirs, std::time::Instant::now()));
                self.set_node(fresh);
                self.joined_group();
                if let Err(e) = self.side.add_pending(kept) {
                    tracing::error!(error = %format!("{e:#}"), "cannot keep our ledger to merge");
                }
                true
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "yielding failed; restarting the raft node");
                self.restart = Some(super::recovery::Restart {
                    attempt: 0,
                    at_ms: self.contact.now_ms(),
                    running: false,
                });
                false
            }
        }
    }

    /// This node now waits to be added to another group: give that group's leader a lease's
    /// time to reach it before falling back, and forget the leader followed before.
    fn joined_group(&mut self) {
        self.contact.confirm_now();
        self.heard_ms = self.contact.now_ms();
        self.followed = None;
        self.leader_visible_since = None;
        self.duties = Default::default();
    }
}

async fn metrics_changed(
    metrics: &mut Option<watch::Receiver<RaftMetrics<u64, BasicNode>>>,
) -> Result<(), watch::error::RecvError> {
    match metrics {
        Some(rx) => rx.changed().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
