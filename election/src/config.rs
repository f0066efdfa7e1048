//! Raft timings for the ledger group. Idle cost matters (Serf idles at about 2 datagrams/s per
//! agent), so heartbeats go about every second, what the lease needs (a follower counts a
//! leader present for 3 s after its last heartbeat), rather than openraft's 50 ms: openraft
//! checks on a tick of 1.5 heartbeat intervals whether one is due, so a 700 ms interval sends
//! one every 1.05 s (the 300 ms interval before sent one every 450 ms, 2.2 per follower per
//! second, most of an idle agent's Raft bytes). Leader liveness comes from SWIM: elections are
//! gated by it, and the first voter to see the leader gone calls one at once (rover-agent's
//! leadership gate); openraft's own timer (1 to 2 s after its 2 s lease) is the fallback.
//!
//! A node starts with elections off: the agent turns them on (`Raft::runtime_config().elect`)
//! only while its SWIM view lets it win one ([`crate::group::election_gate`]), so a side of a
//! partition without a majority never raises the term.

use std::sync::Arc;

/// Heartbeat period (sent on openraft's tick of 1.5 periods: every 1 050 ms).
pub const HEARTBEAT_MS: u64 = 700;
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
