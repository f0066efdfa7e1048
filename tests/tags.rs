//! Tags: given with `--tag` or `[node] tags`, gossiped with the member, shown and filtered by
//! `members` on another agent, returned by `/v1/members`; a bad tag is a usage error.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{binary, wait_for, Cluster};

#[test]
fn tags_given_on_one_agent_are_shown_and_filtered_on_another() {
    let mut cluster = Cluster::new();
    cluster.config_for = Some(Box::new(|index| match index {
        1 => "[node]\ntags = { rack = \"r1\", role = \"db\" }\n".to_owned(),
        _ => String::new(),
    }));
    let seed = cluster.add_lone_agent();
    let tagged = cluster.add_agent();
    let name = cluster.agents[tagged].name.clone();
    let seen = wait_for(Duration::from_secs(20), || {
        cluster.agents[seed]
            .members()
            .iter()
            .any(|m| m.name == name && m.tags.get("rack").map(String::as_str) == Some("r1"))
    });
    assert!(
        seen.is_some(),
        "the seed never saw the tags: {:?}",
        cluster.agents[seed].members()
    );

    let filtered = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["members", "--format", "json"];
        all.extend_from_slice(args);
        let out = cluster.agents[seed].cli(&all);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list: Vec<rover_membership::MemberInfo> = serde_json::from_slice(&out.stdout).unwrap();
        list.into_iter().map(|m| m.name).collect()
    };
    assert_eq!(filtered(&["--tag", "rack=r1"]), vec![name.clone()]);
    assert_eq!(
        filtered(&["--tag", "rack=r1", "--tag", "role=db"]),
        vec![name.clone()]
    );
    assert!(filtered(&["--tag", "rack=r1", "--tag", "role=web"]).is_empty());

    let table = cluster.agents[seed].cli(&["members"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("TAGS") && text.contains("rack=r1,role=db"),
        "{text}"
    );

    let api = cluster.agents[seed].get_json("/v1/members").unwrap();
    let row = api
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["tags"]["role"], "db");
}

#[test]
fn a_bad_tag_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (tag, named) in [
        ("bad key=x", "bad key"),
        ("role=a\u{7}b", "role"),
        ("norole", "norole"),
    ] {
        let out = Command::new(binary())
            .args([
                "agent",
                "--node",
                "n1",
                "--bind",
                "127.0.0.1:0",
                "--api",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--tag", tag])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{tag:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(named), "{tag:?}: {stderr}");
    }
}

#[test]
fn tags_changed_in_the_file_reach_the_other_agents_after_a_sighup() {
    let mut cluster = Cluster::new();
    cluster.config_for = Some(Box::new(|index| match index {
        1 => "[node]\ntags = { role = \"web\" }\n".to_owned(),
        _ => String::new(),
    }));
    let seed = cluster.add_lone_agent();
    let tagged = cluster.add_agent();
    let name = cluster.agents[tagged].name.clone();
    let role_on_seed = |cluster: &Cluster| {
        cluster.agents[seed]
            .members()
            .iter()
            .find(|m| m.name == name && m.status == rover_membership::MemberStatus::Alive)
            .and_then(|m| m.tags.get("role").cloned())
    };
    assert!(wait_for(Duration::from_secs(20), || role_on_seed(&cluster)
        .as_deref()
        == Some("web"))
    .is_some());
    let file = cluster.agents[tagged].config.clone().unwrap();
    std::fs::write(&file, "[node]\ntags = { role = \"db\" }\n").unwrap();
    cluster.agents[tagged].signal("HUP");
    let changed = wait_for(Duration::from_secs(20), || {
        role_on_seed(&cluster).as_deref() == Some("db")
    });
    assert!(
        changed.is_some(),
        "the seed never saw the new tag: {:?}\n{}",
        cluster.agents[seed].members(),
        cluster.agents[tagged].log()
    );
}
