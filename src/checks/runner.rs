//! The check runner: one task per configured check, running it on its interval (the first run
//! right away), debouncing the results and reporting every run as a [`CheckEvent`].
//!
//! The daemon keeps each check's latest outcome for status samples and raises or clears alerts
//! on [`Transition`]s. Tasks end when the event receiver is dropped.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::builtin;
use super::config::{CheckConfig, CheckKind};
use super::debounce::{Debouncer, Transition};
use super::external;
use super::outcome::CheckOutcome;

/// The shortest interval a task runs at, whatever the config says (a zero period would panic).
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// One run of one check.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct CheckEvent {
    /// The check's name.
    pub name: String,
    /// What this run found.
    pub outcome: CheckOutcome,
    /// The debounced state change this run completed, if any.
    pub transition: Option<Transition>,
    /// When the run finished, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// Starts one task per check, each sending a [`CheckEvent`] after every run; must be called
/// within a tokio runtime. The tasks stop when `events`' receiver is dropped.
pub fn spawn(configs: Vec<CheckConfig>, events: mpsc::Sender<CheckEvent>) -> Vec<JoinHandle<()>> {
    configs
        .into_iter()
        .map(|config| spawn_in_state(config, super::outcome::CheckState::Ok, events.clone()))
        .collect()
}

/// Starts one check's task with its debounced state already `state` (a check restarted by a
/// reload or after a panic goes on from where it was, rather than from OK).
pub fn spawn_in_state(
    config: CheckConfig,
    state: super::outcome::CheckState,
    events: mpsc::Sender<CheckEvent>,
) -> JoinHandle<()> {
    tokio::spawn(run_check_loop(config, state, events))
}

/// Runs a check of `kind` once, within `timeout` (past it, the outcome is UNKNOWN).
pub async fn run_once(kind: &CheckKind, timeout: Duration) -> CheckOutcome {
    match kind {
        CheckKind::External { command } => external::run(command, timeout).await,
        CheckKind::Tcp { address } => builtin::check_tcp(address, timeout).await,
        CheckKind::Http { url, expect } => builtin::check_http(url, *expect, timeout).await,
        CheckKind::Load { warn, crit } => {
            let (warn, crit) = (*warn, *crit);
            run_blocking(timeout, move || builtin::check_load(warn, crit)).await
        }
        CheckKind::Memory { warn, crit } => {
            let (warn, crit) = (*warn, *crit);
            run_blocking(timeout, move || builtin::check_memory(warn, crit)).await
        }
        CheckKind::Disk { path, warn, crit } => {
            let (path, warn, crit) = (path.clone(), *warn, *crit);
            run_blocking(timeout, move || builtin::check_disk(&path, warn, crit)).await
        }
        CheckKind::Process { name, min } => {
            let (name, min) = (name.clone(), *min);
            run_blocking(timeout, move || builtin::check_process(&name, min)).await
        }
    }
}

/// The life of one check's task: tick, run, debounce, report; until nobody listens.
async fn run_check_loop(
    config: CheckConfig,
    state: super::outcome::CheckState,
    events: mpsc::Sender<CheckEvent>,
) {
    let mut ticks = tokio::time::interval(config.interval.max(MIN_INTERVAL));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut debouncer = Debouncer::with_state(config.retries, state);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = events.closed() => break,
        }
        let outcome = run_once(&config.kind, config.timeout).await;
        let transition = debouncer.observe(&outcome);
        super::run_counts::CHECK_RUNS.count(&config.name, outcome.state);
        log_run(&config.name, &outcome, transition.as_ref());
        let event = CheckEvent {
            name: config.name.clone(),
            outcome,
            transition,
            at_ms: now_ms(),
        };
        if events.send(event).await.is_err() {
            break;
        }
    }
    tracing::debug!(check = %config.name, "check task stops: no receiver");
}

/// Runs a blocking check on tokio's blocking pool, giving up (UNKNOWN) after `timeout`; a
/// thread stuck in the kernel (a hung NFS `statvfs`) is left to finish on its own.
async fn run_blocking<F>(timeout: Duration, check: F) -> CheckOutcome
where
    F: FnOnce() -> CheckOutcome + Send + 'static,
{
    match tokio::time::timeout(timeout, tokio::task::spawn_blocking(check)).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => CheckOutcome::unknown(format!("check failed: {e}")),
        Err(_) => CheckOutcome::unknown(format!(
            "timed out after {}",
            humantime::format_duration(timeout)
        )),
    }
}

