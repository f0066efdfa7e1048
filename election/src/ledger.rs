//! The notification ledger: incidents and what was notified about them. It is the Raft state
//! machine's data, so every node applies the same commands in the same order; applying a
//! command twice changes nothing, which makes replays, retries and merges safe.
//!
//! Incident ids are derived from what happened (for example `down/n3/<generation>`), so two
//! sides of a partition that see the same event open the same incident, and merging their
//! ledgers after the heal folds them into one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Identifies an incident across the cluster.
pub type IncidentId = String;

/// What an incident is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IncidentKind {
    /// A host stopped answering.
    HostDown,
    /// An alert is firing.
    AlertFiring,
    /// A trusted team's link was lost.
    TeamLinkLost,
    /// A switch and the hosts behind it are unreachable.
    SwitchUnreachable,
    /// Opened by an operator through the API.
    Manual,
}

/// Where an incident stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IncidentState {
    /// Opened; nothing notified yet.
    Open,
    /// The opening message was sent (or at least attempted on every channel).
    Notified,
    /// Over; the closing message may still be due.
    Resolved,
    /// Over, and its closing message was sent (or none was due).
    Closed,
}

/// How the node that recorded something was leading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaderMode {
    /// Elected Raft leader with a quorum.
    Raft,
    /// Fallback leader of a partition without quorum.
    Fallback,
}

/// How urgent an incident is. Critical incidents are re-sent every `repeat_interval` while
/// they stay open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Severity {
    /// Worth a message.
    #[default]
    Warning,
    /// Worth a message and reminders.
    Critical,
}

/// One incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// Cluster-wide id.
    pub id: IncidentId,
    /// What it is about.
    pub kind: IncidentKind,
    /// The host, alert key, team or switch concerned.
    pub subject: String,
    /// When it started (unix ms).
    pub opened_at_ms: u64,
    /// Where it stands.
    pub state: IncidentState,
    /// When it ended (unix ms).
    pub resolved_at_ms: Option<u64>,
    /// How urgent it is.
    pub severity: Severity,
    /// One line of detail (an alert's summary), possibly empty.
    pub detail: String,
    /// For a host: when it last talked (its last status sample, unix ms), if known.
    pub last_heard_ms: Option<u64>,
    /// For a host: the generation that stopped talking (a newer one coming up ends it).
    pub host_generation: Option<u64>,
}

impl Incident {
    /// A new open incident with no detail; set the other fields with struct update syntax.
    pub fn new(
        id: impl Into<String>,
        kind: IncidentKind,
        subject: impl Into<String>,
        at_ms: u64,
    ) -> Self {
        Self {
            id: id.into(),
            kind,
            subject: subject.into(),
            opened_at_ms: at_ms,
            state: IncidentState::Open,
            resolved_at_ms: None,
            severity: Severity::Warning,
            detail: String::new(),
            last_heard_ms: None,
            host_generation: None,
        }
    }
}

/// Which message of an incident a notification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Phase {
    /// "It happened."
    Opened,
    /// "It is over."
    Resolved,
    /// "It is still going on": the n-th reminder of a critical incident (from 1).
    Reminder(u32),
}

/// The outcome of one notification on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Intent recorded; the result is not known yet.
    Pending,
    /// Delivered; with the provider's reference when it gives one.
    Sent {
        /// When (unix ms).
        at_ms: u64,
        /// Provider's id for the message, if any.
        reference: Option<String>,
    },
    /// The channel refused or failed for good.
    Failed {
        /// When (unix ms).
        at_ms: u64,
        /// Why.
        error: String,
    },
}

/// One notification record: an incident's message on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// The incident.
    pub incident: IncidentId,
    /// Which message.
    pub phase: Phase,
    /// Channel name (e.g. `email`, `pushover`, `console`).
    pub channel: String,
    /// The node that sent it.
    pub by_node: String,
    /// How that node was leading.
    pub mode: LeaderMode,
    /// When the intent was recorded (unix ms).
    pub intent_at_ms: u64,
    /// What happened.
    pub outcome: Outcome,
}

