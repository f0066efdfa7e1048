//! Notifiers: where incident messages go (console, email, Pushover, webhook/ntfy, exec).
//!
//! The incident engine composes one [`Message`] per batch of incidents and hands it to
//! [`Notifiers::send`] once per channel. A channel is one configured notifier, named so that
//! every node of the cluster (with the same config) names it the same way: the ledger records
//! each notification by incident, phase and channel name.
//!
//! A notifier retries what its provider says is worth retrying (within a bounded time) and
//! returns either a [`Delivery`] or a [`NotifyError`] saying whether the failure is permanent.

mod channels;
mod console;
mod email;
mod exec;
mod http;
pub mod identity;
pub mod pushover;
mod retry;
pub mod send_stats;
mod webhook;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use self::channels::Notifiers;
pub use self::identity::About;

/// How urgent a message is; notifiers map it to their own scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Something is over (a host is back, an alert cleared).
    Low,
    /// Something happened.
    Normal,
    /// Something critical happened (a host down, a critical alert).
    High,
}

impl Priority {
    /// `low`, `normal` or `high`, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
        }
    }
}

/// One message about one or more incidents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// One line: what happened, short enough for a phone notification.
    pub title: String,
    /// Plain text: every incident, its hosts, when each host stopped talking, and who sent it.
    pub body: String,
    /// How urgent.
    pub priority: Priority,
    /// The incidents this message covers, with everything known about them, for machines
    /// (webhook bodies, exec stdin).
    pub details: serde_json::Value,
    /// Each incident the message is about and which of its messages: what the reader's keys
    /// are derived from ([`identity`]), the same when another leader sends it again. Empty for
    /// a message about no incident.
    #[serde(skip)]
    pub about: Vec<About>,
}

/// What a provider said when it accepted a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    /// The provider's id for the message (Pushover request id, SMTP queue id), if any.
    pub reference: Option<String>,
}

/// Why a message was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The provider refused the message (bad token, bad address, 4xx): retrying cannot help.
    #[error("refused: {0}")]
    Refused(String),
    /// Delivery failed after every retry allowed (5xx, connection errors, timeouts).
    #[error("failed after retries: {0}")]
    GaveUp(String),
    /// No channel has that name.
    #[error("no notifier named {0}")]
    UnknownChannel(String),
}

/// The longest a single [`Notifiers::send`] may take, retries included. A new leader takes over
/// a pending notification of a live node only after this has passed.
pub const SEND_BUDGET: Duration = Duration::from_secs(90);
