//! When to try a failed delivery again: a pure policy ([`RetryPolicy::next_wait`]) and the thin
//! async loop that follows it ([`deliver`]).
//!
//! An attempt ends [`Attempt::Delivered`], [`Attempt::Refused`] (never retried) or
//! [`Attempt::Failed`] (worth another try, perhaps not before the provider's `Retry-After`). The
//! waits double from `first_wait` (5 s, 10 s, 20 s...); a retry whose wait would end past the
//! budget is not made, so a whole delivery never takes longer than the budget.

use std::future::Future;
use std::time::{Duration, Instant};

use super::{Delivery, NotifyError, SEND_BUDGET};

/// The outcome of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// The provider took the message.
    Delivered(Delivery),
    /// The provider refused it; retrying cannot help.
    Refused(String),
    /// A failure worth retrying (5xx, 429, connection error, timeout).
    Failed {
        /// What went wrong, for the error if no retry succeeds.
        reason: String,
        /// The provider's own `Retry-After`, if it gave one.
        wait_at_least: Option<Duration>,
    },
}

impl Attempt {
    /// A retryable failure without a provider-given wait.
    pub(crate) fn failed(reason: impl Into<String>) -> Self {
        Attempt::Failed {
            reason: reason.into(),
            wait_at_least: None,
        }
    }
}

/// How many tries, how far apart, within how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Wait after the first failure; each later wait doubles.
    pub first_wait: Duration,
    /// At most this many attempts in all (`None`: as many as the budget allows).
    pub max_attempts: Option<u32>,
    /// The whole delivery, waits and attempts included, ends within this.
    pub budget: Duration,
}

impl RetryPolicy {
    /// 5 s, 10 s, 20 s... within [`SEND_BUDGET`].
    pub(crate) fn within_budget() -> Self {
        Self {
            first_wait: Duration::from_secs(5),
            max_attempts: None,
            budget: SEND_BUDGET,
        }
    }

    /// At most `attempts` tries, 5 s then 10 s... apart, within [`SEND_BUDGET`].
    pub(crate) fn at_most(attempts: u32) -> Self {
        Self {
            max_attempts: Some(attempts),
            ..Self::within_budget()
        }
    }

    /// After `failed` failed attempts, `elapsed` into the delivery: how long to wait before
    /// the next attempt, or why there is none. `wait_at_least` is the provider's own wait.
    pub(crate) fn next_wait(
        &self,
        failed: u32,
        elapsed: Duration,
        wait_at_least: Option<Duration>,
    ) -> Result<Duration, String> {
        if self.max_attempts.is_some_and(|max| failed >= max) {
            return Err(format!("gave up after {failed} attempts"));
        }
        let doubling = 2u32.saturating_pow(failed.saturating_sub(1));
        let backoff = self.first_wait.saturating_mul(doubling);
        let wait = wait_at_least.map_or(backoff, |asked| asked.max(self.first_wait));
        if elapsed.saturating_add(wait) >= self.budget {
            return Err(format!(
                "gave up after {failed} attempt{} in {}: waiting {} more would pass the {} budget",
                if failed == 1 { "" } else { "s" },
                seconds(elapsed),
                seconds(wait),
                seconds(self.budget),
            ));
        }
        Ok(wait)
    }
}

