//! Exact tests of the fold, hold, switch-over and cut-off decisions.

use super::*;
use crate::topology::map::tests::host_on;
use crate::topology::table::TopologyTable;

const GROUP_WAIT: u64 = 5_000;

fn switch(id: &str, label: &str, hosts: &[&str]) -> SwitchHosts {
    SwitchHosts {
        id: id.into(),
        label: label.into(),
        hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
    }
}

fn down(host: &str, generation: u64, opened_at_ms: u64) -> DownIncident {
    DownIncident {
        id: format!("down/{host}/{generation}"),
        host: host.into(),
        generation,
        opened_at_ms,
        announced: false,
        open: true,
    }
}

fn members(list: &[(&str, Seen)]) -> Vec<(String, Seen)> {
    list.iter().map(|(n, s)| ((*n).to_owned(), *s)).collect()
}

fn plan(
    members: &[(String, Seen)],
    switches: &[SwitchHosts],
    down: &[DownIncident],
    now_ms: u64,
) -> FoldPlan {
    plan_folds(&FoldView {
        members,
        switches,
        down,
        now_ms,
        group_wait_ms: GROUP_WAIT,
    })
}

#[test]
fn every_host_of_a_switch_down_within_group_wait_folds_into_one_switch_incident() {
    use Seen::*;
    let m = members(&[
        ("h1", Failed),
        ("h2", Failed),
        ("h3", Failed),
        ("h4", Alive),
    ]);
    let switches = [
        switch("sw-a-id", "sw-a", &["h1", "h2", "h3"]),
        switch("sw-b-id", "sw-b", &["h4"]),
    ];
    let downs = [
        down("h1", 7, 10_000),
        down("h2", 9, 12_000),
        down("h3", 8, 14_500),
    ];
    let p = plan(&m, &switches, &downs, 15_000);
    assert_eq!(
        p,
        FoldPlan {
            folds: vec![SwitchFold {
                incident: "switch/sw-a-id/9".into(),
                switch_id: "sw-a-id".into(),
                label: "sw-a".into(),
                hosts: vec!["h1".into(), "h2".into(), "h3".into()],
                host_incidents: vec!["down/h1/7".into(), "down/h2/9".into(), "down/h3/8".into()],
                opened_at_ms: 10_000,
            }],
            hold: BTreeSet::new(),
        }
    );
}

#[test]
fn a_two_host_switch_where_one_host_dies_is_a_plain_down() {
    use Seen::*;
    let m = members(&[("h1", Alive), ("h2", Failed)]);
    let switches = [switch("a", "sw-a", &["h1", "h2"])];
    let p = plan(&m, &switches, &[down("h2", 1, 1_000)], 2_000);
    assert_eq!(
        p,
        FoldPlan::default(),
        "the survivor still hears the switch"
    );
}

#[test]
fn downs_that_follow_each_other_within_group_wait_fold_even_if_the_first_and_last_do_not() {
    use Seen::*;
    let m = members(&[
        ("h1", Failed),
        ("h2", Failed),
        ("h3", Failed),
        ("h4", Alive),
    ]);
    let switches = [switch("a", "sw-a", &["h1", "h2", "h3"])];
    let downs = [
        down("h1", 1, 1_000),
        down("h2", 1, 5_000),
        down("h3", 1, 9_000),
    ];
    assert_eq!(plan(&m, &switches, &downs, 9_000).folds.len(), 1);
}

#[test]
fn downs_further_apart_than_group_wait_do_not_fold() {
    use Seen::*;
    let m = members(&[("h1", Failed), ("h2", Failed), ("h3", Alive)]);
    let switches = [switch("a", "sw-a", &["h1", "h2"])];
    let downs = [down("h1", 1, 1_000), down("h2", 1, 1_000 + GROUP_WAIT + 1)];
    assert_eq!(plan(&m, &switches, &downs, 9_000), FoldPlan::default());
}

