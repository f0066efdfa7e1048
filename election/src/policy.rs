//! Who may send notifications, and what is due: pure decisions with exact tests.
//!
//! - With a Raft leader reachable, only that leader sends, and only after confirming it still
//!   leads (`ensure_linearizable`): [`LeadershipMode::Raft`].
//! - When no Raft leader has been heard for `fallback_after`, the partition's members pick the
//!   lowest-named alive member of their own SWIM view as fallback leader: one sender per side
//!   of a split, not one per host ([`LeadershipMode::Fallback`]).
//! - A leader finds its work in the ledger, channel by channel ([`due_work`]): what each
//!   channel has not announced yet, closing messages and reminders, and intents left pending
//!   by another node (a leader that died between recording its intent and its result), which
//!   it takes over. A channel with a message in flight gets nothing more until it ends, so a
//!   stuck channel delays only itself.
//! - [`next_due_at`] says when the next of those falls due, so that the engine sleeps until
//!   then instead of polling; [`expiry`] is the retention command once closed incidents are
//!   old enough.

use crate::ledger::{
    Incident, IncidentState, Ledger, LedgerCommand, Notification, Phase, Severity,
};

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
    /// An opening message waits this long after the oldest incident not yet announced on its
    /// channel opened, so that events arriving together go out in one message.
    pub group_wait_ms: u64,
    /// A critical incident still open is announced again this long after its last message
    /// (0 = never).
    pub repeat_interval_ms: u64,
    /// A notification left pending this long is taken over even if the node that holds it
    /// still looks alive (it must be longer than a send with all its retries).
    pub orphan_after_ms: u64,
    /// Closed incidents are forgotten this long after they ended (0 = kept for ever).
    pub retention_ms: u64,
}

/// Where this node can send right now.
#[derive(Clone, Copy)]
pub struct SendView<'a> {
    /// This node's name.
    pub me: &'a str,
    /// The channels configured here with no message in flight: new messages go on these, in
    /// this order.
    pub idle: &'a [String],
    /// The channels with a message in flight here: nothing more starts on them until it ends
    /// (the work waiting for them folds into their next message).
    pub busy: &'a [String],
    /// Whether a node may still be sending (alive or suspect in this node's view).
    pub is_alive: &'a dyn Fn(&str) -> bool,
}

impl std::fmt::Debug for SendView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendView")
            .field("me", &self.me)
            .field("idle", &self.idle)
            .field("busy", &self.busy)
            .finish_non_exhaustive()
    }
}

/// Who sends a due message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Nobody intended it on this channel yet: record an intent.
    Fresh,
    /// Another node (or this one before a restart) intended it and never completed: take it
    /// over from `holder`.
    TakeOver {
        /// The node that holds the pending record.
        holder: String,
    },
}

/// One message a leader should send on one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Work {
    /// The incident.
    pub incident: String,
    /// Which message.
    pub phase: Phase,
    /// The channel.
    pub channel: String,
    /// How to claim it.
    pub claim: Claim,
}

/// The next message an incident owes on one channel, and from when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Owed {
    phase: Phase,
    from_ms: u64,
}