fn log_run(name: &str, outcome: &CheckOutcome, transition: Option<&Transition>) {
    match transition {
        Some(t) => tracing::info!(
            check = %name,
            from = %t.from,
            to = %t.to,
            summary = %t.summary,
            "check changed state"
        ),
        None => tracing::debug!(
            check = %name,
            state = %outcome.state,
            summary = %outcome.summary,
            "check ran"
        ),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::checks::outcome::CheckState;

    const CHECK_DUMMY: &str = "/usr/lib/nagios/plugins/check_dummy";
    const PATIENCE: Duration = Duration::from_secs(10);

    fn check(name: &str, kind: CheckKind, interval: Duration, retries: u32) -> CheckConfig {
        CheckConfig {
            name: name.into(),
            kind,
            interval,
            timeout: Duration::from_secs(5),
            retries,
            severity: None,
        }
    }

    fn dummy(code: &str, text: &str) -> CheckKind {
        assert!(
            Path::new(CHECK_DUMMY).exists(),
            "{CHECK_DUMMY} is missing: run scripts/test.sh, which installs monitoring-plugins-basic"
        );
        CheckKind::External {
            command: vec![CHECK_DUMMY.into(), code.into(), text.into()],
        }
    }

    async fn next(events: &mut mpsc::Receiver<CheckEvent>) -> CheckEvent {
        tokio::time::timeout(PATIENCE, events.recv())
            .await
            .expect("no check event in time")
            .expect("event channel closed")
    }

    #[tokio::test]
    async fn a_failing_plugin_becomes_critical_on_the_second_run_with_two_retries() {
        let (tx, mut rx) = mpsc::channel(8);
        let config = check("boom", dummy("2", "boom"), Duration::from_millis(100), 2);
        let _tasks = spawn(vec![config], tx);

        let first = next(&mut rx).await;
        assert_eq!(first.name, "boom");
        assert_eq!(
            first.outcome,
            CheckOutcome::new(CheckState::Critical, "CRITICAL: boom")
        );
        assert_eq!(first.transition, None);
        assert!(first.at_ms > 0);

        let second = next(&mut rx).await;
        assert_eq!(
            second.transition,
            Some(Transition {
                from: CheckState::Ok,
                to: CheckState::Critical,
                summary: "CRITICAL: boom".into()
            })
        );
        assert!(
            second.at_ms >= first.at_ms + 50,
            "{} then {}",
            first.at_ms,
            second.at_ms
        );
        assert_eq!(next(&mut rx).await.transition, None);
    }

    #[tokio::test]
    async fn the_first_run_is_immediate_and_every_check_reports_under_its_name() {
        let hour = Duration::from_secs(3600);
        let (tx, mut rx) = mpsc::channel(8);
        let _tasks = spawn(
            vec![
                check("fine", dummy("0", "fine"), hour, 1),
                check(
                    "load",
                    CheckKind::Load {
                        warn: 1e6,
                        crit: 1e6,
                    },
                    hour,
                    1,
                ),
            ],
            tx,
        );
        let mut seen = [next(&mut rx).await, next(&mut rx).await];
        seen.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(seen[0].name, "fine");
        assert_eq!(
            seen[0].outcome,
            CheckOutcome::new(CheckState::Ok, "OK: fine")
        );
        assert_eq!(seen[1].name, "load");
        assert!(seen[1]
            .outcome
            .summary
            .starts_with("LOAD OK - load average: "));
        assert!(seen.iter().all(|e| e.transition.is_none()));
    }

    #[tokio::test]
    async fn tasks_stop_when_the_receiver_is_dropped() {
        let (tx, mut rx) = mpsc::channel(1);
        let tasks = spawn(
            vec![
                check("idle", dummy("0", "x"), Duration::from_secs(3600), 1),
                check("busy", dummy("0", "x"), Duration::from_millis(10), 1),
            ],
            tx,
        );
        next(&mut rx).await;
        drop(rx);
        for task in tasks {
            tokio::time::timeout(PATIENCE, task)
                .await
                .expect("check task still runs")
                .unwrap();
        }
    }

    #[tokio::test]
    async fn run_once_runs_every_builtin_kind() {
        let secs = Duration::from_secs(5);
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        let kinds = [
            CheckKind::Memory {
                warn: 100.0,
                crit: 100.0,
            },
            CheckKind::Disk {
                path: "/".into(),
                warn: 100.0,
                crit: 100.0,
            },
            CheckKind::Process {
                name: comm.trim_end().into(),
                min: 1,
            },
        ];
        for kind in kinds {
            let outcome = run_once(&kind, secs).await;
            assert_eq!(outcome.state, CheckState::Ok, "{kind:?}: {outcome:?}");
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let tcp = run_once(&CheckKind::Tcp { address }, secs).await;
        assert_eq!(tcp.state, CheckState::Ok, "{tcp:?}");
        let http = CheckKind::Http {
            url: format!("http://{}/", "127.0.0.1:1"),
            expect: None,
        };
        assert_eq!(run_once(&http, secs).await.state, CheckState::Critical);
    }

    #[tokio::test]
    async fn a_blocking_check_past_its_timeout_is_unknown() {
        let outcome = run_blocking(Duration::from_millis(50), || {
            std::thread::sleep(Duration::from_millis(500));
            CheckOutcome::new(CheckState::Ok, "late")
        })
        .await;
        assert_eq!(outcome, CheckOutcome::unknown("timed out after 50ms"));
    }
}
