//! The figures of seed 000 played through the cores: one border agent per team, links
//! between them, alerts offered on every link as `rules` allows, received as `rules` and the
//! `rib` decide, link state flooded over transit links. No I/O: messages go through a queue.

use std::collections::{BTreeMap, VecDeque};

use rover_storage::{Alert, AlertKey, AlertState, Severity};

use super::hop::Hop;
use super::rib::{Rib, RibChange};
use super::routes::{LinkStateDb, Routes};
use super::rules::{justify, may_send, stamped};
use super::wire::{LinkMode, LinkStateAd};
use LinkMode::{Direct, Transit};

/// One team, reduced to its border agent.
struct Team {
    border: Hop,
    /// The team's own alerts (what its gossip holds).
    own: Vec<Alert>,
    rib: Rib,
    db: LinkStateDb,
    routes: Routes,
    /// The reason of every refused alert.
    refused: Vec<&'static str>,
    /// How many times each alert was received (accepted or not).
    received: BTreeMap<AlertKey, usize>,
}

struct Net {
    teams: BTreeMap<String, Team>,
    /// Each link once, its ends sorted, with the mode both ends agreed on.
    links: BTreeMap<(String, String), LinkMode>,
    seq: u64,
}

fn alert(team: &str, name: &str) -> Alert {
    Alert {
        team: team.into(),
        host: "h1".into(),
        name: name.into(),
        severity: Severity::Critical,
        summary: "down".into(),
        first_seen_ms: 1,
        last_change_ms: 1,
        version: 1,
        state: AlertState::Firing,
        path: Vec::new(),
    }
}

fn key(team: &str, name: &str) -> AlertKey {
    alert(team, name).key()
}

impl Net {
    /// Teams named by `names`, each with one alert `disk`, linked as `links` say.
    fn new(names: &[&str], links: &[(&str, &str, LinkMode)]) -> Net {
        let teams = names
            .iter()
            .map(|name| {
                let team = Team {
                    border: Hop::new(name, "gw").unwrap(),
                    own: vec![alert(name, "disk")],
                    rib: Rib::default(),
                    db: LinkStateDb::default(),
                    routes: Routes::default(),
                    refused: Vec::new(),
                    received: BTreeMap::new(),
                };
                (name.to_string(), team)
            })
            .collect();
        let mut net = Net {
            teams,
            links: BTreeMap::new(),
            seq: 0,
        };
        for (x, y, mode) in links {
            net.links.insert(ordered(x, y), *mode);
        }
        net.flood_link_state();
        net
    }

    fn peers(&self, team: &str) -> Vec<(String, LinkMode)> {
        self.links
            .iter()
            .filter_map(|((x, y), mode)| match team {
                t if t == x => Some((y.clone(), *mode)),
                t if t == y => Some((x.clone(), *mode)),
                _ => None,
            })
            .collect()
    }

    /// Every border sends a new ad of its transit links; ads flood over transit links and
    /// stop where they were seen. Then each team computes its routes.
    fn flood_link_state(&mut self) {
        self.seq += 1;
        let mut queue = VecDeque::new();
        for name in self.teams.keys() {
            let links = self
                .peers(name)
                .into_iter()
                .filter(|(_, mode)| *mode == LinkMode::Transit)
                .map(|(peer, _)| peer);
            let ad = LinkStateAd::new(&self.teams[name].border, self.seq, links);
            queue.push_back((name.clone(), ad));
        }
        while let Some((at, ad)) = queue.pop_front() {
            let team = self.teams.get_mut(&at).unwrap();
            if team.db.accept(ad.clone()) {
                for (peer, mode) in self.peers(&at) {
                    if mode == LinkMode::Transit {
                        queue.push_back((peer, ad.clone()));
                    }
                }
            }
        }
        for team in self.teams.values_mut() {
            team.routes = Routes::compute(&team.db);
        }
    }

