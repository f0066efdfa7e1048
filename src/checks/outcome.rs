//! The result of one check run: a Nagios state and a one-line summary.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A check's state, following the Nagios plugin convention.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[serde(rename_all = "lowercase")]
pub enum CheckState {
    /// Exit code 0: all is well.
    Ok,
    /// Exit code 1: something needs attention.
    Warning,
    /// Exit code 2: something is broken.
    Critical,
    /// Exit code 3 (or anything else, a signal, a timeout): the check itself failed.
    Unknown,
}

impl CheckState {
    /// Maps a plugin's exit code: 0 OK, 1 WARNING, 2 CRITICAL, anything else UNKNOWN.
    pub fn from_exit_code(code: i32) -> Self {
        match code {
            0 => Self::Ok,
            1 => Self::Warning,
            2 => Self::Critical,
            _ => Self::Unknown,
        }
    }

    /// How bad the state is, for picking the worst of several: Ok < Unknown < Warning < Critical.
    pub fn badness(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Unknown => 1,
            Self::Warning => 2,
            Self::Critical => 3,
        }
    }

    /// The Nagios spelling: `OK`, `WARNING`, `CRITICAL`, `UNKNOWN`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Warning => "WARNING",
            Self::Critical => "CRITICAL",
            Self::Unknown => "UNKNOWN",
        }
    }
}

impl fmt::Display for CheckState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// What one run of a check found.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct CheckOutcome {
    /// The state the run found.
    pub state: CheckState,
    /// One line saying what was found, e.g. `LOAD OK - load average: 0.10, 0.20, 0.30`.
    pub summary: String,
}

impl CheckOutcome {
    /// An outcome with the given state and summary.
    pub fn new(state: CheckState, summary: impl Into<String>) -> Self {
        Self {
            state,
            summary: summary.into(),
        }
    }

    /// An UNKNOWN outcome: the check could not tell.
    pub fn unknown(summary: impl Into<String>) -> Self {
        Self::new(CheckState::Unknown, summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_map_to_nagios_states() {
        assert_eq!(CheckState::from_exit_code(0), CheckState::Ok);
        assert_eq!(CheckState::from_exit_code(1), CheckState::Warning);
        assert_eq!(CheckState::from_exit_code(2), CheckState::Critical);
        assert_eq!(CheckState::from_exit_code(3), CheckState::Unknown);
        assert_eq!(CheckState::from_exit_code(4), CheckState::Unknown);
        assert_eq!(CheckState::from_exit_code(-1), CheckState::Unknown);
        assert_eq!(CheckState::from_exit_code(255), CheckState::Unknown);
    }

    #[test]
    fn badness_orders_ok_unknown_warning_critical() {
        let mut states = [
            CheckState::Critical,
            CheckState::Ok,
            CheckState::Warning,
            CheckState::Unknown,
        ];
        states.sort_by_key(|s| s.badness());
        assert_eq!(
            states,
            [
                CheckState::Ok,
                CheckState::Unknown,
                CheckState::Warning,
                CheckState::Critical
            ]
        );
    }

    #[test]
    fn states_serialize_in_lowercase_and_display_in_nagios_capitals() {
        assert_eq!(
            serde_json::to_string(&CheckState::Critical).unwrap(),
            "\"critical\""
        );
        assert_eq!(
            serde_json::from_str::<CheckState>("\"unknown\"").unwrap(),
            CheckState::Unknown
        );
        assert_eq!(CheckState::Warning.to_string(), "WARNING");
    }
}
