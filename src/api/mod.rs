//! The local HTTP/JSON API (loopback only): the server the daemon runs and the client the CLI
//! uses, sharing the request and response types below. Reads are open to local users;
//! changes need the token kept in the data dir (`Authorization: Bearer <token>`).

mod alert_routes;
pub mod client;
pub mod connections;
mod dashboard_routes;
mod event_routes;
pub use self::event_routes::MonitorLine;
pub mod grid_routes;
mod history_routes;
pub mod leader_routes;
pub mod member_routes;
mod metrics_routes;
mod notify_routes;
pub mod server;
mod topology_routes;
pub mod viewer;

use rover_membership::{Counters, MemberInfo, MemberStatus};
use rover_storage::{HistoryEntry, Severity, StatusSample};
use serde::{Deserialize, Serialize};

/// Body of `POST /v1/join`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinRequest {
    /// Seeds as `host:port` (port 7900 if omitted).
    pub seeds: Vec<String>,
}

/// Answer of `POST /v1/join`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinResponse {
    /// The resolved addresses announced to.
    pub announced: Vec<String>,
}

/// Answer of `POST /v1/reload`: what the re-read config file changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReport {
    /// The changes applied without a restart (`check "x" added`, `notify.group_wait`...).
    pub applied: Vec<String>,
    /// Keys whose new value takes effect only after a restart.
    pub needs_restart: Vec<String>,
}

/// Answer of `GET /v1/info`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InfoResponse {
    /// Node name.
    pub node: String,
    /// Team.
    pub team: String,
    /// Cluster id: the fingerprint of the primary key, shared by every member.
    pub cluster: String,
    /// Advertised gossip address.
    pub addr: String,
    /// Current identity generation.
    pub generation: u64,
    /// Agent version.
    pub version: String,
    /// Notification leader (Raft or fallback), if there is one.
    pub leader: Option<String>,
    /// Whether the leader has been stable long enough to trust.
    pub leader_stable: bool,
    /// The election in detail (absent from agents before it existed).
    #[serde(default)]
    pub election: Option<crate::leadership::LeaderStatus>,
    /// What this agent sent on the cluster TCP port (Raft and anti-entropy).
    #[serde(default)]
    pub cluster_port: crate::peer::TrafficCounts,
    /// Members by status (us included).
    pub members: StatusCounts,
    /// Keys of the keyring.
    pub keys: Vec<KeyInfo>,
    /// Gossip traffic and drop counters.
    pub counters: Counters,
    /// Cluster-port (TCP) connections dropped because they did not open, decode or follow
    /// the protocol.
    pub peer_rejected: u64,
    /// Cluster-port connections refused, by reason (handshake, frame, limit, timeout).
    #[serde(default)]
    pub cluster_port_refused: crate::peer::limits::RefusalCounts,
    /// Seconds since the agent started.
    pub uptime_secs: u64,
    /// Data dir.
    pub data_dir: String,
    /// Whether storage takes writes (absent from agents before it was reported).
    #[serde(default)]
    pub storage: StorageStatus,
    /// Grid-control records held, taken and dropped by reason (absent from older agents).
    #[serde(default)]
    pub records: Option<crate::grid::table::GridCounters>,
    /// The cluster event log's counts (absent from older agents).
    #[serde(default)]
    pub events: Option<crate::introspection::EventCounts>,
    /// This agent's border links to other teams (empty when it has none).
    #[serde(default)]
    pub team_links: Vec<crate::teams::LinkStatus>,
    /// Connections to the link port refused before a link could be named, by reason.
    #[serde(default)]
    pub team_link_refused: std::collections::BTreeMap<String, u64>,
}

/// Whether the agent's storage takes writes, as `info` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageStatus {
    /// `ok`, `failing` (writes are refused; the agent retries) or `closed` (the database could
    /// not be opened again; the agent stops).
    pub state: String,
    /// Since when writes fail (Unix ms).
    pub failing_since_ms: Option<u64>,
    /// The latest error.
    pub error: Option<String>,
    /// Writes and flushes that failed since then.
    pub failed_writes: u64,
    /// How many times the database was reopened after failing.
    pub recoveries: u64,
}

