//! Lifeguard's dynamic suspicion (Dadgar et al. 2017, section 4.2; memberlist's
//! `suspicion.go`): a suspicion's timeout starts high and shrinks with each independent
//! confirmation, so a member that really died is declared down quickly (every prober's probe
//! fails and confirms) while one that merely missed a probe (one lost datagram, a short pause)
//! keeps the long timeout and time to refute.
//!
//! foca arms a fixed suspect-to-down timer on the prober only and gossips the suspicion without
//! saying who raised it, so independent confirmations cannot be told from relays. Each node
//! whose own probe fails therefore publishes a [`SuspicionReport`] (a custom broadcast, topic
//! `Suspicion`, keyed by the reporter: one slot per node, bounded like status samples), and
//! every node keeps [`Suspicions`]: per suspect, when it first heard of the suspicion and who
//! reported it. Each node then runs its own timer, as in memberlist:
//!
//! `timeout(c) = max(min, max − (max − min) · ln(c + 1) / ln(k + 1))`
//!
//! with `c` the confirmations beyond the first report, `k` the confirmations expected
//! ([`SuspicionTimeouts::expected_confirmations`]), measured from this node's first sighting.
//!
//! One rule differs from memberlist: a suspicion nobody confirmed is settled only by the
//! node(s) that raised it. Every other node waits for a confirmation (or, with `k = 0`, acts on
//! the first report). A member that missed one probe is then at stake only at its prober, as in
//! plain SWIM, rather than at every node that might miss its refutation: in the 10 % loss
//! simulation, letting every node time unconfirmed suspicions made one in a few thousand
//! observers miss a refutation and declare a live member down.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The most suspects one report names (a node suspecting more at once is itself the problem;
/// see [`crate::local_health`]).
pub const MAX_REPORTED: usize = 8;
/// The most suspicions a node tracks; reports about further members are ignored.
pub const MAX_TRACKED: usize = 1024;

/// The bounds of a suspicion's timeout for one cluster size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuspicionTimeouts {
    /// The timeout once `expected_confirmations` confirmed.
    pub min: Duration,
    /// The timeout with no confirmation.
    pub max: Duration,
    /// Confirmations that bring the timeout down to `min` (0: always `min`).
    pub expected_confirmations: u32,
}

impl SuspicionTimeouts {
    /// The timeout after `confirmations` independent confirmations.
    pub fn timeout(&self, confirmations: u32) -> Duration {
        let k = self.expected_confirmations;
        if k == 0 || confirmations >= k || self.max <= self.min {
            return self.min;
        }
        let fraction = f64::from(confirmations + 1).ln() / f64::from(k + 1).ln();
        let shrunk = self.max.as_secs_f64() - (self.max - self.min).as_secs_f64() * fraction;
        Duration::from_secs_f64(shrunk).max(self.min)
    }
}

/// One suspect as a report names it. Field order is the wire format (postcard).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedSuspect {
    /// Node name.
    pub name: String,
    /// The generation suspected.
    pub generation: u64,
    /// The incarnation suspected (a refutation raises it).
    pub incarnation: u16,
}

impl ReportedSuspect {
    /// Whether this names a later life or incarnation of the member than `other`.
    fn is_newer_than(&self, other: &Suspicion) -> bool {
        (self.generation, self.incarnation) > (other.generation, other.incarnation)
    }
}

/// The payload of a `Suspicion` broadcast: the members the reporter (the broadcast's key)
/// suspects now, because its own probes of them failed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SuspicionReport {
    /// At most [`MAX_REPORTED`] suspects, the most recent first.
    pub suspects: Vec<ReportedSuspect>,
}

#[derive(Debug, Clone)]
struct Suspicion {
    generation: u64,
    incarnation: u16,
    first_seen_ms: u64,
    /// Distinct reporters, the first one included, at most `k + 1`.
    reporters: Vec<String>,
}

/// The suspicions this node knows of; see the module docs.
#[derive(Debug, Default)]
pub struct Suspicions {
    own_name: String,
    by_name: HashMap<String, Suspicion>,
}

impl Suspicions {
    /// The table of the node called `own_name`.
    pub fn new(own_name: &str) -> Self {
        Self {
            own_name: own_name.to_owned(),
            by_name: HashMap::new(),
        }
    }

