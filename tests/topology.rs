//! Topology from real LLDP and CDP in network namespaces: Debian's lldpd plays the switches
//! (tests/common/switches.rs), agents run in host namespaces, and every check goes through
//! the real `topology` command. Needs root and lldpd (scripts/test.sh installs it); without
//! them each test says so loudly and passes.
//!
//! The measurement lines (`{"measure": ...}`) report times and costs; nothing here asserts a
//! speed.

#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/netns.rs"]
mod netns;
#[path = "common/switches.rs"]
mod switches;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, UNIX_EPOCH};

use common::wait_for;
use serde_json::{json, Value};
use switches::{data_subnet, hosts_behind, unswitched, Lab, Speaks, SwitchSpec};

const SW_A: SwitchSpec = SwitchSpec {
    name: "sw-a",
    speaks: Speaks::LldpAndCdp,
};
const SW_B: SwitchSpec = SwitchSpec {
    name: "sw-b",
    speaks: Speaks::Lldp,
};
const SILENT: SwitchSpec = SwitchSpec {
    name: "sw-silent",
    speaks: Speaks::Nothing,
};

/// A lab, or `None` (after saying why) where network namespaces or lldpd are missing.
fn lab(test: &str, switches: &[SwitchSpec], host_switch: &[usize], tx_s: u32) -> Option<Lab> {
    if !switches::have_lldpd() {
        switches::skip(test, "lldpd is not installed");
        return None;
    }
    match Lab::build(&test[..4], switches, host_switch, tx_s) {
        Ok(lab) => Some(lab),
        Err(why) => {
            switches::skip(test, &format!("network namespaces unavailable ({why:?})"));
            None
        }
    }
}

fn names(lab: &Lab) -> Vec<String> {
    lab.hosts.iter().map(|h| h.name.clone()).collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(h, p)| ((*h).to_owned(), (*p).to_owned()))
        .collect()
}

