//! A harness for multi-process tests: starts real `rover-agent` processes on 127.0.0.1 with
//! their own data dirs, talks to them through the real CLI, and kills only what it started.

#![allow(dead_code, clippy::unwrap_used)]

pub mod pushover;
pub mod smtp;
pub mod teams;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub mod grid;
pub mod leaders;
pub mod relay;

use rover_membership::MemberInfo;
use serde_json::Value;

/// The built binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_rover-agent")
}

/// Polls `condition` every 100 ms until it holds or `timeout` passes; returns the time taken.
pub fn wait_for(timeout: Duration, mut condition: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if condition() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One running agent process.
pub struct Agent {
    pub name: String,
    pub data_dir: PathBuf,
    pub gossip: SocketAddr,
    pub api: SocketAddr,
    child: Option<Child>,
    key_file: Option<PathBuf>,
    log: PathBuf,
    pub config: Option<PathBuf>,
    /// The seeds it was first started with.
    join: Vec<SocketAddr>,
    /// Further `agent` flags it was started with.
    extra: Vec<String>,
}

impl Agent {
    /// `GET path` on the agent's API with a minimal HTTP/1.1 client; returns the body.
    pub fn http_get(&self, path: &str) -> Option<String> {
        self.http("GET", path, &[], "")
    }

    /// `POST path` with a JSON body and the agent's token; the answer parsed as JSON, or
    /// `None` unless it is a 200.
    pub fn post_json(&self, path: &str, body: &Value) -> Option<Value> {
        let token = std::fs::read_to_string(self.data_dir.join("token")).ok()?;
        let authorization = format!("Authorization: Bearer {}", token.trim());
        let headers = [authorization.as_str(), "Content-Type: application/json"];
        let answer = self.http("POST", path, &headers, &body.to_string())?;
        serde_json::from_str(&answer).ok()
    }

    /// One HTTP/1.1 request; the body of a 200 answer (chunked bodies decoded).
    fn http(&self, method: &str, path: &str, headers: &[&str], body: &str) -> Option<String> {
        use std::io::{Read, Write};
        let mut stream =
            std::net::TcpStream::connect_timeout(&self.api, Duration::from_secs(2)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.api);
        for header in headers {
            request.push_str(&format!("{header}\r\n"));
        }
        request.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ));
        stream.write_all(request.as_bytes()).ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        if !head.starts_with("HTTP/1.1 200") {
            return None;
        }
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            // Decode chunked bodies (axum uses them for some answers).
            let mut out = String::new();
            let mut rest = body;
            while let Some((size, after)) = rest.split_once("\r\n") {
                let size = usize::from_str_radix(size.trim(), 16).ok()?;
                if size == 0 {
                    break;
                }
                out.push_str(after.get(..size)?);
                rest = after.get(size + 2..)?;
            }
            return Some(out);
        }
        Some(body.to_owned())
    }

    /// `GET path` parsed as JSON.
    pub fn get_json(&self, path: &str) -> Option<Value> {
        serde_json::from_str(&self.http_get(path)?).ok()
    }

    /// `alerts --format json`.
    pub fn alerts(&self) -> Vec<Value> {
        let out = self.cli(&["alerts", "--format", "json"]);
        if !out.status.success() {
            return Vec::new();
        }
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }

    /// The state (`firing`/`resolved`) of alert `host/name` as this agent knows it.
    pub fn alert_state(&self, host: &str, name: &str) -> Option<String> {
        self.alerts()
            .into_iter()
            .find(|a| a["host"] == host && a["name"] == name)
            .and_then(|a| a["state"].as_str().map(str::to_owned))
    }

    /// PID of the running process.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Runs a CLI command against this agent and returns its output.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(binary())
            .args(args)
            .arg("--api")
            .arg(self.api.to_string())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env_remove("ROVER_TOKEN_FILE")
            .output()
            .unwrap()
    }

    /// The member list this agent reports (`members --format json`), or empty if unreachable.
    pub fn members(&self) -> Vec<MemberInfo> {
        let out = self.cli(&["members", "--format", "json"]);
        if !out.status.success() {
            return Vec::new();
        }
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }

    /// The status this agent gives `name`, as text.
    pub fn status_of(&self, name: &str) -> Option<String> {
        self.members()
            .into_iter()
            .find(|m| m.name == name)
            .map(|m| m.status.as_str().to_owned())
    }

    /// `info --format json`.
    pub fn info(&self) -> Option<Value> {
        let out = self.cli(&["info", "--format", "json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
    }

    /// Sends a signal to this agent's process (by its PID) with `kill -SIG`.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{sig} {} failed", self.pid());
    }

    /// kill -9 and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for the process to exit by itself; true if it did within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let exited = wait_for(timeout, || {
            self.child
                .as_mut()
                .is_none_or(|c| c.try_wait().ok().flatten().is_some())
        });
        if exited.is_some() {
            self.child = None;
        }
        exited.is_some()
    }

    /// Starts the process again with the same data dir and addresses and no `--join`.
    pub fn restart(&mut self) {
        self.restart_joining(&[]);
    }

    /// Starts the process again with the command line it was first started with (its
    /// `--join` seeds included).
    pub fn restart_as_started(&mut self) {
        let join = self.join.clone();
        self.restart_joining(&join);
    }

    fn restart_joining(&mut self, join: &[SocketAddr]) {
        self.kill();
        let _ = std::fs::remove_file(self.data_dir.join("api-addr"));
        let child = spawn_agent(Launch {
            name: &self.name,
            data_dir: &self.data_dir,
            key_file: self.key_file.as_deref(),
            bind: self.gossip,
            api: self.api,
            join,
            log: &self.log,
            config: self.config.as_deref(),
            extra: &self.extra,
        });
        self.child = Some(child);
        wait_ready(&self.data_dir).expect("restarted agent did not come up");
    }

    /// The agent's log so far (stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Everything needed to start one agent process.