    /// Every border offers everything it holds (own and received) on every link; what is
    /// accepted as new is offered on in turn. Returns how many alerts crossed a link.
    fn offer_everything(&mut self) -> usize {
        let mut queue = VecDeque::new();
        for name in self.teams.keys() {
            let team = &self.teams[name];
            let held: Vec<Alert> = team.own.iter().chain(team.rib.alerts()).cloned().collect();
            for alert in held {
                self.send_on(name, &alert, &mut queue);
            }
        }
        let mut crossed = 0;
        while let Some((from, to, alert)) = queue.pop_front() {
            crossed += 1;
            if let Some(accepted) = self.receive(&from, &to, alert) {
                self.send_on(&to, &accepted, &mut queue);
            }
        }
        crossed
    }

    fn send_on(&self, from: &str, alert: &Alert, queue: &mut VecDeque<(String, String, Alert)>) {
        let team = &self.teams[from];
        for (peer, mode) in self.peers(from) {
            if may_send(from, &peer, mode, alert, Some(&team.routes)) {
                queue.push_back((from.to_string(), peer, stamped(alert, &team.border)));
            }
        }
    }

    /// `to` receives `alert` from `from`; the alert to pass on if it was new or newer.
    fn receive(&mut self, from: &str, to: &str, alert: Alert) -> Option<Alert> {
        let mode = self.links[&ordered(from, to)];
        let team = self.teams.get_mut(to).unwrap();
        *team.received.entry(alert.key()).or_default() += 1;
        if let Err(refused) = justify(to, from, mode, &alert) {
            team.refused.push(refused.reason());
            return None;
        }
        match team.rib.update(from, alert.clone()) {
            RibChange::New | RibChange::Replaced => Some(alert),
            _ => None,
        }
    }

    /// The link x-y goes down: both ends drop what only it carried and tell their other
    /// links (RemoveAlert at the version held), the link state changes. Returns what the two
    /// ends lost.
    fn cut(&mut self, x: &str, y: &str) -> Vec<AlertKey> {
        self.links.remove(&ordered(x, y));
        let mut lost = Vec::new();
        for (end, other) in [(x, y), (y, x)] {
            let gone = self.teams.get_mut(end).unwrap().rib.remove_link(other);
            lost.extend(gone.iter().map(Alert::key));
            self.withdraw(end, gone);
        }
        self.flood_link_state();
        lost
    }

    /// `from` no longer holds `gone`: it sends RemoveAlert on its links, and so on.
    fn withdraw(&mut self, from: &str, gone: Vec<Alert>) {
        let mut queue: VecDeque<(String, Alert)> =
            gone.into_iter().map(|a| (from.to_string(), a)).collect();
        while let Some((from, alert)) = queue.pop_front() {
            for (peer, _) in self.peers(&from) {
                let rib = &mut self.teams.get_mut(&peer).unwrap().rib;
                if rib.remove(&from, &alert.key(), alert.version) == RibChange::Removed {
                    queue.push_back((peer, alert.clone()));
                }
            }
        }
    }

    /// A new link x-y comes up: the link state changes.
    fn link(&mut self, x: &str, y: &str, mode: LinkMode) {
        self.links.insert(ordered(x, y), mode);
        self.flood_link_state();
    }

    /// A full sync on every link, each way (as after a route change): the receiver keeps only
    /// what the sender still sends it; then what is new spreads.
    fn resync_every_link(&mut self) {
        let ends: Vec<(String, String)> = self
            .links
            .keys()
            .flat_map(|(x, y)| [(x.clone(), y.clone()), (y.clone(), x.clone())])
            .collect();
        for (from, to) in ends {
            let mut queue = VecDeque::new();
            self.teams.get_mut(&to).unwrap().rib.sync_started(&from);
            let team = &self.teams[&from];
            let held: Vec<Alert> = team.own.iter().chain(team.rib.alerts()).cloned().collect();
            for alert in held {
                self.send_on(&from, &alert, &mut queue);
            }
            for (sender, receiver, alert) in queue {
                if receiver == to {
                    self.receive(&sender, &receiver, alert);
                }
            }
            let gone = self.teams.get_mut(&to).unwrap().rib.sync_finished(&from);
            self.withdraw(&to, gone);
        }
        self.offer_everything();
    }

