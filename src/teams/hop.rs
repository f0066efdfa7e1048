//! One hop of an alert's path: the border agent `team/host` it passed through, and the rule
//! for the team and host names it is made of.
//!
//! [`rover_storage::Alert::path`] holds hops as strings (`"home/gw1"`), origin first; this
//! module parses and prints them.

use std::fmt;
use std::str::FromStr;

/// The longest team, host or alert name, in bytes (all of them ASCII).
pub const MAX_NAME_LEN: usize = 128;

/// Whether `text` is a valid team, host or alert name: 1 to [`MAX_NAME_LEN`] letters, digits,
/// `-`, `_` or `.` (the rule of the config file and the local API).
pub fn is_valid_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_NAME_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A border agent an alert passed through, shown and parsed as `team/host`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hop {
    /// The border agent's team.
    pub team: String,
    /// The border agent's host name.
    pub host: String,
}

/// A text that is not a hop: not `team/host`, or a part that is not a valid name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a hop: team/host, each 1 to 128 of A-Z a-z 0-9 - _ .")]
pub struct HopError(pub String);

impl Hop {
    /// The hop of `host` in `team`, if both are valid names.
    pub fn new(team: &str, host: &str) -> Result<Hop, HopError> {
        if is_valid_name(team) && is_valid_name(host) {
            Ok(Hop {
                team: team.to_owned(),
                host: host.to_owned(),
            })
        } else {
            Err(HopError(format!("{team}/{host}")))
        }
    }
}

/// The team part of the hop string `hop` (`"home/gw1"` -> `"home"`) without checking the
/// names; `None` if it has no `/`.
pub fn team_of(hop: &str) -> Option<&str> {
    hop.split_once('/').map(|(team, _)| team)
}

impl fmt::Display for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.team, self.host)
    }
}

impl FromStr for Hop {
    type Err = HopError;

    fn from_str(text: &str) -> Result<Hop, HopError> {
        // Names hold no '/', so a second one makes the host invalid.
        let (team, host) = text.split_once('/').ok_or_else(|| HopError(text.into()))?;
        Hop::new(team, host).map_err(|_| HopError(text.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hop_prints_and_parses_as_team_slash_host() {
        let hop = Hop::new("home", "gw-1.lan").unwrap();
        assert_eq!(hop.to_string(), "home/gw-1.lan");
        assert_eq!("home/gw-1.lan".parse::<Hop>(), Ok(hop));
        assert_eq!(team_of("home/gw-1.lan"), Some("home"));
        assert_eq!(team_of("home"), None);
    }

    #[test]
    fn texts_that_are_not_team_slash_host_are_refused() {
        let long = "x".repeat(129);
        for bad in [
            "",
            "home",
            "/gw",
            "home/",
            "home/gw/x",
            "ho me/gw",
            "home/gw\n",
            "hôme/gw",
            &format!("{long}/gw"),
            &format!("home/{long}"),
        ] {
            assert!(bad.parse::<Hop>().is_err(), "{bad:?}");
        }
        let longest = "x".repeat(128);
        assert!(format!("{longest}/{longest}").parse::<Hop>().is_ok());
    }

    #[test]
    fn names_are_letters_digits_dash_underscore_and_dot() {
        assert!(is_valid_name("a-b_c.9"));
        for bad in ["", "a b", "a/b", "a\u{0}", "é", &"a".repeat(129)] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
    }
}
