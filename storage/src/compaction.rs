//! Downsampling and retention of history, as pure code shared by every
//! [`crate::HistoryStore`] implementation.
//!
//! A compaction at `now` has two cut-offs:
//!
//! - every entry, of any kind, older than `now - retention` is deleted (expired);
//! - every raw [`HistoryEvent::Sample`] older than `now - raw_retention` is folded, with the
//!   other raw samples and any earlier mean of the same host and minute, into one
//!   [`HistoryEvent::MinuteMean`] at the minute's start. Means are weighted by their count,
//!   so a late sample merges into its minute's mean instead of adding a second one.
//!
//! A raw sample whose minute starts before the expiry cut-off is expired rather than folded,
//! since its mean would be expired at once. Compacting twice at the same `now` changes
//! nothing the second time, and entries that are not samples are only ever expired.
//!
//! A store walks a host's entries of the fold window (between the two cut-offs) in time
//! order through a `Folder`, which hands back one plan per minute that needs a change; the
//! store applies each plan atomically (one sled batch), so a crash leaves either the raw
//! samples or their mean, never neither.

use crate::records::{CheckLevel, DiskUsage, HistoryEntry, HistoryEvent, StatusSample};

/// Length of the downsampling bucket, in milliseconds.
pub const MINUTE_MS: u64 = 60_000;

/// What one compaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactStats {
    /// Raw samples folded into minute means (and deleted).
    pub folded: usize,
    /// Minute means written (new, or replacing an earlier mean of the same minute).
    pub means_written: usize,
    /// Entries deleted for their age, including raw samples of an already expired minute.
    pub expired: usize,
}

impl CompactStats {
    /// Adds the counts of one applied plan.
    pub(crate) fn add<K>(&mut self, plan: &MinutePlan<K>) {
        self.folded += plan.folded;
        self.expired += plan.expired;
        self.means_written += usize::from(plan.write.is_some());
    }
}

/// The two time cut-offs of one compaction, in Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cutoffs {
    /// Entries with `at_ms` below this are deleted.
    pub expire_before: u64,
    /// Raw samples with `at_ms` below this are folded into minute means.
    pub fold_before: u64,
}

impl Cutoffs {
    /// The cut-offs of a compaction at `now_ms` (saturating at time zero).
    pub fn new(now_ms: u64, raw_retention_ms: u64, retention_ms: u64) -> Self {
        Self {
            expire_before: now_ms.saturating_sub(retention_ms),
            fold_before: now_ms.saturating_sub(raw_retention_ms),
        }
    }
}

/// The start of the minute holding `at_ms`.
pub(crate) fn minute_start(at_ms: u64) -> u64 {
    at_ms - at_ms % MINUTE_MS
}

/// The change to make for one host and minute: delete `delete`, then write `write` if any.
/// Apply it atomically.
#[derive(Debug)]
pub(crate) struct MinutePlan<K> {
    /// Keys of the raw samples and earlier means of the minute.
    pub delete: Vec<K>,
    /// The new minute mean, or `None` when the whole minute expired.
    pub write: Option<HistoryEntry>,
    /// How many of `delete` are raw samples folded into `write`.
    pub folded: usize,
    /// How many of `delete` are deleted for their age.
    pub expired: usize,
}

/// Walks entries in (host, time) order and plans one change per host and minute.
///
/// Feed it the entries of the fold window with [`Folder::push`] and call [`Folder::finish`]
/// at the end; entries outside the window and entries without a sample are ignored.
#[derive(Debug)]
pub(crate) struct Folder<K> {
    cutoffs: Cutoffs,
    group: Option<MinuteGroup<K>>,
}

impl<K> Folder<K> {
    /// A folder for a compaction with `cutoffs`.
    pub fn new(cutoffs: Cutoffs) -> Self {
        Self {
            cutoffs,
            group: None,
        }
    }

