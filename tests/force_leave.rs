//! `force-leave NAME`: a failed member is marked left on every agent; an alive member and an
//! unknown name are refused.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{wait_for, Cluster};

#[test]
fn a_killed_member_forced_to_leave_is_left_on_every_agent_and_an_alive_one_is_refused() {
    let mut cluster = Cluster::start(4);
    cluster.wait_converged(Duration::from_secs(30));
    let victim = cluster.agents[3].name.clone();

    let alive = cluster.agents[0].cli(&["force-leave", &victim]);
    assert_eq!(alive.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&alive.stderr).contains("alive"));
    let unknown = cluster.agents[0].cli(&["force-leave", "nobody"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("nobody"));

    cluster.agents[3].kill();
    let failed = wait_for(Duration::from_secs(30), || {
        (0..3).all(|i| cluster.agents[i].status_of(&victim).as_deref() == Some("failed"))
    });
    assert!(failed.is_some(), "the victim never failed everywhere");

    let out = cluster.agents[1].cli(&["force-leave", &victim]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = wait_for(Duration::from_secs(10), || {
        (0..3).all(|i| cluster.agents[i].status_of(&victim).as_deref() == Some("left"))
    });
    assert!(left.is_some(), "not left on every agent");

    cluster.agents[3].restart();
    let back = wait_for(Duration::from_secs(30), || {
        (0..3).all(|i| cluster.agents[i].status_of(&victim).as_deref() == Some("alive"))
    });
    assert!(
        back.is_some(),
        "the host did not rejoin after its force-leave"
    );
}
