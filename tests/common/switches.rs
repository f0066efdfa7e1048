//! A switched lab in network namespaces for the topology tests: one namespace per switch
//! (a bridge `br0`, a real Debian `lldpd` sending LLDP, and CDP too if asked, on every port),
//! switches joined by uplinks to the first one, one namespace per host plugged into a switch
//! port, and a separate management network (its own namespace and bridge) where the SMTP
//! sink listens, so that every host can send mail whatever happens to the data network.
//!
//! A host's port can move to another switch (the veth end changes namespace), a switch's
//! bridge can go down, and the agents run in their host namespaces. Only addresses inside
//! namespaces made here are used: data 10.215.X.0/24, management 10.216.X.0/24. Dropping
//! the lab kills the agents, the lldpds and the sink (by PID), then deletes the namespaces.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::common::smtp::{SmtpSink, SmtpSinkOptions};
use crate::common::wait_for;
use crate::netns::{in_ns, is_root, NsAgent, NsLaunch, Unavailable};

/// The port agents use for gossip and the cluster TCP.
pub const PORT: u16 = 7946;
/// The API address inside each host namespace.
pub const API: &str = "127.0.0.1:7001";

/// How a switch speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaks {
    /// LLDP only.
    Lldp,
    /// LLDP and CDP (`lldpd -ccc -l`).
    LldpAndCdp,
    /// Nothing: a dumb bridge.
    Nothing,
}

/// One switch of the lab.
#[derive(Debug, Clone, Copy)]
pub struct SwitchSpec {
    /// Its system name (`sw-a`).
    pub name: &'static str,
    /// What it sends.
    pub speaks: Speaks,
}

struct Switch {
    spec: SwitchSpec,
    ns: String,
    lldpd: Option<Child>,
    socket: PathBuf,
}

/// One host of the lab.
#[derive(Debug, Clone)]
pub struct LabHost {
    /// Node name (`n1`, ...).
    pub name: String,
    /// Its namespace.
    pub ns: String,
    /// Its data address.
    pub ip: Ipv4Addr,
    /// Its port name in the switch namespace (`p1`, ...).
    pub port: String,
    /// The switch (index) its port is on.
    pub switch: usize,
}

/// The lab. See the module docs.
pub struct Lab {
    /// Agents, in host order (empty until [`Lab::start_agents`]).
    pub agents: Vec<NsAgent>,
    /// The SMTP sink on the management network.
    pub smtp: SmtpSink,
    /// Hosts, `n1` first.
    pub hosts: Vec<LabHost>,
    /// The X of the lab's subnets.
    pub x: u8,
    /// Temp dir: key, config, data dirs, logs, lldpd sockets.
    pub dir: tempfile::TempDir,
    switches: Vec<Switch>,
    mail_ns: String,
    created: Vec<String>,
    tx_interval_s: u32,
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} {args:?}: {e}"))
}