    /// Takes the entry stored at `key`; returns the plan of the minute it closes, if that
    /// minute needs a change.
    pub fn push(&mut self, key: K, entry: &HistoryEntry) -> Option<MinutePlan<K>> {
        let in_window =
            entry.at_ms >= self.cutoffs.expire_before && entry.at_ms < self.cutoffs.fold_before;
        if !in_window || entry.event.sample().is_none() {
            return None;
        }
        let minute = minute_start(entry.at_ms);
        let closed = match &self.group {
            Some(group) if group.host == entry.host && group.minute == minute => None,
            _ => self.finish(),
        };
        let cutoffs = self.cutoffs;
        self.group
            .get_or_insert_with(|| MinuteGroup::new(&entry.host, minute, cutoffs))
            .add(key, entry);
        closed
    }

    /// Ends the walk; returns the plan of the last minute, if it needs a change.
    pub fn finish(&mut self) -> Option<MinutePlan<K>> {
        self.group.take().and_then(MinuteGroup::into_plan)
    }
}

/// The raw samples and means of one host and minute seen so far, folded into running sums.
#[derive(Debug)]
struct MinuteGroup<K> {
    host: String,
    minute: u64,
    expired: bool,
    keys: Vec<K>,
    raw: usize,
    means: usize,
    sum: SampleSum,
}

impl<K> MinuteGroup<K> {
    fn new(host: &str, minute: u64, cutoffs: Cutoffs) -> Self {
        Self {
            host: host.to_owned(),
            minute,
            expired: minute < cutoffs.expire_before,
            keys: Vec::new(),
            raw: 0,
            means: 0,
            sum: SampleSum::default(),
        }
    }

    fn add(&mut self, key: K, entry: &HistoryEntry) {
        let (sample, weight) = match &entry.event {
            HistoryEvent::Sample(sample) => {
                self.raw += 1;
                (sample, 1)
            }
            HistoryEvent::MinuteMean { sample, count } => {
                self.means += 1;
                (sample, u64::from(*count).max(1))
            }
            _ => return,
        };
        self.keys.push(key);
        if !self.expired {
            self.sum.add(sample, weight);
        }
    }

    fn into_plan(self) -> Option<MinutePlan<K>> {
        if self.expired {
            let expired = self.keys.len();
            return Some(MinutePlan {
                delete: self.keys,
                write: None,
                folded: 0,
                expired,
            });
        }
        if self.raw == 0 && self.means <= 1 {
            return None;
        }
        let (sample, count) = self.sum.mean(&self.host, self.minute);
        Some(MinutePlan {
            delete: self.keys,
            write: Some(HistoryEntry {
                host: self.host,
                at_ms: self.minute,
                event: HistoryEvent::MinuteMean { sample, count },
            }),
            folded: self.raw,
            expired: 0,
        })
    }
}

/// Weighted running sums of samples.
#[derive(Debug, Default)]
struct SampleSum {
    weight: u64,
    team: String,
    load: [f64; 3],
    mem_used_pct: f64,
    /// Per mount, in order of first appearance: the weighted sum and the weight.
    disks: Vec<(String, f64, u64)>,
    uptime_s: u64,
    worst_check: Option<CheckLevel>,
}

impl SampleSum {
    fn add(&mut self, sample: &StatusSample, weight: u64) {
        let w = weight as f64;
        self.weight += weight;
        self.team.clone_from(&sample.team);
        for (sum, value) in self.load.iter_mut().zip(sample.load) {
            *sum += f64::from(value) * w;
        }
        self.mem_used_pct += f64::from(sample.mem_used_pct) * w;
        for disk in &sample.disks {
            match self
                .disks
                .iter_mut()
                .find(|(mount, ..)| *mount == disk.mount)
            {
                Some((_, sum, disk_weight)) => {
                    *sum += f64::from(disk.used_pct) * w;
                    *disk_weight += weight;
                }
                None => self
                    .disks
                    .push((disk.mount.clone(), f64::from(disk.used_pct) * w, weight)),
            }
        }
        self.uptime_s = self.uptime_s.max(sample.uptime_s);
        self.worst_check = self.worst_check.max(Some(sample.worst_check));
    }

