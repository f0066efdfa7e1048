//! Control characters in alert summaries and incident subjects (CR, ESC, BEL, NUL, NEL, U+2028,
//! bidi overrides, line feeds) are stripped before they are stored, so they never reach
//! `alerts`, the console (its log lines) or an email sent to a real SMTP server, and no
//! subject can forge a second "Sent by" line.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::leaders::{leader, leader_name, logs};
use common::smtp::SmtpSink;
use common::{wait_for, Cluster};
use rover_agent::control_chars::is_control;
use serde_json::json;

/// A summary as a malicious or broken check could print it.
const FORGED_SUMMARY: &str =
    "disk fine\rRESOLVED (forged)\u{1b}[2J\u{7}\0\u{85}\u{2028}\u{202e}end";
/// What is left of it.
const STRIPPED_SUMMARY: &str = "disk fine RESOLVED (forged)[2J end";
/// A manual incident subject that tries to sign a message in someone else's name.
const FORGED_SUBJECT: &str = "maintenance\n\nSent by mallory, Raft leader.\r\0";

const NONE: [char; 0] = [];

/// Control characters in `text`, line feeds aside.
fn controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|c| is_control(*c) && *c != '\n')
        .collect()
}

#[test]
fn control_characters_never_reach_alerts_the_console_or_an_email_and_cannot_forge_a_sender() {
    let smtp = SmtpSink::start();
    let mut cluster = Cluster::new();
    let config = format!(
        "[notify]\nconsole = true\ngroup_wait = \"1s\"\n\
         [[notify.email]]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\ntls = \"none\"\n\
         from = \"rover@example.org\"\nto = [\"ops@example.org\"]\n",
        smtp.port()
    );
    cluster.config_for = Some(Box::new(move |_| config.clone()));
    cluster.add_agent();
    let agent = &cluster.agents[0];
    wait_for(Duration::from_secs(30), || {
        leader(agent).and_then(|s| leader_name(&s)).is_some()
    })
    .unwrap_or_else(|| panic!("no leader:\n{}", logs(&cluster)));

    let raised = agent
        .post_json(
            "/v1/alerts/raise",
            &json!({"name": "disk", "severity": "critical", "summary": FORGED_SUMMARY}),
        )
        .unwrap();
    assert_eq!(raised["summary"], STRIPPED_SUMMARY);
    let table = agent.cli(&["alerts"]);
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(table.contains(STRIPPED_SUMMARY), "{table}");
    assert_eq!(controls(&table), NONE, "{table:?}");

    let opened = agent
        .post_json("/v1/incidents", &json!({"subject": FORGED_SUBJECT}))
        .unwrap();
    assert_eq!(controls(opened["id"].as_str().unwrap()), NONE);

    let about = |text: &str| {
        smtp.messages()
            .into_iter()
            .filter(|m| m.body.contains(text))
            .collect::<Vec<_>>()
    };
    wait_for(Duration::from_secs(60), || {
        !about(STRIPPED_SUMMARY).is_empty() && !about("maintenance").is_empty()
    })
    .unwrap_or_else(|| panic!("mails: {:?}\n{}", smtp.messages(), logs(&cluster)));
    for mail in smtp.messages() {
        assert_eq!(controls(&mail.subject), NONE, "{:?}", mail.subject);
        assert_eq!(controls(&mail.body), NONE, "{:?}", mail.body);
        let signatures: Vec<&str> = mail
            .body
            .lines()
            .filter(|line| line.starts_with("Sent by"))
            .collect();
        assert_eq!(signatures, ["Sent by n1, Raft leader."], "{}", mail.body);
    }
    let manual = &about("maintenance")[0];
    assert!(
        manual
            .body
            .contains("maintenance Sent by mallory, Raft leader."),
        "the forged text stays inside its incident's line: {}",
        manual.body
    );

    // The console channel wrote the same messages to the log, without control characters.
    let log = agent.log();
    assert!(log.contains("notification"), "{log}");
    assert!(log.contains("maintenance Sent by mallory"), "{log}");
    assert_eq!(controls(&log), NONE, "{log:?}");
}
