//! Introspection (seed 002): the cluster's story as this agent saw it.
//!
//! Every agent keeps a bounded ring buffer ([`ring::EventRing`], `introspection.events`
//! entries) of structured [`ClusterEvent`]s carrying seed 002's MonInfo fields (op, node,
//! time, cluster, old cluster, member count) and a detail. The same events go to the
//! `event_log` sled tree, bounded the same way, so they survive a restart.
//!
//! One owner task ([`owner`]) holds the buffer. The places where things happen report to it
//! through a bounded channel without waiting ([`EventLog::report`]; a full channel drops the
//! report and counts it): the membership event router, the alerts owner, the incident engine.
//! The owner reads the leadership status watch itself for `LeaderStart`, `LeaderChange`,
//! `Merge` and, while this node leads, a `LeaderHeart` every minute.
//!
//! `events` reads the buffer, `monitor` streams new events (and log lines, [`log_stream`])
//! through a broadcast whose readers each drop what they cannot keep up with and are told how
//! many; [`remote`] answers `members`, `info` and `events` asked over the sealed cluster port.
//!
//! `Suspect`, `Refute` and `Probe` come from the membership core's own reports of
//! suspicions, refutations and failed direct probes (at most one `Probe` per member every
//! [`rover_membership::core::PROBE_EVENT_EVERY`]); foca itself notifies only up, down,
//! rename, active, idle and rejoin.

pub mod log_stream;
pub mod owner;
pub mod remote;
pub mod ring;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot};

pub use self::owner::spawn;

/// The ring buffer's size when `introspection.events` is not set.
pub const DEFAULT_EVENTS: usize = 10_000;

/// Reports waiting for the owner at most; past that they are dropped and counted.
pub const REPORT_QUEUE: usize = 4_096;

/// Events a `monitor` reader may fall behind by before it loses the oldest.
pub const MONITOR_QUEUE: usize = 256;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EventOp {
    /// A member was seen for the first time (or again after it left).
    Join,
    /// A member left on purpose.
    Leave,
    /// A member is suspected (a probe failed, here or at the member that reported it).
    Suspect,
    /// A member was declared down.
    Down,
    /// A member (or this agent) refuted a suspicion.
    Refute,
    /// A member declared down is back (or this agent, declared down, rejoined).
    Rejoin,
    /// An agent started: this one at its start, or a member seen with a new generation.
    Reboot,
    /// The first leader this agent saw.
    LeaderStart,
    /// This agent still leads (every minute while it does).
    LeaderHeart,
    /// The leader (or how it leads) changed.
    LeaderChange,
    /// A direct probe of ours failed (at most one per member every 10 s).
    Probe,
    /// This agent's Raft group became another one: two groups became one.
    Merge,
    /// An alert changed state.
    Alert,
    /// A notification was sent (or failed).
    Notification,
}

impl EventOp {
    /// Every op, in order.
    pub const ALL: [EventOp; 14] = [
        EventOp::Join,
        EventOp::Leave,
        EventOp::Suspect,
        EventOp::Down,
        EventOp::Refute,
        EventOp::Rejoin,
        EventOp::Reboot,
        EventOp::LeaderStart,
        EventOp::LeaderHeart,
        EventOp::LeaderChange,
        EventOp::Probe,
        EventOp::Merge,
        EventOp::Alert,
        EventOp::Notification,
    ];

    /// Its name, as printed and as `--op` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            EventOp::Join => "Join",
            EventOp::Leave => "Leave",
            EventOp::Suspect => "Suspect",
            EventOp::Down => "Down",
            EventOp::Refute => "Refute",
            EventOp::Rejoin => "Rejoin",
            EventOp::Reboot => "Reboot",
            EventOp::LeaderStart => "LeaderStart",
            EventOp::LeaderHeart => "LeaderHeart",
            EventOp::LeaderChange => "LeaderChange",
            EventOp::Probe => "Probe",
            EventOp::Merge => "Merge",
            EventOp::Alert => "Alert",
            EventOp::Notification => "Notification",
        }
    }
}

