//! The notification ledger: incidents and what was notified about them. It is the Raft state
//! machine's data, so every node applies the same commands in the same order; applying a
//! command twice changes nothing, which makes replays, retries and merges safe.
//!
//! Incident ids are derived from what happened (for example `down/n3/<generation>`), so two
//! sides of a partition that see the same event open the same incident, and merging their
//! ledgers after the heal folds them into one.
//!
//! - [`records`]: incidents and notification records;
//! - [`commands`]: the commands and what applying one did ([`Applied`], [`Refusal`]);
//! - [`changes`]: the ledger record by record, for a store that writes only what a command
//!   changed, and the serialized form.
//!
//! Notification records are indexed by incident, and the ledger keeps the set of incidents
//! that may still owe a message ([`Ledger::active_incidents`]) and the closed ones by when they
//! ended, so that deciding what is due and what retention drops does not scan everything.

pub mod changes;
pub mod commands;
pub mod records;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub use self::changes::{Changes, Record, RecordKey, RecordRef};
use self::changes::{FlatNotifications, LedgerImage};
use self::commands::{opening, push_record, resolution};
pub use self::commands::{Applied, LedgerCommand, Refusal};
pub use self::records::{
    Incident, IncidentId, IncidentKind, IncidentState, LeaderMode, Notification, Outcome, Phase,
    Severity,
};

/// The notification records of one incident, by message and channel.
type RecordsOf = BTreeMap<(Phase, String), Notification>;

/// The ledger. See the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "LedgerImage")]
pub struct Ledger {
    incidents: BTreeMap<IncidentId, Incident>,
    notifications: BTreeMap<IncidentId, RecordsOf>,
    /// Incidents that may still owe a message: not closed, or with a record pending, or
    /// announced on a channel that has not said it is over.
    active: BTreeSet<IncidentId>,
    /// Closed incidents by when they ended.
    closed: BTreeSet<(u64, IncidentId)>,
    /// Incidents by kind (the few host and switch incidents among many alerts).
    kinds: BTreeMap<IncidentKind, BTreeSet<IncidentId>>,
}

impl Serialize for Ledger {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut image = serializer.serialize_struct("Ledger", 2)?;
        image.serialize_field("incidents", &self.incidents)?;
        image.serialize_field("notifications", &FlatNotifications(&self.notifications))?;
        image.end()
    }
}

impl From<LedgerImage> for Ledger {
    fn from(image: LedgerImage) -> Self {
        Self::from_records(
            image
                .incidents
                .into_values()
                .map(Record::Incident)
                .chain(image.notifications.into_values().map(Record::Notification)),
        )
    }
}

impl Ledger {
    /// Applies one command.
    pub fn apply(&mut self, command: &LedgerCommand) -> Applied {
        self.apply_recording(command, &mut Changes::default())
    }

    /// Applies one command and adds the records it touched to `changes`.
    pub fn apply_recording(&mut self, command: &LedgerCommand, changes: &mut Changes) -> Applied {
        match command {
            LedgerCommand::Open(incident) => self.open(incident, changes),
            LedgerCommand::Intend { record } => self.intend(record, changes),
            LedgerCommand::Complete {
                incident,
                phase,
                channel,
                outcome,
            } => self.complete(incident, *phase, channel, outcome, changes),
            LedgerCommand::Resolve { incident, at_ms } => self.resolve(incident, *at_ms, changes),
            LedgerCommand::Reassign {
                incident,
                phase,
                channel,
                from_node,
                to_node,
                mode,
                at_ms,
            } => {
                let taker = Taker {
                    from_node,
                    to_node,
                    mode: *mode,
                    at_ms: *at_ms,
                };
                self.reassign(incident, *phase, channel, &taker, changes)
            }
            LedgerCommand::Merge(commands) => self.merge(commands, changes),
            LedgerCommand::Forget { closed_before_ms } => self.forget(*closed_before_ms, changes),
        }
    }

