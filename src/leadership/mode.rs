//! How this node's partition is led, as the owner task decides it on every evaluation:
//! the lease (this node's, or its leader's heard on a monotonic clock), the fallback clock and
//! the SWIM view go into `rover_election::policy::leadership`, and the result is published as
//! the [`LeaderStatus`] (only when it changed), with changes of mode or leader logged.

use rover_election::group::ElectionGate;
use rover_election::policy::{self, LeadershipMode, RaftView};
use rover_membership::runtime::unix_ms;
use rover_membership::MemberStatus;

use super::owner::{Owner, Reading};
use super::{holds_lease, LeaderStatus, Mode, LEASE_MS};

impl Owner {
    /// Who leads, from the lease and the SWIM view.
    pub(super) fn decide(&mut self, reading: Option<&Reading>, now: u64) -> LeadershipMode {
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
    pub(super) fn publish(&mut self, mode: &LeadershipMode, reading: Option<&Reading>) {
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
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}
