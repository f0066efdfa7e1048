//! Gossip timing profiles (`lan`, `wan`, `local`) over foca's `Config`.
//!
//! `lan` and `wan` are foca's memberlist-derived defaults; `local` is for processes on one host
//! (tests, demos): the same shape, with shorter probe periods. The cluster size passed in
//! scales the suspicion timeout and the number of retransmissions as in memberlist.
//!
//! Suspicion follows Lifeguard ([`crate::suspicion`]): the profile's suspicion time (memberlist's
//! `SuspicionMult · log10 n · probe period`) is the reference `base`; a suspicion nobody confirms
//! runs `suspicion_max_multiple · base` (foca's own suspect-to-down timer on the prober is set to
//! that), one confirmed by `expected_confirmations` other members `suspicion_min_fraction · base`.

use std::num::{NonZeroU32, NonZeroU8, NonZeroUsize};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::suspicion::SuspicionTimeouts;

/// A named set of SWIM timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// A local network: probe every 1 s, suspicion max(1, log10 n) * 4 s.
    #[default]
    Lan,
    /// Across the internet: probe every 5 s, suspicion max(1, log10 n) * 6 s.
    Wan,
    /// One host: probe every 500 ms.
    Local,
}

impl FromStr for Profile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "lan" => Ok(Self::Lan),
            "wan" => Ok(Self::Wan),
            "local" => Ok(Self::Local),
            other => Err(format!(
                "unknown profile {other:?} (expected lan, wan or local)"
            )),
        }
    }
}

impl Profile {
    /// foca's configuration for a cluster of about `cluster_size` members.
    pub fn foca_config(self, cluster_size: usize) -> foca::Config {
        Tunables::from(self).foca_config(cluster_size)
    }

    /// Lifeguard's suspicion timeouts for `cluster_size` members: a suspected member is
    /// declared failed after `max`, or down to `min` as other members confirm.
    pub fn suspicion_timeouts(self, cluster_size: usize) -> SuspicionTimeouts {
        Tunables::from(self).suspicion_timeouts(cluster_size)
    }
}

/// Our knobs over foca's `Config::new_lan` / `new_wan`: the profile plus overrides.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tunables {
    /// Base timings.
    pub profile: Profile,
    /// Members asked to ping a suspect on our behalf (foca default 3; 4 removed the false
    /// downs left under 10 % loss in the simulation).
    pub indirect_probes: usize,
    /// Retransmissions = `retransmit_mult * ceil(log10(n + 1))`, memberlist's formula.
    /// foca drops the `ceil`, which sends too few copies for refutations to outrun suspicion
    /// under loss (measured in the 10 % loss simulation).
    pub retransmit_mult: u32,
    /// Scales the profile's suspicion timeout (1.0 = memberlist's), min and max alike.
    pub suspicion_scale: f64,
    /// Lifeguard: the timeout once `expected_confirmations` other members confirmed a
    /// suspicion, as a fraction of the profile's (0.5: half of memberlist's minimum, which the
    /// confirmations make safe; measured in the 10 % loss simulation and a 2 s pause).
    #[serde(default = "default_suspicion_min_fraction")]
    pub suspicion_min_fraction: f64,
    /// Lifeguard: the timeout of a suspicion nobody confirms, as a multiple of the profile's
    /// (3.0 = 6 times the minimum, memberlist's `SuspicionMaxTimeoutMult`).
    #[serde(default = "default_suspicion_max_multiple")]
    pub suspicion_max_multiple: f64,
    /// Lifeguard: independent confirmations that bring a suspicion's timeout to its minimum
    /// (memberlist: `SuspicionMult - 2` = 2); at most half of the other survivors in a small
    /// cluster (see [`Tunables::suspicion_timeouts`]).
    #[serde(default = "default_expected_confirmations")]
    pub expected_confirmations: u32,
    /// How far a datagram's sender time may be from ours (see [`crate::replay`]): the clock
    /// skew the cluster tolerates.
    #[serde(default = "default_replay_window")]
    pub replay_window: Duration,
}

fn default_replay_window() -> Duration {
    crate::replay::DEFAULT_WINDOW
}

fn default_suspicion_min_fraction() -> f64 {
    0.5
}

fn default_suspicion_max_multiple() -> f64 {
    3.0
}

fn default_expected_confirmations() -> u32 {
    2
}

impl From<Profile> for Tunables {
    fn from(profile: Profile) -> Self {
        Self {
            profile,
            indirect_probes: 4,
            retransmit_mult: 4,
            suspicion_scale: 1.0,
            suspicion_min_fraction: default_suspicion_min_fraction(),
            suspicion_max_multiple: default_suspicion_max_multiple(),
            expected_confirmations: default_expected_confirmations(),
            replay_window: crate::replay::DEFAULT_WINDOW,
        }
    }
}

