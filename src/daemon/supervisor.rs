//! Every long-lived task of the daemon runs under one [`Supervisor`]: a `JoinSet` that the
//! daemon's main loop polls, with a name per task.
//!
//! - A **critical** task (it owns state no one can rebuild: the membership core, the alert
//!   table, the leadership, the incident engine, the listeners) that ends while the agent runs
//!   is a [`TaskFailure`]: the daemon logs it by name and exits non-zero, so systemd restarts
//!   the whole agent rather than leaving half of it working.
//! - A **restartable** task (a periodic loop over shared handles: flushing, compaction, alert
//!   sync, status samples, each check) is started again after a backoff, at most
//!   [`RESTART_LIMIT`] times within [`RESTART_WINDOW`]; past that it is a failure too.
//! - Shutdown is cooperative: [`Supervisor::shutdown`] cancels the token; a task that watches
//!   the token itself ([`Stop::Itself`]) ends on its own, any other is dropped at its next
//!   await; tasks still running after the grace period are aborted and named.
//!
//! A test-only fault switch, honoured by debug builds only, panics a task on purpose:
//! `ROVER_TEST_PANIC=<task>:<delay>[,<task>:<delay>...]` (for example `incidents:3s`). It fires
//! once per task name, so a restartable task is seen to come back.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::task::{JoinError, JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A restartable task that ended this many times within [`RESTART_WINDOW`] is a failure.
pub const RESTART_LIMIT: usize = 5;
/// See [`RESTART_LIMIT`].
pub const RESTART_WINDOW: Duration = Duration::from_secs(300);
/// The first restart waits this long; each further one within the window twice as long.
const RESTART_BACKOFF: Duration = Duration::from_secs(1);

/// The environment variable of the test-only fault switch (debug builds only).
pub const FAULT_SWITCH: &str = "ROVER_TEST_PANIC";

type BoxedTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
type MakeTask = Box<dyn FnMut() -> BoxedTask + Send + 'static>;

/// How a task stops at shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Dropped at its next await once the token is cancelled.
    Dropped,
    /// It watches the token itself and ends on its own (within the grace period).
    Itself,
}

/// A task that ended while the agent was running, and how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {task} task {how}")]
pub struct TaskFailure {
    /// The task's name.
    pub task: String,
    /// `panicked: <message>`, `returned`, or `was aborted`.
    pub how: String,
}

struct Entry {
    name: String,
    stop: Stop,
    restart: Option<Restart>,
    abort: tokio::task::AbortHandle,
}

struct Restart {
    make: MakeTask,
    recent: VecDeque<Instant>,
}

/// The daemon's tasks. See the module docs.
pub struct Supervisor {
    tasks: JoinSet<()>,
    entries: HashMap<tokio::task::Id, Entry>,
    cancel: CancellationToken,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new()
    }
}

impl Supervisor {
    /// No tasks yet, and a fresh cancellation token.
    pub fn new() -> Self {
        Self {
            tasks: JoinSet::new(),
            entries: HashMap::new(),
            cancel: CancellationToken::new(),
        }
    }

    /// The token cancelled at shutdown, for tasks that stop by themselves.
    pub fn token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Runs `task` until shutdown; if it ends before, the agent stops.
    pub fn spawn_critical(
        &mut self,
        name: impl Into<String>,
        stop: Stop,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        self.start(name.into(), stop, Box::pin(task), None, Duration::ZERO);
    }

    /// Supervises a task some other module spawned (and returned the handle of) as critical; a
    /// panic inside it is reported with its message. At shutdown it is aborted.
    pub fn watch_critical(&mut self, name: impl Into<String>, handle: JoinHandle<()>) {
        self.spawn_critical(name, Stop::Dropped, joined(handle));
    }

    /// Runs the task `make` makes until shutdown, making a new one whenever it ends (see the
    /// module docs for the limits).
    pub fn spawn_restartable<F, T>(&mut self, name: impl Into<String>, mut make: F)
    where
        F: FnMut() -> T + Send + 'static,
        T: Future<Output = ()> + Send + 'static,
    {
        let mut make: MakeTask = Box::new(move || Box::pin(make()));
        let first = make();
        let restart = Restart {
            make,
            recent: VecDeque::new(),
        };
        self.start(
            name.into(),
            Stop::Dropped,
            first,
            Some(restart),
            Duration::ZERO,
        );
    }

