//! What we remember about the other agents that claim our node name, and who keeps it.
//!
//! The rule is pure: of two live agents of one name, the one that started first keeps it
//! ("since" is the generation an agent started with, a wall-clock stamp; ties go to the lower
//! address). An agent learns the other's start only from the other's own notice, so nobody
//! acts on a guess: the holder then announces itself above the other's generation (it wins at
//! every third member again), and the later one stands back (see [`Claims::park`]). A
//! restarted agent is no conflict: its previous run does not send any more.

use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Addresses remembered at most (then the least recently heard one is dropped).
const REMEMBERED: usize = 64;

/// Who keeps the name, as far as we can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// We started first: we keep the name.
    Ours,
    /// The other agent started first: we are the duplicate.
    Theirs,
    /// We do not know when the other started yet.
    Unknown,
}

/// Of two agents of one name, given as (start generation, address): who keeps it.
pub(crate) fn verdict(ours: (u64, SocketAddr), theirs: Option<(u64, SocketAddr)>) -> Verdict {
    match theirs {
        None => Verdict::Unknown,
        Some(theirs) if ours < theirs => Verdict::Ours,
        Some(_) => Verdict::Theirs,
    }
}

/// One other agent of our name (or, at a third member, one agent we told about another).
#[derive(Debug, Clone, Default)]
pub(crate) struct Claim {
    /// When we last logged it.
    pub(crate) logged_at: Option<u64>,
    /// When we last sent it a notice.
    pub(crate) noticed_at: Option<u64>,
    /// When we last logged who keeps the name.
    pub(crate) judged_at: Option<u64>,
    /// The highest generation we saw it claim.
    pub(crate) generation: u64,
    /// The generation it started with, from its own notice.
    pub(crate) since: Option<u64>,
    /// Whether a third member knows it by our name (so it may win there).
    pub(crate) in_cluster: bool,
    /// When we last heard of it.
    heard_at: u64,
}

/// Whether `last` is less than `every` ago; sets it to `now` if not.
pub(crate) fn due(last: &mut Option<u64>, now: u64, every: u64) -> bool {
    if last.is_some_and(|t| now.saturating_sub(t) < every) {
        return false;
    }
    *last = Some(now);
    true
}

/// Whether `last` is less than `every` ago.
pub(crate) fn recent(last: Option<u64>, now: u64, every: u64) -> bool {
    last.is_some_and(|t| now.saturating_sub(t) < every)
}

/// Every claim we remember, and whether we stand back for one.
#[derive(Debug)]
pub(crate) struct Claims {
    /// The generation we started with.
    pub(crate) since: u64,
    by_addr: BTreeMap<SocketAddr, Claim>,
    /// The holder we stand back for, until when (the driver's ms).
    parked: Option<(SocketAddr, u64)>,
}

impl Claims {
    /// Nothing remembered; we started with generation `since`.
    pub(crate) fn new(since: u64) -> Self {
        Self {
            since,
            by_addr: BTreeMap::new(),
            parked: None,
        }
    }

    /// The claim at `addr`, made if new (dropping the least recently heard one if full).
    pub(crate) fn at(&mut self, addr: SocketAddr, now: u64) -> &mut Claim {
        if self.by_addr.len() >= REMEMBERED && !self.by_addr.contains_key(&addr) {
            let oldest = self
                .by_addr
                .iter()
                .min_by_key(|(_, c)| c.heard_at)
                .map(|(a, _)| *a);
            if let Some(oldest) = oldest {
                self.by_addr.remove(&oldest);
            }
        }
        let claim = self.by_addr.entry(addr).or_default();
        claim.heard_at = now;
        claim
    }

    /// Stand back for the holder at `addr` until `until`.
    pub(crate) fn park(&mut self, addr: SocketAddr, until: u64) {
        self.parked = Some((addr, until));
    }

    /// Stop standing back for the holder at `addr` (it is gone); whether we did.
    pub(crate) fn unpark(&mut self, addr: SocketAddr) -> bool {
        let was = self.parked.is_some_and(|(a, _)| a == addr);
        if was {
            self.parked = None;
        }
        was
    }

    /// The holder we stand back for at `now`, if any.
    pub(crate) fn parked(&self, now: u64) -> Option<SocketAddr> {
        self.parked
            .filter(|(_, until)| now < *until)
            .map(|(addr, _)| addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn the_agent_that_started_first_keeps_the_name_whatever_its_generation_now() {
        assert_eq!(verdict((10, at(2)), Some((30, at(1)))), Verdict::Ours);
        assert_eq!(verdict((30, at(1)), Some((10, at(2)))), Verdict::Theirs);
        assert_eq!(verdict((10, at(1)), None), Verdict::Unknown);
    }

    #[test]
    fn two_agents_started_in_the_same_millisecond_leave_the_name_to_the_lower_address() {
        assert_eq!(verdict((10, at(1)), Some((10, at(2)))), Verdict::Ours);
        assert_eq!(verdict((10, at(2)), Some((10, at(1)))), Verdict::Theirs);
    }

    #[test]
    fn standing_back_ends_at_its_time_or_when_the_holder_is_gone() {
        let mut claims = Claims::new(5);
        claims.park(at(1), 100);
        assert_eq!(claims.parked(99), Some(at(1)));
        assert_eq!(claims.parked(100), None);
        claims.park(at(1), 200);
        assert!(!claims.unpark(at(2)));
        assert!(claims.unpark(at(1)));
        assert_eq!(claims.parked(150), None);
    }

    #[test]
    fn claims_are_remembered_for_a_bounded_number_of_addresses() {
        let mut claims = Claims::new(5);
        for port in 0..100 {
            claims.at(at(port), u64::from(port)).generation = 1;
        }
        assert_eq!(claims.by_addr.len(), REMEMBERED);
        assert!(claims.by_addr.contains_key(&at(99)));
        assert!(!claims.by_addr.contains_key(&at(0)));
    }

    #[test]
    fn due_is_true_at_most_once_per_interval() {
        let mut last = None;
        assert!(due(&mut last, 10, 5));
        assert!(!due(&mut last, 14, 5));
        assert!(recent(last, 14, 5));
        assert!(due(&mut last, 15, 5));
    }
}
