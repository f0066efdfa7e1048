//! The SWIM story foca does not tell: suspicions, refutations and failed direct probes,
//! reported as [`MemberEvent::Suspected`], [`MemberEvent::Refuted`] and
//! [`MemberEvent::ProbeFailed`].
//!
//! - A suspicion is reported when this node first tracks it (see [`crate::suspicion`]): a
//!   probe of ours failed, or another member's report names the suspect. A suspicion foca
//!   gossips without any report is not (every prober here publishes a report).
//! - A refutation is reported when a member we track a suspicion of is known alive at a
//!   newer incarnation of the same generation (checked after every input, cheaply: only the
//!   tracked suspects are looked up), and when we refute a report that names us.
//! - A failed direct probe is reported when foca's indirect-probe timer runs while our ping
//!   is still unacked; at most one per member every [`PROBE_EVENT_EVERY`].

use std::collections::HashMap;
use std::time::Duration;

use foca::State;

use super::{MembershipCore, Output, SwimTimer};
use crate::member::MemberEvent;
use crate::suspicion::{ReportedSuspect, SuspicionTimeouts};

/// A member's failed direct probes are reported at most this often.
pub const PROBE_EVENT_EVERY: Duration = Duration::from_secs(10);

/// Members whose last report is remembered at most.
const REMEMBERED: usize = 256;

/// When each member's failed direct probe was last reported.
#[derive(Debug, Default)]
pub(super) struct ProbeEvents {
    reported_at: HashMap<String, u64>,
}

impl ProbeEvents {
    /// Whether a failed probe of `name` at `now` is reported; records it if so.
    fn due(&mut self, name: &str, now: u64) -> bool {
        let every = u64::try_from(PROBE_EVENT_EVERY.as_millis()).unwrap_or(u64::MAX);
        let recent = |t: &u64| now.saturating_sub(*t) < every;
        if self.reported_at.get(name).is_some_and(recent) {
            return false;
        }
        if self.reported_at.len() >= REMEMBERED {
            self.reported_at.retain(|_, t| recent(t));
            if self.reported_at.len() >= REMEMBERED {
                return false;
            }
        }
        self.reported_at.insert(name.to_owned(), now);
        true
    }
}

impl MembershipCore {
    /// foca's `timer` is about to run: an indirect-probe timer while our ping is unacked
    /// means the direct probe failed.
    pub(super) fn note_direct_probe(&mut self, timer: &SwimTimer) {
        let foca::Timer::SendIndirectProbe { probed_id, .. } = timer else {
            return;
        };
        if self.lifeguard.probe_in_flight.is_none()
            || !self.is_active(probed_id)
            || !self.probe_events.due(probed_id.name(), self.now_ms)
        {
            return;
        }
        self.out.push_back(Output::Event(MemberEvent::ProbeFailed {
            name: probed_id.name().to_owned(),
            generation: probed_id.generation(),
        }));
    }

    /// Tracks `reporter`'s suspicion of `suspect` (see [`crate::suspicion::Suspicions::record`],
    /// whose answer this is) and reports it if it is new here.
    pub(super) fn record_suspicion(
        &mut self,
        suspect: &ReportedSuspect,
        reporter: &str,
        timeouts: &SuspicionTimeouts,
    ) -> bool {
        let suspicions = &mut self.lifeguard.suspicions;
        let news = suspicions.record(self.now_ms, suspect, reporter, timeouts);
        if news && suspicions.confirmations(&suspect.name) == Some(0) {
            self.out.push_back(Output::Event(MemberEvent::Suspected {
                name: suspect.name.clone(),
                generation: suspect.generation,
                incarnation: suspect.incarnation,
                by: reporter.to_owned(),
            }));
        }
        news
    }

    /// Reports that `name` refuted a suspicion with `incarnation`.
    pub(super) fn report_refuted(&mut self, name: &str, incarnation: u16) {
        self.out.push_back(Output::Event(MemberEvent::Refuted {
            name: name.to_owned(),
            incarnation,
        }));
    }

    /// Reports (and forgets) the tracked suspicions whose member is now alive at a newer
    /// incarnation of the suspected generation.
    pub(super) fn note_refutations(&mut self) {
        if self.lifeguard.suspicions.is_empty() {
            return;
        }
        let refuted: Vec<(String, u16)> = self
            .lifeguard
            .suspicions
            .tracked()
            .filter_map(|(name, generation, incarnation)| {
                let member = self.member_named(name)?;
                (member.id().generation() == generation
                    && member.state() != State::Down
                    && member.incarnation() > incarnation)
                    .then(|| (name.to_owned(), member.incarnation()))
            })
            .collect();
        if refuted.is_empty() {
            return;
        }
        for (name, incarnation) in refuted {
            self.report_refuted(&name, incarnation);
        }
        self.forget_settled_suspicions();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_s_failed_probes_are_reported_at_most_once_per_interval() {
        let mut events = ProbeEvents::default();
        assert!(events.due("n1", 1_000));
        assert!(!events.due("n1", 10_999));
        assert!(events.due("n2", 10_999));
        assert!(events.due("n1", 11_000));
    }

    #[test]
    fn the_members_remembered_are_bounded_and_old_ones_make_room() {
        let mut events = ProbeEvents::default();
        for i in 0..REMEMBERED {
            assert!(events.due(&format!("m{i}"), 0));
        }
        assert!(!events.due("late", 5_000), "full of recent reports");
        assert!(events.due("late", 10_000));
        assert_eq!(events.reported_at.len(), 1);
    }
}
