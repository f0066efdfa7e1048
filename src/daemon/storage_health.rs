//! Storage upkeep: a flush every second, a checkpoint (the watermark `open` checks) every few
//! seconds, and getting a failed database back without a restart (see
//! `rover_storage::health`). The state is published on a watch for `info`, `/metrics` and the
//! Raft node's restart.

use std::time::{Duration, Instant};

use rover_membership::runtime::unix_ms;
use rover_storage::{Storage, StorageHealth};
use tokio::sync::watch;

/// How often storage is flushed to disk.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How often the watermark is brought up to date.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);
/// While storage fails, how often getting it back is tried.
pub const RECOVER_EVERY: Duration = Duration::from_secs(2);

/// Runs until storage is closed for good (a reopen failed), which it returns so the daemon
/// stops. Flushes every [`FLUSH_EVERY`] and publishes the start time (unix ms) of the last
/// flush that completed on `flushed` (everything written before it is on disk); checkpoints
/// every [`CHECKPOINT_EVERY`]; while writes fail, tries [`Storage::recover`] every
/// [`RECOVER_EVERY`]. Publishes every change of health on `health`.
pub async fn run(
    storage: Storage,
    flushed: watch::Sender<u64>,
    health: watch::Sender<StorageHealth>,
) -> StorageHealth {
    let mut last_checkpoint = Instant::now();
    let mut last_attempt: Option<Instant> = None;
    loop {
        tokio::time::sleep(FLUSH_EVERY).await;
        let started = unix_ms();
        if storage.health().is_ok() {
            if storage.flush_async().await.is_ok() {
                let _ = flushed.send(started);
            }
            if last_checkpoint.elapsed() >= CHECKPOINT_EVERY && storage.health().is_ok() {
                last_checkpoint = Instant::now();
                checkpoint(&storage).await;
            }
        } else if last_attempt.is_none_or(|at| at.elapsed() >= RECOVER_EVERY) {
            last_attempt = Some(Instant::now());
            if recover(&storage).await {
                let _ = flushed.send(started);
                last_checkpoint = Instant::now();
                checkpoint(&storage).await;
            }
        }
        let now = storage.health();
        health.send_if_modified(|published| {
            let changed = *published != now;
            *published = now.clone();
            changed
        });
        if now.closed {
            return now;
        }
    }
}

/// Brings the watermark up to date, on a blocking thread (two fsyncs).
async fn checkpoint(storage: &Storage) {
    let storage = storage.clone();
    match tokio::task::spawn_blocking(move || storage.checkpoint(unix_ms())).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "storage checkpoint failed"),
        Err(e) => tracing::error!(error = %e, "storage checkpoint task failed"),
    }
}

/// One try at getting the database back, on a blocking thread; true if it worked.
async fn recover(storage: &Storage) -> bool {
    let storage = storage.clone();
    match tokio::task::spawn_blocking(move || storage.recover()).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "storage still failing");
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "storage recovery task failed");
            false
        }
    }
}

/// Waits until storage is closed for good; never returns while it is open.
pub async fn closed(mut health: watch::Receiver<StorageHealth>) -> StorageHealth {
    loop {
        let now = health.borrow_and_update().clone();
        if now.closed {
            return now;
        }
        if health.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
