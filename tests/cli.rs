//! The command line's contract: exit codes, plain errors, token checks, config errors.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{binary, free_tcp_port, free_udp_port, Cluster};

#[test]
fn a_command_that_cannot_reach_the_agent_says_so_and_exits_1() {
    let nobody = free_tcp_port();
    let out = Command::new(binary())
        .args(["members", "--api", &nobody.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the agent") && err.contains(&nobody.to_string()),
        "{err}"
    );
}

#[test]
fn rover_api_picks_the_agent() {
    let nobody = free_tcp_port();
    let out = Command::new(binary())
        .arg("info")
        .env("ROVER_API", nobody.to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&nobody.to_string()));
}

#[test]
fn bad_usage_exits_2() {
    for args in [
        &["members", "--status", "zombie"][..],
        &["join"][..],
        &["no-such-command"][..],
    ] {
        let out = Command::new(binary()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn keygen_prints_one_base64_line_of_32_bytes() {
    let out = Command::new(binary()).arg("keygen").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1);
    assert_eq!(
        rover_membership::ClusterKey::from_base64(&text)
            .unwrap()
            .to_base64(),
        text.trim()
    );
}

#[test]
fn a_bad_config_value_names_the_key_and_value_and_exits_2_like_a_bad_flag_value() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rover.toml");
    std::fs::write(&config, "[gossip]\nbind = \"not-an-address\"\n").unwrap();
    let out = Command::new(binary())
        .args(["agent", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let flag = Command::new(binary())
        .args(["agent", "--node", "bad name", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(flag.status.code(), Some(2), "{flag:?}");
    assert!(
        String::from_utf8_lossy(&flag.stderr).contains("node.name"),
        "{flag:?}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("gossip.bind") && err.contains("not-an-address"),
        "{err}"
    );
}

#[test]
fn changes_without_the_token_are_refused_and_reads_are_not() {
    let cluster = Cluster::start(1);
    let agent = &cluster.agents[0];
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Command::new(binary())
        .args(["join", "127.0.0.1:9", "--api", &agent.api.to_string()])
        .arg("--data-dir")
        .arg(elsewhere.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("token"));
    assert!(agent.cli(&["members"]).status.success());
}

#[test]
fn join_through_the_cli_brings_two_lone_agents_together() {
    let mut cluster = Cluster::new();
    cluster.add_lone_agent();
    cluster.add_lone_agent();
    assert_eq!(cluster.agents[0].members().len(), 1);
    let out = cluster.agents[1].cli(&["join", &cluster.agents[0].gossip.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cluster.wait_converged(Duration::from_secs(30));
    let text = String::from_utf8_lossy(&cluster.agents[1].cli(&["members"]).stdout).into_owned();
    assert!(text.starts_with("NAME"), "{text}");
    assert!(text.contains("n1") && text.contains("alive"), "{text}");
}

#[test]
fn join_to_an_address_where_nobody_answers_fails_and_says_so() {
    let cluster = Cluster::start(1);
    let nobody = free_udp_port().to_string();
    let out = cluster.agents[0].cli(&["join", &nobody]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no member answered"), "{stderr}");
}

#[test]
fn a_generated_key_is_kept_private_in_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let api = free_tcp_port();
    let mut child = Command::new(binary())
        .args([
            "agent",
            "--node",
            "solo",
            "--bind",
            "127.0.0.1:0",
            "--api",
            &api.to_string(),
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let ready = common::wait_for(Duration::from_secs(20), || {
        dir.path().join("api-addr").exists()
    });
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    assert!(ready.is_some());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("keyring"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains("generated a new one") && log.contains("--key-file"),
        "{log}"
    );
}

#[test]
fn output_into_a_closed_pipe_ends_quietly_without_a_panic() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(binary())
        .arg("keygen")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}
