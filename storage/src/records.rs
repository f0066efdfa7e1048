//! The domain records the agent stores and gossips: status samples, alerts and history entries.
//!
//! Each is a [`Record`] with its own version byte. postcard is not self-describing, so the
//! field order of a struct and the variant order of an enum are the wire format: append new
//! fields or variants only together with a version bump, and never reorder. The
//! `rename_all` attributes only shape the JSON the local API serves; postcard encodes
//! variants by index.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::record::Record;

/// How full one mounted filesystem is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskUsage {
    /// Mount point, such as `/` or `/var`.
    pub mount: String,
    /// Used space in percent of the filesystem's size, `0.0..=100.0`.
    pub used_pct: f32,
}

impl Record for DiskUsage {
    const VERSION: u8 = 1;
}

/// One status report of a host, broadcast every `status_interval`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusSample {
    /// The host that measured it.
    pub host: String,
    /// The host's team.
    pub team: String,
    /// Unix time in milliseconds of the measurement.
    pub at_ms: u64,
    /// Load averages over 1, 5 and 15 minutes.
    pub load: [f32; 3],
    /// Used memory in percent of the total.
    pub mem_used_pct: f32,
    /// Usage of each watched filesystem.
    pub disks: Vec<DiskUsage>,
    /// Seconds since the host booted.
    pub uptime_s: u64,
    /// The worst level among the host's checks at measurement time.
    pub worst_check: CheckLevel,
}

impl Record for StatusSample {
    const VERSION: u8 = 1;
}

/// The result level of a check, as in the Nagios plugin convention (exit codes 0 to 3, in
/// declaration order).
///
/// Levels compare by badness, not by exit code: `Ok < Unknown < Warning < Critical`, so
/// that the maximum of a set of levels is the one to worry about (see [`CheckLevel::worst`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckLevel {
    /// Everything is fine (exit code 0).
    Ok,
    /// Something needs attention soon (exit code 1).
    Warning,
    /// Something is broken (exit code 2).
    Critical,
    /// The check could not tell (exit code 3).
    Unknown,
}

impl CheckLevel {
    /// The rank of the level by badness; the order of [`Ord`].
    fn badness(self) -> u8 {
        match self {
            CheckLevel::Ok => 0,
            CheckLevel::Unknown => 1,
            CheckLevel::Warning => 2,
            CheckLevel::Critical => 3,
        }
    }

    /// The worst of `levels`, or [`CheckLevel::Ok`] when there are none.
    pub fn worst(levels: impl IntoIterator<Item = CheckLevel>) -> CheckLevel {
        levels.into_iter().max().unwrap_or(CheckLevel::Ok)
    }
}

impl Ord for CheckLevel {
    fn cmp(&self, other: &Self) -> Ordering {
        self.badness().cmp(&other.badness())
    }
}

impl PartialOrd for CheckLevel {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// How urgent a firing alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Needs attention soon.
    Warning,
    /// Needs attention now.
    Critical,
}

/// Whether an alert is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// The condition holds.
    Firing,
    /// The condition held and no longer does; kept so the resolution spreads.
    Resolved,
    /// Another team's alert taken back by the border agent that brought it (its link was
    /// lost, or the other team removed it); kept so the removal spreads, never shown.
    Removed,
}

/// An alert raised by a check on some host, as gossiped and stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// The team of the host that raised it.
    pub team: String,
    /// The host that raised it.
    pub host: String,
    /// The alert's name, unique per host (usually the check's name).
    pub name: String,
    /// How urgent it is.
    pub severity: Severity,
    /// One line saying what is wrong.
    pub summary: String,
    /// Unix time in milliseconds when it started firing.
    pub first_seen_ms: u64,
    /// Unix time in milliseconds of its last change of state, severity or summary.
    pub last_change_ms: u64,
    /// Bumped by the origin host on every change; the highest version wins.
    pub version: u64,
    /// Firing or resolved.
    pub state: AlertState,
    /// The border agents it travelled through, origin first (empty within its own team).
    pub path: Vec<String>,
}

impl Alert {
    /// The identity of the alert: its team, host and name.
    pub fn key(&self) -> AlertKey {
        AlertKey {
            team: self.team.clone(),
            host: self.host.clone(),
            name: self.name.clone(),
        }
    }
}

impl Record for Alert {
    const VERSION: u8 = 1;
}

/// The identity of an [`Alert`]: `(team, host, name)`, ordered field by field.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AlertKey {
    /// The team of the host that raised the alert.
    pub team: String,
    /// The host that raised the alert.
    pub host: String,
    /// The alert's name.
    pub name: String,
}

impl fmt::Display for AlertKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.team, self.host, self.name)
    }
}

impl Record for AlertKey {
    const VERSION: u8 = 1;
}

/// One event in the recorded history of a host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The host the event is about.
    pub host: String,
    /// Unix time in milliseconds of the event.
    pub at_ms: u64,
    /// What happened.
    pub event: HistoryEvent,
}

impl Record for HistoryEntry {
    const VERSION: u8 = 1;
}

