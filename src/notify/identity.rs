//! What makes a resent message the same message for its reader: keys derived from what a
//! message is about (each incident and which of its messages), never from who sends it or when.
//!
//! Sending is at least once: a leader that dies after its provider took a message and before
//! the outcome was committed leaves the intent pending, and the next leader sends it again.
//! That resend carries the same keys, so the reader's tools can fold it:
//!
//! - email: `Message-ID` ([`message_id`]); every message also names, in `In-Reply-To` and
//!   `References`, the thread root of each of its incidents ([`thread_roots`]), which is the
//!   `Message-ID` of an incident's own opening message when it was sent alone, so its BACK and
//!   reminders thread under it;
//! - webhooks: the `Idempotency-Key` header ([`idempotency_key`]);
//! - Pushover (no deduplication of its own): the incident ids at the end of the title.

use rover_election::ledger::Phase;
use sha2::{Digest, Sha256};

/// The domain of message ids when the sender address has none.
const FALLBACK_DOMAIN: &str = "rover-agent.invalid";

/// One thing a message says: incident `incident` is at `phase`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct About {
    /// The incident's id, as in the ledger.
    pub incident: String,
    /// Which of its messages.
    pub phase: Phase,
}

/// The key of a message about `about` (in any order): 32 hex digits of SHA-256 over the sorted
/// pairs; `None` for a message about no incident (a `notify test`).
pub fn idempotency_key(about: &[About]) -> Option<String> {
    if about.is_empty() {
        return None;
    }
    let mut lines: Vec<String> = about
        .iter()
        .map(|a| format!("{}\t{}", a.incident, phase_name(a.phase)))
        .collect();
    lines.sort();
    lines.dedup();
    Some(digest(&lines.join("\n")))
}

/// The `Message-ID` (with its angle brackets) of a message about `about`, at `domain`: the
/// incident's thread root for an opening message about one incident alone, else the key.
pub fn message_id(about: &[About], domain: &str) -> Option<String> {
    if let [only] = about {
        if only.phase == Phase::Opened {
            return Some(thread_root(&only.incident, domain));
        }
    }
    idempotency_key(about).map(|key| format!("<{key}@{}>", domain_or_fallback(domain)))
}

/// The thread root of each incident of `about`, once each, in id order, leaving out the
/// message's own id (`own`).
pub fn thread_roots(about: &[About], domain: &str, own: Option<&str>) -> Vec<String> {
    let mut incidents: Vec<&str> = about.iter().map(|a| a.incident.as_str()).collect();
    incidents.sort_unstable();
    incidents.dedup();
    incidents
        .into_iter()
        .map(|incident| thread_root(incident, domain))
        .filter(|root| Some(root.as_str()) != own)
        .collect()
}

/// The incident ids of `about`, once each, in id order.
pub fn incident_ids(about: &[About]) -> Vec<&str> {
    let mut ids: Vec<&str> = about.iter().map(|a| a.incident.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// `<{digest of the incident id}.incident@domain>`.
fn thread_root(incident: &str, domain: &str) -> String {
    format!(
        "<{}.incident@{}>",
        digest(incident),
        domain_or_fallback(domain)
    )
}

fn domain_or_fallback(domain: &str) -> &str {
    let ok = !domain.is_empty()
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if ok {
        domain
    } else {
        FALLBACK_DOMAIN
    }
}

fn phase_name(phase: Phase) -> String {
    match phase {
        Phase::Opened => "opened".into(),
        Phase::Resolved => "resolved".into(),
        Phase::Reminder(n) => format!("reminder-{n}"),
    }
}

/// 32 hex digits of SHA-256 of `text`.
fn digest(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn about(incident: &str, phase: Phase) -> About {
        About {
            incident: incident.into(),
            phase,
        }
    }

    #[test]
    fn the_key_depends_on_the_pairs_not_their_order() {
        let a = [
            about("host-down/n2/1", Phase::Opened),
            about("host-down/n3/1", Phase::Opened),
        ];
        let b = [a[1].clone(), a[0].clone()];
        assert_eq!(idempotency_key(&a), idempotency_key(&b));
        assert_eq!(idempotency_key(&a).unwrap().len(), 32);
        let back = [about("host-down/n2/1", Phase::Resolved)];
        assert_ne!(idempotency_key(&a[..1]), idempotency_key(&back));
        assert_eq!(idempotency_key(&[]), None);
    }

    #[test]
    fn a_back_replies_to_the_opening_message_of_its_incident() {
        let opened = [about("host-down/n2/1", Phase::Opened)];
        let down_id = message_id(&opened, "example.org").unwrap();
        assert!(down_id.ends_with(".incident@example.org>"), "{down_id}");
        assert!(thread_roots(&opened, "example.org", Some(&down_id)).is_empty());
        let back = [about("host-down/n2/1", Phase::Resolved)];
        let back_id = message_id(&back, "example.org").unwrap();
        assert_ne!(back_id, down_id);
        assert_eq!(
            thread_roots(&back, "example.org", Some(&back_id)),
            [down_id]
        );
    }

    #[test]
    fn a_domain_that_is_not_a_plain_name_is_replaced() {
        let id = message_id(&[about("x", Phase::Resolved)], "a>b").unwrap();
        assert!(id.ends_with("@rover-agent.invalid>"), "{id}");
    }
}
