//! The changes to the ledger ([`LedgerCommand`], proposed through Raft) and what applying one
//! did ([`Applied`], with a typed [`Refusal`]).

use serde::{Deserialize, Serialize};

use super::records::{
    Incident, IncidentId, IncidentState, LeaderMode, Notification, Outcome, Phase,
};

/// A change to the ledger, as proposed through Raft. Only append variants (postcard: the
/// variant's position is its tag on disk and on the wire).
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
    /// Retention: forget every closed incident that ended before `closed_before_ms` (unix ms),
    /// with its notification records, unless one of them is still pending. The cut-off is in
    /// the command, so every replica forgets the same incidents whenever it applies it.
    Forget {
        /// Incidents that ended before this time (unix ms) go.
        closed_before_ms: u64,
    },
}

impl LedgerCommand {
    /// The incident this command is about (`None` for a merge or a forget).
    pub fn incident_id(&self) -> Option<&str> {
        match self {
            Self::Open(incident) => Some(&incident.id),
            Self::Intend { record } => Some(&record.incident),
            Self::Complete { incident, .. }
            | Self::Resolve { incident, .. }
            | Self::Reassign { incident, .. } => Some(incident),
            Self::Merge(_) | Self::Forget { .. } => None,
        }
    }
}

/// What applying a command did to the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applied {
    /// The ledger changed.
    Changed,
    /// Already recorded (a replay, a retry or a merge duplicate), or nothing to do: the
    /// ledger is unchanged.
    AlreadyRecorded,
    /// Refused, for the reason given: the ledger is unchanged.
    Refused(Refusal),
}

/// Why a command was refused. A refused command changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    /// The command is about an incident the ledger does not hold (never opened here, or
    /// forgotten after its retention). Nothing changed.
    #[error("no incident {incident}")]
    UnknownIncident {
        /// The incident named.
        incident: IncidentId,
    },
    /// An outcome or a takeover for a message nobody intended on that channel. Nothing
    /// changed.
    #[error("no intent for {incident} {phase:?} on {channel}")]
    NoIntent {
        /// The incident.
        incident: IncidentId,
        /// The message.
        phase: Phase,
        /// The channel.
        channel: String,
    },
    /// An intent for a message the incident no longer owes (an opening once it is closed, a
    /// reminder unless it is notified). Nothing changed.
    #[error("{incident} is {state:?}: no {phase:?} message is due")]
    NotDue {
        /// The incident.
        incident: IncidentId,
        /// Where it stands.
        state: IncidentState,
        /// The message intended.
        phase: Phase,
    },
    /// A takeover of a record that is no longer pending with the node it was taken from
    /// (completed, or taken by another node first). Nothing changed.
    #[error("{incident} {phase:?} on {channel} is no longer pending with {from_node}")]
    NotHeld {
        /// The incident.
        incident: IncidentId,
        /// The message.
        phase: Phase,
        /// The channel.
        channel: String,
        /// The node it was to be taken from.
        from_node: String,
    },
    /// An outcome that says `Pending`: only a real outcome completes a record. Nothing
    /// changed.
    #[error("the outcome of {incident} {phase:?} on {channel} cannot be pending")]
    PendingOutcome {
        /// The incident.
        incident: IncidentId,
        /// The message.
        phase: Phase,
        /// The channel.
        channel: String,
    },
}

/// The command that opens `incident` elsewhere (as it was opened: its state follows).
pub(crate) fn opening(incident: &Incident) -> LedgerCommand {
    LedgerCommand::Open(Incident {
        state: IncidentState::Open,
        resolved_at_ms: None,
        ..incident.clone()
    })
}

/// The commands that rebuild `record` elsewhere: its intent, then its outcome if known.
pub(crate) fn push_record(commands: &mut Vec<LedgerCommand>, record: &Notification) {
    commands.push(LedgerCommand::Intend {
        record: Notification {
            outcome: Outcome::Pending,
            ..record.clone()
        },
    });
    if !record.is_pending() {
        commands.push(LedgerCommand::Complete {
            incident: record.incident.clone(),
            phase: record.phase,
            channel: record.channel.clone(),
            outcome: record.outcome.clone(),
        });
    }
}

/// The command that resolves `incident` elsewhere, if it is over.
pub(crate) fn resolution(incident: &Incident) -> Option<LedgerCommand> {
    incident.resolved_at_ms.map(|at_ms| LedgerCommand::Resolve {
        incident: incident.id.clone(),
        at_ms,
    })
}