/// A change to the ledger, as proposed through Raft. Only append variants (postcard).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LedgerCommand {
    /// Open an incident.
    Open(Incident),
    /// Record that `by_node` is about to send `phase` of `incident` on `channel`.
    Intend {
        /// The record, with `Outcome::Pending`.
        record: Notification,
    },
    /// Record the outcome of an intended notification.
    Complete {
        /// The incident.
        incident: IncidentId,
        /// Which message.
        phase: Phase,
        /// The channel.
        channel: String,
        /// What happened (not `Pending`).
        outcome: Outcome,
    },
    /// The incident is over.
    Resolve {
        /// The incident.
        incident: IncidentId,
        /// When it ended (unix ms).
        at_ms: u64,
    },
    /// Fold a fallback leader's ledger into this one after a partition heals.
    Merge(Vec<LedgerCommand>),
    /// A new leader takes over a notification another node intended and never completed
    /// (it died, or it has been silent for too long). Applies only while the record is still
    /// pending and still held by `from_node`, so exactly one taker wins.
    Reassign {
        /// The incident.
        incident: IncidentId,
        /// Which message.
        phase: Phase,
        /// The channel.
        channel: String,
        /// The node that held it.
        from_node: String,
        /// The node taking it.
        to_node: String,
        /// How the taker leads.
        mode: LeaderMode,
        /// When (unix ms).
        at_ms: u64,
    },
}

impl LedgerCommand {
    /// The incident this command is about (`None` for a merge).
    pub fn incident_id(&self) -> Option<&str> {
        match self {
            Self::Open(incident) => Some(&incident.id),
            Self::Intend { record } => Some(&record.incident),
            Self::Complete { incident, .. }
            | Self::Resolve { incident, .. }
            | Self::Reassign { incident, .. } => Some(incident),
            Self::Merge(_) => None,
        }
    }
}

/// What applying a command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applied {
    /// The ledger changed.
    Changed,
    /// Already recorded: nothing changed (a replay, a retry or a merge duplicate).
    AlreadyRecorded,
    /// Refused: names what is missing or inconsistent. Nothing changed.
    Refused(String),
}

/// The ledger. See the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    incidents: BTreeMap<IncidentId, Incident>,
    notifications: BTreeMap<(IncidentId, Phase, String), Notification>,
}

impl Ledger {
    /// Applies one command.
    pub fn apply(&mut self, command: &LedgerCommand) -> Applied {
        match command {
            LedgerCommand::Open(incident) => self.open(incident),
            LedgerCommand::Intend { record } => self.intend(record),
            LedgerCommand::Complete {
                incident,
                phase,
                channel,
                outcome,
            } => self.complete(incident, *phase, channel, outcome),
            LedgerCommand::Resolve { incident, at_ms } => self.resolve(incident, *at_ms),
            LedgerCommand::Reassign {
                incident,
                phase,
                channel,
                from_node,
                to_node,
                mode,
                at_ms,
            } => {
                let key = (incident.clone(), *phase, channel.clone());
                match self.notifications.get_mut(&key) {
                    Some(record)
                        if record.outcome == Outcome::Pending && record.by_node == *from_node =>
                    {
                        record.by_node = to_node.clone();
                        record.mode = *mode;
                        record.intent_at_ms = *at_ms;
                        Applied::Changed
                    }
                    Some(record) if record.by_node == *to_node => Applied::AlreadyRecorded,
                    Some(_) => Applied::Refused(format!(
                        "{incident} {phase:?} on {channel} is no longer pending with {from_node}"
                    )),
                    None => {
                        Applied::Refused(format!("no intent for {incident} {phase:?} on {channel}"))
                    }
                }
            }
            LedgerCommand::Merge(commands) => {
                let changed = commands
                    .iter()
                    .map(|c| match c {
                        // What the other side sent was sent: keep its record even where this
                        // side would no longer accept a new intent (it closed the incident).
                        LedgerCommand::Intend { record } => self.record_intent(record),
                        other => self.apply(other),
                    })
                    .filter(|a| *a == Applied::Changed)
                    .count();
                if changed > 0 {
                    Applied::Changed
                } else {
                    Applied::AlreadyRecorded
                }
            }
        }
    }

