//! The alert table: every alert this agent knows, keyed by (team, host, name), as a pure state
//! machine. Only the origin host changes its own alerts and bumps their version; everyone else
//! keeps the highest version they have seen, whichever way it arrived (gossip or sync).

use std::collections::BTreeMap;

use rover_storage::{Alert, AlertKey, AlertState, Severity};

use crate::control_chars;

/// What applying an alert did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// We did not know this alert.
    New,
    /// It replaced an older version; `state_changed` says whether it went firing <-> resolved.
    Updated {
        /// Whether the state flipped.
        state_changed: bool,
    },
    /// We already had this version or a newer one; nothing changed.
    Stale,
}

/// A digest entry: which version of which alert a node holds.
pub type DigestEntry = (AlertKey, u64);

/// Summaries are cut to their first line and to this many characters...
pub const MAX_SUMMARY: usize = 300;

/// ...and to this many bytes of UTF-8 (at a character boundary), so that an alert always fits
/// one gossip broadcast (`rover_membership::broadcast::GUARANTEED_ITEM_BYTES`) when its team,
/// host and name are at most 32 bytes each: 300 characters of any script of the Basic
/// Multilingual Plane (3 bytes at most each) stay whole; 4-byte characters (emoji) are cut at
/// 225.
pub const MAX_SUMMARY_BYTES: usize = 900;

/// The table. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct AlertTable {
    alerts: BTreeMap<AlertKey, Alert>,
}

impl AlertTable {
    /// A table holding `alerts` (as loaded from storage).
    pub fn from_alerts(alerts: impl IntoIterator<Item = Alert>) -> Self {
        let mut table = Self::default();
        for alert in alerts {
            table.apply(alert);
        }
        table
    }

    /// Every alert, sorted by key.
    pub fn all(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values()
    }

    /// One alert.
    pub fn get(&self, key: &AlertKey) -> Option<&Alert> {
        self.alerts.get(key)
    }

    /// Number of alerts (firing and resolved).
    pub fn len(&self) -> usize {
        self.alerts.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }

    /// Keeps `alert` if it is newer than what we hold.
    pub fn apply(&mut self, alert: Alert) -> Applied {
        let key = alert.key();
        match self.alerts.get(&key) {
            Some(known) if known.version >= alert.version => Applied::Stale,
            Some(known) => {
                let state_changed = known.state != alert.state;
                self.alerts.insert(key, alert);
                Applied::Updated { state_changed }
            }
            None => {
                self.alerts.insert(key, alert);
                Applied::New
            }
        }
    }

    /// Raises (or updates) an alert of our own; `None` if it is already firing as given.
    pub fn raise(
        &mut self,
        origin: (&str, &str),
        name: &str,
        severity: Severity,
        summary: &str,
        now_ms: u64,
    ) -> Option<Alert> {
        let (team, host) = origin;
        let key = AlertKey {
            team: team.to_owned(),
            host: host.to_owned(),
            name: name.to_owned(),
        };
        let summary = cap(summary);
        let next = match self.alerts.get(&key) {
            Some(known)
                if known.state == AlertState::Firing
                    && known.severity == severity
                    && known.summary == summary =>
            {
                return None;
            }
            Some(known) => Alert {
                severity,
                summary,
                first_seen_ms: if known.state == AlertState::Firing {
                    known.first_seen_ms
                } else {
                    now_ms
                },
                last_change_ms: now_ms,
                version: known.version + 1,
                state: AlertState::Firing,
                ..known.clone()
            },
            None => Alert {
                team: key.team.clone(),
                host: key.host.clone(),
                name: key.name.clone(),
                severity,
                summary,
                first_seen_ms: now_ms,
                last_change_ms: now_ms,
                version: 1,
                state: AlertState::Firing,
                path: Vec::new(),
            },
        };
        self.alerts.insert(key, next.clone());
        Some(next)
    }