/// `12.3s`
fn seconds(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

/// Runs `attempt` until it delivers, is refused, or the policy stops it. Each attempt gets
/// `attempt_timeout` or what is left of the budget, whichever is shorter, and is cut off there.
pub(crate) async fn deliver<F, Fut>(
    policy: RetryPolicy,
    attempt_timeout: Duration,
    mut attempt: F,
) -> Result<Delivery, NotifyError>
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Attempt>,
{
    let start = Instant::now();
    let mut failed = 0u32;
    loop {
        let left = policy.budget.saturating_sub(start.elapsed());
        let timeout = attempt_timeout.min(left);
        let outcome = match tokio::time::timeout(timeout, attempt(timeout)).await {
            Ok(outcome) => outcome,
            Err(_) => Attempt::failed(format!("no answer within {}", seconds(timeout))),
        };
        let (reason, wait_at_least) = match outcome {
            Attempt::Delivered(delivery) => return Ok(delivery),
            Attempt::Refused(reason) => return Err(NotifyError::Refused(reason)),
            Attempt::Failed {
                reason,
                wait_at_least,
            } => (reason, wait_at_least),
        };
        failed += 1;
        match policy.next_wait(failed, start.elapsed(), wait_at_least) {
            Ok(wait) => {
                tracing::debug!(attempt = failed, reason, wait = ?wait, "delivery failed; retrying");
                tokio::time::sleep(wait).await;
            }
            Err(stop) => return Err(NotifyError::GaveUp(format!("{reason} ({stop})"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn waits_double_from_five_seconds() {
        let policy = RetryPolicy::within_budget();
        assert_eq!(policy.next_wait(1, S(1), None), Ok(S(5)));
        assert_eq!(policy.next_wait(2, S(7), None), Ok(S(10)));
        assert_eq!(policy.next_wait(3, S(18), None), Ok(S(20)));
    }

    #[test]
    fn a_retry_that_would_end_past_the_budget_is_not_made() {
        let policy = RetryPolicy::within_budget();
        assert_eq!(policy.next_wait(4, S(40), None), Ok(S(40)));
        let stop = policy.next_wait(4, S(55), None).unwrap_err();
        assert!(stop.contains("90.0s budget"), "{stop}");
    }

    #[test]
    fn the_providers_retry_after_is_honoured_but_never_below_the_first_wait() {
        let policy = RetryPolicy::within_budget();
        assert_eq!(policy.next_wait(1, S(0), Some(S(30))), Ok(S(30)));
        assert_eq!(policy.next_wait(1, S(0), Some(S(1))), Ok(S(5)));
        assert!(policy.next_wait(1, S(0), Some(S(3600))).is_err());
    }

    #[test]
    fn a_capped_policy_stops_after_its_attempts() {
        let policy = RetryPolicy::at_most(3);
        assert_eq!(policy.next_wait(2, S(6), None), Ok(S(10)));
        assert_eq!(
            policy.next_wait(3, S(17), None),
            Err("gave up after 3 attempts".into())
        );
    }

    #[tokio::test]
    async fn a_refusal_ends_delivery_at_once() {
        let mut calls = 0;
        let result = deliver(RetryPolicy::within_budget(), S(1), |_| {
            calls += 1;
            async { Attempt::Refused("bad token".into()) }
        })
        .await;
        assert!(matches!(result, Err(NotifyError::Refused(r)) if r == "bad token"));
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn a_failure_then_success_is_delivered() {
        let policy = RetryPolicy {
            first_wait: Duration::from_millis(10),
            max_attempts: Some(3),
            budget: S(5),
        };
        let mut calls = 0;
        let result = deliver(policy, S(1), |_| {
            calls += 1;
            let outcome = if calls == 1 {
                Attempt::failed("HTTP 500")
            } else {
                Attempt::Delivered(Delivery {
                    reference: Some("r1".into()),
                })
            };
            async move { outcome }
        })
        .await;
        assert_eq!(result.unwrap().reference.as_deref(), Some("r1"));
        assert_eq!(calls, 2);
    }

    #[tokio::test]
    async fn repeated_failures_give_up_naming_the_last_reason() {
        let policy = RetryPolicy {
            first_wait: Duration::from_millis(10),
            max_attempts: Some(2),
            budget: S(5),
        };
        let result = deliver(policy, S(1), |_| async { Attempt::failed("HTTP 503") }).await;
        match result {
            Err(NotifyError::GaveUp(why)) => {
                assert!(
                    why.contains("HTTP 503") && why.contains("2 attempts"),
                    "{why}"
                )
            }
            other => panic!("expected GaveUp, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_attempt_that_hangs_is_cut_off_at_its_timeout() {
        let policy = RetryPolicy {
            first_wait: Duration::from_millis(10),
            max_attempts: Some(1),
            budget: S(5),
        };
        let started = Instant::now();
        let result = deliver(policy, Duration::from_millis(200), |_| {
            std::future::pending::<Attempt>()
        })
        .await;
        assert!(matches!(result, Err(NotifyError::GaveUp(ref why)) if why.contains("no answer")));
        assert!(started.elapsed() < S(3));
    }
}
