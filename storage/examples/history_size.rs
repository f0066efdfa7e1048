//! How much disk the history takes: 20 hosts each send a status sample (3 disks) every 5 s for
//! one simulated hour into a fresh [`Storage`], then the history is compacted with a raw
//! retention of 10 minutes. Then three more simulated hours run with a compaction every
//! 5 minutes, to show whether sled's file stops growing once space is reused (sled never
//! shrinks its file; freed space is reused by later writes). Prints one JSON object per line.
//!
//! Run with `cargo run --release -p rover-storage --example history_size`.
//!
//! With `ROVER_HISTORY_HOURS=N` it instead simulates N hours as a long-running agent does
//! (compaction every 5 minutes with a raw retention of 1 h and a retention of 30 days) and
//! prints one line per hour: live bytes, sled's size on disk, the directory size. sled's file
//! grows without bound that way; add `ROVER_HISTORY_REWRITE=1` to call
//! `Storage::rewrite_if_bloated(4.0, 8 MiB)` every 10 simulated minutes and watch it plateau.

use std::error::Error;
use std::fs;
use std::path::Path;

use rover_storage::record;
use rover_storage::{
    CheckLevel, DiskUsage, HistoryEntry, HistoryEvent, HistoryStore, StatusSample, Storage,
};

/// Simulated fleet size.
const HOSTS: usize = 20;
/// Status interval, as the agent's default.
const INTERVAL_MS: u64 = 5_000;
/// Simulated duration.
const HOUR_MS: u64 = 3_600_000;
/// Simulated start: a Unix time in milliseconds on a minute boundary.
const START_MS: u64 = 1_700_000_040_000;
/// Raw samples younger than this stay raw.
const RAW_RETENTION_MS: u64 = 10 * 60_000;
/// Everything younger than this stays.
const RETENTION_MS: u64 = 7 * 24 * HOUR_MS;
/// Simulated time between two compactions in the steady-state phase.
const COMPACT_EVERY_MS: u64 = 5 * 60_000;
/// Length of a history key besides the host name: separator, time, sequence number.
const KEY_OVERHEAD: usize = 1 + 8 + 4;

fn main() -> Result<(), Box<dyn Error>> {
    if let Some(hours) = std::env::var_os("ROVER_HISTORY_HOURS") {
        let hours: u64 = hours.to_string_lossy().parse()?;
        let rewrite = std::env::var_os("ROVER_HISTORY_REWRITE").is_some_and(|v| v != "0");
        return long_run(hours, rewrite);
    }
    // With ROVER_HISTORY_DB=DIR the database is written there and kept (for example as
    // `<data-dir>/db`, so an agent can be started on it and measured); otherwise a temp dir.
    let temp = tempfile::tempdir()?;
    let kept = std::env::var_os("ROVER_HISTORY_DB").map(std::path::PathBuf::from);
    let path = kept.clone().unwrap_or_else(|| temp.path().to_owned());
    let storage = Storage::open(&path)?;
    let history = storage.history();
    let mut fleet: Vec<Host> = (0..HOSTS).map(Host::new).collect();

    // A kept database holds the hour that just ended, so an agent's retention keeps it.
    let start_ms = match kept {
        Some(_) => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
            (now.as_millis() as u64 - HOUR_MS) / 60_000 * 60_000
        }
        None => START_MS,
    };
    let logical_bytes = simulate(&history, &mut fleet, start_ms, start_ms + HOUR_MS)?;
    storage.flush()?;
    let one_sample_bytes = record::encode(&fleet[0].sample(start_ms))?.len();

    let entries = history.len()?;
    let disk_bytes = dir_size(&path)?;
    let per_host_hour = disk_bytes as f64 / HOSTS as f64;
    println!(
        "{{\"stage\":\"raw\",\"hosts\":{HOSTS},\"interval_ms\":{INTERVAL_MS},\"entries\":{entries},\
         \"disk_bytes\":{disk_bytes},\"logical_bytes\":{logical_bytes},\
         \"disk_bytes_per_host_hour\":{per_host_hour:.0},\
         \"projected_disk_bytes_per_host_day\":{:.0},\
         \"logical_bytes_per_host_hour\":{:.0}}}",
        per_host_hour * 24.0,
        logical_bytes as f64 / HOSTS as f64,
    );
    if kept.is_some() {
        // The kept database holds exactly one raw hour; stop before compacting it.
        return Ok(());
    }
    println!(
        "{{\"sample_record_bytes\":{one_sample_bytes},\
         \"history_entry_bytes_with_key\":{:.1}}}",
        logical_bytes as f64 / entries.max(1) as f64
    );

    let now = START_MS + HOUR_MS;
    let stats = history.compact(now, RAW_RETENTION_MS, RETENTION_MS)?;
    storage.flush()?;
    let entries = history.len()?;
    let disk_bytes = dir_size(&path)?;
    let logical_bytes = logical_size(&history)?;
    println!(
        "{{\"stage\":\"compacted\",\"raw_retention_ms\":{RAW_RETENTION_MS},\
         \"folded\":{},\"means_written\":{},\"expired\":{},\"entries\":{entries},\
         \"disk_bytes\":{disk_bytes},\"logical_bytes\":{logical_bytes},\
         \"logical_bytes_per_host_hour\":{:.0},\
         \"projected_logical_bytes_per_host_day_downsampled\":{:.0}}}",
        stats.folded,
        stats.means_written,
        stats.expired,
        logical_bytes as f64 / HOSTS as f64,
        projected_downsampled_day(&history)?,
    );

    for hour in 2..=4 {
        let mut t = START_MS + (hour - 1) * HOUR_MS;
        while t < START_MS + hour * HOUR_MS {
            simulate(&history, &mut fleet, t, t + COMPACT_EVERY_MS)?;
            t += COMPACT_EVERY_MS;
            history.compact(t, RAW_RETENTION_MS, RETENTION_MS)?;
        }
        storage.flush()?;
        println!(
            "{{\"stage\":\"steady\",\"hour\":{hour},\"compact_every_ms\":{COMPACT_EVERY_MS},\
             \"entries\":{},\"disk_bytes\":{},\"logical_bytes\":{}}}",
            history.len()?,
            dir_size(&path)?,
            logical_size(&history)?,
        );
    }
    Ok(())
}

