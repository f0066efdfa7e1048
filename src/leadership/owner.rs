//! The leadership owner task: it alone holds the Raft node (publishing it on a watch), the
//! side ledgers and the SWIM view it decides from. After every input, metrics change,
//! membership change or deadline it [`Owner::evaluate`]s:
//!
//! 1. reads the Raft metrics and the lease, and decides the mode with
//!    `rover_election::policy::leadership`; publishes the [`LeaderStatus`] if it changed;
//! 2. opens or closes Raft elections with `rover_election::group::election_gate`;
//! 3. once a Raft leader is back, hands the fallback ledger and any pending merge to it;
//! 4. as Raft leader: makes the group follow SWIM ([`super::leader_duties`]);
//! 5. notices a Raft node that openraft stopped (a storage error) and starts it again once a
//!    storage probe succeeds, with backoff;
//! 6. computes its next deadline (lease expiry, fallback due, greetings due, retries).
//!
//! Work that talks to peers or waits on a commit (greetings, membership changes, merges, the
//! restart) runs in spawned tasks that report back as an [`Input`]. Only a yield to a bigger
//! group (rare, bounded by [`YIELD_TIMEOUT`]) is awaited here, since it replaces the node.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use openraft::{BasicNode, RaftMetrics};
use rover_election::group::{
    election_gate, should_yield, ClusterStamp, ElectionGate, ElectionView, SwimSeen,
};
use rover_election::ledger::{Applied, Incident, LeaderMode, Ledger, LedgerCommand};
use rover_election::policy::{self, LeadershipMode, RaftView};
use rover_membership::runtime::unix_ms;
use rover_membership::{MemberInfo, MemberStatus, MembershipHandle};
use rover_storage::Storage;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::fallback::SideLedgers;
use super::lease::LeaderContact;
use super::node::{probe, Disk, RaftNode};
use super::transport::{Directory, PeerTransport};
use super::{
    holds_lease, LeaderStatus, LeadershipError, LeadershipHandle, LeadershipSettings, Mode,
    NodeStamp, Writer, LEASE_MS,
};

/// A yield to a bigger group (stop the node, clear it, start it empty) gives up after this.
pub const YIELD_TIMEOUT: Duration = Duration::from_secs(15);
/// While a voter hears no leader, its SWIM view is read this often (suspicions are not
/// announced as events, and the election gate needs them).
const SILENT_POLL_MS: u64 = 1_000;
/// A voter that heard a leader this recently does not poll SWIM.
const HEARD_RECENTLY_MS: u64 = 1_000;
/// As Raft leader, the SWIM view is read again at least this often (reaping needs the time
/// members have been failed; suspicions are not events).
const LEADER_REFRESH_MS: u64 = 5_000;
/// A voter counts towards the majority of the election gate once SWIM has shown it alive this
/// long: after a heal, the other side's members come back one by one, and the leader may come
/// last.
const ELECTION_SETTLE_MS: u64 = 5_000;
/// A failed merge is tried again after this long.
const MERGE_RETRY_MS: u64 = 2_000;
/// The first restart of a stopped Raft node waits this long, doubling up to [`RESTART_MAX_MS`].
const RESTART_FIRST_MS: u64 = 1_000;
const RESTART_MAX_MS: u64 = 60_000;

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
        reply: oneshot::Sender<Option<(LeaderMode, Ledger)>>,
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

/// A stopped Raft node waiting to start again.
struct Restart {
    attempt: u32,
    at_ms: u64,
    running: bool,
}

