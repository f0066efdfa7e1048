//! Lifeguard's local health awareness (Dadgar et al. 2017, section 4.1; memberlist's
//! "awareness"): a node that misses the acks to its own probes is more likely slow itself
//! (CPU starved, paused, its network congested) than surrounded by dead members, so it probes
//! more slowly and waits longer for answers instead of raising suspicions it cannot back.
//!
//! The score starts at 0 and stays within `0..=max`: +1 for each probe of ours that failed
//! (foca armed a suspicion), +1 each time we learn that others suspect us, -1 for each probe
//! of ours that was acknowledged. The core multiplies the delays of foca's probe timers (the
//! probe period and the wait before indirect probes) by [`LocalHealth::multiplier`].

use std::time::Duration;

/// memberlist's `AwarenessMaxMultiplier`: a node at the worst score probes 9 times as slowly.
pub const MAX_SCORE: u32 = 8;

/// The local health score; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LocalHealth {
    score: u32,
}

impl LocalHealth {
    /// A probe of ours got no ack, direct or indirect.
    pub fn probe_failed(&mut self) {
        self.score = (self.score + 1).min(MAX_SCORE);
    }

    /// We learnt that another member suspects us.
    pub fn suspected_us(&mut self) {
        self.score = (self.score + 1).min(MAX_SCORE);
    }

    /// A probe of ours was acknowledged.
    pub fn probe_acked(&mut self) {
        self.score = self.score.saturating_sub(1);
    }

    /// The score, 0 (healthy) to [`MAX_SCORE`].
    pub fn score(&self) -> u32 {
        self.score
    }

    /// What probe delays are multiplied by: `score + 1`.
    pub fn multiplier(&self) -> u32 {
        self.score + 1
    }

    /// `delay` stretched by the multiplier.
    pub fn stretch(&self, delay: Duration) -> Duration {
        delay * self.multiplier()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_healthy_node_probes_at_the_configured_pace() {
        let health = LocalHealth::default();
        assert_eq!(
            health.stretch(Duration::from_secs(1)),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn missed_acks_slow_probing_down_and_acks_bring_it_back() {
        let mut health = LocalHealth::default();
        health.probe_failed();
        health.suspected_us();
        assert_eq!(
            health.stretch(Duration::from_millis(500)),
            Duration::from_millis(1500)
        );
        health.probe_acked();
        health.probe_acked();
        health.probe_acked();
        assert_eq!(health.score(), 0);
    }

    #[test]
    fn the_score_is_capped() {
        let mut health = LocalHealth::default();
        for _ in 0..50 {
            health.probe_failed();
        }
        assert_eq!(health.score(), MAX_SCORE);
        assert_eq!(health.multiplier(), 9);
    }
}
