//! Gossip timing profiles (`lan`, `wan`, `local`) over foca's `Config`.
//!
//! `lan` and `wan` are foca's memberlist-derived defaults; `local` is for processes on one host
//! (tests, demos): the same shape, with shorter probe periods. The cluster size passed in
//! scales the suspicion timeout and the number of retransmissions as in memberlist.

use std::num::{NonZeroU32, NonZeroU8, NonZeroUsize};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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

    /// How long after going quiet a member is declared failed, for `cluster_size` members.
    pub fn suspicion_timeout(self, cluster_size: usize) -> Duration {
        self.foca_config(cluster_size).suspect_to_down_after
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
    /// Scales the profile's suspicion timeout (1.0 = memberlist's).
    pub suspicion_scale: f64,
    /// How far a datagram's sender time may be from ours (see [`crate::replay`]): the clock
    /// skew the cluster tolerates.
    #[serde(default = "default_replay_window")]
    pub replay_window: Duration,
}

fn default_replay_window() -> Duration {
    crate::replay::DEFAULT_WINDOW
}

impl From<Profile> for Tunables {
    fn from(profile: Profile) -> Self {
        Self {
            profile,
            indirect_probes: 4,
            retransmit_mult: 4,
            suspicion_scale: 1.0,
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
                config.suspect_to_down_after /= 2;
                config
            }
        };
        let log_n = (f64::from(size.get()) + 1.0).log10().ceil().max(1.0);
        let transmissions = (f64::from(self.retransmit_mult) * log_n).clamp(1.0, 255.0) as u8;
        config.max_transmissions = NonZeroU8::new(transmissions).unwrap_or(NonZeroU8::MIN);
        config.num_indirect_probes =
            NonZeroUsize::new(self.indirect_probes.max(1)).unwrap_or(NonZeroUsize::MIN);
        if self.suspicion_scale.is_finite() && self.suspicion_scale > 0.0 {
            config.suspect_to_down_after =
                config.suspect_to_down_after.mul_f64(self.suspicion_scale);
        }
        config
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
        assert_eq!(Profile::Lan.suspicion_timeout(5), Duration::from_secs(4));
        assert_eq!(
            Profile::Lan.suspicion_timeout(1000),
            Duration::from_secs(12)
        );
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