pub(super) struct Owner {
    pub(super) settings: LeadershipSettings,
    membership: MembershipHandle,
    members_changed: watch::Receiver<u64>,
    disk: Disk,
    transport: PeerTransport,
    pub(super) directory: Directory,
    contact: Arc<LeaderContact>,
    writer: Writer,
    /// Where spawned work reports back (the owner's own input channel).
    pub(super) reports: mpsc::Sender<Input>,
    node_tx: watch::Sender<Option<RaftNode>>,
    metrics: Option<watch::Receiver<RaftMetrics<u64, BasicNode>>>,
    status_tx: watch::Sender<LeaderStatus>,
    side: SideLedgers,
    /// The SWIM view as last read: one entry per name, the newest generation.
    pub(super) members: BTreeMap<String, MemberInfo>,
    /// When (monotonic ms) a Raft leader was last heard or this node last joined a group: the
    /// fallback clock.
    heard_ms: u64,
    /// The leader this node last followed.
    followed: Option<String>,
    /// The leader the election gate watches, and since when (monotonic ms) SWIM shows it.
    leader_visible_since: Option<(String, u64)>,
    elections_open: Option<bool>,
    gate: ElectionGate,
    /// (mode, leader, since when in unix ms), for `stable_since_ms` and for logging changes.
    stable: (Mode, Option<String>, u64),
    pub(super) duties: super::leader_duties::Duties,
    merging: bool,
    merge_retry_ms: Option<u64>,
    restart: Option<Restart>,
    /// The earliest deadline noted by the last evaluation (monotonic ms).
    wake_ms: Option<u64>,
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

