//! How the Raft group follows SWIM membership: pure decisions with exact tests.
//!
//! The leader calls [`plan`] on every tick with the group as Raft knows it and the members as
//! SWIM knows them, and applies the first change it returns (Raft allows one membership change
//! at a time; the next tick plans again):
//!
//! - alive members that are not in the group join it as learners;
//! - learners are promoted while there are fewer than `max_voters` voters, members alive
//!   longest first (they are the least likely to be flapping);
//! - members that left, that SWIM has forgotten, or that have been failed for
//!   `voter_reap_after` leave the group (voters and learners alike). The leader never removes
//!   itself and never empties the voters.
//!
//! Two groups that meet (two clusters started apart, then joined) become one: the group with
//! fewer nodes yields, a tie goes to the lower cluster id ([`should_yield`]). A yielding node
//! keeps its ledger to merge, forgets its Raft state and waits to be added by the other side.
//!
//! Elections are gated by SWIM ([`election_gate`], a pre-vote): a voter calls one only while
//! it sees a majority of the voters alive and no leader it followed can still be leading.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// How long a member has been in its SWIM state, as the group planner needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwimMember {
    /// Node name.
    pub name: String,
    /// What SWIM says of it.
    pub state: SwimState,
    /// Since when (unix ms) it has been in that state; `None` if unknown (for example this
    /// node itself, alive since before anyone watched).
    pub since_ms: Option<u64>,
}

/// The SWIM states that matter to the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwimState {
    /// Alive or suspect: still a member.
    Alive,
    /// Declared failed.
    Failed,
    /// Left on purpose.
    Left,
}

/// The group as the leader's Raft membership has it: node ids with their names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupView {
    /// Voter ids.
    pub voters: BTreeSet<u64>,
    /// Every node of the group (voters and learners), with its name.
    pub nodes: BTreeMap<u64, String>,
}

/// Tunables of [`plan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupSettings {
    /// At most this many voters.
    pub max_voters: usize,
    /// A member failed for this long leaves the group.
    pub voter_reap_after_ms: u64,
}

/// One change to the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupChange {
    /// Add a node as learner.
    AddLearner {
        /// Its Raft node id.
        id: u64,
        /// Its name.
        name: String,
    },
    /// Replace the voter set (promotions and removals of voters).
    SetVoters(BTreeSet<u64>),
    /// Remove learners from the group.
    RemoveLearners(BTreeSet<u64>),
}

/// The changes the leader `me` should make, most urgent first: removals of voters, then
/// learner additions, then promotions, then learner removals.
///
/// `ids` maps member names to the node ids they reported (members whose id is not known yet
/// are skipped until it is).
pub fn plan(
    me: u64,
    group: &GroupView,
    swim: &[SwimMember],
    ids: &BTreeMap<String, u64>,
    now_ms: u64,
    settings: GroupSettings,
) -> Vec<GroupChange> {
    let by_name: BTreeMap<&str, &SwimMember> = swim.iter().map(|m| (m.name.as_str(), m)).collect();
    let gone = |id: u64, name: &str| -> bool {
        if id == me {
            return false;
        }
        if ids.get(name).is_some_and(|known| *known != id) {
            return true; // the host came back with a new node key: the old id is gone
        }
        match by_name.get(name) {
            None => true,
            Some(m) => match m.state {
                SwimState::Alive => false,
                SwimState::Left => true,
                SwimState::Failed => m
                    .since_ms
                    .is_some_and(|t| now_ms.saturating_sub(t) >= settings.voter_reap_after_ms),
            },
        }
    };
    let alive = |name: &str| {
        by_name
            .get(name)
            .is_some_and(|m| m.state == SwimState::Alive)
    };

    let mut changes = Vec::new();
    let mut voters: BTreeSet<u64> = group
        .voters
        .iter()
        .copied()
        .filter(|id| !gone(*id, group.nodes.get(id).map_or("", String::as_str)))
        .collect();
    voters.insert(me);
    let removing_voters = voters != group.voters;

    for member in swim.iter().filter(|m| m.state == SwimState::Alive) {
        if let Some(id) = ids.get(&member.name) {
            if !group.nodes.contains_key(id) {
                changes.push(GroupChange::AddLearner {
                    id: *id,
                    name: member.name.clone(),
                });
            }
        }
    }

    let mut candidates: Vec<(u64, &str)> = group
        .nodes
        .iter()
        .filter(|(id, name)| !voters.contains(id) && alive(name) && !gone(**id, name))
        .map(|(id, name)| (*id, name.as_str()))
        .collect();
    candidates.sort_by_key(|(_, name)| {
        let since = by_name.get(name).and_then(|m| m.since_ms);
        (since.unwrap_or(0), *name)
    });
    for (id, _) in candidates {
        if voters.len() >= settings.max_voters {
            break;
        }
        voters.insert(id);
    }
    if voters != group.voters {
        let change = GroupChange::SetVoters(voters.clone());
        if removing_voters {
            changes.insert(0, change);
        } else {
            changes.push(change);
        }
    }

    let stale_learners: BTreeSet<u64> = group
        .nodes
        .iter()
        .filter(|(id, name)| !group.voters.contains(id) && gone(**id, name))
        .map(|(id, _)| *id)
        .collect();
    if !stale_learners.is_empty() {
        changes.push(GroupChange::RemoveLearners(stale_learners));
    }
    changes
}

