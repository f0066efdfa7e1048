//! The leadership owner task. Every [`TICK`] it:
//!
//! 1. reads the SWIM view (addresses for the Raft transport, alive members) and the Raft
//!    metrics, and decides the mode with `rover_election::policy::leadership`;
//! 2. publishes the [`LeaderStatus`];
//! 3. once a Raft leader is back, hands the fallback ledger and any pending merge to it;
//! 4. as Raft leader: greets alive members outside the group (learning their node ids, and
//!    having them yield if their group is the smaller), then applies the first change
//!    `rover_election::group::plan` asks for.
//!
//! It alone replaces the Raft node, when this node's group yields to another.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use openraft::{BasicNode, ChangeMembers, RaftMetrics};
use rover_election::group::{
    self, should_yield, ClusterStamp, GroupChange, GroupSettings, GroupView, SwimMember, SwimState,
};
use rover_election::policy::{self, LeadershipMode, RaftView};
use rover_membership::runtime::unix_ms;
use rover_membership::{MemberInfo, MemberStatus, MembershipHandle};
use rover_storage::Storage;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::fallback::SideLedgers;
use super::node::RaftNode;
use super::transport::{Directory, PeerTransport, RequestStamp};
use super::{
    holds_lease, AdoptRequest, LeaderStatus, LeadershipHandle, LeadershipSettings, Shared, LEASE_MS,
};
use crate::peer::{PeerConnection, PeerMessage};

/// How often the owner task looks.
pub const TICK: Duration = Duration::from_millis(500);
/// A member outside the group is greeted at most this often.
const GREET_EVERY: Duration = Duration::from_secs(2);
/// How long a membership change may take before the next tick tries again.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts the Raft node (bootstrapping a group of one when allowed) and the owner task.
pub async fn spawn(
    settings: LeadershipSettings,
    storage: Storage,
    membership: MembershipHandle,
) -> Result<(LeadershipHandle, JoinHandle<()>)> {
    let keyring = membership.status().await?.keyring;
    let shared = Arc::new(Shared {
        settings: settings.clone(),
        node: RwLock::new(None),
        directory: Directory::default(),
        keyring: RwLock::new(keyring),
        confirmed_at_ms: AtomicU64::new(unix_ms()),
        raft_led: AtomicBool::new(false),
        side: tokio::sync::Mutex::new(SideLedgers::load(storage.clone())?),
    });
    let transport = PeerTransport::new(
        shared.directory.clone(),
        shared.clone() as Arc<dyn RequestStamp>,
    );
    let disk = storage.raft();
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
    if let Ok(mut cell) = shared.node.write() {
        *cell = Some(node);
    }
    let (status_tx, status) = watch::channel(LeaderStatus {
        mode: "none".into(),
        node_id: format!("{:016x}", settings.node_id),
        ..LeaderStatus::default()
    });
    let (adopt, adopt_rx) = mpsc::channel(4);
    let handle = LeadershipHandle {
        shared: shared.clone(),
        adopt,
        status,
    };
    let owner = WatchLoop {
        shared,
        handle: handle.clone(),
        membership,
        storage,
        transport,
        status_tx,
        ids: BTreeMap::new(),
        greeted: HashMap::new(),
        stable: (String::new(), unix_ms()),
    };
    Ok((handle, tokio::spawn(owner.run(adopt_rx))))
}

struct WatchLoop {
    shared: Arc<Shared>,
    handle: LeadershipHandle,
    membership: MembershipHandle,
    storage: Storage,
    transport: PeerTransport,
    status_tx: watch::Sender<LeaderStatus>,
    /// Node ids members reported when greeted.
    ids: BTreeMap<String, u64>,
    greeted: HashMap<String, Instant>,
    /// (mode and leader, since when).
    stable: (String, u64),
}

/// One tick's reading of SWIM and Raft.
struct Reading {
    members: BTreeMap<String, MemberInfo>,
    metrics: RaftMetrics<u64, BasicNode>,
    names: BTreeMap<u64, String>,
    mode: LeadershipMode,
}