    /// One incident.
    pub fn incident(&self, id: &str) -> Option<&Incident> {
        self.incidents.get(id)
    }

    /// Every incident, by id.
    pub fn incidents(&self) -> impl Iterator<Item = &Incident> {
        self.incidents.values()
    }

    /// The notification records of one incident.
    pub fn notifications_of<'a>(
        &'a self,
        id: &'a str,
    ) -> impl Iterator<Item = &'a Notification> + 'a {
        self.notifications
            .values()
            .filter(move |n| n.incident == id)
    }

    /// Every notification record.
    pub fn notifications(&self) -> impl Iterator<Item = &Notification> {
        self.notifications.values()
    }

    /// Every command needed to rebuild this ledger elsewhere (for [`LedgerCommand::Merge`]).
    pub fn as_commands(&self) -> Vec<LedgerCommand> {
        let mut commands: Vec<LedgerCommand> = Vec::new();
        for incident in self.incidents.values() {
            commands.push(LedgerCommand::Open(Incident {
                state: IncidentState::Open,
                resolved_at_ms: None,
                ..incident.clone()
            }));
        }
        for record in self.notifications.values() {
            commands.push(LedgerCommand::Intend {
                record: Notification {
                    outcome: Outcome::Pending,
                    ..record.clone()
                },
            });
            if record.outcome != Outcome::Pending {
                commands.push(LedgerCommand::Complete {
                    incident: record.incident.clone(),
                    phase: record.phase,
                    channel: record.channel.clone(),
                    outcome: record.outcome.clone(),
                });
            }
        }
        for incident in self.incidents.values() {
            if let Some(at_ms) = incident.resolved_at_ms {
                commands.push(LedgerCommand::Resolve {
                    incident: incident.id.clone(),
                    at_ms,
                });
            }
        }
        commands
    }

    /// The commands that rebuild one incident and its records elsewhere.
    pub fn commands_of(&self, id: &str) -> Vec<LedgerCommand> {
        self.as_commands()
            .into_iter()
            .filter(|c| c.incident_id() == Some(id))
            .collect()
    }

    /// This ledger with `base` folded under it: what `base` holds and this one does not is
    /// added; where both hold something, this one wins.
    pub fn over(&self, base: &Ledger) -> Ledger {
        let mut combined = self.clone();
        combined.apply(&LedgerCommand::Merge(base.as_commands()));
        combined
    }

    fn open(&mut self, incident: &Incident) -> Applied {
        if self.incidents.contains_key(&incident.id) {
            return Applied::AlreadyRecorded;
        }
        let mut incident = incident.clone();
        incident.state = IncidentState::Open;
        incident.resolved_at_ms = None;
        self.incidents.insert(incident.id.clone(), incident);
        Applied::Changed
    }

    fn intend(&mut self, record: &Notification) -> Applied {
        let Some(incident) = self.incidents.get(&record.incident) else {
            return Applied::Refused(format!("no incident {}", record.incident));
        };
        let over = incident.state == IncidentState::Closed;
        let too_late = match record.phase {
            Phase::Opened => over,
            Phase::Reminder(_) => incident.state != IncidentState::Notified,
            Phase::Resolved => false,
        };
        if too_late {
            return Applied::Refused(format!(
                "{} is {:?}: no {:?} message is due",
                record.incident, incident.state, record.phase
            ));
        }
        self.record_intent(record)
    }

    /// Adds an intent record for a known incident unless one exists for its message and
    /// channel.
    fn record_intent(&mut self, record: &Notification) -> Applied {
        if !self.incidents.contains_key(&record.incident) {
            return Applied::Refused(format!("no incident {}", record.incident));
        }
        let key = (
            record.incident.clone(),
            record.phase,
            record.channel.clone(),
        );
        if self.notifications.contains_key(&key) {
            return Applied::AlreadyRecorded;
        }
        self.notifications.insert(
            key,
            Notification {
                outcome: Outcome::Pending,
                ..record.clone()
            },
        );
        Applied::Changed
    }

    fn complete(
        &mut self,
        incident: &str,
        phase: Phase,
        channel: &str,
        outcome: &Outcome,
    ) -> Applied {
        if *outcome == Outcome::Pending {
            return Applied::Refused("an outcome cannot be pending".into());
        }
        let key = (incident.to_owned(), phase, channel.to_owned());
        let Some(record) = self.notifications.get_mut(&key) else {
            return Applied::Refused(format!("no intent for {incident} {phase:?} on {channel}"));
        };
        if record.outcome != Outcome::Pending {
            return Applied::AlreadyRecorded;
        }
        record.outcome = outcome.clone();
        self.settle(incident, phase);
        Applied::Changed
    }

    fn resolve(&mut self, id: &str, at_ms: u64) -> Applied {
        let Some(incident) = self.incidents.get_mut(id) else {
            return Applied::Refused(format!("no incident {id}"));
        };
        if matches!(
            incident.state,
            IncidentState::Resolved | IncidentState::Closed
        ) {
            return Applied::AlreadyRecorded;
        }
        incident.resolved_at_ms = Some(at_ms);
        let announced = self
            .notifications
            .keys()
            .any(|(i, phase, _)| i == id && *phase == Phase::Opened);
        // An incident over before anything was said about it (a flap shorter than group_wait)
        // is recorded and closed: there is nothing to take back.
        incident.state = if announced {
            IncidentState::Resolved
        } else {
            IncidentState::Closed
        };
        Applied::Changed
    }

    /// Moves an incident on once every intended message of a phase has an outcome.
    fn settle(&mut self, id: &str, phase: Phase) {
        let all_done = self
            .notifications
            .values()
            .filter(|n| n.incident == id && n.phase == phase)
            .all(|n| n.outcome != Outcome::Pending);
        if !all_done {
            return;
        }
        if let Some(incident) = self.incidents.get_mut(id) {
            incident.state = match (incident.state, phase) {
                (IncidentState::Open, Phase::Opened) => IncidentState::Notified,
                (IncidentState::Resolved, Phase::Resolved) => IncidentState::Closed,
                (state, _) => state,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident(id: &str) -> Incident {
        Incident::new(id, IncidentKind::HostDown, "n3", 100)
    }

    fn intent(id: &str, phase: Phase, channel: &str) -> LedgerCommand {
        LedgerCommand::Intend {
            record: Notification {
                incident: id.into(),
                phase,
                channel: channel.into(),
                by_node: "n1".into(),
                mode: LeaderMode::Raft,
                intent_at_ms: 110,
                outcome: Outcome::Pending,
            },
        }
    }

    fn sent(id: &str, phase: Phase, channel: &str) -> LedgerCommand {
        LedgerCommand::Complete {
            incident: id.into(),
            phase,
            channel: channel.into(),
            outcome: Outcome::Sent {
                at_ms: 120,
                reference: Some("r1".into()),
            },
        }
    }

    #[test]
    fn an_incident_goes_open_notified_resolved_closed() {
        let mut ledger = Ledger::default();
        let id = "down/n3/7";
        assert_eq!(
            ledger.apply(&LedgerCommand::Open(incident(id))),
            Applied::Changed
        );
        assert_eq!(
            ledger.apply(&intent(id, Phase::Opened, "email")),
            Applied::Changed
        );
        assert_eq!(ledger.incident(id).unwrap().state, IncidentState::Open);
        assert_eq!(
            ledger.apply(&sent(id, Phase::Opened, "email")),
            Applied::Changed
        );
        assert_eq!(ledger.incident(id).unwrap().state, IncidentState::Notified);
        let resolve = LedgerCommand::Resolve {
            incident: id.into(),
            at_ms: 200,
        };
        assert_eq!(ledger.apply(&resolve), Applied::Changed);
        assert_eq!(ledger.incident(id).unwrap().state, IncidentState::Resolved);
        ledger.apply(&intent(id, Phase::Resolved, "email"));
        ledger.apply(&sent(id, Phase::Resolved, "email"));
        assert_eq!(ledger.incident(id).unwrap().state, IncidentState::Closed);
    }

    #[test]
    fn applying_every_command_twice_changes_nothing_the_second_time() {
        let id = "down/n3/7";
        let commands = vec![
            LedgerCommand::Open(incident(id)),
            intent(id, Phase::Opened, "email"),
            sent(id, Phase::Opened, "email"),
            LedgerCommand::Resolve {
                incident: id.into(),
                at_ms: 200,
            },
        ];
        let mut ledger = Ledger::default();
        for c in &commands {
            assert_eq!(ledger.apply(c), Applied::Changed);
        }
        let once = ledger.clone();
        for c in &commands {
            assert_eq!(ledger.apply(c), Applied::AlreadyRecorded);
        }
        assert_eq!(ledger, once);
    }

    #[test]
    fn a_second_intent_for_the_same_message_is_refused_as_a_duplicate() {
        let id = "down/n3/7";
        let mut ledger = Ledger::default();
        ledger.apply(&LedgerCommand::Open(incident(id)));
        assert_eq!(
            ledger.apply(&intent(id, Phase::Opened, "email")),
            Applied::Changed
        );
        assert_eq!(
            ledger.apply(&intent(id, Phase::Opened, "email")),
            Applied::AlreadyRecorded
        );
        assert_eq!(
            ledger.apply(&intent(id, Phase::Opened, "pushover")),
            Applied::Changed
        );
    }

    #[test]
    fn commands_about_unknown_incidents_are_refused_and_change_nothing() {
        let mut ledger = Ledger::default();
        assert!(matches!(
            ledger.apply(&intent("x", Phase::Opened, "email")),
            Applied::Refused(_)
        ));
        assert!(matches!(
            ledger.apply(&sent("x", Phase::Opened, "email")),
            Applied::Refused(_)
        ));
        assert!(matches!(
            ledger.apply(&LedgerCommand::Resolve {
                incident: "x".into(),
                at_ms: 1
            }),
            Applied::Refused(_)
        ));
        assert_eq!(ledger, Ledger::default());
    }

    #[test]
    fn merging_a_fallback_ledger_keeps_both_sides_and_sends_nothing_twice() {
        // The majority side notified n3 down by email; the minority side's fallback leader saw
        // the same event (same incident id) and sent on its own, plus an incident of its own.
        let mut majority = Ledger::default();
        majority.apply(&LedgerCommand::Open(incident("down/n3/7")));
        majority.apply(&intent("down/n3/7", Phase::Opened, "email"));
        majority.apply(&sent("down/n3/7", Phase::Opened, "email"));
        let mut minority = Ledger::default();
        minority.apply(&LedgerCommand::Open(incident("down/n3/7")));
        minority.apply(&LedgerCommand::Open(incident("down/n1/5")));
        minority.apply(&intent("down/n1/5", Phase::Opened, "email"));
        minority.apply(&sent("down/n1/5", Phase::Opened, "email"));

        let merge = LedgerCommand::Merge(minority.as_commands());
        assert_eq!(majority.apply(&merge), Applied::Changed);
        assert_eq!(majority.apply(&merge), Applied::AlreadyRecorded);
        assert_eq!(majority.incidents().count(), 2);
        // Every incident that was notified on either side is notified in the merge.
        for incident in majority.incidents() {
            assert_eq!(incident.state, IncidentState::Notified, "{}", incident.id);
        }
        assert_eq!(majority.notifications().count(), 2);
    }

    #[test]
    fn an_incident_resolved_before_anything_was_sent_is_closed_and_can_no_longer_be_announced() {
        let id = "down/n3/7";
        let mut ledger = Ledger::default();
        ledger.apply(&LedgerCommand::Open(incident(id)));
        ledger.apply(&LedgerCommand::Resolve {
            incident: id.into(),
            at_ms: 150,
        });
        let flap = ledger.incident(id).unwrap();
        assert_eq!(flap.state, IncidentState::Closed);
        assert_eq!(flap.resolved_at_ms, Some(150));
        assert!(matches!(
            ledger.apply(&intent(id, Phase::Opened, "email")),
            Applied::Refused(_)
        ));
        assert_eq!(ledger.notifications().count(), 0);
    }

    #[test]
    fn a_reminder_is_only_accepted_for_a_notified_incident() {
        let id = "down/n3/7";
        let mut ledger = Ledger::default();
        ledger.apply(&LedgerCommand::Open(incident(id)));
        assert!(matches!(
            ledger.apply(&intent(id, Phase::Reminder(1), "email")),
            Applied::Refused(_)
        ));
        ledger.apply(&intent(id, Phase::Opened, "email"));
        ledger.apply(&sent(id, Phase::Opened, "email"));
        assert_eq!(
            ledger.apply(&intent(id, Phase::Reminder(1), "email")),
            Applied::Changed
        );
    }

    #[test]
    fn only_one_node_can_take_over_a_pending_notification() {
        let id = "down/n3/7";
        let mut ledger = Ledger::default();
        ledger.apply(&LedgerCommand::Open(incident(id)));
        ledger.apply(&intent(id, Phase::Opened, "email"));
        let take = |to: &str| LedgerCommand::Reassign {
            incident: id.into(),
            phase: Phase::Opened,
            channel: "email".into(),
            from_node: "n1".into(),
            to_node: to.into(),
            mode: LeaderMode::Raft,
            at_ms: 300,
        };
        assert_eq!(ledger.apply(&take("n2")), Applied::Changed);
        assert_eq!(ledger.apply(&take("n2")), Applied::AlreadyRecorded);
        assert!(matches!(ledger.apply(&take("n4")), Applied::Refused(_)));
        let record = ledger.notifications().next().unwrap();
        assert_eq!((record.by_node.as_str(), record.intent_at_ms), ("n2", 300));
        ledger.apply(&sent(id, Phase::Opened, "email"));
        assert!(matches!(ledger.apply(&take("n5")), Applied::Refused(_)));
    }

    #[test]
    fn a_ledger_over_a_base_adds_what_only_the_base_has_and_keeps_its_own_where_both_do() {
        let mut base = Ledger::default();
        base.apply(&LedgerCommand::Open(incident("a")));
        base.apply(&intent("a", Phase::Opened, "email"));
        base.apply(&LedgerCommand::Open(incident("b")));
        let mut own = Ledger::default();
        for c in base.commands_of("a") {
            own.apply(&c);
        }
        own.apply(&sent("a", Phase::Opened, "email"));
        let combined = own.over(&base);
        assert_eq!(combined.incidents().count(), 2);
        assert_eq!(
            combined.incident("a").unwrap().state,
            IncidentState::Notified
        );
        assert_eq!(
            base.commands_of("b"),
            vec![LedgerCommand::Open(incident("b"))]
        );
    }

    #[test]
    fn a_merge_keeps_what_the_other_side_sent_even_for_an_incident_this_side_closed_as_a_flap() {
        let mut majority = Ledger::default();
        majority.apply(&LedgerCommand::Open(incident("a")));
        majority.apply(&LedgerCommand::Resolve {
            incident: "a".into(),
            at_ms: 150,
        });
        let mut minority = Ledger::default();
        minority.apply(&LedgerCommand::Open(incident("a")));
        minority.apply(&intent("a", Phase::Opened, "email"));
        minority.apply(&sent("a", Phase::Opened, "email"));
        majority.apply(&LedgerCommand::Merge(minority.as_commands()));
        assert_eq!(majority.notifications().count(), 1);
    }

    #[test]
    fn the_ledger_round_trips_through_postcard() {
        let mut ledger = Ledger::default();
        ledger.apply(&LedgerCommand::Open(incident("a")));
        ledger.apply(&intent("a", Phase::Opened, "console"));
        let bytes = postcard::to_stdvec(&ledger).unwrap();
        assert_eq!(postcard::from_bytes::<Ledger>(&bytes).unwrap(), ledger);
    }
}
