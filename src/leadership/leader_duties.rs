//! What the owner task does as Raft leader: make the group follow the SWIM view.
//!
//! - Alive members outside the group (and members of it that refuse its RPCs because another
//!   group took them) are greeted, each at most every [`GREET_EVERY`] and at most
//!   [`GREETINGS_AT_ONCE`] at a time, in spawned tasks: a greeting learns the member's node id
//!   and has it join our group when it is in none or in a smaller one.
//! - The first change `rover_election::group::plan` asks for is applied in a spawned task;
//!   the next is planned when it reports back (Raft allows one membership change at a time).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, Result};
use openraft::{BasicNode, ChangeMembers, Raft};
use rover_election::group::{
    self, should_yield, ClusterStamp, GroupChange, GroupSettings, GroupView, SwimMember, SwimState,
};
use rover_election::types::LedgerRaft;
use rover_membership::runtime::unix_ms;
use rover_membership::{MemberInfo, MemberStatus, MembershipHandle};

use tokio::sync::watch;

use super::node::RaftNode;
use super::owner::{Input, Owner, Reading};
use crate::peer::{PeerConnection, PeerMessage};

/// A member outside the group is greeted at most this often.
pub const GREET_EVERY: Duration = Duration::from_secs(2);
/// At most this many greetings run at once.
pub const GREETINGS_AT_ONCE: usize = 8;
/// How long a membership change may take.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(5);
/// A failed membership change is planned again after this long.
const CHANGE_RETRY_MS: u64 = 1_000;

/// The leader's bookkeeping (reset when the node joins another group: dropping it aborts the
/// greetings and changes still under way, which speak for the group this node left).
#[derive(Debug, Default)]
pub struct Duties {
    /// The spawned greetings and changes.
    tasks: Vec<tokio::task::AbortHandle>,
    /// Node ids members reported when greeted.
    ids: BTreeMap<String, u64>,
    /// When (monotonic ms) each member was last greeted.
    greeted: HashMap<String, u64>,
    /// Greetings under way.
    greeting: HashSet<String>,
    /// A membership change under way.
    changing: bool,
    /// No change before this (monotonic ms), after a failure.
    change_retry_ms: Option<u64>,
}

impl Duties {
    /// Keeps the handle of a spawned greeting or change, forgetting finished ones.
    fn keep(&mut self, task: tokio::task::JoinHandle<()>) {
        self.tasks.retain(|t| !t.is_finished());
        self.tasks.push(task.abort_handle());
    }
}

impl Drop for Duties {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Owner {
    /// As Raft leader: greet who is due and apply the next planned change (see the module docs).
    pub(super) fn follow_swim(&mut self, reading: &Reading, now: u64) {
        let Some(ours) = self.stamp(reading) else {
            return;
        };
        for (id, name) in &reading.names {
            self.duties.ids.entry(name.clone()).or_insert(*id);
        }
        self.greet_outside(reading, ours, now);
        if self.duties.changing {
            return;
        }
        if let Some(at) = self.duties.change_retry_ms.filter(|at| *at > now) {
            self.wake_at(at);
            return;
        }
        let view = GroupView {
            voters: reading
                .metrics
                .membership_config
                .membership()
                .voter_ids()
                .collect(),
            nodes: reading.names.clone(),
        };
        let swim: Vec<SwimMember> = self.members.values().map(swim_member).collect();
        let settings = GroupSettings {
            max_voters: self.settings.max_voters,
            voter_reap_after_ms: u64::try_from(self.settings.voter_reap_after.as_millis())
                .unwrap_or(u64::MAX),
        };
        let changes = group::plan(
            self.settings.node_id,
            &view,
            &swim,
            &self.duties.ids,
            unix_ms(),
            settings,
        );
        let Some(change) = changes.into_iter().next() else {
            return;
        };
        let Some(node) = self.node() else {
            return;
        };
        self.duties.changing = true;
        let names = reading.names.clone();
        let reports = self.reports.clone();
        self.duties.keep(tokio::spawn(async move {
            let result = apply(&node.raft, &change, &names).await;
            let _ = reports
                .send(Input::ChangeDone(result.map_err(|e| format!("{e:#}"))))
                .await;
        }));
    }

    fn stamp(&self, reading: &Reading) -> Option<ClusterStamp> {
        let id = self.node()?.cluster?;
        Some(ClusterStamp {
            id,
            size: u32::try_from(reading.names.len()).unwrap_or(u32::MAX),
            led: true,
        })
    }

