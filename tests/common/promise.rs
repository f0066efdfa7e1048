//! The notification promise, checked on the messages a lab's agents sent (tests/stacked_faults.rs):
//! at most one message per (incident, phase) per side, every DOWN followed by exactly one BACK
//! once the host is back, and no DOWN for a host its sender could see. Messages come from the
//! exec channel's saved JSON ([`crate::saved_messages`]) or from the body lines of the mail an
//! SMTP sink received (`DOWN n3 - ... (incident down/n3/1)`).

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use crate::saved_messages::Sent;

/// The faults a case made: the small side of each split, in order, and the hosts it killed.
pub struct Faults<'a> {
    /// The small side of each split (the rest of the hosts were the other side).
    pub splits: &'a [&'a [&'a str]],
    /// Hosts killed at some point (a DOWN for them is due, whoever sends it).
    pub killed: &'a [&'a str],
}

impl Faults<'_> {
    /// Which side of each split `node` was on: nodes with the same cell were never apart.
    fn cell(&self, node: &str) -> Vec<bool> {
        self.splits.iter().map(|s| s.contains(&node)).collect()
    }
}

/// The host of a `down/HOST/...` incident id.
fn down_host(id: &str) -> Option<&str> {
    id.strip_prefix("down/")?.split('/').next()
}

/// The first way `sent` breaks the promise, in words: an (incident, phase) sent twice by
/// senders that were never apart, a BACK sent twice, or a DOWN for a host its sender was
/// never apart from and that was never killed.
pub fn broken_promise(sent: &[Sent], faults: &Faults<'_>) -> Option<String> {
    let mut per_cell: BTreeMap<(Vec<bool>, &str, &str), Vec<String>> = BTreeMap::new();
    let mut backs: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for message in sent {
        let cell = faults.cell(&message.by);
        let tag = format!("{} by {}", message.file, message.by);
        for (id, phase) in &message.items {
            let seen = per_cell
                .entry((cell.clone(), id.as_str(), phase.as_str()))
                .or_default();
            seen.push(tag.clone());
            if seen.len() > 1 {
                return Some(format!(
                    "{phase} of {id} sent {} times on one side: {seen:?}",
                    seen.len()
                ));
            }
            if phase == "resolved" {
                let seen = backs.entry(id.as_str()).or_default();
                seen.push(tag.clone());
                if seen.len() > 1 {
                    return Some(format!("BACK of {id} sent {} times: {seen:?}", seen.len()));
                }
            }
            if phase == "opened" {
                if let Some(host) = down_host(id) {
                    if !faults.killed.contains(&host) && faults.cell(host) == cell {
                        return Some(format!(
                            "DOWN of {host} ({id}) by {}, which could see it ({})",
                            message.by, message.file
                        ));
                    }
                }
            }
        }
    }
    None
}

/// The incidents announced DOWN (opened) in `sent` that no message has closed yet.
pub fn downs_without_back(sent: &[Sent]) -> BTreeSet<String> {
    let closed: BTreeSet<&String> = sent
        .iter()
        .flat_map(|s| {
            s.items
                .iter()
                .filter(|(_, p)| p == "resolved")
                .map(|(i, _)| i)
        })
        .collect();
    sent.iter()
        .flat_map(|s| {
            s.items
                .iter()
                .filter(|(_, p)| p == "opened")
                .map(|(i, _)| i)
        })
        .filter(|id| id.starts_with("down/") && !closed.contains(id))
        .cloned()
        .collect()
}

/// Who sent each (incident, phase) and how, for the report:
/// `down/n3/1 opened: 2 by ["n1 fallback", "n4 raft"]`.
pub fn counts(sent: &[Sent]) -> String {
    let mut senders: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();
    for message in sent {
        for (id, phase) in &message.items {
            senders
                .entry((id.as_str(), phase.as_str()))
                .or_default()
                .push(
                    format!("{} {}", message.by, message.mode)
                        .trim_end()
                        .to_owned(),
                );
        }
    }
    let lines: Vec<String> = senders
        .iter()
        .map(|((id, phase), by)| format!("  {id} {phase}: {} by {by:?}", by.len()))
        .collect();
    format!("{} messages\n{}", sent.len(), lines.join("\n"))
}

/// The (incident id, phase) pairs a mail's text body covers, from its `DOWN ...` and
/// `BACK ...` lines ending in `(incident ID)`.
pub fn mail_items(body: &str) -> Vec<(String, String)> {
    body.lines()
        .filter_map(|line| {
            let phase = if line.starts_with("DOWN ") {
                "opened"
            } else if line.starts_with("BACK ") {
                "resolved"
            } else {
                return None;
            };
            let id = line
                .trim_end()
                .rsplit_once("(incident ")?
                .1
                .strip_suffix(')')?;
            Some((id.to_owned(), phase.to_owned()))
        })
        .collect()
}
