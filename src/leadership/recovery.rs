//! Getting a Raft node back that openraft stopped (it stops on the first storage error): the
//! owner task notices it, publishes no node meanwhile (writes fail with
//! `LeadershipError::Fatal`, the status says `stopped`), and starts it again once a probe write
//! through the same storage succeeds, with backoff. The storage layer gets a failed database
//! back by itself (`daemon::storage_health`); the probe is where the two meet.

use super::node::{probe, Disk, RaftNode};
use super::owner::{Input, Owner};
use super::transport::PeerTransport;

/// The first restart of a stopped Raft node waits this long, doubling up to [`RESTART_MAX_MS`].
pub(super) const RESTART_FIRST_MS: u64 = 1_000;
/// The longest wait between two restarts.
const RESTART_MAX_MS: u64 = 60_000;

/// A stopped Raft node waiting to start again.
pub(super) struct Restart {
    pub(super) attempt: u32,
    pub(super) at_ms: u64,
    pub(super) running: bool,
}

impl Owner {
    /// Notices a node openraft stopped, and starts a stopped one again when due.
    pub(super) fn check_node(&mut self, now: u64) {
        if let Some(node) = self.node() {
            if let Some(why) = node.stopped() {
                tracing::error!(error = %why, "the raft node stopped; it starts again once storage works");
                self.node_tx.send_replace(None);
                self.metrics = None;
                self.restart = Some(Restart {
                    attempt: 0,
                    at_ms: now + RESTART_FIRST_MS,
                    running: false,
                });
            }
        }
        let Some(restart) = &mut self.restart else {
            return;
        };
        if restart.running {
            return;
        }
        if restart.at_ms > now {
            let at = restart.at_ms;
            self.wake_at(at);
            return;
        }
        restart.running = true;
        let (disk, transport, reports) = (
            self.disk.clone(),
            self.transport.clone(),
            self.reports.clone(),
        );
        let (node_id, team) = (self.settings.node_id, self.settings.team.clone());
        tokio::spawn(async move {
            let result = restart_node(node_id, team, disk, transport).await;
            let _ = reports.send(Input::Restarted(result)).await;
        });
    }

    pub(super) fn restarted(&mut self, result: Result<RaftNode, String>) {
        let Some(restart) = &mut self.restart else {
            return;
        };
        match result {
            Ok(node) => {
                tracing::info!(attempts = restart.attempt + 1, "the raft node runs again");
                self.restart = None;
                self.set_node(node);
            }
            Err(e) => {
                restart.attempt += 1;
                let backoff = RESTART_FIRST_MS
                    .saturating_mul(1 << restart.attempt.min(16))
                    .min(RESTART_MAX_MS);
                restart.at_ms = self.contact.now_ms() + backoff;
                restart.running = false;
                tracing::warn!(error = %e, retry_in_ms = backoff, "the raft node cannot start yet");
            }
        }
    }
}

/// Probes the storage, then starts the node on it.
async fn restart_node(
    node_id: u64,
    team: String,
    disk: Disk,
    transport: PeerTransport,
) -> Result<RaftNode, String> {
    let probed = disk.clone();
    tokio::task::spawn_blocking(move || probe(&probed))
        .await
        .map_err(|e| format!("storage probe: {e}"))?
        .map_err(|e| format!("storage probe: {e}"))?;
    RaftNode::start(node_id, &team, disk, transport)
        .await
        .map_err(|e| format!("{e:#}"))
}