    /// Resolves an alert of our own; `None` if it is not firing.
    pub fn clear(&mut self, key: &AlertKey, summary: Option<&str>, now_ms: u64) -> Option<Alert> {
        let known = self
            .alerts
            .get(key)
            .filter(|a| a.state == AlertState::Firing)?;
        let next = Alert {
            summary: summary.map(cap).unwrap_or_else(|| known.summary.clone()),
            last_change_ms: now_ms,
            version: known.version + 1,
            state: AlertState::Resolved,
            ..known.clone()
        };
        self.alerts.insert(key.clone(), next.clone());
        Some(next)
    }

    /// Puts back what [`AlertTable::get`] returned for `key` before a change that could not
    /// be stored (`None`: removes the alert).
    pub fn restore(&mut self, key: AlertKey, before: Option<Alert>) {
        match before {
            Some(alert) => self.alerts.insert(key, alert),
            None => self.alerts.remove(&key),
        };
    }

    /// Which version of each alert we hold.
    pub fn digest(&self) -> Vec<DigestEntry> {
        self.alerts
            .iter()
            .map(|(key, alert)| (key.clone(), alert.version))
            .collect()
    }

    /// The alerts we hold in a newer version than `digest` says, or that it lacks.
    pub fn newer_than(&self, digest: &[DigestEntry]) -> Vec<Alert> {
        let theirs: BTreeMap<&AlertKey, u64> = digest.iter().map(|(k, v)| (k, *v)).collect();
        self.alerts
            .iter()
            .filter(|(key, alert)| theirs.get(key).is_none_or(|v| *v < alert.version))
            .map(|(_, alert)| alert.clone())
            .collect()
    }
}

/// A summary as stored: one line without control characters, at most [`MAX_SUMMARY`]
/// characters.
fn cap(summary: &str) -> String {
    let line = control_chars::strip(summary);
    let chars = line
        .char_indices()
        .nth(MAX_SUMMARY)
        .map_or(line.len(), |(at, _)| at);
    let mut end = chars.min(MAX_SUMMARY_BYTES);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    line[..end].trim_end().to_owned()
}