    /// `reporter` suspects `suspect`. Returns whether that changed anything here: a new
    /// suspicion (or one about a later generation or incarnation than the one tracked), or a
    /// new confirmation. Reports about an earlier life or incarnation are ignored.
    pub fn record(
        &mut self,
        now_ms: u64,
        suspect: &ReportedSuspect,
        reporter: &str,
        timeouts: &SuspicionTimeouts,
    ) -> bool {
        let fresh = || Suspicion {
            generation: suspect.generation,
            incarnation: suspect.incarnation,
            first_seen_ms: now_ms,
            reporters: vec![reporter.to_owned()],
        };
        let full = self.by_name.len() >= MAX_TRACKED;
        match self.by_name.get_mut(&suspect.name) {
            Some(known) if suspect.is_newer_than(known) => *known = fresh(),
            Some(known)
                if known.generation == suspect.generation
                    && known.incarnation == suspect.incarnation =>
            {
                let wanted = timeouts.expected_confirmations as usize + 1;
                if known.reporters.len() >= wanted || known.reporters.iter().any(|r| r == reporter)
                {
                    return false;
                }
                known.reporters.push(reporter.to_owned());
            }
            Some(_) => return false,
            None if full => return false,
            None => {
                self.by_name.insert(suspect.name.clone(), fresh());
            }
        }
        true
    }

    /// When the suspicion of `name` runs out here, if there is one this node settles (see
    /// the module docs).
    pub fn deadline_ms(&self, name: &str, timeouts: &SuspicionTimeouts) -> Option<u64> {
        self.by_name
            .get(name)
            .and_then(|s| self.deadline(s, timeouts))
    }

    /// The earliest deadline of all suspicions this node settles.
    pub fn next_deadline_ms(&self, timeouts: &SuspicionTimeouts) -> Option<u64> {
        self.by_name
            .values()
            .filter_map(|s| self.deadline(s, timeouts))
            .min()
    }

    /// Removes and returns the suspicions this node settles whose deadline is `now_ms` or
    /// earlier.
    pub fn take_due(&mut self, now_ms: u64, timeouts: &SuspicionTimeouts) -> Vec<ReportedSuspect> {
        let due: Vec<String> = self
            .by_name
            .iter()
            .filter(|(_, s)| self.deadline(s, timeouts).is_some_and(|d| d <= now_ms))
            .map(|(name, _)| name.clone())
            .collect();
        due.into_iter()
            .filter_map(|name| {
                let s = self.by_name.remove(&name)?;
                Some(ReportedSuspect {
                    name,
                    generation: s.generation,
                    incarnation: s.incarnation,
                })
            })
            .collect()
    }

    /// Keeps only the suspicions `still` says are current (given name, generation and
    /// incarnation): the core drops those refuted, declared down or forgotten.
    pub fn retain(&mut self, mut still: impl FnMut(&str, u64, u16) -> bool) {
        self.by_name
            .retain(|name, s| still(name, s.generation, s.incarnation));
    }

    /// Every suspicion tracked: name, generation and incarnation.
    pub fn tracked(&self) -> impl Iterator<Item = (&str, u64, u16)> {
        self.by_name
            .iter()
            .map(|(name, s)| (name.as_str(), s.generation, s.incarnation))
    }

    /// Confirmations of the suspicion of `name` beyond its first report.
    pub fn confirmations(&self, name: &str) -> Option<u32> {
        self.by_name
            .get(name)
            .map(|s| u32::try_from(s.reporters.len().saturating_sub(1)).unwrap_or(u32::MAX))
    }

