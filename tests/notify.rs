//! The notifiers against real parts: email to a real SMTP server (aiosmtpd), Pushover to a
//! local server speaking its API, webhooks to a local HTTP server, exec with real processes;
//! and `notify test` through a running agent.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use common::pushover::{BackgroundServer, PushoverSink, TOKEN, USER};
use common::smtp::{SmtpSink, SmtpSinkOptions};
use common::{free_tcp_port, Cluster};
use rover_agent::config::{self, Layer};
use rover_agent::incidents::message::{compose, Sender};
use rover_agent::notify::{Message, Notifiers, NotifyError, Priority};
use rover_election::ledger::{Incident, IncidentKind, LeaderMode, Phase};

/// Notifiers for a `[notify]` config given as TOML.
fn notifiers(toml: &str) -> Notifiers {
    let layer = Layer::from_toml(toml, Path::new("notify-test.toml")).unwrap();
    let config = config::resolve(
        Some((layer, PathBuf::from("notify-test.toml"))),
        Layer::default(),
        Layer::default(),
        PathBuf::from("/tmp/rover-notify-test"),
        "testhost".into(),
    )
    .unwrap();
    Notifiers::from_config(&config.notify).unwrap()
}

fn message(title: &str, body: &str, priority: Priority) -> Message {
    Message {
        title: title.into(),
        body: body.into(),
        priority,
        details: serde_json::json!({
            "incidents": [{"id": "host-down/n3/1"}, {"id": "alert/n2/disk/7"}],
        }),
        about: Vec::new(),
    }
}

/// Sends a plain message through `channel`; why it was refused (panics on any other outcome).
async fn refusal(notifiers: &Notifiers, channel: &str) -> String {
    match notifiers
        .send(channel, &message("t", "b", Priority::Normal))
        .await
    {
        Err(NotifyError::Refused(why)) => why,
        other => panic!("expected {channel} to refuse, got {other:?}"),
    }
}

/// Sends a plain message through `channel`; why it gave up (panics on any other outcome).
async fn give_up(notifiers: &Notifiers, channel: &str) -> String {
    match notifiers
        .send(channel, &message("t", "b", Priority::Normal))
        .await
    {
        Err(NotifyError::GaveUp(why)) => why,
        other => panic!("expected {channel} to give up, got {other:?}"),
    }
}

fn email_config(port: u16, tls: &str, extra: &str) -> String {
    format!(
        "[[notify.email]]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {port}\ntls = \"{tls}\"\n\
         from = \"Rover <rover@example.org>\"\nto = [\"ops@example.org\", \"oncall@example.org\"]\n\
         timeout = \"5s\"\n{extra}"
    )
}

fn pushover_config(url: &str, user: &str, extra: &str) -> String {
    format!(
        "[[notify.pushover]]\ntoken = \"{TOKEN}\"\nuser = \"{user}\"\napi_url = \"{url}\"\n{extra}"
    )
}

// ---------------------------------------------------------------------------------- email

#[tokio::test]
async fn an_email_reaches_a_real_smtp_server_with_subject_body_and_every_recipient() {
    let sink = SmtpSink::start();
    let notifiers = notifiers(&email_config(sink.port(), "none", ""));
    let delivery = notifiers
        .send(
            "email",
            &message(
                "n3 is down",
                "n3 stopped talking at 12:00:01\nsent by n1",
                Priority::High,
            ),
        )
        .await
        .unwrap();
    let mails = sink.wait_for_count(1, Duration::from_secs(10));
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.from, "rover@example.org");
    assert_eq!(mail.to, ["ops@example.org", "oncall@example.org"]);
    assert_eq!(mail.subject, "n3 is down");
    assert_eq!(
        mail.body.trim_end(),
        "n3 stopped talking at 12:00:01\nsent by n1"
    );
    assert!(
        mail.raw.contains("To: ops@example.org, oncall@example.org"),
        "{}",
        mail.raw
    );
    assert_eq!(
        delivery.reference.as_deref(),
        Some("2.0.0 Ok: queued as SINK1")
    );
}

