//! Status samples: every `status_interval` this agent measures load, memory, disk use of its
//! configured mounts, uptime and its checks' worst state and stores the sample in its own
//! history. It broadcasts a sample only when it changed beyond a threshold since the last one
//! sent ([`changed_beyond_threshold`]), and at least every `status.full_every`, in a compact
//! wire form ([`CompactSample`]): an idle fleet's samples barely move, and sending each one
//! was most of an idle agent's gossip (N samples every 5 s, each retransmitted by every host).
//! It also sends one when more members are alive than at its last look, so that a newcomer
//! (or a side coming back after a split) holds every host's sample within an interval.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use rover_membership::runtime::unix_ms;
use rover_membership::{BroadcastItem, MemberStatus, MembershipHandle, Topic};
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
    /// The longest time between two samples broadcast (`status.full_every`).
    pub full_every: Duration,
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
        let full_every_ms = u64::try_from(self.full_every.as_millis()).unwrap_or(u64::MAX);
        let mut last_sent: Option<StatusSample> = None;
        let mut members_then = 0;
        loop {
            ticks.tick().await;
            let sample = self.measure();
            record_sample(&self.storage, &sample);
            // A member we did not know has none of our samples: send one at once rather than
            // at the next change or `full_every` (the first sample, taken before we joined,
            // reached nobody).
            let members_now = match self.membership.members().await {
                Ok(members) => members
                    .iter()
                    .filter(|m| m.status == MemberStatus::Alive)
                    .count(),
                Err(_) => return,
            };
            let newcomer = members_now > members_then;
            members_then = members_now;
            if !newcomer && !worth_sending(last_sent.as_ref(), &sample, full_every_ms) {
                continue;
            }
            if self
                .membership
                .broadcast(status_item(&sample))
                .await
                .is_err()
            {
                return;
            }
            last_sent = Some(sample);
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

/// Load averages this far apart (or a fifth of the earlier value, if more) count as a change:
/// the 1-minute average of a busy host wanders by a tenth from one sample to the next.
pub const LOAD_THRESHOLD: f32 = 0.5;
/// Memory use this many points apart counts as a change.
pub const MEMORY_THRESHOLD_PCT: f32 = 2.0;
/// Disk use this many points apart counts as a change.
pub const DISK_THRESHOLD_PCT: f32 = 1.0;

/// Whether `next` differs from `sent` by more than the thresholds: any load average by
/// [`LOAD_THRESHOLD`] (or a fifth of its value), memory by [`MEMORY_THRESHOLD_PCT`], a disk by
/// [`DISK_THRESHOLD_PCT`], another set of disks, another worst check level, or a reboot
/// (uptime going back). Uptime growing is no change.
pub fn changed_beyond_threshold(sent: &StatusSample, next: &StatusSample) -> bool {
    let load_moved = sent.load.iter().zip(next.load.iter()).any(|(a, b)| {
        let threshold = LOAD_THRESHOLD.max(a.abs() / 5.0);
        (a - b).abs() >= threshold
    });
    let disks_moved = sent.disks.len() != next.disks.len()
        || sent.disks.iter().zip(next.disks.iter()).any(|(a, b)| {
            a.mount != b.mount || (a.used_pct - b.used_pct).abs() >= DISK_THRESHOLD_PCT
        });
    load_moved
        || disks_moved
        || (sent.mem_used_pct - next.mem_used_pct).abs() >= MEMORY_THRESHOLD_PCT
        || sent.worst_check != next.worst_check
        || next.uptime_s < sent.uptime_s
        || sent.team != next.team
}

/// Whether the sampler broadcasts `next`, the last sample sent being `sent`: the first one,
/// one that changed beyond the thresholds, or one `full_every_ms` or more after the last sent.
pub fn worth_sending(sent: Option<&StatusSample>, next: &StatusSample, full_every_ms: u64) -> bool {
    sent.is_none_or(|sent| {
        next.at_ms.saturating_sub(sent.at_ms) >= full_every_ms
            || changed_beyond_threshold(sent, next)
    })
}

/// A status sample as it travels: the host is the broadcast's key and the time its version,
/// load averages are in hundredths and percentages in tenths (postcard varints: mostly one or
/// two bytes each instead of four).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactSample {
    /// The host's team.
    pub team: String,
    /// Load averages over 1, 5 and 15 minutes, in hundredths.
    pub load_centi: [u32; 3],
    /// Used memory in tenths of a percent.
    pub mem_permille: u16,
    /// Each watched filesystem and its use in tenths of a percent.
    pub disks: Vec<(String, u16)>,
    /// Seconds since the host booted.
    pub uptime_s: u64,
    /// The worst level among the host's checks.
    pub worst_check: CheckLevel,
}

fn centi(value: f32) -> u32 {
    // `as` saturates: a negative or NaN reading becomes 0, a huge one u32::MAX.
    (value * 100.0).round() as u32
}

fn permille(pct: f32) -> u16 {
    (pct.clamp(0.0, 100.0) * 10.0).round() as u16
}

impl CompactSample {
    /// The wire form of `sample`.
    pub fn from_sample(sample: &StatusSample) -> Self {
        Self {
            team: sample.team.clone(),
            load_centi: sample.load.map(centi),
            mem_permille: permille(sample.mem_used_pct),
            disks: sample
                .disks
                .iter()
                .map(|d| (d.mount.clone(), permille(d.used_pct)))
                .collect(),
            uptime_s: sample.uptime_s,
            worst_check: sample.worst_check,
        }
    }

    /// The sample of `host` measured at `at_ms`.
    pub fn into_sample(self, host: String, at_ms: u64) -> StatusSample {
        StatusSample {
            host,
            team: self.team,
            at_ms,
            load: self.load_centi.map(|l| l as f32 / 100.0),
            mem_used_pct: f32::from(self.mem_permille.min(1000)) / 10.0,
            disks: self
                .disks
                .into_iter()
                .map(|(mount, used)| DiskUsage {
                    mount,
                    used_pct: f32::from(used.min(1000)) / 10.0,
                })
                .collect(),
            uptime_s: self.uptime_s,
            worst_check: self.worst_check,
        }
    }
}

/// The broadcast of `sample`: keyed by its host, versioned by its time, compact.
pub fn status_item(sample: &StatusSample) -> BroadcastItem {
    BroadcastItem {
        topic: Topic::Status,
        key: sample.host.clone(),
        version: sample.at_ms,
        payload: postcard::to_stdvec(&CompactSample::from_sample(sample)).unwrap_or_default(),
    }
}

/// Decodes a status broadcast; `None` (and a debug line) if it is malformed.
pub fn decode_sample(item: &BroadcastItem) -> Option<StatusSample> {
    match postcard::from_bytes::<CompactSample>(&item.payload) {
        Ok(compact) => Some(compact.into_sample(item.key.clone(), item.version)),
        Err(e) => {
            tracing::debug!(error = %e, "undecodable status sample dropped");
            None
        }
    }
}

#[cfg(test)]
mod tests;
