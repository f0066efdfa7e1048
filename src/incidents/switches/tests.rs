//! The switch step and the messages it leads to, tick by tick over a real ledger: reconcile,
//! the switch step, due_work, and the message text, exactly.

use super::*;
use crate::incidents::message::compose;
use crate::incidents::reconcile::{reconcile, HostView};
use crate::topology::map::tests::host_on;
use crate::topology::table::TopologyTable;
use rover_election::policy::{due_work, Claim, DueRules, SendView};

const GROUP_WAIT: u64 = 5_000;
const RULES: DueRules = DueRules {
    group_wait_ms: GROUP_WAIT,
    repeat_interval_ms: 60_000,
    orphan_after_ms: 180_000,
    retention_ms: 30 * 86_400_000,
};
/// 2025-11-21T22:18:34Z
const T0: u64 = 1_763_763_514_000;

fn host(name: &str, generation: u64, status: MemberStatus) -> HostView {
    HostView {
        name: name.into(),
        generation,
        status,
        last_heard_ms: Some(T0 - 2_000),
    }
}

/// Four hosts on sw-a, two on sw-b, all in 10.0.1.0/24.
fn lab_map() -> TopologyMap {
    TopologyMap::build(&TopologyTable::from_records([
        host_on("n1", Some(("sw-a", "p1")), 1),
        host_on("n2", Some(("sw-a", "p2")), 1),
        host_on("n3", Some(("sw-a", "p3")), 1),
        host_on("n4", Some(("sw-a", "p4")), 1),
        host_on("n5", Some(("sw-b", "p5")), 1),
        host_on("n6", Some(("sw-b", "p6")), 1),
    ]))
}

/// A leader: its ledger, and every message it sent (title, body).
struct Leader {
    me: &'static str,
    mode: LeaderMode,
    ledger: Ledger,
    sent: Vec<(String, String)>,
}

impl Leader {
    fn new(me: &'static str, mode: LeaderMode) -> Self {
        Self {
            me,
            mode,
            ledger: Ledger::default(),
            sent: Vec::new(),
        }
    }

    /// One engine tick at `now` seeing `hosts`.
    fn tick(&mut self, hosts: &[HostView], map: &TopologyMap, now: u64) {
        let observed = Observed {
            hosts: hosts.to_vec(),
            alerts: vec![],
        };
        let changes = reconcile(&observed, &self.ledger, now);
        for c in &changes {
            self.ledger.apply(c);
        }
        let step = switch_step(
            &self.ledger,
            &observed,
            &map.switches(),
            self.me,
            self.mode,
            now,
            GROUP_WAIT,
        );
        for c in &step.commands {
            self.ledger.apply(c);
        }
        let alive = |n: &str| observed.may_be_alive(n);
        let channels = ["email".to_owned()];
        let view = SendView {
            me: self.me,
            idle: &channels,
            busy: &[],
            is_alive: &alive,
        };
        let work = due_work(&self.ledger, &view, now, &RULES);
        let work = keep_sendable(work, &self.ledger, &step.hold);
        if work.is_empty() {
            return;
        }
        let sender = Sender {
            node: self.me.into(),
            mode: self.mode,
            unseen: observed.unseen(),
            context: message_context(&self.ledger, &observed, map, &work, self.me),
        };
        let items: Vec<(Incident, Phase)> = work
            .iter()
            .map(|w| (self.ledger.incident(&w.incident).unwrap().clone(), w.phase))
            .collect();
        let refs: Vec<(&Incident, Phase)> = items.iter().map(|(i, p)| (i, *p)).collect();
        let message = compose(&refs, &sender);
        self.sent.push((message.title, message.body));
        for w in &work {
            assert_eq!(w.claim, Claim::Fresh);
            for c in [
                LedgerCommand::Intend {
                    record: Notification {
                        incident: w.incident.clone(),
                        phase: w.phase,
                        channel: "email".into(),
                        by_node: self.me.into(),
                        mode: self.mode,
                        intent_at_ms: now,
                        outcome: Outcome::Pending,
                    },
                },
                LedgerCommand::Complete {
                    incident: w.incident.clone(),
                    phase: w.phase,
                    channel: "email".into(),
                    outcome: Outcome::Sent {
                        at_ms: now,
                        reference: None,
                    },
                },
            ] {
                assert_eq!(
                    self.ledger.apply(&c),
                    rover_election::ledger::Applied::Changed
                );
            }
        }
    }

