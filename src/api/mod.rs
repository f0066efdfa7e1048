//! The local HTTP/JSON API (loopback only): the server the daemon runs and the client the CLI
//! uses, sharing the request and response types below. Reads are open to local users;
//! changes need the token kept in the data dir (`Authorization: Bearer <token>`).

pub mod client;
pub mod server;

use rover_membership::{Counters, MemberInfo, MemberStatus};
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
    /// Notification leader, once the election exists.
    pub leader: Option<String>,
    /// Whether the leader has been stable long enough to trust.
    pub leader_stable: bool,
    /// Members by status (us included).
    pub members: StatusCounts,
    /// Keys of the keyring.
    pub keys: Vec<KeyInfo>,
    /// Gossip traffic and drop counters.
    pub counters: Counters,
    /// Seconds since the agent started.
    pub uptime_secs: u64,
    /// Data dir.
    pub data_dir: String,
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