struct Launch<'a> {
    name: &'a str,
    data_dir: &'a Path,
    key_file: Option<&'a Path>,
    bind: SocketAddr,
    api: SocketAddr,
    join: &'a [SocketAddr],
    log: &'a Path,
    config: Option<&'a Path>,
    extra: &'a [String],
}

fn spawn_agent(launch: Launch<'_>) -> Child {
    let mut cmd = Command::new(binary());
    cmd.arg("agent");
    if let Some(config) = launch.config {
        cmd.arg("--config").arg(config);
    }
    cmd.args(["--node", launch.name])
        .arg("--bind")
        .arg(launch.bind.to_string())
        .arg("--api")
        .arg(launch.api.to_string())
        .arg("--data-dir")
        .arg(launch.data_dir)
        .args(launch.extra)
        .env("ROVER_LOG", "info,rover_membership=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(launch.log)
                .unwrap(),
        );
    if let Some(key_file) = launch.key_file {
        cmd.arg("--key-file").arg(key_file);
    }
    for seed in launch.join {
        cmd.arg("--join").arg(seed.to_string());
    }
    cmd.spawn().unwrap()
}

/// The gossip address an agent reports in `info`.
fn gossip_addr(api: SocketAddr) -> Option<SocketAddr> {
    let out = Command::new(binary())
        .args(["info", "--format", "json", "--api", &api.to_string()])
        .output()
        .ok()?;
    let info: Value = serde_json::from_slice(&out.stdout).ok()?;
    info["addr"].as_str()?.parse().ok()
}

/// Waits for the agent to write its API address; returns it.
fn wait_ready(data_dir: &Path) -> Option<SocketAddr> {
    let mut addr = None;
    wait_for(Duration::from_secs(20), || {
        addr = std::fs::read_to_string(data_dir.join("api-addr"))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        addr.is_some()
    })?;
    addr
}

/// A set of agents sharing one key, each in its own data dir under one temp dir.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub key_file: PathBuf,
    pub agents: Vec<Agent>,
    /// TOML config for the agent with this index (0-based), if any.
    pub config_for: Option<Box<dyn Fn(usize) -> String>>,
}