    /// The mean sample at `at_ms` and how many raw samples it stands for (capped at
    /// `u32::MAX`).
    fn mean(self, host: &str, at_ms: u64) -> (StatusSample, u32) {
        let total = self.weight.max(1) as f64;
        let mean = |sum: f64| (sum / total) as f32;
        let sample = StatusSample {
            host: host.to_owned(),
            team: self.team,
            at_ms,
            load: self.load.map(mean),
            mem_used_pct: mean(self.mem_used_pct),
            disks: self
                .disks
                .into_iter()
                .map(|(mount, sum, weight)| DiskUsage {
                    mount,
                    used_pct: (sum / weight.max(1) as f64) as f32,
                })
                .collect(),
            uptime_s: self.uptime_s,
            worst_check: self.worst_check.unwrap_or(CheckLevel::Ok),
        };
        (sample, u32::try_from(self.weight).unwrap_or(u32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_040_000; // a minute start

    fn sample(at_ms: u64, load: f32, worst: CheckLevel) -> StatusSample {
        StatusSample {
            host: "web-1".to_owned(),
            team: "ops".to_owned(),
            at_ms,
            load: [load, load * 2.0, load * 3.0],
            mem_used_pct: load * 10.0,
            disks: vec![DiskUsage {
                mount: "/".to_owned(),
                used_pct: load * 20.0,
            }],
            uptime_s: at_ms / 1000,
            worst_check: worst,
        }
    }

    fn raw(at_ms: u64, load: f32) -> HistoryEntry {
        HistoryEntry {
            host: "web-1".to_owned(),
            at_ms,
            event: HistoryEvent::Sample(sample(at_ms, load, CheckLevel::Ok)),
        }
    }

    fn cutoffs() -> Cutoffs {
        Cutoffs {
            expire_before: T0,
            fold_before: T0 + 10 * MINUTE_MS,
        }
    }

    #[test]
    fn the_cutoffs_saturate_at_time_zero() {
        let cutoffs = Cutoffs::new(1_000, 5_000, 10_000);
        assert_eq!((cutoffs.expire_before, cutoffs.fold_before), (0, 0));
        let cutoffs = Cutoffs::new(100_000, 10_000, 50_000);
        assert_eq!(
            (cutoffs.expire_before, cutoffs.fold_before),
            (50_000, 90_000)
        );
    }

    #[test]
    fn three_samples_of_a_minute_fold_into_their_mean() {
        let mut folder = Folder::new(cutoffs());
        assert!(folder.push(1, &raw(T0 + 5_000, 1.0)).is_none());
        assert!(folder.push(2, &raw(T0 + 10_000, 2.0)).is_none());
        assert!(folder.push(3, &raw(T0 + 15_000, 3.0)).is_none());
        let plan = folder.finish().unwrap();
        assert_eq!(plan.delete, [1, 2, 3]);
        assert_eq!((plan.folded, plan.expired), (3, 0));
        let entry = plan.write.unwrap();
        assert_eq!(entry.at_ms, T0);
        let HistoryEvent::MinuteMean { sample, count } = entry.event else {
            panic!("not a mean: {entry:?}");
        };
        assert_eq!(count, 3);
        assert_eq!(sample.at_ms, T0);
        assert_eq!(sample.load, [2.0, 4.0, 6.0]);
        assert_eq!(sample.mem_used_pct, 20.0);
        assert_eq!(sample.disks[0].used_pct, 40.0);
        assert_eq!(sample.uptime_s, (T0 + 15_000) / 1000);
    }

    #[test]
    fn a_new_minute_closes_the_previous_one() {
        let mut folder = Folder::new(cutoffs());
        folder.push("a", &raw(T0 + 1_000, 1.0));
        let plan = folder.push("b", &raw(T0 + MINUTE_MS, 1.0)).unwrap();
        assert_eq!(plan.delete, ["a"]);
        assert_eq!(folder.finish().unwrap().delete, ["b"]);
    }

    #[test]
    fn a_late_sample_merges_into_its_minutes_mean_by_weight() {
        let mut folder = Folder::new(cutoffs());
        let mut mean = sample(T0, 1.0, CheckLevel::Warning);
        mean.disks.push(DiskUsage {
            mount: "/var".to_owned(),
            used_pct: 50.0,
        });
        let mean = HistoryEntry {
            host: "web-1".to_owned(),
            at_ms: T0,
            event: HistoryEvent::MinuteMean {
                sample: mean,
                count: 3,
            },
        };
        folder.push(1, &mean);
        folder.push(2, &raw(T0 + 30_000, 5.0));
        let plan = folder.finish().unwrap();
        assert_eq!(plan.folded, 1);
        let HistoryEvent::MinuteMean { sample, count } = plan.write.unwrap().event else {
            panic!("not a mean");
        };
        assert_eq!(count, 4);
        assert_eq!(sample.load[0], 2.0); // (1.0 * 3 + 5.0) / 4
        assert_eq!(sample.worst_check, CheckLevel::Warning);
        assert_eq!(
            sample.disks[1].used_pct, 50.0,
            "a mount seen once keeps its value"
        );
    }

    #[test]
    fn a_lone_mean_needs_no_change() {
        let mut folder = Folder::new(cutoffs());
        let entry = HistoryEntry {
            host: "web-1".to_owned(),
            at_ms: T0,
            event: HistoryEvent::MinuteMean {
                sample: sample(T0, 1.0, CheckLevel::Ok),
                count: 12,
            },
        };
        assert!(folder.push(1, &entry).is_none());
        assert!(folder.finish().is_none());
    }

    #[test]
    fn the_worst_check_of_a_minute_wins() {
        let mut folder = Folder::new(cutoffs());
        for (key, level) in [CheckLevel::Ok, CheckLevel::Critical, CheckLevel::Unknown]
            .into_iter()
            .enumerate()
        {
            let at_ms = T0 + key as u64;
            let entry = HistoryEntry {
                host: "web-1".to_owned(),
                at_ms,
                event: HistoryEvent::Sample(sample(at_ms, 1.0, level)),
            };
            folder.push(key, &entry);
        }
        let HistoryEvent::MinuteMean { sample, .. } = folder.finish().unwrap().write.unwrap().event
        else {
            panic!("not a mean");
        };
        assert_eq!(sample.worst_check, CheckLevel::Critical);
    }

    #[test]
    fn samples_of_a_minute_that_started_before_expiry_are_expired_not_folded() {
        let cutoffs = Cutoffs {
            expire_before: T0 + 30_000,
            fold_before: T0 + 10 * MINUTE_MS,
        };
        let mut folder = Folder::new(cutoffs);
        folder.push(1, &raw(T0 + 40_000, 1.0));
        let plan = folder.finish().unwrap();
        assert_eq!((plan.folded, plan.expired), (0, 1));
        assert!(plan.write.is_none());
    }

    #[test]
    fn entries_outside_the_window_or_without_a_sample_are_ignored() {
        let mut folder = Folder::new(cutoffs());
        folder.push(1, &raw(T0 - 1, 1.0));
        folder.push(2, &raw(T0 + 10 * MINUTE_MS, 1.0));
        let membership = HistoryEntry {
            host: "web-1".to_owned(),
            at_ms: T0 + 1,
            event: HistoryEvent::Membership {
                status: "alive".to_owned(),
                detail: String::new(),
            },
        };
        folder.push(3, &membership);
        assert!(folder.finish().is_none());
    }

    #[test]
    fn each_host_gets_its_own_mean() {
        let mut folder = Folder::new(cutoffs());
        folder.push(1, &raw(T0 + 1, 1.0));
        let mut other = raw(T0 + 2, 1.0);
        other.host = "web-2".to_owned();
        let plan = folder.push(2, &other).unwrap();
        assert_eq!(plan.write.unwrap().host, "web-1");
        assert_eq!(folder.finish().unwrap().write.unwrap().host, "web-2");
    }
}