    fn titles(&self) -> Vec<&str> {
        self.sent.iter().map(|(t, _)| t.as_str()).collect()
    }
}

fn views(list: &[(&str, u64, MemberStatus)]) -> Vec<HostView> {
    list.iter().map(|(n, g, s)| host(n, *g, *s)).collect()
}

#[test]
fn a_dead_switch_is_one_message_naming_it_and_its_hosts_and_one_when_they_are_back() {
    use MemberStatus::*;
    let map = lab_map();
    let mut leader = Leader::new("n5", LeaderMode::Raft);
    let gen = 10;
    // n1 and n2 are declared down first, n3 and n4 suspect: nothing goes out yet.
    let going = views(&[
        ("n1", gen, Failed),
        ("n2", gen, Failed),
        ("n3", gen, Suspect),
        ("n4", gen, Suspect),
        ("n5", gen, Alive),
        ("n6", gen, Alive),
    ]);
    leader.tick(&going, &map, T0);
    leader.tick(&going, &map, T0 + 2_000);
    assert!(leader.sent.is_empty(), "{:?}", leader.titles());
    let down = views(&[
        ("n1", gen, Failed),
        ("n2", gen, Failed),
        ("n3", gen, Failed),
        ("n4", gen, Failed),
        ("n5", gen, Alive),
        ("n6", gen, Alive),
    ]);
    leader.tick(&down, &map, T0 + 3_000);
    leader.tick(&down, &map, T0 + GROUP_WAIT);
    assert_eq!(
        leader.titles(),
        vec!["rover: SWITCH sw-a unreachable (n1, n2, n3, n4)"]
    );
    let body = &leader.sent[0].1;
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(
        lines[0],
        "SWITCH sw-a unreachable (n1, n2, n3, n4) - since 2025-11-21T22:18:34Z \
         (incident switch/02:00:00:00:00:a/10)"
    );
    assert_eq!(lines[1], "  n1 stopped talking at 2025-11-21T22:18:32Z");
    assert_eq!(lines[4], "  n4 stopped talking at 2025-11-21T22:18:32Z");
    assert_eq!(*lines.last().unwrap(), "Sent by n5, Raft leader.");
    let switch = leader
        .ledger
        .incident("switch/02:00:00:00:00:a/10")
        .unwrap();
    assert_eq!(switch.kind, IncidentKind::SwitchUnreachable);
    assert_eq!(switch.state, IncidentState::Notified);
    for h in ["n1", "n2", "n3", "n4"] {
        let id = format!("down/{h}/{gen}");
        assert_eq!(folded_into(&leader.ledger, &id), Some(switch.id.as_str()));
    }
    // Reminders of the folded hosts are never sent; the switch's is.
    leader.tick(&down, &map, T0 + GROUP_WAIT + 60_000);
    assert_eq!(leader.sent.len(), 2);
    assert_eq!(
        leader.sent[1].0,
        "rover: SWITCH sw-a still unreachable (n1, n2, n3, n4)"
    );
    // They come back (new generations): one message.
    let back = views(&[
        ("n1", gen + 1, Alive),
        ("n2", gen + 1, Alive),
        ("n3", gen + 1, Alive),
        ("n4", gen + 1, Alive),
        ("n5", gen, Alive),
        ("n6", gen, Alive),
    ]);
    let later = T0 + 200_000;
    leader.tick(&back, &map, later);
    leader.tick(&back, &map, later + GROUP_WAIT);
    assert_eq!(leader.sent.len(), 3, "{:?}", leader.titles());
    assert_eq!(
        leader.sent[2].0,
        "rover: SWITCH sw-a reachable again (n1, n2, n3, n4)"
    );
    assert!(leader.sent[2]
        .1
        .contains("  n3 stopped talking at 2025-11-21T22:18:32Z; back"));
    let closed = leader
        .ledger
        .incidents()
        .all(|i| i.state == IncidentState::Closed);
    assert!(
        closed,
        "{:#?}",
        leader.ledger.incidents().collect::<Vec<_>>()
    );
}