#[tokio::test]
async fn starttls_against_a_server_without_it_is_refused_with_a_clear_error() {
    let sink = SmtpSink::start();
    let notifiers = notifiers(&email_config(sink.port(), "starttls", ""));
    let why = refusal(&notifiers, "email").await;
    assert!(
        why.contains("does not offer STARTTLS") && why.contains(&sink.port().to_string()),
        "{why}"
    );
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn a_permanent_550_is_refused_without_a_retry() {
    let sink = SmtpSink::start_with(SmtpSinkOptions {
        refuse: true,
        ..SmtpSinkOptions::default()
    });
    let notifiers = notifiers(&email_config(sink.port(), "none", ""));
    let why = refusal(&notifiers, "email").await;
    assert!(
        why.contains("550") && why.contains("refused by the test sink"),
        "{why}"
    );
    assert_eq!(sink.messages().len(), 1, "a 5xx is never retried");
}

#[tokio::test]
async fn smtp_login_is_used_when_configured_and_a_wrong_password_is_refused() {
    let sink = SmtpSink::start_with(SmtpSinkOptions {
        auth: Some(("rover".into(), "s3cret".into())),
        ..SmtpSinkOptions::default()
    });
    let good = notifiers(&email_config(
        sink.port(),
        "none",
        "username = \"rover\"\npassword = \"s3cret\"\n",
    ));
    good.send("email", &message("t", "b", Priority::Normal))
        .await
        .unwrap();
    assert_eq!(sink.messages().len(), 1);
    let bad = notifiers(&email_config(
        sink.port(),
        "none",
        "username = \"rover\"\npassword = \"wrong\"\n",
    ));
    let why = refusal(&bad, "email").await;
    assert!(why.contains("535"), "{why}");
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn an_smtp_server_that_is_not_there_is_tried_three_times_then_given_up() {
    let nobody = free_tcp_port();
    let notifiers = notifiers(&email_config(nobody.port(), "none", ""));
    let started = Instant::now();
    let why = give_up(&notifiers, "email").await;
    assert!(why.contains("3 attempts"), "{why}");
    // Three attempts 5 s then 10 s apart: the waits are a property of the retry policy.
    assert!(
        started.elapsed() >= Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

// ------------------------------------------------------------------------------- pushover

#[tokio::test]
async fn pushover_gets_exactly_its_fields_with_title_and_message_cut_to_its_limits() {
    let sink = PushoverSink::start();
    let notifiers = notifiers(&pushover_config(&sink.url(), USER, "sound = \"siren\"\n"));
    let title = "é".repeat(300);
    let body = "ü".repeat(2000);
    let delivery = notifiers
        .send("pushover", &message(&title, &body, Priority::Normal))
        .await
        .unwrap();
    let requests = sink.wait_for_count(1, Duration::from_secs(5));
    assert_eq!(requests.len(), 1);
    let fields = &requests[0].fields;
    let keys: Vec<&str> = fields.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "message",
            "priority",
            "sound",
            "timestamp",
            "title",
            "token",
            "user"
        ]
    );
    assert_eq!(fields["token"], TOKEN);
    assert_eq!(fields["user"], USER);
    assert_eq!(fields["priority"], "0");
    assert_eq!(fields["sound"], "siren");
    assert_eq!(fields["title"].chars().count(), 250);
    assert_eq!(fields["title"], format!("{}…", "é".repeat(249)));
    assert_eq!(fields["message"].chars().count(), 1024);
    assert_eq!(fields["message"], format!("{}…", "ü".repeat(1023)));
    let timestamp: u64 = fields["timestamp"].parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(timestamp) < 60, "{timestamp} vs {now}");
    assert!(requests[0]
        .content_type
        .starts_with("application/x-www-form-urlencoded"));
    assert_eq!(
        delivery.reference.as_deref(),
        Some("5042853c-402d-4a18-abcb-000000000001")
    );
}

#[tokio::test]
async fn a_high_message_with_priority_high_2_is_an_emergency_with_retry_and_expire() {
    let sink = PushoverSink::start();
    let notifiers = notifiers(&pushover_config(
        &sink.url(),
        USER,
        "priority_high = 2\nemergency_retry = \"45s\"\nemergency_expire = \"2h\"\n",
    ));
    let delivery = notifiers
        .send(
            "pushover",
            &message("n3 is down", "since 12:00", Priority::High),
        )
        .await
        .unwrap();
    let request = &sink.requests()[0];
    assert_eq!(request.field("priority"), Some("2"));
    assert_eq!(request.field("retry"), Some("45"));
    assert_eq!(request.field("expire"), Some("7200"));
    assert_eq!(delivery.reference.as_deref(), Some("rcpt1"), "the receipt");
    notifiers
        .send(
            "pushover",
            &message("n3 is back", "at 12:05", Priority::Low),
        )
        .await
        .unwrap();
    let request = &sink.requests()[1];
    assert_eq!(request.field("priority"), Some("-1"));
    assert_eq!(request.field("retry"), None);
}

#[tokio::test]
async fn a_400_from_pushover_is_refused_at_once_with_its_errors() {
    let sink = PushoverSink::start();
    let notifiers = notifiers(&pushover_config(&sink.url(), "wrongUser123", ""));
    let why = refusal(&notifiers, "pushover").await;
    assert!(why.contains("user identifier is invalid"), "{why}");
    assert_eq!(sink.requests().len(), 1, "a 4xx is never retried");
}

#[tokio::test]
async fn a_500_is_retried_once_no_sooner_than_five_seconds_later() {
    let sink = PushoverSink::start();
    sink.fail_next(1, 500);
    let notifiers = notifiers(&pushover_config(&sink.url(), USER, ""));
    let delivery = notifiers
        .send("pushover", &message("t", "b", Priority::Normal))
        .await
        .unwrap();
    let requests = sink.requests();
    assert_eq!(requests.len(), 2);
    let gap = requests[1].at - requests[0].at;
    assert!(gap >= Duration::from_secs(5), "retried after {gap:?}");
    assert_eq!(
        requests[0].fields, requests[1].fields,
        "the same message again"
    );
    assert!(delivery.reference.is_some());
}

#[tokio::test]
async fn a_429_with_retry_after_is_honoured() {
    let sink = PushoverSink::start();
    sink.rate_limit_next(Some(1));
    let notifiers = notifiers(&pushover_config(&sink.url(), USER, ""));
    notifiers
        .send("pushover", &message("t", "b", Priority::Normal))
        .await
        .unwrap();
    let requests = sink.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests[1].at - requests[0].at >= Duration::from_secs(1));
}