    /// Number of suspicions tracked.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether none is tracked.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

impl Suspicions {
    /// The deadline of `s`, if this node settles it: it raised it, someone confirmed it, or
    /// no confirmation is expected.
    fn deadline(&self, s: &Suspicion, timeouts: &SuspicionTimeouts) -> Option<u64> {
        let confirmations = u32::try_from(s.reporters.len().saturating_sub(1)).unwrap_or(u32::MAX);
        let settles = confirmations > 0
            || timeouts.expected_confirmations == 0
            || s.reporters.contains(&self.own_name);
        let timeout =
            u64::try_from(timeouts.timeout(confirmations).as_millis()).unwrap_or(u64::MAX);
        settles.then(|| s.first_seen_ms.saturating_add(timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUTS: SuspicionTimeouts = SuspicionTimeouts {
        min: Duration::from_secs(2),
        max: Duration::from_secs(12),
        expected_confirmations: 2,
    };

    fn suspect(name: &str, incarnation: u16) -> ReportedSuspect {
        ReportedSuspect {
            name: name.into(),
            generation: 1,
            incarnation,
        }
    }

    #[test]
    fn the_timeout_shrinks_from_max_to_min_as_memberlist_computes_it() {
        assert_eq!(TIMEOUTS.timeout(0), Duration::from_secs(12));
        // 12 - 10 * ln 2 / ln 3 = 5.69 s
        let one = TIMEOUTS.timeout(1).as_millis();
        assert!((5_680..=5_700).contains(&one), "{one}");
        assert_eq!(TIMEOUTS.timeout(2), Duration::from_secs(2));
        assert_eq!(TIMEOUTS.timeout(9), Duration::from_secs(2));
    }

    #[test]
    fn with_no_confirmation_expected_the_timeout_is_the_minimum() {
        let small = SuspicionTimeouts {
            expected_confirmations: 0,
            ..TIMEOUTS
        };
        assert_eq!(small.timeout(0), Duration::from_secs(2));
    }

    #[test]
    fn each_independent_reporter_brings_the_deadline_closer_and_repeats_do_not() {
        let mut table = Suspicions::new("n1");
        assert!(table.record(1_000, &suspect("n4", 0), "n1", &TIMEOUTS));
        assert_eq!(table.deadline_ms("n4", &TIMEOUTS), Some(13_000));
        assert!(!table.record(1_500, &suspect("n4", 0), "n1", &TIMEOUTS));
        assert!(table.record(1_800, &suspect("n4", 0), "n2", &TIMEOUTS));
        assert!(table.record(2_100, &suspect("n4", 0), "n3", &TIMEOUTS));
        assert_eq!(table.deadline_ms("n4", &TIMEOUTS), Some(3_000));
        assert!(!table.record(2_200, &suspect("n4", 0), "n5", &TIMEOUTS));
        assert_eq!(table.confirmations("n4"), Some(2));
    }

    #[test]
    fn a_later_incarnation_starts_afresh_and_an_earlier_one_is_ignored() {
        let mut table = Suspicions::new("n1");
        table.record(1_000, &suspect("n4", 1), "n1", &TIMEOUTS);
        table.record(1_100, &suspect("n4", 1), "n2", &TIMEOUTS);
        assert!(!table.record(1_200, &suspect("n4", 0), "n3", &TIMEOUTS));
        assert!(table.record(5_000, &suspect("n4", 2), "n1", &TIMEOUTS));
        assert_eq!(table.confirmations("n4"), Some(0));
        assert_eq!(table.deadline_ms("n4", &TIMEOUTS), Some(17_000));
    }

    #[test]
    fn due_suspicions_are_handed_over_once_and_the_others_kept() {
        let mut table = Suspicions::new("n1");
        table.record(0, &suspect("n4", 0), "n1", &TIMEOUTS);
        table.record(0, &suspect("n5", 0), "n1", &TIMEOUTS);
        table.record(100, &suspect("n5", 0), "n2", &TIMEOUTS);
        table.record(200, &suspect("n5", 0), "n3", &TIMEOUTS);
        assert_eq!(table.next_deadline_ms(&TIMEOUTS), Some(2_000));
        assert_eq!(table.take_due(2_000, &TIMEOUTS), vec![suspect("n5", 0)]);
        assert!(table.take_due(2_000, &TIMEOUTS).is_empty());
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn retain_drops_what_the_member_list_no_longer_suspects() {
        let mut table = Suspicions::new("n1");
        table.record(0, &suspect("n4", 0), "n1", &TIMEOUTS);
        table.record(0, &suspect("n5", 0), "n1", &TIMEOUTS);
        table.retain(|name, _, _| name == "n5");
        assert_eq!(table.confirmations("n4"), None);
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn an_unconfirmed_suspicion_raised_elsewhere_is_left_to_its_raiser() {
        let mut table = Suspicions::new("n9");
        table.record(0, &suspect("n4", 0), "n1", &TIMEOUTS);
        assert_eq!(table.deadline_ms("n4", &TIMEOUTS), None);
        assert!(table.take_due(60_000, &TIMEOUTS).is_empty());
        table.record(3_000, &suspect("n4", 0), "n2", &TIMEOUTS);
        assert_eq!(table.deadline_ms("n4", &TIMEOUTS), Some(5_690));
        let alone = SuspicionTimeouts {
            expected_confirmations: 0,
            ..TIMEOUTS
        };
        let mut small = Suspicions::new("n9");
        small.record(0, &suspect("n4", 0), "n1", &alone);
        assert_eq!(small.deadline_ms("n4", &alone), Some(2_000));
    }

    #[test]
    fn the_table_is_bounded() {
        let mut table = Suspicions::new("n1");
        for i in 0..MAX_TRACKED + 10 {
            table.record(0, &suspect(&format!("n{i}"), 0), "n0", &TIMEOUTS);
        }
        assert_eq!(table.len(), MAX_TRACKED);
    }
}
