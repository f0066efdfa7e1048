//! What the ledger records: incidents and the notification records about them.

use serde::{Deserialize, Serialize};

/// Identifies an incident across the cluster.
pub type IncidentId = String;

/// What an incident is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
    /// The opening message was sent (or at least attempted on every channel that took it up).
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

    /// Whether it is still going on (open or notified).
    pub fn is_ongoing(&self) -> bool {
        matches!(self.state, IncidentState::Open | IncidentState::Notified)
    }

    /// When it ended, for retention: its resolution time (an incident closed without one, which
    /// only a damaged record could be, counts from when it opened).
    pub fn ended_at_ms(&self) -> u64 {
        self.resolved_at_ms.unwrap_or(self.opened_at_ms)
    }
}

/// Which message of an incident a notification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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

impl Notification {
    /// Whether its outcome is still unknown.
    pub fn is_pending(&self) -> bool {
        self.outcome == Outcome::Pending
    }
}
