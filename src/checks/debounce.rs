//! Debouncing: a check's state changes only after `retries` consecutive results agree on the new
//! state, so one bad reading raises nothing. A pure state machine, fed one outcome at a time.
//!
//! The rule is the same in both directions (a recovery to OK also needs `retries` results), and
//! a result with yet another state restarts the count: with `retries = 3`, the sequence
//! WARNING, CRITICAL, CRITICAL, CRITICAL changes state on the last result, to CRITICAL.

use serde::{Deserialize, Serialize};

use super::outcome::{CheckOutcome, CheckState};

/// A change of a check's (debounced) state.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct Transition {
    /// The state before.
    pub from: CheckState,
    /// The state now.
    pub to: CheckState,
    /// The summary of the result that completed the change.
    pub summary: String,
}

/// The debounced state of one check.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Debouncer {
    retries: u32,
    state: CheckState,
    /// A state differing from `state` and how many results in a row have shown it.
    pending: Option<(CheckState, u32)>,
}

impl Debouncer {
    /// A debouncer in state OK with no history; `retries` below 1 counts as 1.
    pub fn new(retries: u32) -> Self {
        Self::with_state(retries, CheckState::Ok)
    }

    /// A debouncer that starts in `state` (e.g. restored after a restart).
    pub fn with_state(retries: u32, state: CheckState) -> Self {
        Self {
            retries: retries.max(1),
            state,
            pending: None,
        }
    }

    /// The current debounced state.
    pub fn state(&self) -> CheckState {
        self.state
    }

    /// Takes one result; returns the transition if this result completes one.
    pub fn observe(&mut self, outcome: &CheckOutcome) -> Option<Transition> {
        if outcome.state == self.state {
            self.pending = None;
            return None;
        }
        let seen = match self.pending {
            Some((state, count)) if state == outcome.state => count.saturating_add(1),
            _ => 1,
        };
        if seen < self.retries {
            self.pending = Some((outcome.state, seen));
            return None;
        }
        self.pending = None;
        let from = std::mem::replace(&mut self.state, outcome.state);
        Some(Transition {
            from,
            to: outcome.state,
            summary: outcome.summary.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CheckState::{Critical, Ok, Unknown, Warning};

    /// Feeds the states in order and writes down, per result, the transition it made (if any).
    fn run(
        debouncer: &mut Debouncer,
        states: &[CheckState],
    ) -> Vec<Option<(CheckState, CheckState)>> {
        states
            .iter()
            .map(|state| {
                debouncer
                    .observe(&CheckOutcome::new(*state, format!("{state}")))
                    .map(|t| (t.from, t.to))
            })
            .collect()
    }

    #[test]
    fn one_bad_reading_raises_nothing() {
        let mut d = Debouncer::new(3);
        assert_eq!(run(&mut d, &[Critical, Ok, Ok]), vec![None, None, None]);
        assert_eq!(d.state(), Ok);
    }

    #[test]
    fn retries_consecutive_results_change_the_state_once() {
        let mut d = Debouncer::new(3);
        assert_eq!(
            run(&mut d, &[Critical, Critical, Critical, Critical]),
            vec![None, None, Some((Ok, Critical)), None]
        );
        assert_eq!(d.state(), Critical);
    }

    #[test]
    fn an_interrupted_run_starts_counting_again() {
        let mut d = Debouncer::new(3);
        assert_eq!(
            run(
                &mut d,
                &[Critical, Critical, Ok, Critical, Critical, Critical]
            ),
            vec![None, None, None, None, None, Some((Ok, Critical))]
        );
    }

    #[test]
    fn a_different_bad_state_resets_the_count() {
        let mut d = Debouncer::new(3);
        assert_eq!(
            run(&mut d, &[Warning, Warning, Critical, Critical, Critical]),
            vec![None, None, None, None, Some((Ok, Critical))]
        );
        let mut flapping = Debouncer::new(2);
        assert_eq!(
            run(&mut flapping, &[Warning, Critical, Warning, Critical]),
            vec![None, None, None, None]
        );
    }

    #[test]
    fn recovery_also_needs_retries_ok_results() {
        let mut d = Debouncer::with_state(2, Critical);
        assert_eq!(
            run(&mut d, &[Ok, Critical, Ok, Ok, Ok]),
            vec![None, None, None, Some((Critical, Ok)), None]
        );
        assert_eq!(d.state(), Ok);
    }

    #[test]
    fn escalation_and_unknown_are_transitions_like_any_other() {
        let mut d = Debouncer::new(2);
        assert_eq!(
            run(
                &mut d,
                &[Warning, Warning, Critical, Critical, Unknown, Unknown]
            ),
            vec![
                None,
                Some((Ok, Warning)),
                None,
                Some((Warning, Critical)),
                None,
                Some((Critical, Unknown))
            ]
        );
    }

    #[test]
    fn one_retry_changes_state_on_every_new_state() {
        let mut d = Debouncer::new(1);
        assert_eq!(
            run(&mut d, &[Ok, Warning, Warning, Ok]),
            vec![None, Some((Ok, Warning)), None, Some((Warning, Ok))]
        );
    }

    #[test]
    fn zero_retries_counts_as_one() {
        let mut d = Debouncer::new(0);
        assert_eq!(run(&mut d, &[Critical]), vec![Some((Ok, Critical))]);
    }

    #[test]
    fn the_transition_carries_the_latest_summary() {
        let mut d = Debouncer::new(2);
        assert_eq!(d.observe(&CheckOutcome::new(Critical, "first")), None);
        assert_eq!(
            d.observe(&CheckOutcome::new(Critical, "second")),
            Some(Transition {
                from: Ok,
                to: Critical,
                summary: "second".into()
            })
        );
    }
}
