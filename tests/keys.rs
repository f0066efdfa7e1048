//! Multi-process tests of cluster-wide key rotation with the built binary on 127.0.0.1:
//! install, use and remove acknowledged by every alive member; an agent restarted with its
//! original command line (a key file holding the removed key) rejoins, where Serf's stays
//! alone; a member away during install and use comes back and is brought up to date; one
//! holding only a removed key stays out and `keys list` names it; the primary key cannot be
//! removed.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::grid::{cli_json, read_key, stderr};
use common::{wait_for, Agent, Cluster};
use serde_json::Value;

const CONVERGE: Duration = Duration::from_secs(30);
const REJOIN: Duration = Duration::from_secs(30);

fn keygen() -> String {
    let out = std::process::Command::new(common::binary())
        .arg("keygen")
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Runs `keys VERB KEY` on `agent`; asserts it succeeded and `acked` members acknowledged.
fn step(agent: &Agent, verb: &str, key: &str, acked: u64) -> Value {
    let (out, report) = cli_json(agent, &["keys", verb, key]);
    assert!(
        out.status.success(),
        "keys {verb} failed: {}\n{report}",
        stderr(&out)
    );
    assert_eq!(report["acknowledged"], acked, "{report}");
    assert_eq!(report["reachable"], acked, "{report}");
    report
}

fn keys_list(agent: &Agent) -> Value {
    let (out, report) = cli_json(agent, &["keys", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    report
}

/// The `keys list` line of the key with `fingerprint`.
fn key_line(report: &Value, fingerprint: &str) -> Value {
    report["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["fingerprint"] == fingerprint)
        .cloned()
        .unwrap_or(Value::Null)
}

fn fingerprint(key: &str) -> String {
    rover_membership::ClusterKey::from_base64(key)
        .unwrap()
        .fingerprint()
}

fn alive_names(agent: &Agent) -> Vec<String> {
    agent
        .members()
        .into_iter()
        .filter(|m| m.status.as_str() == "alive")
        .map(|m| m.name)
        .collect()
}

#[test]
fn a_rotation_acknowledged_by_five_survives_a_restart_with_the_old_key_file_and_locks_out_the_old_key(
) {
    let mut cluster = Cluster::start(6);
    cluster.wait_converged(CONVERGE);
    // n6 stops before the rotation; it comes back after it with only the old key.
    cluster.agents[5].kill();
    let five: Vec<usize> = (0..5).collect();
    let failed = wait_for(CONVERGE, || {
        five.iter()
            .all(|i| cluster.agents[*i].status_of("n6").as_deref() == Some("failed"))
    });
    assert!(failed.is_some(), "n6 was never listed failed");

    let k1 = read_key(&cluster.key_file).to_base64();
    let k2 = keygen();
    let install = step(&cluster.agents[0], "install", &k2, 5);
    let n6 = install["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "n6")
        .cloned()
        .unwrap();
    assert_eq!(n6["outcome"], "not-reached", "{install}");
    step(&cluster.agents[2], "use", &k2, 5);
    step(&cluster.agents[4], "remove", &k1, 5);
    let list = keys_list(&cluster.agents[1]);
    assert_eq!(key_line(&list, &fingerprint(&k1)), Value::Null, "{list}");
    assert_eq!(
        key_line(&list, &fingerprint(&k2))["primary_of"],
        5,
        "{list}"
    );
    for agent in &cluster.agents[..5] {
        let keyring = std::fs::read_to_string(agent.data_dir.join("keyring")).unwrap();
        assert!(
            !keyring.contains(&k1),
            "{} still holds the old key",
            agent.name
        );
        assert!(keyring.contains(&k2), "{} lacks the new key", agent.name);
    }

    // Restarted with its original command line (--key-file still holds K1, --join n1).
    let before = cluster.agents[0]
        .members()
        .into_iter()
        .find(|m| m.name == "n2")
        .unwrap()
        .generation;
    cluster.agents[1].restart_as_started();
    let rejoined = wait_for(REJOIN, || {
        five.iter().all(|i| {
            cluster.agents[*i]
                .members()
                .iter()
                .filter(|m| m.status.as_str() == "alive" && m.name != "n6")
                .count()
                == 5
        }) && cluster.agents[0]
            .members()
            .iter()
            .any(|m| m.name == "n2" && m.generation > before && m.status.as_str() == "alive")
    });
    assert!(
        rejoined.is_some(),
        "n2 did not rejoin after the rotation:\n{}",
        cluster.agents[1].log()
    );
    eprintln!("restarted with the old key file, rejoined in {rejoined:?}");
    assert!(cluster.agents[1]
        .log()
        .contains("a cluster-wide rotation removed"));

    // n6 holds only the removed key: it stays out, and keys list names it.
    cluster.agents[5].restart_as_started();
    let got_in = wait_for(Duration::from_secs(12), || {
        alive_names(&cluster.agents[5]).len() > 1
    });
    assert!(
        got_in.is_none(),
        "n6 got in with a removed key: {:?}",
        alive_names(&cluster.agents[5])
    );
    assert!(cluster.agents[..5]
        .iter()
        .all(|a| a.status_of("n6").as_deref() != Some("alive")));
    let list = keys_list(&cluster.agents[0]);
    let missing = key_line(&list, &fingerprint(&k2))["missing"].to_string();
    assert!(missing.contains("n6 (not reached"), "{list}");
    let text = cluster.agents[0].cli(&["keys", "list"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("n6 (not reached"));
}

#[test]
fn a_member_away_during_install_and_use_comes_back_with_the_old_key_and_is_brought_up_to_date() {
    let mut cluster = Cluster::start(5);
    cluster.wait_converged(CONVERGE);
    cluster.agents[4].kill();
    let four: Vec<usize> = (0..4).collect();
    assert!(wait_for(CONVERGE, || {
        four.iter()
            .all(|i| cluster.agents[*i].status_of("n5").as_deref() == Some("failed"))
    })
    .is_some());
    let k1 = read_key(&cluster.key_file).to_base64();
    let k2 = keygen();
    step(&cluster.agents[0], "install", &k2, 4);
    step(&cluster.agents[0], "use", &k2, 4);

    cluster.agents[4].restart_as_started();
    let caught_up = wait_for(REJOIN, || {
        cluster.all_list_alive(&[0, 1, 2, 3, 4], 5)
            && key_line(&keys_list(&cluster.agents[0]), &fingerprint(&k2))["primary_of"] == 5
    });
    assert!(
        caught_up.is_some(),
        "n5 was not brought up to date:\n{}",
        cluster.agents[4].log()
    );
    eprintln!("away during install and use: back and up to date in {caught_up:?}");
    assert!(cluster.agents[4].log().contains("missed a key rotation"));
    step(&cluster.agents[4], "remove", &k1, 5);
}

#[test]
fn removing_the_primary_or_using_a_key_some_member_lacks_is_refused_and_changes_nothing() {
    let cluster = Cluster::start(2);
    cluster.wait_converged(CONVERGE);
    let k1 = read_key(&cluster.key_file).to_base64();
    let out = cluster.agents[0].cli(&["keys", "remove", &k1]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("primary"), "{}", stderr(&out));
    let k3 = keygen();
    let out = cluster.agents[1].cli(&["keys", "use", &k3]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("install it first"),
        "{}",
        stderr(&out)
    );
    let out = cluster.agents[1].cli(&["keys", "install", "not-a-key"]);
    assert_eq!(out.status.code(), Some(1));
    let list = keys_list(&cluster.agents[0]);
    assert_eq!(list["keys"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(key_line(&list, &fingerprint(&k1))["held_by"], 2, "{list}");
}

#[test]
fn keys_use_is_refused_while_an_alive_member_does_not_answer_and_takes_a_fingerprint() {
    let cluster = Cluster::start(3);
    cluster.wait_converged(CONVERGE);
    let k2 = keygen();
    let out = cluster.agents[0].cli(&["keys", "install", &k2]);
    assert!(out.status.success(), "{}", stderr(&out));
    // n3 stops answering (SIGSTOP) but is still listed alive or suspect for a while.
    let stopped = cluster.agents[2].pid();
    let signal = |name: &str| {
        std::process::Command::new("kill")
            .args([name, &stopped.to_string()])
            .status()
            .unwrap()
    };
    assert!(signal("-STOP").success());
    let out = cluster.agents[0].cli(&["keys", "use", &fingerprint(&k2)]);
    assert!(signal("-CONT").success());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("did not answer"), "{}", stderr(&out));
    // Answering again, it holds the key: the fingerprint is enough.
    let used = common::wait_for(CONVERGE, || {
        cluster.agents[0]
            .cli(&["keys", "use", &fingerprint(&k2)])
            .status
            .success()
    });
    assert!(used.is_some(), "keys use by fingerprint never went through");
    let list = keys_list(&cluster.agents[1]);
    assert_eq!(
        key_line(&list, &fingerprint(&k2))["primary_of"],
        3,
        "{list}"
    );
}
