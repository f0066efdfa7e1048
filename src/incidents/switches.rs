//! Switch incidents in the ledger, and what a message about them (or about a cut-off side)
//! says. The decisions are [`crate::topology::folding`]'s; this applies them with today's
//! ledger commands:
//!
//! - a host incident folded into a switch incident gets a notification record on the channel
//!   `folded into <switch incident>` (outcome "sent", reference "recorded, not sent"): the
//!   ledger counts it as announced, so nothing sends it on its own, and `incidents` shows where
//!   it went; its end is recorded the same way;
//! - a switch incident (`switch/<switch id>/<generation>`, subject the switch's name, detail
//!   its hosts) is opened as old as its first host incident, so it goes out when they would
//!   have, and resolved when [`switch_over`] says so.
//!
//! [`MessageContext`] carries what the message text needs beyond the incidents: each switch
//! incident's hosts with their last-heard times, and for a fallback leader that lost more
//! than half of the members, why ([`cut_off`]).

use std::collections::{BTreeMap, BTreeSet};

use rover_election::ledger::{
    Incident, IncidentKind, IncidentState, LeaderMode, Ledger, LedgerCommand, Notification,
    Outcome, Phase, Severity,
};
use rover_election::policy::Work;
use rover_membership::MemberStatus;

use super::message::Sender;
use super::reconcile::Observed;
use crate::control_chars::strip;
use crate::topology::folding::{
    cut_off_hold, is_cut_off, loss_explanation, plan_folds, switch_over, DownIncident, FoldView,
    FoldedHost, Seen,
};
use crate::topology::map::{SwitchHosts, TopologyMap};

/// Channel-name prefix of the records of folded host incidents.
pub const FOLDED_INTO: &str = "folded into ";
/// The reference of those records.
const NOT_SENT: &str = "recorded, not sent";

/// What the switch step of a tick decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwitchStep {
    /// Commands for the ledger.
    pub commands: Vec<LedgerCommand>,
    /// Host incidents whose opening must wait (their switch may still fold).
    pub hold: BTreeSet<String>,
}

/// The switch incident `host_incident` is folded into, if any.
fn folded_into<'a>(ledger: &'a Ledger, host_incident: &'a str) -> Option<&'a str> {
    ledger
        .notifications_of(host_incident)
        .find_map(|r| r.channel.strip_prefix(FOLDED_INTO))
}

/// Whether `incident` is folded into a switch incident (nothing is sent about it alone).
pub fn is_folded(ledger: &Ledger, incident: &str) -> bool {
    folded_into(ledger, incident).is_some()
}

