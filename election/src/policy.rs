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

use std::collections::BTreeMap;

use crate::ledger::{Incident, IncidentState, Ledger, Notification, Outcome, Phase, Severity};

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

/// When messages fall due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueRules {
    /// An opening message waits this long after the oldest unannounced incident opened, so
    /// that events arriving together go out in one message.
    pub group_wait_ms: u64,
    /// A critical incident still open is announced again this long after its last message
    /// (0 = never).
    pub repeat_interval_ms: u64,
    /// A notification left pending this long is taken over even if the node that holds it
    /// still looks alive (it must be longer than a send with all its retries).
    pub orphan_after_ms: u64,
}

/// Who sends a due message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Nobody intended it yet: record an intent on every configured channel.
    Fresh,
    /// Another node intended it and never completed: take over these `(channel, holder)`.
    TakeOver(Vec<(String, String)>),
}

/// One message a leader should send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Work {
    /// The incident.
    pub incident: String,
    /// Which message.
    pub phase: Phase,
    /// How to claim it.
    pub claim: Claim,
}

/// What is due now, oldest incident first:
/// - opening messages: once the oldest incident nobody announced has waited `group_wait`,
///   every unannounced open incident (they fold into one message);
/// - closing messages of resolved incidents that were announced, at once;
/// - reminders of critical incidents still open, every `repeat_interval`;
/// - notifications another node left pending, once that node is not alive (`is_alive`) or
///   `orphan_after` has passed (and our own, after `orphan_after`: we restarted mid-send).
pub fn due_work(
    ledger: &Ledger,
    me: &str,
    is_alive: &dyn Fn(&str) -> bool,
    now_ms: u64,
    rules: &DueRules,
) -> Vec<Work> {
    let mut incidents: Vec<_> = ledger.incidents().collect();
    incidents.sort_by_key(|i| (i.opened_at_ms, i.id.clone()));
    let unannounced = |i: &Incident| {
        i.state == IncidentState::Open
            && !ledger
                .notifications_of(&i.id)
                .any(|r| r.phase == Phase::Opened)
    };
    let openings_due = incidents
        .iter()
        .any(|i| unannounced(i) && now_ms.saturating_sub(i.opened_at_ms) >= rules.group_wait_ms);
    let mut work = Vec::new();
    for incident in incidents {
        let records: Vec<_> = ledger.notifications_of(&incident.id).collect();
        let fresh = |phase| Work {
            incident: incident.id.clone(),
            phase,
            claim: Claim::Fresh,
        };
        if unannounced(incident) {
            if openings_due {
                work.push(fresh(Phase::Opened));
            }
        } else if incident.state == IncidentState::Resolved
            && !records.iter().any(|r| r.phase == Phase::Resolved)
        {
            work.push(fresh(Phase::Resolved));
        } else if let Some(phase) = reminder_due(incident, &records, now_ms, rules) {
            work.push(fresh(phase));
        }
        let mut orphaned: BTreeMap<Phase, Vec<(String, String)>> = BTreeMap::new();
        for record in records.iter().filter(|r| r.outcome == Outcome::Pending) {
            let holder_gone = record.by_node != me && !is_alive(&record.by_node);
            let too_old = now_ms.saturating_sub(record.intent_at_ms) >= rules.orphan_after_ms;
            if holder_gone || too_old {
                orphaned
                    .entry(record.phase)
                    .or_default()
                    .push((record.channel.clone(), record.by_node.clone()));
            }
        }
        for (phase, held) in orphaned {
            work.push(Work {
                incident: incident.id.clone(),
                phase,
                claim: Claim::TakeOver(held),
            });
        }
    }
    work
}

