//! One message for a dead switch, and one for a side that is cut off, counted at a real SMTP
//! server (aiosmtpd on the lab's management network) with real lldpd switches in network
//! namespaces (tests/common/switches.rs). Needs root and lldpd; without them each test says
//! so loudly and passes.

#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/netns.rs"]
mod netns;
#[path = "common/switches.rs"]
mod switches;

use std::time::Duration;

use common::smtp::ReceivedMail;
use common::wait_for;
use switches::{hosts_behind, Lab, Speaks, SwitchSpec};

/// Long enough after the last expected message for a duplicate to show (more than
/// group_wait, a leader's tick and a fallback's start).
const QUIET: Duration = Duration::from_secs(15);
const DELIVERY: Duration = Duration::from_secs(90);

const ENV: &[(&str, &str)] = &[
    ("ROVER_FALLBACK_AFTER", "5s"),
    ("ROVER_LOG", "info,openraft=warn"),
];

fn lab(test: &str, switches: &[SwitchSpec], host_switch: &[usize]) -> Option<Lab> {
    if !switches::have_lldpd() {
        switches::skip(test, "lldpd is not installed");
        return None;
    }
    match Lab::build(&test[..4], switches, host_switch, 1) {
        Ok(lab) => Some(lab),
        Err(why) => {
            switches::skip(test, &format!("network namespaces unavailable ({why:?})"));
            None
        }
    }
}

fn subjects(mails: &[ReceivedMail]) -> Vec<String> {
    mails.iter().map(|m| m.subject.clone()).collect()
}

/// Waits for exactly `count` messages in all: they arrive within [`DELIVERY`] and no more
/// come during [`QUIET`].
fn expect_total(lab: &Lab, count: usize) -> Vec<ReceivedMail> {
    let arrived = wait_for(DELIVERY, || lab.smtp.messages().len() >= count);
    if arrived.is_none() {
        lab.fail(&format!("expected {count} messages"));
    }
    std::thread::sleep(QUIET); // a duplicate can only be seen by waiting for it
    let mails = lab.smtp.messages();
    if mails.len() != count {
        lab.fail(&format!(
            "expected exactly {count} messages, got {:?}",
            subjects(&mails)
        ));
    }
    mails
}

/// Waits until every agent's map shows `expected` behind each switch.
fn wait_map(lab: &Lab, expected: &[(&str, &[(&str, &str)])]) {
    let names: Vec<String> = lab.hosts.iter().map(|h| h.name.clone()).collect();
    let mut polls = 0u32;
    let shown = wait_for(Duration::from_secs(60), || {
        polls += 1;
        if polls % 100 == 0 {
            lab.nudge_switches();
        }
        names.iter().all(|n| {
            lab.topology(n).is_some_and(|r| {
                expected.iter().all(|(switch, hosts)| {
                    let want: Vec<(String, String)> = hosts
                        .iter()
                        .map(|(h, p)| ((*h).to_owned(), (*p).to_owned()))
                        .collect();
                    hosts_behind(&r, switch) == want
                })
            })
        })
    });
    if shown.is_none() {
        let views: Vec<String> = names
            .iter()
            .map(|n| {
                let behind: Vec<_> = expected
                    .iter()
                    .map(|(switch, _)| {
                        lab.topology(n)
                            .map(|r| hosts_behind(&r, switch))
                            .unwrap_or_default()
                    })
                    .collect();
                format!("{n}: {behind:?}")
            })
            .collect();
        lab.fail(&format!(
            "the map did not settle: want {expected:?}, shown {views:?}"
        ));
    }
}

/// Waits until `names` agree on one Raft leader with every host a voter or learner.
fn wait_raft_leader(lab: &Lab, names: &[&str]) {
    let agreed = wait_for(Duration::from_secs(60), || {
        let views: Option<Vec<serde_json::Value>> = names
            .iter()
            .map(|n| lab.agent(n).cli_json(&["leader"]))
            .collect();
        views.is_some_and(|v| {
            v.iter()
                .all(|x| x["mode"] == "raft" && x["leader"] == v[0]["leader"])
                && v[0]["voters"].as_array().is_some_and(|a| a.len() == 5)
        })
    });
    if agreed.is_none() {
        lab.fail("no Raft leader agreed on");
    }
}

