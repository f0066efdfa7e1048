//! How many times each check ran, by the state the run found, for `/metrics`
//! (`rover_check_runs_total`). One table per process; its keys are the configured checks,
//! so it is bounded by the config.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::outcome::CheckState;

/// Runs by (check name, state found).
#[derive(Debug, Default)]
pub struct RunCounts {
    runs: Mutex<BTreeMap<(String, &'static str), u64>>,
}

/// This process's counts.
pub static CHECK_RUNS: RunCounts = RunCounts {
    runs: Mutex::new(BTreeMap::new()),
};

impl RunCounts {
    /// Counts one run of `check` that found `state`.
    pub fn count(&self, check: &str, state: CheckState) {
        let mut runs = match self.runs.lock() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        };
        *runs.entry((check.to_owned(), state.label())).or_default() += 1;
    }

    /// The counts: (check, state label, runs), ordered by check then state.
    pub fn read(&self) -> Vec<(String, &'static str, u64)> {
        let runs = match self.runs.lock() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        };
        runs.iter()
            .map(|((check, state), n)| (check.clone(), *state, *n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_counted_by_check_and_state() {
        let counts = RunCounts::default();
        counts.count("disk", CheckState::Ok);
        counts.count("disk", CheckState::Ok);
        counts.count("disk", CheckState::Critical);
        counts.count("load", CheckState::Warning);
        assert_eq!(
            counts.read(),
            vec![
                ("disk".to_owned(), "CRITICAL", 1),
                ("disk".to_owned(), "OK", 2),
                ("load".to_owned(), "WARNING", 1),
            ]
        );
    }
}
