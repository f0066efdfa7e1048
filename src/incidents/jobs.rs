//! The work the incident engine hands to spawned tasks, so that its own loop never awaits a
//! notifier, a Raft commit or a peer: each task ends with a [`Done`] that the loop takes as an
//! input.
//!
//! - [`send_on_channel`]: claim the due messages of one channel (commit the intents, or take
//!   over orphaned ones), then send one message covering everything claimed;
//! - [`write`]: commit what reconciling found (incidents opened and resolved, retention);
//! - [`record`]: commit the outcome of a send (retried by the loop while it cannot commit).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use rover_election::ledger::{
    Applied, Incident, IncidentId, LeaderMode, LedgerCommand, Notification, Outcome, Phase,
};
use rover_election::policy::{Claim, Work};
use tokio::time::Instant;

use super::message::{compose, Sender};
use crate::leadership::LeadershipHandle;
use crate::notify::{Delivery, Message, NotifyError};

/// Recording an outcome is tried this often, [`OUTCOME_RETRY`] apart (an election takes a few
/// seconds; a successor takes over a pending record only after minutes).
pub const OUTCOME_ATTEMPTS: u32 = 15;
/// How long the engine waits before trying to record an outcome again.
pub const OUTCOME_RETRY: Duration = Duration::from_secs(2);

/// Where messages go: the configured notifiers, by channel name.
pub trait Deliver: Send + Sync + 'static {
    /// Channel names, the same on every node with the same config.
    fn channels(&self) -> Vec<String>;
    /// Sends `message` on `channel`.
    fn deliver(
        &self,
        channel: &str,
        message: &Message,
    ) -> impl Future<Output = Result<Delivery, NotifyError>> + Send;
}

impl Deliver for crate::notify::Notifiers {
    fn channels(&self) -> Vec<String> {
        self.names()
    }

    async fn deliver(&self, channel: &str, message: &Message) -> Result<Delivery, NotifyError> {
        self.send(channel, message).await
    }
}

/// How a spawned task ended: an input of the engine's loop.
#[derive(Debug)]
pub enum Done {
    /// A channel's message went out, or failed for good.
    Sent {
        /// The channel.
        channel: String,
        /// How this node led when it claimed the messages.
        mode: LeaderMode,
        /// The incidents and messages the send covered.
        items: Vec<(IncidentId, Phase)>,
        /// What the notifier said.
        result: Result<Delivery, NotifyError>,
    },
    /// A channel sent nothing: another node had claimed everything first, or the claim could
    /// not be committed (`error`).
    NotClaimed {
        /// The channel.
        channel: String,
        /// Why the claim failed, if it did.
        error: Option<anyhow::Error>,
    },
    /// Reconciling's changes were committed, or not.
    Wrote(Result<()>),
    /// Outcomes were recorded, or not.
    Recorded {
        /// The outcomes.
        outcome: Unrecorded,
        /// Whether they were committed.
        result: Result<()>,
    },
}

/// Outcomes of one send, waiting to be committed.
#[derive(Debug, Clone)]
pub struct Unrecorded {
    /// The channel they are about.
    pub channel: String,
    /// How this node led when it sent (the ledger that holds the intents).
    pub mode: LeaderMode,
    /// The `Complete` commands.
    pub commands: Vec<LedgerCommand>,
    /// Attempts so far.
    pub attempts: u32,
    /// Not before this.
    pub retry_at: Instant,
}

impl Unrecorded {
    /// The outcomes of a finished send, to record at once.
    pub fn of_send(
        channel: &str,
        mode: LeaderMode,
        items: Vec<(IncidentId, Phase)>,
        result: &Result<Delivery, NotifyError>,
        at_ms: u64,
    ) -> Self {
        let outcome = match result {
            Ok(delivery) => Outcome::Sent {
                at_ms,
                reference: delivery.reference.clone(),
            },
            Err(e) => Outcome::Failed {
                at_ms,
                error: e.to_string(),
            },
        };
        let commands = items
            .into_iter()
            .map(|(incident, phase)| LedgerCommand::Complete {
                incident,
                phase,
                channel: channel.to_owned(),
                outcome: outcome.clone(),
            })
            .collect();
        Self {
            channel: channel.to_owned(),
            mode,
            commands,
            attempts: 0,
            retry_at: Instant::now(),
        }
    }
}

/// One message to claim on a channel: the command that claims it, and the incident as the
/// engine saw it (for the text).
#[derive(Debug, Clone)]
pub struct ClaimItem {
    /// `Intend` or `Reassign`.
    pub command: LedgerCommand,
    /// The incident.
    pub incident: Incident,
    /// Which message.
    pub phase: Phase,
}

impl ClaimItem {
    /// The claim of one due `work` item about `incident`, by `me`, leading in `mode`.
    pub fn of(work: Work, incident: &Incident, me: &str, mode: LeaderMode, now_ms: u64) -> Self {
        let command = match work.claim {
            Claim::Fresh => LedgerCommand::Intend {
                record: Notification {
                    incident: work.incident,
                    phase: work.phase,
                    channel: work.channel,
                    by_node: me.to_owned(),
                    mode,
                    intent_at_ms: now_ms,
                    outcome: Outcome::Pending,
                },
            },
            Claim::TakeOver { holder } => LedgerCommand::Reassign {
                incident: work.incident,
                phase: work.phase,
                channel: work.channel,
                from_node: holder,
                to_node: me.to_owned(),
                mode,
                at_ms: now_ms,
            },
        };
        Self {
            command,
            incident: incident.clone(),
            phase: work.phase,
        }
    }
}

/// Claims `claims` on `channel` and sends one message about everything this node claimed
/// itself (`Applied::Changed`): what another node claimed first is its to send.
pub async fn send_on_channel<D: Deliver>(
    leadership: LeadershipHandle,
    notifiers: Arc<D>,
    channel: String,
    claims: Vec<ClaimItem>,
    sender: Sender,
) -> Done {
    let commands = claims.iter().map(|c| c.command.clone()).collect();
    let applied = match leadership.write_here(commands).await {
        Ok(applied) => applied,
        Err(error) => {
            return Done::NotClaimed {
                channel,
                error: Some(error.into()),
            }
        }
    };
    let claimed: Vec<(Incident, Phase)> = claims
        .into_iter()
        .zip(applied)
        .filter(|(_, applied)| *applied == Applied::Changed)
        .map(|(claim, _)| (claim.incident, claim.phase))
        .collect();
    if claimed.is_empty() {
        return Done::NotClaimed {
            channel,
            error: None,
        };
    }
    let refs: Vec<(&Incident, Phase)> = claimed.iter().map(|(i, p)| (i, *p)).collect();
    let message = compose(&refs, &sender);
    let result = notifiers.deliver(&channel, &message).await;
    Done::Sent {
        channel,
        mode: sender.mode,
        items: claimed.into_iter().map(|(i, p)| (i.id, p)).collect(),
        result,
    }
}

/// Commits reconciling's changes here, as this partition's leader.
pub async fn write(leadership: LeadershipHandle, commands: Vec<LedgerCommand>) -> Done {
    Done::Wrote(
        leadership
            .write_here(commands)
            .await
            .map(drop)
            .map_err(Into::into),
    )
}

/// Records outcomes in the ledger that holds their intents.
pub async fn record(leadership: LeadershipHandle, outcome: Unrecorded) -> Done {
    let result = leadership
        .record_outcomes(outcome.mode, outcome.commands.clone())
        .await
        .map_err(Into::into);
    Done::Recorded { outcome, result }
}
