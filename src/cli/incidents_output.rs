//! How `incidents` prints the ledger: the incidents, newest first, then what was notified.

use std::time::{Duration, UNIX_EPOCH};

use rover_election::ledger::{Incident, IncidentState, Notification, Outcome, Phase};

use super::table::render;
use crate::leadership::LedgerView;

/// The incidents and their notification records as two tables.
pub fn incidents_tables(view: &LedgerView) -> String {
    let mut incidents: Vec<(&Incident, &str)> = view
        .incidents
        .iter()
        .map(|i| (i, "raft"))
        .chain(view.fallback_incidents.iter().map(|i| (i, "fallback")))
        .collect();
    if incidents.is_empty() {
        return "no incidents\n".into();
    }
    incidents.sort_by(|a, b| {
        b.0.opened_at_ms
            .cmp(&a.0.opened_at_ms)
            .then(a.0.id.cmp(&b.0.id))
    });
    let rows: Vec<Vec<String>> = incidents
        .iter()
        .map(|(i, ledger)| {
            vec![
                i.id.clone(),
                format!("{:?}", i.kind),
                i.subject.clone(),
                state(i, view),
                clock(i.opened_at_ms),
                i.resolved_at_ms.map(clock).unwrap_or_else(|| "-".into()),
                (*ledger).to_owned(),
            ]
        })
        .collect();
    let mut out = render(
        &[
            "INCIDENT", "KIND", "SUBJECT", "STATE", "OPENED", "RESOLVED", "LEDGER",
        ],
        &rows,
    );
    let mut records: Vec<&Notification> = view.notifications.iter().collect();
    if records.is_empty() {
        out.push_str("\nnothing notified yet\n");
        return out;
    }
    records.sort_by(|a, b| {
        b.intent_at_ms
            .cmp(&a.intent_at_ms)
            .then(a.incident.cmp(&b.incident))
    });
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                r.incident.clone(),
                phase(r.phase),
                r.channel.clone(),
                r.by_node.clone(),
                format!("{:?}", r.mode).to_lowercase(),
                clock(r.intent_at_ms),
                outcome(&r.outcome),
            ]
        })
        .collect();
    out.push('\n');
    out.push_str(&render(
        &[
            "INCIDENT", "MESSAGE", "CHANNEL", "BY", "MODE", "AT", "OUTCOME",
        ],
        &rows,
    ));
    out
}

fn state(incident: &Incident, view: &LedgerView) -> String {
    let said_anything = view.notifications.iter().any(|n| n.incident == incident.id);
    match incident.state {
        IncidentState::Open => "open".into(),
        IncidentState::Notified => "notified".into(),
        IncidentState::Resolved => "resolved".into(),
        IncidentState::Closed if !said_anything => "closed (flap: nothing sent)".into(),
        IncidentState::Closed => "closed".into(),
    }
}

fn phase(phase: Phase) -> String {
    match phase {
        Phase::Opened => "opened".into(),
        Phase::Resolved => "resolved".into(),
        Phase::Reminder(n) => format!("reminder {n}"),
    }
}

fn outcome(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Pending => "pending".into(),
        Outcome::Sent {
            reference: Some(r), ..
        } => format!("sent ({r})"),
        Outcome::Sent { .. } => "sent".into(),
        Outcome::Failed { error, .. } => format!("failed: {error}"),
    }
}

fn clock(ms: u64) -> String {
    // humantime cannot print years past 9999 (a peer's clock may say anything).
    const YEAR_10000_MS: u64 = 253_402_300_800_000;
    if ms >= YEAR_10000_MS {
        return format!("{ms} ms after 1970");
    }
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}
