//! The timers that settle suspicions: Lifeguard's per-suspicion deadline (see
//! [`crate::suspicion`]) and the stale-suspicion sweep ([`crate::stale_suspicion`]), the
//! backstop for a suspicion this node holds without any report (foca's gossip without ours,
//! or a raiser that lost its timer).

use foca::{Member, State};

use super::{CoreTimer, MembershipCore, Output};
use crate::member_id::MemberId;
use crate::stale_suspicion::StaleSuspicions;

impl MembershipCore {
    pub(super) fn arm_suspicion_deadline(&mut self) {
        let timeouts = self.suspicion_timeouts();
        let Some(next) = self.lifeguard.suspicions.next_deadline_ms(&timeouts) else {
            return;
        };
        if self.has_left
            || self
                .lifeguard
                .deadline_armed_ms
                .is_some_and(|armed| armed <= next)
        {
            return;
        }
        self.lifeguard.deadline_armed_ms = Some(next);
        self.out.push_back(Output::Schedule {
            after: std::time::Duration::from_millis(next.saturating_sub(self.now_ms)),
            timer: CoreTimer::SuspicionDeadline,
        });
    }

    /// Declares down the suspects whose time ran out here and that foca still holds at the
    /// suspected incarnation; forgets the suspicions that were refuted or settled.
    pub(super) fn on_suspicion_deadline(&mut self) {
        self.lifeguard.deadline_armed_ms = None;
        let current = self.forget_settled_suspicions();
        let timeouts = self.suspicion_timeouts();
        for due in self.lifeguard.suspicions.take_due(self.now_ms, &timeouts) {
            let Some((id, _, _)) = current.iter().find(|(id, _, _)| id.name() == due.name) else {
                continue;
            };
            tracing::info!(
                member = %due.name,
                incarnation = due.incarnation,
                "suspicion timed out: declaring the member down"
            );
            let down = Member::new(id.clone(), due.incarnation, State::Down);
            if let Err(e) = self
                .foca
                .apply_many(std::iter::once(down), true, &mut self.runtime)
            {
                tracing::debug!(error = %e, "declaring a suspect down failed");
            }
        }
        self.arm_suspicion_deadline();
    }

    /// Drops the suspicions (ours and others') that foca no longer holds at the suspected
    /// generation and incarnation; returns foca's view of those that remain.
    pub(super) fn forget_settled_suspicions(&mut self) -> Vec<(MemberId, State, u16)> {
        let current = self.suspects_in_foca();
        let holds = |name: &str, generation: u64, incarnation: u16| {
            current.iter().any(|(id, state, known)| {
                id.name() == name
                    && id.generation() == generation
                    && *known <= incarnation
                    && *state != State::Down
            })
        };
        self.lifeguard.suspicions.retain(holds);
        self.lifeguard
            .own
            .retain(|s| holds(&s.name, s.generation, s.incarnation));
        current
    }

    /// foca's view (identity, state, incarnation) of the members we track suspicions of.
    fn suspects_in_foca(&self) -> Vec<(MemberId, State, u16)> {
        if self.lifeguard.suspicions.is_empty() && self.lifeguard.own.is_empty() {
            return Vec::new();
        }
        self.foca
            .iter_membership_state()
            .filter(|m| {
                self.lifeguard
                    .suspicions
                    .confirmations(m.id().name())
                    .is_some()
                    || self.lifeguard.own.iter().any(|s| s.name == m.id().name())
            })
            .map(|m| (m.id().clone(), m.state(), m.incarnation()))
            .collect()
    }

    /// Declares down the members whose suspicion outlived [`StaleSuspicions::limit`] here,
    /// then sweeps again one suspicion timeout later while we have members.
    pub(super) fn sweep_suspicions(&mut self) {
        self.sweep_armed = false;
        self.forget_settled_suspicions();
        let config = self.tunables.foca_config(self.sized_for);
        let limit = StaleSuspicions::limit(
            config.suspect_to_down_after,
            config.probe_period,
            self.foca.num_members() + 1,
        );
        let suspects: Vec<(MemberId, u16)> = self
            .foca
            .iter_membership_state()
            .filter(|m| m.state() == State::Suspect)
            .map(|m| (m.id().clone(), m.incarnation()))
            .collect();
        let stale = self.stale_suspicions.sweep(self.now_ms, suspects, limit);
        for (id, incarnation) in stale {
            tracing::info!(member = %id.name(), "suspicion nobody settled: declaring the member down");
            let down = Member::new(id, incarnation, State::Down);
            if let Err(e) = self
                .foca
                .apply_many(std::iter::once(down), true, &mut self.runtime)
            {
                tracing::debug!(error = %e, "declaring a stale suspect down failed");
            }
        }
        if self.foca.num_members() > 0 {
            self.arm_suspicion_sweep();
        }
    }

    pub(super) fn arm_suspicion_sweep(&mut self) {
        if !self.sweep_armed && !self.has_left {
            self.sweep_armed = true;
            self.out.push_back(Output::Schedule {
                after: self
                    .tunables
                    .foca_config(self.sized_for)
                    .suspect_to_down_after,
                timer: CoreTimer::SuspicionSweep,
            });
        }
    }
}
