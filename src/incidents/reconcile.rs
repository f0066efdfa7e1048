//! What the ledger should say, given what this leader sees: pure, with exact tests.
//!
//! The engine is level-triggered: every tick the leader compares the cluster (failed members,
//! firing alerts) with the ledger's open incidents and writes the difference. A new leader
//! therefore picks up whatever its predecessor left, and incident ids derived from what
//! happened (`down/<host>/<generation>`, `alert/<team>/<host>/<name>/<first seen>`) make every
//! leader, on either side of a split, open the same incident for the same event.
//!
//! Incidents are resolved only on evidence: a host is back when a newer (or the same)
//! generation of it is alive, or it left on purpose; an alert is over when the alert table no
//! longer has it firing with the same first-seen time.

use std::collections::{BTreeMap, BTreeSet};

use rover_election::ledger::{
    Incident, IncidentKind, IncidentState, Ledger, LedgerCommand, Severity,
};
use rover_membership::MemberStatus;
use rover_storage::{Alert, AlertState};

/// One member as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostView {
    /// Node name.
    pub name: String,
    /// The generation the leader knows.
    pub generation: u64,
    /// Its status.
    pub status: MemberStatus,
    /// When it last talked: its newest status sample (unix ms), if any.
    pub last_heard_ms: Option<u64>,
}

/// Everything the leader observes in one tick.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The members, this node included.
    pub hosts: Vec<HostView>,
    /// The alert table.
    pub alerts: Vec<Alert>,
}

impl Observed {
    /// Members the leader cannot see (failed or suspect), by name.
    pub fn unseen(&self) -> Vec<String> {
        self.hosts
            .iter()
            .filter(|h| matches!(h.status, MemberStatus::Failed | MemberStatus::Suspect))
            .map(|h| h.name.clone())
            .collect()
    }

    /// Whether `name` is alive or suspect (it may still be sending).
    pub fn may_be_alive(&self, name: &str) -> bool {
        self.hosts.iter().any(|h| {
            h.name == name && matches!(h.status, MemberStatus::Alive | MemberStatus::Suspect)
        })
    }
}

/// The id of the incident "this generation of this host stopped talking".
pub fn host_down_id(host: &str, generation: u64) -> String {
    format!("down/{host}/{generation}")
}

/// The id of the incident "this alert fired at this time".
pub fn alert_id(alert: &Alert) -> String {
    format!(
        "alert/{}/{}/{}/{}",
        alert.team, alert.host, alert.name, alert.first_seen_ms
    )
}

/// The commands that bring the ledger in line with what is observed, opened at `now_ms`.
pub fn reconcile(observed: &Observed, ledger: &Ledger, now_ms: u64) -> Vec<LedgerCommand> {
    let mut commands = Vec::new();
    let known = |id: &str| ledger.incident(id).is_some();

    for host in observed
        .hosts
        .iter()
        .filter(|h| h.status == MemberStatus::Failed)
    {
        let id = host_down_id(&host.name, host.generation);
        if !known(&id) {
            commands.push(LedgerCommand::Open(Incident {
                severity: Severity::Critical,
                last_heard_ms: host.last_heard_ms,
                host_generation: Some(host.generation),
                ..Incident::new(id, IncidentKind::HostDown, host.name.clone(), now_ms)
            }));
        }
    }

    let firing: BTreeMap<String, &Alert> = observed
        .alerts
        .iter()
        .filter(|a| a.state == AlertState::Firing)
        .map(|a| (alert_id(a), a))
        .collect();
    for (id, alert) in &firing {
        if !known(id) {
            commands.push(LedgerCommand::Open(Incident {
                severity: match alert.severity {
                    rover_storage::Severity::Warning => Severity::Warning,
                    rover_storage::Severity::Critical => Severity::Critical,
                },
                detail: alert.summary.clone(),
                ..Incident::new(
                    id.clone(),
                    IncidentKind::AlertFiring,
                    format!("{} on {}", alert.name, alert.host),
                    now_ms,
                )
            }));
        }
    }

    let hosts: BTreeMap<&str, &HostView> = observed
        .hosts
        .iter()
        .map(|h| (h.name.as_str(), h))
        .collect();
    let ongoing = ledger
        .incidents()
        .filter(|i| matches!(i.state, IncidentState::Open | IncidentState::Notified));
    let mut resolved = BTreeSet::new();
    for incident in ongoing {
        let over = match incident.kind {
            IncidentKind::HostDown => hosts.get(incident.subject.as_str()).is_some_and(|h| {
                h.status == MemberStatus::Left
                    || (h.status == MemberStatus::Alive
                        && h.generation > incident.host_generation.unwrap_or(0))
            }),
            IncidentKind::AlertFiring => {
                !firing.contains_key(&incident.id) && alert_moved_on(incident, &observed.alerts)
            }
            IncidentKind::TeamLinkLost | IncidentKind::SwitchUnreachable | IncidentKind::Manual => {
                false
            }
        };
        if over && resolved.insert(incident.id.clone()) {
            commands.push(LedgerCommand::Resolve {
                incident: incident.id.clone(),
                at_ms: now_ms,
            });
        }
    }
    commands
}

