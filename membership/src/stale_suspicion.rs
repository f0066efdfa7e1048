//! A backstop for suspicions nobody will settle.
//!
//! foca arms the "suspect → down" timer only on the member whose probe failed. Everyone else
//! who learns the suspicion through gossip just waits for that member's verdict. If that member
//! loses its timer (it went idle and rejoined, as a node cut off from everyone does) and the
//! suspect never hears that it is suspected (the gossip about it happened to miss it), the
//! suspicion stays forever on every node: the member shows as suspect, is never declared
//! failed and never refutes. memberlist avoids this by starting a suspicion timer on every node
//! that hears one; this module does the same with a wider margin.
//!
//! [`StaleSuspicions::sweep`] is called periodically with the members currently suspect. A
//! member still suspect at the same incarnation [`StaleSuspicions::limit`] after this node first
//! saw it so is returned, and the core declares it down (a member that is really alive then
//! rejoins with a new generation, as after any failure).

use std::collections::HashMap;
use std::time::Duration;

use crate::member_id::MemberId;

/// First sightings of suspect members, per identity and incarnation.
#[derive(Debug, Default)]
pub struct StaleSuspicions {
    first_seen_ms: HashMap<MemberId, (u16, u64)>,
}

impl StaleSuspicions {
    /// How long a suspicion may last here before this node settles it: twice foca's
    /// `suspect_to_down_after`, so the member that raised it always decides first if it can,
    /// and at least three probe rounds (`members × probe_period`), so a member that refuted
    /// but whose refutation missed us has had three turns to probe us directly (every message
    /// carries its sender's incarnation, which clears the suspicion here).
    pub fn limit(
        suspect_to_down_after: Duration,
        probe_period: Duration,
        members: usize,
    ) -> Duration {
        let rounds = probe_period * u32::try_from(members.saturating_mul(3)).unwrap_or(u32::MAX);
        (suspect_to_down_after * 2).max(rounds)
    }

    /// Records the members suspect now and returns those suspect at the same incarnation for at
    /// least `limit`. Members no longer suspect are forgotten.
    pub fn sweep(
        &mut self,
        now_ms: u64,
        suspects: impl IntoIterator<Item = (MemberId, u16)>,
        limit: Duration,
    ) -> Vec<(MemberId, u16)> {
        let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        let mut still = HashMap::new();
        let mut stale = Vec::new();
        for (id, incarnation) in suspects {
            let since = match self.first_seen_ms.get(&id) {
                Some((seen_incarnation, since)) if *seen_incarnation == incarnation => *since,
                _ => now_ms,
            };
            if now_ms.saturating_sub(since) >= limit_ms {
                stale.push((id.clone(), incarnation));
            }
            still.insert(id, (incarnation, since));
        }
        self.first_seen_ms = still;
        stale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str) -> MemberId {
        MemberId::new(name, "default", "127.0.0.1:7946".parse().unwrap(), 1)
    }

    const LIMIT: Duration = Duration::from_secs(10);

    #[test]
    fn the_limit_is_two_suspicion_timeouts_or_three_probe_rounds_whichever_is_longer() {
        let second = Duration::from_secs(1);
        assert_eq!(StaleSuspicions::limit(5 * second, second, 3), 10 * second);
        assert_eq!(StaleSuspicions::limit(5 * second, second, 20), 60 * second);
    }

    #[test]
    fn a_suspicion_is_stale_only_after_the_limit_from_its_first_sighting() {
        let mut sweeps = StaleSuspicions::default();
        assert!(sweeps.sweep(1_000, [(id("n4"), 0)], LIMIT).is_empty());
        assert!(sweeps.sweep(10_999, [(id("n4"), 0)], LIMIT).is_empty());
        assert_eq!(
            sweeps.sweep(11_000, [(id("n4"), 0)], LIMIT),
            vec![(id("n4"), 0)]
        );
    }

    #[test]
    fn a_new_incarnation_starts_the_clock_again() {
        let mut sweeps = StaleSuspicions::default();
        sweeps.sweep(0, [(id("n4"), 0)], LIMIT);
        assert!(sweeps.sweep(9_000, [(id("n4"), 1)], LIMIT).is_empty());
        assert!(sweeps.sweep(18_000, [(id("n4"), 1)], LIMIT).is_empty());
        assert_eq!(sweeps.sweep(19_000, [(id("n4"), 1)], LIMIT).len(), 1);
    }

    #[test]
    fn a_member_that_stopped_being_suspect_is_forgotten() {
        let mut sweeps = StaleSuspicions::default();
        sweeps.sweep(0, [(id("n4"), 0)], LIMIT);
        sweeps.sweep(5_000, [], LIMIT);
        assert!(sweeps.sweep(12_000, [(id("n4"), 0)], LIMIT).is_empty());
    }
}
