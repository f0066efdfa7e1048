//! Background duties of the daemon: folding and expiring history, and turning check results into alerts and the worst-check state.

use std::collections::BTreeMap;
use std::time::Duration;

use rover_membership::runtime::unix_ms;
use rover_storage::{CheckLevel, HistoryStore, Storage};
use tokio::sync::{mpsc, watch};

use crate::alerts::AlertsHandle;
use crate::checks::outcome::CheckState;
use crate::checks::runner::CheckEvent;

/// How often history retention runs.
pub const COMPACT_EVERY: Duration = Duration::from_secs(600);
/// After retention, sled's file is rewritten when it takes more than this many times its live
/// data (and more than [`REWRITE_MIN_BYTES`]): sled never shrinks its file by itself.
pub const REWRITE_FACTOR: f64 = 4.0;
/// A file smaller than this is never rewritten.
pub const REWRITE_MIN_BYTES: u64 = 8 * 1024 * 1024;

/// Applies history retention now and every [`COMPACT_EVERY`], then gives back the space of
/// what retention (history's, and the ledger's `incidents.retention`) dropped by rewriting
/// sled's file when it is bloated.
pub async fn compact_loop(storage: Storage, raw_retention: Duration, retention: Duration) {
    loop {
        let history = storage.history();
        let now = unix_ms();
        // Checked, never truncated: a retention past u64 ms keeps everything.
        let (raw, all) = (
            u64::try_from(raw_retention.as_millis()).unwrap_or(u64::MAX),
            u64::try_from(retention.as_millis()).unwrap_or(u64::MAX),
        );
        match tokio::task::spawn_blocking(move || history.compact(now, raw, all)).await {
            Ok(Ok(stats)) if stats.folded + stats.expired > 0 => {
                tracing::info!(?stats, "history compacted")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "history compaction failed"),
            Err(e) => tracing::error!(error = %e, "history compaction task failed"),
        }
        let rewriting = storage.clone();
        let rewrite = tokio::task::spawn_blocking(move || {
            rewriting.rewrite_if_bloated(REWRITE_FACTOR, REWRITE_MIN_BYTES)
        });
        match rewrite.await {
            Ok(Ok(Some(stats))) => tracing::info!(?stats, "storage rewritten"),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "storage rewrite failed"),
            Err(e) => tracing::error!(error = %e, "storage rewrite task failed"),
        }
        tokio::time::sleep(COMPACT_EVERY).await;
    }
}

/// The level a check state counts as in status samples.
pub fn level_of(state: CheckState) -> CheckLevel {
    match state {
        CheckState::Ok => CheckLevel::Ok,
        CheckState::Warning => CheckLevel::Warning,
        CheckState::Critical => CheckLevel::Critical,
        CheckState::Unknown => CheckLevel::Unknown,
    }
}

/// The configured checks, by name, with the severity each one's alert takes if the config
/// overrides it; a reload publishes a new roster.
pub type CheckRoster = BTreeMap<String, Option<rover_storage::Severity>>;

/// Consumes check events: keeps the worst debounced state current and raises or clears the
/// check's alert on each transition. A check that leaves the roster (a reload removed it) is
/// forgotten and its alert cleared; late events of it are ignored.
pub async fn check_loop(
    mut events: mpsc::Receiver<CheckEvent>,
    alerts: AlertsHandle,
    worst: watch::Sender<CheckLevel>,
    mut roster: watch::Receiver<CheckRoster>,
    debounced: watch::Sender<BTreeMap<String, CheckState>>,
) {
    let mut states: BTreeMap<String, CheckLevel> = BTreeMap::new();
    let mut roster_open = true;
    loop {
        let event = tokio::select! {
            event = events.recv() => match event {
                Some(event) => event,
                None => return,
            },
            changed = roster.changed(), if roster_open => {
                if changed.is_err() {
                    // No reloads any more: the roster stays as it is.
                    roster_open = false;
                    continue;
                }
                let configured = roster.borrow_and_update().clone();
                let gone: Vec<String> = states
                    .keys()
                    .filter(|name| !configured.contains_key(*name))
                    .cloned()
                    .collect();
                for name in gone {
                    let was = states.remove(&name);
                    debounced.send_modify(|d| {
                        d.remove(&name);
                    });
                    if was.is_some_and(|l| l != CheckLevel::Ok) {
                        let cleared = alerts
                            .clear(&name, Some("check removed from the config"), false)
                            .await;
                        if let Err(e) = cleared {
                            tracing::warn!(check = %name, error = %e, "removed check's alert not cleared");
                        }
                    }
                }
                let _ = worst.send(states.values().copied().max().unwrap_or(CheckLevel::Ok));
                continue;
            }
        };
        let Some(transition) = event.transition else {
            continue;
        };
        let Some(overridden) = roster.borrow().get(&event.name).copied() else {
            continue;
        };
        states.insert(event.name.clone(), level_of(transition.to));
        debounced.send_modify(|d| {
            d.insert(event.name.clone(), transition.to);
        });
        let now_worst = states.values().copied().max().unwrap_or(CheckLevel::Ok);
        let _ = worst.send(now_worst);
        let result = match transition.to {
            // A check's alert is applied and gossiped even when it cannot be stored here.
            CheckState::Ok => alerts
                .clear(&event.name, Some(&transition.summary), false)
                .await
                .map(|_| ()),
            bad => {
                let severity = overridden.unwrap_or(match bad {
                    CheckState::Critical => rover_storage::Severity::Critical,
                    _ => rover_storage::Severity::Warning,
                });
                alerts
                    .raise(&event.name, severity, &transition.summary, false)
                    .await
                    .map(|_| ())
            }
        };
        match result {
            Err(crate::alerts::AlertChangeError::Stopped) => return,
            Err(e) => tracing::warn!(check = %event.name, error = %e, "check alert not changed"),
            Ok(()) => {}
        }
    }
}