    fn sees(&self, team: &str) -> Vec<String> {
        self.teams[team]
            .rib
            .alerts()
            .map(|alert| alert.team.clone())
            .collect()
    }

    fn path_at(&self, team: &str, key: &AlertKey) -> Vec<String> {
        self.teams[team].rib.get(key).unwrap().path.clone()
    }
}

fn ordered(x: &str, y: &str) -> (String, String) {
    if x < y {
        (x.into(), y.into())
    } else {
        (y.into(), x.into())
    }
}

#[test]
fn figure_3_each_team_sees_the_others_directly_and_forwards_nothing() {
    for mode in [Direct, Transit] {
        let mut net = Net::new(
            &["A", "B", "C"],
            &[("A", "B", mode), ("A", "C", mode), ("B", "C", mode)],
        );
        assert_eq!(
            net.offer_everything(),
            6,
            "{mode}: each alert to each other team once"
        );
        for (team, others) in [("A", ["B", "C"]), ("B", ["A", "C"]), ("C", ["A", "B"])] {
            assert_eq!(net.sees(team), others, "{mode}");
            for other in others {
                let path = net.path_at(team, &key(other, "disk"));
                assert_eq!(path, [format!("{other}/gw")]);
            }
            assert!(net.teams[team].refused.is_empty());
        }
    }
}

#[test]
fn figure_4_a_direct_chain_keeps_each_teams_alerts_with_its_neighbours() {
    let mut net = Net::new(&["A", "B", "C"], &[("A", "B", Direct), ("B", "C", Direct)]);
    net.offer_everything();
    assert_eq!(net.sees("A"), ["B"]);
    assert_eq!(net.sees("B"), ["A", "C"]);
    assert_eq!(net.sees("C"), ["B"]);
    // B sending C's alert to A anyway (a bug or a lie) is refused by A: the privacy rule.
    let from_c = net.teams["B"].rib.get(&key("C", "disk")).unwrap().clone();
    let forged = stamped(&from_c, &net.teams["B"].border);
    assert_eq!(net.receive("B", "A", forged), None);
    assert_eq!(net.teams["A"].refused, ["not_peer_team"]);
    assert_eq!(net.sees("A"), ["B"]);
}

#[test]
fn a_transit_chain_brings_cs_alerts_to_a_through_b() {
    let mut net = Net::new(
        &["A", "B", "C"],
        &[("A", "B", Transit), ("B", "C", Transit)],
    );
    assert_eq!(net.offer_everything(), 6);
    assert_eq!(net.sees("A"), ["B", "C"]);
    assert_eq!(net.path_at("A", &key("C", "disk")), ["C/gw", "B/gw"]);
    assert_eq!(net.path_at("C", &key("A", "disk")), ["A/gw", "B/gw"]);
}

#[test]
fn a_direct_link_upstream_keeps_its_alerts_out_of_a_transit_link_downstream() {
    let mut net = Net::new(&["A", "B", "C"], &[("A", "B", Direct), ("B", "C", Transit)]);
    net.offer_everything();
    assert_eq!(net.sees("C"), ["B"], "A's alerts stay with B");
    assert_eq!(net.sees("A"), ["B"], "and C's do not reach A");
    assert_eq!(net.sees("B"), ["A", "C"]);
}