/// What a [`HistoryEntry`] records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryEvent {
    /// A raw status sample, as received.
    Sample(StatusSample),
    /// The mean of the raw samples of one minute, written by compaction in their place.
    MinuteMean {
        /// The mean sample: mean load, memory and disk use, highest uptime, worst check.
        sample: StatusSample,
        /// How many raw samples it stands for.
        count: u32,
    },
    /// The host's membership changed (joined, suspected, failed, left).
    Membership {
        /// The new status, such as `"alive"` or `"failed"`.
        status: String,
        /// Free text: who noticed, the generation, the reason.
        detail: String,
    },
    /// An alert of the host changed.
    Alert {
        /// The alert's name.
        name: String,
        /// Its new state.
        state: AlertState,
        /// Its severity.
        severity: Severity,
        /// Its summary at that time.
        summary: String,
    },
    /// A notification about the host was sent (or failed).
    Notification {
        /// The incident it was about.
        incident: String,
        /// The notifier used, such as `"email"`.
        channel: String,
        /// Free text: outcome, recipient, error.
        detail: String,
    },
    /// The switch port one of the host's interfaces hears changed (LLDP/CDP topology).
    SwitchChange {
        /// The host's interface.
        interface: String,
        /// The switch and port before (for example `sw-a port p1`), if it heard one.
        from: Option<String>,
        /// After.
        to: Option<String>,
    },
}

impl HistoryEvent {
    /// The sample this event carries: a raw sample, or the mean of a minute.
    pub fn sample(&self) -> Option<&StatusSample> {
        match self {
            HistoryEvent::Sample(sample) | HistoryEvent::MinuteMean { sample, .. } => Some(sample),
            _ => None,
        }
    }
}

impl Record for HistoryEvent {
    const VERSION: u8 = 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{decode, encode};

    fn sample() -> StatusSample {
        StatusSample {
            host: "web-1".to_owned(),
            team: "ops".to_owned(),
            at_ms: 1_700_000_000_000,
            load: [0.5, 0.75, 1.0],
            mem_used_pct: 41.5,
            disks: vec![DiskUsage {
                mount: "/".to_owned(),
                used_pct: 63.0,
            }],
            uptime_s: 86_400,
            worst_check: CheckLevel::Warning,
        }
    }

    #[test]
    fn check_levels_order_by_badness_not_by_exit_code() {
        let mut levels = vec![
            CheckLevel::Critical,
            CheckLevel::Unknown,
            CheckLevel::Ok,
            CheckLevel::Warning,
        ];
        levels.sort();
        assert_eq!(
            levels,
            [
                CheckLevel::Ok,
                CheckLevel::Unknown,
                CheckLevel::Warning,
                CheckLevel::Critical
            ]
        );
    }

    #[test]
    fn the_worst_of_no_levels_is_ok() {
        assert_eq!(CheckLevel::worst([]), CheckLevel::Ok);
        assert_eq!(
            CheckLevel::worst([CheckLevel::Unknown, CheckLevel::Ok]),
            CheckLevel::Unknown
        );
        assert_eq!(
            CheckLevel::worst([CheckLevel::Critical, CheckLevel::Warning]),
            CheckLevel::Critical
        );
    }

    #[test]
    fn an_alert_key_displays_as_team_host_name_and_sorts_field_by_field() {
        let key = |team: &str, host: &str, name: &str| AlertKey {
            team: team.to_owned(),
            host: host.to_owned(),
            name: name.to_owned(),
        };
        assert_eq!(key("ops", "web-1", "disk").to_string(), "ops/web-1/disk");
        assert!(key("a", "z", "z") < key("b", "a", "a"));
        assert!(key("a", "b", "z") < key("a", "ba", "a"));
    }

    #[test]
    fn every_history_event_round_trips_through_the_record_encoding() {
        let events = [
            HistoryEvent::Sample(sample()),
            HistoryEvent::MinuteMean {
                sample: sample(),
                count: 12,
            },
            HistoryEvent::Membership {
                status: "failed".to_owned(),
                detail: "suspected by web-2".to_owned(),
            },
            HistoryEvent::Alert {
                name: "disk".to_owned(),
                state: AlertState::Firing,
                severity: Severity::Critical,
                summary: "/var 97%".to_owned(),
            },
            HistoryEvent::Notification {
                incident: "web-1 down".to_owned(),
                channel: "email".to_owned(),
                detail: "sent".to_owned(),
            },
        ];
        for event in events {
            let entry = HistoryEntry {
                host: "web-1".to_owned(),
                at_ms: 5,
                event,
            };
            let bytes = encode(&entry).unwrap();
            assert_eq!(
                decode::<HistoryEntry>("history", b"k", &bytes).unwrap(),
                entry
            );
        }
    }

    #[test]
    fn only_samples_and_minute_means_carry_a_sample() {
        assert_eq!(HistoryEvent::Sample(sample()).sample(), Some(&sample()));
        let mean = HistoryEvent::MinuteMean {
            sample: sample(),
            count: 2,
        };
        assert_eq!(mean.sample(), Some(&sample()));
        let membership = HistoryEvent::Membership {
            status: "alive".to_owned(),
            detail: String::new(),
        };
        assert_eq!(membership.sample(), None);
    }

    #[test]
    fn enum_variants_encode_as_their_declaration_index() {
        // The declaration order is the wire format: CheckLevel follows the Nagios exit codes.
        assert_eq!(postcard::to_stdvec(&CheckLevel::Unknown).unwrap(), [3]);
        assert_eq!(postcard::to_stdvec(&Severity::Critical).unwrap(), [1]);
        assert_eq!(postcard::to_stdvec(&AlertState::Resolved).unwrap(), [1]);
    }
}