    /// A ledger holding `records` (in any order; a notification record without its incident
    /// is kept, as it was stored).
    pub fn from_records(records: impl IntoIterator<Item = Record>) -> Self {
        let mut ledger = Self::default();
        for record in records {
            match record {
                Record::Incident(incident) => {
                    ledger.incidents.insert(incident.id.clone(), incident);
                }
                Record::Notification(record) => {
                    ledger
                        .notifications
                        .entry(record.incident.clone())
                        .or_default()
                        .insert((record.phase, record.channel.clone()), record);
                }
            }
        }
        let ids: Vec<IncidentId> = ledger.incidents.keys().cloned().collect();
        for id in ids {
            ledger.reindex(&id);
        }
        ledger
    }

    /// One incident.
    pub fn incident(&self, id: &str) -> Option<&Incident> {
        self.incidents.get(id)
    }

    /// Every incident, by id.
    pub fn incidents(&self) -> impl Iterator<Item = &Incident> {
        self.incidents.values()
    }

    /// The incidents of one kind, by id.
    pub fn incidents_of_kind(&self, kind: IncidentKind) -> impl Iterator<Item = &Incident> {
        self.kinds
            .get(&kind)
            .into_iter()
            .flatten()
            .filter_map(|id| self.incidents.get(id))
    }

    /// A ledger holding only the incidents of `kinds` and their records: a small copy to try
    /// commands on, where a copy of everything would cost as much as the ledger.
    pub fn only_kinds(&self, kinds: &[IncidentKind]) -> Ledger {
        let records = kinds
            .iter()
            .flat_map(|kind| self.incidents_of_kind(*kind))
            .flat_map(|incident| {
                let records = self.notifications_of(&incident.id).cloned();
                std::iter::once(Record::Incident(incident.clone()))
                    .chain(records.map(Record::Notification))
            });
        Self::from_records(records)
    }

    /// How many incidents the ledger holds.
    pub fn incident_count(&self) -> usize {
        self.incidents.len()
    }

    /// The incidents that may still owe a message, by id: every incident not closed, and a
    /// closed one with a record pending or announced on a channel that has not said it is
    /// over yet.
    pub fn active_incidents(&self) -> impl Iterator<Item = &Incident> {
        self.active.iter().filter_map(|id| self.incidents.get(id))
    }

    /// When the closed incident that ended first ended (unix ms), among those that
    /// [`LedgerCommand::Forget`] can drop (nothing pending), if any.
    pub fn oldest_closed_at_ms(&self) -> Option<u64> {
        self.closed
            .iter()
            .find(|(_, id)| !self.notifications_of(id).any(Notification::is_pending))
            .map(|(at, _)| *at)
    }