#[test]
fn figure_5_d_gets_as_alerts_once_and_a_cut_b_d_switches_them_to_c() {
    let all = &[
        ("A", "B", Transit),
        ("A", "C", Transit),
        ("B", "D", Transit),
        ("C", "D", Transit),
    ];
    let mut net = Net::new(&["A", "B", "C", "D"], all);
    // Four teams, each alert to three others once: 12 crossings, no duplicate anywhere.
    assert_eq!(net.offer_everything(), 12);
    for team in net.teams.values() {
        assert!(team.received.values().all(|times| *times == 1));
        assert_eq!(team.rib.len(), 3);
    }
    assert_eq!(net.path_at("D", &key("A", "disk")), ["A/gw", "B/gw"]);

    let gone = net.cut("B", "D");
    // What only the lost link carried is removed: at B, D's
    // alert (C's came by A, C-A-B being lower than C-D-B); at D, A's and B's.
    assert_eq!(gone, [key("D", "disk"), key("A", "disk"), key("B", "disk")]);
    assert_eq!(net.sees("D"), ["C"]);
    net.offer_everything();
    assert_eq!(net.sees("D"), ["A", "B", "C"]);
    assert_eq!(net.path_at("D", &key("A", "disk")), ["A/gw", "C/gw"]);
    assert_eq!(
        net.path_at("D", &key("B", "disk")),
        ["B/gw", "A/gw", "C/gw"]
    );
    assert_eq!(
        net.path_at("B", &key("D", "disk")),
        ["D/gw", "C/gw", "A/gw"]
    );
    for team in net.teams.values() {
        assert!(team.refused.is_empty());
        assert_eq!(team.rib.len(), 3);
    }
}

#[test]
fn the_same_alert_by_a_second_path_is_neither_inserted_again_nor_forwarded() {
    let all = &[
        ("A", "B", Transit),
        ("A", "C", Transit),
        ("B", "D", Transit),
        ("C", "D", Transit),
    ];
    let mut net = Net::new(&["A", "B", "C", "D"], all);
    net.offer_everything();
    // C sends A's alert to D too (C's routes lag behind): D keeps a second path, no more.
    let at_c = net.teams["C"].rib.get(&key("A", "disk")).unwrap().clone();
    let again = stamped(&at_c, &net.teams["C"].border);
    assert_eq!(net.receive("C", "D", again), None);
    let links: Vec<&str> = net.teams["D"]
        .rib
        .paths(&key("A", "disk"))
        .map(|(link, _)| link)
        .collect();
    assert_eq!(links, ["B", "C"]);
    assert_eq!(net.teams["D"].rib.len(), 3);
    // Offering everything again crosses links but inserts nothing anywhere.
    net.offer_everything();
    for team in net.teams.values() {
        assert_eq!(team.rib.len(), 3);
    }
    // A alert coming back round to its own team, or through a team already passed, is refused.
    let at_d = net.teams["D"].rib.get(&key("A", "disk")).unwrap().clone();
    assert_eq!(
        net.receive(
            "C",
            "A",
            stamped(
                &stamped(&at_d, &net.teams["D"].border),
                &net.teams["C"].border
            )
        ),
        None
    );
    assert_eq!(net.teams["A"].refused, ["own_team"]);
    let b_at_c = net.teams["C"].rib.get(&key("B", "disk")).unwrap().clone();
    assert_eq!(b_at_c.path, ["B/gw", "A/gw"]);
    let round = stamped(&b_at_c, &net.teams["C"].border);
    assert_eq!(net.receive("C", "A", round), None);
    assert_eq!(net.teams["A"].refused, ["own_team", "loop"]);
}

#[test]
fn a_shorter_new_link_takes_over_an_alerts_path_after_a_full_sync_of_every_link() {
    let chain = &[
        ("B", "A", Transit),
        ("A", "C", Transit),
        ("C", "D", Transit),
    ];
    let mut net = Net::new(&["A", "B", "C", "D"], chain);
    net.offer_everything();
    assert_eq!(
        net.path_at("D", &key("B", "disk")),
        ["B/gw", "A/gw", "C/gw"]
    );
    net.link("B", "D", Transit);
    net.offer_everything();
    let links = |net: &Net| -> Vec<String> {
        let rib = &net.teams["D"].rib;
        rib.paths(&key("B", "disk"))
            .map(|(link, _)| link.to_string())
            .collect()
    };
    assert_eq!(links(&net), ["B", "C"], "the new path is only added");
    net.resync_every_link();
    assert_eq!(
        links(&net),
        ["B"],
        "C no longer sends it and the sync says so"
    );
    assert_eq!(net.path_at("D", &key("B", "disk")), ["B/gw"]);
    for team in net.teams.values() {
        assert_eq!(team.rib.len(), 3);
        assert!(team.refused.is_empty());
    }
}