/// What is due now, oldest incident first and, within one, fresh messages in the order of
/// `view.idle` before takeovers. Each channel goes its own pace:
/// - opening messages on a channel: once the oldest ongoing incident not yet announced on it
///   has waited `group_wait`, every ongoing incident not yet announced on it (they fold into
///   one message);
/// - closing messages of incidents that are over, at once, on each channel that announced
///   them (once that announcement has an outcome, so that they arrive in order);
/// - reminders of critical incidents still open, `repeat_interval` after the last message on
///   that channel;
/// - notifications left pending on a channel not busy here, once their holder is not alive
///   (`view.is_alive`) or `orphan_after` has passed (our own too: we restarted mid-send).
pub fn due_work(ledger: &Ledger, view: &SendView<'_>, now_ms: u64, rules: &DueRules) -> Vec<Work> {
    let incidents = by_age(ledger);
    let openings_due: Vec<bool> = view
        .idle
        .iter()
        .map(|channel| {
            first_opening(ledger, &incidents, channel, rules).is_some_and(|at| at <= now_ms)
        })
        .collect();
    let mut work = Vec::new();
    for incident in incidents {
        for (channel, openings_due) in view.idle.iter().zip(&openings_due) {
            let Some(owed) = owed(ledger, incident, channel, rules) else {
                continue;
            };
            let due = match owed.phase {
                Phase::Opened => *openings_due,
                _ => owed.from_ms <= now_ms,
            };
            if due {
                work.push(Work {
                    incident: incident.id.clone(),
                    phase: owed.phase,
                    channel: channel.clone(),
                    claim: Claim::Fresh,
                });
            }
        }
        for record in pending_on_free_channels(ledger, incident, view) {
            if orphaned_at(record, view, rules) > now_ms {
                continue;
            }
            match stale_news(ledger, incident, record) {
                Some(Staleness::NoClosingYet) => {
                    // Whether its news went out is not known; it is over now: the closing
                    // message, once, instead of the news again.
                    let closing = Work {
                        incident: incident.id.clone(),
                        phase: Phase::Resolved,
                        channel: record.channel.clone(),
                        claim: Claim::Fresh,
                    };
                    if !work.contains(&closing) {
                        work.push(closing);
                    }
                    continue;
                }
                Some(Staleness::ClosingIntended) => continue,
                None => {}
            }
            work.push(Work {
                incident: incident.id.clone(),
                phase: record.phase,
                channel: record.channel.clone(),
                claim: Claim::TakeOver {
                    holder: record.by_node.clone(),
                },
            });
        }
    }
    work
}

/// The first time after `now_ms` at which [`due_work`] will have work it does not have at
/// `now_ms`, if the ledger and the view stay as they are: the next group_wait ending, reminder,
/// orphaned record, or retention cut-off ([`expiry`]). `None`: nothing will fall due until
/// something changes. Always later than `now_ms`.
pub fn next_due_at(
    ledger: &Ledger,
    view: &SendView<'_>,
    now_ms: u64,
    rules: &DueRules,
) -> Option<u64> {
    let incidents = by_age(ledger);
    let mut times = Vec::new();
    for channel in view.idle {
        times.extend(first_opening(ledger, &incidents, channel, rules));
        for incident in &incidents {
            times.extend(
                owed(ledger, incident, channel, rules)
                    .filter(|owed| owed.phase != Phase::Opened)
                    .map(|owed| owed.from_ms),
            );
        }
    }
    for incident in &incidents {
        for record in pending_on_free_channels(ledger, incident, view) {
            let superseded = matches!(
                stale_news(ledger, incident, record),
                Some(Staleness::ClosingIntended)
            );
            if !superseded {
                times.push(orphaned_at(record, view, rules));
            }
        }
    }
    times.extend(expiry_at(ledger, rules));
    times.into_iter().filter(|at| *at > now_ms).min()
}

/// The retention command due now, if a closed incident ended `retention` (plus a slack of a
/// tenth of it, at most an hour, so that incidents go in batches) ago: forget every closed
/// incident that ended more than `retention` before `now_ms`.
pub fn expiry(ledger: &Ledger, now_ms: u64, rules: &DueRules) -> Option<LedgerCommand> {
    expiry_at(ledger, rules)
        .filter(|at| *at <= now_ms)
        .map(|_| LedgerCommand::Forget {
            closed_before_ms: now_ms.saturating_sub(rules.retention_ms),
        })
}

/// When the oldest closed incident falls to retention.
fn expiry_at(ledger: &Ledger, rules: &DueRules) -> Option<u64> {
    if rules.retention_ms == 0 {
        return None;
    }
    let slack = (rules.retention_ms / 10).min(EXPIRY_SLACK_MAX_MS);
    ledger.oldest_closed_at_ms().map(|ended| {
        ended
            .saturating_add(rules.retention_ms)
            .saturating_add(slack)
    })
}

