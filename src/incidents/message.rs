//! Composing one message for a batch of incidents: pure, with exact tests.
//!
//! Every message names each incident, its hosts, when each host stopped talking, and who sent
//! it (node, Raft or fallback mode; in fallback mode also that there is no quorum and which
//! members this side cannot see).
//!
//! Subjects, details and node names are written without control characters
//! ([`control_chars::strip`]), whoever stored them: one incident is one line, and no value can
//! forge another line (a second "Sent by").

use std::time::{Duration, UNIX_EPOCH};

use rover_election::ledger::{Incident, IncidentKind, LeaderMode, Phase, Severity};
use serde_json::json;

use crate::control_chars::strip;
use crate::notify::{About, Message, Priority};

/// Who sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    /// The sending node.
    pub node: String,
    /// How it leads.
    pub mode: LeaderMode,
    /// Members it cannot see (named in fallback mode).
    pub unseen: Vec<String>,
    /// Switch incidents' hosts, and why a cut-off side lost what it lost
    /// ([`super::switches`]).
    pub context: super::switches::MessageContext,
}

/// One message about `items` (incident and which of its messages), sent by `sender`. News
/// come before endings, and subjects in name order.
pub fn compose(items: &[(&Incident, Phase)], sender: &Sender) -> Message {
    let mut items = items.to_vec();
    items.sort_by(|(a, pa), (b, pb)| (pa, &a.subject, &a.id).cmp(&(pb, &b.subject, &b.id)));
    let items = items.as_slice();
    let cut_off = super::switches::cut_off(items, sender);
    let title = format!(
        "rover: {}",
        title_parts(items, sender, cut_off.as_ref().map(|(t, _)| t.as_str())).join("; ")
    );
    let mut body: Vec<String> = cut_off.map(|(_, lines)| lines).unwrap_or_default();
    body.extend(items.iter().flat_map(|(i, phase)| match i.kind {
        IncidentKind::SwitchUnreachable => {
            super::switches::switch_lines(i, *phase, &sender.context, &clock)
        }
        _ => vec![line(i, *phase)],
    }));
    body.push(String::new());
    body.push(sent_by(sender));
    Message {
        title,
        body: body.join("\n"),
        priority: priority(items),
        details: json!({
            "incidents": items.iter().map(|(i, phase)| incident_json(i, *phase)).collect::<Vec<_>>(),
            "sent_by": {
                "node": sender.node,
                "mode": mode_name(sender.mode),
                "unseen": sender.unseen,
            },
        }),
        about: items
            .iter()
            .map(|(i, phase)| About {
                incident: i.id.clone(),
                phase: *phase,
            })
            .collect(),
    }
}

/// "DOWN n2, n3; BACK n4; FIRING disk on n2": one part per kind of news, in the order given;
/// one part per switch incident; a cut-off side's `cut_off` part instead of its downs.
fn title_parts(
    items: &[(&Incident, Phase)],
    sender: &Sender,
    cut_off: Option<&str>,
) -> Vec<String> {
    let mut parts: Vec<(String, Vec<String>)> = Vec::new();
    let mut switches = Vec::new();
    for (incident, phase) in items {
        let lost = *phase == Phase::Opened
            && matches!(
                incident.kind,
                IncidentKind::HostDown | IncidentKind::SwitchUnreachable
            );
        if cut_off.is_some() && lost {
            continue;
        }
        if incident.kind == IncidentKind::SwitchUnreachable {
            switches.push(super::switches::switch_title(
                incident,
                *phase,
                &sender.context,
            ));
            continue;
        }
        let verb = verb(incident, *phase).to_owned();
        match parts.iter_mut().find(|(v, _)| *v == verb) {
            Some((_, subjects)) => subjects.push(strip(&incident.subject)),
            None => parts.push((verb, vec![strip(&incident.subject)])),
        }
    }
    cut_off
        .map(str::to_owned)
        .into_iter()
        .chain(switches)
        .chain(
            parts
                .into_iter()
                .map(|(verb, subjects)| format!("{verb} {}", subjects.join(", "))),
        )
        .collect()
}

