//! The pure part of one engine pass (sans-IO, time injected): given what this leader observes
//! and the ledger it leads, what to write ([`reconcile`] and the switch step) and what is due
//! to be sent. The engine ([`super::engine`]) commits the writes and starts the sends.

use std::borrow::Cow;
use std::collections::BTreeSet;

use rover_election::ledger::{IncidentKind, LeaderMode, Ledger, LedgerCommand};
use rover_election::policy::{due_work, DueRules, SendView, Work};

use super::reconcile::{reconcile, without_news_of_living_hosts, Observed};
use super::switches;
use crate::topology::map::SwitchHosts;

/// What one pass looks at.
#[derive(Clone, Copy)]
pub struct PassInput<'a> {
    /// The members and the alert table.
    pub observed: &'a Observed,
    /// The ledger this node leads.
    pub ledger: &'a Ledger,
    /// The switches of the topology map.
    pub switches: &'a [SwitchHosts],
    /// This node's name.
    pub me: &'a str,
    /// How it leads.
    pub mode: LeaderMode,
    /// Now (unix ms).
    pub now_ms: u64,
    /// When messages fall due.
    pub rules: &'a DueRules,
    /// Channels with nothing in flight.
    pub idle: &'a [String],
    /// Channels with a message in flight (or resting after a failed claim).
    pub busy: &'a [String],
}

/// What one pass decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Commands that bring the ledger in line with what is observed (reconcile, then the
    /// switch step).
    pub changes: Vec<LedgerCommand>,
    /// Host incidents whose opening waits (their switch may still fold, or a cut-off settles).
    pub hold: BTreeSet<String>,
    /// The messages due now, each on one idle channel.
    pub work: Vec<Work>,
}

/// One pass over `input`. See the module docs.
pub fn plan(input: &PassInput<'_>) -> Plan {
    let PassInput {
        observed,
        ledger,
        me,
        mode,
        now_ms,
        rules,
        ..
    } = *input;
    let mut changes = reconcile(observed, ledger, now_ms);
    // Switch incidents look at the host and switch incidents as reconciling leaves them: on a
    // small copy of those alone when reconciling changed one, never on a copy of the ledger.
    let switch_step = {
        let reconciled = if changes.iter().any(|c| is_about_hosts(c, ledger)) {
            let mut copy =
                ledger.only_kinds(&[IncidentKind::HostDown, IncidentKind::SwitchUnreachable]);
            for change in &changes {
                copy.apply(change);
            }
            Cow::Owned(copy)
        } else {
            Cow::Borrowed(ledger)
        };
        switches::switch_step(
            &reconciled,
            observed,
            input.switches,
            me,
            mode,
            now_ms,
            rules.group_wait_ms,
        )
    };
    changes.extend(switch_step.commands);
    let is_alive = |name: &str| name == me || observed.may_be_alive(name);
    let view = SendView {
        me,
        idle: input.idle,
        busy: input.busy,
        is_alive: &is_alive,
    };
    let work = due_work(ledger, &view, now_ms, rules);
    let work = without_news_of_living_hosts(work, ledger, observed);
    let work = switches::keep_sendable(work, ledger, &switch_step.hold);
    Plan {
        changes,
        hold: switch_step.hold,
        work,
    }
}

/// Whether `change` opens or resolves a host incident (what the switch step looks at).
fn is_about_hosts(change: &LedgerCommand, ledger: &Ledger) -> bool {
    match change {
        LedgerCommand::Open(incident) => incident.kind == IncidentKind::HostDown,
        LedgerCommand::Resolve { incident, .. } => ledger
            .incident(incident)
            .is_some_and(|i| i.kind == IncidentKind::HostDown),
        _ => true,
    }
}