#[tokio::test]
async fn a_429_asking_for_longer_than_the_send_budget_gives_up_naming_the_429() {
    let sink = PushoverSink::start();
    sink.rate_limit_next(Some(3600));
    let notifiers = notifiers(&pushover_config(&sink.url(), USER, ""));
    let why = give_up(&notifiers, "pushover").await;
    assert!(why.contains("429") && why.contains("budget"), "{why}");
    assert_eq!(sink.requests().len(), 1);
}

// -------------------------------------------------------------------------------- webhook

/// A request a [`HookSink`] received.
#[derive(Debug, Clone)]
struct Hooked {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A local HTTP server answering every POST with one status and body, keeping each request.
struct HookSink {
    server: BackgroundServer,
    seen: Arc<Mutex<Vec<Hooked>>>,
}

impl HookSink {
    fn start(status: u16, answer: &'static str) -> HookSink {
        let seen: Arc<Mutex<Vec<Hooked>>> = Arc::default();
        let record = seen.clone();
        let router = Router::new().route(
            "/{*path}",
            post(
                move |uri: axum::http::Uri, headers: HeaderMap, body: axum::body::Bytes| async move {
                    record.lock().unwrap().push(Hooked {
                        path: uri.path().to_owned(),
                        headers,
                        body: body.to_vec(),
                    });
                    (StatusCode::from_u16(status).unwrap(), answer).into_response()
                },
            ),
        );
        HookSink {
            server: BackgroundServer::start(router),
            seen,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr())
    }