/// A Raft group's identity as its nodes tell each other: which group, how many nodes, and
/// whether it works (has a Raft leader).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStamp {
    /// Random id chosen when the group was bootstrapped.
    pub id: u64,
    /// Voters plus learners.
    pub size: u32,
    /// Whether the node telling it follows (or is) a Raft leader of the group right now.
    pub led: bool,
}

/// Whether a node of group `mine` should yield to group `theirs` when the two meet: a group
/// without a Raft leader yields to one with a leader (its size may count voters that left it
/// for another group: nothing else would ever end such a group); otherwise the smaller group
/// yields, and on a tie the group with the higher id does. A group never yields to itself.
pub fn should_yield(mine: ClusterStamp, theirs: ClusterStamp) -> bool {
    if mine.id == theirs.id {
        return false;
    }
    (mine.led, mine.size, Reverse(mine.id)) < (theirs.led, theirs.size, Reverse(theirs.id))
}

/// What SWIM says of one member, as the election gate needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwimSeen {
    /// Alive, for this long (`u64::MAX` when not known).
    Alive {
        /// How long it has been alive in this node's view, in ms.
        for_ms: u64,
    },
    /// Suspected (a probe failed lately).
    Suspect,
    /// Failed, left, or unknown.
    Gone,
}

/// What a voter knows when it decides whether it may call a Raft election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionView {
    /// This node's name.
    pub me: String,
    /// The voters of the group, by name (this node included if it is one).
    pub voters: BTreeSet<String>,
    /// SWIM's view, by name; a name missing here counts as gone.
    pub swim: BTreeMap<String, SwimSeen>,
    /// The leader this node last followed (or its Raft vote names), if any.
    pub leader: Option<String>,
    /// How long that leader has been both visible in SWIM and silent here: since the later of
    /// its last entries accepted here and the moment SWIM showed it again.
    pub leader_silent_ms: u64,
}

/// Whether a voter may call a Raft election, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElectionGate {
    /// It may: a majority of the voters is alive in its SWIM view and no leader it followed
    /// can still be leading.
    Open,
    /// Fewer than a majority of the voters have been alive (not suspect) in its SWIM view for
    /// the settle time: an election could not be won, and would only raise the term. (Right
    /// after a heal, SWIM shows the other side's members one by one: the leader may come
    /// last.)
    NoMajority {
        /// Voters alive for the settle time in the SWIM view (this node included).
        alive: usize,
        /// Voters in all.
        voters: usize,
    },
    /// The leader it followed is alive in SWIM and has been silent for less than
    /// `silent_leader_after_ms` since SWIM showed it (suspect: for less than
    /// [`SUSPECT_LEADER_SILENT_MS`]): it most likely still leads, or its entries are on their
    /// way (after a heal, SWIM finds a member before Raft does).
    LeaderAlive {
        /// The leader's name.
        leader: String,
    },
    /// This node is not a voter.
    NotVoter,
}

/// A leader SWIM only suspects stops holding elections once it has been silent this long (as
/// long as a follower's lease, rover-agent's `leadership::LEASE_MS`: three heartbeats): it is
/// most likely gone, and waiting for SWIM to declare it failed (the suspicion timeout) made
/// leader failover take 5.6 to 6.8 s. A leader only just visible again (after a heal) has not
/// been silent that long since, so it still holds.
pub const SUSPECT_LEADER_SILENT_MS: u64 = 3_000;

