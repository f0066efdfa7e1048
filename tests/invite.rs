//! Multi-process tests of invitations with the built binary on 127.0.0.1: a fresh agent
//! started with only a token joins through another address when the inviter is gone; a
//! token with one character changed, or that is not a token, is refused with exit code 2.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::grid::{service_get, stderr};
use common::{wait_for, Cluster};

const CONVERGE: Duration = Duration::from_secs(30);

fn invite(cluster: &Cluster, agent: usize) -> String {
    let out = cluster.agents[agent].cli(&["invite", "--ttl", "1h"]);
    assert!(out.status.success(), "invite failed: {}", stderr(&out));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(token.lines().count(), 1);
    assert!(token
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
    token
}

#[test]
fn a_fresh_agent_with_only_a_token_joins_through_another_address_after_the_inviter_is_killed() {
    let mut cluster = Cluster::start(5);
    cluster.wait_converged(CONVERGE);
    let out = cluster.agents[2].cli(&["service", "set", "beacon", "127.0.0.1:7777"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let token = invite(&cluster, 0);
    cluster.agents[0].kill();
    let n6 = cluster.add_agent_with_flags(&[], &["--join-token".to_owned(), token]);
    let survivors: Vec<usize> = vec![1, 2, 3, 4, n6];
    let joined = wait_for(CONVERGE, || {
        survivors.iter().all(|i| {
            cluster.agents[*i]
                .members()
                .iter()
                .filter(|m| m.status.as_str() == "alive")
                .count()
                == 5
        })
    });
    assert!(
        joined.is_some(),
        "n6 did not join:\n{}",
        cluster.agents[n6].log()
    );
    eprintln!("joined with only a token, its inviter dead: {joined:?}");
    let key = std::fs::read_to_string(&cluster.key_file).unwrap();
    let keyring = std::fs::read_to_string(cluster.agents[n6].data_dir.join("keyring")).unwrap();
    assert_eq!(
        keyring.lines().next(),
        Some(key.trim()),
        "the cluster key is n6's primary"
    );
    assert!(wait_for(CONVERGE, || {
        service_get(&cluster.agents[n6], "beacon").as_deref() == Some("127.0.0.1:7777")
    })
    .is_some());
}

#[test]
fn a_token_with_one_character_changed_or_no_token_at_all_is_refused_with_exit_code_2() {
    let cluster = Cluster::start(1);
    let token = invite(&cluster, 0);
    let mut chars: Vec<char> = token.chars().collect();
    let middle = chars.len() / 2;
    chars[middle] = if chars[middle] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    let dir = tempfile::tempdir().unwrap();
    for bad in [tampered.as_str(), "rvi1.AAAA", "hello"] {
        let out = Command::new(common::binary())
            .args([
                "agent",
                "--node",
                "n9",
                "--bind",
                "127.0.0.1:0",
                "--api",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(dir.path().join("n9"))
            .args(["--join-token", bad])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "agent --join-token {bad}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("invitation token"),
            "{}",
            stderr(&out)
        );
        let out = cluster.agents[0].cli(&["join", bad]);
        let expected = if bad.starts_with("rvi1.") {
            Some(2)
        } else {
            Some(1)
        };
        assert_eq!(out.status.code(), expected, "join {bad}: {}", stderr(&out));
    }
    assert!(stderr(&cluster.agents[0].cli(&["join", &tampered])).contains("altered"));
}
