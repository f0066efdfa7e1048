//! The election gate of the owner task (a pre-vote by SWIM, decided by
//! `rover_election::group::election_gate`, then a pre-vote of the other voters, see
//! [`super::pre_vote`]): it opens or closes openraft's elections
//! (`Raft::runtime_config().elect`) and notes when to look at SWIM again.
//!
//! Leader liveness comes from SWIM: when the gate opens because the leader this node followed
//! is gone (or suspected and silent for a lease), the first of the other voters SWIM shows
//! alive, by name, calls an election at once (`Raft::trigger().elect()`) instead of waiting
//! for openraft's timer (its 2 s lease plus 1 to 2 s, checked every 1.05 s), which stays the
//! fallback for the others. Only one calls, so their votes do not split.

use std::collections::BTreeSet;

use rover_election::group::{
    election_gate, ElectionGate, ElectionView, SwimSeen, SUSPECT_LEADER_SILENT_MS,
};
use rover_membership::runtime::unix_ms;
use rover_membership::{MemberInfo, MemberStatus};

use super::owner::{Owner, Reading};

/// While a voter hears no leader, its SWIM view is read this often (suspicions are not
/// announced as events, and the election gate needs them).
const SILENT_POLL_MS: u64 = 1_000;
/// A voter that heard a leader this recently does not poll SWIM.
const HEARD_RECENTLY_MS: u64 = 1_000;
/// A voter counts towards the majority of the election gate once SWIM has shown it alive this
/// long: after a heal, the other side's members come back one by one, and the leader may come
/// last.
const ELECTION_SETTLE_MS: u64 = 5_000;

impl Owner {
    /// Opens or closes Raft elections (a pre-vote by SWIM; see the module docs).
    pub(super) fn gate_elections(&mut self, reading: &Reading, now: u64) {
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
        let open = self.pre_vote_allows(reading, &view.voters, gate == ElectionGate::Open, now);
        if self.elections_open != Some(open) {
            if let Some(node) = self.node() {
                node.raft.runtime_config().elect(open);
                let lost = view.leader.as_ref().filter(|l| **l != view.me);
                if open && lost.is_some_and(|l| first_to_call(&view, l)) {
                    let raft = node.raft.clone();
                    tokio::spawn(async move {
                        if let Err(e) = raft.trigger().elect().await {
                            tracing::warn!(error = %e, "cannot call a raft election");
                        }
                    });
                    tracing::info!(leader = ?lost, "the leader is gone: calling an election");
                }
            }
            match (&gate, open) {
                (_, true) => tracing::info!("raft elections allowed"),
                // Open by SWIM, but the pre-vote says whether to call one (it logs).
                (ElectionGate::Open | ElectionGate::NotVoter, false) => {}
                (held, false) => tracing::info!(reason = ?held, "raft elections held"),
            }
            self.elections_open = Some(open);
        }
        if let ElectionGate::LeaderAlive { leader } = &gate {
            let silent_since = now.saturating_sub(view.leader_silent_ms);
            let holds_for = if view.swim.get(leader) == Some(&SwimSeen::Suspect) {
                silent_after.min(SUSPECT_LEADER_SILENT_MS)
            } else {
                silent_after
            };
            self.wake_at(silent_since.saturating_add(holds_for));
        }
        self.gate = gate;
        let follower = reading.metrics.state != openraft::ServerState::Leader;
        let heard_lately = silent.is_some_and(|ms| ms < HEARD_RECENTLY_MS);
        if view_is_voter(&self.gate) && follower && !heard_lately {
            // Suspicions are not events: look at SWIM again soon while no leader is heard.
            self.wake_at(now + SILENT_POLL_MS);
        }
    }
}

/// Whether this node is the first, by name, of the voters SWIM shows alive besides `leader`.
fn first_to_call(view: &ElectionView, leader: &str) -> bool {
    view.voters
        .iter()
        .find(|v| {
            v.as_str() != leader
                && (**v == view.me || matches!(view.swim.get(*v), Some(SwimSeen::Alive { .. })))
        })
        .is_some_and(|first| *first == view.me)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn view(me: &str, swim: &[(&str, SwimSeen)]) -> ElectionView {
        ElectionView {
            me: me.into(),
            voters: ["n1", "n2", "n3", "n4", "n5"]
                .iter()
                .map(|v| (*v).to_owned())
                .collect(),
            swim: swim.iter().map(|(n, s)| ((*n).to_owned(), *s)).collect(),
            leader: Some("n1".into()),
            leader_silent_ms: 5_000,
        }
    }

    const ALIVE: SwimSeen = SwimSeen::Alive { for_ms: 60_000 };

    #[test]
    fn only_the_first_alive_voter_besides_the_lost_leader_calls_the_election() {
        let swim = [
            ("n1", SwimSeen::Gone),
            ("n2", ALIVE),
            ("n3", ALIVE),
            ("n4", ALIVE),
        ];
        assert!(first_to_call(&view("n2", &swim), "n1"));
        assert!(!first_to_call(&view("n3", &swim), "n1"));
        assert!(!first_to_call(&view("n4", &swim), "n1"));
    }

    #[test]
    fn a_suspect_first_voter_leaves_the_call_to_the_next() {
        let swim = [
            ("n1", SwimSeen::Suspect),
            ("n2", SwimSeen::Suspect),
            ("n3", ALIVE),
            ("n4", ALIVE),
        ];
        assert!(first_to_call(&view("n3", &swim), "n1"));
        assert!(!first_to_call(&view("n4", &swim), "n1"));
    }
}
