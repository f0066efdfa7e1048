//! The `[election]` settings: how the Raft group forms and follows membership, and when a
//! partition without quorum falls back to a local leader.

use std::time::Duration;

use super::settings::{
    ELECTION_BOOTSTRAP_EXPECT, ELECTION_FALLBACK_AFTER, ELECTION_MAX_VOTERS,
    ELECTION_VOTER_REAP_AFTER,
};
use super::values::Values;
use super::ConfigError;

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

/// Resolves the `[election]` settings.
pub(super) fn resolve(values: &Values<'_>) -> Result<ElectionConfig, ConfigError> {
    Ok(ElectionConfig {
        bootstrap_expect: u32::try_from(values.count(&ELECTION_BOOTSTRAP_EXPECT)?).unwrap_or(1),
        max_voters: usize::try_from(values.count(&ELECTION_MAX_VOTERS)?).unwrap_or(5),
        voter_reap_after: values.required_duration(&ELECTION_VOTER_REAP_AFTER)?.value,
        fallback_after: values.required_duration(&ELECTION_FALLBACK_AFTER)?.value,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Layer, Source};

    fn from_toml(text: &str) -> Result<ElectionConfig, ConfigError> {
        let layer = Layer::from_toml(text, Path::new("test.toml")).unwrap();
        resolve(&Values::new(&[(&layer, Source::File("test.toml".into()))]))
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
