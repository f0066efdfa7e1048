//! Operator commands over seeded simulations: a node's tags changed at run time reach every
//! member; a failed member forced to leave is listed left everywhere and can come back.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use rover_membership::error::{ForceLeaveError, TagError};
use rover_membership::sim::{seed_from_env, SimNetwork};
use rover_membership::{MemberStatus, Profile, Tags};

const SECOND: Duration = Duration::from_secs(1);

fn joined_cluster(size: usize) -> SimNetwork {
    let seed = seed_from_env();
    eprintln!("simulation seed: {seed} (replay with ROVER_SIM_SEED={seed})");
    let mut sim = SimNetwork::new(seed, Profile::Lan);
    let nodes = sim.add_nodes(size);
    for id in &nodes[1..] {
        sim.join(*id, nodes[0]);
    }
    let took = sim.run_until(Duration::from_secs(120), SECOND / 10, SimNetwork::converged);
    assert!(took.is_some(), "did not converge (seed {})", sim.seed());
    sim
}

fn tags_of(sim: &SimNetwork, observer: usize, subject: usize) -> Option<Tags> {
    let name = sim.name(subject).to_owned();
    sim.members_of(observer)
        .into_iter()
        .find(|m| m.name == name)
        .map(|m| m.tags)
}

#[test]
fn changed_tags_reach_every_member_at_a_newer_generation() {
    let mut sim = joined_cluster(4);
    let before = sim.members_of(0)[0].generation;
    let tags: Tags = [("rack".to_owned(), "r7".to_owned())].into();
    sim.set_tags(0, tags.clone()).unwrap();
    let took = sim.run_until(Duration::from_secs(30), SECOND / 10, |sim| {
        (1..4).all(|o| tags_of(sim, o, 0).as_ref() == Some(&tags))
    });
    assert!(
        took.is_some(),
        "tags not seen everywhere (seed {})",
        sim.seed()
    );
    let me = &sim.members_of(0)[0];
    assert!(me.generation > before);
    assert_eq!(sim.status(1, 0), Some(MemberStatus::Alive));
}

#[test]
fn bad_tags_are_refused_and_nothing_changes() {
    let mut sim = joined_cluster(2);
    let before = sim.members_of(0)[0].generation;
    let bad: Tags = [("bad key".to_owned(), "x".to_owned())].into();
    assert_eq!(
        sim.set_tags(0, bad),
        Err(TagError::BadKey("bad key".into()))
    );
    assert_eq!(sim.members_of(0)[0].generation, before);
}

#[test]
fn a_forced_leave_marks_a_failed_member_left_everywhere_and_it_can_come_back() {
    let mut sim = joined_cluster(4);
    let name = sim.name(3).to_owned();
    assert!(matches!(
        sim.force_leave(0, &name),
        Err(ForceLeaveError::NotFailed(_, "alive"))
    ));
    assert!(matches!(
        sim.force_leave(0, "nobody"),
        Err(ForceLeaveError::Unknown(_))
    ));
    sim.kill(3);
    let failed = sim.run_until(Duration::from_secs(60), SECOND / 10, |sim| {
        (0..3).all(|o| sim.status(o, 3) == Some(MemberStatus::Failed))
    });
    assert!(failed.is_some(), "never failed (seed {})", sim.seed());
    sim.force_leave(0, &name).unwrap();
    assert_eq!(sim.status(0, 3), Some(MemberStatus::Left));
    let left = sim.run_until(Duration::from_secs(10), SECOND / 10, |sim| {
        (0..3).all(|o| sim.status(o, 3) == Some(MemberStatus::Left))
    });
    assert!(left.is_some(), "not left everywhere (seed {})", sim.seed());
    sim.restart(3);
    sim.join(3, 0);
    let back = sim.run_until(Duration::from_secs(30), SECOND / 10, |sim| {
        (0..3).all(|o| sim.status(o, 3) == Some(MemberStatus::Alive))
    });
    assert!(back.is_some(), "did not come back (seed {})", sim.seed());
}
