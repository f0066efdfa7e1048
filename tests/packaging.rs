//! The systemd unit the Debian package installs passes `systemd-analyze verify` (Debian's
//! systemd; `scripts/test.sh` installs it when missing) with no warning, and says what the
//! issue asks of it; the man page and completions the package ships come from the binary.

#![allow(clippy::unwrap_used)]

use std::process::Command;

const UNIT: &str = include_str!("../packaging/rover-agent.service");

#[test]
fn the_systemd_unit_verifies_without_a_warning() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("!!! SKIPPED: systemd-analyze is not installed (scripts/test.sh installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // verify checks that ExecStart exists: point it at the binary under test.
    let unit = UNIT.replace("/usr/bin/rover-agent", env!("CARGO_BIN_EXE_rover-agent"));
    let path = dir.path().join("rover-agent.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    assert!(
        !stderr.contains("rover-agent.service"),
        "warnings about the unit: {stderr}"
    );
}

#[test]
fn the_unit_restarts_on_failure_keeps_state_in_var_lib_and_only_adds_cap_net_raw() {
    for line in [
        "Restart=on-failure",
        "StateDirectory=rover-agent",
        "AmbientCapabilities=CAP_NET_RAW",
        "CapabilityBoundingSet=CAP_NET_RAW",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ExecStart=/usr/bin/rover-agent agent --config /etc/rover-agent/agent.toml",
    ] {
        assert!(UNIT.lines().any(|l| l == line), "{line} missing");
    }
}

#[test]
fn the_binary_prints_its_man_page_and_completions() {
    let bin = env!("CARGO_BIN_EXE_rover-agent");
    let man = Command::new(bin).arg("man").output().unwrap();
    assert!(man.status.success());
    assert!(String::from_utf8_lossy(&man.stdout).contains(".TH rover-agent 1"));
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(bin)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("members"),
            "{shell}"
        );
    }
    let bad = Command::new(bin)
        .args(["completions", "nosh"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
