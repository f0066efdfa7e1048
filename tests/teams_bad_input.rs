//! A border agent's link port under bad input: this test plays the other team's border with
//! the real handshake and frame encoding, then sends what a broken or hostile peer would.
//! Every refusal is counted per reason, and the link survives where that is safe.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::teams::{team, Plan};
use common::wait_for;
use rover_agent::teams::wire::{self, LinkFrame, LinkMode};
use rover_membership::sealed_stream::{self, SealedStream};
use rover_membership::Keyring;
use rover_storage::{Alert, AlertState, Severity};
use tokio::net::TcpStream;

fn alert(team: &str, host: &str, name: &str, path: &[&str]) -> Alert {
    Alert {
        team: team.into(),
        host: host.into(),
        name: name.into(),
        severity: Severity::Critical,
        summary: "from the test".into(),
        first_seen_ms: 1,
        last_change_ms: 1,
        version: 1,
        state: AlertState::Firing,
        path: path.iter().map(|h| h.to_string()).collect(),
    }
}

/// Opens a link to `addr` as `team/host` with `key`; returns the stream after the Hellos.
async fn open_as(
    addr: std::net::SocketAddr,
    key: &std::path::Path,
    team: &str,
) -> SealedStream<TcpStream> {
    let key = rover_agent::data_dir::read_key_file(key).unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut sealed = sealed_stream::connect(tcp, &Keyring::new(key))
        .await
        .unwrap();
    let hello = LinkFrame::Hello {
        protocol: wire::PROTOCOL,
        team: team.into(),
        host: "fake".into(),
        mode: LinkMode::Direct,
    };
    sealed.send(&wire::encode(&hello)).await.unwrap();
    sealed
}

#[test]
fn a_link_port_refuses_bad_frames_per_reason_and_keeps_the_link_where_that_is_safe() {
    let dir = tempfile::tempdir().unwrap();
    let plan = Plan::new(&["a", "b"], &[("a", "b", "direct")], dir.path());
    let a = team("a", 2, &plan);
    a.trust_links();
    let addr = plan.listen["a"];
    let key = plan.ends.iter().find(|e| e.0 == "b").unwrap().3.clone();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dropped = |reason: &str| {
        a.link("b")
            .map(|l| l["dropped"][reason].as_u64().unwrap_or(0))
            .unwrap_or(0)
    };

    let mut link = runtime.block_on(open_as(addr, &key, "b"));
    runtime.block_on(async {
        for frame in [
            // Opened with the key but not a frame: dropped, the stream stays in step.
            b"\xff\xff\xff garbage".to_vec(),
            // A third team's alert on a direct link: the privacy rule.
            wire::encode(&LinkFrame::UpdateAlert(alert(
                "c",
                "c1",
                "disk",
                &["c/gw", "b/fake"],
            ))),
            // Our own team's alert coming back from another team.
            wire::encode(&LinkFrame::UpdateAlert(alert(
                "a",
                "a1",
                "disk",
                &["b/fake"],
            ))),
            // An alert of b's whose path names another team.
            wire::encode(&LinkFrame::UpdateAlert(alert(
                "b",
                "b1",
                "load",
                &["c/gw", "b/fake"],
            ))),
            // b's own alert, as it should be: taken.
            wire::encode(&LinkFrame::UpdateAlert(alert(
                "b",
                "b1",
                "disk",
                &["b/fake"],
            ))),
        ] {
            link.send(&frame).await.unwrap();
        }
    });
    assert!(
        wait_for(Duration::from_secs(20), || a
            .all_show(("b", "b1", "disk"), "firing"))
        .is_some(),
        "the good alert after the bad ones was not taken: {:?}",
        a.links()
    );
    assert_eq!(dropped("undecodable"), 1, "{:?}", a.links());
    assert_eq!(dropped("not_peer_team"), 1);
    assert_eq!(dropped("own_team"), 1);
    assert_eq!(dropped("not_from_peer"), 1);
    assert!(!a.any_shows_team("c"));
    assert_eq!(a.alerts_on(1).len(), 1, "{:?}", a.alerts_on(1));

    // A frame longer than a link takes ends the connection (counted); the link comes back.
    runtime.block_on(async {
        let _ = link.send(&vec![0u8; wire::MAX_FRAME_BYTES + 1]).await;
    });
    assert!(
        wait_for(Duration::from_secs(10), || dropped("oversized") == 1).is_some(),
        "{:?}",
        a.links()
    );

    // A peer claiming our own team is refused before anything else.
    let _same = runtime.block_on(open_as(addr, &key, "a"));
    assert!(
        wait_for(Duration::from_secs(10), || dropped("same_team") == 1).is_some(),
        "{:?}",
        a.links()
    );
    // Bytes without the handshake: nothing is read past the preamble.
    runtime.block_on(async {
        use tokio::io::AsyncWriteExt;
        let mut raw = TcpStream::connect(addr).await.unwrap();
        let _ = raw.write_all(&[0x55; 4096]).await;
    });
    // The agents are still fine and still show b's alert.
    assert!(a.all_show(("b", "b1", "disk"), "firing"));
}