    /// The notification records of one incident, by message then channel.
    pub fn notifications_of<'a>(
        &'a self,
        id: &'a str,
    ) -> impl Iterator<Item = &'a Notification> + 'a {
        self.notifications
            .get(id)
            .into_iter()
            .flat_map(|r| r.values())
    }

    /// The record of one message of an incident on one channel.
    pub fn notification(&self, id: &str, phase: Phase, channel: &str) -> Option<&Notification> {
        self.notifications
            .get(id)?
            .get(&(phase, channel.to_owned()))
    }

    /// Every notification record, by incident, message and channel.
    pub fn notifications(&self) -> impl Iterator<Item = &Notification> {
        self.notifications.values().flat_map(|r| r.values())
    }

    /// The record `key` names, if the ledger holds it.
    pub fn record(&self, key: &RecordKey) -> Option<RecordRef<'_>> {
        match key {
            RecordKey::Incident(id) => self.incidents.get(id).map(RecordRef::Incident),
            RecordKey::Notification(id, phase, channel) => self
                .notification(id, *phase, channel)
                .map(RecordRef::Notification),
        }
    }

    /// Every record with its key: incidents, then notification records.
    pub fn records(&self) -> impl Iterator<Item = (RecordKey, RecordRef<'_>)> {
        let incidents = self
            .incidents
            .values()
            .map(|i| (RecordKey::Incident(i.id.clone()), RecordRef::Incident(i)));
        let notifications = self.notifications().map(|n| {
            (
                RecordKey::Notification(n.incident.clone(), n.phase, n.channel.clone()),
                RecordRef::Notification(n),
            )
        });
        incidents.chain(notifications)
    }

    /// Every command needed to rebuild this ledger elsewhere (for [`LedgerCommand::Merge`]),
    /// incident by incident in the order things happened to it ([`Ledger::commands_of`]).
    pub fn as_commands(&self) -> Vec<LedgerCommand> {
        self.incidents
            .keys()
            .flat_map(|id| self.commands_of(id))
            .collect()
    }

    /// The commands that rebuild one incident and its records elsewhere, in the order they
    /// happened: the opening, its opening and reminder records, its resolution, then its
    /// closing records (so that completing a closing record closes the incident there too).
    pub fn commands_of(&self, id: &str) -> Vec<LedgerCommand> {
        let Some(incident) = self.incidents.get(id) else {
            return Vec::new();
        };
        let mut commands = vec![opening(incident)];
        let (closing, news): (Vec<&Notification>, Vec<&Notification>) = self
            .notifications_of(id)
            .partition(|record| record.phase == Phase::Resolved);
        for record in news {
            push_record(&mut commands, record);
        }
        commands.extend(resolution(incident));
        for record in closing {
            push_record(&mut commands, record);
        }
        commands
    }

    /// This ledger with `base` folded under it: what `base` holds and this one does not is
    /// added; where both hold something, this one wins.
    pub fn over(&self, base: &Ledger) -> Ledger {
        let mut combined = self.clone();
        combined.apply(&LedgerCommand::Merge(base.as_commands()));
        combined
    }

    fn open(&mut self, incident: &Incident, changes: &mut Changes) -> Applied {
        if self.incidents.contains_key(&incident.id) {
            return Applied::AlreadyRecorded;
        }
        let mut incident = incident.clone();
        incident.state = IncidentState::Open;
        incident.resolved_at_ms = None;
        let id = incident.id.clone();
        self.incidents.insert(id.clone(), incident);
        changes.incident(&id);
        self.reindex(&id);
        Applied::Changed
    }

    fn intend(&mut self, record: &Notification, changes: &mut Changes) -> Applied {
        let Some(incident) = self.incidents.get(&record.incident) else {
            return unknown(&record.incident);
        };
        let too_late = match record.phase {
            Phase::Opened => incident.state == IncidentState::Closed,
            Phase::Reminder(_) => incident.state != IncidentState::Notified,
            Phase::Resolved => false,
        };
        if too_late {
            return Applied::Refused(Refusal::NotDue {
                incident: record.incident.clone(),
                state: incident.state,
                phase: record.phase,
            });
        }
        self.record_intent(record, changes)
    }

    /// Adds an intent record for a known incident unless one exists for its message and
    /// channel.
    fn record_intent(&mut self, record: &Notification, changes: &mut Changes) -> Applied {
        if !self.incidents.contains_key(&record.incident) {
            return unknown(&record.incident);
        }
        let records = self
            .notifications
            .entry(record.incident.clone())
            .or_default();
        let key = (record.phase, record.channel.clone());
        if records.contains_key(&key) {
            return Applied::AlreadyRecorded;
        }
        records.insert(
            key,
            Notification {
                outcome: Outcome::Pending,
                ..record.clone()
            },
        );
        changes.notification(&record.incident, record.phase, &record.channel);
        self.reindex(&record.incident);
        Applied::Changed
    }

    fn complete(
        &mut self,
        incident: &str,
        phase: Phase,
        channel: &str,
        outcome: &Outcome,
        changes: &mut Changes,
    ) -> Applied {
        if *outcome == Outcome::Pending {
            return Applied::Refused(Refusal::PendingOutcome {
                incident: incident.to_owned(),
                phase,
                channel: channel.to_owned(),
            });
        }
        let Some(record) = self.record_mut(incident, phase, channel) else {
            return no_intent(incident, phase, channel);
        };
        if !record.is_pending() {
            return Applied::AlreadyRecorded;
        }
        record.outcome = outcome.clone();
        changes.notification(incident, phase, channel);
        if phase == Phase::Resolved {
            self.supersede(incident, channel, outcome, changes);
        }
        self.settle(incident, phase, changes);
        self.reindex(incident);
        Applied::Changed
    }

    fn reassign(
        &mut self,
        incident: &str,
        phase: Phase,
        channel: &str,
        taker: &Taker<'_>,
        changes: &mut Changes,
    ) -> Applied {
        let Some(record) = self.record_mut(incident, phase, channel) else {
            return no_intent(incident, phase, channel);
        };
        if record.is_pending() && record.by_node == *taker.from_node {
            record.by_node = taker.to_node.clone();
            record.mode = taker.mode;
            record.intent_at_ms = taker.at_ms;
            changes.notification(incident, phase, channel);
            return Applied::Changed;
        }
        if record.by_node == *taker.to_node {
            return Applied::AlreadyRecorded;
        }
        Applied::Refused(Refusal::NotHeld {
            incident: incident.to_owned(),
            phase,
            channel: channel.to_owned(),
            from_node: taker.from_node.clone(),
        })
    }

    fn resolve(&mut self, id: &str, at_ms: u64, changes: &mut Changes) -> Applied {
        let announced = self
            .notifications_of(id)
            .any(|record| record.phase == Phase::Opened);
        let Some(incident) = self.incidents.get_mut(id) else {
            return unknown(id);
        };
        if matches!(
            incident.state,
            IncidentState::Resolved | IncidentState::Closed
        ) {
            return Applied::AlreadyRecorded;
        }
        incident.resolved_at_ms = Some(at_ms);
        // An incident over before anything was said about it (a flap shorter than group_wait)
        // is recorded and closed: there is nothing to take back.
        incident.state = if announced {
            IncidentState::Resolved
        } else {
            IncidentState::Closed
        };
        changes.incident(id);
        // Closing records completed before the resolution arrived (a merge) close it now.
        if self
            .notifications_of(id)
            .any(|record| record.phase == Phase::Resolved)
        {
            self.settle(id, Phase::Resolved, changes);
        }
        self.reindex(id);
        Applied::Changed
    }

    fn merge(&mut self, commands: &[LedgerCommand], changes: &mut Changes) -> Applied {
        let changed = commands
            .iter()
            .map(|c| match c {
                // What the other side sent was sent: keep its record even where this side
                // would no longer accept a new intent (it closed the incident).
                LedgerCommand::Intend { record } => self.record_intent(record, changes),
                other => self.apply_recording(other, changes),
            })
            .filter(|a| *a == Applied::Changed)
            .count();
        if changed > 0 {
            Applied::Changed
        } else {
            Applied::AlreadyRecorded
        }
    }

    /// Forgets closed incidents that ended before `before_ms` and have nothing pending.
    fn forget(&mut self, before_ms: u64, changes: &mut Changes) -> Applied {
        let expired: Vec<(u64, IncidentId)> = self
            .closed
            .iter()
            .take_while(|(at, _)| *at < before_ms)
            .filter(|(_, id)| !self.notifications_of(id).any(Notification::is_pending))
            .cloned()
            .collect();
        if expired.is_empty() {
            return Applied::AlreadyRecorded;
        }
        for (at, id) in expired {
            self.closed.remove(&(at, id.clone()));
            self.incidents.remove(&id);
            self.reindex(&id);
            for (phase, channel) in self
                .notifications
                .remove(&id)
                .unwrap_or_default()
                .into_keys()
            {
                changes.notification(&id, phase, &channel);
            }
            changes.incident(&id);
        }
        Applied::Changed
    }

    /// Gives the news records of `id` on `channel` still pending when its closing message
    /// went out (their sender died before its outcome was known) an outcome: their news is
    /// over, and nobody may send it again.
    fn supersede(&mut self, id: &str, channel: &str, closing: &Outcome, changes: &mut Changes) {
        let at_ms = match closing {
            Outcome::Sent { at_ms, .. } | Outcome::Failed { at_ms, .. } => *at_ms,
            Outcome::Pending => return,
        };
        let Some(records) = self.notifications.get_mut(id) else {
            return;
        };
        let mut superseded = Vec::new();
        for ((phase, on), record) in records.iter_mut() {
            if *on == channel && *phase != Phase::Resolved && record.is_pending() {
                record.outcome = Outcome::Failed {
                    at_ms,
                    error: "outcome unknown (its sender stopped); superseded by the closing \
                            message"
                        .into(),
                };
                superseded.push(*phase);
            }
        }
        for phase in superseded {
            changes.notification(id, phase, channel);
        }
    }

    /// Moves an incident on once every intended message of a phase has an outcome.
    fn settle(&mut self, id: &str, phase: Phase, changes: &mut Changes) {
        let all_done = self
            .notifications_of(id)
            .filter(|n| n.phase == phase)
            .all(|n| !n.is_pending());
        if !all_done {
            return;
        }
        if let Some(incident) = self.incidents.get_mut(id) {
            let next = match (incident.state, phase) {
                (IncidentState::Open, Phase::Opened) => IncidentState::Notified,
                (IncidentState::Resolved, Phase::Resolved) => IncidentState::Closed,
                (state, _) => state,
            };
            if next != incident.state {
                incident.state = next;
                changes.incident(id);
            }
        }
    }

    fn record_mut(&mut self, id: &str, phase: Phase, channel: &str) -> Option<&mut Notification> {
        self.notifications
            .get_mut(id)?
            .get_mut(&(phase, channel.to_owned()))
    }

    /// Brings the active and closed indexes in line with incident `id` as it now stands.
    fn reindex(&mut self, id: &str) {
        let Some(incident) = self.incidents.get(id) else {
            self.active.remove(id);
            self.kinds.retain(|_, ids| {
                ids.remove(id);
                !ids.is_empty()
            });
            return;
        };
        let of_kind = self.kinds.entry(incident.kind).or_default();
        if !of_kind.contains(id) {
            of_kind.insert(id.to_owned());
        }
        let records = self.notifications.get(id);
        let closed = incident.state == IncidentState::Closed;
        if closed {
            self.closed.insert((incident.ended_at_ms(), id.to_owned()));
        }
        let owes = !closed
            || records.is_some_and(|r| r.values().any(Notification::is_pending) || owes_closing(r));
        if owes {
            self.active.insert(id.to_owned());
        } else {
            self.active.remove(id);
        }
    }
}

