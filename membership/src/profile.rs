//! Gossip timing profiles (`lan`, `wan`, `local`) over foca's `Config`.
//!
//! `lan` and `wan` are foca's memberlist-derived defaults; `local` is for processes on one host
//! (tests, demos): the same shape, with shorter probe periods. The cluster size passed in
//! scales the suspicion timeout and the number of retransmissions as in memberlist.

use std::num::NonZeroU32;
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
        let size = NonZeroU32::new(u32::try_from(cluster_size.max(1)).unwrap_or(u32::MAX))
            .unwrap_or(NonZeroU32::MIN);
        match self {
            Profile::Lan => foca::Config::new_lan(size),
            Profile::Wan => foca::Config::new_wan(size),
            Profile::Local => {
                let mut config = foca::Config::new_lan(size);
                let lan_period = config.probe_period;
                config.probe_period = Duration::from_millis(500);
                config.probe_rtt = Duration::from_millis(200);
                config.suspect_to_down_after = config.suspect_to_down_after / 2;
                debug_assert!(config.probe_period < lan_period);
                config
            }
        }
    }

    /// How long after going quiet a member is declared failed, for `cluster_size` members.
    pub fn suspicion_timeout(self, cluster_size: usize) -> Duration {
        self.foca_config(cluster_size).suspect_to_down_after
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
    fn profiles_parse_from_their_names() {
        assert_eq!("wan".parse::<Profile>().unwrap(), Profile::Wan);
        assert!("fast".parse::<Profile>().unwrap_err().contains("fast"));
    }
}