#[test]
fn without_a_live_host_elsewhere_nothing_folds() {
    use Seen::*;
    // The leader itself sits behind the switch: it is alive, so not every host went down.
    let m = members(&[("h1", Alive), ("h2", Failed), ("h3", Failed)]);
    let switches = [switch("a", "sw-a", &["h1", "h2", "h3"])];
    let downs = [down("h2", 1, 1_000), down("h3", 1, 1_000)];
    assert_eq!(plan(&m, &switches, &downs, 2_000), FoldPlan::default());
    // Every member behind the switch, all down but for nobody: there is no one to tell.
    let m = members(&[("h2", Failed), ("h3", Failed)]);
    let switches = [switch("a", "sw-a", &["h2", "h3"])];
    assert_eq!(plan(&m, &switches, &downs, 2_000), FoldPlan::default());
}

#[test]
fn a_leader_that_hears_no_switch_counts_as_elsewhere() {
    use Seen::*;
    let m = members(&[("me", Alive), ("h2", Failed), ("h3", Failed)]);
    let switches = [switch("a", "sw-a", &["h2", "h3"])];
    let downs = [down("h2", 1, 1_000), down("h3", 2, 1_500)];
    let p = plan(&m, &switches, &downs, 2_000);
    assert_eq!(p.folds.len(), 1);
    assert_eq!(p.folds[0].incident, "switch/a/2");
}

#[test]
fn downs_wait_while_the_rest_of_their_switch_is_suspect_but_not_forever() {
    use Seen::*;
    let m = members(&[("h1", Failed), ("h2", Suspect), ("h3", Alive)]);
    let switches = [switch("a", "sw-a", &["h1", "h2"])];
    let downs = [down("h1", 1, 1_000)];
    let held = plan(&m, &switches, &downs, 1_000 + GROUP_WAIT - 1);
    assert_eq!(held.hold, BTreeSet::from(["down/h1/1".to_owned()]));
    assert!(held.folds.is_empty());
    let released = plan(&m, &switches, &downs, 1_000 + GROUP_WAIT);
    assert_eq!(released, FoldPlan::default());
    // With the rest alive there is nothing to wait for.
    let m = members(&[("h1", Failed), ("h2", Alive), ("h3", Alive)]);
    assert_eq!(plan(&m, &switches, &downs, 2_000), FoldPlan::default());
}

#[test]
fn a_host_announced_down_earlier_is_no_longer_carried_by_its_switch() {
    use Seen::*;
    let m = members(&[
        ("h1", Failed),
        ("h2", Failed),
        ("h3", Failed),
        ("h4", Alive),
    ]);
    let switches = [switch("a", "sw-a", &["h1", "h2", "h3"])];
    let mut old = down("h3", 1, 100);
    old.announced = true;
    let downs = [old, down("h1", 4, 90_000), down("h2", 4, 90_500)];
    let p = plan(&m, &switches, &downs, 91_000);
    assert_eq!(p.folds.len(), 1);
    assert_eq!(p.folds[0].hosts, vec!["h1", "h2"]);
}

#[test]
fn one_agent_alone_and_two_agents_on_two_switches_never_fold() {
    use Seen::*;
    let alone = members(&[("h1", Alive)]);
    assert_eq!(
        plan(&alone, &[switch("a", "sw-a", &["h1"])], &[], 1_000),
        FoldPlan::default()
    );
    let two = members(&[("h1", Alive), ("h2", Failed)]);
    let switches = [switch("a", "sw-a", &["h1"]), switch("b", "sw-b", &["h2"])];
    assert_eq!(
        plan(&two, &switches, &[down("h2", 1, 1_000)], 9_000),
        FoldPlan::default(),
        "a switch with one host is that host"
    );
}

