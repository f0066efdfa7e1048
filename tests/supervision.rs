//! Supervision of the agent's long-lived tasks, with real agent processes on loopback:
//!
//! - a task that panics (a test-only fault switch, honoured by debug builds only:
//!   `ROVER_TEST_PANIC=<task>:<delay>`) stops the agent with a non-zero exit that names it;
//! - an agent whose stderr is closed mid-run (the log pipe's reader went away) keeps every API
//!   route working: logging never kills a task.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{binary, wait_for, write_new_key};
use serde_json::Value;

/// One agent started by these tests, alone in its own group.
struct Lone {
    child: Child,
    dir: tempfile::TempDir,
    api: SocketAddr,
}

impl Lone {
    /// Starts an agent with `env`, its stderr going to `stderr`; waits until it serves.
    fn start(env: &[(&str, &str)], stderr: Stdio) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("cluster.key");
        write_new_key(&key);
        let mut cmd = Command::new(binary());
        cmd.args(["agent", "--node", "lone"])
            .args(["--bind", "127.0.0.1:0", "--api", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--key-file")
            .arg(&key)
            .env("ROVER_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        for (name, value) in env {
            cmd.env(name, value);
        }
        let child = cmd.spawn().unwrap();
        let addr_file = dir.path().join("data").join("api-addr");
        let mut api = None;
        wait_for(Duration::from_secs(20), || {
            api = std::fs::read_to_string(&addr_file)
                .ok()
                .and_then(|s| s.trim().parse().ok());
            api.is_some()
        })
        .expect("the agent did not come up");
        Self {
            child,
            dir,
            api: api.unwrap(),
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Waits for the agent to exit by itself; its exit code.
    fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let mut code = None;
        wait_for(timeout, || {
            code = self
                .child
                .try_wait()
                .unwrap()
                .map(|s| s.code().unwrap_or(-1));
            code.is_some()
        })?;
        code
    }

    /// One HTTP/1.1 request with the agent's token; (status, body).
    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
        let token = std::fs::read_to_string(self.data_dir().join("token")).unwrap();
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut stream =
            std::net::TcpStream::connect_timeout(&self.api, Duration::from_secs(2)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.api,
            token.trim(),
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, response)
    }
}

impl Drop for Lone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_file(dir: &Path) -> (PathBuf, Stdio) {
    let path = dir.join("agent.log");
    let file = std::fs::File::create(&path).unwrap();
    (path, Stdio::from(file))
}

/// Starts an agent whose task `task` panics 3 s after it starts; it must exit non-zero with a
/// last word naming the task.
fn a_panicking_task_stops_the_agent(task: &str) {
    let logs = tempfile::tempdir().unwrap();
    let (log, stderr) = log_file(logs.path());
    let fault = format!("{task}:3s");
    let mut agent = Lone::start(&[("ROVER_TEST_PANIC", &fault)], stderr);
    let code = agent.wait_exit(Duration::from_secs(30));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        code.is_some_and(|c| c != 0),
        "the agent went on (or exited 0) after its {task} task panicked: exit {code:?}\n{text}"
    );
    let last = text.lines().last().unwrap_or_default();
    assert!(
        last.contains(&format!("the {task} task panicked")),
        "the last word does not name the {task} task: {last:?}\n{text}"
    );
}

#[test]
fn an_agent_whose_incident_engine_panics_exits_non_zero_naming_the_task() {
    a_panicking_task_stops_the_agent("incidents");
}

#[test]
fn an_agent_whose_leadership_task_panics_exits_non_zero_naming_the_task() {
    a_panicking_task_stops_the_agent("leadership");
}

#[test]
fn every_api_route_still_works_after_the_agents_stderr_is_closed() {
    let mut agent = Lone::start(&[], Stdio::piped());
    // Read the log until the agent leads its group of one, then close the pipe's read end:
    // every later log line fails to write.
    let stderr = agent.child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    let led = wait_for(Duration::from_secs(20), || {
        let line = lines.next().and_then(Result::ok).unwrap_or_default();
        seen.push(line.clone());
        line.contains("raft leader")
    });
    assert!(led.is_some(), "never led its group: {seen:#?}");
    drop(lines);

    let raise = serde_json::json!({"name": "closed-stderr", "severity": "warning", "summary": "s"});
    let clear = serde_json::json!({"name": "closed-stderr", "summary": "ok"});
    let incident = serde_json::json!({"subject": "closed stderr"});
    // Several rounds: the first lines after the close are the ones that used to kill a task.
    for round in 0..3 {
        let routes: Vec<(&str, &str, Option<&Value>)> = vec![
            ("POST", "/v1/alerts/raise", Some(&raise)),
            ("GET", "/v1/alerts", None),
            ("POST", "/v1/alerts/clear", Some(&clear)),
            ("POST", "/v1/incidents", Some(&incident)),
            ("GET", "/v1/incidents", None),
            ("GET", "/v1/members", None),
            ("GET", "/v1/info", None),
            ("GET", "/v1/leader", None),
            ("GET", "/v1/history", None),
            ("GET", "/v1/storage", None),
            ("GET", "/metrics", None),
            ("POST", "/v1/notify/test", Some(&Value::Null)),
        ];
        for (method, path, body) in routes {
            let (status, answer) = agent.request(method, path, body);
            assert_eq!(
                status, 200,
                "round {round}: {method} {path} answered {status} after stderr closed:\n{answer}"
            );
        }
    }
    let (status, answer) = agent.request("POST", "/v1/leave", None);
    assert_eq!(status, 200, "leave: {answer}");
    assert_eq!(
        agent.wait_exit(Duration::from_secs(20)),
        Some(0),
        "an agent told to leave exits 0"
    );
}