/// When (unix ms) `agent`'s log first says that `host`'s `interface` hears `switch_port`.
fn logged_hears(lab: &Lab, agent: &str, host: &str, switch_port: &str) -> Option<u64> {
    let log = std::fs::read_to_string(&lab.agent(agent).log).ok()?;
    log.lines()
        .filter(|l| l.contains(&format!("host={host} ")) && l.contains(switch_port))
        .filter(|l| l.contains(": hears ") || l.contains(": now on "))
        .find_map(|l| {
            let stamp = l.split_whitespace().next()?;
            let at = humantime::parse_rfc3339(stamp).ok()?;
            u64::try_from(at.duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()
        })
}

#[test]
fn four_hosts_on_switch_a_and_two_on_switch_b_show_the_same_map_on_every_agent_in_all_three_formats(
) {
    let Some(mut lab) = lab(
        "maps_of_two_switches",
        &[SW_A, SW_B],
        &[0, 0, 0, 0, 1, 1],
        1,
    ) else {
        return;
    };
    lab.start_agents(&[("ROVER_LOG", "info,openraft=warn")], "");
    let all = names(&lab);
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    lab.wait_converged(&all, Duration::from_secs(60));
    // The switches start talking only now: the first frame is what is timed.
    lab.start_switches();
    let expect_a = pairs(&[("n1", "p1"), ("n2", "p2"), ("n3", "p3"), ("n4", "p4")]);
    let expect_b = pairs(&[("n5", "p5"), ("n6", "p6")]);
    let started = Instant::now();
    let shown = wait_for(Duration::from_secs(60), || {
        all.iter().all(|n| {
            lab.topology(n).is_some_and(|r| {
                hosts_behind(&r, "sw-a") == expect_a && hosts_behind(&r, "sw-b") == expect_b
            })
        })
    });
    if shown.is_none() {
        let seen: Vec<Value> = all
            .iter()
            .map(|n| lab.topology(n).unwrap_or_default())
            .collect();
        lab.fail(&format!("the map did not settle: {seen:#?}"));
    }
    let subnet = data_subnet(lab.x);
    for name in &all {
        let report = lab.topology(name).unwrap();
        let edges = report["map"]["edges"].as_array().unwrap();
        for switch in ["sw-a", "sw-b"] {
            let id = report["map"]["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["label"] == switch)
                .map(|n| n["id"].clone())
                .unwrap();
            assert!(
                edges
                    .iter()
                    .any(|e| e["from"] == format!("subnet:{subnet}") && e["to"] == id),
                "{name}: {subnet} -> {switch} missing"
            );
        }
        assert!(
            unswitched(&report, &subnet).is_empty(),
            "{name}: {report:#}"
        );
        let text = lab.topology_as(name, "text");
        assert!(text.starts_with(&format!("{subnet}\n")), "{name}: {text}");
        assert!(
            text.contains(&format!(
                "  switch sw-a (lldp, chassis 02:00:00:{:02x}:0a:00)\n    n1  port p1  (eth0)\n    \
                 n2  port p2  (eth0)\n    n3  port p3  (eth0)\n    n4  port p4  (eth0)\n",
                lab.x
            )),
            "{name}: {text}"
        );
        assert!(
            text.contains("    n5  port p5  (eth0)\n    n6  port p6  (eth0)\n"),
            "{name}: {text}"
        );
        let dot = lab.topology_as(name, "dot");
        assert!(dot.starts_with("digraph topology {"), "{name}: {dot}");
        for (host, port) in expect_a.iter().chain(&expect_b) {
            assert!(
                dot.contains(&format!("-> \"host:{host}\" [label=\"{port} (eth0)\"];")),
                "{name}: {dot}"
            );
        }
    }
    // sw-a speaks CDP too: its hosts hear both, and the map shows the LLDP identity.
    let own = lab.topology("n1").unwrap();
    let protocols: Vec<&str> = own["listener"]["neighbours"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["protocol"].as_str())
        .collect();
    assert!(
        protocols.contains(&"cdp") && protocols.contains(&"lldp"),
        "{own:#}"
    );

    // From each host's first frame until every agent's map shows it (from the agents' logs).
    let mut spans = BTreeMap::new();
    for (i, name) in all.iter().enumerate() {
        let report = lab.topology(name).unwrap();
        let first = report["listener"]["neighbours"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|n| n["first_heard_ms"].as_u64())
            .min()
            .unwrap();
        let switch = if i < 4 { "sw-a" } else { "sw-b" };
        let last = all
            .iter()
            .map(|agent| logged_hears(&lab, agent, name, &format!("{switch} port p{}", i + 1)))
            .collect::<Option<Vec<u64>>>()
            .map(|t| t.into_iter().max().unwrap_or(0));
        spans.insert(*name, last.map(|l| l.saturating_sub(first)));
    }
    println!(
        "{}",
        json!({"measure": "first_frame_to_every_map_ms", "agents": all.len(),
               "tx_interval_s": 1, "per_host": spans,
               "whole_map_after_switches_start_ms": started.elapsed().as_millis()})
    );
}

#[test]
fn a_port_moved_from_switch_a_to_b_changes_the_map_within_two_lldp_intervals_and_history_records_it(
) {
    const TX_S: u32 = 2;
    let Some(mut lab) = lab(
        "move_a_port",
        &[
            SW_B,
            SwitchSpec {
                name: "sw-c",
                speaks: Speaks::Lldp,
            },
        ],
        &[0, 0, 1],
        TX_S,
    ) else {
        return;
    };
    lab.start_switches();
    lab.start_agents(&[], "");
    let all = ["n1", "n2", "n3"];
    lab.wait_converged(&all, Duration::from_secs(60));
    let before = wait_for(Duration::from_secs(60), || {
        all.iter().all(|n| {
            lab.topology(n)
                .is_some_and(|r| hosts_behind(&r, "sw-b") == pairs(&[("n1", "p1"), ("n2", "p2")]))
        })
    });
    if before.is_none() {
        lab.fail("n1 and n2 never showed behind sw-b");
    }
    lab.move_port(1, 1);
    let moved_at = Instant::now();
    let own = wait_for(Duration::from_secs(u64::from(2 * TX_S)), || {
        lab.topology("n2")
            .is_some_and(|r| hosts_behind(&r, "sw-c") == pairs(&[("n2", "p2"), ("n3", "p3")]))
    });
    if own.is_none() {
        lab.fail("n2's own map did not show its move within two LLDP intervals");
    }
    let everywhere = wait_for(Duration::from_secs(30), || {
        all.iter().all(|n| {
            lab.topology(n).is_some_and(|r| {
                hosts_behind(&r, "sw-c") == pairs(&[("n2", "p2"), ("n3", "p3")])
                    && hosts_behind(&r, "sw-b") == pairs(&[("n1", "p1")])
            })
        })
    });
    if everywhere.is_none() {
        lab.fail("the move did not reach every map");
    }
    println!(
        "{}",
        json!({"measure": "port_move_to_map_ms", "tx_interval_s": TX_S,
               "own_map": own.unwrap().as_millis(), "every_map": moved_at.elapsed().as_millis()})
    );
    for name in all {
        let history = lab
            .agent(name)
            .cli_json(&["history", "--host", "n2", "--since", "10m"])
            .unwrap();
        let moves: Vec<&Value> = history["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["event"].get("switch_change"))
            .collect();
        assert!(
            moves
                .iter()
                .any(|m| m["from"] == "sw-b port p2" && m["to"] == "sw-c port p2"),
            "{name}'s history of n2: {moves:#?}"
        );
    }
}

#[test]
fn a_host_whose_switch_sends_nothing_is_listed_under_its_subnet_with_no_switch() {
    let Some(mut lab) = lab("silent_switch", &[SW_B, SILENT], &[0, 1], 1) else {
        return;
    };
    lab.start_switches();
    lab.start_agents(&[], "");
    lab.wait_converged(&["n1", "n2"], Duration::from_secs(60));
    let shown = n1_on_sw_b_and_n2_on_no_switch(&lab);
    if shown.is_none() {
        lab.fail("n2 was not listed under its subnet with no switch");
    }
    let own = lab.topology("n2").unwrap();
    assert_eq!(own["listener"]["state"], "Listening", "{own:#}");
    assert!(own["listener"]["neighbours"].as_array().unwrap().is_empty());
    for name in ["n1", "n2"] {
        let text = lab.topology_as(name, "text");
        assert!(
            text.contains("  no switch heard yet\n    n2  (eth0)\n"),
            "{name}: {text}"
        );
    }
}

/// Waits until both agents show n1 behind sw-b and n2 on the data subnet with no switch.
fn n1_on_sw_b_and_n2_on_no_switch(lab: &Lab) -> Option<Duration> {
    let subnet = data_subnet(lab.x);
    wait_for(Duration::from_secs(60), || {
        ["n1", "n2"].iter().all(|n| {
            lab.topology(n).is_some_and(|r| {
                hosts_behind(&r, "sw-b") == pairs(&[("n1", "p1")])
                    && unswitched(&r, &subnet) == vec!["n2".to_owned()]
            })
        })
    })
}

/// CPU time (user + system, in clock ticks) and the name of every thread of `pid`.
fn thread_ticks(pid: u32) -> Vec<(String, u64)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| {
            let path = t.ok()?.path();
            let comm = std::fs::read_to_string(path.join("comm")).ok()?;
            let stat = std::fs::read_to_string(path.join("stat")).ok()?;
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let ticks =
                fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
            Some((comm.trim().to_owned(), ticks))
        })
        .collect()
}

/// (listener thread ticks, whole process ticks, RSS in KiB) of `pid`.
fn costs(pid: u32) -> (u64, u64, u64) {
    let threads = thread_ticks(pid);
    let listener = threads
        .iter()
        .filter(|(n, _)| n.starts_with("lldp-"))
        .map(|(_, t)| t)
        .sum();
    let all = threads.iter().map(|(_, t)| t).sum();
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    (listener, all, rss)
}

#[test]
fn random_and_truncated_lldp_and_cdp_frames_are_counted_and_change_nothing() {
    const FRAMES: u32 = 10_000;
    const RATE: u32 = 1_000;
    const WINDOW: Duration = Duration::from_secs(10);
    let Some(mut lab) = lab("garbage_frames", &[SW_A], &[0, 0], 1) else {
        return;
    };
    lab.start_switches();
    lab.start_agents(&[], "");
    lab.wait_converged(&["n1", "n2"], Duration::from_secs(60));
    let settled = wait_for(Duration::from_secs(60), || {
        ["n1", "n2"].iter().all(|n| {
            lab.topology(n)
                .is_some_and(|r| hosts_behind(&r, "sw-a") == pairs(&[("n1", "p1"), ("n2", "p2")]))
        })
    });
    if settled.is_none() {
        lab.fail("the map did not settle");
    }
    let maps: Vec<Value> = ["n1", "n2"]
        .iter()
        .map(|n| lab.topology(n).unwrap()["map"].clone())
        .collect();
    let counters = |n: &str| lab.topology(n).unwrap()["listener"]["counters"].clone();
    let pid = lab.agent("n1").pid();
    let ticks_per_s = 100.0; // USER_HZ on Linux
    let idle_from = costs(pid);
    std::thread::sleep(WINDOW); // a measurement window, not a wait for a condition
    let idle_to = costs(pid);
    let before: Vec<Value> = ["n1", "n2"].iter().map(|n| counters(n)).collect();

    let fixtures: Vec<String> = [
        "lldpd/lldp-sw-a-ifname-port.hex",
        "lldpd/lldp-sw-b-mac-port.hex",
        "lldpd/cdp-v2-sw-a.hex",
        "lldpd/cdp-v1-sw-b.hex",
    ]
    .iter()
    .map(|f| switches::fixture(f).display().to_string())
    .collect();
    let flood_from = costs(pid);
    let started = Instant::now();
    let out = netns::in_ns(lab.switch_ns(0), "python3")
        .arg(switches::fixture("inject_frames.py"))
        .args(["br0", &FRAMES.to_string(), &RATE.to_string(), "7"])
        .args(&fixtures)
        .output()
        .unwrap();
    let flood_s = started.elapsed().as_secs_f64();
    let flood_to = costs(pid);
    assert!(out.status.success(), "injector: {out:?}");
    let sent: Value = serde_json::from_slice(&out.stdout).unwrap();
    let total = sent["total"].as_u64().unwrap();
    assert_eq!(total, u64::from(FRAMES), "{sent}");

    for (i, name) in ["n1", "n2"].iter().enumerate() {
        let counted = wait_for(Duration::from_secs(20), || {
            let now = counters(name);
            let delta = |k: &str| now[k].as_u64().unwrap() - before[i][k].as_u64().unwrap();
            let dropped: u64 = now["dropped"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| v.as_u64().unwrap() - before[i]["dropped"][k].as_u64().unwrap())
                .sum();
            delta("frames") >= total && dropped >= total
        });
        let now = counters(name);
        if counted.is_none() {
            lab.fail(&format!(
                "{name} did not count every frame: {before:?} -> {now}"
            ));
        }
        let taken = now["taken"].as_u64().unwrap() - before[i]["taken"].as_u64().unwrap();
        let legit_bound = 4 * (flood_s.ceil() as u64 + 20);
        assert!(
            taken <= legit_bound,
            "{name} took {taken} frames: some garbage was taken"
        );
        assert_eq!(
            lab.topology(name).unwrap()["map"],
            maps[i],
            "{name}'s map changed"
        );
        assert!(
            lab.agent(name).logged_panics().is_empty(),
            "{name} panicked"
        );
    }
    let seconds = |from: (u64, u64, u64), to: (u64, u64, u64), over: f64| {
        json!({
            "listener_cpu_pct": ((to.0 - from.0) as f64 / ticks_per_s / over * 100.0 * 10.0).round() / 10.0,
            "process_cpu_pct": ((to.1 - from.1) as f64 / ticks_per_s / over * 100.0 * 10.0).round() / 10.0,
            "rss_kib": to.2,
        })
    };
    println!(
        "{}",
        json!({"measure": "listener_costs", "idle": seconds(idle_from, idle_to, WINDOW.as_secs_f64()),
               "garbage": seconds(flood_from, flood_to, flood_s), "garbage_frames": total,
               "garbage_rate_per_s": (total as f64 / flood_s).round(), "sent": sent,
               "counters_after": counters("n1")})
    );
}

#[test]
fn an_agent_without_cap_net_raw_says_so_once_and_everything_else_works() {
    let Some(mut lab) = lab("no_cap_net_raw", &[SW_B], &[0, 0], 1) else {
        return;
    };
    lab.start_switches();
    lab.write_config("");
    lab.start_agent(0, &[], &[]);
    // n2 without CAP_NET_RAW: capsh drops it and execs the agent (the PID stays the agent's).
    lab.start_agent(
        1,
        &[],
        &[
            "capsh",
            "--drop=cap_net_raw",
            "--",
            "-c",
            "exec \"$0\" \"$@\"",
        ],
    );
    lab.wait_converged(&["n1", "n2"], Duration::from_secs(60));
    let shown = n1_on_sw_b_and_n2_on_no_switch(&lab);
    if shown.is_none() {
        let seen: Vec<String> = ["n1", "n2"]
            .iter()
            .map(|n| lab.topology_as(n, "text"))
            .collect();
        lab.fail(&format!(
            "the maps did not show n1 behind sw-b and n2 not listening: {seen:#?}"
        ));
    }
    let own = lab.topology("n2").unwrap();
    assert!(
        own["listener"]["state"]["Off"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("CAP_NET_RAW")),
        "{own:#}"
    );
    let text = lab.topology_as("n2", "text");
    assert!(
        text.lines().last().is_some_and(
            |l| l.starts_with("this agent (n2): LLDP listening is off: no CAP_NET_RAW")
        ),
        "{text}"
    );
    let seen_by_n1 = lab.topology_as("n1", "text");
    assert!(
        seen_by_n1.contains(
            "    n2  (eth0)  LLDP listening is off: no CAP_NET_RAW (raw sockets need it)\n"
        ),
        "{seen_by_n1}"
    );
    // Once: two rescan periods later (an absence can only be seen by waiting), the log still
    // says it a single time.
    std::thread::sleep(Duration::from_secs(21));
    let log = std::fs::read_to_string(&lab.agent("n2").log).unwrap();
    assert_eq!(log.matches("LLDP listening is off").count(), 1, "{log}");
    // Everything else works: an alert raised on n2 reaches n1.
    let (status, body) = lab.agent("n2").post_json(
        "/v1/alerts/raise",
        "{\"name\":\"probe\",\"severity\":\"warning\",\"summary\":\"still here\"}",
    );
    assert_eq!(status, 200, "{body}");
    let alert = wait_for(Duration::from_secs(30), || {
        lab.agent("n1").cli_json(&["alerts"]).is_some_and(|a| {
            a.as_array()
                .is_some_and(|l| l.iter().any(|x| x["host"] == "n2" && x["name"] == "probe"))
        })
    });
    if alert.is_none() {
        lab.fail("n2's alert did not reach n1");
    }
}
