//! The dashboard in a real browser: Debian's headless Chromium (installed by scripts/test.sh),
//! driven over the DevTools protocol by tests/fixtures/browser.py, loads the page of a
//! 3-agent cluster, finds the three members, sees a killed one turn failed and a raised alert
//! appear without reloading, and saves a screenshot under the test's temp dir.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use common::{wait_for, Cluster};
use serde_json::{json, Value};

/// The browser driver; Chromium goes with it (the driver kills it when its stdin closes).
struct Browser {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Browser {
    fn start(profile: &Path) -> Browser {
        assert!(
            Path::new("/usr/bin/chromium").exists(),
            "chromium is missing: run scripts/test.sh, which installs it"
        );
        let mut child = Command::new("/usr/bin/python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/browser.py"
            ))
            .arg(profile)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Browser {
            child,
            stdin,
            stdout,
        }
    }

    fn ask(&mut self, command: Value) -> Value {
        writeln!(self.stdin, "{command}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("driver said {line:?}"))
    }

    /// The value of `expr` in the page (`Value::Null` on a script error).
    fn eval(&mut self, expr: &str) -> Value {
        let answer = self.ask(json!({"cmd": "eval", "expr": expr}));
        answer["value"].clone()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const MEMBER_STATUS: &str = "JSON.stringify(Object.fromEntries([...document.querySelectorAll('#members tr[data-member]')].map(r => [r.dataset.member, r.dataset.status])))";

fn statuses(browser: &mut Browser) -> Value {
    browser
        .eval(MEMBER_STATUS)
        .as_str()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null)
}

#[test]
fn the_dashboard_shows_members_a_failure_and_a_new_alert_live_in_headless_chromium() {
    let mut cluster = Cluster::new();
    cluster.config_for = Some(Box::new(|_| {
        "[status]\ninterval = \"1s\"\nfull_every = \"1s\"\n".to_owned()
    }));
    for _ in 0..3 {
        cluster.add_agent();
    }
    cluster.wait_converged(Duration::from_secs(30));
    let profile = tempfile::tempdir().unwrap();
    let mut browser = Browser::start(profile.path());
    let url = format!("http://{}/", cluster.agents[0].api);
    assert_eq!(
        browser.ask(json!({"cmd": "navigate", "url": url}))["ok"],
        true
    );

    let all_alive = json!({"n1": "alive", "n2": "alive", "n3": "alive"});
    let shown = wait_for(Duration::from_secs(30), || {
        statuses(&mut browser) == all_alive
    });
    assert!(
        shown.is_some(),
        "the page did not list three alive members: {}",
        statuses(&mut browser)
    );
    // A mark on the page: if it ever reloads, the mark is gone.
    browser.eval("window.__roverMark = 42");
    let paint = browser.eval(
        "performance.getEntriesByType('paint').map(p => p.name + '=' + p.startTime.toFixed(0) + 'ms').join(' ')",
    );
    let weight = browser.eval("document.documentElement.outerHTML.length");
    eprintln!("[dashboard] first paint: {paint}; page weight {weight} characters");

    cluster.agents[2].kill();
    let failed = wait_for(Duration::from_secs(30), || {
        statuses(&mut browser)["n3"] == "failed"
    });
    assert!(
        failed.is_some(),
        "n3 never showed failed: {}",
        statuses(&mut browser)
    );
    eprintln!("[dashboard] n3 shown failed {failed:?} after the kill");

    let out = cluster.agents[1].cli(&[
        "alert",
        "raise",
        "backup",
        "--severity",
        "critical",
        "--summary",
        "backup failed",
    ]);
    assert!(out.status.success(), "{out:?}");
    let alert =
        "document.querySelector('#alerts tr[data-alert=\"n2/backup\"]')?.dataset.state ?? null";
    let appeared = wait_for(Duration::from_secs(30), || browser.eval(alert) == "firing");
    assert!(appeared.is_some(), "the alert did not appear on the page");
    assert_eq!(browser.eval("window.__roverMark"), 42, "the page reloaded");

    let shot = cluster.dir.path().join("dashboard.png");
    let answer = browser.ask(json!({"cmd": "screenshot", "path": shot.display().to_string()}));
    assert_eq!(answer["ok"], true, "{answer}");
    let size = std::fs::metadata(&shot).unwrap().len();
    assert!(size > 1000, "the screenshot is {size} bytes");
    eprintln!("[dashboard] screenshot {} ({size} bytes)", shot.display());
}

/// One HTTP/1.1 request to `addr`; the status and the whole answer.
fn http(addr: &str, request: &str) -> (u16, String) {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

fn get(addr: &str, path: &str, extra: &str) -> (u16, String) {
    http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n"),
    )
}

#[test]
fn the_ui_listener_asks_for_the_viewer_token_and_serves_no_change() {
    let mut cluster = Cluster::new();
    cluster.config_for = Some(Box::new(|_| "[ui]\nbind = \"127.0.0.1:0\"\n".to_owned()));
    cluster.add_agent();
    let agent = &cluster.agents[0];
    let addr = std::fs::read_to_string(agent.data_dir.join("ui-addr")).unwrap();
    let addr = addr.trim();
    let out = agent.cli(&["ui", "token"]);
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(token.len(), 64, "{token}");

    let (status, page) = get(addr, "/", "");
    assert_eq!(status, 401, "{page}");
    assert!(page.contains("rover-agent ui token"), "{page}");
    assert_eq!(
        get(addr, "/v1/members", "Authorization: Bearer wrong\r\n").0,
        401
    );

    let (status, answer) = get(addr, &format!("/?token={token}"), "");
    assert_eq!(status, 303, "{answer}");
    assert!(
        answer.contains(&format!("rover_viewer={token}")) && answer.contains("HttpOnly"),
        "{answer}"
    );
    let cookie = format!("Cookie: rover_viewer={token}\r\n");
    let (status, page) = get(addr, "/", &cookie);
    assert_eq!(status, 200);
    assert!(page.contains("<title>rover-agent</title>"));
    let bearer = format!("Authorization: Bearer {token}\r\n");
    let (status, members) = get(addr, "/v1/members", &bearer);
    assert_eq!(status, 200, "{members}");
    assert!(members.contains("\"n1\""), "{members}");

    // No change is served here, token or not.
    for path in ["/v1/alerts/raise", "/v1/leave", "/v1/incidents", "/v1/join"] {
        let body = "{\"name\":\"x\"}";
        let (status, answer) = http(
            addr,
            &format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{bearer}\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        );
        assert!(status == 404 || status == 405, "POST {path}: {answer}");
    }
    assert!(
        agent.alerts().is_empty(),
        "an alert was raised through the viewer"
    );
    assert_eq!(agent.status_of("n1").as_deref(), Some("alive"));
}