/// The longest retention waits past its cut-off to forget a batch at once.
const EXPIRY_SLACK_MAX_MS: u64 = 3_600_000;

/// The incidents that may owe a message, oldest first.
fn by_age(ledger: &Ledger) -> Vec<&Incident> {
    let mut incidents: Vec<&Incident> = ledger.active_incidents().collect();
    incidents.sort_by(|a, b| (a.opened_at_ms, &a.id).cmp(&(b.opened_at_ms, &b.id)));
    incidents
}

/// When the openings waiting on `channel` fall due: `group_wait` after the oldest opened.
fn first_opening(
    ledger: &Ledger,
    incidents: &[&Incident],
    channel: &str,
    rules: &DueRules,
) -> Option<u64> {
    incidents
        .iter()
        .filter_map(|i| owed(ledger, i, channel, rules))
        .filter(|owed| owed.phase == Phase::Opened)
        .map(|owed| owed.from_ms)
        .min()
}

/// The next fresh message `incident` owes on `channel`, if any.
fn owed(ledger: &Ledger, incident: &Incident, channel: &str, rules: &DueRules) -> Option<Owed> {
    let Some(opening) = ledger.notification(&incident.id, Phase::Opened, channel) else {
        return incident.is_ongoing().then(|| Owed {
            phase: Phase::Opened,
            from_ms: incident.opened_at_ms.saturating_add(rules.group_wait_ms),
        });
    };
    if opening.is_pending() {
        return None;
    }
    match incident.state {
        IncidentState::Resolved | IncidentState::Closed => ledger
            .notification(&incident.id, Phase::Resolved, channel)
            .is_none()
            .then(|| Owed {
                phase: Phase::Resolved,
                from_ms: incident.ended_at_ms(),
            }),
        IncidentState::Notified => reminder(ledger, incident, channel, rules),
        IncidentState::Open => None,
    }
}

