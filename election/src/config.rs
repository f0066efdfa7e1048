//! Raft timings for the ledger group. Idle cost matters (Serf idles at about 2 datagrams/s per
//! agent), so heartbeats go every 300 ms rather than openraft's 50 ms, and elections start
//! after 1 to 2 s of silence.
//!
//! A node starts with elections off: the agent turns them on (`Raft::runtime_config().elect`)
//! only while its SWIM view lets it win one ([`crate::group::election_gate`]), so a side of a
//! partition without a majority never raises the term.

use std::sync::Arc;

/// Heartbeat period.
pub const HEARTBEAT_MS: u64 = 300;
/// Shortest election timeout.
pub const ELECTION_TIMEOUT_MIN_MS: u64 = 1_000;
/// Longest election timeout.
pub const ELECTION_TIMEOUT_MAX_MS: u64 = 2_000;

/// openraft's configuration for a group named `cluster`.
pub fn raft_config(cluster: &str) -> Result<Arc<openraft::Config>, openraft::ConfigError> {
    let config = openraft::Config {
        cluster_name: cluster.to_owned(),
        heartbeat_interval: HEARTBEAT_MS,
        election_timeout_min: ELECTION_TIMEOUT_MIN_MS,
        election_timeout_max: ELECTION_TIMEOUT_MAX_MS,
        enable_elect: false,
        ..openraft::Config::default()
    };
    Ok(Arc::new(config.validate()?))
}