#[test]
fn one_host_of_a_two_host_switch_dying_is_a_plain_down() {
    use MemberStatus::*;
    let map = TopologyMap::build(&TopologyTable::from_records([
        host_on("n1", Some(("sw-a", "p1")), 1),
        host_on("n2", Some(("sw-a", "p2")), 1),
    ]));
    let mut leader = Leader::new("n1", LeaderMode::Fallback);
    let hosts = views(&[("n1", 1, Alive), ("n2", 1, Failed)]);
    leader.tick(&hosts, &map, T0);
    leader.tick(&hosts, &map, T0 + GROUP_WAIT);
    assert_eq!(
        leader.titles(),
        vec!["rover: DOWN n2"],
        "1 of 2 is not more than half"
    );
}

#[test]
fn the_isolated_side_of_a_1_4_split_says_it_is_cut_off_and_the_four_name_it_down() {
    use MemberStatus::*;
    let map = TopologyMap::build(&TopologyTable::from_records([
        host_on("n1", Some(("sw-a", "p1")), 1),
        host_on("n2", Some(("sw-a", "p2")), 1),
        host_on("n3", Some(("sw-a", "p3")), 1),
        host_on("n4", Some(("sw-a", "p4")), 1),
        host_on("n5", Some(("sw-a", "p5")), 1),
    ]));
    let mut alone = Leader::new("n1", LeaderMode::Fallback);
    let seen_alone = views(&[
        ("n1", 1, Alive),
        ("n2", 1, Failed),
        ("n3", 1, Failed),
        ("n4", 1, Failed),
        ("n5", 1, Failed),
    ]);
    alone.tick(&seen_alone, &map, T0);
    alone.tick(&seen_alone, &map, T0 + GROUP_WAIT);
    assert_eq!(
        alone.titles(),
        vec!["rover: CUT OFF n1 cannot reach n2, n3, n4, n5 (no quorum)"]
    );
    let body = &alone.sent[0].1;
    assert!(body.starts_with(
        "n1 lost 4 of the 5 members at once and has no Raft quorum: most likely it is cut off, \
         not they down.\nn1 still hears switch sw-a but reaches none of n2, n3, n4, n5 behind \
         it: most likely n1's own link or port is cut off, not 4 hosts down\n\nDOWN n2 - "
    ), "{body}");
    let mut four = Leader::new("n2", LeaderMode::Raft);
    let seen_by_four = views(&[
        ("n1", 1, Failed),
        ("n2", 1, Alive),
        ("n3", 1, Alive),
        ("n4", 1, Alive),
        ("n5", 1, Alive),
    ]);
    four.tick(&seen_by_four, &map, T0);
    four.tick(&seen_by_four, &map, T0 + GROUP_WAIT);
    assert_eq!(four.titles(), vec!["rover: DOWN n1"]);
}

#[test]
fn a_fallback_side_that_lost_a_whole_other_switch_names_the_switch_not_itself() {
    use MemberStatus::*;
    let map = lab_map();
    let mut leader = Leader::new("n5", LeaderMode::Fallback);
    let hosts = views(&[
        ("n1", 3, Failed),
        ("n2", 3, Failed),
        ("n3", 3, Failed),
        ("n4", 3, Failed),
        ("n5", 3, Alive),
        ("n6", 3, Alive),
    ]);
    leader.tick(&hosts, &map, T0);
    leader.tick(&hosts, &map, T0 + GROUP_WAIT);
    assert_eq!(
        leader.titles(),
        vec!["rover: SWITCH sw-a unreachable (n1, n2, n3, n4)"]
    );
    assert!(leader.sent[0]
        .1
        .ends_with("Sent by n5, fallback leader: no Raft quorum in this partition; members not seen: n1, n2, n3, n4."));
}

