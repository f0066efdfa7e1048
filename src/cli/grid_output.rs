//! Text tables of `records`, `service list`, `trust list`, `keys list` and key steps.

use super::table::render;
use crate::grid::services::{RecordView, ServiceView, TrustView};
use crate::keys::rotation::{is_reachable_status, KeysReport, StepReport};

fn node_or_dash(node: &Option<String>) -> String {
    node.clone().unwrap_or_else(|| "-".into())
}

/// `records`.
pub fn records_table(records: &[RecordView]) -> String {
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                r.service.clone(),
                r.fingerprint.clone(),
                node_or_dash(&r.node),
                r.seqnum.to_string(),
                r.bytes.to_string(),
                r.content.clone(),
            ]
        })
        .collect();
    render(
        &["SERVICE", "SIGNER", "NODE", "SEQNUM", "BYTES", "CONTENT"],
        &rows,
    )
}

/// `service list`.
pub fn services_table(services: &[ServiceView]) -> String {
    let rows: Vec<Vec<String>> = services
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.addr.clone(),
                format!("{} ({})", node_or_dash(&s.node), s.fingerprint),
                s.seqnum.to_string(),
            ]
        })
        .collect();
    render(&["NAME", "ADDRESS", "SET BY", "SEQNUM"], &rows)
}

/// `trust list`.
pub fn trust_table(all: &[TrustView]) -> String {
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|t| {
            vec![
                t.petname.clone(),
                t.who.clone(),
                t.what
                    .iter()
                    .map(|w| w.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                format!("{} ({})", node_or_dash(&t.signer_node), t.signer),
                t.seqnum.to_string(),
            ]
        })
        .collect();
    render(
        &["PETNAME", "WHO", "WHAT", "RECOMMENDED BY", "SEQNUM"],
        &rows,
    )
}

/// `keys list`: one row per key, then one per member.
pub fn keys_table(report: &KeysReport) -> String {
    let keys: Vec<Vec<String>> = report
        .keys
        .iter()
        .map(|k| {
            vec![
                k.fingerprint.clone(),
                format!("{}/{}", k.held_by, k.members),
                format!("{}/{}", k.primary_of, k.members),
                if k.missing.is_empty() {
                    "-".into()
                } else {
                    k.missing.join(", ")
                },
            ]
        })
        .collect();
    let members: Vec<Vec<String>> = report
        .members
        .iter()
        .map(|m| {
            vec![
                m.name.clone(),
                m.status.as_str().to_owned(),
                m.outcome.as_str().to_owned(),
                m.keys.as_ref().map_or_else(
                    || m.detail.clone(),
                    |k| format!("primary {}, holds {}", k.primary, k.keys.join(" ")),
                ),
            ]
        })
        .collect();
    render(&["KEY", "HELD BY", "PRIMARY ON", "MISSING"], &keys)
        + "\n"
        + &render(&["MEMBER", "STATUS", "ANSWER", "KEYS"], &members)
}

/// `keys install|use|remove`.
pub fn step_table(report: &StepReport) -> String {
    let rows: Vec<Vec<String>> = report
        .members
        .iter()
        .map(|m| {
            vec![
                m.name.clone(),
                m.addr.clone(),
                m.outcome.as_str().to_owned(),
                m.detail.clone(),
            ]
        })
        .collect();
    let away: Vec<String> = report
        .members
        .iter()
        .filter(|m| !is_reachable_status(m.status))
        .map(|m| format!("{} ({})", m.name, m.status.as_str()))
        .collect();
    let away = if away.is_empty() {
        String::new()
    } else {
        format!("; not reached: {}", away.join(", "))
    };
    format!(
        "{} {}: {} of {} alive members acknowledged{away}\n",
        report.step, report.key, report.acknowledged, report.reachable
    ) + &render(&["MEMBER", "ADDRESS", "ANSWER", "DETAIL"], &rows)
}