    fn start(
        &mut self,
        name: String,
        stop: Stop,
        task: BoxedTask,
        restart: Option<Restart>,
        delay: Duration,
    ) {
        let cancel = self.cancel.clone();
        let fault = injected_panic(&name, restart.as_ref().map_or(0, |r| r.recent.len()));
        let label = name.clone();
        let guarded = async move {
            tokio::select! {
                biased;
                () = cancel.cancelled(), if stop == Stop::Dropped => {}
                () = async { tokio::time::sleep(delay).await; task.await } => {}
                () = fault_after(fault) => panic!("test fault: the {label} task panics ({FAULT_SWITCH})"),
            }
        };
        let handle = self.tasks.spawn(guarded);
        self.entries.insert(
            handle.id(),
            Entry {
                name,
                stop,
                restart,
                abort: handle,
            },
        );
    }

    /// Waits until a task ends for good while the agent runs, restarting restartable tasks on
    /// the way. Never resolves while every task runs. Cancel-safe.
    pub async fn failure(&mut self) -> TaskFailure {
        loop {
            let Some(joined) = self.tasks.join_next_with_id().await else {
                return std::future::pending().await;
            };
            let (id, how) = match joined {
                Ok((id, ())) => (id, "returned".to_owned()),
                Err(e) => (e.id(), describe(e)),
            };
            let Some(entry) = self.entries.remove(&id) else {
                continue;
            };
            if let Some(failure) = self.restart_or_fail(entry, how) {
                return failure;
            }
        }
    }

    fn restart_or_fail(&mut self, entry: Entry, how: String) -> Option<TaskFailure> {
        let Entry {
            name,
            stop,
            restart,
            ..
        } = entry;
        let Some(mut restart) = restart else {
            tracing::error!(task = %name, %how, "a task ended unexpectedly: stopping the agent");
            return Some(TaskFailure { task: name, how });
        };
        let now = Instant::now();
        while restart
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > RESTART_WINDOW)
        {
            restart.recent.pop_front();
        }
        if restart.recent.len() >= RESTART_LIMIT {
            tracing::error!(
                task = %name, %how, restarts = restart.recent.len(),
                "a task keeps ending: stopping the agent"
            );
            return Some(TaskFailure {
                task: name,
                how: format!(
                    "{how} ({} restarts within {RESTART_WINDOW:?})",
                    RESTART_LIMIT
                ),
            });
        }
        let delay = RESTART_BACKOFF * 2u32.pow(u32::try_from(restart.recent.len()).unwrap_or(0));
        restart.recent.push_back(now);
        tracing::error!(task = %name, %how, ?delay, "a task ended unexpectedly: restarting it");
        let task = (restart.make)();
        self.start(name, stop, task, Some(restart), delay);
        None
    }

    /// Cancels the token and waits up to `grace` for every task to end; aborts (and names)
    /// those still running then.
    pub async fn shutdown(mut self, grace: Duration) {
        self.cancel.cancel();
        let deadline = Instant::now() + grace;
        loop {
            match tokio::time::timeout_at(deadline, self.tasks.join_next_with_id()).await {
                Ok(None) => return,
                Ok(Some(Ok((id, ())))) => {
                    self.entries.remove(&id);
                }
                Ok(Some(Err(e))) => {
                    let name = self.entries.remove(&e.id()).map(|e| e.name);
                    if e.is_panic() {
                        tracing::error!(task = ?name, how = %describe(e), "a task failed while stopping");
                    }
                }
                Err(_) => {
                    let mut running: Vec<&str> =
                        self.entries.values().map(|e| e.name.as_str()).collect();
                    running.sort_unstable();
                    tracing::warn!(tasks = ?running, ?grace, "tasks did not stop in time: aborting them");
                    self.tasks.shutdown().await;
                    return;
                }
            }
        }
    }

    /// Stops the task named `name` on purpose (a check removed by a reload): it is aborted and
    /// forgotten, so its end is no failure. Whether there was one.
    pub fn stop(&mut self, name: &str) -> bool {
        let ids: Vec<tokio::task::Id> = self
            .entries
            .iter()
            .filter(|(_, e)| e.name == name)
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            if let Some(entry) = self.entries.remove(id) {
                entry.abort.abort();
            }
        }
        !ids.is_empty()
    }

    /// Names of the tasks running now, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.entries.values().map(|e| e.name.clone()).collect();
        names.sort_unstable();
        names
    }
}