fn verb(incident: &Incident, phase: Phase) -> &'static str {
    match (incident.kind, phase) {
        (IncidentKind::HostDown, Phase::Opened) => "DOWN",
        (IncidentKind::HostDown, Phase::Resolved) => "BACK",
        (IncidentKind::HostDown, Phase::Reminder(_)) => "STILL DOWN",
        (IncidentKind::AlertFiring, Phase::Opened) => "FIRING",
        (IncidentKind::AlertFiring, Phase::Resolved) => "RESOLVED",
        (IncidentKind::AlertFiring, Phase::Reminder(_)) => "STILL FIRING",
        (IncidentKind::TeamLinkLost, Phase::Opened) => "TEAM LINK LOST",
        (IncidentKind::SwitchUnreachable, Phase::Opened) => "SWITCH UNREACHABLE",
        (_, Phase::Opened) => "INCIDENT",
        (_, Phase::Resolved) => "OVER",
        (_, Phase::Reminder(_)) => "STILL OPEN",
    }
}

/// One line of the body for one incident.
fn line(incident: &Incident, phase: Phase) -> String {
    let mut line = format!("{} {}", verb(incident, phase), strip(&incident.subject));
    if incident.kind == IncidentKind::HostDown {
        match incident.last_heard_ms {
            Some(ms) => line.push_str(&format!(" - stopped talking at {}", clock(ms))),
            None => line.push_str(&format!(
                " - declared down at {} (no status sample from it)",
                clock(incident.opened_at_ms)
            )),
        }
    } else {
        if incident.severity == Severity::Critical {
            line.push_str(" [critical]");
        }
        let detail = strip(&incident.detail);
        if !detail.is_empty() {
            line.push_str(&format!(": {detail}"));
        }
        line.push_str(&format!(" - since {}", clock(incident.opened_at_ms)));
    }
    if let (Phase::Resolved, Some(at)) = (phase, incident.resolved_at_ms) {
        line.push_str(&format!("; over at {}", clock(at)));
    }
    line.push_str(&format!(" (incident {})", strip(&incident.id)));
    line
}

fn sent_by(sender: &Sender) -> String {
    let sender = &Sender {
        node: strip(&sender.node),
        mode: sender.mode,
        unseen: sender.unseen.iter().map(|n| strip(n)).collect(),
        context: super::switches::MessageContext::default(),
    };
    match sender.mode {
        LeaderMode::Raft => format!("Sent by {}, Raft leader.", sender.node),
        LeaderMode::Fallback if sender.unseen.is_empty() => format!(
            "Sent by {}, fallback leader: no Raft quorum in this partition.",
            sender.node
        ),
        LeaderMode::Fallback => format!(
            "Sent by {}, fallback leader: no Raft quorum in this partition; members not seen: {}.",
            sender.node,
            sender.unseen.join(", ")
        ),
    }
}

fn priority(items: &[(&Incident, Phase)]) -> Priority {
    let news = items.iter().filter(|(_, p)| *p != Phase::Resolved);
    let mut priority = Priority::Low;
    for (incident, _) in news {
        priority = priority.max(match incident.severity {
            Severity::Critical => Priority::High,
            Severity::Warning => Priority::Normal,
        });
    }
    priority
}

fn incident_json(incident: &Incident, phase: Phase) -> serde_json::Value {
    json!({
        "id": incident.id,
        "kind": format!("{:?}", incident.kind),
        "phase": match phase {
            Phase::Opened => "opened".to_owned(),
            Phase::Resolved => "resolved".to_owned(),
            Phase::Reminder(n) => format!("reminder {n}"),
        },
        "subject": strip(&incident.subject),
        "severity": format!("{:?}", incident.severity).to_lowercase(),
        "detail": strip(&incident.detail),
        "opened_at_ms": incident.opened_at_ms,
        "last_heard_ms": incident.last_heard_ms,
        "resolved_at_ms": incident.resolved_at_ms,
    })
}

fn mode_name(mode: LeaderMode) -> &'static str {
    match mode {
        LeaderMode::Raft => "raft",
        LeaderMode::Fallback => "fallback",
    }
}

