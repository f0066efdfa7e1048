//! What the ledger should say, given what this leader sees: pure, with exact tests.
//!
//! The engine is level-triggered: every tick the leader compares the cluster (failed members,
//! firing alerts) with the ledger's open incidents and writes the difference. A new leader
//! therefore picks up whatever its predecessor left, and incident ids derived from what
//! happened (`down/<host>/<generation>`, `alert/<team>/<host>/<name>/<first seen>`) make every
//! leader, on either side of a split, open the same incident for the same event.
//!
//! Incidents are resolved only on evidence: a host is back when a newer generation of it is
//! alive, the generation declared down is alive and has talked since (a newer status sample),
//! or it left on purpose; an alert is over when the alert table no longer has it firing with
//! the same first-seen time. A death after the host was back is a new incident, never folded
//! into the one that ended; and no DOWN goes out for a host this leader sees alive.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rover_election::ledger::{Incident, IncidentKind, Ledger, LedgerCommand, Phase, Severity};
use rover_election::policy::Work;
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

/// "disk on n2"; another team's alert (one a border agent brought, `team.notify_remote`)
/// names its team: "disk on n2 (team cabin)".
fn alert_subject(alert: &Alert) -> String {
    if alert.path.is_empty() {
        format!("{} on {}", alert.name, alert.host)
    } else {
        format!("{} on {} (team {})", alert.name, alert.host, alert.team)
    }
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
        let Some(id) = new_outage_id(observed, ledger, host) else {
            continue;
        };
        if !commands
            .iter()
            .any(|c| matches!(c, LedgerCommand::Open(i) if i.id == id))
        {
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
                    alert_subject(alert),
                    now_ms,
                )
            }));
        }
    }

    // Only incidents that may still owe a message can be ongoing: the closed ones, however
    // many the ledger keeps, are not looked at.
    let ongoing: Vec<&Incident> = ledger
        .active_incidents()
        .filter(|i| i.is_ongoing())
        .collect();
    let moved_on = alerts_moved_on(
        ongoing
            .iter()
            .filter(|i| i.kind == IncidentKind::AlertFiring && !firing.contains_key(&i.id))
            .copied(),
        &observed.alerts,
    );
    let mut resolved = BTreeSet::new();
    for incident in ongoing {
        let over = match incident.kind {
            IncidentKind::HostDown => observed
                .hosts
                .iter()
                .filter(|h| h.name == incident.subject)
                .any(|h| host_is_back(incident, h)),
            IncidentKind::AlertFiring => moved_on.contains(incident.id.as_str()),
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

/// The id of the incident a failed `host` opens, or `None` when its outage already has one
/// still going on. The first outage of a generation is `down/<host>/<generation>`; a death of
/// the same generation after its earlier incident ended (it was seen talking again: a
/// declaration its declarers never told it of) is a new outage, `down/<host>/<generation>/<n>`
/// with `n` counting that generation's incidents, so that leaders sharing a ledger name it
/// alike; never while this view or the ledger knows a newer generation (a stale entry).
fn new_outage_id(observed: &Observed, ledger: &Ledger, host: &HostView) -> Option<String> {
    let first = host_down_id(&host.name, host.generation);
    if ledger.incident(&first).is_none() {
        return Some(first);
    }
    let newer_seen = observed
        .hosts
        .iter()
        .any(|h| h.name == host.name && h.generation > host.generation);
    let of_host: Vec<&Incident> = ledger
        .incidents_of_kind(IncidentKind::HostDown)
        .filter(|i| i.subject == host.name)
        .collect();
    let newer_known = of_host
        .iter()
        .any(|i| i.host_generation.unwrap_or(0) > host.generation);
    let of_generation: Vec<&&Incident> = of_host
        .iter()
        .filter(|i| i.host_generation == Some(host.generation))
        .collect();
    let ongoing = of_generation.iter().any(|i| i.is_ongoing());
    if newer_seen || newer_known || ongoing {
        return None;
    }
    (of_generation.len() + 1..)
        .map(|n| format!("{first}/{n}"))
        .find(|id| ledger.incident(id).is_none())
}

/// Whether the host of a host-down incident is back, as `host` shows it: it left on purpose, a
/// newer generation is alive, or the generation that was declared down is alive and has talked
/// since (a status sample newer than the last one the declaration knew, taken after the
/// declaration). The same generation alive without one is no evidence: a view that has not
/// seen the death yet.
fn host_is_back(incident: &Incident, host: &HostView) -> bool {
    let generation = incident.host_generation.unwrap_or(0);
    if host.status == MemberStatus::Left {
        return true;
    }
    if host.status != MemberStatus::Alive {
        return false;
    }
    if host.generation > generation {
        return true;
    }
    // Newer than what the declaration knew, and taken after it: the last sample before a death
    // a lagging view has not seen yet is older than the declaration (clocks within seconds).
    let talked_since = host.last_heard_ms.is_some_and(|now| {
        now > incident.opened_at_ms && incident.last_heard_ms.is_none_or(|then| now > then)
    });
    host.generation == generation && talked_since
}

/// Whether `incident` is about a host this view lists alive (its generation, or a newer one):
/// news of its death (a DOWN, a STILL DOWN) must not go out from here.
pub fn host_visibly_alive(incident: &Incident, observed: &Observed) -> bool {
    incident.kind == IncidentKind::HostDown
        && observed.hosts.iter().any(|h| {
            h.name == incident.subject
                && h.status == MemberStatus::Alive
                && h.generation >= incident.host_generation.unwrap_or(0)
        })
}

/// `work` without the news of hosts this view lists alive ([`host_visibly_alive`]): their
/// incidents end (or their death reaches this view) first.
pub fn without_news_of_living_hosts(
    work: Vec<Work>,
    ledger: &Ledger,
    observed: &Observed,
) -> Vec<Work> {
    work.into_iter()
        .filter(|w| {
            w.phase == Phase::Resolved
                || !ledger
                    .incident(&w.incident)
                    .is_some_and(|i| host_visibly_alive(i, observed))
        })
        .collect()
}

/// The ids of the alert incidents among `incidents` whose alert is known and no longer the
/// firing they announced: resolved, or firing anew (a later first-seen time). An alert this
/// node has not heard of is no evidence (its table may still be filling), so its incident
/// stays open. One look at each alert of the table, with no allocation per alert.
fn alerts_moved_on<'a>(
    incidents: impl Iterator<Item = &'a Incident>,
    alerts: &[Alert],
) -> BTreeSet<&'a str> {
    use std::fmt::Write;
    // `alert/<team>/<host>/<name>/` (every incident of one alert starts with it) -> incidents.
    let mut by_prefix: HashMap<&'a str, Vec<&'a Incident>> = HashMap::new();
    for incident in incidents {
        let Some((prefix, first_seen)) = incident.id.rsplit_once('/') else {
            continue;
        };
        if first_seen.chars().all(|c| c.is_ascii_digit()) {
            let prefix = &incident.id[..=prefix.len()];
            by_prefix.entry(prefix).or_default().push(incident);
        }
    }
    let mut moved_on = BTreeSet::new();
    let mut prefix = String::new();
    let mut id = String::new();
    for alert in alerts {
        if by_prefix.is_empty() {
            break;
        }
        prefix.clear();
        let _ = write!(
            prefix,
            "alert/{}/{}/{}/",
            alert.team, alert.host, alert.name
        );
        // The first alert of the table with this prefix decides, as it always did.
        let Some(incidents) = by_prefix.remove(prefix.as_str()) else {
            continue;
        };
        id.clear();
        let _ = write!(id, "{prefix}{}", alert.first_seen_ms);
        for incident in incidents {
            if alert.state != AlertState::Firing || id != incident.id {
                moved_on.insert(incident.id.as_str());
            }
        }
    }
    moved_on
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

    fn heard(mut view: HostView, at_ms: u64) -> HostView {
        view.last_heard_ms = Some(at_ms);
        view
    }

    fn observed(hosts: Vec<HostView>) -> Observed {
        Observed {
            hosts,
            alerts: vec![],
        }
    }

    #[test]
    fn the_generation_declared_down_alive_and_talking_since_is_back() {
        // A lone minority declared n2 down and died before anyone told n2: n2 never renews.
        let down = observed(vec![host("n2", 7, MemberStatus::Failed)]);
        let ledger = applied(&reconcile(&down, &Ledger::default(), 1_000));
        // A view that has not seen the death, with a later sample from before it: not back.
        let lagging = observed(vec![heard(host("n2", 7, MemberStatus::Alive), 950)]);
        assert!(reconcile(&lagging, &ledger, 5_000).is_empty());
        let talking = observed(vec![heard(host("n2", 7, MemberStatus::Alive), 4_000)]);
        assert_eq!(
            reconcile(&talking, &ledger, 5_000),
            vec![LedgerCommand::Resolve {
                incident: "down/n2/7".into(),
                at_ms: 5_000
            }]
        );
    }

    #[test]
    fn a_death_after_the_host_was_back_is_a_new_incident_not_folded_into_the_ended_one() {
        let down = observed(vec![host("n2", 7, MemberStatus::Failed)]);
        let mut ledger = applied(&reconcile(&down, &Ledger::default(), 1_000));
        assert!(reconcile(&down, &ledger, 2_000).is_empty(), "same outage");
        let talking = observed(vec![heard(host("n2", 7, MemberStatus::Alive), 4_000)]);
        for command in reconcile(&talking, &ledger, 5_000) {
            ledger.apply(&command);
        }
        let killed = observed(vec![heard(host("n2", 7, MemberStatus::Failed), 6_000)]);
        let commands = reconcile(&killed, &ledger, 9_000);
        let [LedgerCommand::Open(incident)] = commands.as_slice() else {
            panic!("{commands:?}");
        };
        assert_eq!(incident.id, "down/n2/7/2");
        assert_eq!(incident.host_generation, Some(7));
        assert_eq!(incident.last_heard_ms, Some(6_000));
        ledger.apply(&commands[0]);
        assert!(
            reconcile(&killed, &ledger, 10_000).is_empty(),
            "opened once"
        );
        // A stale entry of an old generation beside a newer one opens nothing.
        let mut renewed = applied(&reconcile(&down, &Ledger::default(), 1_000));
        renewed.apply(&LedgerCommand::Resolve {
            incident: "down/n2/7".into(),
            at_ms: 2_000,
        });
        let both = observed(vec![
            host("n2", 8, MemberStatus::Alive),
            host("n2", 7, MemberStatus::Failed),
        ]);
        assert!(reconcile(&both, &renewed, 3_000).is_empty());
    }

    #[test]
    fn no_down_goes_out_for_a_host_this_leader_sees_alive() {
        let down = observed(vec![
            host("n2", 7, MemberStatus::Failed),
            host("n3", 4, MemberStatus::Failed),
        ]);
        let ledger = applied(&reconcile(&down, &Ledger::default(), 1_000));
        let work = |id: &str, phase: Phase| Work {
            incident: id.into(),
            phase,
            channel: "email".into(),
            claim: rover_election::policy::Claim::Fresh,
        };
        let due = vec![
            work("down/n2/7", Phase::Opened),
            work("down/n3/4", Phase::Opened),
            work("down/n2/7", Phase::Resolved),
        ];
        let seen = observed(vec![
            host("n2", 7, MemberStatus::Alive),
            host("n3", 4, MemberStatus::Suspect),
        ]);
        assert_eq!(
            without_news_of_living_hosts(due.clone(), &ledger, &seen),
            vec![
                work("down/n3/4", Phase::Opened),
                work("down/n2/7", Phase::Resolved)
            ]
        );
        assert_eq!(
            without_news_of_living_hosts(due.clone(), &ledger, &down),
            due
        );
    }
}