    fn seen(&self) -> Vec<Hooked> {
        self.seen.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn a_json_webhook_posts_title_body_priority_and_details_with_its_headers() {
    let hook = HookSink::start(204, "");
    let notifiers = notifiers(&format!(
        "[[notify.webhook]]\nname = \"ops-hook\"\nurl = \"{}\"\nheaders = {{ Authorization = \"Bearer abc\" }}\n",
        hook.url("/hook")
    ));
    let delivery = notifiers
        .send(
            "ops-hook",
            &message("n3 is down", "since 12:00", Priority::High),
        )
        .await
        .unwrap();
    assert_eq!(delivery.reference, None);
    let seen = hook.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/hook");
    assert_eq!(seen[0].headers["content-type"], "application/json");
    assert_eq!(seen[0].headers["authorization"], "Bearer abc");
    let body: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "title": "n3 is down",
            "body": "since 12:00",
            "priority": "high",
            "details": {"incidents": [{"id": "host-down/n3/1"}, {"id": "alert/n2/disk/7"}]},
        })
    );
}

#[tokio::test]
async fn an_ntfy_webhook_posts_the_body_as_text_with_title_priority_and_tags() {
    let hook = HookSink::start(
        200,
        r#"{"id":"hwQ2YpKdmg","time":1700000000,"event":"message","topic":"rover"}"#,
    );
    let notifiers = notifiers(&format!(
        "[[notify.webhook]]\nurl = \"{}\"\nformat = \"ntfy\"\n",
        hook.url("/rover")
    ));
    let delivery = notifiers
        .send("webhook", &message("n3 is back", "at 12:05", Priority::Low))
        .await
        .unwrap();
    assert_eq!(delivery.reference.as_deref(), Some("hwQ2YpKdmg"));
    let seen = hook.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body, b"at 12:05");
    assert_eq!(seen[0].headers["title"], "n3 is back");
    assert_eq!(seen[0].headers["priority"], "2");
    assert_eq!(seen[0].headers["tags"], "white_check_mark");
}

#[tokio::test]
async fn a_webhook_answering_4xx_is_refused_and_not_retried() {
    let hook = HookSink::start(403, "forbidden");
    let notifiers = notifiers(&format!(
        "[[notify.webhook]]\nurl = \"{}\"\n",
        hook.url("/h")
    ));
    let why = refusal(&notifiers, "webhook").await;
    assert!(why.contains("403") && why.contains("forbidden"), "{why}");
    assert_eq!(hook.seen().len(), 1);
}

#[tokio::test]
async fn an_https_webhook_whose_server_does_not_speak_tls_is_refused_at_once() {
    let hook = HookSink::start(200, "");
    let url = hook.url("/h").replacen("http://", "https://", 1);
    let notifiers = notifiers(&format!("[[notify.webhook]]\nurl = \"{url}\"\n"));
    let why = refusal(&notifiers, "webhook").await;
    assert!(why.contains("TLS"), "{why}");
    assert!(hook.seen().is_empty());
}

// ----------------------------------------------------------------------------------- exec

fn exec_config(command: &[&str], timeout: &str) -> String {
    let command: Vec<String> = command.iter().map(|c| format!("{c:?}")).collect();
    format!(
        "[[notify.exec]]\ncommand = [{}]\ntimeout = \"{timeout}\"\n",
        command.join(", ")
    )
}

#[tokio::test]
async fn exec_gets_the_message_as_json_on_stdin_and_as_environment_variables() {
    let dir = tempfile::tempdir().unwrap();
    let stdin = dir.path().join("stdin.json");
    let env = dir.path().join("env.txt");
    let notifiers = notifiers(&exec_config(
        &[
            "/bin/sh",
            "-c",
            "cat > \"$0\"; env > \"$1\"; echo page-42; echo more",
            stdin.to_str().unwrap(),
            env.to_str().unwrap(),
        ],
        "10s",
    ));
    let sent = message("n3 is down", "line one\nline two", Priority::High);
    let delivery = notifiers.send("exec", &sent).await.unwrap();
    assert_eq!(delivery.reference.as_deref(), Some("page-42"));
    let got: Message = serde_json::from_str(&std::fs::read_to_string(&stdin).unwrap()).unwrap();
    assert_eq!(got, sent);
    let env = std::fs::read_to_string(&env).unwrap();
    for line in [
        "ROVER_TITLE=n3 is down",
        "ROVER_BODY=line one",
        "ROVER_PRIORITY=high",
        "ROVER_INCIDENTS=host-down/n3/1,alert/n2/disk/7",
    ] {
        assert!(
            env.lines().any(|l| l == line),
            "{line} missing from:\n{env}"
        );
    }
}

