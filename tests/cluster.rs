//! Multi-process tests of the built `rover-agent` binary on 127.0.0.1: joining, failure,
//! suspicion and refutation, leave, restart, wrong key, and garbage datagrams.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::{wait_for, Cluster};
use rand::{Rng, RngExt, SeedableRng};

const CONVERGE: Duration = Duration::from_secs(30);

#[test]
fn five_agents_joined_through_one_seed_all_list_five_alive() {
    let cluster = Cluster::start(5);
    let took = cluster.wait_converged(CONVERGE);
    eprintln!("5 agents converged {took:?} after the last start");
    for agent in &cluster.agents {
        let members = agent.members();
        assert_eq!(members.len(), 5, "{} lists {members:?}", agent.name);
        assert!(members.iter().all(|m| m.team == "default"));
    }
}

#[test]
fn kill_9_of_one_agent_makes_every_other_list_it_failed() {
    let mut cluster = Cluster::start(5);
    cluster.wait_converged(CONVERGE);
    let victim = 2;
    let name = cluster.agents[victim].name.clone();
    let killed_at = Instant::now();
    cluster.agents[victim].kill();
    let others = cluster.others(victim);
    let took = wait_for(Duration::from_secs(30), || {
        others
            .iter()
            .all(|i| cluster.agents[*i].status_of(&name).as_deref() == Some("failed"))
    });
    assert!(
        took.is_some(),
        "not every survivor lists {name} failed: {:?}",
        cluster.agents[0].members()
    );
    eprintln!(
        "kill -9 to failed on every survivor: {:?}",
        killed_at.elapsed()
    );
    assert!(
        cluster.all_list_alive(&others, 4),
        "survivors should still see each other alive"
    );
}

#[test]
fn an_agent_stopped_longer_than_suspicion_is_failed_then_refutes_and_is_alive_again() {
    let cluster = Cluster::start(5);
    cluster.wait_converged(CONVERGE);
    let victim = 3;
    let name = cluster.agents[victim].name.clone();
    let others = cluster.others(victim);
    let before = cluster.agents[0]
        .members()
        .into_iter()
        .find(|m| m.name == name)
        .unwrap()
        .generation;
    cluster.agents[victim].signal("STOP");
    let failed = wait_for(Duration::from_secs(30), || {
        others
            .iter()
            .all(|i| cluster.agents[*i].status_of(&name).as_deref() == Some("failed"))
    });
    cluster.agents[victim].signal("CONT");
    assert!(failed.is_some(), "stopped {name} never failed everywhere");
    let back = wait_for(Duration::from_secs(60), || {
        cluster.all_list_alive(&(0..5).collect::<Vec<_>>(), 5)
    });
    assert!(
        back.is_some(),
        "{name} not alive everywhere after SIGCONT:\n{}",
        cluster.agents[victim].log()
    );
    let after = cluster.agents[0]
        .members()
        .into_iter()
        .find(|m| m.name == name)
        .unwrap()
        .generation;
    assert!(
        after > before,
        "{name} should have rejoined with a newer generation"
    );
    eprintln!("failed after {failed:?} of SIGSTOP; alive everywhere {back:?} after SIGCONT");
}

#[test]
fn leave_makes_the_others_list_it_left_and_the_agent_exits() {
    let mut cluster = Cluster::start(4);
    cluster.wait_converged(CONVERGE);
    let out = cluster.agents[1].cli(&["leave"]);
    assert!(
        out.status.success(),
        "leave failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        cluster.agents[1].wait_exit(Duration::from_secs(10)),
        "agent did not exit after leave"
    );
    let name = cluster.agents[1].name.clone();
    let others = cluster.others(1);
    let left = wait_for(Duration::from_secs(20), || {
        others
            .iter()
            .all(|i| cluster.agents[*i].status_of(&name).as_deref() == Some("left"))
    });
    assert!(
        left.is_some(),
        "others do not list {name} left: {:?}",
        cluster.agents[0].members()
    );
}

#[test]
fn sigterm_leaves_gracefully() {
    let mut cluster = Cluster::start(3);
    cluster.wait_converged(CONVERGE);
    cluster.agents[2].signal("TERM");
    assert!(
        cluster.agents[2].wait_exit(Duration::from_secs(10)),
        "agent did not exit on SIGTERM"
    );
    let name = cluster.agents[2].name.clone();
    let left = wait_for(Duration::from_secs(20), || {
        cluster.agents[0].status_of(&name).as_deref() == Some("left")
    });
    assert!(
        left.is_some(),
        "SIGTERM was not a graceful leave: {:?}",
        cluster.agents[0].members()
    );
}

#[test]
fn a_restarted_agent_with_the_same_data_dir_and_no_join_is_back_in_the_list() {
    let mut cluster = Cluster::start(4);
    cluster.wait_converged(CONVERGE);
    let name = cluster.agents[3].name.clone();
    cluster.agents[3].kill();
    let failed = wait_for(Duration::from_secs(30), || {
        cluster.agents[0].status_of(&name).as_deref() == Some("failed")
    });
    assert!(failed.is_some());
    cluster.agents[3].restart();
    let back = wait_for(Duration::from_secs(30), || {
        cluster.all_list_alive(&[0, 1, 2, 3], 4)
    });
    assert!(
        back.is_some(),
        "restarted {name} not back:\n{}",
        cluster.agents[3].log()
    );
    eprintln!("restarted agent back everywhere after {back:?}");
}

