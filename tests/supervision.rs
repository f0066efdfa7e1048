//! Supervision of the agent's long-lived tasks, with real agent processes on loopback:
//!
//! - a task that panics (a test-only fault switch, honoured by debug builds only:
//!   `ROVER_TEST_PANIC=<task>:<delay>`) stops the agent with a non-zero exit that names it;
//! - an agent whose stderr is closed mid-run (the log pipe's reader went away) keeps every API
//!   route working: logging never kills a task;
//! - a Raft node that openraft stopped on a storage error (a test-only fault switch, debug
//!   builds only: `ROVER_TEST_RAFT_DISK_FAULT=<file>` fails every Raft write while the file
//!   exists) runs again as a voter once storage works, without a restart of the agent.

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
        Self::start_as("lone", &key, None, dir, env, stderr)
    }

    /// Starts agent `name` with the key in `key`, joining `join` if given, in `dir`.
    fn start_as(
        name: &str,
        key: &Path,
        join: Option<&str>,
        dir: tempfile::TempDir,
        env: &[(&str, &str)],
        stderr: Stdio,
    ) -> Self {
        let mut cmd = Command::new(binary());
        cmd.args(["agent", "--node", name])
            .args(["--bind", "127.0.0.1:0", "--api", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--key-file")
            .arg(key)
            .env("ROVER_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        if let Some(seed) = join {
            cmd.args(["--join", seed]);
        }
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
    // The lines stderr refused are counted.
    let (_, metrics) = agent.request("GET", "/metrics", None);
    let dropped: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("rover_log_lines_dropped_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(dropped > 0, "no dropped log line counted:\n{metrics}");
    let (status, answer) = agent.request("POST", "/v1/leave", None);
    assert_eq!(status, 200, "leave: {answer}");
    assert_eq!(
        agent.wait_exit(Duration::from_secs(20)),
        Some(0),
        "an agent told to leave exits 0"
    );
}

impl Lone {
    fn get(&self, path: &str) -> Option<Value> {
        let (status, answer) = self.request("GET", path, None);
        let body = answer.split_once("\r\n\r\n")?.1;
        (status == 200)
            .then(|| serde_json::from_str(body).ok())
            .flatten()
    }
}

#[test]
fn a_raft_node_stopped_by_a_storage_error_is_a_voter_again_once_storage_works() {
    let shared = tempfile::tempdir().unwrap();
    let key = shared.path().join("cluster.key");
    write_new_key(&key);
    let fault = shared.path().join("n2-raft-disk-fault");
    let fault_env = fault.display().to_string();
    let logs = |name: &str| {
        let file = std::fs::File::create(shared.path().join(format!("{name}.log"))).unwrap();
        Stdio::from(file)
    };
    let dir = || tempfile::tempdir().unwrap();
    let n1 = Lone::start_as("n1", &key, None, dir(), &[], logs("n1"));
    let seed = n1.get("/v1/info").unwrap()["addr"]
        .as_str()
        .unwrap()
        .to_owned();
    let n2 = Lone::start_as(
        "n2",
        &key,
        Some(&seed),
        dir(),
        &[("ROVER_TEST_RAFT_DISK_FAULT", &fault_env)],
        logs("n2"),
    );
    let n3 = Lone::start_as("n3", &key, Some(&seed), dir(), &[], logs("n3"));
    let agents = [&n1, &n2, &n3];
    let log_of = |name: &str| {
        std::fs::read_to_string(shared.path().join(format!("{name}.log"))).unwrap_or_default()
    };
    let follows_n1 = |agent: &Lone| {
        agent.get("/v1/leader").is_some_and(|s| {
            s["mode"] == "raft"
                && s["leader"] == "n1"
                && s["voters"].as_array().is_some_and(|v| v.len() == 3)
        })
    };
    wait_for(Duration::from_secs(60), || {
        agents.iter().all(|a| follows_n1(a))
    })
    .unwrap_or_else(|| panic!("no group of three led by n1:\n{}", log_of("n2")));
    let holds = |agent: &Lone, id: &str| {
        agent.get("/v1/incidents").is_some_and(|l| {
            l["incidents"]
                .as_array()
                .is_some_and(|list| list.iter().any(|i| i["id"] == id))
        })
    };
    let open = |subject: &str| -> String {
        let body = serde_json::json!({ "subject": subject });
        let (status, answer) = n1.request("POST", "/v1/incidents", Some(&body));
        assert_eq!(status, 200, "opening an incident on n1: {answer}");
        let body = answer.split_once("\r\n\r\n").unwrap().1;
        serde_json::from_str::<Value>(body).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // n2's storage fails: the entry that reaches it stops its Raft node.
    std::fs::write(&fault, b"").unwrap();
    let during = open("written while n2's storage fails");
    let stopped = wait_for(Duration::from_secs(20), || {
        n2.get("/v1/leader")
            .is_some_and(|s| s["raft_state"] == "stopped")
    });
    assert!(
        stopped.is_some(),
        "n2's raft node did not stop on its storage error:\n{}",
        log_of("n2")
    );
    assert!(!holds(&n2, &during));
    // Its restart waits for storage: the probe write fails while the fault lasts.
    let refused = wait_for(Duration::from_secs(20), || {
        log_of("n2").contains("the raft node cannot start yet")
    });
    assert!(
        refused.is_some(),
        "n2 never tried to start its raft node while storage failed:\n{}",
        log_of("n2")
    );
    assert!(n2
        .get("/v1/leader")
        .is_some_and(|s| s["raft_state"] == "stopped"));

    // Storage works again: n2 is a voter of n1's group again and catches up.
    std::fs::remove_file(&fault).unwrap();
    let after = open("written after n2's storage works again");
    let back = wait_for(Duration::from_secs(60), || {
        follows_n1(&n2)
            && n2
                .get("/v1/leader")
                .is_some_and(|s| s["raft_state"] == "follower")
            && holds(&n2, &during)
            && holds(&n2, &after)
    });
    assert!(
        back.is_some(),
        "n2 is not a voter of n1's group again with both incidents: {:?}\n{}",
        n2.get("/v1/leader"),
        log_of("n2")
    );
    assert!(
        n1.get("/v1/leader")
            .is_some_and(|s| s["voters"].as_array().is_some_and(|v| v.len() == 3)),
        "n1 no longer counts three voters"
    );
}