    /// Greets alive members outside the group that are due (see the module docs).
    fn greet_outside(&mut self, reading: &Reading, ours: ClusterStamp, now: u64) {
        let refusing: BTreeSet<String> = self
            .directory
            .refused_within(GREET_EVERY * 5)
            .into_iter()
            .collect();
        let in_group: BTreeSet<&String> = reading
            .names
            .values()
            .filter(|name| !refusing.contains(*name))
            .collect();
        let every = u64::try_from(GREET_EVERY.as_millis()).unwrap_or(u64::MAX);
        let outside: Vec<(String, SocketAddr)> = self
            .members
            .values()
            .filter(|m| m.status == MemberStatus::Alive && !in_group.contains(&m.name))
            .filter(|m| m.name != self.settings.name)
            .map(|m| (m.name.clone(), m.addr))
            .collect();
        for (name, addr) in outside {
            if self.duties.greeting.contains(&name) {
                continue;
            }
            let due_at = self.duties.greeted.get(&name).map_or(now, |t| t + every);
            if due_at > now {
                self.wake_at(due_at);
                continue;
            }
            if self.duties.greeting.len() >= GREETINGS_AT_ONCE {
                self.wake_at(now + every);
                break;
            }
            self.duties.greeted.insert(name.clone(), now);
            self.duties.greeting.insert(name.clone());
            let (membership, reports) = (self.membership_handle(), self.reports.clone());
            let node = self.node_watch();
            self.duties.keep(tokio::spawn(async move {
                let result = greet(&membership, &node, &name, addr, ours)
                    .await
                    .map_err(|e| format!("{e:#}"));
                let _ = reports.send(Input::Greeted { name, result }).await;
            }));
        }
        // Forget members SWIM forgot, so the table stays as big as the cluster.
        let members = &self.members;
        self.duties
            .greeted
            .retain(|name, _| members.contains_key(name));
        self.duties.ids.retain(|name, _| members.contains_key(name));
    }

    pub(super) fn greeted(&mut self, name: String, result: Result<Option<u64>, String>) {
        self.duties.greeting.remove(&name);
        match result {
            Ok(Some(id)) => {
                self.duties.ids.insert(name, id);
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(member = %name, error = %e, "greeting failed"),
        }
    }

    pub(super) fn change_done(&mut self, result: Result<(), String>) {
        self.duties.changing = false;
        if let Err(e) = result {
            tracing::warn!(error = %e, "raft group change failed; planning again");
            self.duties.change_retry_ms = Some(self.now_ms() + CHANGE_RETRY_MS);
        } else {
            self.duties.change_retry_ms = None;
        }
    }
}

/// Learns a member's node id; has it join our group when it is in none or in a smaller one.
/// A member of a bigger group is left alone (`None`: its id must not be learned, or the plan
/// would add it): our group will yield to it.
async fn greet(
    membership: &MembershipHandle,
    node: &watch::Receiver<Option<RaftNode>>,
    name: &str,
    addr: SocketAddr,
    ours: ClusterStamp,
) -> Result<Option<u64>> {
    let keyring = membership.status().await?.keyring;
    let mut connection = PeerConnection::connect(addr, keyring).await?;
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
        Some(theirs) if should_yield(ours, theirs) => return Ok(None),
        _ => {
            // Only for the group this node is still in (it may have yielded meanwhile).
            let still_ours = node
                .borrow()
                .as_ref()
                .is_some_and(|n| n.cluster == Some(ours.id));
            if !still_ours {
                return Ok(None);
            }
            let answer = connection
                .ask(&PeerMessage::GroupAdopt(ours), Duration::from_secs(20))
                .await?;
            if !matches!(answer, PeerMessage::GroupAdoptAnswer(true)) {
                return Err(anyhow!("{name} did not join our group"));
            }
            tracing::info!(member = %name, "member joined our raft group");
        }
    }
    Ok(Some(node_id))
}

/// Applies one group change, within [`CHANGE_TIMEOUT`].
async fn apply(
    raft: &Raft<LedgerRaft>,
    change: &GroupChange,
    names: &BTreeMap<u64, String>,
) -> Result<()> {
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
    let result = match change {
        GroupChange::AddLearner { id, name } => {
            tracing::info!(member = %name, "adding to the raft group as learner");
            let add = raft.add_learner(*id, BasicNode::new(name), false);
            tokio::time::timeout(CHANGE_TIMEOUT, add)
                .await
                .map(|r| r.map(drop).map_err(|e| e.to_string()))
        }
        GroupChange::SetVoters(voters) => {
            tracing::info!(voters = ?describe(voters), "changing the raft voters");
            let change =
                raft.change_membership(ChangeMembers::ReplaceAllVoters(voters.clone()), false);
            tokio::time::timeout(CHANGE_TIMEOUT, change)
                .await
                .map(|r| r.map(drop).map_err(|e| e.to_string()))
        }
        GroupChange::RemoveLearners(ids) => {
            tracing::info!(learners = ?describe(ids), "removing learners from the raft group");
            let change = raft.change_membership(ChangeMembers::RemoveNodes(ids.clone()), false);
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
