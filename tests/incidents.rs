//! One message per incident, counted at a real SMTP server (aiosmtpd) that every agent of a
//! real cluster on loopback is configured to send to: a host killed, restarted, stopped
//! briefly; two hosts killed at once; the leader killed; the leader killed in the middle of
//! sending; a check failing and clearing; the lone survivor of three.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::leaders::{agreed_raft_leader, logs};
use common::smtp::{ReceivedMail, SmtpSink};
use common::{wait_for, Cluster};

const DELIVERY: Duration = Duration::from_secs(60);
/// Long enough after the last expected message for a duplicate to show: more than group_wait
/// plus a leader's tick, and longer than a new leader takes to appear.
const QUIET: Duration = Duration::from_secs(10);

fn email_config(smtp: &SmtpSink) -> String {
    format!(
        "[[notify.email]]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\ntls = \"none\"\n\
         from = \"rover@example.org\"\nto = [\"ops@example.org\"]\n",
        smtp.port()
    )
}

fn cluster_sending_to(smtp: &SmtpSink, size: usize, extra: &str) -> Cluster {
    let mut cluster = Cluster::new();
    let config = format!("{}{extra}", email_config(smtp));
    cluster.config_for = Some(Box::new(move |_| config.clone()));
    for _ in 0..size {
        cluster.add_agent();
    }
    cluster.wait_converged(Duration::from_secs(30));
    cluster
}

/// The Raft leader `observers` agree on, among all the cluster's agents as voters (a dead
/// voter stays one for `voter_reap_after`).
fn wait_leader(cluster: &Cluster, observers: &[usize]) -> String {
    let voters = cluster.agents.len().min(5);
    let mut leader = None;
    wait_for(Duration::from_secs(30), || {
        leader = agreed_raft_leader(cluster, observers, voters);
        leader.is_some()
    })
    .unwrap_or_else(|| panic!("no agreed leader:\n{}", logs(cluster)));
    leader.unwrap()
}

fn index_of(cluster: &Cluster, name: &str) -> usize {
    cluster.agents.iter().position(|a| a.name == name).unwrap()
}

/// Waits for exactly `count` messages: fails if fewer arrive in time or more arrive soon after.
fn expect_messages(smtp: &SmtpSink, cluster: &Cluster, count: usize) -> Vec<ReceivedMail> {
    if wait_for(DELIVERY, || smtp.messages().len() >= count).is_none() {
        panic!(
            "expected {count} messages, got {:?}\n{}",
            subjects(&smtp.messages()),
            logs(cluster)
        );
    }
    let more = wait_for(QUIET, || smtp.messages().len() > count);
    let messages = smtp.messages();
    assert!(
        more.is_none(),
        "expected exactly {count} messages, got {:?}",
        subjects(&messages)
    );
    messages
}

fn subjects(messages: &[ReceivedMail]) -> Vec<String> {
    messages.iter().map(|m| m.subject.clone()).collect()
}

#[test]
fn a_killed_host_gives_one_message_its_return_one_more_and_a_short_stop_none() {
    let smtp = SmtpSink::start();
    let mut cluster = cluster_sending_to(&smtp, 3, "");
    let leader = wait_leader(&cluster, &[0, 1, 2]);
    let victim = (0..3).find(|i| cluster.agents[*i].name != leader).unwrap();
    let victim_name = cluster.agents[victim].name.clone();

    cluster.agents[victim].kill();
    let messages = expect_messages(&smtp, &cluster, 1);
    let down = &messages[0];
    assert_eq!(down.subject, format!("rover: DOWN {victim_name}"));
    assert_eq!(down.to, vec!["ops@example.org".to_owned()]);
    assert!(
        down.body
            .contains(&format!("DOWN {victim_name} - stopped talking at 20")),
        "{}",
        down.body
    );
    assert!(
        down.body
            .contains(&format!("Sent by {leader}, Raft leader.")),
        "{}",
        down.body
    );

    cluster.agents[victim].restart();
    let messages = expect_messages(&smtp, &cluster, 2);
    assert_eq!(messages[1].subject, format!("rover: BACK {victim_name}"));

    // Stopped for less than the suspicion time: nobody declares it failed, nothing is sent.
    let paused = (0..3)
        .find(|i| *i != victim && cluster.agents[*i].name != leader)
        .unwrap();
    cluster.agents[paused].signal("STOP");
    let declared = wait_for(Duration::from_millis(1_500), || {
        cluster.agents[victim]
            .status_of(&cluster.agents[paused].name)
            .as_deref()
            == Some("failed")
    });
    cluster.agents[paused].signal("CONT");
    assert!(declared.is_none(), "a 1.5 s stop was declared a failure");
    expect_messages(&smtp, &cluster, 2);
}