/// Every host of `fleet` appends a sample every [`INTERVAL_MS`] from `from_ms` until
/// `until_ms`; returns the bytes of keys and values written.
fn simulate(
    history: &impl HistoryStore,
    fleet: &mut [Host],
    from_ms: u64,
    until_ms: u64,
) -> Result<usize, Box<dyn Error>> {
    let mut bytes = 0;
    let mut t = from_ms;
    while t < until_ms {
        for host in fleet.iter_mut() {
            let sample = host.sample(t + host.offset_ms);
            let entry = HistoryEntry {
                host: sample.host.clone(),
                at_ms: sample.at_ms,
                event: HistoryEvent::Sample(sample),
            };
            bytes += entry.host.len() + KEY_OVERHEAD + record::encode(&entry)?.len();
            history.append(&entry)?;
        }
        t += INTERVAL_MS;
    }
    Ok(bytes)
}

/// One simulated host: a deterministic random walk of its load, memory and disks.
struct Host {
    name: String,
    offset_ms: u64,
    rng: u64,
    load: f32,
    mem: f32,
    disks: [f32; 3],
    uptime_s: u64,
}

impl Host {
    fn new(index: usize) -> Self {
        let seed = 0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(index as u64 + 1);
        Self {
            name: format!("web-{index:02}.dc1.example.net"),
            offset_ms: (index as u64 * 211) % INTERVAL_MS,
            rng: seed | 1,
            load: 0.5 + (index % 4) as f32,
            mem: 35.0 + (index * 3 % 40) as f32,
            disks: [42.0 + index as f32, 18.5, 63.0 + (index % 7) as f32],
            uptime_s: 86_400 * (3 + index as u64),
        }
    }

    /// A number in `[-1, 1)`.
    fn noise(&mut self) -> f32 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    fn sample(&mut self, at_ms: u64) -> StatusSample {
        self.load = (self.load + 0.2 * self.noise()).clamp(0.0, 16.0);
        self.mem = (self.mem + 0.5 * self.noise()).clamp(5.0, 99.0);
        for index in 0..self.disks.len() {
            let drift = 0.01 * (self.noise() + 0.2);
            self.disks[index] = (self.disks[index] + drift).clamp(0.0, 100.0);
        }
        self.uptime_s += INTERVAL_MS / 1000;
        let worst_check = if self.disks[2] > 90.0 || self.load > 8.0 {
            CheckLevel::Warning
        } else {
            CheckLevel::Ok
        };
        StatusSample {
            host: self.name.clone(),
            team: "ops".to_owned(),
            at_ms,
            load: [self.load, self.load * 0.9, self.load * 0.8],
            mem_used_pct: self.mem,
            disks: ["/", "/var", "/home"]
                .into_iter()
                .zip(self.disks)
                .map(|(mount, used_pct)| DiskUsage {
                    mount: mount.to_owned(),
                    used_pct,
                })
                .collect(),
            uptime_s: self.uptime_s,
            worst_check,
        }
    }
}

