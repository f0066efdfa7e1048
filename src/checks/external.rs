//! External checks: Nagios plugins run as child processes.
//!
//! The plugin runs without a shell, with stdin from `/dev/null`, in its own process group. Its
//! exit code is its state (0 OK, 1 WARNING, 2 CRITICAL, anything else UNKNOWN) and the first
//! line of its output, without the perfdata after `|`, is the summary. At most [`OUTPUT_CAP`]
//! bytes of stdout (and of stderr, used only when stdout is blank) are kept; the rest is read and
//! thrown away so the plugin never blocks on a full pipe. A plugin still running at the timeout
//! is killed with its whole process group and counts as UNKNOWN.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use super::outcome::{CheckOutcome, CheckState};

/// Bytes of a plugin's stdout (and stderr) kept; the rest is discarded.
pub const OUTPUT_CAP: usize = 8 * 1024;
/// The longest summary, in characters; longer ones are cut and end with `…`.
pub const SUMMARY_MAX_CHARS: usize = 300;

/// Runs the plugin `command` (program, then arguments) and maps its result; never fails, as
/// every problem (no such program, timeout, signal) is itself an UNKNOWN outcome.
pub async fn run(command: &[String], timeout: Duration) -> CheckOutcome {
    let Some((program, args)) = command.split_first() else {
        return CheckOutcome::unknown("empty command");
    };
    let spawned = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => return CheckOutcome::unknown(spawn_failure(program, &e)),
    };
    let pid = child.id();
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());

    let finished = tokio::time::timeout(timeout, async {
        tokio::join!(
            read_capped(stdout, OUTPUT_CAP),
            read_capped(stderr, OUTPUT_CAP),
            child.wait()
        )
    })
    .await;
    match finished {
        Ok((stdout, stderr, Ok(status))) => outcome_of(status, &stdout, &stderr),
        Ok((_, _, Err(e))) => CheckOutcome::unknown(format!("cannot wait for {program}: {e}")),
        Err(_elapsed) => {
            kill_group(pid);
            // Reaps the child; it is already dead unless it left its process group.
            if let Err(e) = child.kill().await {
                tracing::debug!(program, error = %e, "killing a timed-out plugin failed");
            }
            CheckOutcome::unknown(format!(
                "timed out after {}",
                humantime::format_duration(timeout)
            ))
        }
    }
}

/// The summary of a plugin's output: its first non-blank line, without perfdata (from `|`),
/// trimmed, at most [`SUMMARY_MAX_CHARS`] characters.
pub fn plugin_summary(output: &str) -> String {
    let line = output
        .lines()
        .map(|line| line.split('|').next().unwrap_or_default().trim())
        .find(|line| !line.is_empty())
        .unwrap_or_default();
    cap_chars(line, SUMMARY_MAX_CHARS)
}

fn spawn_failure(program: &str, error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::NotFound => format!("plugin not found: {program}"),
        io::ErrorKind::PermissionDenied => {
            format!("plugin not executable: {program} (permission denied)")
        }
        _ => format!("cannot run {program}: {error}"),
    }
}

/// Reads up to `cap` bytes, then reads on to the end and drops the rest; read errors end it.
pub(crate) async fn read_capped<R: AsyncRead + Unpin>(reader: Option<R>, cap: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut reader) = reader else {
        return kept;
    };
    let limit = u64::try_from(cap).unwrap_or(u64::MAX);
    if (&mut reader)
        .take(limit)
        .read_to_end(&mut kept)
        .await
        .is_ok()
    {
        // A plugin whose output is cut must not block on a full pipe: drain it.
        let _ = tokio::io::copy(&mut reader, &mut tokio::io::sink()).await;
    }
    kept
}

/// Maps a finished plugin's exit status and output.
fn outcome_of(status: ExitStatus, stdout: &[u8], stderr: &[u8]) -> CheckOutcome {
    let output = if stdout.iter().any(|b| !b.is_ascii_whitespace()) {
        stdout
    } else {
        stderr
    };
    let summary = plugin_summary(&String::from_utf8_lossy(output));
    let Some(code) = status.code() else {
        let signal = status.signal().map_or_else(
            || "a signal".to_owned(),
            |number| match Signal::try_from(number) {
                Ok(signal) => signal.as_str().to_owned(),
                Err(_) => format!("signal {number}"),
            },
        );
        return CheckOutcome::unknown(with_detail(&summary, &format!("killed by {signal}")));
    };
    let state = CheckState::from_exit_code(code);
    let summary = match code {
        0..=3 if !summary.is_empty() => summary,
        0..=3 => format!("no output (exit code {code})"),
        _ => with_detail(&summary, &format!("exit code {code}")),
    };
    CheckOutcome::new(state, summary)
}

