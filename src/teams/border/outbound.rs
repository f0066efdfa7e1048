//! What goes out on the links: the full sync when a link comes up, the changes of our team's
//! table after that, RemoveTeamAlerts when a team is lost, and the bounded outbox.

use std::collections::{BTreeMap, BTreeSet};

use rover_storage::{Alert, AlertKey, AlertState};

use super::Border;
use crate::teams::wire::{self, LinkFrame};

impl Border {
    /// Tells every other link that carried alerts of `team` that they are gone, in one
    /// RemoveTeamAlerts (our team's table follows with the alerts taken back).
    pub(super) fn tell_team_lost(&mut self, team: &str) {
        for index in 0..self.links.len() {
            let carried: Vec<AlertKey> = self.links[index]
                .sent
                .keys()
                .filter(|k| k.team == team)
                .cloned()
                .collect();
            if carried.is_empty() || self.links[index].conn.is_none() {
                continue;
            }
            for key in &carried {
                self.links[index].sent.remove(key);
            }
            self.push(
                index,
                &LinkFrame::RemoveTeamAlerts {
                    team: team.to_owned(),
                },
            );
        }
    }

    /// Sends a full sync on link `index`.
    pub(super) fn full_sync(&mut self, index: usize, table: &[Alert]) {
        self.links[index].sent.clear();
        if !self.push(index, &LinkFrame::SyncStart) {
            return;
        }
        let wanted = self.wanted(index, table);
        let count = u32::try_from(wanted.len()).unwrap_or(u32::MAX);
        for alert in wanted {
            if !self.send_update(index, alert) {
                return;
            }
        }
        self.push(index, &LinkFrame::SyncEnd { count });
    }

    /// Our team's alert table changed: what the links may carry goes out, and what the RIB
    /// holds but the team lost (another border agent of ours took it back when its own link
    /// went) is brought in again.
    pub fn handle_table(&mut self, table: &[Alert], now_ms: u64) {
        let held: BTreeMap<AlertKey, &Alert> = table.iter().map(|a| (a.key(), a)).collect();
        let lost: Vec<AlertKey> = self
            .rib
            .alerts()
            .map(Alert::key)
            .filter(|key| held.get(key).is_none_or(|a| a.state == AlertState::Removed))
            .filter(|key| !self.relays.contains_key(key))
            .collect();
        for key in lost {
            self.bring_in(&key);
        }
        self.sweep(table, now_ms);
        self.send_changes(table);
    }

    /// Sends what changed in `table` since the last look on every link that is up.
    pub fn send_changes(&mut self, table: &[Alert]) {
        for index in 0..self.links.len() {
            if self.links[index].conn.is_none() {
                continue;
            }
            let wanted = self.wanted(index, table);
            let keys: BTreeSet<AlertKey> = wanted.iter().map(|a| a.key()).collect();
            let gone: Vec<(AlertKey, u64)> = self.links[index]
                .sent
                .iter()
                .filter(|(key, _)| !keys.contains(*key))
                .map(|(key, version)| (key.clone(), *version))
                .collect();
            for alert in wanted {
                if self.links[index].sent.get(&alert.key()) != Some(&alert.version)
                    && !self.send_update(index, alert)
                {
                    return;
                }
            }
            for (key, version) in gone {
                self.links[index].sent.remove(&key);
                if !self.push(index, &LinkFrame::RemoveAlert { key, version }) {
                    break;
                }
            }
        }
    }

    /// What link `index` may carry of `table`, with our hop on each path.
    fn wanted<'a>(&self, index: usize, table: &'a [Alert]) -> Vec<Alert> {
        let link = &self.links[index];
        if !self.trust.send.contains(&link.id) {
            return Vec::new();
        }
        let mode = self.mode(index);
        table
            .iter()
            .filter(|a| a.state != AlertState::Removed)
            .filter(|a| {
                crate::teams::rules::may_send(
                    &self.team,
                    &link.config.team,
                    mode,
                    a,
                    Some(self.link_state.routes()),
                )
            })
            .map(|a: &'a Alert| {
                let mut alert = a.clone();
                if alert.path.last() != Some(&self.hop) {
                    alert.path.push(self.hop.clone());
                }
                alert
            })
            .collect()
    }

    fn send_update(&mut self, index: usize, alert: Alert) -> bool {
        let (key, version) = (alert.key(), alert.version);
        if !self.push(index, &LinkFrame::UpdateAlert(alert)) {
            return false;
        }
        let link = &mut self.links[index];
        link.updates_out += 1;
        link.sent.insert(key, version);
        true
    }

    /// Queues one frame; closes a connection whose outbox is full (false then).
    pub(super) fn push(&mut self, index: usize, frame: &LinkFrame) -> bool {
        let link = &mut self.links[index];
        let Some((_, outbox, _)) = &link.conn else {
            return false;
        };
        match outbox.try_send(wire::encode(frame)) {
            Ok(()) => return true,
            Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(team = %link.config.team, "team link peer too slow: connection closed");
                *link.dropped.entry("slow_peer").or_default() += 1;
            }
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {}
        }
        self.close(index);
        false
    }
}
