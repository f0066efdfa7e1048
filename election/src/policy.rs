//! Who may send notifications, and what is due: pure decisions with exact tests.
//!
//! - With a Raft leader reachable, only that leader sends, and only after confirming it still
//!   leads (`ensure_linearizable`): [`LeadershipMode::Raft`].
//! - When no Raft leader has been heard for `fallback_after`, the partition's members pick the
//!   lowest-named alive member of their own SWIM view as fallback leader: one sender per side
//!   of a split, not one per host ([`LeadershipMode::Fallback`]).
//! - A leader finds its work in the ledger ([`due_work`]): incidents nobody has announced yet,
//!   and intents left pending by another node (a leader that died between recording its intent
//!   and its result), which it takes over.

use crate::ledger::{IncidentState, Ledger, Outcome, Phase};

/// What this node knows about the Raft leadership right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftView {
    /// The Raft leader this node knows, if any (a node name).
    pub leader: Option<String>,
    /// When this node last heard from a Raft leader (unix ms), if ever.
    pub leader_heard_at_ms: Option<u64>,
}

/// How notifications are led in this node's partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeadershipMode {
    /// The Raft leader sends.
    Raft {
        /// Its name.
        leader: String,
    },
    /// No Raft leader for `fallback_after`: the partition's fallback leader sends.
    Fallback {
        /// Its name.
        leader: String,
    },
    /// No Raft leader yet, but not for long enough to fall back: nobody sends.
    Waiting,
}

/// Decides the mode from the Raft view, the alive members of our SWIM view (us included),
/// the time and the fallback delay.
pub fn leadership(
    raft: &RaftView,
    alive: &[&str],
    now_ms: u64,
    fallback_after_ms: u64,
) -> LeadershipMode {
    if let Some(leader) = &raft.leader {
        return LeadershipMode::Raft {
            leader: leader.clone(),
        };
    }
    let silent_for = raft.leader_heard_at_ms.map(|t| now_ms.saturating_sub(t));
    if silent_for.is_some_and(|s| s < fallback_after_ms) {
        return LeadershipMode::Waiting;
    }
    match fallback_leader(alive) {
        Some(leader) => LeadershipMode::Fallback {
            leader: leader.to_owned(),
        },
        None => LeadershipMode::Waiting,
    }
}

/// The lowest-named alive member: every member of a partition with the same view picks the
/// same one.
pub fn fallback_leader<'a>(alive: &[&'a str]) -> Option<&'a str> {
    alive.iter().copied().min()
}

/// Whether `me` may send now. A Raft leader must also have just confirmed its leadership.
pub fn may_send(mode: &LeadershipMode, me: &str, leadership_confirmed: bool) -> bool {
    match mode {
        LeadershipMode::Raft { leader } => leader == me && leadership_confirmed,
        LeadershipMode::Fallback { leader } => leader == me,
        LeadershipMode::Waiting => false,
    }
}

/// One message a leader should send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Work {
    /// The incident.
    pub incident: String,
    /// Which message.
    pub phase: Phase,
    /// Channels to (re)send on; empty means "every configured channel".
    pub channels: Vec<String>,
}