/// Whether the alert of an alert incident is known and no longer the firing it announced:
/// resolved, or firing anew (a later first-seen time). An alert this node has not heard of is
/// no evidence (its table may still be filling), so the incident stays open.
fn alert_moved_on(incident: &Incident, alerts: &[Alert]) -> bool {
    let of_this_alert = |a: &&Alert| {
        incident
            .id
            .strip_prefix(&alert_prefix(a))
            .is_some_and(|first_seen| first_seen.chars().all(|c| c.is_ascii_digit()))
    };
    alerts
        .iter()
        .find(of_this_alert)
        .is_some_and(|a| a.state == AlertState::Resolved || alert_id(a) != incident.id)
}

/// `alert/<team>/<host>/<name>/`: every incident of one alert starts with it.
fn alert_prefix(alert: &Alert) -> String {
    format!("alert/{}/{}/{}/", alert.team, alert.host, alert.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, generation: u64, status: MemberStatus) -> HostView {
        HostView {
            name: name.into(),
            generation,
            status,
            last_heard_ms: Some(900),
        }
    }

    fn alert(name: &str, state: AlertState, first_seen_ms: u64) -> Alert {
        Alert {
            team: "default".into(),
            host: "n2".into(),
            name: name.into(),
            severity: rover_storage::Severity::Critical,
            summary: "DISK CRITICAL".into(),
            first_seen_ms,
            last_change_ms: first_seen_ms,
            version: 1,
            state,
            path: Vec::new(),
        }
    }

    fn applied(commands: &[LedgerCommand]) -> Ledger {
        let mut ledger = Ledger::default();
        for c in commands {
            ledger.apply(c);
        }
        ledger
    }

    #[test]
    fn a_failed_host_opens_one_critical_incident_that_remembers_when_it_last_talked() {
        let observed = Observed {
            hosts: vec![
                host("n1", 3, MemberStatus::Alive),
                host("n2", 7, MemberStatus::Failed),
            ],
            alerts: vec![],
        };
        let commands = reconcile(&observed, &Ledger::default(), 1_000);
        assert_eq!(commands.len(), 1);
        let ledger = applied(&commands);
        let incident = ledger.incident("down/n2/7").unwrap();
        assert_eq!(incident.kind, IncidentKind::HostDown);
        assert_eq!(incident.subject, "n2");
        assert_eq!(incident.severity, Severity::Critical);
        assert_eq!(incident.last_heard_ms, Some(900));
        assert_eq!(incident.opened_at_ms, 1_000);
        assert!(
            reconcile(&observed, &ledger, 2_000).is_empty(),
            "opened once"
        );
    }

    #[test]
    fn a_host_is_back_when_a_newer_generation_is_alive_or_it_left_but_not_while_unknown() {
        let down = Observed {
            hosts: vec![
                host("n2", 7, MemberStatus::Failed),
                host("n3", 4, MemberStatus::Failed),
            ],
            alerts: vec![],
        };
        let ledger = applied(&reconcile(&down, &Ledger::default(), 1_000));
        let back = Observed {
            hosts: vec![
                host("n2", 8, MemberStatus::Alive),
                host("n3", 4, MemberStatus::Left),
            ],
            alerts: vec![],
        };
        let commands = reconcile(&back, &ledger, 5_000);
        assert_eq!(
            commands,
            vec![
                LedgerCommand::Resolve {
                    incident: "down/n2/7".into(),
                    at_ms: 5_000
                },
                LedgerCommand::Resolve {
                    incident: "down/n3/4".into(),
                    at_ms: 5_000
                },
            ]
        );
        assert!(reconcile(&Observed::default(), &ledger, 5_000).is_empty());
        let stale = Observed {
            hosts: vec![host("n2", 7, MemberStatus::Alive)],
            alerts: vec![],
        };
        assert!(
            reconcile(&stale, &ledger, 5_000).is_empty(),
            "the generation that died, seen alive, is a view that missed the death"
        );
    }

    #[test]
    fn a_firing_alert_opens_an_incident_that_ends_when_it_resolves_or_fires_anew() {
        let firing = Observed {
            hosts: vec![],
            alerts: vec![alert("disk", AlertState::Firing, 100)],
        };
        let ledger = applied(&reconcile(&firing, &Ledger::default(), 1_000));
        let incident = ledger.incident("alert/default/n2/disk/100").unwrap();
        assert_eq!(incident.subject, "disk on n2");
        assert_eq!(incident.detail, "DISK CRITICAL");
        assert!(reconcile(&firing, &ledger, 2_000).is_empty());
        let cleared = Observed {
            hosts: vec![],
            alerts: vec![alert("disk", AlertState::Resolved, 100)],
        };
        assert_eq!(reconcile(&cleared, &ledger, 3_000).len(), 1);
        let not_heard_of = Observed::default();
        assert!(
            reconcile(&not_heard_of, &ledger, 3_000).is_empty(),
            "an alert missing from the table is no evidence that it is over"
        );
        let again = Observed {
            hosts: vec![],
            alerts: vec![alert("disk", AlertState::Firing, 2_500)],
        };
        let commands = reconcile(&again, &ledger, 3_000);
        assert_eq!(
            commands.len(),
            2,
            "the new firing opens, the old one resolves"
        );
    }
}
