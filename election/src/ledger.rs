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
}

/// Which message of an incident a notification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Phase {
    /// "It happened."
    Opened,
    /// "It is over."
    Resolved,
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
            LedgerCommand::Merge(commands) => {
                let changed = commands
                    .iter()
                    .map(|c| self.apply(c))
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
        incident.state = IncidentState::Resolved;
        incident.resolved_at_ms = Some(at_ms);
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
        Incident {
            id: id.into(),
            kind: IncidentKind::HostDown,
            subject: "n3".into(),
            opened_at_ms: 100,
            state: IncidentState::Open,
            resolved_at_ms: None,
        }
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
    fn the_ledger_round_trips_through_postcard() {
        let mut ledger = Ledger::default();
        ledger.apply(&LedgerCommand::Open(incident("a")));
        ledger.apply(&intent("a", Phase::Opened, "console"));
        let bytes = postcard::to_stdvec(&ledger).unwrap();
        assert_eq!(postcard::from_bytes::<Ledger>(&bytes).unwrap(), ledger);
    }
}