/// Sum of the sizes of the files under `path`, recursively.
fn dir_size(path: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(path)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// Sum of key and value sizes of every stored entry.
fn logical_size(history: &impl HistoryStore) -> Result<usize, Box<dyn Error>> {
    let mut total = 0;
    for host in history.hosts()? {
        for entry in history.range(&host, 0, u64::MAX)? {
            total += host.len() + KEY_OVERHEAD + record::encode(&entry)?.len();
        }
    }
    Ok(total)
}

/// Bytes per host for a day of steady state: 10 minutes of raw samples plus 1430 minute
/// means, sized from the stored entries of the first host.
fn projected_downsampled_day(history: &impl HistoryStore) -> Result<f64, Box<dyn Error>> {
    let Some(host) = history.hosts()?.into_iter().next() else {
        return Ok(0.0);
    };
    let (mut raw, mut means) = ((0usize, 0usize), (0usize, 0usize));
    for entry in history.range(&host, 0, u64::MAX)? {
        let size = host.len() + KEY_OVERHEAD + record::encode(&entry)?.len();
        let slot = match entry.event {
            HistoryEvent::MinuteMean { .. } => &mut means,
            _ => &mut raw,
        };
        slot.0 += size;
        slot.1 += 1;
    }
    let average = |(bytes, count): (usize, usize)| bytes as f64 / count.max(1) as f64;
    let raw_per_day = (RAW_RETENTION_MS / INTERVAL_MS) as f64;
    let means_per_day = (24 * 60 - RAW_RETENTION_MS / 60_000) as f64;
    Ok(raw_per_day * average(raw) + means_per_day * average(means))
}

/// Raw samples younger than this stay raw in the long run (the agent's default).
const LONG_RAW_RETENTION_MS: u64 = HOUR_MS;
/// Everything younger than this stays in the long run (the agent's default).
const LONG_RETENTION_MS: u64 = 30 * 24 * HOUR_MS;
/// Simulated time between two rewrite checks in the long run, as the agent's compaction task.
const REWRITE_EVERY_MS: u64 = 10 * 60_000;
/// A rewrite runs when sled's file is larger than this many times the live data...
const REWRITE_FACTOR: f64 = 4.0;
/// ...and larger than this.
const REWRITE_MIN_BYTES: u64 = 8 * 1024 * 1024;

/// Simulates `hours` hours of the fleet with a compaction every [`COMPACT_EVERY_MS`] (raw
/// retention 1 h, retention 30 d) and, with `rewrite`, a `rewrite_if_bloated(4.0, 8 MiB)`
/// every [`REWRITE_EVERY_MS`] as the agent does; prints live bytes, sled's size on disk and
/// the directory size at the end of every simulated hour, and each rewrite.
fn long_run(hours: u64, rewrite: bool) -> Result<(), Box<dyn Error>> {
    let temp = tempfile::tempdir()?;
    let path = temp.path().join("db");
    let storage = Storage::open(&path)?;
    let history = storage.history();
    let mut fleet: Vec<Host> = (0..HOSTS).map(Host::new).collect();
    let started = std::time::Instant::now();
    let mut t = START_MS;
    let mut rewrites = 0;
    for hour in 1..=hours {
        while t < START_MS + hour * HOUR_MS {
            simulate(&history, &mut fleet, t, t + COMPACT_EVERY_MS)?;
            t += COMPACT_EVERY_MS;
            history.compact(t, LONG_RAW_RETENTION_MS, LONG_RETENTION_MS)?;
            if rewrite && (t - START_MS) % REWRITE_EVERY_MS == 0 {
                if let Some(stats) =
                    storage.rewrite_if_bloated(REWRITE_FACTOR, REWRITE_MIN_BYTES)?
                {
                    rewrites += 1;
                    println!(
                        "{{\"stage\":\"rewrite\",\"at_hour\":{:.2},\"size_before\":{},\
                         \"size_after\":{},\"live_bytes\":{},\"entries\":{},\"locked_ms\":{}}}",
                        (t - START_MS) as f64 / HOUR_MS as f64,
                        stats.size_before,
                        stats.size_after,
                        stats.live_bytes,
                        stats.entries,
                        stats.locked_for.as_millis(),
                    );
                }
            }
        }
        storage.flush()?;
        println!(
            "{{\"stage\":\"long\",\"hour\":{hour},\"rewrite\":{rewrite},\"rewrites\":{rewrites},\
             \"entries\":{},\"live_bytes\":{},\"size_on_disk\":{},\"dir_bytes\":{},\
             \"elapsed_s\":{:.1}}}",
            history.len()?,
            storage.live_bytes()?,
            storage.size_on_disk()?,
            dir_size(&path)?,
            started.elapsed().as_secs_f64(),
        );
    }
    Ok(())
}