impl Cluster {
    /// An empty cluster with a fresh key.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("cluster.key");
        write_new_key(&key_file);
        Self {
            dir,
            key_file,
            agents: Vec::new(),
            config_for: None,
        }
    }

    /// Starts `n` agents; all but the first join through the first. Waits until each is up.
    pub fn start(n: usize) -> Self {
        let mut cluster = Self::new();
        for _ in 0..n {
            cluster.add_agent();
        }
        cluster
    }

    /// Starts one more agent (joining the first, if any) with this cluster's key.
    pub fn add_agent(&mut self) -> usize {
        let key = self.key_file.clone();
        self.add_agent_with_key(&key)
    }

    /// Starts one more agent with the given key file, joining the first agent.
    pub fn add_agent_with_key(&mut self, key_file: &Path) -> usize {
        self.add_agent_opts(key_file, true)
    }

    /// Starts one more agent with this cluster's key and no `--join`.
    pub fn add_lone_agent(&mut self) -> usize {
        let key = self.key_file.clone();
        self.add_agent_opts(&key, false)
    }

    /// Starts one more agent with this cluster's key, joining the agent at `seed`.
    pub fn add_agent_joining(&mut self, seed: usize) -> usize {
        let key = self.key_file.clone();
        let seed = self.agents[seed].gossip;
        self.add_agent_at(&key, &[seed])
    }

    fn add_agent_opts(&mut self, key_file: &Path, join_first: bool) -> usize {
        let join: Vec<SocketAddr> = self
            .agents
            .first()
            .filter(|_| join_first)
            .map(|a| a.gossip)
            .into_iter()
            .collect();
        self.add_agent_at(key_file, &join)
    }

    /// Starts one more agent called `name` (which another agent may have too: its data dir
    /// and log are named `name-N`), joining the agent at `seed`.
    pub fn add_agent_named(&mut self, name: &str, seed: usize) -> usize {
        let key = self.key_file.clone();
        let join = [self.agents[seed].gossip];
        let files = format!("{name}-{}", self.agents.len() + 1);
        self.add_agent_as(Some(&key), &join, name.to_owned(), files, &[])
    }

    /// Starts one more agent called `name` with this cluster's key, joining the first agent
    /// (if any), with these further flags (for example `--team T`).
    pub fn add_agent_called(&mut self, name: &str, extra: &[String]) -> usize {
        let key = self.key_file.clone();
        let join: Vec<SocketAddr> = self.agents.first().map(|a| a.gossip).into_iter().collect();
        self.add_agent_as(Some(&key), &join, name.to_owned(), name.to_owned(), extra)
    }

    /// Starts one more agent, `n<N>`, with no key file, these seeds and these further flags
    /// (for example `--join-token TOKEN`).
    pub fn add_agent_with_flags(&mut self, join: &[SocketAddr], extra: &[String]) -> usize {
        let name = format!("n{}", self.agents.len() + 1);
        self.add_agent_as(None, join, name.clone(), name, extra)
    }

    fn add_agent_at(&mut self, key_file: &Path, join: &[SocketAddr]) -> usize {
        let name = format!("n{}", self.agents.len() + 1);
        self.add_agent_as(Some(key_file), join, name.clone(), name, &[])
    }

    fn add_agent_as(
        &mut self,
        key_file: Option<&Path>,
        join: &[SocketAddr],
        name: String,
        files: String,
        extra: &[String],
    ) -> usize {
        let index = self.agents.len();
        let data_dir = self.dir.path().join(&files);
        std::fs::create_dir_all(&data_dir).unwrap();
        let log = self.dir.path().join(format!("{files}.log"));
        // Port 0: the OS picks free ports, so parallel tests never race for one.
        let gossip: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let api: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let config = self.config_for.as_ref().map(|make| {
            let path = self.dir.path().join(format!("{files}.toml"));
            std::fs::write(&path, make(index)).unwrap();
            path
        });
        let child = spawn_agent(Launch {
            name: &name,
            data_dir: &data_dir,
            key_file,
            bind: gossip,
            api,
            join,
            log: &log,
            config: config.as_deref(),
            extra,
        });
        let api = wait_ready(&data_dir).unwrap_or_else(|| {
            panic!(
                "{name} did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        let gossip =
            gossip_addr(api).unwrap_or_else(|| panic!("{name} does not tell its gossip address"));
        self.agents.push(Agent {
            name,
            data_dir,
            gossip,
            api,
            child: Some(child),
            key_file: key_file.map(Path::to_owned),
            log,
            config,
            join: join.to_vec(),
            extra: extra.to_vec(),
        });
        index
    }

    /// Whether every agent in `observers` lists exactly `expected` alive members.
    pub fn all_list_alive(&self, observers: &[usize], expected: usize) -> bool {
        observers.iter().all(|i| {
            self.agents[*i]
                .members()
                .iter()
                .filter(|m| m.status.as_str() == "alive")
                .count()
                == expected
        })
    }

    /// Waits until every agent lists every agent alive; panics with the logs otherwise.
    pub fn wait_converged(&self, timeout: Duration) -> Duration {
        let all: Vec<usize> = (0..self.agents.len()).collect();
        wait_for(timeout, || self.all_list_alive(&all, all.len())).unwrap_or_else(|| {
            panic!(
                "cluster did not converge; members of n1: {:?}\nlog of n1:\n{}",
                self.agents[0].members(),
                self.agents[0].log()
            )
        })
    }

    /// Indexes of every agent but `except`.
    pub fn others(&self, except: usize) -> Vec<usize> {
        (0..self.agents.len()).filter(|i| *i != except).collect()
    }
}

/// Writes a fresh key made by `rover-agent keygen`.
pub fn write_new_key(path: &Path) {
    let out = Command::new(binary()).arg("keygen").output().unwrap();
    assert!(out.status.success());
    std::fs::write(path, &out.stdout).unwrap();
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
pub fn free_udp_port() -> SocketAddr {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap()
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_tcp_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}
