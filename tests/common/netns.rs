//! Network namespaces for multi-process tests: a private "switch" namespace holding bridges,
//! and one namespace per host wired to it by a veth pair. Moving a host's switch-side port to
//! another bridge cuts it off from the hosts left behind (and moving it back heals the
//! network), with no firewall involved. Agents run inside their host namespace through
//! `ip netns exec`, and every query goes through it too (loopback is per namespace).
//!
//! Only addresses inside namespaces made here are used. [`Fabric`] deletes its namespaces on
//! drop and [`NsAgent`] kills its process on drop; drop the agents first.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Why no fabric could be built here (the caller skips its test).
#[derive(Debug)]
pub enum Unavailable {
    /// The test does not run as root.
    NotRoot,
    /// `ip netns add` was refused.
    NoPermission(String),
}

/// One host namespace.
#[derive(Debug, Clone)]
pub struct Host {
    /// Name of its network namespace.
    pub ns: String,
    /// Its address on the fabric (a /24).
    pub ip: Ipv4Addr,
    /// Its veth end in the switch namespace.
    port: String,
}

/// A switch namespace with bridges and host namespaces plugged into the first bridge.
#[derive(Debug)]
pub struct Fabric {
    switch: String,
    hosts: Vec<Host>,
    /// The X of its `10.213.X.0/24`, held in [`SUBNETS`] until drop.
    subnet: u8,
    /// Every namespace made so far, deleted on drop (also after a half-finished build).
    created: Vec<String>,
}

/// Runs `ip ARGS`.
fn ip(args: &[&str]) -> Output {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip {args:?}: {e}"))
}