/// The switch step over `ledger` (as reconcile left it this tick): fold what goes down
/// together, record the end of folded hosts, and end switch incidents whose hosts are back.
pub fn switch_step(
    ledger: &Ledger,
    observed: &Observed,
    switches: &[SwitchHosts],
    me: &str,
    mode: LeaderMode,
    now_ms: u64,
    group_wait_ms: u64,
) -> SwitchStep {
    let mut step = SwitchStep::default();
    let members: Vec<(String, Seen)> = observed
        .hosts
        .iter()
        .map(|h| {
            let seen = match h.status {
                MemberStatus::Alive => Seen::Alive,
                MemberStatus::Suspect => Seen::Suspect,
                MemberStatus::Failed => Seen::Failed,
                MemberStatus::Left => Seen::Gone,
            };
            (h.name.clone(), seen)
        })
        .collect();
    let down: Vec<DownIncident> = ledger
        .incidents_of_kind(IncidentKind::HostDown)
        .map(|i| DownIncident {
            id: i.id.clone(),
            host: i.subject.clone(),
            generation: i.host_generation.unwrap_or(0),
            opened_at_ms: i.opened_at_ms,
            announced: ledger
                .notifications_of(&i.id)
                .any(|r| r.phase == Phase::Opened),
            open: matches!(i.state, IncidentState::Open | IncidentState::Notified),
        })
        .collect();
    let plan = plan_folds(&FoldView {
        members: &members,
        switches,
        down: &down,
        now_ms,
        group_wait_ms,
    });
    step.hold = plan.hold;
    if mode == LeaderMode::Fallback {
        // A switch lost while being cut off waits with the downs: one CUT OFF names both.
        let switches_lost = ledger
            .incidents_of_kind(IncidentKind::SwitchUnreachable)
            .map(|i| DownIncident {
                id: i.id.clone(),
                host: i.subject.clone(),
                generation: 0,
                opened_at_ms: i.opened_at_ms,
                announced: ledger
                    .notifications_of(&i.id)
                    .any(|r| r.phase == Phase::Opened),
                open: matches!(i.state, IncidentState::Open | IncidentState::Notified),
            });
        let pending: Vec<DownIncident> = down.iter().cloned().chain(switches_lost).collect();
        let behind_lost_switches: BTreeSet<String> = plan
            .folds
            .iter()
            .flat_map(|f| f.hosts.iter().cloned())
            .chain(
                ledger
                    .incidents_of_kind(IncidentKind::HostDown)
                    .filter(|i| is_folded(ledger, &i.id))
                    .map(|i| i.subject.clone()),
            )
            .collect();
        let last_heard_ms: BTreeMap<String, u64> = observed
            .hosts
            .iter()
            .filter_map(|h| Some((h.name.clone(), h.last_heard_ms?)))
            .collect();
        step.hold.extend(cut_off_hold(
            &members,
            &last_heard_ms,
            &behind_lost_switches,
            &pending,
            me,
            now_ms,
            group_wait_ms,
        ));
    }
    let record = |incident: &str, phase: Phase, switch: &str| {
        let channel = format!("{FOLDED_INTO}{switch}");
        [
            LedgerCommand::Intend {
                record: Notification {
                    incident: incident.to_owned(),
                    phase,
                    channel: channel.clone(),
                    by_node: me.to_owned(),
                    mode,
                    intent_at_ms: now_ms,
                    outcome: Outcome::Pending,
                },
            },
            LedgerCommand::Complete {
                incident: incident.to_owned(),
                phase,
                channel,
                outcome: Outcome::Sent {
                    at_ms: now_ms,
                    reference: Some(NOT_SENT.to_owned()),
                },
            },
        ]
    };
    for fold in plan.folds {
        let last_heard = fold
            .host_incidents
            .iter()
            .filter_map(|id| ledger.incident(id)?.last_heard_ms)
            .max();
        step.commands.push(LedgerCommand::Open(Incident {
            severity: Severity::Critical,
            detail: fold.hosts.join(", "),
            last_heard_ms: last_heard,
            ..Incident::new(
                fold.incident.clone(),
                IncidentKind::SwitchUnreachable,
                fold.label.clone(),
                fold.opened_at_ms,
            )
        }));
        for host in &fold.host_incidents {
            step.commands
                .extend(record(host, Phase::Opened, &fold.incident));
        }
    }
    // A folded host that is back ends as it began: recorded, not sent.
    for incident in ledger
        .incidents_of_kind(IncidentKind::HostDown)
        .filter(|i| i.state == IncidentState::Resolved)
    {
        let Some(switch) = folded_into(ledger, &incident.id) else {
            continue;
        };
        if !ledger
            .notifications_of(&incident.id)
            .any(|r| r.phase == Phase::Resolved)
        {
            step.commands
                .extend(record(&incident.id, Phase::Resolved, switch));
        }
    }
    for switch in ledger
        .incidents_of_kind(IncidentKind::SwitchUnreachable)
        .filter(|i| i.is_ongoing())
    {
        let hosts: Vec<FoldedHost> = folded_hosts(ledger, &switch.id)
            .iter()
            .map(|h| FoldedHost {
                resolved_at_ms: h.resolved_at_ms,
            })
            .collect();
        if !hosts.is_empty() && switch_over(&hosts, now_ms, group_wait_ms) {
            step.commands.push(LedgerCommand::Resolve {
                incident: switch.id.clone(),
                at_ms: now_ms,
            });
        }
    }
    step
}