#[test]
fn two_hosts_killed_at_once_give_one_message_naming_both() {
    let smtp = SmtpSink::start();
    let mut cluster = cluster_sending_to(&smtp, 5, "");
    let leader = wait_leader(&cluster, &[0, 1, 2, 3, 4]);
    let victims: Vec<usize> = (0..5)
        .filter(|i| cluster.agents[*i].name != leader)
        .take(2)
        .collect();
    let mut names: Vec<String> = victims
        .iter()
        .map(|i| cluster.agents[*i].name.clone())
        .collect();
    names.sort();
    for i in &victims {
        cluster.agents[*i].kill();
    }
    let messages = expect_messages(&smtp, &cluster, 1);
    assert_eq!(
        messages[0].subject,
        format!("rover: DOWN {}", names.join(", "))
    );
    for name in &names {
        assert!(messages[0]
            .body
            .contains(&format!("DOWN {name} - stopped talking at")));
    }
}

#[test]
fn a_killed_leader_is_reported_once_by_the_new_leader() {
    let smtp = SmtpSink::start();
    let mut cluster = cluster_sending_to(&smtp, 3, "");
    let old = wait_leader(&cluster, &[0, 1, 2]);
    let old_index = index_of(&cluster, &old);
    cluster.agents[old_index].kill();
    let survivors = cluster.others(old_index);
    let messages = expect_messages(&smtp, &cluster, 1);
    let new = wait_leader(&cluster, &survivors);
    assert_ne!(new, old);
    assert_eq!(messages[0].subject, format!("rover: DOWN {old}"));
    assert!(
        messages[0]
            .body
            .contains(&format!("Sent by {new}, Raft leader.")),
        "{}",
        messages[0].body
    );
}

/// An exec notifier that hangs (bounded) on its first call and records every call's incidents.
fn hanging_exec_config(dir: &Path) -> String {
    let script = dir.join("page.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             if [ ! -e {dir}/hung ]; then touch {dir}/hung; echo \"hung $ROVER_INCIDENTS\" >> {dir}/calls; sleep 20; exit 0; fi\n\
             echo \"delivered $ROVER_INCIDENTS\" >> {dir}/calls\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    format!(
        "[[notify.exec]]\ncommand = [\"{}\"]\ntimeout = \"30s\"\n",
        script.display()
    )
}

/// Whether `agent`'s copy of the ledger records the email about `incident_prefix` as sent.
fn email_recorded_sent(agent: &common::Agent, incident_prefix: &str) -> bool {
    agent.get_json("/v1/incidents").is_some_and(|view| {
        view["notifications"].as_array().is_some_and(|records| {
            records.iter().any(|r| {
                r["channel"] == "email"
                    && r["incident"]
                        .as_str()
                        .is_some_and(|i| i.starts_with(incident_prefix))
                    && r["outcome"].get("Sent").is_some()
            })
        })
    })
}