/// Runs `ip ARGS` and panics with its stderr when it fails.
fn ip_ok(args: &[&str]) {
    let out = ip(args);
    assert!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Whether this process runs as root (`id -u` says 0).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The third octets of the fabrics alive in this process: two fabrics built by tests running
/// in parallel never share a subnet.
static SUBNETS: Mutex<BTreeSet<u8>> = Mutex::new(BTreeSet::new());

/// A third octet in 10..250 that no live fabric of this process holds, first trying one
/// derived from the process id and `tag` (so parallel processes spread out too); it stays
/// taken until [`release_subnet`].
fn take_subnet(pid: u32, tag: &str) -> u8 {
    // FNV-1a: stable across runs and toolchains, unlike `DefaultHasher`.
    let hash = tag.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    let start = pid.wrapping_add(hash) % 240;
    let mut taken = SUBNETS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let subnet = (0..240)
        .map(|step| u8::try_from(10 + (start + step) % 240).unwrap())
        .find(|x| !taken.contains(x))
        .expect("240 fabrics alive in one process");
    taken.insert(subnet);
    subnet
}

/// Gives `subnet` back to [`SUBNETS`].
fn release_subnet(subnet: u8) {
    SUBNETS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(&subnet);
}

impl Fabric {
    /// Builds a switch with `bridges` (the first one gets every host) and `hosts` host
    /// namespaces at `10.213.X.1` .. `10.213.X.hosts`. Namespace names hold the process id,
    /// `tag` (short, letters and digits: says which test made them) and a per-process count;
    /// X is unique among this process's live fabrics and derived from the process id and
    /// `tag`.
    pub fn build(tag: &str, hosts: usize, bridges: &[&str]) -> Result<Self, Unavailable> {
        static FABRICS: AtomicUsize = AtomicUsize::new(0);
        assert!(!bridges.is_empty() && (1..=250).contains(&hosts));
        assert!(
            !tag.is_empty() && tag.len() <= 16 && tag.bytes().all(|b| b.is_ascii_alphanumeric()),
            "fabric tag {tag:?}: 1 to 16 letters or digits"
        );
        if !is_root() {
            return Err(Unavailable::NotRoot);
        }
        let pid = std::process::id();
        let prefix = format!(
            "rover{pid}-{tag}-{}",
            FABRICS.fetch_add(1, Ordering::Relaxed)
        );
        let subnet = take_subnet(pid, tag);
        // From here on, drop releases the subnet and deletes what was made.
        let mut fabric = Self {
            switch: format!("{prefix}-sw"),
            hosts: Vec::new(),
            subnet,
            created: Vec::new(),
        };
        let out = ip(&["netns", "add", &fabric.switch]);
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            let lower = err.to_lowercase();
            if lower.contains("permission") || lower.contains("not permitted") {
                return Err(Unavailable::NoPermission(err));
            }
            panic!("ip netns add {} failed: {err}", fabric.switch);
        }
        fabric.created.push(fabric.switch.clone());
        let sw = fabric.switch.clone();
        for bridge in bridges {
            ip_ok(&["-n", &sw, "link", "add", bridge, "type", "bridge"]);
            ip_ok(&["-n", &sw, "link", "set", bridge, "up"]);
        }
        for i in 1..=hosts {
            let ns = format!("{prefix}-h{i}");
            ip_ok(&["netns", "add", &ns]);
            fabric.created.push(ns.clone());
            let port = format!("p{i}");
            let ip_addr = Ipv4Addr::new(10, 213, subnet, u8::try_from(i).unwrap());
            // Both ends are made inside namespaces: nothing appears in the caller's namespace.
            ip_ok(&[
                "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ]);
            ip_ok(&["-n", &sw, "link", "set", &port, "master", bridges[0]]);
            ip_ok(&["-n", &sw, "link", "set", &port, "up"]);
            ip_ok(&["-n", &ns, "link", "set", "lo", "up"]);
            ip_ok(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{ip_addr}/24"),
                "dev",
                "eth0",
            ]);
            ip_ok(&["-n", &ns, "link", "set", "eth0", "up"]);
            fabric.hosts.push(Host {
                ns,
                ip: ip_addr,
                port,
            });
        }
        Ok(fabric)
    }

    /// Host `index` (0-based).
    pub fn host(&self, index: usize) -> &Host {
        &self.hosts[index]
    }

    /// The X of this fabric's `10.213.X.0/24`.
    pub fn subnet(&self) -> u8 {
        self.subnet
    }

    /// Plugs host `index`'s switch port into `bridge` (unplugging it from the one it was on).
    pub fn attach(&self, index: usize, bridge: &str) {
        let port = &self.hosts[index].port;
        ip_ok(&["-n", &self.switch, "link", "set", port, "master", bridge]);
    }
}

impl Drop for Fabric {
    fn drop(&mut self) {
        for ns in self.created.iter().rev() {
            let out = ip(&["netns", "del", ns]);
            if !out.status.success() {
                eprintln!(
                    "could not delete network namespace {ns}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        release_subnet(self.subnet);
    }
}

/// A command that runs `program` inside namespace `ns`.
pub fn in_ns(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).arg(program);
    cmd.stdin(Stdio::null());
    cmd
}

/// How to start one agent inside a host namespace.
pub struct NsLaunch<'a> {
    /// The `rover-agent` binary.
    pub binary: &'a str,
    /// Node name.
    pub name: &'a str,
    /// The host namespace.
    pub ns: &'a str,
    /// Gossip and cluster address.
    pub bind: SocketAddrV4,
    /// API address (inside the namespace).
    pub api: &'a str,
    /// Data dir (made if missing).
    pub data_dir: &'a Path,
    /// Cluster key file.
    pub key_file: &'a Path,
    /// Seed to join, if any.
    pub join: Option<SocketAddrV4>,
    /// Extra environment.
    pub env: &'a [(&'a str, &'a str)],
    /// Where stderr goes.
    pub log: &'a Path,
    /// A config file, if any.
    pub config: Option<&'a Path>,
    /// A command the agent runs under, which ends by exec-ing the binary given after it with
    /// the agent's arguments (for example capsh dropping a capability); empty: none.
    pub wrapper: &'a [&'a str],
}

/// One `rover-agent agent` process running in a host namespace.
#[derive(Debug)]
pub struct NsAgent {
    /// Node name.
    pub name: String,
    /// Its namespace.
    pub ns: String,
    /// Its data dir.
    pub data_dir: PathBuf,
    /// Its log (stderr).
    pub log: PathBuf,
    binary: String,
    api: String,
    /// `ip netns exec` execs the agent, so this is the agent's own PID.
    child: Option<Child>,
}

impl NsAgent {
    /// Starts the agent.
    pub fn spawn(launch: &NsLaunch<'_>) -> Self {
        std::fs::create_dir_all(launch.data_dir).unwrap();
        let mut cmd = match launch.wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = in_ns(launch.ns, program);
                cmd.args(args).arg(launch.binary);
                cmd
            }
            None => in_ns(launch.ns, launch.binary),
        };
        cmd.arg("agent");
        if let Some(config) = launch.config {
            cmd.arg("--config").arg(config);
        }
        cmd.args(["--node", launch.name])
            .args(["--bind", &launch.bind.to_string()])
            .args(["--api", launch.api])
            .arg("--data-dir")
            .arg(launch.data_dir)
            .arg("--key-file")
            .arg(launch.key_file);
        if let Some(seed) = launch.join {
            cmd.args(["--join", &seed.to_string()]);
        }
        for (key, value) in launch.env {
            cmd.env(key, value);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(launch.log)
            .unwrap();
        cmd.env_remove("ROVER_API")
            .env_remove("ROVER_DATA_DIR")
            .env_remove("ROVER_TOKEN_FILE")
            .stdout(Stdio::null())
            .stderr(log);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", launch.name));
        Self {
            name: launch.name.to_owned(),
            ns: launch.ns.to_owned(),
            data_dir: launch.data_dir.to_owned(),
            log: launch.log.to_owned(),
            binary: launch.binary.to_owned(),
            api: launch.api.to_owned(),
            child: Some(child),
        }
    }

    /// Waits until the agent wrote its API address (it serves from then on); false if it
    /// exited or `timeout` passed first.
    pub fn wait_ready(&mut self, timeout: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.data_dir.join("api-addr").exists() {
                return true;
            }
            if self
                .child
                .as_mut()
                .is_none_or(|c| c.try_wait().ok().flatten().is_some())
            {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// PID of the agent process (0 once killed).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// `rover-agent --api API --format json ARGS` inside the namespace, parsed.
    pub fn cli_json(&self, args: &[&str]) -> Option<Value> {
        let out = in_ns(&self.ns, &self.binary)
            .args(["--api", &self.api, "--format", "json"])
            .args(args)
            .env_remove("ROVER_API")
            .env_remove("ROVER_DATA_DIR")
            .env_remove("ROVER_TOKEN_FILE")
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// `GET path` on the API with curl inside the namespace, parsed; None unless 2xx.
    pub fn get_json(&self, path: &str) -> Option<Value> {
        let out = in_ns(&self.ns, "curl")
            .args(["-sf", "--noproxy", "*", "--max-time", "5"])
            .arg(format!("http://{}{path}", self.api))
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// `POST path` with a JSON body and the agent's token; (HTTP status, body). Status 0
    /// means curl got no answer.
    pub fn post_json(&self, path: &str, body: &str) -> (u16, String) {
        let token = std::fs::read_to_string(self.data_dir.join("token")).unwrap_or_default();
        let out = in_ns(&self.ns, "curl")
            .args(["-s", "--noproxy", "*", "--max-time", "15", "-X", "POST"])
            .args(["-H", "Content-Type: application/json"])
            .args(["-H", &format!("Authorization: Bearer {}", token.trim())])
            .args(["-d", body, "-w", "\n%{http_code}"])
            .arg(format!("http://{}{path}", self.api))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }

    /// The last `lines` lines of the agent's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Each panic the agent logged: its `panicked at` line and the message line after it.
    pub fn logged_panics(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines
            .iter()
            .enumerate()
            .filter(|(_, line)| line.contains("panicked at"))
            .map(|(i, line)| format!("{line} {}", lines.get(i + 1).unwrap_or(&"")))
            .collect()
    }

    /// Kills the agent (by its PID) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NsAgent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The tail of every agent's log and any panic an agent logged, for a failing test.
pub fn agents_report(agents: &[NsAgent]) -> String {
    let mut text = String::new();
    for agent in agents {
        text.push_str(&format!(
            "\n===== {} (pid {}, ns {}) last log lines =====\n{}\n",
            agent.name,
            agent.pid(),
            agent.ns,
            agent.log_tail(40)
        ));
        for panic in agent.logged_panics() {
            text.push_str(&format!("{} logged a panic: {panic}\n", agent.name));
        }
    }
    text
}

/// Agents of one cluster, one per host of a [`Fabric`], in a temp dir of their own. Dropping
/// it (also while unwinding from a panic) kills the agents first, then deletes the namespaces.
pub struct NsLab {
    /// The agents, `n1` first.
    pub agents: Vec<NsAgent>,
    /// The network they run on.
    pub fabric: Fabric,
    /// Key, config, data dirs and logs.
    pub dir: tempfile::TempDir,
}

impl Drop for NsLab {
    fn drop(&mut self) {
        for agent in &mut self.agents {
            agent.kill();
        }
        // `fabric` is dropped after this: its namespaces are empty by then.
    }
}

impl NsLab {
    /// Starts one agent per host of `fabric` (`n1` bootstraps, the rest join it) on `port`,
    /// with their API on `api` inside each namespace, the extra environment `env`, and the
    /// config file `config` makes (given the lab's dir), if any.
    pub fn start(
        fabric: Fabric,
        port: u16,
        api: &str,
        env: &[(&str, &str)],
        config: Option<&dyn Fn(&Path) -> String>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let binary = env!("CARGO_BIN_EXE_rover-agent");
        let key_file = dir.path().join("cluster.key");
        let key = Command::new(binary).arg("keygen").output().unwrap();
        assert!(key.status.success(), "keygen failed");
        std::fs::write(&key_file, &key.stdout).unwrap();
        let config_file = config.map(|make| {
            let path = dir.path().join("agent.toml");
            std::fs::write(&path, make(dir.path())).unwrap();
            path
        });
        let mut lab = Self {
            agents: Vec::new(),
            fabric,
            dir,
        };
        let seed = SocketAddrV4::new(lab.fabric.host(0).ip, port);
        for i in 0..lab.fabric.hosts.len() {
            let name = format!("n{}", i + 1);
            let host = lab.fabric.host(i).clone();
            let mut agent = NsAgent::spawn(&NsLaunch {
                binary,
                name: &name,
                ns: &host.ns,
                bind: SocketAddrV4::new(host.ip, port),
                api,
                data_dir: &lab.dir.path().join(&name),
                key_file: &key_file,
                join: (i > 0).then_some(seed),
                env,
                log: &lab.dir.path().join(format!("{name}.log")),
                config: config_file.as_deref(),
                wrapper: &[],
            });
            let ready = agent.wait_ready(Duration::from_secs(20));
            let pid = agent.pid();
            lab.agents.push(agent);
            if !ready {
                lab.fail(&format!("{name} did not come up in {}", host.ns));
            }
            // `ip netns exec` execs the agent: the PID we kill is the agent's own.
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() != "rover-agent" {
                lab.fail(&format!("pid {pid} of {name} is {comm:?}, not rover-agent"));
            }
        }
        lab
    }

    /// Starts agent `index` again on its data dir, as [`NsLab::start`] did (joining `n1` on
    /// `port`, the same `api`, `env`, and the lab's config file if there is one); false if it
    /// did not come up within 20 s.
    pub fn restart(&mut self, index: usize, port: u16, api: &str, env: &[(&str, &str)]) -> bool {
        let name = format!("n{}", index + 1);
        let host = self.fabric.host(index).clone();
        let dir = self.dir.path().to_owned();
        let seed = SocketAddrV4::new(self.fabric.host(0).ip, port);
        let _ = std::fs::remove_file(dir.join(&name).join("api-addr"));
        let config = dir.join("agent.toml");
        let mut agent = NsAgent::spawn(&NsLaunch {
            binary: env!("CARGO_BIN_EXE_rover-agent"),
            name: &name,
            ns: &host.ns,
            bind: SocketAddrV4::new(host.ip, port),
            api,
            data_dir: &dir.join(&name),
            key_file: &dir.join("cluster.key"),
            join: (index > 0).then_some(seed),
            env,
            log: &dir.join(format!("{name}.log")),
            config: config.exists().then_some(config.as_path()),
            wrapper: &[],
        });
        let ready = agent.wait_ready(Duration::from_secs(20));
        self.agents[index] = agent;
        ready
    }

    /// The agent named `name`.
    pub fn agent(&self, name: &str) -> &NsAgent {
        self.agents.iter().find(|a| a.name == name).unwrap()
    }

    /// Fails the test if any agent logged a panic (an agent must never panic, even when the
    /// cluster recovers around it).
    pub fn assert_no_panics(&self) {
        let panics: Vec<String> = self
            .agents
            .iter()
            .flat_map(|a| {
                a.logged_panics()
                    .into_iter()
                    .map(move |p| format!("{}: {p}", a.name))
            })
            .collect();
        assert!(panics.is_empty(), "agents panicked: {panics:#?}");
    }

    /// Panics with `message`, the tail of every agent's log and any panic an agent logged.
    pub fn fail(&self, message: &str) -> ! {
        let mut text = format!("{message}\n(test dir {})\n", self.dir.path().display());
        text.push_str(&agents_report(&self.agents));
        panic!("{text}");
    }
}