#[tokio::test]
async fn an_exec_still_running_at_its_timeout_is_killed_with_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let notifiers = notifiers(&exec_config(
        &[
            "/bin/sh",
            "-c",
            "sleep 30 & echo $$ $! > \"$0\"; wait",
            pids.to_str().unwrap(),
        ],
        "1s",
    ));
    let started = Instant::now();
    let why = give_up(&notifiers, "exec").await;
    assert!(why.contains("killed"), "{why}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let pids = std::fs::read_to_string(&pids).unwrap();
    for pid in pids.split_whitespace() {
        let dead = common::wait_for(Duration::from_secs(5), || !is_running(pid));
        assert!(dead.is_some(), "process {pid} outlived its notifier");
    }
}

/// Whether `pid` is a live process (not gone, not a zombie waiting for a parent to reap it).
fn is_running(pid: &str) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses.
    let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
    !state.is_some_and(|s| s.starts_with('Z') || s.starts_with('X'))
}

#[tokio::test]
async fn an_exec_exiting_non_zero_is_refused_with_the_code_and_its_first_stderr_line() {
    let notifiers = notifiers(&exec_config(
        &[
            "/bin/sh",
            "-c",
            "echo 'no route to pager' >&2; echo second >&2; exit 3",
        ],
        "10s",
    ));
    let why = refusal(&notifiers, "exec").await;
    assert!(
        why.contains("exit code 3") && why.contains("no route to pager") && !why.contains("second"),
        "{why}"
    );
}

#[tokio::test]
async fn an_exec_program_that_does_not_exist_is_refused() {
    let notifiers = notifiers(&exec_config(&["/nonexistent/page-me"], "10s"));
    let why = refusal(&notifiers, "exec").await;
    assert!(
        why.contains("not found") && why.contains("/nonexistent/page-me"),
        "{why}"
    );
}

// ----------------------------------------------------------------------------- notifiers

#[tokio::test]
async fn channels_are_listed_console_first_and_an_unknown_one_is_an_error() {
    let notifiers = notifiers(
        "[notify]\nconsole = true\n[[notify.webhook]]\nurl = \"http://127.0.0.1:9/\"\n\
         [[notify.exec]]\ncommand = [\"/bin/true\"]\n[[notify.exec]]\nname = \"pager\"\ncommand = [\"/bin/true\"]\n",
    );
    assert_eq!(notifiers.names(), ["console", "webhook", "exec", "pager"]);
    let error = notifiers
        .send("email", &message("t", "b", Priority::Normal))
        .await
        .unwrap_err();
    assert!(matches!(&error, NotifyError::UnknownChannel(name) if name == "email"));
    let console = notifiers
        .send("console", &message("t", "b", Priority::Normal))
        .await
        .unwrap();
    assert_eq!(console.reference, None);
}

// --------------------------------------------------------------------------- notify test