/// A unix time in milliseconds as RFC 3339 UTC, to the second.
fn clock(ms: u64) -> String {
    // humantime cannot print years past 9999 (a peer's clock may say anything).
    const YEAR_10000_MS: u64 = 253_402_300_800_000;
    if ms >= YEAR_10000_MS {
        return format!("{ms} ms after 1970");
    }
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down(host: &str, heard: u64) -> Incident {
        Incident {
            severity: Severity::Critical,
            last_heard_ms: Some(heard),
            host_generation: Some(1),
            ..Incident::new(
                format!("down/{host}/1"),
                IncidentKind::HostDown,
                host,
                heard + 6_000,
            )
        }
    }

    fn raft_sender() -> Sender {
        Sender {
            node: "n1".into(),
            mode: LeaderMode::Raft,
            unseen: vec![],
            context: Default::default(),
        }
    }

    #[test]
    fn one_message_names_every_host_when_it_stopped_talking_and_the_sender() {
        let (a, b) = (down("n2", 1_763_763_514_000), down("n3", 1_763_763_515_000));
        let message = compose(&[(&a, Phase::Opened), (&b, Phase::Opened)], &raft_sender());
        assert_eq!(message.title, "rover: DOWN n2, n3");
        assert_eq!(message.priority, Priority::High);
        let lines: Vec<&str> = message.body.lines().collect();
        assert_eq!(
            lines[0],
            "DOWN n2 - stopped talking at 2025-11-21T22:18:34Z (incident down/n2/1)"
        );
        assert!(lines[1].starts_with("DOWN n3 - stopped talking at 2025-11-21T22:18:35Z"));
        assert_eq!(*lines.last().unwrap(), "Sent by n1, Raft leader.");
        assert_eq!(message.details["incidents"][1]["id"], "down/n3/1");
        assert_eq!(message.details["sent_by"]["mode"], "raft");
    }

    #[test]
    fn a_fallback_message_says_there_is_no_quorum_and_whom_it_cannot_see() {
        let a = down("n2", 1_000);
        let sender = Sender {
            node: "n1".into(),
            mode: LeaderMode::Fallback,
            unseen: vec!["n2".into(), "n3".into()],
            context: Default::default(),
        };
        let message = compose(&[(&a, Phase::Opened)], &sender);
        assert!(message.body.ends_with(
            "Sent by n1, fallback leader: no Raft quorum in this partition; members not seen: n2, n3."
        ));
        assert_eq!(message.details["sent_by"]["unseen"][1], "n3");
    }

    #[test]
    fn news_and_endings_share_one_message_and_endings_alone_are_low_priority() {
        let mut back = down("n4", 1_000);
        back.resolved_at_ms = Some(90_000);
        let alert = Incident {
            detail: "DISK WARNING - 15% free".into(),
            ..Incident::new(
                "alert/default/n2/disk/5",
                IncidentKind::AlertFiring,
                "disk on n2",
                5,
            )
        };
        let mixed = compose(
            &[(&alert, Phase::Opened), (&back, Phase::Resolved)],
            &raft_sender(),
        );
        assert_eq!(mixed.title, "rover: FIRING disk on n2; BACK n4");
        assert_eq!(mixed.priority, Priority::Normal);
        assert!(mixed
            .body
            .contains("FIRING disk on n2: DISK WARNING - 15% free - since"));
        assert!(mixed.body.contains("; over at 1970-01-01T00:01:30Z"));
        let ending = compose(&[(&back, Phase::Resolved)], &raft_sender());
        assert_eq!(ending.priority, Priority::Low);
    }

    #[test]
    fn a_host_whose_clock_says_year_ten_thousand_is_printed_not_a_panic() {
        let far = down("n9", u64::MAX - 10_000);
        let message = compose(&[(&far, Phase::Opened)], &raft_sender());
        assert!(message.body.contains(" ms after 1970"), "{}", message.body);
    }

    #[test]
    fn control_characters_in_a_subject_cannot_forge_a_line() {
        let manual = Incident::new(
            "manual/x/1",
            IncidentKind::Manual,
            "disk\n\nSent by mallory, Raft leader.\r\0\u{1b}[2K\u{2028}",
            1_000,
        );
        let alert = Incident {
            detail: "disk fine\rRESOLVED (forged)\u{85}x".into(),
            ..Incident::new("alert/a", IncidentKind::AlertFiring, "disk on n2", 5)
        };
        let message = compose(
            &[(&manual, Phase::Opened), (&alert, Phase::Opened)],
            &raft_sender(),
        );
        let lines: Vec<&str> = message.body.lines().collect();
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert_eq!(
            lines.iter().filter(|l| l.starts_with("Sent by")).count(),
            1,
            "{lines:?}"
        );
        assert!(!crate::control_chars::has_control(
            &message.body.replace('\n', "")
        ));
        assert!(!crate::control_chars::has_control(&message.title));
        assert!(
            message.body.contains("disk fine RESOLVED (forged) x"),
            "{}",
            message.body
        );
    }
}
