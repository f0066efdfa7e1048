//! Disk per host for history at scale: one agent of a cluster of `ROVER_SCALE_HOSTS` (default
//! 300) hosts, each sending a status sample every 5 s, over `ROVER_SCALE_DAYS` (default 30)
//! simulated days, with the agent's defaults: raw samples for 48 h, then 1-minute means,
//! 30 days in all, compaction every 10 minutes and `rewrite_if_bloated(4, 8 MiB)` after it.
//!
//! With `history.replicas` (default 5 above 20 hosts, `ROVER_SCALE_REPLICAS`) an agent keeps
//! the full history of its own host and of the hosts it is a replica of (chosen by
//! rendezvous hashing; R of N on average, the exact set for agent 0 of the simulated fleet is
//! computed below), plus the last sample of every host (rewritten every 5 s). Before, every
//! agent kept every host's full history. The simulated agent writes exactly what it would
//! keep; the all-hosts figure is projected from the same per-host-history bytes (writing 300
//! histories of 30 days would take hours).
//!
//! Prints one JSON object per simulated day and a summary line. Run with
//! `cargo run --release -p rover-storage --example history_at_scale`.

use std::error::Error;
use std::fs;
use std::path::Path;

use rover_storage::placement::{replica_count, replicas};
use rover_storage::{
    CheckLevel, DiskUsage, HistoryEntry, HistoryEvent, HistoryStore, StatusSample, Storage,
};

const INTERVAL_MS: u64 = 5_000;
const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 60 * MINUTE_MS;
const DAY_MS: u64 = 24 * HOUR_MS;
const START_MS: u64 = 1_700_000_040_000;
/// The agent's defaults (`history.raw_retention`, `history.retention`, its housekeeping).
const RAW_RETENTION_MS: u64 = 48 * HOUR_MS;
const RETENTION_MS: u64 = 30 * DAY_MS;
const COMPACT_EVERY_MS: u64 = 10 * MINUTE_MS;
const REWRITE_FACTOR: f64 = 4.0;
const REWRITE_MIN_BYTES: u64 = 8 * 1024 * 1024;
/// Last samples of every host are rewritten this often in the simulation (each host's every
/// 5 s in reality: the same keys, so only sled's log churns, not the live size).
const LAST_SAMPLES_EVERY_MS: u64 = HOUR_MS;

fn env_number(name: &str, default: u64) -> Result<u64, Box<dyn Error>> {
    match std::env::var(name) {
        Ok(text) => Ok(text.parse()?),
        Err(_) => Ok(default),
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let hosts = env_number("ROVER_SCALE_HOSTS", 300)? as usize;
    let days = env_number("ROVER_SCALE_DAYS", 30)?;
    let configured = env_number("ROVER_SCALE_REPLICAS", 0)? as usize;
    let names: Vec<String> = (0..hosts).map(host_name).collect();
    let me = names[0].clone();
    let count = replica_count(configured, hosts);
    // The hosts agent 0 keeps: its own and those whose replicas include it.
    let kept: Vec<usize> = (0..hosts)
        .filter(|h| {
            *h == 0 || replicas(&names[*h], names.iter().map(String::as_str), count).contains(&me)
        })
        .collect();
    let temp = tempfile::tempdir()?;
    let path = temp.path().join("db");
    let storage = Storage::open(&path)?;
    let history = storage.history();
    let last = storage.last_samples();
    let mut fleet: Vec<Host> = kept.iter().map(|h| Host::new(*h)).collect();
    let mut everyone: Vec<Host> = (0..hosts).map(Host::new).collect();
    let started = std::time::Instant::now();
    let mut t = START_MS;
    let mut rewrites = 0;
    for day in 1..=days {
        while t < START_MS + day * DAY_MS {
            for step in 0..COMPACT_EVERY_MS / INTERVAL_MS {
                let at = t + step * INTERVAL_MS;
                for host in &mut fleet {
                    let sample = host.sample(at);
                    history.append(&HistoryEntry {
                        host: sample.host.clone(),
                        at_ms: sample.at_ms,
                        event: HistoryEvent::Sample(sample),
                    })?;
                }
                if at % LAST_SAMPLES_EVERY_MS < INTERVAL_MS {
                    for host in &mut everyone {
                        last.put(&host.sample(at))?;
                    }
                }
            }
            t += COMPACT_EVERY_MS;
            history.compact(t, RAW_RETENTION_MS, RETENTION_MS)?;
            if storage
                .rewrite_if_bloated(REWRITE_FACTOR, REWRITE_MIN_BYTES)?
                .is_some()
            {
                rewrites += 1;
            }
        }
        storage.flush()?;
        println!(
            "{{\"day\":{day},\"hosts_kept\":{},\"entries\":{},\"live_bytes\":{},\
             \"dir_bytes\":{},\"rewrites\":{rewrites},\"elapsed_s\":{:.1}}}",
            kept.len(),
            history.len()?,
            storage.live_bytes()?,
            dir_size(&path)?,
            started.elapsed().as_secs_f64()
        );
    }
    let dir_bytes = dir_size(&path)?;
    let live = storage.live_bytes()?;
    let per_history = live as f64 / kept.len() as f64;
    println!(
        "{{\"scenario\":\"history_at_scale\",\"hosts\":{hosts},\"days\":{days},\
         \"replicas\":{count},\"hosts_kept_by_agent_0\":{},\"expected_hosts_kept\":{:.2},\
         \"dir_bytes_per_host\":{dir_bytes},\"live_bytes_per_host\":{live},\
         \"live_bytes_per_host_history\":{per_history:.0},\
         \"projected_live_bytes_per_host_every_host_everywhere\":{:.0},\
         \"projected_dir_bytes_per_host_every_host_everywhere\":{:.0}}}",
        kept.len(),
        1.0 + count as f64 * (hosts as f64 - 1.0) / hosts as f64,
        per_history * hosts as f64,
        dir_bytes as f64 / kept.len() as f64 * hosts as f64,
    );
    Ok(())
}

fn host_name(index: usize) -> String {
    format!("web-{index:03}.dc1.example.net")
}

/// One simulated host: a deterministic random walk of its load, memory and disks.
struct Host {
    name: String,
    rng: u64,
    load: f32,
    mem: f32,
    disks: [f32; 3],
    uptime_s: u64,
}

impl Host {
    fn new(index: usize) -> Self {
        Self {
            name: host_name(index),
            rng: 0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(index as u64 + 1) | 1,
            load: 0.5 + (index % 4) as f32,
            mem: 35.0 + (index * 3 % 40) as f32,
            disks: [42.0 + (index % 30) as f32, 18.5, 63.0 + (index % 7) as f32],
            uptime_s: 86_400 * (3 + index as u64 % 100),
        }
    }

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
            worst_check: CheckLevel::Ok,
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