impl std::fmt::Display for EventOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An op name that is none of [`EventOp::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event op {0:?} (expected one of Join, Leave, Suspect, Down, Refute, Rejoin, Reboot, LeaderStart, LeaderHeart, LeaderChange, Probe, Merge, Alert, Notification)")]
pub struct UnknownOp(pub String);

impl std::str::FromStr for EventOp {
    type Err = UnknownOp;

    /// Case-insensitive.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        EventOp::ALL
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| UnknownOp(text.to_owned()))
    }
}

/// One event: seed 002's MonInfo and a detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterEvent {
    /// Its number on this agent, counting up across restarts.
    pub seq: u64,
    /// What happened.
    pub op: EventOp,
    /// The node it happened to (the agent itself for `Reboot` at start and `LeaderHeart`).
    pub node: String,
    /// When this agent saw it (Unix ms).
    pub at_ms: u64,
    /// This agent's Raft group id (hex) then, empty while it is in none.
    pub cluster: String,
    /// The group before, for a `Merge` (and a change of group seen with a leader change).
    pub old_cluster: Option<String>,
    /// Members alive as this agent saw them then, itself included.
    pub members: usize,
    /// Free text: generation, leaders and term, alert state, channel.
    pub detail: String,
}

/// Which events a reader wants: all conditions hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFilter {
    /// Only events at or after this time (Unix ms).
    pub since_ms: Option<u64>,
    /// Only these ops (empty: every op).
    pub ops: Vec<EventOp>,
    /// Only events about this node.
    pub node: Option<String>,
}

impl EventFilter {
    /// Whether `event` passes.
    pub fn matches(&self, event: &ClusterEvent) -> bool {
        self.since_ms.is_none_or(|since| event.at_ms >= since)
            && (self.ops.is_empty() || self.ops.contains(&event.op))
            && self.node.as_ref().is_none_or(|node| *node == event.node)
    }
}

/// How many events there were, for `info` and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCounts {
    /// Events in the buffer now.
    pub held: usize,
    /// Its size (`introspection.events`).
    pub capacity: usize,
    /// Events recorded since this agent started, by op name (events loaded from storage at
    /// start are not counted).
    pub by_op: BTreeMap<String, u64>,
    /// Oldest events pushed out of the full buffer.
    pub evicted: u64,
    /// Reports dropped because the owner's queue was full.
    pub dropped_reports: u64,
    /// Events `monitor` readers lost because they read too slowly, all readers together.
    pub monitor_dropped: u64,
    /// Events that could not be written to (or read back from) storage.
    pub unstored: u64,
    /// Events the beacon's queue had no room for (see [`crate::beacon::sender`]).
    #[serde(default)]
    pub beacon_dropped: u64,
}

/// The counts in the Prometheus text format, for `/metrics`.
pub fn metrics(counts: &EventCounts) -> String {
    let mut out = String::from(
        "# HELP rover_events_total Cluster events recorded since the start, by op.\n\
         # TYPE rover_events_total counter\n",
    );
    for (op, n) in &counts.by_op {
        out.push_str(&format!("rover_events_total{{op=\"{op}\"}} {n}\n"));
    }
    for (name, help, n) in [
        (
            "rover_events_held",
            "Events in the ring buffer.",
            counts.held as u64,
        ),
        (
            "rover_events_dropped_reports_total",
            "Event reports dropped: the event log's queue was full.",
            counts.dropped_reports,
        ),
        (
            "rover_events_monitor_dropped_total",
            "Events monitor readers lost because they read too slowly.",
            counts.monitor_dropped,
        ),
        (
            "rover_events_unstored_total",
            "Events not written to (or read back from) storage.",
            counts.unstored,
        ),
        (
            "rover_events_beacon_dropped_total",
            "Events not sent to the beacon: its queue was full.",
            counts.beacon_dropped,
        ),
    ] {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {n}\n"
        ));
    }
    out
}

/// Something that happened elsewhere, told to the owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// A member came up (new, back, or with a new generation).
    Up {
        /// Its name.
        name: String,
        /// Its generation.
        generation: u64,
    },
    /// A member was declared down.
    Down {
        /// Its name.
        name: String,
        /// Its generation.
        generation: u64,
    },
    /// A member left.
    Left {
        /// Its name.
        name: String,
    },
    /// A member's identity was replaced by a newer generation while it was up.
    Renamed {
        /// Its name.
        name: String,
        /// The new generation.
        generation: u64,
    },
    /// This agent was declared down and rejoined with a new generation.
    RejoinedMyself {
        /// The new generation.
        generation: u64,
    },
    /// This agent is in a cluster (some other member knows it).
    Active,
    /// A member is suspected.
    Suspected {
        /// Its name.
        name: String,
        /// Generation, incarnation and who suspects it.
        detail: String,
    },
    /// A member (or this agent) refuted a suspicion.
    Refuted {
        /// Its name.
        name: String,
        /// The incarnation that refuted it.
        detail: String,
    },
    /// A direct probe of ours failed.
    ProbeFailed {
        /// The probed member.
        name: String,
        /// Its generation.
        detail: String,
    },
    /// An alert changed state.
    Alert {
        /// The host of the alert.
        host: String,
        /// `name state severity: summary`.
        detail: String,
    },
    /// A notification went out on a channel (or failed).
    Notified {
        /// The channel.
        channel: String,
        /// How many incidents, and the outcome.
        detail: String,
    },
}

/// Requests to the owner.
#[derive(Debug)]
pub enum Input {
    /// A report; never waited on.
    Report(Report),
    /// The events that pass the filter, oldest first.
    Query(EventFilter, oneshot::Sender<Vec<ClusterEvent>>),
    /// The counts.
    Counts(oneshot::Sender<EventCounts>),
}

/// Counters shared by the handle and the owner.
#[derive(Debug, Default)]
pub struct SharedCounters {
    /// Reports dropped because the queue was full.
    pub dropped_reports: AtomicU64,
    /// Events monitor readers lost.
    pub monitor_dropped: AtomicU64,
}

/// The owner task could not answer (it is gone).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the event log task is not running")]
pub struct EventLogGone;

/// The handle everyone holds. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventLog {
    inputs: mpsc::Sender<Input>,
    /// Weak: the owner holds the only sender, so readers see the stream close when it stops.
    live: broadcast::WeakSender<ClusterEvent>,
    counters: Arc<SharedCounters>,
}

impl EventLog {
    /// A handle whose reports go nowhere (for parts tested without the agent).
    pub fn disconnected() -> Self {
        let (inputs, _) = mpsc::channel(1);
        let (live, _) = broadcast::channel(1);
        Self {
            inputs,
            live: live.downgrade(),
            counters: Arc::default(),
        }
    }

    /// Tells the owner what happened without waiting: a full queue drops it (counted).
    pub fn report(&self, report: Report) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.inputs.try_send(Input::Report(report))
        {
            self.counters
                .dropped_reports
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The events that pass `filter`, oldest first.
    pub async fn query(&self, filter: EventFilter) -> Result<Vec<ClusterEvent>, EventLogGone> {
        let (tx, rx) = oneshot::channel();
        self.inputs
            .send(Input::Query(filter, tx))
            .await
            .map_err(|_| EventLogGone)?;
        rx.await.map_err(|_| EventLogGone)
    }

    /// The counts.
    pub async fn counts(&self) -> Result<EventCounts, EventLogGone> {
        let (tx, rx) = oneshot::channel();
        self.inputs
            .send(Input::Counts(tx))
            .await
            .map_err(|_| EventLogGone)?;
        rx.await.map_err(|_| EventLogGone)
    }

    /// New events from now on, for `monitor`; a reader that falls [`MONITOR_QUEUE`] behind
    /// loses the oldest (see [`EventLog::count_monitor_drops`]). `None` once the owner stopped.
    pub fn subscribe(&self) -> Option<broadcast::Receiver<ClusterEvent>> {
        self.live.upgrade().map(|live| live.subscribe())
    }

    /// Counts events a monitor reader lost.
    pub fn count_monitor_drops(&self, lost: u64) {
        self.counters
            .monitor_dropped
            .fetch_add(lost, Ordering::Relaxed);
    }

    /// Monitor readers connected now.
    pub fn monitors(&self) -> usize {
        self.live.upgrade().map_or(0, |live| live.receiver_count())
    }
}

#[cfg(test)]
mod tests;
