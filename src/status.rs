//! Status samples: every `status_interval` this agent measures load, memory, disk use of its
//! configured mounts, uptime and its checks' worst state, stores the sample in its own history
//! and broadcasts it, so that every agent records every other agent's status.

use std::path::PathBuf;
use std::time::Duration;

use rover_membership::runtime::unix_ms;
use rover_membership::{BroadcastItem, MembershipHandle, Topic};
use rover_storage::{
    CheckLevel, DiskUsage, HistoryEntry, HistoryEvent, HistoryStore, StatusSample, Storage,
};
use tokio::sync::watch;

use crate::checks::builtin;

/// What the sampler needs.
#[derive(Debug, Clone)]
pub struct Sampler {
    /// Our node name.
    pub host: String,
    /// Our team.
    pub team: String,
    /// How often to sample.
    pub interval: Duration,
    /// Mount points whose disk use goes into each sample.
    pub mounts: Vec<PathBuf>,
    /// Where samples are stored.
    pub storage: Storage,
    /// Where samples are broadcast.
    pub membership: MembershipHandle,
    /// The worst state among our checks, kept current by the daemon.
    pub worst_check: watch::Receiver<CheckLevel>,
}

impl Sampler {
    /// Samples every interval until aborted.
    pub async fn run(self) {
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let sample = self.measure();
            record_sample(&self.storage, &sample);
            let item = BroadcastItem {
                topic: Topic::Status,
                key: sample.host.clone(),
                version: sample.at_ms,
                payload: postcard::to_stdvec(&sample).unwrap_or_default(),
            };
            if self.membership.broadcast(item).await.is_err() {
                return;
            }
        }
    }

    /// One sample of this host, now. Readings that fail are left at zero and logged.
    pub fn measure(&self) -> StatusSample {
        let load = builtin::read_load().unwrap_or_else(|e| {
            tracing::debug!(error = %e, "cannot read load");
            [0.0; 3]
        });
        let mem = builtin::read_memory_used_pct().unwrap_or_else(|e| {
            tracing::debug!(error = %e, "cannot read memory");
            0.0
        });
        let disks = self
            .mounts
            .iter()
            .filter_map(|mount| match builtin::disk_used_pct(mount) {
                Ok(pct) => Some(DiskUsage {
                    mount: mount.display().to_string(),
                    used_pct: pct as f32,
                }),
                Err(e) => {
                    tracing::debug!(mount = %mount.display(), error = %e, "cannot read disk use");
                    None
                }
            })
            .collect();
        StatusSample {
            host: self.host.clone(),
            team: self.team.clone(),
            at_ms: unix_ms(),
            load: load.map(|l| l as f32),
            mem_used_pct: mem as f32,
            disks,
            uptime_s: builtin::uptime_secs().unwrap_or(0),
            worst_check: *self.worst_check.borrow(),
        }
    }
}

/// Stores a sample (ours or a peer's) in history.
pub fn record_sample(storage: &Storage, sample: &StatusSample) {
    let entry = HistoryEntry {
        host: sample.host.clone(),
        at_ms: sample.at_ms,
        event: HistoryEvent::Sample(sample.clone()),
    };
    if let Err(e) = storage.history().append(&entry) {
        tracing::error!(error = %e, "cannot record status sample");
    }
}

/// Decodes a status broadcast; `None` (and a debug line) if it is malformed or its host does
/// not match the broadcast key.
pub fn decode_sample(item: &BroadcastItem) -> Option<StatusSample> {
    match postcard::from_bytes::<StatusSample>(&item.payload) {
        Ok(sample) if sample.host == item.key => Some(sample),
        Ok(_) => {
            tracing::debug!(key = %item.key, "status sample under another host's key dropped");
            None
        }
        Err(e) => {
            tracing::debug!(error = %e, "undecodable status sample dropped");
            None
        }
    }
}
