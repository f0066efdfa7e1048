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

/// An SMTP server that accepts connections and never says a word (not even its greeting),
/// holding every connection open until it is dropped.
struct SilentSmtp {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl SilentSmtp {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) && held.len() < 256 {
                match listener.accept() {
                    Ok((connection, _)) => held.push(connection),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Self { port, stop }
    }
}

impl Drop for SilentSmtp {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// An exec channel that records, for every call, when it ran (unix ns) and its incidents.
fn timed_exec_config(dir: &Path) -> String {
    let script = dir.join("page.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$(date +%s%N) $ROVER_INCIDENTS\" >> {}/calls\n",
            dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    format!("[[notify.exec]]\ncommand = [\"{}\"]\n", script.display())
}

/// When the exec channel first ran for an incident starting with `prefix` (unix ms).
fn exec_call_at(dir: &Path, prefix: &str) -> Option<u64> {
    let calls = std::fs::read_to_string(dir.join("calls")).unwrap_or_default();
    calls.lines().find_map(|line| {
        let (at_ns, incidents) = line.split_once(' ')?;
        let ours = incidents.split(',').any(|i| i.starts_with(prefix));
        ours.then(|| at_ns.parse::<u64>().ok().map(|ns| ns / 1_000_000))
            .flatten()
    })
}

fn unix_ms_now() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    u64::try_from(since.as_millis()).unwrap()
}

/// Kills `victim` and returns when the leader first lists it as failed (unix ms).
fn kill_and_detect(cluster: &mut Cluster, leader: usize, victim: usize) -> u64 {
    let name = cluster.agents[victim].name.clone();
    cluster.agents[victim].kill();
    let mut detected = 0;
    wait_for(Duration::from_secs(30), || {
        detected = unix_ms_now();
        cluster.agents[leader].status_of(&name).as_deref() == Some("failed")
    })
    .unwrap_or_else(|| panic!("{name} was never declared failed\n{}", logs(cluster)));
    detected
}

#[test]
fn a_stuck_email_server_delays_no_exec_message_of_a_later_incident() {
    let silent = SilentSmtp::start();
    let calls = tempfile::tempdir().unwrap();
    let config = format!(
        "[notify]\ngroup_wait = \"5s\"\n\n[[notify.email]]\nsmtp_host = \"127.0.0.1\"\n\
         smtp_port = {}\ntls = \"none\"\nfrom = \"rover@example.org\"\nto = [\"ops@example.org\"]\n\n{}",
        silent.port,
        timed_exec_config(calls.path())
    );
    let mut cluster = Cluster::new();
    cluster.config_for = Some(Box::new(move |_| config.clone()));
    for _ in 0..5 {
        cluster.add_agent();
    }
    cluster.wait_converged(Duration::from_secs(30));
    let all: Vec<usize> = (0..5).collect();
    let leader = index_of(&cluster, &wait_leader(&cluster, &all));
    let victims: Vec<usize> = (0..5).filter(|i| *i != leader).take(2).collect();
    let budget_ms = 5_000 + 2_000;

    let mut latencies = Vec::new();
    for (n, victim) in victims.into_iter().enumerate() {
        if n > 0 {
            // The second incident comes 15 s after the first, while the email of the first
            // still hangs (three attempts of 10 s, 5 and 10 s apart).
            std::thread::sleep(Duration::from_secs(15));
        }
        let prefix = format!("down/{}/", cluster.agents[victim].name);
        let detected = kill_and_detect(&mut cluster, leader, victim);
        let mut arrived = None;
        wait_for(DELIVERY, || {
            arrived = exec_call_at(calls.path(), &prefix);
            arrived.is_some()
        });
        let arrived = arrived.unwrap_or_else(|| {
            panic!(
                "no exec call for {prefix}: {:?}\n{}",
                std::fs::read_to_string(calls.path().join("calls")),
                logs(&cluster)
            )
        });
        let latency = arrived.saturating_sub(detected);
        eprintln!("{prefix}: exec {latency} ms after the leader saw it failed");
        latencies.push(latency);
        assert!(
            latency <= budget_ms,
            "incident {}: the exec came {latency} ms after detection (group_wait + 2 s = {budget_ms} ms)\n{}",
            n + 1,
            logs(&cluster)
        );
    }
    eprintln!("exec latencies after detection: {latencies:?} ms");
}
