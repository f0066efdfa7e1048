//! The daemon's restartable tasks: storage upkeep and periodic loops over shared handles, which lose nothing when
//! started again (see [`super::supervisor`]). Each is made by a closure, so the supervisor can
//! make it anew.

use std::collections::BTreeMap;
use std::sync::Arc;

use rover_membership::MembershipHandle;
use rover_storage::{CheckLevel, Storage, StorageHealth};
use tokio::sync::{mpsc, watch, Notify};

use super::supervisor::{joined, Supervisor};
use super::{housekeeping, storage_health};
use crate::alerts::{self, AlertsHandle};
use crate::checks::config::CheckConfig;
use crate::checks::outcome::CheckState;
use crate::checks::runner::CheckEvent;
use crate::config::Config;
use crate::status::Sampler;

/// The handles the restartable tasks share.
pub struct Shared {
    /// The database.
    pub storage: Storage,
    /// The membership owner task.
    pub membership: MembershipHandle,
    /// The alerts owner task.
    pub alerts: AlertsHandle,
    /// Wakes the alert sync.
    pub sync_now: Arc<Notify>,
    /// Where the storage upkeep reports the last completed flush.
    pub flushed: watch::Sender<u64>,
    /// Where the storage upkeep publishes the storage health.
    pub health: watch::Sender<StorageHealth>,
    /// The worst check state, for status samples.
    pub worst_check: watch::Receiver<CheckLevel>,
    /// Where checks report their results.
    pub check_events: mpsc::Sender<CheckEvent>,
    /// Each check's debounced state, kept by the check-results loop.
    pub debounced: watch::Receiver<BTreeMap<String, CheckState>>,
    /// The grid-control records (synced on the alert sync's connection).
    pub grid: crate::grid::GridHandle,
}

/// Starts storage upkeep (flushes, checkpoints, recovery), history compaction, alert sync, status samples and every check.
pub fn spawn_restartable(supervisor: &mut Supervisor, config: &Config, shared: Shared) {
    let storage = shared.storage.clone();
    let (flushed, health) = (shared.flushed, shared.health);
    supervisor.spawn_restartable("storage", move || {
        let upkeep = storage_health::run(storage.clone(), flushed.clone(), health.clone());
        async move {
            // It returns once storage is closed for good; the daemon stops on the health
            // watch then, with the reason.
            upkeep.await;
            std::future::pending::<()>().await;
        }
    });

    let storage = shared.storage.clone();
    let (raw, all) = (config.raw_retention, config.retention);
    supervisor.spawn_restartable("compaction", move || {
        housekeeping::compact_loop(storage.clone(), raw, all)
    });

    let (membership, alerts) = (shared.membership.clone(), shared.alerts.clone());
    let (interval, now, grid) = (config.sync_interval, shared.sync_now, shared.grid);
    supervisor.spawn_restartable("alert-sync", move || {
        alerts::sync::run(
            interval,
            membership.clone(),
            alerts.clone(),
            grid.clone(),
            now.clone(),
        )
    });

    let sampler = SamplerParts {
        host: config.node_name.clone(),
        team: config.team.clone(),
        interval: config.status_interval,
        full_every: config.status_full_every,
        mounts: config.mounts.clone(),
        storage: shared.storage,
        membership: shared.membership,
        worst_check: shared.worst_check,
    };
    supervisor.spawn_restartable("status", move || sampler.sampler().run());

    for check in &config.checks {
        spawn_check(
            supervisor,
            check.clone(),
            shared.check_events.clone(),
            shared.debounced.clone(),
        );
    }
}

/// The supervisor's name of a check's task.
pub fn check_task(name: &str) -> String {
    format!("check:{name}")
}

/// Starts one check under the supervisor; each (re)start goes on from the check's last
/// debounced state in `debounced`.
pub fn spawn_check(
    supervisor: &mut Supervisor,
    check: CheckConfig,
    events: mpsc::Sender<CheckEvent>,
    debounced: watch::Receiver<BTreeMap<String, CheckState>>,
) {
    supervisor.spawn_restartable(check_task(&check.name), move || {
        let state = debounced
            .borrow()
            .get(&check.name)
            .copied()
            .unwrap_or(CheckState::Ok);
        let handle = crate::checks::runner::spawn_in_state(check.clone(), state, events.clone());
        joined(handle)
    });
}

/// What a [`Sampler`] is made of, kept to make a new one on every restart.
struct SamplerParts {
    host: String,
    team: String,
    interval: std::time::Duration,
    full_every: std::time::Duration,
    mounts: Vec<std::path::PathBuf>,
    storage: Storage,
    membership: MembershipHandle,
    worst_check: watch::Receiver<CheckLevel>,
}

impl SamplerParts {
    fn sampler(&self) -> Sampler {
        Sampler {
            host: self.host.clone(),
            team: self.team.clone(),
            interval: self.interval,
            full_every: self.full_every,
            mounts: self.mounts.clone(),
            storage: self.storage.clone(),
            membership: self.membership.clone(),
            worst_check: self.worst_check.clone(),
        }
    }
}
