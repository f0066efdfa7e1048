//! Raft timings for the ledger group. Idle cost matters (Serf idles at about 2 datagrams/s per
//! agent), so heartbeats go every 300 ms rather than openraft's 50 ms, and elections start
//! after 1 to 2 s of silence.

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
        ..openraft::Config::default()
    };
    Ok(Arc::new(config.validate()?))
}