    fn set_node(&mut self, node: RaftNode) {
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
                        self.side.fallback().over(&self.raft_ledger()),
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
        }
    }

    fn raft_ledger(&self) -> Ledger {
        self.node().map(|n| n.reader.ledger()).unwrap_or_default()
    }

    fn write_fallback(
        &mut self,
        commands: &[LedgerCommand],
    ) -> Result<Vec<Applied>, LeadershipError> {
        let status = self.status_tx.borrow().clone();
        if !(status.is_me && status.mode == Mode::Fallback) {
            return Err(LeadershipError::NotLeader {
                leader: status.leader,
            });
        }
        let base = self.raft_ledger();
        self.side
            .apply_fallback(commands, &base)
            .map_err(|e| LeadershipError::Fatal(format!("cannot store the fallback ledger: {e:#}")))
    }

    fn record_fallback_outcomes(
        &mut self,
        commands: Vec<LedgerCommand>,
    ) -> Result<(Vec<LedgerCommand>, bool), LeadershipError> {
        let fatal = |e: anyhow::Error| {
            LeadershipError::Fatal(format!("cannot store the side ledgers: {e:#}"))
        };
        if self.side.fallback().notifications().next().is_some() {
            let base = self.raft_ledger();
            self.side.apply_fallback(&commands, &base).map_err(fatal)?;
            return Ok((Vec::new(), true));
        }
        if self.side.pending_len() > 0 {
            self.side.add_pending(commands).map_err(fatal)?;
            return Ok((Vec::new(), true));
        }
        Ok((commands, false))
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

    /// Who leads, from the lease and the SWIM view.
    fn decide(&mut self, reading: Option<&Reading>, now: u64) -> LeadershipMode {
        let mut leader = None;
        if let Some(reading) = reading {
            let metrics = &reading.metrics;
            if holds_lease(metrics) {
                let ago = metrics.millis_since_quorum_ack.unwrap_or(0);
                let acked = now.saturating_sub(ago);
                self.heard_ms = self.heard_ms.max(acked);
                self.wake_at(acked + LEASE_MS);
                leader = Some(self.settings.name.clone());
                self.followed = None;
            } else if let Some(confirmed) = self.contact.confirmed_at() {
                self.heard_ms = self.heard_ms.max(confirmed);
                if now.saturating_sub(confirmed) < LEASE_MS {
                    self.wake_at(confirmed + LEASE_MS);
                    leader = metrics
                        .current_leader
                        .and_then(|id| reading.names.get(&id).cloned());
                }
            }
        }
        if let Some(name) = leader.as_ref().filter(|l| **l != self.settings.name) {
            self.followed = Some(name.clone());
        }
        let alive: Vec<&str> = self
            .members
            .values()
            .filter(|m| matches!(m.status, MemberStatus::Alive | MemberStatus::Suspect))
            .map(|m| m.name.as_str())
            .collect();
        if reading.is_none() {
            // Without a running Raft node this node cannot tell whether a Raft leader leads
            // the others: it never falls back (that could send what the leader sends too).
            return LeadershipMode::Waiting;
        }
        let fallback_after =
            u64::try_from(self.settings.fallback_after.as_millis()).unwrap_or(u64::MAX);
        let mode = policy::leadership(
            &RaftView {
                leader,
                leader_heard_at_ms: Some(self.heard_ms),
            },
            &alive,
            now,
            fallback_after,
        );
        if mode == LeadershipMode::Waiting {
            self.wake_at(self.heard_ms.saturating_add(fallback_after));
        }
        mode
    }

    /// Publishes the status if it changed, logging changes of mode or leader.
    fn publish(&mut self, mode: &LeadershipMode, reading: Option<&Reading>) {
        let (mode, leader) = match mode {
            LeadershipMode::Raft { leader } => (Mode::Raft, Some(leader.clone())),
            LeadershipMode::Fallback { leader } => (Mode::Fallback, Some(leader.clone())),
            LeadershipMode::Waiting => (Mode::Waiting, None),
        };
        if (mode, &leader) != (self.stable.0, &self.stable.1) {
            let term = reading.map_or(0, |r| r.metrics.current_term);
            match (mode, &leader) {
                (Mode::Raft, Some(l)) => tracing::info!(leader = %l, term, "raft leader"),
                (Mode::Fallback, Some(l)) => tracing::warn!(
                    leader = %l,
                    "no raft quorum reachable: fallback leader of this partition"
                ),
                _ => tracing::info!("no leader yet"),
            }
            self.stable = (mode, leader.clone(), unix_ms());
        }
        let name_of = |id: u64| {
            reading
                .and_then(|r| r.names.get(&id).cloned())
                .unwrap_or_else(|| format!("{id:016x}"))
        };
        let (voters, learners, term, raft_state) = match reading {
            Some(r) => {
                let membership = r.metrics.membership_config.membership();
                (
                    sorted(membership.voter_ids().map(name_of).collect()),
                    sorted(membership.learner_ids().map(name_of).collect()),
                    r.metrics.current_term,
                    format!("{:?}", r.metrics.state).to_lowercase(),
                )
            }
            None => (Vec::new(), Vec::new(), 0, "stopped".to_owned()),
        };
        let status = LeaderStatus {
            mode,
            is_me: leader.as_ref() == Some(&self.settings.name),
            leader,
            term,
            stable_since_ms: self.stable.2,
            voters,
            learners,
            raft_state,
            cluster_id: self
                .node()
                .and_then(|n| n.cluster)
                .map(|id| format!("{id:016x}")),
            node_id: format!("{:016x}", self.settings.node_id),
            pending_merge: self.side.pending_len(),
            fallback_incidents: self.side.fallback().incidents().count(),
            elections_held: match &self.gate {
                ElectionGate::Open | ElectionGate::NotVoter => None,
                ElectionGate::NoMajority { alive, voters } => Some(format!(
                    "{alive} of {voters} voters alive in the SWIM view: no majority"
                )),
                ElectionGate::LeaderAlive { leader } => {
                    Some(format!("the leader {leader} is still alive in SWIM"))
                }
            },
        };
        self.status_tx.send_if_modified(|current| {
            let changed = *current != status;
            if changed {
                *current = status;
            }
            changed
        });
    }

    /// Opens or closes Raft elections (a pre-vote by SWIM; see the module docs).
    fn gate_elections(&mut self, reading: &Reading, now: u64) {
        let voters: BTreeSet<String> = reading
            .metrics
            .membership_config
            .membership()
            .voter_ids()
            .filter_map(|id| reading.names.get(&id).cloned())
            .collect();
        let swim = voters
            .iter()
            .map(|name| (name.clone(), swim_seen(self.members.get(name))))
            .collect();
        // The leader followed, else the one this node's Raft vote names (after a restart).
        let leader = self.followed.clone().or_else(|| {
            reading
                .metrics
                .current_leader
                .and_then(|id| reading.names.get(&id).cloned())
        });
        let visible = leader
            .as_ref()
            .is_some_and(|l| swim_seen(self.members.get(l)) != SwimSeen::Gone);
        match (&leader, visible) {
            (Some(l), true) => {
                if self
                    .leader_visible_since
                    .as_ref()
                    .is_none_or(|(name, _)| name != l)
                {
                    self.leader_visible_since = Some((l.clone(), now));
                }
            }
            _ => self.leader_visible_since = None,
        }
        let silent = self.contact.entries_at().map(|at| now.saturating_sub(at));
        let visible_for = self
            .leader_visible_since
            .as_ref()
            .map_or(0, |(_, since)| now.saturating_sub(*since));
        let view = ElectionView {
            me: self.settings.name.clone(),
            voters,
            swim,
            leader,
            leader_silent_ms: silent.unwrap_or(u64::MAX).min(visible_for),
        };
        let silent_after =
            u64::try_from(self.settings.silent_leader_after.as_millis()).unwrap_or(u64::MAX);
        let gate = election_gate(&view, silent_after, ELECTION_SETTLE_MS);
        let open = gate == ElectionGate::Open;
        if self.elections_open != Some(open) {
            if let Some(node) = self.node() {
                node.raft.runtime_config().elect(open);
            }
            match &gate {
                ElectionGate::Open => tracing::info!("raft elections allowed"),
                ElectionGate::NotVoter => {}
                held => tracing::info!(reason = ?held, "raft elections held"),
            }
            self.elections_open = Some(open);
        }
        if matches!(gate, ElectionGate::LeaderAlive { .. }) {
            let silent_since = now.saturating_sub(view.leader_silent_ms);
            self.wake_at(silent_since.saturating_add(silent_after));
        }
        self.gate = gate;
        let follower = reading.metrics.state != openraft::ServerState::Leader;
        let heard_lately = silent.is_some_and(|ms| ms < HEARD_RECENTLY_MS);
        if view_is_voter(&self.gate) && follower && !heard_lately {
            // Suspicions are not events: look at SWIM again soon while no leader is heard.
            self.wake_at(now + SILENT_POLL_MS);
        }
    }

    /// Hands the fallback ledger and any pending merge to the Raft leader.
    fn merge_side_ledgers(&mut self, now: u64) {
        if self.merging || self.merge_retry_ms.is_some_and(|at| at > now) {
            if let Some(at) = self.merge_retry_ms {
                self.wake_at(at);
            }
            return;
        }
        if let Err(e) = self.side.hand_over_fallback() {
            tracing::error!(error = %format!("{e:#}"), "cannot hand the fallback ledger over");
            return;
        }
        let Some(merge) = self.side.pending_merge() else {
            return;
        };
        let count = self.side.pending_len();
        self.merging = true;
        let (writer, reports) = (self.writer.clone(), self.reports.clone());
        tokio::spawn(async move {
            let result = write_through(&writer, vec![merge]).await;
            let _ = reports
                .send(Input::MergeDone {
                    count,
                    result: result.map_err(|e| e.to_string()),
                })
                .await;
        });
    }

    fn merge_done(&mut self, count: usize, result: Result<(), String>) {
        self.merging = false;
        match result {
            Ok(()) => {
                self.merge_retry_ms = None;
                match self.side.merged(count) {
                    Ok(()) => tracing::info!(
                        commands = count,
                        "merged a side ledger into the raft ledger"
                    ),
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "cannot store the side ledgers")
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "merging a side ledger failed; trying again");
                self.merge_retry_ms = Some(self.contact.now_ms() + MERGE_RETRY_MS);
            }
        }
    }

    /// Notices a node openraft stopped, and starts a stopped one again when due.
    fn check_node(&mut self, now: u64) {
        if let Some(node) = self.node() {
            if let Some(why) = node.stopped() {
                tracing::error!(error = %why, "the raft node stopped; it starts again once storage works");
                self.node_tx.send_replace(None);
                self.metrics = None;
                self.restart = Some(Restart {
                    attempt: 0,
                    at_ms: now + RESTART_FIRST_MS,
                    running: false,
                });
            }
        }
        let Some(restart) = &mut self.restart else {
            return;
        };
        if restart.running {
            return;
        }
        if restart.at_ms > now {
            let at = restart.at_ms;
            self.wake_at(at);
            return;
        }
        restart.running = true;
        let (disk, transport, reports) = (
            self.disk.clone(),
            self.transport.clone(),
            self.reports.clone(),
        );
        let (node_id, team) = (self.settings.node_id, self.settings.team.clone());
        tokio::spawn(async move {
            let result = restart_node(node_id, team, disk, transport).await;
            let _ = reports.send(Input::Restarted(result)).await;
        });
    }

    fn restarted(&mut self, result: Result<RaftNode, String>) {
        let Some(restart) = &mut self.restart else {
            return;
        };
        match result {
            Ok(node) => {
                tracing::info!(attempts = restart.attempt + 1, "the raft node runs again");
                self.restart = None;
                self.set_node(node);
            }
            Err(e) => {
                restart.attempt += 1;
                let backoff = RESTART_FIRST_MS
                    .saturating_mul(1 << restart.attempt.min(16))
                    .min(RESTART_MAX_MS);
                restart.at_ms = self.contact.now_ms() + backoff;
                restart.running = false;
                tracing::warn!(error = %e, retry_in_ms = backoff, "the raft node cannot start yet");
            }
        }
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
            self.node_tx.send_replace(Some(node));
            self.joined_group();
            return true;
        }
        let mine = ClusterStamp {
            id: node.cluster.unwrap_or(0),
            size: u32::try_from(
                node.raft
                    .metrics()
                    .borrow()
                    .membership_config
                    .membership()
                    .nodes()
                    .count(),
            )
            .unwrap_or(u32::MAX),
            led: self.status_tx.borrow().mode == Mode::Raft,
        };
        if node.cluster.is_some() && !should_yield(mine, theirs) {
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
            Ok((fresh, kept)) => {
                self.set_node(fresh);
                self.joined_group();
                if let Err(e) = self.side.add_pending(kept) {
                    tracing::error!(error = %format!("{e:#}"), "cannot keep our ledger to merge");
                }
                true
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "yielding failed; restarting the raft node");
                self.restart = Some(Restart {
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

/// Writes `commands` through this partition's leader.
async fn write_through(
    writer: &Writer,
    commands: Vec<LedgerCommand>,
) -> Result<(), LeadershipError> {
    let status = writer.status.borrow().clone();
    if status.is_me && status.mode == Mode::Raft {
        return writer.raft(commands).await.map(drop);
    }
    let leader = status
        .leader
        .filter(|_| status.mode == Mode::Raft)
        .ok_or(LeadershipError::NotLeader { leader: None })?;
    writer.forward(&leader, commands).await
}

/// Probes the storage, then starts the node on it.
async fn restart_node(
    node_id: u64,
    team: String,
    disk: Disk,
    transport: PeerTransport,
) -> Result<RaftNode, String> {
    let probed = disk.clone();
    tokio::task::spawn_blocking(move || probe(&probed))
        .await
        .map_err(|e| format!("storage probe: {e}"))?
        .map_err(|e| format!("storage probe: {e}"))?;
    RaftNode::start(node_id, &team, disk, transport)
        .await
        .map_err(|e| format!("{e:#}"))
}

fn view_is_voter(gate: &ElectionGate) -> bool {
    !matches!(gate, ElectionGate::NotVoter)
}

/// What SWIM says of `member`; how long it has been alive is on the wall clock (the SWIM core
/// stamps status changes with it).
fn swim_seen(member: Option<&MemberInfo>) -> SwimSeen {
    match member {
        Some(m) if m.status == MemberStatus::Alive => SwimSeen::Alive {
            for_ms: m
                .since_ms
                .map_or(u64::MAX, |since| unix_ms().saturating_sub(since)),
        },
        Some(m) if m.status == MemberStatus::Suspect => SwimSeen::Suspect,
        _ => SwimSeen::Gone,
    }
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
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