impl WatchLoop {
    async fn run(mut self, mut adopt_rx: mpsc::Receiver<AdoptRequest>) {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    if let Err(e) = self.tick().await {
                        tracing::debug!(error = %format!("{e:#}"), "leadership tick");
                    }
                }
                Some(request) = adopt_rx.recv() => {
                    let adopted = self.adopt(request.theirs).await;
                    let _ = request.reply.send(adopted);
                }
            }
        }
    }

    async fn tick(&mut self) -> Result<()> {
        let reading = self.read().await?;
        self.publish(&reading);
        let status = self.handle.status();
        if matches!(reading.mode, LeadershipMode::Raft { .. }) {
            self.merge_side_ledgers().await?;
        }
        if status.is_me && status.mode == "raft" {
            self.follow_swim(&reading).await?;
        }
        Ok(())
    }

    async fn read(&mut self) -> Result<Reading> {
        let list = self.membership.members().await?;
        if let Ok(status) = self.membership.status().await {
            if let Ok(mut keyring) = self.shared.keyring.write() {
                *keyring = status.keyring;
            }
        }
        let mut members: BTreeMap<String, MemberInfo> = BTreeMap::new();
        for member in list {
            // Sorted by name, newest generation first: keep the first of each name.
            members.entry(member.name.clone()).or_insert(member);
        }
        self.shared.directory.replace(
            members
                .values()
                .map(|m| (m.name.clone(), m.addr))
                .collect::<HashMap<String, SocketAddr>>(),
        );
        let node = self
            .shared
            .current()
            .ok_or_else(|| anyhow!("no raft node"))?;
        let metrics = node.raft.metrics().borrow().clone();
        let now = unix_ms();
        let lease = holds_lease(&metrics);
        if lease {
            // The quorum last answered this long ago (a group of one: now).
            let ago = metrics.millis_since_quorum_ack.unwrap_or(0);
            self.shared
                .confirmed_at_ms
                .fetch_max(now.saturating_sub(ago), Ordering::Relaxed);
        }
        let confirmed = self.shared.confirmed_at_ms.load(Ordering::Relaxed);
        let names: BTreeMap<u64, String> = metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(id, n)| (*id, n.addr.clone()))
            .collect();
        let leader = if lease {
            Some(self.shared.settings.name.clone())
        } else if now.saturating_sub(confirmed) < LEASE_MS {
            metrics
                .current_leader
                .and_then(|id| names.get(&id).cloned())
        } else {
            None
        };
        let alive: Vec<&str> = members
            .values()
            .filter(|m| matches!(m.status, MemberStatus::Alive | MemberStatus::Suspect))
            .map(|m| m.name.as_str())
            .collect();
        let fallback_after = self.shared.settings.fallback_after.as_millis();
        let mode = policy::leadership(
            &RaftView {
                leader,
                leader_heard_at_ms: Some(confirmed),
            },
            &alive,
            now,
            u64::try_from(fallback_after).unwrap_or(u64::MAX),
        );
        Ok(Reading {
            members,
            metrics,
            names,
            mode,
        })
    }

    fn publish(&mut self, reading: &Reading) {
        let me = &self.shared.settings.name;
        let (mode, leader) = match &reading.mode {
            LeadershipMode::Raft { leader } => ("raft", Some(leader.clone())),
            LeadershipMode::Fallback { leader } => ("fallback", Some(leader.clone())),
            LeadershipMode::Waiting => ("none", None),
        };
        self.shared
            .raft_led
            .store(mode == "raft", Ordering::Relaxed);
        let key = format!("{mode}/{}", leader.as_deref().unwrap_or("-"));
        let now = unix_ms();
        if key != self.stable.0 {
            match (mode, &leader) {
                ("raft", Some(l)) => tracing::info!(
                    leader = %l,
                    term = reading.metrics.current_term,
                    "raft leader"
                ),
                ("fallback", Some(l)) => tracing::warn!(
                    leader = %l,
                    "no raft quorum reachable: fallback leader of this partition"
                ),
                _ => tracing::info!("no leader yet"),
            }
            self.stable = (key, now);
        }
        let membership = reading.metrics.membership_config.membership();
        let name_of = |id: u64| {
            reading
                .names
                .get(&id)
                .cloned()
                .unwrap_or_else(|| format!("{id:016x}"))
        };
        let pending_merge = self
            .shared
            .side
            .try_lock()
            .map(|s| s.pending_len())
            .unwrap_or_else(|_| self.status_tx.borrow().pending_merge);
        let status = LeaderStatus {
            mode: mode.into(),
            is_me: leader.as_ref() == Some(me),
            leader,
            term: reading.metrics.current_term,
            stable_since_ms: self.stable.1,
            voters: sorted(membership.voter_ids().map(name_of).collect()),
            learners: sorted(membership.learner_ids().map(name_of).collect()),
            raft_state: format!("{:?}", reading.metrics.state).to_lowercase(),
            cluster_id: self
                .shared
                .current()
                .and_then(|n| n.cluster)
                .map(|id| format!("{id:016x}")),
            node_id: format!("{:016x}", self.shared.settings.node_id),
            pending_merge,
        };
        self.status_tx.send_replace(status);
    }

    /// Hands the fallback ledger and any pending merge to the Raft leader.
    async fn merge_side_ledgers(&mut self) -> Result<()> {
        let (merge, count) = {
            let mut side = self.shared.side.lock().await;
            side.hand_over_fallback()?;
            match side.pending_merge() {
                Some(merge) => (merge, side.pending_len()),
                None => return Ok(()),
            }
        };
        self.handle.write(vec![merge]).await?;
        self.shared.side.lock().await.merged(count)?;
        tracing::info!(
            commands = count,
            "merged a side ledger into the raft ledger"
        );
        Ok(())
    }

    /// As Raft leader: make the group follow the SWIM view.
    async fn follow_swim(&mut self, reading: &Reading) -> Result<()> {
        let shared = self.shared.clone();
        let settings = &shared.settings;
        let ours = self
            .shared
            .stamp()
            .ok_or_else(|| anyhow!("leader without a group id"))?;
        for (id, name) in &reading.names {
            self.ids.entry(name.clone()).or_insert(*id);
        }
        // Outside the group: alive members not in its configuration, and members in it that
        // refuse its RPCs because they went to another group (a voter taken away by another
        // group's leader while it waited to be added here). Greeting them settles which group
        // wins.
        let refusing: BTreeSet<String> = self
            .shared
            .directory
            .refused_within(GREET_EVERY * 5)
            .into_iter()
            .collect();
        let in_group: BTreeSet<&String> = reading
            .names
            .values()
            .filter(|name| !refusing.contains(*name))
            .collect();
        let outside: Vec<(String, SocketAddr)> = reading
            .members
            .values()
            .filter(|m| m.status == MemberStatus::Alive && !in_group.contains(&m.name))
            .filter(|m| m.name != settings.name)
            .map(|m| (m.name.clone(), m.addr))
            .collect();
        for (name, addr) in outside {
            let due = self
                .greeted
                .get(&name)
                .is_none_or(|t| t.elapsed() >= GREET_EVERY);
            if due {
                self.greeted.insert(name.clone(), Instant::now());
                if let Err(e) = self.greet(&name, addr, ours).await {
                    tracing::debug!(member = %name, error = %format!("{e:#}"), "greeting failed");
                }
            }
        }
        let swim: Vec<SwimMember> = reading.members.values().map(swim_member).collect();
        let view = GroupView {
            voters: reading
                .metrics
                .membership_config
                .membership()
                .voter_ids()
                .collect(),
            nodes: reading.names.clone(),
        };
        let changes = group::plan(
            settings.node_id,
            &view,
            &swim,
            &self.ids,
            unix_ms(),
            GroupSettings {
                max_voters: settings.max_voters,
                voter_reap_after_ms: u64::try_from(settings.voter_reap_after.as_millis())
                    .unwrap_or(u64::MAX),
            },
        );
        if let Some(change) = changes.into_iter().next() {
            self.apply(change, &reading.names).await?;
        }
        Ok(())
    }

    /// Learns a member's node id; has it join our group when it is in none or in a smaller
    /// one. A member of a bigger group is left alone: our group will yield to it.
    async fn greet(&mut self, name: &str, addr: SocketAddr, ours: ClusterStamp) -> Result<()> {
        let mut connection = PeerConnection::connect(addr, self.shared.keyring()).await?;
        let PeerMessage::GroupHelloAnswer {
            node_id, cluster, ..
        } = connection
            .ask(&PeerMessage::GroupHello, Duration::from_secs(2))
            .await?
        else {
            return Err(anyhow!("unexpected answer to hello"));
        };
        match cluster {
            Some(theirs) if theirs.id == ours.id => {}
            Some(theirs) if should_yield(ours, theirs) => return Ok(()),
            _ => {
                let answer = connection
                    .ask(&PeerMessage::GroupAdopt(ours), Duration::from_secs(10))
                    .await?;
                if !matches!(answer, PeerMessage::GroupAdoptAnswer(true)) {
                    return Err(anyhow!("{name} did not join our group"));
                }
                tracing::info!(member = %name, "member joined our raft group");
            }
        }
        self.ids.insert(name.to_owned(), node_id);
        Ok(())
    }

    async fn apply(&self, change: GroupChange, names: &BTreeMap<u64, String>) -> Result<()> {
        let node = self
            .shared
            .current()
            .ok_or_else(|| anyhow!("no raft node"))?;
        let describe = |ids: &BTreeSet<u64>| -> Vec<String> {
            ids.iter()
                .map(|id| {
                    names
                        .get(id)
                        .cloned()
                        .unwrap_or_else(|| format!("{id:016x}"))
                })
                .collect()
        };
        let result = match &change {
            GroupChange::AddLearner { id, name } => {
                tracing::info!(member = %name, "adding to the raft group as learner");
                let add = node.raft.add_learner(*id, BasicNode::new(name), false);
                tokio::time::timeout(CHANGE_TIMEOUT, add)
                    .await
                    .map(|r| r.map(drop).map_err(|e| e.to_string()))
            }
            GroupChange::SetVoters(voters) => {
                tracing::info!(voters = ?describe(voters), "changing the raft voters");
                let change = node
                    .raft
                    .change_membership(ChangeMembers::ReplaceAllVoters(voters.clone()), false);
                tokio::time::timeout(CHANGE_TIMEOUT, change)
                    .await
                    .map(|r| r.map(drop).map_err(|e| e.to_string()))
            }
            GroupChange::RemoveLearners(ids) => {
                tracing::info!(learners = ?describe(ids), "removing learners from the raft group");
                let change = node
                    .raft
                    .change_membership(ChangeMembers::RemoveNodes(ids.clone()), false);
                tokio::time::timeout(CHANGE_TIMEOUT, change)
                    .await
                    .map(|r| r.map(drop).map_err(|e| e.to_string()))
            }
        };
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(anyhow!("membership change {change:?} failed: {e}")),
            Err(_) => Err(anyhow!("membership change {change:?} timed out")),
        }
    }

    /// Yields to the group `theirs` if this node's group should (see the module docs).
    async fn adopt(&mut self, theirs: ClusterStamp) -> bool {
        let Some(mut node) = self.shared.current() else {
            return false;
        };
        if node.cluster == Some(theirs.id) {
            return true;
        }
        let settings = self.shared.settings.clone();
        let disk = self.storage.raft();
        if node.cluster.is_none() && !node.is_initialized().await {
            if let Err(e) = node.join_cluster(theirs.id, &disk) {
                tracing::error!(error = %format!("{e:#}"), "cannot record the raft group id");
                return false;
            }
            self.set_node(node);
            self.shared.confirm_leader_now();
            return true;
        }
        match self.shared.stamp() {
            Some(mine) if !should_yield(mine, theirs) => return false,
            _ => {}
        }
        tracing::warn!(
            theirs = %format!("{:016x}", theirs.id),
            "our raft group meets a bigger one: yielding (our ledger will be merged into theirs)"
        );
        let taken = self
            .shared
            .node
            .write()
            .ok()
            .and_then(|mut cell| cell.take());
        let Some(taken) = taken else {
            return false;
        };
        drop(node);
        let yielded = taken
            .yield_to(
                theirs.id,
                settings.node_id,
                &settings.team,
                disk.clone(),
                self.transport.clone(),
            )
            .await;
        match yielded {
            Ok((fresh, kept)) => {
                self.set_node(fresh);
                self.shared.confirm_leader_now();
                if let Err(e) = self.shared.side.lock().await.add_pending(kept) {
                    tracing::error!(error = %format!("{e:#}"), "cannot keep our ledger to merge");
                }
                true
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "yielding failed; restarting the raft node");
                match RaftNode::start(
                    settings.node_id,
                    &settings.team,
                    disk,
                    self.transport.clone(),
                )
                .await
                {
                    Ok(node) => self.set_node(node),
                    Err(e) => tracing::error!(error = %format!("{e:#}"), "raft node is down"),
                }
                false
            }
        }
    }

    fn set_node(&self, node: RaftNode) {
        if let Ok(mut cell) = self.shared.node.write() {
            *cell = Some(node);
        }
    }
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

fn swim_member(m: &MemberInfo) -> SwimMember {
    SwimMember {
        name: m.name.clone(),
        state: match m.status {
            MemberStatus::Alive | MemberStatus::Suspect => SwimState::Alive,
            MemberStatus::Failed => SwimState::Failed,
            MemberStatus::Left => SwimState::Left,
        },
        since_ms: m.since_ms,
    }
}