/// The host incidents folded into switch incident `switch`, by host name.
fn folded_hosts<'a>(ledger: &'a Ledger, switch: &str) -> Vec<&'a Incident> {
    let channel = format!("{FOLDED_INTO}{switch}");
    let mut hosts: Vec<&Incident> = ledger
        .incidents_of_kind(IncidentKind::HostDown)
        .filter(|i| {
            ledger
                .notifications_of(&i.id)
                .any(|r| r.channel == channel && r.phase == Phase::Opened)
        })
        .collect();
    hosts.sort_by(|a, b| a.subject.cmp(&b.subject));
    hosts
}

/// Drops the work the switch step keeps back: held openings, and anything about a folded
/// host incident (its reminders: the switch incident has its own).
pub fn keep_sendable(work: Vec<Work>, ledger: &Ledger, hold: &BTreeSet<String>) -> Vec<Work> {
    work.into_iter()
        .filter(|w| !(w.phase == Phase::Opened && hold.contains(&w.incident)))
        .filter(|w| !is_folded(ledger, &w.incident))
        .collect()
}

/// One host of a switch incident, as its message shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoldedLine {
    /// The host.
    pub host: String,
    /// When it last talked (its last status sample), if known.
    pub last_heard_ms: Option<u64>,
    /// When its incident opened (it was declared down).
    pub down_at_ms: u64,
    /// Whether it is back.
    pub back: bool,
}

/// What a message needs besides its incidents. See the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageContext {
    /// The hosts of each switch incident, by switch incident id.
    pub folded: BTreeMap<String, Vec<FoldedLine>>,
    /// Members this side knows, itself included (those that left not counted).
    pub members: usize,
    /// Why this side most likely lost what it lost (from the map), for a cut-off message.
    pub explanation: Vec<String>,
}