/// `summary (detail)`, or just `detail` without a summary; capped like any summary.
fn with_detail(summary: &str, detail: &str) -> String {
    if summary.is_empty() {
        return cap_chars(detail, SUMMARY_MAX_CHARS);
    }
    cap_chars(&format!("{summary} ({detail})"), SUMMARY_MAX_CHARS)
}

/// `text` cut to `max` characters, the last one `…` when something was cut.
fn cap_chars(text: &str, max: usize) -> String {
    if text.chars().nth(max).is_none() {
        return text.to_owned();
    }
    let mut capped: String = text.chars().take(max.saturating_sub(1)).collect();
    capped.push('…');
    capped
}

/// Kills the plugin's process group (its pid), so its own children die with it.
pub(crate) fn kill_group(pid: Option<u32>) {
    let Some(pid) = pid.and_then(|pid| i32::try_from(pid).ok()) else {
        return;
    };
    if let Err(e) = killpg(Pid::from_raw(pid), Signal::SIGKILL) {
        tracing::debug!(pid, error = %e, "killing a timed-out plugin's process group failed");
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Instant;

    use super::*;

    const PLUGINS: &str = "/usr/lib/nagios/plugins";

    /// The path of a real Nagios plugin, or a failure that says how to install them.
    fn plugin(name: &str) -> String {
        let path = format!("{PLUGINS}/{name}");
        assert!(
            Path::new(&path).exists(),
            "{path} is missing: run scripts/test.sh, which installs monitoring-plugins-basic"
        );
        path
    }

    async fn run_plugin(name: &str, args: &[&str]) -> CheckOutcome {
        let mut command = vec![plugin(name)];
        command.extend(args.iter().map(|a| a.to_string()));
        run(&command, Duration::from_secs(10)).await
    }

    async fn run_sh(script: &str, timeout: Duration) -> CheckOutcome {
        let command = ["/bin/sh", "-c", script].map(String::from);
        run(&command, timeout).await
    }

    #[test]
    fn the_summary_is_the_first_line_without_perfdata() {
        assert_eq!(
            plugin_summary("LOAD OK - load average: 0.10|load1=0.1;;\nmore\n"),
            "LOAD OK - load average: 0.10"
        );
        assert_eq!(plugin_summary("  DISK OK  \r\nsecond line"), "DISK OK");
        assert_eq!(plugin_summary("\n \n| perf only\nPROCS OK\n"), "PROCS OK");
        assert_eq!(plugin_summary(""), "");
    }

    #[test]
    fn long_summaries_are_cut_to_300_characters() {
        let long = "é".repeat(1000);
        let summary = plugin_summary(&long);
        assert_eq!(summary.chars().count(), SUMMARY_MAX_CHARS);
        assert!(summary.ends_with("é…"));
        let exact = "x".repeat(SUMMARY_MAX_CHARS);
        assert_eq!(plugin_summary(&exact), exact);
    }

    #[tokio::test]
    async fn output_beyond_the_cap_is_read_and_dropped() {
        let big = vec![b'x'; 100_000];
        let kept = read_capped(Some(&big[..]), OUTPUT_CAP).await;
        assert_eq!(kept.len(), OUTPUT_CAP);
        assert!(read_capped(None::<&[u8]>, OUTPUT_CAP).await.is_empty());
    }

    #[tokio::test]
    async fn check_dummy_exit_codes_map_to_states() {
        assert_eq!(
            run_plugin("check_dummy", &["0", "fine"]).await,
            CheckOutcome::new(CheckState::Ok, "OK: fine")
        );
        assert_eq!(
            run_plugin("check_dummy", &["1", "hmm"]).await,
            CheckOutcome::new(CheckState::Warning, "WARNING: hmm")
        );
        assert_eq!(
            run_plugin("check_dummy", &["2", "boom"]).await,
            CheckOutcome::new(CheckState::Critical, "CRITICAL: boom")
        );
        assert_eq!(
            run_plugin("check_dummy", &["3", "what"]).await,
            CheckOutcome::new(CheckState::Unknown, "UNKNOWN: what")
        );
    }

    #[tokio::test]
    async fn check_load_with_huge_thresholds_is_ok_without_perfdata() {
        let outcome = run_plugin(
            "check_load",
            &["-w", "1000,1000,1000", "-c", "2000,2000,2000"],
        )
        .await;
        assert_eq!(outcome.state, CheckState::Ok, "{outcome:?}");
        assert!(outcome.summary.starts_with("LOAD OK"), "{outcome:?}");
        assert!(!outcome.summary.contains('|'), "{outcome:?}");
    }

    #[tokio::test]
    async fn check_disk_thresholds_are_free_space_not_used_space() {
        let ok = run_plugin("check_disk", &["-w", "0%", "-c", "0%", "-p", "/"]).await;
        assert_eq!(ok.state, CheckState::Ok, "{ok:?}");
        assert!(ok.summary.starts_with("DISK OK"), "{ok:?}");
        // "less than 100% free" is always true: CRITICAL.
        let critical = run_plugin("check_disk", &["-w", "100%", "-c", "100%", "-p", "/"]).await;
        assert_eq!(critical.state, CheckState::Critical, "{critical:?}");
    }

    #[tokio::test]
    async fn check_procs_counts_processes_by_command_name() {
        // check_procs skips itself and its parent (this test), so count a child we start.
        let mut sleeper = tokio::process::Command::new("sleep")
            .arg("30")
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let found = run_plugin("check_procs", &["-C", "sleep", "-c", "1:"]).await;
        assert_eq!(found.state, CheckState::Ok, "{found:?}");
        assert!(found.summary.starts_with("PROCS OK"), "{found:?}");
        let none = run_plugin("check_procs", &["-C", "no-such-proc", "-c", "1:"]).await;
        assert_eq!(none.state, CheckState::Critical, "{none:?}");
        sleeper.kill().await.unwrap();
    }

    #[tokio::test]
    async fn check_tcp_is_ok_on_a_listener_and_critical_once_it_closes() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port().to_string();
        let args = ["-H", "127.0.0.1", "-p", port.as_str()];
        let open = run_plugin("check_tcp", &args).await;
        assert_eq!(open.state, CheckState::Ok, "{open:?}");
        assert!(open.summary.starts_with("TCP OK"), "{open:?}");
        drop(listener);
        let closed = run_plugin("check_tcp", &args).await;
        assert_eq!(closed.state, CheckState::Critical, "{closed:?}");
        assert!(closed.summary.contains("Connection refused"), "{closed:?}");
    }

    #[tokio::test]
    async fn a_missing_or_unrunnable_plugin_is_unknown() {
        let missing = run(&["/nonexistent/check_x".to_owned()], Duration::from_secs(1)).await;
        assert_eq!(
            missing,
            CheckOutcome::unknown("plugin not found: /nonexistent/check_x")
        );
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("check_noexec");
        std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
        let script = script.to_str().unwrap().to_owned();
        assert_eq!(
            run(std::slice::from_ref(&script), Duration::from_secs(1)).await,
            CheckOutcome::unknown(format!(
                "plugin not executable: {script} (permission denied)"
            ))
        );
        assert_eq!(
            run(&[], Duration::from_secs(1)).await,
            CheckOutcome::unknown("empty command")
        );
    }

    #[tokio::test]
    async fn a_plugin_past_its_timeout_is_unknown_and_returns_fast() {
        let started = Instant::now();
        let outcome = run_sh("sleep 5", Duration::from_millis(200)).await;
        assert_eq!(outcome, CheckOutcome::unknown("timed out after 200ms"));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_timeout_kills_the_plugins_children_too() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
        let outcome = run_sh(&script, Duration::from_millis(300)).await;
        assert_eq!(outcome.state, CheckState::Unknown);
        let pid = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .to_owned();
        let deadline = Instant::now() + Duration::from_secs(5);
        // Gone, or a zombie waiting for a reaper.
        while let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            let state = stat.rsplit(')').next().unwrap().split_whitespace().next();
            if state == Some("Z") {
                break;
            }
            assert!(Instant::now() < deadline, "sleep {pid} still runs: {stat}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn huge_output_is_capped_and_does_not_block_the_plugin() {
        let outcome = run_sh(
            "head -c 100000 /dev/zero | tr '\\0' x; echo; echo second line; exit 1",
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(outcome.state, CheckState::Warning);
        assert_eq!(outcome.summary.chars().count(), SUMMARY_MAX_CHARS);
        assert!(outcome.summary.starts_with("xxxx") && outcome.summary.ends_with('…'));
    }

    #[tokio::test]
    async fn stderr_is_the_summary_only_when_stdout_is_blank() {
        let secs = Duration::from_secs(10);
        assert_eq!(
            run_sh("echo ' '; echo oops >&2; exit 2", secs).await,
            CheckOutcome::new(CheckState::Critical, "oops")
        );
        assert_eq!(
            run_sh("echo out; echo err >&2; exit 1", secs).await,
            CheckOutcome::new(CheckState::Warning, "out")
        );
        assert_eq!(
            run_sh("exit 1", secs).await,
            CheckOutcome::new(CheckState::Warning, "no output (exit code 1)")
        );
    }

    #[tokio::test]
    async fn odd_exit_codes_and_signals_are_unknown_and_say_so() {
        let secs = Duration::from_secs(10);
        assert_eq!(
            run_sh("echo hi; exit 7", secs).await,
            CheckOutcome::unknown("hi (exit code 7)")
        );
        assert_eq!(
            run_sh("kill -9 $$", secs).await,
            CheckOutcome::unknown("killed by SIGKILL")
        );
    }
}