/// Who takes a pending record over.
struct Taker<'a> {
    from_node: &'a String,
    to_node: &'a String,
    mode: LeaderMode,
    at_ms: u64,
}

/// Whether some channel announced the incident and has no closing record yet.
fn owes_closing(records: &RecordsOf) -> bool {
    records
        .keys()
        .filter(|(phase, _)| *phase == Phase::Opened)
        .any(|(_, channel)| !records.contains_key(&(Phase::Resolved, channel.clone())))
}

fn unknown(id: &str) -> Applied {
    Applied::Refused(Refusal::UnknownIncident {
        incident: id.to_owned(),
    })
}

fn no_intent(id: &str, phase: Phase, channel: &str) -> Applied {
    Applied::Refused(Refusal::NoIntent {
        incident: id.to_owned(),
        phase,
        channel: channel.to_owned(),
    })
}

#[cfg(test)]
mod merge_tests;

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
    fn incidents_are_found_by_kind_and_a_copy_of_some_kinds_keeps_their_records_only() {
        let mut ledger = Ledger::default();
        ledger.apply(&LedgerCommand::Open(incident("down/n3/7")));
        ledger.apply(&LedgerCommand::Open(Incident::new(
            "alert/t/n3/disk/5",
            IncidentKind::AlertFiring,
            "disk on n3",
            100,
        )));
        ledger.apply(&intent("down/n3/7", Phase::Opened, "email"));
        ledger.apply(&intent("alert/t/n3/disk/5", Phase::Opened, "email"));
        let ids = |l: &Ledger, kind| -> Vec<String> {
            l.incidents_of_kind(kind).map(|i| i.id.clone()).collect()
        };
        assert_eq!(ids(&ledger, IncidentKind::HostDown), ["down/n3/7"]);
        assert_eq!(
            ids(&ledger, IncidentKind::AlertFiring),
            ["alert/t/n3/disk/5"]
        );
        let hosts = ledger.only_kinds(&[IncidentKind::HostDown]);
        assert_eq!(hosts.incident_count(), 1);
        assert_eq!(hosts.notifications().count(), 1);
        assert_eq!(
            hosts.notification("down/n3/7", Phase::Opened, "email"),
            ledger.notification("down/n3/7", Phase::Opened, "email")
        );
        // Forgotten incidents leave the index too.
        let id = "alert/t/n3/disk/5";
        ledger.apply(&sent(id, Phase::Opened, "email"));
        ledger.apply(&LedgerCommand::Resolve {
            incident: id.into(),
            at_ms: 200,
        });
        ledger.apply(&intent(id, Phase::Resolved, "email"));
        ledger.apply(&sent(id, Phase::Resolved, "email"));
        ledger.apply(&LedgerCommand::Forget {
            closed_before_ms: 1_000,
        });
        assert!(ids(&ledger, IncidentKind::AlertFiring).is_empty());
        let records = ledger.records().map(|(_, record)| match record {
            RecordRef::Incident(i) => Record::Incident(i.clone()),
            RecordRef::Notification(n) => Record::Notification(n.clone()),
        });
        assert_eq!(
            ledger,
            Ledger::from_records(records),
            "the index is as a reload builds it"
        );
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
        let unknown = Applied::Refused(Refusal::UnknownIncident {
            incident: "x".into(),
        });
        assert_eq!(ledger.apply(&intent("x", Phase::Opened, "email")), unknown);
        assert_eq!(
            ledger.apply(&sent("x", Phase::Opened, "email")),
            Applied::Refused(Refusal::NoIntent {
                incident: "x".into(),
                phase: Phase::Opened,
                channel: "email".into()
            })
        );
        let resolve = LedgerCommand::Resolve {
            incident: "x".into(),
            at_ms: 1,
        };
        assert_eq!(ledger.apply(&resolve), unknown);
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
        assert_eq!(
            ledger.apply(&intent(id, Phase::Opened, "email")),
            Applied::Refused(Refusal::NotDue {
                incident: id.into(),
                state: IncidentState::Closed,
                phase: Phase::Opened
            })
        );
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
        assert_eq!(
            ledger.apply(&take("n4")),
            Applied::Refused(Refusal::NotHeld {
                incident: id.into(),
                phase: Phase::Opened,
                channel: "email".into(),
                from_node: "n1".into()
            })
        );
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

    fn resolve(id: &str, at_ms: u64) -> LedgerCommand {
        LedgerCommand::Resolve {
            incident: id.into(),
            at_ms,
        }
    }

    /// An incident announced and closed on email, ended at `resolved_at`.
    fn closed_incident(ledger: &mut Ledger, id: &str, resolved_at: u64) {
        ledger.apply(&LedgerCommand::Open(incident(id)));
        ledger.apply(&intent(id, Phase::Opened, "email"));
        ledger.apply(&sent(id, Phase::Opened, "email"));
        ledger.apply(&resolve(id, resolved_at));
        ledger.apply(&intent(id, Phase::Resolved, "email"));
        ledger.apply(&sent(id, Phase::Resolved, "email"));
        assert_eq!(ledger.incident(id).unwrap().state, IncidentState::Closed);
    }

    #[test]
    fn the_records_of_an_incident_are_its_own_even_when_another_id_starts_with_it() {
        let mut ledger = Ledger::default();
        for id in ["a", "ab", "b"] {
            ledger.apply(&LedgerCommand::Open(incident(id)));
            ledger.apply(&intent(id, Phase::Opened, "email"));
        }
        ledger.apply(&intent("a", Phase::Opened, "console"));
        let of_a: Vec<_> = ledger
            .notifications_of("a")
            .map(|n| (n.incident.as_str(), n.channel.as_str()))
            .collect();
        assert_eq!(of_a, vec![("a", "console"), ("a", "email")]);
        assert_eq!(ledger.notifications().count(), 4);
        assert!(ledger.notification("ab", Phase::Opened, "email").is_some());
        assert!(ledger
            .notification("ab", Phase::Opened, "console")
            .is_none());
    }

    #[test]
    fn forgetting_drops_closed_incidents_that_ended_before_the_cut_off_with_their_records() {
        let mut ledger = Ledger::default();
        closed_incident(&mut ledger, "old", 1_000);
        closed_incident(&mut ledger, "recent", 5_000);
        ledger.apply(&LedgerCommand::Open(incident("open")));
        // Closed, but its opening on console is still pending (a send under way): it stays.
        ledger.apply(&LedgerCommand::Open(incident("pending")));
        ledger.apply(&intent("pending", Phase::Opened, "console"));
        ledger.apply(&resolve("pending", 500));
        ledger.apply(&intent("pending", Phase::Resolved, "email"));
        ledger.apply(&sent("pending", Phase::Resolved, "email"));
        assert_eq!(
            ledger.incident("pending").unwrap().state,
            IncidentState::Closed
        );
        assert_eq!(
            ledger.oldest_closed_at_ms(),
            Some(1_000),
            "the one ended at 500 still has a record pending"
        );

        let forget = LedgerCommand::Forget {
            closed_before_ms: 5_000,
        };
        let mut changes = Changes::default();
        assert_eq!(
            ledger.apply_recording(&forget, &mut changes),
            Applied::Changed
        );
        let ids: Vec<&str> = ledger.incidents().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, vec!["open", "pending", "recent"]);
        assert_eq!(ledger.notifications_of("old").count(), 0);
        let touched: Vec<RecordKey> = changes.keys().cloned().collect();
        assert_eq!(
            touched,
            vec![
                RecordKey::Incident("old".into()),
                RecordKey::Notification("old".into(), Phase::Opened, "email".into()),
                RecordKey::Notification("old".into(), Phase::Resolved, "email".into()),
            ]
        );
        assert!(touched.iter().all(|key| ledger.record(key).is_none()));
        assert_eq!(ledger.apply(&forget), Applied::AlreadyRecorded);
    }

    #[test]
    fn every_replica_that_applies_the_same_commands_forgets_the_same_incidents() {
        let mut commands = Vec::new();
        let mut first = Ledger::default();
        for (n, at) in [(1, 100), (2, 900), (3, 400)] {
            let id = format!("i{n}");
            for c in [
                LedgerCommand::Open(incident(&id)),
                intent(&id, Phase::Opened, "email"),
                sent(&id, Phase::Opened, "email"),
                resolve(&id, at),
                intent(&id, Phase::Resolved, "email"),
                sent(&id, Phase::Resolved, "email"),
            ] {
                first.apply(&c);
                commands.push(c);
            }
        }
        commands.push(LedgerCommand::Forget {
            closed_before_ms: 500,
        });
        first.apply(commands.last().unwrap());
        let mut second = Ledger::default();
        for c in &commands {
            second.apply(c);
        }
        assert_eq!(first, second);
        let ids: Vec<&str> = second.incidents().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, vec!["i2"]);
    }

    #[test]
    fn applying_records_which_records_it_touched() {
        let mut ledger = Ledger::default();
        let mut changes = Changes::default();
        ledger.apply_recording(&LedgerCommand::Open(incident("a")), &mut changes);
        ledger.apply_recording(&intent("a", Phase::Opened, "email"), &mut changes);
        assert_eq!(changes.len(), 2);
        let mut changes = Changes::default();
        ledger.apply_recording(&sent("a", Phase::Opened, "email"), &mut changes);
        assert_eq!(
            changes.keys().cloned().collect::<Vec<_>>(),
            vec![
                RecordKey::Incident("a".into()),
                RecordKey::Notification("a".into(), Phase::Opened, "email".into()),
            ],
            "the record, and the incident it moved to notified"
        );
        let mut changes = Changes::default();
        ledger.apply_recording(&sent("a", Phase::Opened, "email"), &mut changes);
        ledger.apply_recording(&intent("x", Phase::Opened, "email"), &mut changes);
        assert!(changes.is_empty(), "a replay and a refusal touch nothing");
    }

    #[test]
    fn a_ledger_rebuilt_from_its_records_equals_the_one_they_came_from() {
        let mut ledger = Ledger::default();
        closed_incident(&mut ledger, "a", 1_000);
        ledger.apply(&LedgerCommand::Open(incident("b")));
        ledger.apply(&intent("b", Phase::Opened, "email"));
        let owned: Vec<Record> = ledger
            .records()
            .map(|(_, record)| match record {
                RecordRef::Incident(i) => Record::Incident(i.clone()),
                RecordRef::Notification(n) => Record::Notification(n.clone()),
            })
            .collect();
        assert_eq!(owned.len(), 5);
        let rebuilt = Ledger::from_records(owned.into_iter().rev());
        assert_eq!(rebuilt, ledger);
        let active: Vec<&str> = rebuilt.active_incidents().map(|i| i.id.as_str()).collect();
        assert_eq!(active, vec!["b"]);
    }

    #[test]
    fn a_closed_incident_stays_active_while_a_channel_that_announced_it_owes_its_ending() {
        let mut ledger = Ledger::default();
        ledger.apply(&LedgerCommand::Open(incident("a")));
        for channel in ["email", "exec"] {
            ledger.apply(&intent("a", Phase::Opened, channel));
            ledger.apply(&sent("a", Phase::Opened, channel));
        }
        ledger.apply(&resolve("a", 200));
        // The exec says it is over; the email channel was busy and has not yet.
        ledger.apply(&intent("a", Phase::Resolved, "exec"));
        ledger.apply(&sent("a", Phase::Resolved, "exec"));
        assert_eq!(ledger.incident("a").unwrap().state, IncidentState::Closed);
        assert_eq!(ledger.active_incidents().count(), 1);
        ledger.apply(&intent("a", Phase::Resolved, "email"));
        assert_eq!(ledger.active_incidents().count(), 1, "pending");
        ledger.apply(&sent("a", Phase::Resolved, "email"));
        assert_eq!(ledger.active_incidents().count(), 0);
    }

    /// The ledger as it was serialized before it was indexed by incident.
    #[derive(Serialize)]
    struct FlatLedger {
        incidents: BTreeMap<IncidentId, Incident>,
        notifications: BTreeMap<(IncidentId, Phase, String), Notification>,
    }

    #[test]
    fn the_ledger_serializes_to_the_same_bytes_as_before_it_was_indexed() {
        let mut ledger = Ledger::default();
        closed_incident(&mut ledger, "a", 1_000);
        ledger.apply(&LedgerCommand::Open(incident("b")));
        ledger.apply(&intent("b", Phase::Opened, "console"));
        let flat = FlatLedger {
            incidents: ledger
                .incidents()
                .map(|i| (i.id.clone(), i.clone()))
                .collect(),
            notifications: ledger
                .notifications()
                .map(|n| ((n.incident.clone(), n.phase, n.channel.clone()), n.clone()))
                .collect(),
        };
        let bytes = postcard::to_stdvec(&ledger).unwrap();
        assert_eq!(bytes, postcard::to_stdvec(&flat).unwrap());
        assert_eq!(postcard::from_bytes::<Ledger>(&bytes).unwrap(), ledger);
    }
}
