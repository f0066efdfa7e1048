//! Reload: SIGHUP and `rover-agent reload` re-read the config file of a running agent (one
//! real process on loopback, a real Nagios plugin, an exec channel writing to a file).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{binary, wait_for};
use serde_json::Value;

const CHECK_TCP: &str = "/usr/lib/nagios/plugins/check_tcp";

/// One agent started with `--config` (and without `--bind`, so the file's `gossip.bind` counts).
struct Reloadable {
    dir: tempfile::TempDir,
    child: Child,
}

impl Reloadable {
    fn start(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("agent.toml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
        let child = Command::new(binary())
            .arg("agent")
            .arg("--config")
            .arg(dir.path().join("agent.toml"))
            .args(["--node", "n1", "--api", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .env_remove("ROVER_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let agent = Self { dir, child };
        let ready = wait_for(Duration::from_secs(20), || {
            agent.data().join("api-addr").exists() && agent.log().contains("running")
        });
        assert!(ready.is_some(), "agent did not start: {}", agent.log());
        agent
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("agent.log")).unwrap_or_default()
    }

    fn write_config(&self, config: &str) {
        std::fs::write(self.path("agent.toml"), config).unwrap();
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(binary())
            .args(args)
            .arg("--data-dir")
            .arg(self.data())
            .output()
            .unwrap()
    }

    fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn alert_state(&self, name: &str) -> Option<String> {
        let out = self.cli(&["alerts", "--format", "json"]);
        let alerts: Vec<Value> = serde_json::from_slice(&out.stdout).ok()?;
        alerts
            .iter()
            .find(|a| a["name"] == name)
            .and_then(|a| a["state"].as_str().map(str::to_owned))
    }
}

impl Drop for Reloadable {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// An exec channel whose script appends `$ROVER_INCIDENTS` to `calls` in `dir`.
fn exec_channel(dir: &Path) -> String {
    let script = dir.join("page.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$ROVER_INCIDENTS\" >> {}/calls\n",
            dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    format!("[[notify.exec]]\ncommand = [\"{}\"]\n", script.display())
}

fn port_check(name: &str, port: u16) -> String {
    format!(
        "[[check]]\nname = \"{name}\"\ncommand = [\"{CHECK_TCP}\", \"-H\", \"127.0.0.1\", \"-p\", \"{port}\"]\ninterval = \"1s\"\nretries = 1\n"
    )
}

const BASE: &str = "[gossip]\nbind = \"127.0.0.1:0\"\n[notify]\ngroup_wait = \"1h\"\n";

#[test]
fn a_sighup_starts_a_new_check_whose_incident_goes_out_on_a_new_exec_channel() {
    let agent = Reloadable::start(BASE);
    let exec = exec_channel(agent.dir.path());
    let check = port_check("svc-port", closed_port());
    agent.write_config(&format!(
        "[gossip]\nbind = \"127.0.0.1:0\"\n[notify]\ngroup_wait = \"0s\"\n{exec}{check}"
    ));
    agent.hangup();
    let raised = wait_for(Duration::from_secs(20), || {
        agent.alert_state("svc-port").is_some_and(|s| s == "firing")
    });
    assert!(
        raised.is_some(),
        "no alert from the new check: {}",
        agent.log()
    );
    // group_wait was 1 h before the reload: only the new 0 s lets it out this soon.
    let sent = wait_for(Duration::from_secs(30), || {
        std::fs::read_to_string(agent.path("calls")).is_ok_and(|calls| !calls.trim().is_empty())
    });
    assert!(
        sent.is_some(),
        "nothing on the new channel: {}",
        agent.log()
    );
    let log = agent.log();
    assert!(log.contains("config reloaded"), "{log}");
    assert!(log.contains("check \\\"svc-port\\\" added"), "{log}");
}

#[test]
fn reload_with_an_invalid_file_exits_1_naming_the_key_and_the_old_config_keeps_working() {
    let check = port_check("old-port", closed_port());
    let agent = Reloadable::start(&format!("{BASE}{check}"));
    agent.write_config(&format!(
        "[gossip]\nbind = \"127.0.0.1:0\"\n[notify]\ngroup_wait = \"soon\"\n{check}"
    ));
    let out = agent.cli(&["reload"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("notify.group_wait"), "{stderr}");
    assert!(
        agent.log().contains("config file refused"),
        "{}",
        agent.log()
    );
    // The running check goes on: its alert fires, and a good file is taken afterwards.
    let raised = wait_for(Duration::from_secs(20), || {
        agent.alert_state("old-port").is_some_and(|s| s == "firing")
    });
    assert!(raised.is_some(), "the old check stopped: {}", agent.log());
    agent.write_config(BASE);
    let out = agent.cli(&["reload"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("applied: check \"old-port\" removed"),
        "{stdout}"
    );
    let cleared = wait_for(Duration::from_secs(10), || {
        agent.alert_state("old-port").is_none_or(|s| s != "firing")
    });
    assert!(
        cleared.is_some(),
        "a removed check's alert stays: {}",
        agent.log()
    );
}

#[test]
fn a_changed_gossip_bind_is_reported_as_needing_a_restart() {
    let agent = Reloadable::start(BASE);
    agent.write_config(&BASE.replace("127.0.0.1:0", "127.0.0.1:1"));
    let out = agent.cli(&["reload", "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["needs_restart"], serde_json::json!(["gossip.bind"]));
    assert_eq!(report["applied"], serde_json::json!([]));
    let warned = wait_for(Duration::from_secs(5), || {
        agent.log().contains("only a restart applies them")
    });
    assert!(warned.is_some(), "{}", agent.log());
    // Until a restart it stays so; the file put back as the agent runs it: nothing to say.
    let again: Value =
        serde_json::from_slice(&agent.cli(&["reload", "--format", "json"]).stdout).unwrap();
    assert_eq!(again["needs_restart"], serde_json::json!(["gossip.bind"]));
    agent.write_config(BASE);
    let restored: Value =
        serde_json::from_slice(&agent.cli(&["reload", "--format", "json"]).stdout).unwrap();
    assert_eq!(restored["needs_restart"], serde_json::json!([]));
}