impl StorageStatus {
    /// The status of `health`.
    pub fn of(health: &rover_storage::StorageHealth) -> Self {
        let state = if health.closed {
            "closed"
        } else if health.failing.is_some() {
            "failing"
        } else {
            "ok"
        };
        Self {
            state: state.to_owned(),
            failing_since_ms: health.failing.as_ref().map(|f| f.since_ms),
            error: health.failing.as_ref().map(|f| f.error.clone()),
            failed_writes: health.failing.as_ref().map_or(0, |f| f.failed_writes),
            recoveries: health.recoveries,
        }
    }
}

/// Members per status.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StatusCounts {
    /// Alive.
    pub alive: usize,
    /// Suspect.
    pub suspect: usize,
    /// Failed.
    pub failed: usize,
    /// Left.
    pub left: usize,
}

impl StatusCounts {
    /// Counts a member list.
    pub fn of(members: &[MemberInfo]) -> Self {
        let mut counts = Self::default();
        for m in members {
            match m.status {
                MemberStatus::Alive => counts.alive += 1,
                MemberStatus::Suspect => counts.suspect += 1,
                MemberStatus::Failed => counts.failed += 1,
                MemberStatus::Left => counts.left += 1,
            }
        }
        counts
    }
}

/// One key of the keyring, by fingerprint only (never the key itself).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyInfo {
    /// Fingerprint (hex of the key id).
    pub fingerprint: String,
    /// Whether it seals outgoing packets.
    pub primary: bool,
}

/// Error body of every non-2xx answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for a human.
    pub error: String,
}

/// Body of `POST /v1/alerts/raise`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RaiseRequest {
    /// Alert name (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// Severity.
    pub severity: Severity,
    /// One line for humans.
    pub summary: String,
}

/// Body of `POST /v1/alerts/clear`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClearRequest {
    /// Alert name.
    pub name: String,
    /// Optional closing summary.
    #[serde(default)]
    pub summary: Option<String>,
}

/// Answer of `GET /v1/history?host=H`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryResponse {
    /// The host.
    pub host: String,
    /// Time of its newest status sample we hold (unix ms).
    pub last_heard_ms: Option<u64>,
    /// Whether it has been silent for more than three sample intervals.
    pub quiet: bool,
    /// Its newest sample.
    pub last_sample: Option<StatusSample>,
    /// Entries since the requested time, oldest first.
    pub entries: Vec<HistoryEntry>,
    /// Where the entries come from: this agent keeps the host's full history (`local`), or
    /// the replicas that answered (`history.replicas`), this agent adding what it holds.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Replicas asked that did not answer, with why.
    #[serde(default)]
    pub unanswered: Vec<String>,
}

/// One host in `GET /v1/history` (no host given).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostSummary {
    /// The host.
    pub host: String,
    /// Time of its newest status sample (unix ms).
    pub last_heard_ms: Option<u64>,
    /// Whether it has been silent for more than three sample intervals.
    pub quiet: bool,
    /// Its newest sample.
    pub last_sample: Option<StatusSample>,
}

/// Answer of `GET /v1/storage`: what is stored, and up to when it is on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StorageResponse {
    /// History entries.
    pub history_entries: usize,
    /// Alerts.
    pub alerts: usize,
    /// Remembered members.
    pub members: usize,
    /// Everything written before this time (unix ms) has been flushed to disk.
    pub flushed_before_ms: u64,
}

/// Answer of `POST /v1/notify/test`: one result per channel, in channel order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotifyTestResponse {
    /// The channels' results.
    pub channels: Vec<ChannelTestResult>,
}

/// How one channel's test message went.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelTestResult {
    /// Channel name.
    pub channel: String,
    /// Delivered, refused or failed.
    pub outcome: TestOutcome,
    /// The provider's reference for a delivered message, if it gave one.
    pub reference: Option<String>,
    /// Why it was not delivered.
    pub error: Option<String>,
}

/// The outcome of one test send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TestOutcome {
    /// Delivered.
    Ok,
    /// Refused by the provider (config or message problem; not retried).
    Refused,
    /// Not delivered after the retries the send budget allows.
    Failed,
}

impl TestOutcome {
    /// `ok`, `refused` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            TestOutcome::Ok => "ok",
            TestOutcome::Refused => "refused",
            TestOutcome::Failed => "failed",
        }
    }
}
