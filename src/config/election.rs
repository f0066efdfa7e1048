//! The `[election]` settings: how the Raft group forms and follows membership, and when a
//! partition without quorum falls back to a local leader.

use std::time::Duration;

use super::{parse_duration, pick, ConfigError, Layer, Source, Sourced};

/// The validated `[election]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionConfig {
    /// 1: a standalone agent (no `--join`) starts a group of its own; 0: never, it waits to be
    /// added by a group's leader.
    pub bootstrap_expect: u32,
    /// At most this many voters (the rest are learners).
    pub max_voters: usize,
    /// A voter failed for this long leaves the group.
    pub voter_reap_after: Duration,
    /// Without a Raft leader for this long, a partition's lowest-named member leads it.
    pub fallback_after: Duration,
}

impl ElectionConfig {
    /// Whether this agent starts a group of its own on first start.
    pub fn bootstraps(&self, join: &[std::net::SocketAddr]) -> bool {
        self.bootstrap_expect == 1 && join.is_empty()
    }
}

/// Resolves the `[election]` keys of `layers` (lowest first).
pub(super) fn resolve(layers: &[(&Layer, Source)]) -> Result<ElectionConfig, ConfigError> {
    let number =
        |key: &'static str, value: Option<Sourced<String>>, default: u64, range: (u64, u64)| {
            let Some(v) = value else {
                return Ok(default);
            };
            match v.value.trim().parse::<u64>() {
                Ok(n) if (range.0..=range.1).contains(&n) => Ok(n),
                _ => Err(ConfigError::Invalid {
                    key,
                    value: v.value.clone(),
                    origin: v.source,
                    problem: format!("must be a whole number from {} to {}", range.0, range.1),
                }),
            }
        };
    let bootstrap_expect = number(
        "election.bootstrap_expect",
        pick(
            layers,
            |l| l.bootstrap_expect.clone(),
            "ROVER_BOOTSTRAP_EXPECT",
            "-",
        ),
        1,
        (0, 1),
    )?;
    let max_voters = number(
        "election.max_voters",
        pick(layers, |l| l.max_voters.clone(), "ROVER_MAX_VOTERS", "-"),
        5,
        (1, 9),
    )?;
    let duration = |key: &'static str, value: Option<Sourced<String>>, default: Duration| {
        value.map_or(Ok(default), |v| parse_duration(key, v))
    };
    Ok(ElectionConfig {
        bootstrap_expect: u32::try_from(bootstrap_expect).unwrap_or(1),
        max_voters: usize::try_from(max_voters).unwrap_or(5),
        voter_reap_after: duration(
            "election.voter_reap_after",
            pick(
                layers,
                |l| l.voter_reap_after.clone(),
                "ROVER_VOTER_REAP_AFTER",
                "-",
            ),
            Duration::from_secs(120),
        )?,
        fallback_after: duration(
            "election.fallback_after",
            pick(
                layers,
                |l| l.fallback_after.clone(),
                "ROVER_FALLBACK_AFTER",
                "-",
            ),
            Duration::from_secs(20),
        )?,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn from_toml(text: &str) -> Result<ElectionConfig, ConfigError> {
        let layer = Layer::from_toml(text, Path::new("test.toml")).unwrap();
        resolve(&[(&layer, Source::File("test.toml".into()))])
    }

    #[test]
    fn the_defaults_are_one_bootstrap_five_voters_two_minutes_and_twenty_seconds() {
        let config = from_toml("").unwrap();
        assert_eq!(
            config,
            ElectionConfig {
                bootstrap_expect: 1,
                max_voters: 5,
                voter_reap_after: Duration::from_secs(120),
                fallback_after: Duration::from_secs(20),
            }
        );
    }

    #[test]
    fn election_keys_are_read_from_the_file() {
        let config = from_toml(
            "[election]\nbootstrap_expect = 0\nmax_voters = 3\nvoter_reap_after = \"30s\"\nfallback_after = \"5s\"\n",
        )
        .unwrap();
        assert_eq!(config.bootstrap_expect, 0);
        assert_eq!(config.max_voters, 3);
        assert_eq!(config.voter_reap_after, Duration::from_secs(30));
        assert_eq!(config.fallback_after, Duration::from_secs(5));
    }

    #[test]
    fn a_bad_election_value_names_its_key() {
        let error = from_toml("[election]\nmax_voters = 0\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("election.max_voters"), "{error}");
        let error = from_toml("[election]\nbootstrap_expect = 3\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("election.bootstrap_expect"), "{error}");
    }

    #[test]
    fn an_agent_with_seeds_never_bootstraps() {
        let config = from_toml("").unwrap();
        assert!(config.bootstraps(&[]));
        assert!(!config.bootstraps(&["127.0.0.1:7946".parse().unwrap()]));
    }
}