/// Waits for a task spawned elsewhere, so that it can be supervised as if spawned here: its
/// panic is raised again with the same message, and dropping this future aborts it.
pub async fn joined(handle: JoinHandle<()>) {
    let mut handle = AbortOnDrop(handle);
    if let Err(e) = (&mut handle.0).await {
        if let Ok(payload) = e.try_into_panic() {
            std::panic::resume_unwind(payload);
        }
    }
}

/// Aborts a spawned task when its watcher is dropped (at shutdown).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How a task ended: `was aborted`, or `panicked: <message>`.
fn describe(error: JoinError) -> String {
    if error.is_cancelled() {
        return "was aborted".to_owned();
    }
    let Ok(payload) = error.try_into_panic() else {
        return "panicked".to_owned();
    };
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned());
    match message {
        Some(message) => format!("panicked: {message}"),
        None => "panicked".to_owned(),
    }
}

/// When the fault switch asks task `name` to panic (debug builds only, first run only).
fn injected_panic(name: &str, restarts: usize) -> Option<Duration> {
    if !cfg!(debug_assertions) || restarts > 0 {
        return None;
    }
    let spec = std::env::var(FAULT_SWITCH).ok()?;
    spec.split(',').find_map(|one| {
        let (task, after) = one.trim().split_once(':').unwrap_or((one.trim(), "0s"));
        (task == name)
            .then(|| humantime::parse_duration(after).ok())
            .flatten()
    })
}

async fn fault_after(after: Option<Duration>) {
    match after {
        Some(after) => tokio::time::sleep(after).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_critical_task_that_returns_is_a_failure_naming_it() {
        let mut supervisor = Supervisor::new();
        supervisor.spawn_critical("forever", Stop::Dropped, std::future::pending());
        supervisor.spawn_critical("quitter", Stop::Dropped, async {});
        let failure = supervisor.failure().await;
        assert_eq!(
            failure,
            TaskFailure {
                task: "quitter".into(),
                how: "returned".into()
            }
        );
        assert_eq!(failure.to_string(), "the quitter task returned");
        assert_eq!(supervisor.names(), vec!["forever".to_owned()]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_panic_in_a_watched_task_is_a_failure_naming_it() {
        let mut supervisor = Supervisor::new();
        let handle = tokio::spawn(async { panic!("boom") });
        supervisor.watch_critical("watched", handle);
        let failure = supervisor.failure().await;
        assert_eq!(failure.task, "watched");
        assert_eq!(failure.how, "panicked: boom");
    }

    #[tokio::test(start_paused = true)]
    async fn a_restartable_task_comes_back_until_it_ends_too_often() {
        let mut supervisor = Supervisor::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        supervisor.spawn_restartable("flaky", move || {
            counted.fetch_add(1, Ordering::Relaxed);
            async { panic!("flaky") }
        });
        let failure = supervisor.failure().await;
        assert_eq!(failure.task, "flaky");
        assert_eq!(runs.load(Ordering::Relaxed), RESTART_LIMIT + 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_stopped_on_purpose_is_no_failure() {
        let mut supervisor = Supervisor::new();
        supervisor.spawn_restartable("check:gone", std::future::pending);
        supervisor.spawn_critical("quitter", Stop::Dropped, async {
            tokio::time::sleep(Duration::from_secs(1)).await;
        });
        assert!(supervisor.stop("check:gone"));
        assert!(!supervisor.stop("check:gone"));
        assert_eq!(supervisor.failure().await.task, "quitter");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_lets_a_task_that_watches_the_token_finish_and_drops_the_others() {
        let mut supervisor = Supervisor::new();
        let token = supervisor.token();
        let finished = Arc::new(AtomicUsize::new(0));
        let done = finished.clone();
        supervisor.spawn_critical("cooperative", Stop::Itself, async move {
            token.cancelled().await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            done.fetch_add(1, Ordering::Relaxed);
        });
        supervisor.spawn_critical("plain", Stop::Dropped, std::future::pending());
        supervisor.shutdown(Duration::from_secs(5)).await;
        assert_eq!(finished.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_ignores_the_token_is_aborted_after_the_grace_period() {
        let mut supervisor = Supervisor::new();
        supervisor.spawn_critical("stubborn", Stop::Itself, std::future::pending());
        let started = Instant::now();
        supervisor.shutdown(Duration::from_secs(2)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }
}