#[test]
fn notify_test_sends_one_message_through_every_channel_of_a_running_agent() {
    let smtp = SmtpSink::start();
    let pushover = PushoverSink::start();
    let config = format!(
        "{}{}",
        email_config(smtp.port(), "none", ""),
        pushover_config(&pushover.url(), USER, "")
    );
    let mut cluster = Cluster::new();
    cluster.config_for = Some(Box::new(move |_| config.clone()));
    cluster.add_lone_agent();
    let agent = &cluster.agents[0];

    let out = agent.cli(&["notify", "test"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}\n{}", agent.log());
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[1].starts_with("email ")
            && lines[1].contains(" ok ")
            && lines[1].contains("queued as SINK1"),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with("pushover ") && lines[2].contains(" ok "),
        "{stdout}"
    );
    let mails = smtp.wait_for_count(1, Duration::from_secs(5));
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].subject.contains("test message from n1"),
        "{:?}",
        mails[0]
    );
    let requests = pushover.wait_for_count(1, Duration::from_secs(5));
    assert_eq!(requests.len(), 1);
    assert!(requests[0]
        .field("message")
        .unwrap()
        .contains("\"pushover\""));
}

#[test]
fn notify_test_exits_1_and_says_why_when_a_channel_refuses() {
    let pushover = PushoverSink::start();
    let config = format!(
        "[notify]\nconsole = true\n{}",
        pushover_config(&pushover.url(), "notTheUser", "")
    );
    let mut cluster = Cluster::new();
    cluster.config_for = Some(Box::new(move |_| config.clone()));
    cluster.add_lone_agent();
    let agent = &cluster.agents[0];

    let out = agent.cli(&["notify", "test", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["channels"][0]["channel"], "console");
    assert_eq!(answer["channels"][0]["outcome"], "ok");
    assert_eq!(answer["channels"][1]["channel"], "pushover");
    assert_eq!(answer["channels"][1]["outcome"], "refused");
    assert!(answer["channels"][1]["error"]
        .as_str()
        .unwrap()
        .contains("user identifier is invalid"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 of 2 channels did not deliver"),
        "{stderr}"
    );
}

#[test]
fn notify_test_without_the_token_is_refused() {
    let cluster = Cluster::start(1);
    let agent = &cluster.agents[0];
    let elsewhere = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::binary())
        .args(["notify", "test", "--api", &agent.api.to_string()])
        .arg("--data-dir")
        .arg(elsewhere.path())
        .env_remove("ROVER_TOKEN_FILE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("token"));
}

// ------------------------------------------------------------ the same message, sent again

/// The message `leader` composes about `items` of incident `host-down/n3/1` (and n4's).
fn composed(leader: &str, items: &[(&str, Phase)]) -> Message {
    let incidents: Vec<(Incident, Phase)> = items
        .iter()
        .map(|(host, phase)| {
            let mut incident = Incident::new(
                format!("down/{host}/1"),
                IncidentKind::HostDown,
                *host,
                1_764_000_000_000,
            );
            if *phase == Phase::Resolved {
                incident.resolved_at_ms = Some(1_764_000_060_000);
            }
            (incident, *phase)
        })
        .collect();
    let refs: Vec<(&Incident, Phase)> = incidents.iter().map(|(i, p)| (i, *p)).collect();
    compose(
        &refs,
        &Sender {
            node: leader.into(),
            mode: LeaderMode::Raft,
            unseen: vec![],
            context: Default::default(),
        },
    )
}

/// The value of header `name` in a raw email (one line).
fn mail_header(raw: &str, name: &str) -> Option<String> {
    let prefix = format!("{}:", name.to_lowercase());
    raw.lines()
        .find(|line| line.to_lowercase().starts_with(&prefix))
        .map(|line| line[prefix.len()..].trim().to_owned())
}

#[tokio::test]
async fn an_email_sent_again_by_the_next_leader_has_the_same_message_id_and_a_back_threads_under_its_down(
) {
    let sink = SmtpSink::start();
    let notifiers = notifiers(&email_config(sink.port(), "none", ""));
    let first = composed("n1", &[("n3", Phase::Opened)]);
    let resend = composed("n2", &[("n3", Phase::Opened)]);
    assert_ne!(first.body, resend.body, "the resend names another sender");
    let back = composed("n2", &[("n3", Phase::Resolved)]);
    for message in [&first, &resend, &back] {
        notifiers.send("email", message).await.unwrap();
    }
    let mails = sink.wait_for_count(3, Duration::from_secs(10));
    let ids: Vec<String> = mails
        .iter()
        .map(|m| mail_header(&m.raw, "Message-ID").unwrap_or_else(|| panic!("{}", m.raw)))
        .collect();
    assert_eq!(ids[0], ids[1], "a resend is the same message");
    assert!(
        ids[0].starts_with('<') && ids[0].ends_with("@example.org>"),
        "{}",
        ids[0]
    );
    assert_ne!(ids[2], ids[0]);
    assert_eq!(mail_header(&mails[0].raw, "In-Reply-To"), None);
    assert_eq!(
        mail_header(&mails[2].raw, "In-Reply-To").as_ref(),
        Some(&ids[0])
    );
    assert_eq!(
        mail_header(&mails[2].raw, "References").as_ref(),
        Some(&ids[0])
    );
}

#[tokio::test]
async fn a_webhook_sent_again_carries_the_same_idempotency_key_and_another_message_another() {
    let hook = HookSink::start(204, "");
    let notifiers = notifiers(&format!(
        "[[notify.webhook]]\nurl = \"{}\"\n[[notify.webhook]]\nname = \"ntfy\"\nurl = \"{}\"\nformat = \"ntfy\"\n",
        hook.url("/json"),
        hook.url("/ntfy")
    ));
    let items = [("n3", Phase::Opened), ("n4", Phase::Opened)];
    let first = composed("n1", &items);
    let resend = composed("n2", &[items[1], items[0]]);
    let back = composed("n2", &[("n3", Phase::Resolved)]);
    for channel in ["webhook", "ntfy"] {
        for message in [&first, &resend, &back] {
            notifiers.send(channel, message).await.unwrap();
        }
    }
    let seen = hook.seen();
    assert_eq!(seen.len(), 6);
    let keys: Vec<&str> = seen
        .iter()
        .map(|h| h.headers["idempotency-key"].to_str().unwrap())
        .collect();
    assert_eq!(keys[0].len(), 32, "{keys:?}");
    assert_eq!(keys[0], keys[1], "a resend has the same key");
    assert_ne!(keys[2], keys[0], "a BACK is another message");
    assert_eq!(
        keys[..3],
        keys[3..],
        "the key does not depend on the format"
    );
    // A message about no incident (notify test) has none.
    notifiers
        .send("webhook", &message("t", "b", Priority::Low))
        .await
        .unwrap();
    assert!(!hook.seen()[6].headers.contains_key("idempotency-key"));
}

#[tokio::test]
async fn a_pushover_title_ends_with_the_incident_ids_so_a_resend_shows_what_it_repeats() {
    let sink = PushoverSink::start();
    let notifiers = notifiers(&pushover_config(&sink.url(), USER, ""));
    let items = [("n3", Phase::Opened), ("n4", Phase::Opened)];
    notifiers
        .send("pushover", &composed("n1", &items))
        .await
        .unwrap();
    notifiers
        .send("pushover", &composed("n2", &items))
        .await
        .unwrap();
    let requests = sink.wait_for_count(2, Duration::from_secs(5));
    assert_eq!(
        requests[0].fields["title"],
        "rover: DOWN n3, n4 [down/n3/1, down/n4/1]"
    );
    assert_eq!(requests[0].fields["title"], requests[1].fields["title"]);
}

#[tokio::test]
async fn a_webhook_whose_success_answer_breaks_off_is_delivered_once_not_sent_again() {
    // A server that answers 200, promises a body it never finishes, and closes: the message
    // was taken; sending it again would deliver it twice.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(Mutex::new(0usize));
    let count = requests.clone();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming().take(10) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 65536];
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = stream.read(&mut buf);
            *count.lock().unwrap() += 1;
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc");
        }
    });
    let notifiers = notifiers(&format!(
        "[[notify.webhook]]\nurl = \"http://{addr}/hook\"\ntimeout = \"2s\"\n"
    ));
    let delivered = notifiers
        .send(
            "webhook",
            &message("n3 is down", "since 12:00", Priority::High),
        )
        .await;
    assert!(delivered.is_ok(), "{delivered:?}");
    assert_eq!(*requests.lock().unwrap(), 1, "sent more than once");
}