#[test]
fn a_lone_agent_with_no_switch_sends_nothing_and_two_on_two_switches_send_a_plain_down() {
    use MemberStatus::*;
    let alone = TopologyMap::build(&TopologyTable::from_records([host_on("n1", None, 1)]));
    let mut leader = Leader::new("n1", LeaderMode::Raft);
    leader.tick(&views(&[("n1", 1, Alive)]), &alone, T0);
    leader.tick(&views(&[("n1", 1, Alive)]), &alone, T0 + GROUP_WAIT);
    assert!(leader.sent.is_empty());
    let two = TopologyMap::build(&TopologyTable::from_records([
        host_on("n1", Some(("sw-a", "p1")), 1),
        host_on("n2", Some(("sw-b", "p1")), 1),
    ]));
    let mut leader = Leader::new("n1", LeaderMode::Fallback);
    let hosts = views(&[("n1", 1, Alive), ("n2", 1, Failed)]);
    leader.tick(&hosts, &two, T0);
    leader.tick(&hosts, &two, T0 + GROUP_WAIT);
    assert_eq!(leader.titles(), vec!["rover: DOWN n2"]);
}

#[test]
fn a_switch_whose_hosts_come_back_but_one_is_over_after_group_wait_naming_the_one_still_down() {
    use MemberStatus::*;
    let map = lab_map();
    let mut leader = Leader::new("n5", LeaderMode::Raft);
    let down = views(&[
        ("n1", 1, Failed),
        ("n2", 1, Failed),
        ("n3", 1, Failed),
        ("n4", 1, Failed),
        ("n5", 1, Alive),
        ("n6", 1, Alive),
    ]);
    leader.tick(&down, &map, T0);
    leader.tick(&down, &map, T0 + GROUP_WAIT);
    let mostly = views(&[
        ("n1", 2, Alive),
        ("n2", 2, Alive),
        ("n3", 2, Alive),
        ("n4", 1, Failed),
        ("n5", 1, Alive),
        ("n6", 1, Alive),
    ]);
    let later = T0 + 30_000;
    leader.tick(&mostly, &map, later);
    assert_eq!(leader.sent.len(), 1, "not yet: n4 may still come");
    leader.tick(&mostly, &map, later + GROUP_WAIT);
    assert_eq!(
        leader.sent[1].0,
        "rover: SWITCH sw-a reachable again (n1, n2, n3; n4 still down)"
    );
    assert!(leader.sent[1]
        .1
        .contains("  n4 stopped talking at 2025-11-21T22:18:32Z; still down"));
}

#[test]
fn a_cut_off_node_losing_a_switch_first_and_its_neighbours_later_sends_one_cut_off() {
    use MemberStatus::*;
    // n1 on sw-a is cut off: sw-b's two hosts fall first, its own neighbours later (a cut-off
    // node's Lifeguard probes slowly).
    let map = lab_map();
    let mut alone = Leader::new("n1", LeaderMode::Fallback);
    let first = views(&[
        ("n1", 1, Alive),
        ("n2", 1, Suspect),
        ("n3", 1, Suspect),
        ("n4", 1, Alive),
        ("n5", 1, Failed),
        ("n6", 1, Failed),
    ]);
    alone.tick(&first, &map, T0);
    alone.tick(&first, &map, T0 + GROUP_WAIT);
    assert!(alone.titles().is_empty(), "{:?}", alone.titles());
    let later = views(&[
        ("n1", 1, Alive),
        ("n2", 1, Failed),
        ("n3", 1, Failed),
        ("n4", 1, Suspect),
        ("n5", 1, Failed),
        ("n6", 1, Failed),
    ]);
    alone.tick(&later, &map, T0 + 8_000);
    alone.tick(&later, &map, T0 + 8_000 + GROUP_WAIT);
    assert!(alone.titles().is_empty(), "{:?}", alone.titles());
    let all = views(&[
        ("n1", 1, Alive),
        ("n2", 1, Failed),
        ("n3", 1, Failed),
        ("n4", 1, Failed),
        ("n5", 1, Failed),
        ("n6", 1, Failed),
    ]);
    alone.tick(&all, &map, T0 + 20_000);
    alone.tick(&all, &map, T0 + 20_000 + GROUP_WAIT);
    alone.tick(&all, &map, T0 + 40_000);
    assert_eq!(
        alone.titles(),
        vec!["rover: CUT OFF n1 cannot reach n2, n3, n4, n5, n6 (no quorum)"]
    );
}
