//! A burst of alerts raised and cleared within group_wait beside a ledger that already holds
//! many closed incidents, driven pass by pass through the engine's pure core
//! (`rover_agent::incidents::pass`) with injected time; shared by `tests/engine_burst.rs` and
//! `examples/engine_pass.rs`.

#![allow(dead_code)]

use rover_agent::incidents::pass::{plan, PassInput, Plan};
use rover_agent::incidents::reconcile::{alert_id, HostView, Observed};
use rover_election::ledger::{
    Incident, IncidentKind, LeaderMode, Ledger, LedgerCommand, Notification, Outcome, Phase,
};
use rover_election::policy::DueRules;
use rover_membership::MemberStatus;
use rover_storage::{Alert, AlertState, Severity};

/// The leader's name.
pub const ME: &str = "n1";
/// The one channel.
pub const CHANNEL: &str = "email";
/// When the burst is raised (unix ms).
pub const T0: u64 = 1_000_000_000;
/// The burst clears this long after it was raised.
pub const CLEARED_AFTER_MS: u64 = 1_500;
/// The engine's pass gap.
pub const PASS_GAP_MS: u64 = 100;

/// The rules of the scenario: group_wait 5 s, no reminders, nothing forgotten.
pub fn rules() -> DueRules {
    DueRules {
        group_wait_ms: 5_000,
        repeat_interval_ms: 0,
        orphan_after_ms: 120_000,
        retention_ms: 0,
    }
}

fn alert(name: &str, first_seen_ms: u64, state: AlertState) -> Alert {
    Alert {
        team: "default".into(),
        host: "n2".into(),
        name: name.into(),
        severity: Severity::Critical,
        summary: format!("{name} CRITICAL - 97% used"),
        first_seen_ms,
        last_change_ms: first_seen_ms,
        version: 1,
        state,
        path: Vec::new(),
    }
}

/// What the leader sees and leads: a ledger of `closed` closed alert incidents (each
/// announced and taken back on the channel) whose alerts are resolved in the table.
pub struct Scenario {
    /// The ledger, as committed so far.
    pub ledger: Ledger,
    /// The members and the alert table.
    pub observed: Observed,
    burst: usize,
}

impl Scenario {
    /// The ledger and the table before the burst.
    pub fn new(closed: usize, burst: usize) -> Self {
        let mut ledger = Ledger::default();
        let mut alerts = Vec::with_capacity(closed + burst);
        for k in 0..closed {
            let at = T0 - 10_000_000 + k as u64 * 1_000;
            let old = alert(&format!("old-{k}"), at, AlertState::Resolved);
            let id = alert_id(&old);
            let incident = Incident {
                detail: old.summary.clone(),
                ..Incident::new(id.clone(), IncidentKind::AlertFiring, "old on n2", at)
            };
            ledger.apply(&LedgerCommand::Open(incident));
            for (phase, when) in [(Phase::Opened, at + 5_000), (Phase::Resolved, at + 9_000)] {
                if phase == Phase::Resolved {
                    ledger.apply(&LedgerCommand::Resolve {
                        incident: id.clone(),
                        at_ms: when,
                    });
                }
                ledger.apply(&LedgerCommand::Intend {
                    record: Notification {
                        incident: id.clone(),
                        phase,
                        channel: CHANNEL.into(),
                        by_node: ME.into(),
                        mode: LeaderMode::Raft,
                        intent_at_ms: when,
                        outcome: Outcome::Pending,
                    },
                });
                ledger.apply(&LedgerCommand::Complete {
                    incident: id.clone(),
                    phase,
                    channel: CHANNEL.into(),
                    outcome: Outcome::Sent {
                        at_ms: when,
                        reference: Some(format!("<{k}@example.org>")),
                    },
                });
            }
            alerts.push(old);
        }
        let hosts = ["n1", "n2", "n3"]
            .map(|name| HostView {
                name: name.into(),
                generation: 1,
                status: MemberStatus::Alive,
                last_heard_ms: Some(T0),
            })
            .to_vec();
        Self {
            ledger,
            observed: Observed { hosts, alerts },
            burst,
        }
    }

    fn burst_alerts(&self, state: AlertState) -> impl Iterator<Item = Alert> + '_ {
        (0..self.burst).map(move |k| alert(&format!("burst-{k}"), T0, state))
    }

    /// The alert table at `now_ms`: the burst firing from T0, resolved after
    /// CLEARED_AFTER_MS.
    pub fn table_at(&mut self, now_ms: u64) {
        let closed = self.observed.alerts.len().min(
            self.observed
                .alerts
                .iter()
                .position(|a| a.name.starts_with("burst-"))
                .unwrap_or(usize::MAX),
        );
        self.observed.alerts.truncate(closed);
        let state = if now_ms >= T0 + CLEARED_AFTER_MS {
            AlertState::Resolved
        } else {
            AlertState::Firing
        };
        if now_ms >= T0 {
            let burst: Vec<Alert> = self.burst_alerts(state).collect();
            self.observed.alerts.extend(burst);
        }
    }

    /// One pass at `now_ms` over the table as it then is; its changes are committed at once.
    pub fn pass(&mut self, now_ms: u64) -> Plan {
        self.table_at(now_ms);
        let plan = self.plan(now_ms);
        for change in &plan.changes {
            self.ledger.apply(change);
        }
        plan
    }

    /// One pass at `now_ms`, nothing committed.
    pub fn plan(&self, now_ms: u64) -> Plan {
        let idle = [CHANNEL.to_owned()];
        plan(&PassInput {
            observed: &self.observed,
            ledger: &self.ledger,
            switches: &[],
            me: ME,
            mode: LeaderMode::Raft,
            now_ms,
            rules: &rules(),
            idle: &idle,
            busy: &[],
        })
    }

    /// The burst's incidents, with their states.
    pub fn burst_incidents(&self) -> Vec<&Incident> {
        self.ledger
            .incidents()
            .filter(|i| i.id.contains("/burst-"))
            .collect()
    }
}