#[test]
fn a_leader_killed_while_sending_leaves_the_rest_to_the_next_leader_and_nothing_twice() {
    let smtp = SmtpSink::start();
    let calls_dir = tempfile::tempdir().unwrap();
    let mut cluster = cluster_sending_to(&smtp, 5, &hanging_exec_config(calls_dir.path()));
    let all: Vec<usize> = (0..5).collect();
    let leader = wait_leader(&cluster, &all);
    let leader_index = index_of(&cluster, &leader);
    let victim = (0..5).find(|i| *i != leader_index).unwrap();
    let victim_name = cluster.agents[victim].name.clone();
    let victim_incident = format!("down/{victim_name}/");
    let calls = || std::fs::read_to_string(calls_dir.path().join("calls")).unwrap_or_default();
    let survivors: Vec<usize> = (0..5)
        .filter(|i| *i != victim && *i != leader_index)
        .collect();

    cluster.agents[victim].kill();
    // The leader recorded its intent on both channels; the email went out and its outcome is
    // committed (every survivor's copy says so); the exec hangs.
    wait_for(DELIVERY, || {
        calls().contains("hung")
            && survivors
                .iter()
                .all(|i| email_recorded_sent(&cluster.agents[*i], &victim_incident))
    })
    .unwrap_or_else(|| panic!("the leader never sent: {}\n{}", calls(), logs(&cluster)));
    cluster.agents[leader_index].kill();

    // The next leader finishes the exec the old one left pending, and sends nothing twice.
    let delivered = || {
        calls()
            .lines()
            .filter(|l| l.starts_with("delivered") && l.contains(&victim_incident))
            .count()
    };
    wait_for(DELIVERY, || delivered() >= 1).unwrap_or_else(|| {
        panic!(
            "the next leader did not finish the exec: {}\n{}",
            calls(),
            logs(&cluster)
        )
    });
    let new_leader = wait_leader(&cluster, &survivors);
    assert_ne!(new_leader, leader);
    let about_victim = || {
        smtp.messages()
            .iter()
            .filter(|m| m.body.contains(&format!("DOWN {victim_name} -")))
            .count()
    };
    assert!(
        wait_for(QUIET, || about_victim() > 1 || delivered() > 1).is_none(),
        "sent twice: {:?}\n{}",
        subjects(&smtp.messages()),
        calls()
    );
    assert_eq!(about_victim(), 1);
    assert_eq!(delivered(), 1, "{}", calls());
}

#[test]
fn a_failing_check_gives_one_message_and_one_when_it_clears() {
    let smtp = SmtpSink::start();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let check = format!(
        "[[check]]\nname = \"svc-port\"\ncommand = [\"/usr/lib/nagios/plugins/check_tcp\", \"-H\", \"127.0.0.1\", \"-p\", \"{port}\"]\ninterval = \"1s\"\n"
    );
    let mut cluster = Cluster::new();
    let email = email_config(&smtp);
    cluster.config_for = Some(Box::new(move |i| {
        if i == 1 {
            format!("{email}{check}")
        } else {
            email.clone()
        }
    }));
    for _ in 0..3 {
        cluster.add_agent();
    }
    cluster.wait_converged(Duration::from_secs(30));
    wait_leader(&cluster, &[0, 1, 2]);

    drop(listener);
    let messages = expect_messages(&smtp, &cluster, 1);
    assert!(
        messages[0]
            .subject
            .starts_with("rover: FIRING svc-port on n2"),
        "{}",
        messages[0].subject
    );
    assert!(
        messages[0].body.contains("[critical]"),
        "{}",
        messages[0].body
    );

    let _listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let messages = expect_messages(&smtp, &cluster, 2);
    assert!(
        messages[1]
            .subject
            .starts_with("rover: RESOLVED svc-port on n2"),
        "{}",
        messages[1].subject
    );
}

#[test]
fn the_lone_survivor_of_three_says_it_has_no_quorum_and_whom_it_cannot_see() {
    let smtp = SmtpSink::start();
    let mut cluster = cluster_sending_to(&smtp, 3, "[election]\nfallback_after = \"5s\"\n");
    wait_leader(&cluster, &[0, 1, 2]);
    cluster.agents[1].kill();
    cluster.agents[2].kill();
    let messages = expect_messages(&smtp, &cluster, 1);
    // Two of three gone at once: from where n1 stands it is most likely cut off itself.
    assert_eq!(
        messages[0].subject,
        "rover: CUT OFF n1 cannot reach n2, n3 (no quorum)"
    );
    assert!(
        messages[0].body.contains("\nDOWN n2 - stopped talking at "),
        "{}",
        messages[0].body
    );
    assert!(
        messages[0].body.contains(
            "Sent by n1, fallback leader: no Raft quorum in this partition; members not seen: n2, n3."
        ),
        "{}",
        messages[0].body
    );
}