/// The next reminder of a critical, announced, still open incident, if one is due.
fn reminder_due(
    incident: &Incident,
    records: &[&Notification],
    now_ms: u64,
    rules: &DueRules,
) -> Option<Phase> {
    if rules.repeat_interval_ms == 0
        || incident.severity != Severity::Critical
        || incident.state != IncidentState::Notified
    {
        return None;
    }
    let last_sent = records
        .iter()
        .filter(|r| matches!(r.phase, Phase::Opened | Phase::Reminder(_)))
        .map(|r| r.intent_at_ms)
        .max()?;
    let sent_reminders = records
        .iter()
        .filter_map(|r| match r.phase {
            Phase::Reminder(n) => Some(n),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    (now_ms.saturating_sub(last_sent) >= rules.repeat_interval_ms)
        .then_some(Phase::Reminder(sent_reminders + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{IncidentKind, LeaderMode, LedgerCommand};

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
        LedgerCommand::Open(Incident::new(id, IncidentKind::HostDown, id, at))
    }

    fn intend(id: &str, phase: Phase, by: &str) -> LedgerCommand {
        intend_at(id, phase, by, 0)
    }

    fn intend_at(id: &str, phase: Phase, by: &str, at: u64) -> LedgerCommand {
        LedgerCommand::Intend {
            record: Notification {
                incident: id.into(),
                phase,
                channel: "email".into(),
                by_node: by.into(),
                mode: LeaderMode::Raft,
                intent_at_ms: at,
                outcome: Outcome::Pending,
            },
        }
    }

    fn sent(id: &str, phase: Phase) -> LedgerCommand {
        LedgerCommand::Complete {
            incident: id.into(),
            phase,
            channel: "email".into(),
            outcome: Outcome::Sent {
                at_ms: 1,
                reference: None,
            },
        }
    }

    const RULES: DueRules = DueRules {
        group_wait_ms: 5_000,
        repeat_interval_ms: 0,
        orphan_after_ms: 180_000,
    };

    fn everyone_alive(_: &str) -> bool {
        true
    }

    fn due(ledger: &Ledger, me: &str, now: u64) -> Vec<Work> {
        due_work(ledger, me, &everyone_alive, now, &RULES)
    }

    fn fresh(id: &str, phase: Phase) -> Work {
        Work {
            incident: id.into(),
            phase,
            claim: Claim::Fresh,
        }
    }

    #[test]
    fn an_incident_is_due_only_after_group_wait() {
        let ledger = ledger_with(&[open("a", 1_000)]);
        assert!(due(&ledger, "n1", 5_999).is_empty());
        assert_eq!(due(&ledger, "n1", 6_000), vec![fresh("a", Phase::Opened)]);
    }

    #[test]
    fn incidents_that_arrive_while_the_first_waits_go_out_with_it() {
        let ledger = ledger_with(&[open("b", 3_000), open("a", 1_000), open("c", 5_900)]);
        assert_eq!(
            due(&ledger, "n1", 6_000),
            vec![
                fresh("a", Phase::Opened),
                fresh("b", Phase::Opened),
                fresh("c", Phase::Opened)
            ]
        );
    }

    #[test]
    fn a_flap_shorter_than_group_wait_owes_nothing() {
        let mut ledger = ledger_with(&[open("a", 1_000)]);
        ledger.apply(&LedgerCommand::Resolve {
            incident: "a".into(),
            at_ms: 4_000,
        });
        assert!(due(&ledger, "n1", 60_000).is_empty());
    }

    #[test]
    fn a_new_leader_takes_over_intents_a_dead_leader_left_pending_but_not_a_live_ones() {
        let ledger = ledger_with(&[open("a", 0), intend("a", Phase::Opened, "n1")]);
        let n1_dead = |n: &str| n != "n1";
        assert_eq!(
            due_work(&ledger, "n2", &n1_dead, 10_000, &RULES),
            vec![Work {
                incident: "a".into(),
                phase: Phase::Opened,
                claim: Claim::TakeOver(vec![("email".into(), "n1".into())]),
            }]
        );
        assert!(due(&ledger, "n2", 10_000).is_empty());
        assert!(due(&ledger, "n1", 10_000).is_empty());
        assert_eq!(due(&ledger, "n2", 180_000).len(), 1, "too old: taken over");
    }

    #[test]
    fn a_resolved_incident_owes_its_closing_message_at_once_and_nothing_after_it() {
        let mut ledger = ledger_with(&[open("a", 0), intend("a", Phase::Opened, "n1")]);
        ledger.apply(&sent("a", Phase::Opened));
        ledger.apply(&LedgerCommand::Resolve {
            incident: "a".into(),
            at_ms: 100,
        });
        assert_eq!(due(&ledger, "n1", 100), vec![fresh("a", Phase::Resolved)]);
        ledger.apply(&intend("a", Phase::Resolved, "n1"));
        ledger.apply(&sent("a", Phase::Resolved));
        assert!(due(&ledger, "n2", 200).is_empty());
    }

    #[test]
    fn a_critical_incident_still_open_is_repeated_every_repeat_interval_and_never_when_zero() {
        let mut critical = Incident::new("a", IncidentKind::HostDown, "n3", 0);
        critical.severity = Severity::Critical;
        let mut ledger = ledger_with(&[
            LedgerCommand::Open(critical),
            intend_at("a", Phase::Opened, "n1", 5_000),
            sent("a", Phase::Opened),
        ]);
        let rules = DueRules {
            repeat_interval_ms: 60_000,
            ..RULES
        };
        let due_at = |ledger: &Ledger, now| due_work(ledger, "n1", &everyone_alive, now, &rules);
        assert!(due_at(&ledger, 64_999).is_empty());
        assert_eq!(
            due_at(&ledger, 65_000),
            vec![fresh("a", Phase::Reminder(1))]
        );
        ledger.apply(&intend_at("a", Phase::Reminder(1), "n1", 65_000));
        ledger.apply(&sent("a", Phase::Reminder(1)));
        assert!(due_at(&ledger, 124_999).is_empty());
        assert_eq!(
            due_at(&ledger, 125_000),
            vec![fresh("a", Phase::Reminder(2))]
        );
        assert!(
            due(&ledger, "n1", 10_000_000).is_empty(),
            "repeat 0 = never"
        );
    }
}