/// A pre-vote by SWIM: decides whether this voter may call an election (see
/// [`ElectionGate`]). A side of a partition without a majority of the voters never calls
/// one, so its term stays where it was and the healed network never deposes the majority's
/// leader. A leader that SWIM lists blocks elections until it has been silent, while visible,
/// for `silent_leader_after_ms`: long enough for its entries to arrive after a heal, and only
/// a leader whose Raft node is broken is voted out while SWIM sees it. A voter counts towards
/// the majority once it has been alive for `settle_ms`.
pub fn election_gate(
    view: &ElectionView,
    silent_leader_after_ms: u64,
    settle_ms: u64,
) -> ElectionGate {
    if !view.voters.contains(&view.me) {
        return ElectionGate::NotVoter;
    }
    let alive = view
        .voters
        .iter()
        .filter(|v| {
            **v == view.me
                || matches!(view.swim.get(*v), Some(SwimSeen::Alive { for_ms }) if *for_ms >= settle_ms)
        })
        .count();
    if alive <= view.voters.len() / 2 {
        return ElectionGate::NoMajority {
            alive,
            voters: view.voters.len(),
        };
    }
    if let Some(leader) = view.leader.as_ref().filter(|l| **l != view.me) {
        let holds_for = match view.swim.get(leader) {
            Some(SwimSeen::Alive { .. }) => Some(silent_leader_after_ms),
            Some(SwimSeen::Suspect) => Some(silent_leader_after_ms.min(SUSPECT_LEADER_SILENT_MS)),
            _ => None,
        };
        if holds_for.is_some_and(|limit| view.leader_silent_ms < limit) {
            return ElectionGate::LeaderAlive {
                leader: leader.clone(),
            };
        }
    }
    ElectionGate::Open
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: GroupSettings = GroupSettings {
        max_voters: 3,
        voter_reap_after_ms: 120_000,
    };
    const NOW: u64 = 1_000_000;

    fn alive(name: &str, since: u64) -> SwimMember {
        SwimMember {
            name: name.into(),
            state: SwimState::Alive,
            since_ms: Some(since),
        }
    }

    fn failed(name: &str, since: u64) -> SwimMember {
        SwimMember {
            state: SwimState::Failed,
            ..alive(name, since)
        }
    }

    fn group(voters: &[u64], learners: &[u64]) -> GroupView {
        GroupView {
            voters: voters.iter().copied().collect(),
            nodes: voters
                .iter()
                .chain(learners)
                .map(|id| (*id, format!("n{id}")))
                .collect(),
        }
    }

    fn ids(list: &[u64]) -> BTreeMap<String, u64> {
        list.iter().map(|id| (format!("n{id}"), *id)).collect()
    }

    fn set(list: &[u64]) -> BTreeSet<u64> {
        list.iter().copied().collect()
    }

    #[test]
    fn a_new_alive_member_is_added_as_learner_once_its_id_is_known() {
        let swim = [alive("n1", 0), alive("n2", 10)];
        let changes = plan(1, &group(&[1], &[]), &swim, &ids(&[1, 2]), NOW, SETTINGS);
        assert_eq!(
            changes,
            vec![GroupChange::AddLearner {
                id: 2,
                name: "n2".into()
            }]
        );
        let unknown = plan(1, &group(&[1], &[]), &swim, &ids(&[1]), NOW, SETTINGS);
        assert!(unknown.is_empty());
    }

    #[test]
    fn learners_are_promoted_up_to_max_voters_alive_longest_first() {
        let swim = [
            alive("n1", 0),
            alive("n2", 500),
            alive("n3", 100),
            alive("n4", 300),
        ];
        let changes = plan(
            1,
            &group(&[1], &[2, 3, 4]),
            &swim,
            &ids(&[1, 2, 3, 4]),
            NOW,
            SETTINGS,
        );
        assert_eq!(changes, vec![GroupChange::SetVoters(set(&[1, 3, 4]))]);
    }

    #[test]
    fn a_full_voter_set_of_alive_members_is_left_alone() {
        let swim = [
            alive("n1", 0),
            alive("n2", 0),
            alive("n3", 0),
            alive("n4", 0),
        ];
        let changes = plan(
            1,
            &group(&[1, 2, 3], &[4]),
            &swim,
            &ids(&[1, 2, 3, 4]),
            NOW,
            SETTINGS,
        );
        assert!(changes.is_empty(), "{changes:?}");
    }

    #[test]
    fn a_voter_failed_shorter_than_reap_after_stays() {
        let swim = [alive("n1", 0), alive("n2", 0), failed("n3", NOW - 119_999)];
        let changes = plan(
            1,
            &group(&[1, 2, 3], &[]),
            &swim,
            &ids(&[1, 2, 3]),
            NOW,
            SETTINGS,
        );
        assert!(changes.is_empty(), "{changes:?}");
    }

    #[test]
    fn a_voter_failed_for_reap_after_is_replaced_by_a_live_learner_in_one_change() {
        let swim = [
            alive("n1", 0),
            alive("n2", 0),
            failed("n3", NOW - 120_000),
            alive("n4", 50),
        ];
        let changes = plan(
            1,
            &group(&[1, 2, 3], &[4]),
            &swim,
            &ids(&[1, 2, 3, 4]),
            NOW,
            SETTINGS,
        );
        assert_eq!(changes, vec![GroupChange::SetVoters(set(&[1, 2, 4]))]);
    }

    #[test]
    fn members_that_left_or_were_forgotten_leave_the_group() {
        let swim = [
            alive("n1", 0),
            SwimMember {
                state: SwimState::Left,
                ..alive("n2", NOW)
            },
        ];
        let changes = plan(
            1,
            &group(&[1, 2], &[3]),
            &swim,
            &ids(&[1, 2, 3]),
            NOW,
            SETTINGS,
        );
        assert_eq!(
            changes,
            vec![
                GroupChange::SetVoters(set(&[1])),
                GroupChange::RemoveLearners(set(&[3])),
            ]
        );
    }

    #[test]
    fn the_leader_never_removes_itself() {
        let swim = [failed("n1", 0)];
        let changes = plan(1, &group(&[1], &[]), &swim, &ids(&[1]), NOW, SETTINGS);
        assert!(changes.is_empty(), "{changes:?}");
    }

    #[test]
    fn a_host_back_with_a_new_node_key_replaces_its_old_id() {
        let swim = [alive("n1", 0), alive("n2", 0)];
        let mut known = ids(&[1]);
        known.insert("n2".into(), 22);
        let changes = plan(1, &group(&[1, 2], &[]), &swim, &known, NOW, SETTINGS);
        assert_eq!(
            changes,
            vec![
                GroupChange::SetVoters(set(&[1])),
                GroupChange::AddLearner {
                    id: 22,
                    name: "n2".into()
                },
            ]
        );
    }

    #[test]
    fn the_smaller_group_yields_and_a_tie_goes_to_the_lower_id() {
        let stamp = |id, size| ClusterStamp {
            id,
            size,
            led: true,
        };
        let (small, big) = (stamp(1, 2), stamp(9, 3));
        assert!(should_yield(small, big));
        assert!(!should_yield(big, small));
        let (low, high) = (stamp(3, 2), stamp(7, 2));
        assert!(should_yield(high, low));
        assert!(!should_yield(low, high));
        assert!(!should_yield(low, low));
    }

    #[test]
    fn a_bigger_group_without_a_leader_yields_to_a_smaller_one_with_a_leader() {
        // Five lone agents joined at once: r3 and r4 were voters of r0's group, then left it
        // for r1's; r0's group still counts 4 nodes but can never elect a leader again.
        let stranded = ClusterStamp {
            id: 1,
            size: 4,
            led: false,
        };
        let working = ClusterStamp {
            id: 9,
            size: 3,
            led: true,
        };
        assert!(should_yield(stranded, working));
        assert!(!should_yield(working, stranded));
    }

    fn election_view(voters: &[&str], swim: &[(&str, SwimSeen)]) -> ElectionView {
        ElectionView {
            me: "n4".into(),
            voters: voters.iter().map(|v| (*v).to_owned()).collect(),
            swim: swim.iter().map(|(n, s)| ((*n).to_owned(), *s)).collect(),
            leader: Some("n1".into()),
            leader_silent_ms: 5_000,
        }
    }

    const ALIVE: SwimSeen = SwimSeen::Alive { for_ms: 60_000 };
    const SUSPECT: SwimSeen = SwimSeen::Suspect;
    const FIVE: [&str; 5] = ["n1", "n2", "n3", "n4", "n5"];

    #[test]
    fn the_two_side_of_a_split_never_calls_an_election() {
        // n4 and n5 cut off from n1 n2 n3: the others are suspect, then gone.
        let swim = [
            ("n1", SwimSeen::Gone),
            ("n2", SUSPECT),
            ("n3", SwimSeen::Gone),
            ("n5", ALIVE),
        ];
        assert_eq!(
            election_gate(&election_view(&FIVE, &swim), 10_000, 5_000),
            ElectionGate::NoMajority {
                alive: 2,
                voters: 5
            }
        );
    }

    #[test]
    fn a_suspected_leader_holds_elections_until_declared_failed_or_silent_for_a_lease() {
        let mut swim = vec![("n1", SUSPECT), ("n2", ALIVE), ("n3", ALIVE), ("n5", ALIVE)];
        let mut view = election_view(&FIVE, &swim);
        view.leader_silent_ms = SUSPECT_LEADER_SILENT_MS - 1;
        assert_eq!(
            election_gate(&view, 10_000, 5_000),
            ElectionGate::LeaderAlive {
                leader: "n1".into()
            }
        );
        view.leader_silent_ms = SUSPECT_LEADER_SILENT_MS;
        assert_eq!(election_gate(&view, 10_000, 5_000), ElectionGate::Open);
        swim[0] = ("n1", SwimSeen::Gone);
        assert_eq!(
            election_gate(&election_view(&FIVE, &swim), 10_000, 5_000),
            ElectionGate::Open
        );
    }

    #[test]
    fn a_leader_visible_in_swim_but_silent_long_enough_no_longer_holds_elections() {
        let swim = [("n1", ALIVE), ("n2", ALIVE), ("n3", ALIVE), ("n5", ALIVE)];
        let mut view = election_view(&FIVE, &swim);
        view.leader_silent_ms = 9_999;
        assert!(matches!(
            election_gate(&view, 10_000, 5_000),
            ElectionGate::LeaderAlive { .. }
        ));
        view.leader_silent_ms = 10_000;
        assert_eq!(election_gate(&view, 10_000, 5_000), ElectionGate::Open);
    }

    #[test]
    fn right_after_a_heal_members_just_back_do_not_count_until_they_settle() {
        // n1, the leader, is not back in this view yet; n2 and n3 are, for a second.
        let back = SwimSeen::Alive { for_ms: 1_000 };
        let swim = [
            ("n1", SwimSeen::Gone),
            ("n2", back),
            ("n3", back),
            ("n5", ALIVE),
        ];
        assert_eq!(
            election_gate(&election_view(&FIVE, &swim), 10_000, 5_000),
            ElectionGate::NoMajority {
                alive: 2,
                voters: 5
            }
        );
        let settled = SwimSeen::Alive { for_ms: 5_000 };
        let swim = [
            ("n1", SwimSeen::Gone),
            ("n2", settled),
            ("n3", settled),
            ("n5", ALIVE),
        ];
        assert_eq!(
            election_gate(&election_view(&FIVE, &swim), 10_000, 5_000),
            ElectionGate::Open
        );
    }

    #[test]
    fn suspects_do_not_count_towards_the_majority() {
        let swim = [
            ("n1", SwimSeen::Gone),
            ("n2", SUSPECT),
            ("n3", SUSPECT),
            ("n5", ALIVE),
        ];
        assert!(matches!(
            election_gate(&election_view(&FIVE, &swim), 10_000, 5_000),
            ElectionGate::NoMajority { alive: 2, .. }
        ));
    }

    #[test]
    fn a_lone_voter_a_node_that_followed_no_leader_and_a_former_leader_may_elect() {
        let view = election_view(&["n4"], &[]);
        assert_eq!(election_gate(&view, 10_000, 5_000), ElectionGate::Open);
        let mut view = election_view(&FIVE, &[("n1", ALIVE), ("n2", ALIVE), ("n3", ALIVE)]);
        view.leader = None;
        assert_eq!(election_gate(&view, 10_000, 5_000), ElectionGate::Open);
        view.leader = Some("n4".into());
        assert_eq!(election_gate(&view, 10_000, 5_000), ElectionGate::Open);
    }

    #[test]
    fn a_node_that_is_not_a_voter_is_told_so() {
        let view = election_view(&["n1", "n2", "n3"], &[]);
        assert_eq!(election_gate(&view, 10_000, 5_000), ElectionGate::NotVoter);
    }
}