/// Runs `ip ARGS`; panics with its stderr when it fails.
pub fn ip(args: &[&str]) {
    let out = run("ip", args);
    assert!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Whether Debian's lldpd is installed (scripts/test.sh installs it).
pub fn have_lldpd() -> bool {
    Command::new("lldpd")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Says loudly why a lab test is skipped.
pub fn skip(test: &str, why: &str) {
    eprintln!(
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !!! SKIPPED {test}: {why}. It needs root, `ip netns add` and Debian's lldpd\n\
         !!! (scripts/test.sh installs it).\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    );
}

impl Lab {
    /// Builds switches `switches` and one host per entry of `host_switch` (the index of the
    /// switch its port is on) and starts the SMTP sink; [`Lab::start_switches`] starts the
    /// lldpds (sending every `tx_interval_s`). `tag`: a few letters naming the test.
    pub fn build(
        tag: &str,
        switches: &[SwitchSpec],
        host_switch: &[usize],
        tx_interval_s: u32,
    ) -> Result<Lab, Unavailable> {
        static LABS: AtomicUsize = AtomicUsize::new(0);
        if !is_root() {
            return Err(Unavailable::NotRoot);
        }
        let pid = std::process::id();
        let prefix = format!("rtop{pid}-{tag}-{}", LABS.fetch_add(1, Ordering::Relaxed));
        let x = u8::try_from(10 + pid % 240).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mail_ns = format!("{prefix}-mail");
        let out = run("ip", &["netns", "add", &mail_ns]);
        if !out.status.success() {
            return Err(Unavailable::NoPermission(
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            ));
        }
        let mut created = vec![mail_ns.clone()];
        // The lab owns every namespace from here on: a panic below still deletes them.
        let guard = NamespaceGuard(&mut created);
        ip(&["-n", &mail_ns, "link", "set", "lo", "up"]);
        ip(&["-n", &mail_ns, "link", "add", "mbr", "type", "bridge"]);
        ip(&[
            "-n",
            &mail_ns,
            "addr",
            "add",
            &format!("10.216.{x}.254/24"),
            "dev",
            "mbr",
        ]);
        ip(&["-n", &mail_ns, "link", "set", "mbr", "up"]);
        let mut lab_switches = Vec::new();
        for (j, spec) in switches.iter().enumerate() {
            let ns = format!("{prefix}-s{j}");
            ip(&["netns", "add", &ns]);
            guard.0.push(ns.clone());
            ip(&["-n", &ns, "link", "add", "br0", "type", "bridge"]);
            ip(&["-n", &ns, "link", "set", "br0", "up"]);
            // lldpd takes its chassis id from this interface: a fixed MAC per switch.
            ip(&[
                "-n",
                &ns,
                "link",
                "add",
                "chassis",
                "type",
                "veth",
                "peer",
                "name",
                "chassis-peer",
            ]);
            let mac = format!("02:00:00:{x:02x}:0a:{j:02x}");
            ip(&["-n", &ns, "link", "set", "chassis", "address", &mac]);
            ip(&["-n", &ns, "link", "set", "chassis", "up"]);
            ip(&["-n", &ns, "link", "set", "chassis-peer", "up"]);
            if j > 0 {
                let first = &lab_switches_ns(&lab_switches)[0];
                let (near, far) = (format!("up{j}"), "up0".to_owned());
                ip(&[
                    "-n", first, "link", "add", &near, "type", "veth", "peer", "name", &far,
                    "netns", &ns,
                ]);
                ip(&["-n", first, "link", "set", &near, "master", "br0"]);
                ip(&["-n", first, "link", "set", &near, "up"]);
                ip(&["-n", &ns, "link", "set", &far, "master", "br0"]);
                ip(&["-n", &ns, "link", "set", &far, "up"]);
            }
            lab_switches.push(Switch {
                spec: *spec,
                socket: dir.path().join(format!("lldpd-{j}.sock")),
                ns,
                lldpd: None,
            });
        }
        let mut hosts = Vec::new();
        for (i, &switch) in host_switch.iter().enumerate() {
            let n = i + 1;
            let ns = format!("{prefix}-h{n}");
            ip(&["netns", "add", &ns]);
            guard.0.push(ns.clone());
            let port = format!("p{n}");
            let sw = &lab_switches[switch].ns;
            let host_ip = Ipv4Addr::new(10, 215, x, u8::try_from(n).unwrap());
            ip(&[
                "-n", sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ]);
            ip(&["-n", sw, "link", "set", &port, "master", "br0"]);
            ip(&["-n", sw, "link", "set", &port, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{host_ip}/24"),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            let mport = format!("m{n}");
            ip(&[
                "-n", &mail_ns, "link", "add", &mport, "type", "veth", "peer", "name", "mgmt0",
                "netns", &ns,
            ]);
            ip(&["-n", &mail_ns, "link", "set", &mport, "master", "mbr"]);
            ip(&["-n", &mail_ns, "link", "set", &mport, "up"]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("10.216.{x}.{n}/24"),
                "dev",
                "mgmt0",
            ]);
            ip(&["-n", &ns, "link", "set", "mgmt0", "up"]);
            hosts.push(LabHost {
                name: format!("n{n}"),
                ns,
                ip: host_ip,
                port,
                switch,
            });
        }
        let smtp = SmtpSink::start_with(SmtpSinkOptions {
            listen_in: Some((mail_ns.clone(), format!("10.216.{x}.254"))),
            ..SmtpSinkOptions::default()
        });
        std::mem::forget(guard);
        let lab = Lab {
            agents: Vec::new(),
            smtp,
            hosts,
            x,
            dir,
            switches: lab_switches,
            mail_ns,
            created,
            tx_interval_s,
        };
        Ok(lab)
    }

    /// Starts every switch's lldpd.
    pub fn start_switches(&mut self) {
        for j in 0..self.switches.len() {
            self.start_lldpd(j);
        }
    }

    /// Starts switch `j`'s lldpd (if it speaks) and sets its name, interval and port ids.
    pub fn start_lldpd(&mut self, j: usize) {
        let tx_interval_s = self.tx_interval_s;
        let switch = &mut self.switches[j];
        let protocols: &[&str] = match switch.spec.speaks {
            Speaks::Nothing => return,
            Speaks::Lldp => &[],
            Speaks::LldpAndCdp => &["-ccc", "-l"],
        };
        std::fs::create_dir_all("/run/lldpd").unwrap();
        let pidfile = self.dir.path().join(format!("lldpd-{j}.pid"));
        let log = std::fs::File::create(self.dir.path().join(format!("lldpd-{j}.log"))).unwrap();
        let child = in_ns(&switch.ns, "lldpd")
            .args(["-d", "-u"])
            .arg(&switch.socket)
            .arg("-p")
            .arg(&pidfile)
            .args(["-I", "p*,chassis", "-C", "chassis"])
            .args(protocols)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        switch.lldpd = Some(child);
        let socket = switch.socket.clone();
        let ready = wait_for(Duration::from_secs(20), || socket.exists());
        assert!(
            ready.is_some(),
            "lldpd of switch {j} did not open its socket"
        );
        let interval = tx_interval_s.to_string();
        let name = switch.spec.name;
        for args in [
            vec!["configure", "system", "hostname", name],
            vec!["configure", "lldp", "portidsubtype", "ifname"],
            vec!["configure", "lldp", "tx-interval", interval.as_str()],
        ] {
            let out = Command::new("lldpcli")
                .arg("-u")
                .arg(&socket)
                .args(&args)
                .output()
                .unwrap();
            assert!(out.status.success(), "lldpcli {args:?}: {out:?}");
        }
    }

    /// Asks every running lldpd to send its frames now (`lldpcli update`): a nudge for a
    /// switch whose first frames no host heard (seen once in CI under load: lldpd started,
    /// configured, and sent nothing for 60 s).
    pub fn nudge_switches(&self) {
        for switch in self.switches.iter().filter(|s| s.lldpd.is_some()) {
            let _ = Command::new("lldpcli")
                .arg("-u")
                .arg(&switch.socket)
                .arg("update")
                .output();
        }
    }

    /// Stops switch `j`'s lldpd (by its PID).
    pub fn stop_lldpd(&mut self, j: usize) {
        if let Some(mut child) = self.switches[j].lldpd.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts one agent per host (`n1` bootstraps, the others join it), with `env` and the
    /// config `extra` after the lab's own (email to the sink, listening on eth0 only).
    /// `wrapper(host index)` may wrap an agent's command (see [`NsLaunch::wrapper`]).
    pub fn start_agents(&mut self, env: &[(&str, &str)], extra: &str) {
        self.write_config(extra);
        for i in 0..self.hosts.len() {
            self.start_agent(i, env, &[]);
        }
    }

    /// Writes the cluster key and the agents' config (email to the sink, listening on eth0
    /// only, then `extra`); [`Lab::start_agent`] uses them.
    pub fn write_config(&self, extra: &str) {
        let binary = env!("CARGO_BIN_EXE_rover-agent");
        let key_file = self.dir.path().join("cluster.key");
        let key = Command::new(binary).arg("keygen").output().unwrap();
        std::fs::write(&key_file, &key.stdout).unwrap();
        let config = self.dir.path().join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "[topology]\ninterfaces = [\"eth0\"]\n\n[[notify.email]]\nsmtp_host = \
                 \"10.216.{}.254\"\nsmtp_port = {}\ntls = \"none\"\nfrom = \
                 \"rover@example.org\"\nto = [\"ops@example.org\"]\n{extra}",
                self.x,
                self.smtp.port()
            ),
        )
        .unwrap();
    }

    /// (Re)starts host `i`'s agent (killing the old process first), under `wrapper`.
    pub fn start_agent(&mut self, i: usize, env: &[(&str, &str)], wrapper: &[&str]) {
        let binary = env!("CARGO_BIN_EXE_rover-agent");
        let host = self.hosts[i].clone();
        let seed = (i > 0).then_some(SocketAddrV4::new(self.hosts[0].ip, PORT));
        let data_dir = self.dir.path().join(&host.name);
        let agent = NsAgent::spawn(&NsLaunch {
            binary,
            name: &host.name,
            ns: &host.ns,
            bind: SocketAddrV4::new(host.ip, PORT),
            api: API,
            data_dir: &data_dir,
            key_file: &self.dir.path().join("cluster.key"),
            join: seed,
            env,
            log: &self.dir.path().join(format!("{}.log", host.name)),
            config: Some(&self.dir.path().join("agent.toml")),
            wrapper,
        });
        let _ = std::fs::remove_file(data_dir.join("api-addr"));
        if let Some(slot) = self.agents.iter_mut().find(|a| a.name == host.name) {
            slot.kill();
            *slot = agent;
        } else {
            self.agents.push(agent);
        }
        let agent = self
            .agents
            .iter_mut()
            .find(|a| a.name == host.name)
            .unwrap();
        if !agent.wait_ready(Duration::from_secs(30)) {
            let name = host.name.clone();
            self.fail(&format!("{name} did not come up"));
        }
    }

    /// The agent of `name`.
    pub fn agent(&self, name: &str) -> &NsAgent {
        self.agents.iter().find(|a| a.name == name).unwrap()
    }

    /// Kills `name`'s agent (kill -9, by PID).
    pub fn kill(&mut self, name: &str) {
        if let Some(agent) = self.agents.iter_mut().find(|a| a.name == name) {
            agent.kill();
        }
    }

    /// `name`'s `topology --format json`.
    pub fn topology(&self, name: &str) -> Option<Value> {
        self.agent(name).cli_json(&["topology"])
    }

    /// `rover-agent --api API --format FORMAT topology` on `name`, as text.
    pub fn topology_as(&self, name: &str, format: &str) -> String {
        let agent = self.agent(name);
        let out = in_ns(&agent.ns, env!("CARGO_BIN_EXE_rover-agent"))
            .args(["--api", API, "--format", format, "topology"])
            .output()
            .unwrap();
        assert!(out.status.success(), "topology --format {format}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// Waits until every agent in `names` sees every other one alive.
    pub fn wait_converged(&self, names: &[&str], timeout: Duration) {
        let done = wait_for(timeout, || {
            names.iter().all(|n| {
                self.agent(n).cli_json(&["members"]).is_some_and(|m| {
                    names.iter().all(|other| {
                        m.as_array().is_some_and(|list| {
                            list.iter()
                                .any(|x| x["name"] == *other && x["status"] == "alive")
                        })
                    })
                })
            })
        });
        if done.is_none() {
            self.fail(&format!("{names:?} did not converge within {timeout:?}"));
        }
    }

    /// Moves host `i`'s port to switch `to`.
    pub fn move_port(&mut self, i: usize, to: usize) {
        let host = &self.hosts[i];
        let from = &self.switches[host.switch].ns;
        let target = &self.switches[to].ns;
        ip(&["-n", from, "link", "set", &host.port, "netns", target]);
        ip(&["-n", target, "link", "set", &host.port, "master", "br0"]);
        ip(&["-n", target, "link", "set", &host.port, "up"]);
        self.hosts[i].switch = to;
    }

    /// Takes switch `j`'s bridge down (or up again).
    pub fn set_bridge(&self, j: usize, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.switches[j].ns, "link", "set", "br0", state]);
    }

    /// Plugs host `i`'s port into a second bridge of its switch, `br1`, alone (the switch
    /// still speaks to it): the host is cut off from every other host.
    pub fn isolate(&self, i: usize) {
        let host = &self.hosts[i];
        let ns = &self.switches[host.switch].ns;
        if !run("ip", &["-n", ns, "link", "show", "br1"])
            .status
            .success()
        {
            ip(&["-n", ns, "link", "add", "br1", "type", "bridge"]);
            ip(&["-n", ns, "link", "set", "br1", "up"]);
        }
        ip(&["-n", ns, "link", "set", &host.port, "master", "br1"]);
    }

    /// Cuts switch `j` (j > 0) off the first switch, or joins it again.
    pub fn set_uplink(&self, j: usize, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&[
            "-n",
            &self.switches[0].ns,
            "link",
            "set",
            &format!("up{j}"),
            state,
        ]);
    }

    /// The namespace of switch `j` (for raw-socket injection).
    pub fn switch_ns(&self, j: usize) -> &str {
        &self.switches[j].ns
    }

    /// Panics with `message`, every agent's log tail and logged panics, and the mails.
    pub fn fail(&self, message: &str) -> ! {
        let mut text = format!("{message}\n(lab dir {})\n", self.dir.path().display());
        text.push_str(&crate::netns::agents_report(&self.agents));
        for j in 0..self.switches.len() {
            let log = self.dir.path().join(format!("lldpd-{j}.log"));
            let log = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            text.push_str(&format!("\n===== lldpd of switch {j} (last lines) =====\n"));
            for line in tail.iter().rev() {
                text.push_str(line);
                text.push('\n');
            }
            let stats = Command::new("lldpcli")
                .arg("-u")
                .arg(&self.switches[j].socket)
                .args(["show", "statistics", "summary"])
                .output();
            if let Ok(out) = stats {
                text.push_str(&String::from_utf8_lossy(&out.stdout));
            }
        }
        let subjects: Vec<String> = self
            .smtp
            .messages()
            .into_iter()
            .map(|m| m.subject)
            .collect();
        text.push_str(&format!("\nmails so far: {subjects:?}\n"));
        panic!("{text}");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for agent in &mut self.agents {
            agent.kill();
        }
        for j in 0..self.switches.len() {
            self.stop_lldpd(j);
        }
        delete_namespaces(&self.created);
    }
}

fn lab_switches_ns(switches: &[Switch]) -> Vec<String> {
    switches.iter().map(|s| s.ns.clone()).collect()
}

/// Deletes namespaces if the build panics half-way.
struct NamespaceGuard<'a>(&'a mut Vec<String>);

impl Drop for NamespaceGuard<'_> {
    fn drop(&mut self) {
        delete_namespaces(self.0);
    }
}