/// An alert heard from a peer, made fit to store: its summary and path stripped of control
/// characters like our own; `None` (to be dropped) if its team, host or name is empty or holds
/// a control character, since those are its key.
pub fn sanitized(mut alert: Alert) -> Option<Alert> {
    let bad_key = [&alert.team, &alert.host, &alert.name]
        .iter()
        .any(|part| part.is_empty() || control_chars::has_control(part));
    if bad_key {
        return None;
    }
    alert.summary = cap(&alert.summary);
    alert.path = alert
        .path
        .iter()
        .map(|hop| control_chars::strip(hop))
        .collect();
    Some(alert)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_at_the_summary_limit_fits_one_broadcast_in_bytes() {
        let mut table = AlertTable::default();
        let (team, host, name) = ("t".repeat(32), "h".repeat(32), "n".repeat(32));
        for text in ["ディスク満杯".repeat(60), "🔥".repeat(300), "x".repeat(400)] {
            let alert = table
                .raise((&team, &host), &name, Severity::Critical, &text, 10)
                .unwrap();
            assert!(alert.summary.len() <= MAX_SUMMARY_BYTES);
            assert!(alert.summary.chars().count() <= MAX_SUMMARY);
            let item = rover_membership::BroadcastItem {
                topic: rover_membership::Topic::Alert,
                key: alert.key().to_string(),
                version: u64::MAX,
                payload: postcard::to_stdvec(&Alert {
                    first_seen_ms: u64::MAX,
                    last_change_ms: u64::MAX,
                    version: u64::MAX,
                    ..alert
                })
                .unwrap(),
            };
            assert!(
                item.encode().len() <= rover_membership::broadcast::GUARANTEED_ITEM_BYTES,
                "{} bytes",
                item.encode().len()
            );
        }
        let cjk = table
            .raise(ME, "cjk", Severity::Warning, &"ディスク満杯".repeat(50), 1)
            .unwrap();
        assert_eq!(cjk.summary.chars().count(), 300, "BMP text stays whole");
    }

    const ME: (&str, &str) = ("home", "n1");

    #[test]
    fn raising_twice_with_the_same_text_changes_nothing() {
        let mut table = AlertTable::default();
        let first = table
            .raise(ME, "disk", Severity::Critical, "91%", 10)
            .unwrap();
        assert_eq!(first.version, 1);
        assert_eq!(table.raise(ME, "disk", Severity::Critical, "91%", 20), None);
        let second = table
            .raise(ME, "disk", Severity::Critical, "95%", 30)
            .unwrap();
        assert_eq!(
            (second.version, second.first_seen_ms, second.last_change_ms),
            (2, 10, 30)
        );
    }

    #[test]
    fn clearing_resolves_and_bumps_the_version_and_a_second_clear_does_nothing() {
        let mut table = AlertTable::default();
        let raised = table
            .raise(ME, "disk", Severity::Warning, "81%", 10)
            .unwrap();
        let cleared = table.clear(&raised.key(), None, 20).unwrap();
        assert_eq!(
            (cleared.state, cleared.version, cleared.summary.as_str()),
            (AlertState::Resolved, 2, "81%")
        );
        assert_eq!(table.clear(&raised.key(), None, 30), None);
        let again = table
            .raise(ME, "disk", Severity::Warning, "82%", 40)
            .unwrap();
        assert_eq!((again.version, again.first_seen_ms), (3, 40));
    }

    #[test]
    fn only_a_newer_version_replaces_what_we_hold() {
        let mut origin = AlertTable::default();
        let v1 = origin
            .raise(ME, "load", Severity::Warning, "5.0", 1)
            .unwrap();
        let v2 = origin.clear(&v1.key(), None, 2).unwrap();
        let mut peer = AlertTable::default();
        assert_eq!(peer.apply(v2.clone()), Applied::New);
        assert_eq!(peer.apply(v1), Applied::Stale);
        assert_eq!(peer.apply(v2), Applied::Stale);
        assert_eq!(
            peer.get(&origin.all().next().unwrap().key()).unwrap().state,
            AlertState::Resolved
        );
    }

    #[test]
    fn a_digest_exchange_finds_exactly_what_each_side_lacks() {
        let mut a = AlertTable::default();
        let mut b = AlertTable::default();
        let x = a
            .raise(("home", "a"), "x", Severity::Warning, "x", 1)
            .unwrap();
        let y = b
            .raise(("home", "b"), "y", Severity::Warning, "y", 1)
            .unwrap();
        b.apply(x.clone());
        let x2 = a.clear(&x.key(), None, 2).unwrap();
        let for_b = a.newer_than(&b.digest());
        assert_eq!(for_b, vec![x2]);
        let for_a = b.newer_than(&a.digest());
        assert_eq!(for_a, vec![y]);
    }

    #[test]
    fn control_characters_never_reach_a_stored_summary() {
        let mut table = AlertTable::default();
        let forged = "disk fine\rRESOLVED (forged)\u{1b}[2K\u{7}\0\u{2028}x\u{85}y\u{202e}";
        let alert = table
            .raise(ME, "disk", Severity::Warning, forged, 1)
            .unwrap();
        assert_eq!(alert.summary, "disk fine RESOLVED (forged)[2K x y");
        let cleared = table.clear(&alert.key(), Some("ok\r\nnow"), 2).unwrap();
        assert_eq!(cleared.summary, "ok now");
    }

    #[test]
    fn a_peers_alert_is_cleaned_or_dropped_if_its_key_holds_control_characters() {
        let mut peer = AlertTable::default();
        let mut alert = peer
            .raise(("home", "n2"), "x", Severity::Warning, "y", 1)
            .unwrap();
        alert.summary = "bad\rline\u{9b}".into();
        assert_eq!(sanitized(alert.clone()).unwrap().summary, "bad line");
        alert.name = "x\u{1b}[2J".into();
        assert_eq!(sanitized(alert), None);
    }

    #[test]
    fn summaries_are_capped_to_one_short_line() {
        let mut table = AlertTable::default();
        let long = "x".repeat(1000) + "\nsecond line";
        let alert = table
            .raise(ME, "long", Severity::Warning, &long, 1)
            .unwrap();
        assert_eq!(alert.summary.len(), MAX_SUMMARY);
    }
}