/// The next reminder of a critical, announced, still open incident on `channel`.
fn reminder(ledger: &Ledger, incident: &Incident, channel: &str, rules: &DueRules) -> Option<Owed> {
    if rules.repeat_interval_ms == 0 || incident.severity != Severity::Critical {
        return None;
    }
    let on_channel = || {
        ledger
            .notifications_of(&incident.id)
            .filter(move |r| r.channel == channel)
    };
    let last_sent = on_channel()
        .filter(|r| matches!(r.phase, Phase::Opened | Phase::Reminder(_)))
        .map(|r| r.intent_at_ms)
        .max()?;
    let sent_reminders = on_channel()
        .filter_map(|r| match r.phase {
            Phase::Reminder(n) => Some(n),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    Some(Owed {
        phase: Phase::Reminder(sent_reminders.saturating_add(1)),
        from_ms: last_sent.saturating_add(rules.repeat_interval_ms),
    })
}

/// The pending records of `incident` on channels with nothing in flight here.
fn pending_on_free_channels<'a>(
    ledger: &'a Ledger,
    incident: &'a Incident,
    view: &'a SendView<'_>,
) -> impl Iterator<Item = &'a Notification> + 'a {
    ledger
        .notifications_of(&incident.id)
        .filter(|r| r.is_pending() && !view.busy.contains(&r.channel))
}

/// How news left pending about an incident that is over stands.
enum Staleness {
    /// No closing message on its channel yet: that is what is owed.
    NoClosingYet,
    /// The closing message is intended: it settles the news when it goes out.
    ClosingIntended,
}

/// Whether `record` is news (an opening or a reminder) left pending about an incident that is
/// over: it is never sent again (a DOWN for a host that is back), the closing message
/// supersedes it (see `Ledger`'s `Complete`).
fn stale_news(ledger: &Ledger, incident: &Incident, record: &Notification) -> Option<Staleness> {
    let over = matches!(
        incident.state,
        IncidentState::Resolved | IncidentState::Closed
    );
    if record.phase == Phase::Resolved || !over {
        return None;
    }
    Some(
        match ledger.notification(&incident.id, Phase::Resolved, &record.channel) {
            None => Staleness::NoClosingYet,
            Some(_) => Staleness::ClosingIntended,
        },
    )
}

/// When a pending record may be taken over: at once if its holder is another node that is
/// gone, else `orphan_after` after its intent.
fn orphaned_at(record: &Notification, view: &SendView<'_>, rules: &DueRules) -> u64 {
    if record.by_node != view.me && !(view.is_alive)(&record.by_node) {
        return record.intent_at_ms;
    }
    record.intent_at_ms.saturating_add(rules.orphan_after_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{IncidentKind, LeaderMode, LedgerCommand, Outcome};

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
        intend_on(id, phase, "email", by, 0)
    }

    fn intend_on(id: &str, phase: Phase, channel: &str, by: &str, at: u64) -> LedgerCommand {
        LedgerCommand::Intend {
            record: Notification {
                incident: id.into(),
                phase,
                channel: channel.into(),
                by_node: by.into(),
                mode: LeaderMode::Raft,
                intent_at_ms: at,
                outcome: Outcome::Pending,
            },
        }
    }

    fn sent(id: &str, phase: Phase) -> LedgerCommand {
        sent_on(id, phase, "email")
    }

    fn sent_on(id: &str, phase: Phase, channel: &str) -> LedgerCommand {
        LedgerCommand::Complete {
            incident: id.into(),
            phase,
            channel: channel.into(),
            outcome: Outcome::Sent {
                at_ms: 1,
                reference: None,
            },
        }
    }

    fn resolve(id: &str, at_ms: u64) -> LedgerCommand {
        LedgerCommand::Resolve {
            incident: id.into(),
            at_ms,
        }
    }

    const RULES: DueRules = DueRules {
        group_wait_ms: 5_000,
        repeat_interval_ms: 0,
        orphan_after_ms: 180_000,
        retention_ms: 0,
    };

    fn everyone_alive(_: &str) -> bool {
        true
    }

    fn email() -> Vec<String> {
        vec!["email".to_owned()]
    }

    fn view<'a>(me: &'a str, idle: &'a [String], busy: &'a [String]) -> SendView<'a> {
        SendView {
            me,
            idle,
            busy,
            is_alive: &everyone_alive,
        }
    }

    fn due(ledger: &Ledger, me: &str, now: u64) -> Vec<Work> {
        due_work(ledger, &view(me, &email(), &[]), now, &RULES)
    }

    fn next(ledger: &Ledger, me: &str, now: u64) -> Option<u64> {
        next_due_at(ledger, &view(me, &email(), &[]), now, &RULES)
    }

    fn fresh(id: &str, phase: Phase) -> Work {
        fresh_on(id, phase, "email")
    }

    fn fresh_on(id: &str, phase: Phase, channel: &str) -> Work {
        Work {
            incident: id.into(),
            phase,
            channel: channel.into(),
            claim: Claim::Fresh,
        }
    }

    #[test]
    fn an_incident_is_due_only_after_group_wait() {
        let ledger = ledger_with(&[open("a", 1_000)]);
        assert!(due(&ledger, "n1", 5_999).is_empty());
        assert_eq!(next(&ledger, "n1", 1_000), Some(6_000));
        assert_eq!(next(&ledger, "n1", 5_999), Some(6_000));
        assert_eq!(due(&ledger, "n1", 6_000), vec![fresh("a", Phase::Opened)]);
        assert_eq!(next(&ledger, "n1", 6_000), None, "due now, nothing later");
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
        ledger.apply(&resolve("a", 4_000));
        assert!(due(&ledger, "n1", 60_000).is_empty());
        assert_eq!(next(&ledger, "n1", 4_000), None);
    }

    #[test]
    fn a_new_leader_takes_over_intents_a_dead_leader_left_pending_but_not_a_live_ones() {
        let ledger = ledger_with(&[open("a", 0), intend("a", Phase::Opened, "n1")]);
        let n1_dead = |n: &str| n != "n1";
        let channels = email();
        let dead_view = SendView {
            is_alive: &n1_dead,
            ..view("n2", &channels, &[])
        };
        assert_eq!(
            due_work(&ledger, &dead_view, 10_000, &RULES),
            vec![Work {
                incident: "a".into(),
                phase: Phase::Opened,
                channel: "email".into(),
                claim: Claim::TakeOver {
                    holder: "n1".into()
                },
            }]
        );
        assert!(due(&ledger, "n2", 10_000).is_empty());
        assert!(due(&ledger, "n1", 10_000).is_empty());
        assert_eq!(next(&ledger, "n2", 10_000), Some(180_000));
        assert_eq!(due(&ledger, "n2", 180_000).len(), 1, "too old: taken over");
    }

    #[test]
    fn a_resolved_incident_owes_its_closing_message_at_once_and_nothing_after_it() {
        let mut ledger = ledger_with(&[open("a", 0), intend("a", Phase::Opened, "n1")]);
        ledger.apply(&sent("a", Phase::Opened));
        ledger.apply(&resolve("a", 100));
        assert_eq!(due(&ledger, "n1", 100), vec![fresh("a", Phase::Resolved)]);
        ledger.apply(&intend("a", Phase::Resolved, "n1"));
        ledger.apply(&sent("a", Phase::Resolved));
        assert!(due(&ledger, "n2", 200).is_empty());
        assert_eq!(next(&ledger, "n2", 200), None);
    }

    #[test]
    fn a_critical_incident_still_open_is_repeated_every_repeat_interval_and_never_when_zero() {
        let mut critical = Incident::new("a", IncidentKind::HostDown, "n3", 0);
        critical.severity = Severity::Critical;
        let mut ledger = ledger_with(&[
            LedgerCommand::Open(critical),
            intend_on("a", Phase::Opened, "email", "n1", 5_000),
            sent("a", Phase::Opened),
        ]);
        let rules = DueRules {
            repeat_interval_ms: 60_000,
            ..RULES
        };
        let channels = email();
        let v = view("n1", &channels, &[]);
        let due_at = |ledger: &Ledger, now| due_work(ledger, &v, now, &rules);
        assert!(due_at(&ledger, 64_999).is_empty());
        assert_eq!(next_due_at(&ledger, &v, 10_000, &rules), Some(65_000));
        assert_eq!(
            due_at(&ledger, 65_000),
            vec![fresh("a", Phase::Reminder(1))]
        );
        ledger.apply(&intend_on("a", Phase::Reminder(1), "email", "n1", 65_000));
        ledger.apply(&sent("a", Phase::Reminder(1)));
        assert!(due_at(&ledger, 124_999).is_empty());
        assert_eq!(next_due_at(&ledger, &v, 65_000, &rules), Some(125_000));
        assert_eq!(
            due_at(&ledger, 125_000),
            vec![fresh("a", Phase::Reminder(2))]
        );
        assert!(
            due(&ledger, "n1", 10_000_000).is_empty(),
            "repeat 0 = never"
        );
        assert_eq!(next(&ledger, "n1", 125_000), None);
    }

    #[test]
    fn a_busy_channel_gets_nothing_new_while_an_idle_one_announces_at_once() {
        // The first incident went out on exec; email is still stuck sending it. A second
        // incident opens: exec announces it after group_wait, email waits for its send.
        let mut ledger = ledger_with(&[
            open("first", 0),
            intend_on("first", Phase::Opened, "email", "n1", 5_000),
            intend_on("first", Phase::Opened, "exec", "n1", 5_000),
            sent_on("first", Phase::Opened, "exec"),
            open("second", 15_000),
        ]);
        let exec = vec!["exec".to_owned()];
        let stuck = email();
        let sending = view("n1", &exec, &stuck);
        assert_eq!(next_due_at(&ledger, &sending, 15_000, &RULES), Some(20_000));
        assert_eq!(
            due_work(&ledger, &sending, 20_000, &RULES),
            vec![fresh_on("second", Phase::Opened, "exec")]
        );
        ledger.apply(&intend_on("second", Phase::Opened, "exec", "n1", 20_000));
        ledger.apply(&sent_on("second", Phase::Opened, "exec"));
        // The email send failed at last: the second incident's opening is due on email at
        // once, and the first owes nothing more there until it is over.
        ledger.apply(&LedgerCommand::Complete {
            incident: "first".into(),
            phase: Phase::Opened,
            channel: "email".into(),
            outcome: Outcome::Failed {
                at_ms: 95_000,
                error: "timeout".into(),
            },
        });
        let both = vec!["email".to_owned(), "exec".to_owned()];
        let free = view("n1", &both, &[]);
        assert_eq!(
            due_work(&ledger, &free, 95_000, &RULES),
            vec![fresh_on("second", Phase::Opened, "email")]
        );
    }

    #[test]
    fn a_closing_message_waits_for_the_opening_on_its_channel_and_goes_only_where_it_was_announced()
    {
        let mut ledger = ledger_with(&[
            open("a", 0),
            intend_on("a", Phase::Opened, "email", "n1", 5_000),
            intend_on("a", Phase::Opened, "exec", "n1", 5_000),
            sent_on("a", Phase::Opened, "exec"),
            resolve("a", 9_000),
        ]);
        let both = vec!["email".to_owned(), "exec".to_owned(), "pushover".to_owned()];
        let v = view("n1", &both, &[]);
        assert_eq!(
            due_work(&ledger, &v, 9_000, &RULES),
            vec![fresh_on("a", Phase::Resolved, "exec")],
            "email's opening is still pending; pushover never announced it"
        );
        ledger.apply(&sent_on("a", Phase::Opened, "email"));
        assert_eq!(
            due_work(&ledger, &v, 9_500, &RULES),
            vec![
                fresh_on("a", Phase::Resolved, "email"),
                fresh_on("a", Phase::Resolved, "exec")
            ]
        );
    }

    #[test]
    fn a_pending_record_on_a_busy_channel_is_not_taken_over_and_sets_no_deadline() {
        let ledger = ledger_with(&[open("a", 0), intend("a", Phase::Opened, "n1")]);
        let stuck = email();
        let busy = view("n1", &[], &stuck);
        assert!(due_work(&ledger, &busy, 500_000, &RULES).is_empty());
        assert_eq!(next_due_at(&ledger, &busy, 0, &RULES), None);
    }

    #[test]
    fn nothing_falls_due_between_now_and_the_next_deadline() {
        let mut critical = Incident::new("c", IncidentKind::HostDown, "n4", 2_000);
        critical.severity = Severity::Critical;
        let ledger = ledger_with(&[
            open("a", 1_000),
            LedgerCommand::Open(critical),
            intend_on("c", Phase::Opened, "email", "n1", 7_000),
            sent("c", Phase::Opened),
            open("b", 30_000),
            intend_on("b", Phase::Opened, "exec", "n2", 40_000),
        ]);
        let rules = DueRules {
            repeat_interval_ms: 50_000,
            orphan_after_ms: 100_000,
            ..RULES
        };
        let channels = email();
        let v = view("n1", &channels, &[]);
        let mut now = 0;
        let mut deadlines = Vec::new();
        while let Some(at) = next_due_at(&ledger, &v, now, &rules) {
            assert!(at > now);
            let before = due_work(&ledger, &v, now, &rules);
            assert_eq!(due_work(&ledger, &v, at - 1, &rules), before, "before {at}");
            assert_ne!(due_work(&ledger, &v, at, &rules), before, "at {at}");
            deadlines.push(at);
            now = at;
        }
        // a's opening, the reminder of c, the exec intent of b orphaned.
        assert_eq!(deadlines, vec![6_000, 57_000, 140_000]);
    }

    #[test]
    fn closed_incidents_are_forgotten_retention_after_they_ended_in_batches() {
        let mut ledger = ledger_with(&[
            open("a", 0),
            resolve("a", 1_000),
            open("b", 0),
            resolve("b", 5_000),
            open("c", 0),
        ]);
        let rules = DueRules {
            retention_ms: 100_000,
            ..RULES
        };
        let channels = email();
        let v = view("n1", &channels, &[]);
        // The oldest ended at 1 000: due at 1 000 + 100 000 + a tenth of the retention.
        assert_eq!(expiry(&ledger, 110_999, &rules), None);
        assert_eq!(next_due_at(&ledger, &v, 60_000, &rules), Some(111_000));
        let forget = expiry(&ledger, 111_000, &rules).unwrap();
        assert_eq!(
            forget,
            LedgerCommand::Forget {
                closed_before_ms: 11_000
            }
        );
        ledger.apply(&forget);
        let left: Vec<&str> = ledger.incidents().map(|i| i.id.as_str()).collect();
        assert_eq!(left, vec!["c"], "both ended before the cut-off");
        assert_eq!(expiry(&ledger, u64::MAX, &rules), None);
        assert_eq!(expiry(&ledger, u64::MAX, &RULES), None, "0 keeps for ever");
    }

    #[test]
    fn a_down_the_other_side_sent_for_an_incident_closed_here_as_a_flap_gets_its_back() {
        let mut majority = ledger_with(&[open("a", 0), resolve("a", 2_000)]);
        let minority = ledger_with(&[
            open("a", 0),
            intend_on("a", Phase::Opened, "email", "n4", 5_000),
            sent("a", Phase::Opened),
        ]);
        majority.apply(&LedgerCommand::Merge(minority.as_commands()));
        assert_eq!(
            due(&majority, "n1", 10_000),
            vec![fresh("a", Phase::Resolved)]
        );
        majority.apply(&intend("a", Phase::Resolved, "n1"));
        majority.apply(&sent("a", Phase::Resolved));
        assert_eq!(due(&majority, "n1", 20_000), vec![]);
        assert_eq!(majority.active_incidents().count(), 0);
    }

    #[test]
    fn a_down_left_pending_by_a_dead_fallback_leader_on_an_incident_now_over_gets_a_back_not_a_second_down(
    ) {
        let mut majority = ledger_with(&[open("a", 0), resolve("a", 2_000)]);
        let minority = ledger_with(&[
            open("a", 0),
            intend_on("a", Phase::Opened, "email", "n4", 5_000),
        ]);
        majority.apply(&LedgerCommand::Merge(minority.as_commands()));
        let n4_dead = |name: &str| name != "n4";
        let idle = email();
        let view = SendView {
            me: "n1",
            idle: &idle,
            busy: &[],
            is_alive: &n4_dead,
        };
        assert_eq!(
            due_work(&majority, &view, 10_000, &RULES),
            vec![fresh("a", Phase::Resolved)]
        );
        majority.apply(&intend("a", Phase::Resolved, "n1"));
        majority.apply(&sent("a", Phase::Resolved));
        assert_eq!(due_work(&majority, &view, 20_000, &RULES), vec![]);
        assert_eq!(next_due_at(&majority, &view, 20_000, &RULES), None);
        // While the fallback leader may still be sending, nobody else does.
        let pending = ledger_with(&[
            open("b", 0),
            intend_on("b", Phase::Opened, "email", "n4", 5_000),
            resolve("b", 6_000),
        ]);
        assert_eq!(due(&pending, "n1", 10_000), vec![]);
    }
}