#[test]
fn an_agent_with_another_key_never_appears_and_the_others_count_dropped_packets() {
    let mut cluster = Cluster::start(3);
    cluster.wait_converged(CONVERGE);
    let other_key = cluster.dir.path().join("other.key");
    common::write_new_key(&other_key);
    let intruder = cluster.add_agent_with_key(&other_key);
    let dropped = |i: usize| {
        cluster.agents[i]
            .info()
            .and_then(|info| info["counters"]["dropped_unsealed"].as_u64())
            .unwrap_or(0)
    };
    let seen_drops = wait_for(Duration::from_secs(20), || dropped(0) > 0);
    assert!(
        seen_drops.is_some(),
        "the seed never counted a dropped packet"
    );
    // Keep watching through a few re-announcements: the intruder must never be listed.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        for i in 0..3 {
            assert!(
                cluster.agents[i].status_of("n4").is_none(),
                "n4 appeared at n{}",
                i + 1
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(
        cluster.agents[intruder].members().len(),
        1,
        "the intruder should only know itself"
    );
    assert!(cluster.all_list_alive(&[0, 1, 2], 3));
}

#[test]
fn thousands_of_random_datagrams_crash_nothing_and_change_no_member_state() {
    let cluster = Cluster::start(3);
    cluster.wait_converged(CONVERGE);
    let before: Vec<_> = (0..3).map(|i| cluster.agents[i].members()).collect();
    let target = cluster.agents[0].gossip;
    let key_id = cluster.agents[0].info().unwrap()["keys"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    let key_id: Vec<u8> = (0..4)
        .map(|i| u8::from_str_radix(&key_id[i * 2..i * 2 + 2], 16).unwrap())
        .collect();
    let seed: u64 = rand::rng().next_u64();
    eprintln!("datagram seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let counters = |i: usize| {
        cluster.agents[i]
            .info()
            .map(|info| info["counters"].clone())
    };
    let start = counters(0).unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sent = 0u64;
    for n in 0..3000 {
        if Instant::now() > deadline {
            break;
        }
        // Mostly small datagrams, some up to the UDP maximum; a third look like our envelope
        // (its version byte and the right key id) so that they reach the decryption step.
        let len = if n % 10 == 0 {
            rng.random_range(0..=65_507)
        } else {
            rng.random_range(0..=1500)
        };
        let mut datagram = vec![0u8; len];
        rng.fill_bytes(&mut datagram);
        if n % 3 == 0 && len >= 5 {
            datagram[0] = rover_membership::envelope::ENVELOPE_VERSION;
            datagram[1..5].copy_from_slice(&key_id);
        }
        if socket.send_to(&datagram, target).is_ok() {
            sent += 1;
        }
        // Pace the flood so the kernel's receive buffer, not the agent, decides little.
        if n % 10 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let delta = |end: &serde_json::Value, key: &str| {
        end[key].as_u64().unwrap() - start[key].as_u64().unwrap()
    };
    let settled = wait_for(Duration::from_secs(10), || {
        counters(0).is_some_and(|end| delta(&end, "dropped_unsealed") >= sent / 2)
    });
    let end = counters(0).expect("the agent stopped answering after the datagrams");
    assert!(settled.is_some(), "sent {sent}, counters {end}");
    // Every datagram that arrived was either dropped and counted or ordinary gossip.
    let received = delta(&end, "packets_in");
    let dropped = delta(&end, "dropped_unsealed");
    let gossip = received - dropped;
    assert!(
        gossip < 500,
        "sent {sent}, received {received}, dropped {dropped}: {gossip} unexplained"
    );
    eprintln!("sent {sent} random datagrams; {received} arrived, {dropped} dropped unopened");
    let after: Vec<_> = (0..3).map(|i| cluster.agents[i].members()).collect();
    for (b, a) in before.iter().zip(after.iter()) {
        let key = |m: &rover_membership::MemberInfo| {
            (m.name.clone(), m.status, m.generation, m.incarnation)
        };
        assert_eq!(
            b.iter().map(key).collect::<Vec<_>>(),
            a.iter().map(key).collect::<Vec<_>>()
        );
    }
}

#[test]
fn garbage_on_the_cluster_tcp_port_is_counted_and_harms_nothing() {
    use std::io::Write;
    let cluster = Cluster::start(2);
    cluster.wait_converged(CONVERGE);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for n in 0..20 {
        let mut stream = std::net::TcpStream::connect(cluster.agents[0].gossip).unwrap();
        // Some claim an absurd frame length, some a plausible one followed by noise.
        let mut bytes = vec![0u8; 64 + n * 50];
        rng.fill_bytes(&mut bytes);
        if n % 2 == 0 {
            bytes[..4].copy_from_slice(&(40u32 + n as u32).to_be_bytes());
        }
        let _ = stream.write_all(&bytes);
    }
    let rejected = wait_for(Duration::from_secs(10), || {
        cluster.agents[0]
            .info()
            .and_then(|i| i["peer_rejected"].as_u64())
            .is_some_and(|r| r >= 20)
    });
    assert!(rejected.is_some(), "info: {:?}", cluster.agents[0].info());
    assert!(cluster.all_list_alive(&[0, 1], 2));
}