fn delete_namespaces(names: &[String]) {
    for ns in names.iter().rev() {
        let out = run("ip", &["netns", "del", ns]);
        if !out.status.success() {
            eprintln!(
                "could not delete network namespace {ns}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
}

/// The hosts `report` (a `topology --format json`) shows behind the switch labelled
/// `switch`, as (host, port) sorted.
pub fn hosts_behind(report: &Value, switch: &str) -> Vec<(String, String)> {
    let nodes = report["map"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let Some(id) = nodes
        .iter()
        .find(|n| n["kind"] == "switch" && n["label"] == switch)
        .and_then(|n| n["id"].as_str().map(str::to_owned))
    else {
        return Vec::new();
    };
    let mut hosts: Vec<(String, String)> = report["map"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|e| e["from"] == id.as_str())
        .filter_map(|e| {
            let host = e["to"].as_str()?.strip_prefix("host:")?.to_owned();
            Some((host, e["port"].as_str()?.to_owned()))
        })
        .collect();
    hosts.sort();
    hosts
}

/// The hosts `report` shows on `subnet` with no switch.
pub fn unswitched(report: &Value, subnet: &str) -> Vec<String> {
    let from = format!("subnet:{subnet}");
    let mut hosts: Vec<String> = report["map"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|e| e["from"] == from.as_str())
        .filter_map(|e| e["to"].as_str()?.strip_prefix("host:").map(str::to_owned))
        .collect();
    hosts.sort();
    hosts
}

/// The data subnet of lab `x`.
pub fn data_subnet(x: u8) -> String {
    format!("10.215.{x}.0/24")
}

/// A fixture file's path.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}