/// The context of a message about `work`, sent by `me`.
pub fn message_context(
    ledger: &Ledger,
    observed: &Observed,
    map: &TopologyMap,
    work: &[Work],
    me: &str,
) -> MessageContext {
    let folded: BTreeMap<String, Vec<FoldedLine>> = work
        .iter()
        .filter_map(|w| ledger.incident(&w.incident))
        .filter(|i| i.kind == IncidentKind::SwitchUnreachable)
        .map(|switch| {
            let lines = folded_hosts(ledger, &switch.id)
                .into_iter()
                .map(|h| FoldedLine {
                    host: h.subject.clone(),
                    last_heard_ms: h.last_heard_ms,
                    down_at_ms: h.opened_at_ms,
                    back: h.resolved_at_ms.is_some(),
                })
                .collect();
            (switch.id.clone(), lines)
        })
        .collect();
    let lost: BTreeSet<String> = work
        .iter()
        .filter(|w| w.phase == Phase::Opened)
        .filter_map(|w| ledger.incident(&w.incident))
        .flat_map(|i| match i.kind {
            IncidentKind::HostDown => vec![i.subject.clone()],
            IncidentKind::SwitchUnreachable => folded
                .get(&i.id)
                .map(|hosts| hosts.iter().map(|h| h.host.clone()).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        })
        .collect();
    MessageContext {
        members: observed
            .hosts
            .iter()
            .filter(|h| h.status != MemberStatus::Left)
            .count(),
        explanation: loss_explanation(me, &lost, map),
        folded,
    }
}

/// A fallback leader's message that names more than half of the members as gone, and not
/// only whole switches away from it: `CUT OFF <me> cannot reach <hosts> (no quorum)` and the
/// lines saying why. `None` for any other message.
pub fn cut_off(items: &[(&Incident, Phase)], sender: &Sender) -> Option<(String, Vec<String>)> {
    if sender.mode != LeaderMode::Fallback {
        return None;
    }
    let opened = || items.iter().filter(|(_, p)| *p == Phase::Opened);
    let plain: BTreeSet<String> = opened()
        .filter(|(i, _)| i.kind == IncidentKind::HostDown)
        .map(|(i, _)| strip(&i.subject))
        .collect();
    let folded: BTreeSet<String> = opened()
        .filter(|(i, _)| i.kind == IncidentKind::SwitchUnreachable)
        .flat_map(|(i, _)| {
            sender
                .context
                .folded
                .get(&i.id)
                .cloned()
                .unwrap_or_default()
        })
        .map(|h| strip(&h.host))
        .collect();
    if !is_cut_off(plain.len(), folded.len(), sender.context.members) {
        return None;
    }
    let lost: Vec<String> = plain.union(&folded).cloned().collect();
    let title = format!(
        "CUT OFF {} cannot reach {} (no quorum)",
        strip(&sender.node),
        lost.join(", ")
    );
    let mut lines = vec![format!(
        "{} lost {} of the {} members at once and has no Raft quorum: most likely it is cut \
         off, not they down.",
        strip(&sender.node),
        lost.len(),
        sender.context.members
    )];
    lines.extend(sender.context.explanation.iter().map(|l| strip(l)));
    lines.push(String::new());
    Some((title, lines))
}

/// `SWITCH sw-a unreachable (h1, h2, h3)`, `SWITCH sw-a reachable again (h1, h2; h3 still
/// down)`, `SWITCH sw-a still unreachable (...)`.
pub fn switch_title(incident: &Incident, phase: Phase, context: &MessageContext) -> String {
    let name = strip(&incident.subject);
    let hosts = strip(&incident.detail);
    match phase {
        Phase::Opened => format!("SWITCH {name} unreachable ({hosts})"),
        Phase::Reminder(_) => format!("SWITCH {name} still unreachable ({hosts})"),
        Phase::Resolved => {
            let lines = context
                .folded
                .get(&incident.id)
                .cloned()
                .unwrap_or_default();
            let (back, down): (Vec<_>, Vec<_>) = lines.iter().partition(|h| h.back);
            let names = |l: &[&FoldedLine]| {
                l.iter()
                    .map(|h| strip(&h.host))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            if down.is_empty() || back.is_empty() {
                format!("SWITCH {name} reachable again ({hosts})")
            } else {
                format!(
                    "SWITCH {name} reachable again ({}; {} still down)",
                    names(&back),
                    names(&down)
                )
            }
        }
    }
}

/// The body lines of a switch incident: its title and each host's last-heard time.
pub fn switch_lines(
    incident: &Incident,
    phase: Phase,
    context: &MessageContext,
    clock: &dyn Fn(u64) -> String,
) -> Vec<String> {
    let mut head = format!(
        "{} - since {}",
        switch_title(incident, phase, context),
        clock(incident.opened_at_ms)
    );
    if let (Phase::Resolved, Some(at)) = (phase, incident.resolved_at_ms) {
        head.push_str(&format!("; over at {}", clock(at)));
    }
    head.push_str(&format!(" (incident {})", strip(&incident.id)));
    let mut lines = vec![head];
    for host in context.folded.get(&incident.id).into_iter().flatten() {
        let heard = match host.last_heard_ms {
            Some(ms) => format!("stopped talking at {}", clock(ms)),
            None => format!(
                "declared down at {} (no status sample from it)",
                clock(host.down_at_ms)
            ),
        };
        let back = if phase == Phase::Resolved && host.back {
            "; back"
        } else if phase == Phase::Resolved {
            "; still down"
        } else {
            ""
        };
        lines.push(format!("  {} {heard}{back}", strip(&host.host)));
    }
    lines
}

#[cfg(test)]
mod tests;