/// What is due, oldest incident first: opening messages of incidents open for at least
/// `group_wait_ms` with no intent yet; closing messages of resolved incidents with none; and
/// intents another node left pending (taken over by `me`).
pub fn due_work(ledger: &Ledger, me: &str, now_ms: u64, group_wait_ms: u64) -> Vec<Work> {
    let mut work = Vec::new();
    let mut incidents: Vec<_> = ledger.incidents().collect();
    incidents.sort_by_key(|i| (i.opened_at_ms, i.id.clone()));
    for incident in incidents {
        let records: Vec<_> = ledger.notifications_of(&incident.id).collect();
        let phase = match incident.state {
            IncidentState::Open => Phase::Opened,
            IncidentState::Resolved => Phase::Resolved,
            IncidentState::Notified | IncidentState::Closed => continue,
        };
        let of_phase: Vec<_> = records.iter().filter(|r| r.phase == phase).collect();
        if of_phase.is_empty() {
            let waited = now_ms.saturating_sub(incident.opened_at_ms) >= group_wait_ms;
            if phase == Phase::Resolved || waited {
                work.push(Work {
                    incident: incident.id.clone(),
                    phase,
                    channels: Vec::new(),
                });
            }
            continue;
        }
        let orphaned: Vec<String> = of_phase
            .iter()
            .filter(|r| r.outcome == Outcome::Pending && r.by_node != me)
            .map(|r| r.channel.clone())
            .collect();
        if !orphaned.is_empty() {
            work.push(Work {
                incident: incident.id.clone(),
                phase,
                channels: orphaned,
            });
        }
    }
    work
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Incident, IncidentKind, LeaderMode, LedgerCommand, Notification};

    fn raft(leader: Option<&str>, heard: Option<u64>) -> RaftView {
        RaftView {
            leader: leader.map(str::to_owned),
            leader_heard_at_ms: heard,
        }
    }

    #[test]
    fn with_a_raft_leader_only_that_leader_sends_and_only_once_confirmed() {
        let mode = leadership(
            &raft(Some("n2"), Some(1_000)),
            &["n1", "n2", "n3"],
            1_000,
            20_000,
        );
        assert_eq!(
            mode,
            LeadershipMode::Raft {
                leader: "n2".into()
            }
        );
        assert!(may_send(&mode, "n2", true));
        assert!(!may_send(&mode, "n2", false));
        assert!(!may_send(&mode, "n1", true));
    }

    #[test]
    fn without_a_leader_nobody_sends_until_fallback_after_has_passed() {
        let view = raft(None, Some(10_000));
        assert_eq!(
            leadership(&view, &["n4", "n5"], 29_999, 20_000),
            LeadershipMode::Waiting
        );
        let mode = leadership(&view, &["n5", "n4"], 30_000, 20_000);
        assert_eq!(
            mode,
            LeadershipMode::Fallback {
                leader: "n4".into()
            }
        );
        assert!(may_send(&mode, "n4", false));
        assert!(!may_send(&mode, "n5", false));
    }

    #[test]
    fn a_node_that_never_heard_a_leader_falls_back_at_once_and_a_lone_survivor_leads_itself() {
        assert_eq!(
            leadership(&raft(None, None), &["n3"], 5, 20_000),
            LeadershipMode::Fallback {
                leader: "n3".into()
            }
        );
        assert_eq!(
            leadership(&raft(None, None), &[], 5, 20_000),
            LeadershipMode::Waiting
        );
    }

    #[test]
    fn both_sides_of_a_split_pick_one_leader_each() {
        let majority = ["n1", "n2", "n3"];
        let minority = ["n4", "n5"];
        assert_eq!(fallback_leader(&majority), Some("n1"));
        assert_eq!(fallback_leader(&minority), Some("n4"));
    }

    fn ledger_with(commands: &[LedgerCommand]) -> Ledger {
        let mut ledger = Ledger::default();
        for c in commands {
            ledger.apply(c);
        }
        ledger
    }

    fn open(id: &str, at: u64) -> LedgerCommand {
        LedgerCommand::Open(Incident {
            id: id.into(),
            kind: IncidentKind::HostDown,
            subject: id.into(),
            opened_at_ms: at,
            state: IncidentState::Open,
            resolved_at_ms: None,
        })
    }

    fn intend(id: &str, phase: Phase, by: &str) -> LedgerCommand {
        LedgerCommand::Intend {
            record: Notification {
                incident: id.into(),
                phase,
                channel: "email".into(),
                by_node: by.into(),
                mode: LeaderMode::Raft,
                intent_at_ms: 0,
                outcome: Outcome::Pending,
            },
        }
    }

    #[test]
    fn an_incident_is_due_only_after_group_wait() {
        let ledger = ledger_with(&[open("a", 1_000)]);
        assert!(due_work(&ledger, "n1", 5_999, 5_000).is_empty());
        let due = due_work(&ledger, "n1", 6_000, 5_000);
        assert_eq!(
            due,
            vec![Work {
                incident: "a".into(),
                phase: Phase::Opened,
                channels: vec![]
            }]
        );
    }

    #[test]
    fn a_new_leader_takes_over_intents_a_dead_leader_left_pending_but_not_its_own() {
        let ledger = ledger_with(&[open("a", 0), intend("a", Phase::Opened, "n1")]);
        assert_eq!(
            due_work(&ledger, "n2", 10_000, 5_000),
            vec![Work {
                incident: "a".into(),
                phase: Phase::Opened,
                channels: vec!["email".into()]
            }]
        );
        assert!(due_work(&ledger, "n1", 10_000, 5_000).is_empty());
    }

    #[test]
    fn a_resolved_incident_owes_its_closing_message_at_once_and_nothing_after_it() {
        let mut ledger = ledger_with(&[open("a", 0)]);
        ledger.apply(&LedgerCommand::Resolve {
            incident: "a".into(),
            at_ms: 100,
        });
        assert_eq!(
            due_work(&ledger, "n1", 100, 5_000),
            vec![Work {
                incident: "a".into(),
                phase: Phase::Resolved,
                channels: vec![]
            }]
        );
        ledger.apply(&intend("a", Phase::Resolved, "n1"));
        ledger.apply(&LedgerCommand::Complete {
            incident: "a".into(),
            phase: Phase::Resolved,
            channel: "email".into(),
            outcome: Outcome::Sent {
                at_ms: 101,
                reference: None,
            },
        });
        assert!(due_work(&ledger, "n2", 200, 5_000).is_empty());
    }
}