#[test]
fn killing_every_agent_on_switch_a_sends_one_message_naming_the_switch_and_one_when_they_are_back()
{
    let Some(mut lab) = lab(
        "kill_switch_a",
        &[
            SwitchSpec {
                name: "sw-a",
                speaks: Speaks::Lldp,
            },
            SwitchSpec {
                name: "sw-b",
                speaks: Speaks::Lldp,
            },
        ],
        &[0, 0, 0, 0, 1, 1],
    ) else {
        return;
    };
    lab.start_switches();
    lab.start_agents(ENV, "");
    let all = ["n1", "n2", "n3", "n4", "n5", "n6"];
    lab.wait_converged(&all, Duration::from_secs(60));
    wait_raft_leader(&lab, &all);
    wait_map(
        &lab,
        &[
            (
                "sw-a",
                &[("n1", "p1"), ("n2", "p2"), ("n3", "p3"), ("n4", "p4")],
            ),
            ("sw-b", &[("n5", "p5"), ("n6", "p6")]),
        ],
    );
    // The survivors have heard a status sample from each host, so the message can say when
    // each stopped talking.
    let heard = wait_for(Duration::from_secs(30), || {
        ["n5", "n6"].iter().all(|n| {
            lab.agent(n).cli_json(&["history"]).is_some_and(|h| {
                ["n1", "n2", "n3", "n4"].iter().all(|host| {
                    h.as_array().is_some_and(|l| {
                        l.iter()
                            .any(|x| x["host"] == *host && x["last_heard_ms"].is_u64())
                    })
                })
            })
        })
    });
    if heard.is_none() {
        lab.fail("no status sample of n1..n4 reached n5 and n6");
    }
    for name in ["n1", "n2", "n3", "n4"] {
        lab.kill(name);
    }
    let mails = expect_total(&lab, 1);
    assert_eq!(
        mails[0].subject,
        "rover: SWITCH sw-a unreachable (n1, n2, n3, n4)",
        "{:?}",
        subjects(&mails)
    );
    for host in ["n1", "n2", "n3", "n4"] {
        assert!(
            mails[0]
                .body
                .contains(&format!("  {host} stopped talking at ")),
            "{}",
            mails[0].body
        );
    }
    for i in 0..4 {
        lab.start_agent(i, ENV, &[]);
    }
    let mails = expect_total(&lab, 2);
    assert_eq!(
        mails[1].subject,
        "rover: SWITCH sw-a reachable again (n1, n2, n3, n4)",
        "{:?}",
        subjects(&mails)
    );
    println!(
        "{}",
        serde_json::json!({"measure": "messages", "scenario": "kill -9 every agent on switch A, then restart them", "messages": subjects(&mails)})
    );
}

#[test]
fn a_host_cut_off_in_a_1_4_split_says_it_is_cut_off_and_the_four_name_it_down() {
    let Some(mut lab) = lab(
        "split_one_four",
        &[SwitchSpec {
            name: "sw-a",
            speaks: Speaks::Lldp,
        }],
        &[0, 0, 0, 0, 0],
    ) else {
        return;
    };
    lab.start_switches();
    lab.start_agents(ENV, "");
    let all = ["n1", "n2", "n3", "n4", "n5"];
    lab.wait_converged(&all, Duration::from_secs(60));
    wait_raft_leader(&lab, &all);
    wait_map(
        &lab,
        &[(
            "sw-a",
            &[
                ("n1", "p1"),
                ("n2", "p2"),
                ("n3", "p3"),
                ("n4", "p4"),
                ("n5", "p5"),
            ],
        )],
    );
    // n1's port goes to a bridge of its own: it still hears sw-a, and nobody else.
    lab.isolate(0);
    let mails = expect_total(&lab, 2);
    let mut titles = subjects(&mails);
    titles.sort();
    assert_eq!(
        titles,
        vec![
            "rover: CUT OFF n1 cannot reach n2, n3, n4, n5 (no quorum)",
            "rover: DOWN n1",
        ],
        "{mails:#?}"
    );
    let cut_off = mails
        .iter()
        .find(|m| m.subject.contains("CUT OFF"))
        .unwrap();
    assert!(
        cut_off
            .body
            .contains("n1 still hears switch sw-a but reaches none of n2, n3, n4, n5 behind it"),
        "{}",
        cut_off.body
    );
    println!(
        "{}",
        serde_json::json!({"measure": "messages", "scenario": "1|4 split", "messages": titles})
    );
}
