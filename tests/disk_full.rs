//! A full disk is loud and recoverable: with the data dir on a small tmpfs that the test
//! fills, `alert raise` answers 503 with the reason (never 200), `info` and `/metrics` say
//! storage is failing, and once space is freed writes succeed again without a restart, and
//! survive one. Needs root (to mount the tmpfs); skipped, saying so, otherwise.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{wait_for, Cluster};

/// A tmpfs mounted by this test, unmounted on drop.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    fn mount(path: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(path).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| SmallDisk {
            path: path.to_owned(),
        })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `alert raise NAME` through the API: the HTTP status line's code and the body.
fn raise(agent: &common::Agent, name: &str) -> (u16, String) {
    let summary = format!("disk test {}", "x".repeat(280));
    let out = agent.cli(&[
        "alert",
        "raise",
        name,
        "--severity",
        "warning",
        "--summary",
        &summary,
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (if out.status.success() { 200 } else { 503 }, text)
}

fn storage_state(agent: &common::Agent) -> Option<String> {
    agent.info()?["storage"]["state"]
        .as_str()
        .map(str::to_owned)
}

#[test]
fn a_full_disk_refuses_raises_with_503_and_writes_succeed_again_once_space_is_back() {
    if !is_root() {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let mut cluster = Cluster::new();
    let disk_dir = cluster.dir.path().join("small");
    let Some(disk) = SmallDisk::mount(&disk_dir, "8m") else {
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    };
    // The agent's data dir lives on the small disk.
    let data_dir = disk.path.join("n1");
    std::fs::create_dir_all(&data_dir).unwrap();
    std::os::unix::fs::symlink(&data_dir, cluster.dir.path().join("n1")).unwrap();
    cluster.add_lone_agent();
    let agent = &cluster.agents[0];
    assert_eq!(raise(agent, "before").0, 200);
    assert_eq!(storage_state(agent).as_deref(), Some("ok"));

    // Fill the disk.
    let filler = disk.path.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k"])
        .arg(format!("of={}", filler.display()))
        .output();
    // sled writes into space its file already holds until it needs a new segment.
    let mut answer = (0, String::new());
    let mut tries = 0;
    let refused = wait_for(Duration::from_secs(90), || {
        tries += 1;
        answer = raise(agent, &format!("while-full-{tries}"));
        answer.0 != 200
    });
    assert!(refused.is_some(), "a raise on a full disk answered 200");
    assert!(
        answer.1.contains("storage is failing"),
        "the refusal does not say why: {}",
        answer.1
    );
    wait_for(Duration::from_secs(10), || {
        storage_state(agent).as_deref() == Some("failing")
    })
    .unwrap_or_else(|| panic!("info does not say storage fails: {:?}", agent.info()));
    let metrics = agent.http_get("/metrics").unwrap();
    assert!(metrics.contains("rover_storage_failing 1"), "{metrics}");
    assert!(
        agent.log().contains("storage is failing"),
        "no log line: {}",
        agent.log()
    );

    // Space is back: the agent recovers by itself, and writes succeed and are kept.
    std::fs::remove_file(&filler).unwrap();
    let recovered = wait_for(Duration::from_secs(30), || {
        storage_state(agent).as_deref() == Some("ok")
    });
    assert!(
        recovered.is_some(),
        "storage did not recover: {}",
        agent.log()
    );
    eprintln!("recovered {recovered:?} after space was freed");
    for n in 0..5 {
        let (code, text) = raise(agent, &format!("after-{n}"));
        assert_eq!(code, 200, "{text}");
    }
    assert!(agent
        .http_get("/metrics")
        .unwrap()
        .contains("rover_storage_failing 0"));
    cluster.agents[0].restart();
    let names: Vec<String> = cluster.agents[0]
        .alerts()
        .iter()
        .filter_map(|a| a["name"].as_str().map(str::to_owned))
        .collect();
    for n in 0..5 {
        assert!(
            names.contains(&format!("after-{n}")),
            "after-{n} lost across a restart: {names:?}"
        );
    }
    assert!(
        !names.contains(&format!("while-full-{tries}")),
        "the refused alert was kept: {names:?}"
    );
    drop(cluster);
    drop(disk);
}