#[test]
fn a_switch_is_over_when_its_hosts_are_back_or_some_are_and_group_wait_passed() {
    let back = |at| FoldedHost {
        resolved_at_ms: Some(at),
    };
    let still = FoldedHost {
        resolved_at_ms: None,
    };
    assert!(!switch_over(&[still, still], 10_000, GROUP_WAIT));
    assert!(switch_over(&[back(1_000), back(2_000)], 2_000, GROUP_WAIT));
    assert!(!switch_over(
        &[back(1_000), still],
        1_000 + GROUP_WAIT - 1,
        GROUP_WAIT
    ));
    assert!(switch_over(
        &[back(1_000), still],
        1_000 + GROUP_WAIT,
        GROUP_WAIT
    ));
}

fn lab() -> TopologyMap {
    TopologyMap::build(&TopologyTable::from_records([
        host_on("n1", Some(("sw-a", "p1")), 1),
        host_on("n2", Some(("sw-a", "p2")), 1),
        host_on("n3", Some(("sw-a", "p3")), 1),
        host_on("n4", Some(("sw-b", "p1")), 1),
        host_on("n5", Some(("sw-b", "p2")), 1),
        host_on("n6", None, 2),
        host_on("n7", None, 2),
    ]))
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

#[test]
fn a_leader_that_lost_the_rest_of_its_own_switch_is_told_it_is_most_likely_cut_off() {
    let lines = loss_explanation("n1", &set(&["n2", "n3", "n4", "n5"]), &lab());
    assert_eq!(
        lines,
        vec![
            "n1 still hears switch sw-a but reaches none of n2, n3 behind it: most likely n1's \
             own link or port is cut off, not 2 hosts down",
            "lost switch sw-b and every host behind it (n4, n5)",
        ]
    );
}

#[test]
fn without_switches_the_lost_subnet_is_named() {
    let lines = loss_explanation("n6", &set(&["n7"]), &lab());
    assert_eq!(
        lines,
        vec!["n6 reaches no other host of its subnet 10.0.2.0/24 (n7): most likely n6 is cut off"]
    );
    assert!(loss_explanation("n9", &set(&["n8"]), &lab()).is_empty());
}

#[test]
fn a_fallback_leader_losing_most_members_holds_its_downs_until_the_rest_is_declared_or_the_wait_ends(
) {
    use Seen::{Alive, Failed};
    // n1 cut off: n3, n5 and n2 declared down, n4 not yet.
    let seen = members(&[
        ("n1", Alive),
        ("n2", Failed),
        ("n3", Failed),
        ("n4", Alive),
        ("n5", Failed),
    ]);
    let downs = [
        down("n3", 0, 10_000),
        down("n5", 0, 12_000),
        down("n2", 0, 15_000),
    ];
    assert_eq!(
        cut_off_hold(
            &seen,
            &BTreeMap::new(),
            &BTreeSet::new(),
            &downs,
            "n1",
            20_000,
            GROUP_WAIT
        ),
        set(&["down/n2/0", "down/n3/0", "down/n5/0"])
    );
    // The wait ends 30 s after the first of them.
    assert!(cut_off_hold(
        &seen,
        &BTreeMap::new(),
        &BTreeSet::new(),
        &downs,
        "n1",
        10_000 + CUT_OFF_WAIT_MS,
        GROUP_WAIT
    )
    .is_empty());
    // n4 declared down too: nothing left to wait for...
    let all_down = members(&[
        ("n1", Alive),
        ("n2", Failed),
        ("n3", Failed),
        ("n4", Failed),
        ("n5", Failed),
    ]);
    let mut downs4 = downs.to_vec();
    downs4.push(down("n4", 0, 28_000));
    // ... though the last to fall still has its group_wait, to go out with the others.
    assert_eq!(
        cut_off_hold(
            &all_down,
            &BTreeMap::new(),
            &BTreeSet::new(),
            &downs4,
            "n1",
            29_000,
            GROUP_WAIT
        )
        .len(),
        4
    );
    assert!(cut_off_hold(
        &all_down,
        &BTreeMap::new(),
        &BTreeSet::new(),
        &downs4,
        "n1",
        28_000 + GROUP_WAIT,
        GROUP_WAIT
    )
    .is_empty());
}

#[test]
fn downs_wait_while_the_suspects_make_the_loss_a_majority() {
    use Seen::{Alive, Failed, Suspect};
    let seen = members(&[
        ("n1", Alive),
        ("n2", Suspect),
        ("n3", Alive),
        ("n4", Failed),
        ("n5", Failed),
    ]);
    let downs = [down("n4", 0, 10_000), down("n5", 0, 11_000)];
    assert_eq!(
        cut_off_hold(
            &seen,
            &BTreeMap::new(),
            &BTreeSet::new(),
            &downs,
            "n1",
            16_000,
            GROUP_WAIT
        ),
        set(&["down/n4/0", "down/n5/0"])
    );
}

#[test]
fn losing_half_or_less_of_the_members_holds_nothing() {
    use Seen::{Alive, Failed};
    let seen = members(&[
        ("n1", Alive),
        ("n2", Failed),
        ("n3", Failed),
        ("n4", Alive),
        ("n5", Alive),
        ("n6", Alive),
    ]);
    let downs = [down("n2", 0, 10_000), down("n3", 0, 11_000)];
    assert!(cut_off_hold(
        &seen,
        &BTreeMap::new(),
        &BTreeSet::new(),
        &downs,
        "n1",
        12_000,
        GROUP_WAIT
    )
    .is_empty());
}

#[test]
fn downs_already_announced_are_never_held() {
    use Seen::{Alive, Failed};
    let seen = members(&[
        ("n1", Alive),
        ("n2", Failed),
        ("n3", Failed),
        ("n4", Alive),
        ("n5", Failed),
    ]);
    let mut announced = down("n2", 0, 10_000);
    announced.announced = true;
    let downs = [announced, down("n3", 0, 11_000), down("n5", 0, 12_000)];
    assert_eq!(
        cut_off_hold(
            &seen,
            &BTreeMap::new(),
            &BTreeSet::new(),
            &downs,
            "n1",
            13_000,
            GROUP_WAIT
        ),
        set(&["down/n3/0", "down/n5/0"])
    );
}

#[test]
fn a_side_that_only_lost_whole_other_switches_holds_nothing() {
    use Seen::{Alive, Failed};
    let seen = members(&[
        ("n1", Failed),
        ("n2", Failed),
        ("n3", Failed),
        ("n4", Failed),
        ("n5", Alive),
        ("n6", Alive),
    ]);
    let downs = [down("n1", 0, 10_000), down("n2", 0, 10_000)];
    let behind = set(&["n1", "n2", "n3", "n4"]);
    assert!(cut_off_hold(
        &seen,
        &BTreeMap::new(),
        &behind,
        &downs,
        "n5",
        11_000,
        GROUP_WAIT
    )
    .is_empty());
}

#[test]
fn a_minority_side_whose_other_member_keeps_talking_is_not_held() {
    use Seen::{Alive, Failed};
    // {n1, n4} | {n2, n3, n5}: n4's status samples keep coming after the first down.
    let seen = members(&[
        ("n1", Alive),
        ("n2", Failed),
        ("n3", Failed),
        ("n4", Alive),
        ("n5", Failed),
    ]);
    let downs = [
        down("n2", 0, 10_000),
        down("n3", 0, 10_500),
        down("n5", 0, 11_000),
    ];
    let quiet = BTreeMap::from([("n4".to_owned(), 9_000)]);
    assert_eq!(
        cut_off_hold(
            &seen,
            &quiet,
            &BTreeSet::new(),
            &downs,
            "n1",
            14_000,
            GROUP_WAIT
        )
        .len(),
        3
    );
    let talking = BTreeMap::from([("n4".to_owned(), 12_000)]);
    assert!(cut_off_hold(
        &seen,
        &talking,
        &BTreeSet::new(),
        &downs,
        "n1",
        16_000,
        GROUP_WAIT
    )
    .is_empty());
}