impl Tunables {
    /// foca's configuration for a cluster of about `cluster_size` members.
    pub fn foca_config(&self, cluster_size: usize) -> foca::Config {
        let size = NonZeroU32::new(u32::try_from(cluster_size.max(1)).unwrap_or(u32::MAX))
            .unwrap_or(NonZeroU32::MIN);
        let mut config = match self.profile {
            Profile::Lan => foca::Config::new_lan(size),
            Profile::Wan => foca::Config::new_wan(size),
            Profile::Local => {
                let mut config = foca::Config::new_lan(size);
                config.probe_period = Duration::from_millis(500);
                config.probe_rtt = Duration::from_millis(200);
                config
            }
        };
        let log_n = (f64::from(size.get()) + 1.0).log10().ceil().max(1.0);
        let transmissions = (f64::from(self.retransmit_mult) * log_n).clamp(1.0, 255.0) as u8;
        config.max_transmissions = NonZeroU8::new(transmissions).unwrap_or(NonZeroU8::MIN);
        config.num_indirect_probes =
            NonZeroUsize::new(self.indirect_probes.max(1)).unwrap_or(NonZeroUsize::MIN);
        config.suspect_to_down_after = self.suspicion_timeouts(cluster_size).max;
        config
    }

    /// The profile's suspicion time for `cluster_size` members, scaled: the fixed timeout
    /// plain SWIM (memberlist's minimum) would use, and Lifeguard's reference.
    pub fn swim_suspicion_timeout(&self, cluster_size: usize) -> Duration {
        let size = NonZeroU32::new(u32::try_from(cluster_size.max(1)).unwrap_or(u32::MAX))
            .unwrap_or(NonZeroU32::MIN);
        let base = match self.profile {
            Profile::Lan => foca::Config::new_lan(size).suspect_to_down_after,
            Profile::Wan => foca::Config::new_wan(size).suspect_to_down_after,
            Profile::Local => foca::Config::new_lan(size).suspect_to_down_after / 2,
        };
        base.mul_f64(positive_or_one(self.suspicion_scale))
    }

    /// Lifeguard's suspicion timeouts for `cluster_size` members (see the module docs).
    pub fn suspicion_timeouts(&self, cluster_size: usize) -> SuspicionTimeouts {
        let base = self.swim_suspicion_timeout(cluster_size);
        let min = base.mul_f64(positive_or_one(self.suspicion_min_fraction));
        let max = base
            .mul_f64(positive_or_one(self.suspicion_max_multiple))
            .max(min);
        // At most half of the other survivors (n - 2 besides the raiser) are expected to
        // confirm: 0 below 4 members (as memberlist), 1 with 4 or 5, `expected_confirmations`
        // from 6. Confirmations come at about one per probe period whatever the size, so in a
        // small cluster waiting for 2 would cost more than the minimum timeout itself.
        let half = u32::try_from(cluster_size.saturating_sub(2) / 2).unwrap_or(u32::MAX);
        let expected_confirmations = self.expected_confirmations.min(half);
        SuspicionTimeouts {
            min,
            max,
            expected_confirmations,
        }
    }
}

fn positive_or_one(value: f64) -> f64 {
    if value.is_finite() && value > 0.0 {
        value
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lan_timings_are_foca_defaults() {
        let config = Profile::Lan.foca_config(5);
        assert_eq!(config.probe_period, Duration::from_secs(1));
        assert_eq!(config.max_packet_size.get(), 1400);
    }

    #[test]
    fn lifeguard_suspicion_runs_from_half_to_three_times_memberlists_timeout() {
        let five = Profile::Lan.suspicion_timeouts(5);
        assert_eq!(five.min, Duration::from_secs(2));
        assert_eq!(five.max, Duration::from_secs(12));
        assert_eq!(five.expected_confirmations, 1);
        assert_eq!(Profile::Lan.suspicion_timeouts(6).expected_confirmations, 2);
        assert_eq!(
            Profile::Lan.foca_config(5).suspect_to_down_after,
            five.max,
            "foca's own timer on the prober is the unconfirmed timeout"
        );
        let thousand = Profile::Lan.suspicion_timeouts(1000);
        assert_eq!(
            (thousand.min, thousand.max),
            (Duration::from_secs(6), Duration::from_secs(36))
        );
        assert_eq!(Profile::Lan.suspicion_timeouts(3).expected_confirmations, 0);
    }

    #[test]
    fn retransmissions_follow_memberlist_with_its_ceiling() {
        assert_eq!(Profile::Lan.foca_config(5).max_transmissions.get(), 4);
        assert_eq!(Profile::Lan.foca_config(30).max_transmissions.get(), 8);
        assert_eq!(Profile::Lan.foca_config(1000).max_transmissions.get(), 16);
    }

    #[test]
    fn profiles_parse_from_their_names() {
        assert_eq!("wan".parse::<Profile>().unwrap(), Profile::Wan);
        assert!("fast".parse::<Profile>().unwrap_err().contains("fast"));
    }
}
