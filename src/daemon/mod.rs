//! The daemon: opens the data dir, starts the membership, alerts, checks, status and cluster-port
//! tasks and the API under one [`supervisor::Supervisor`], and owns shutdown (graceful leave
//! on the first signal or `leave`; a non-zero exit naming the task when a task fails).

mod events;
mod housekeeping;
pub mod log_sink;
pub mod open;
pub mod reload;
pub mod signals;
pub mod storage_health;
pub mod supervisor;
mod tasks;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rover_membership::runtime::{self, unix_ms};
use rover_membership::{CoreSettings, MembershipHandle, NodeIdentity, Tunables};
use rover_storage::{CheckLevel, MemberStore, MetaStore, Storage};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use self::supervisor::{Stop, Supervisor, TaskFailure};

use self::events::{EventRouter, GENERATION_KEY};
use crate::alerts::{self, AlertsContext};
use crate::api::server::{self, ApiState, Control};
use crate::config::Config;
use crate::data_dir::DataDir;
use crate::incidents::EngineContext;
use crate::leadership::{self, LeadershipSettings};
use crate::peer::server::PeerServer;
use rover_election::policy::DueRules;

/// When messages fall due, from `[notify]`: a notification pending twice as long as a send may
/// take is taken over even from a holder that still looks alive; closed incidents go after
/// `incidents.retention`.
pub(crate) fn due_rules(config: &Config) -> DueRules {
    let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    DueRules {
        group_wait_ms: ms(config.notify.group_wait),
        repeat_interval_ms: config.notify.repeat_interval.map_or(0, ms),
        orphan_after_ms: ms(crate::notify::SEND_BUDGET * 2),
        retention_ms: ms(config.incidents_retention),
    }
}

/// File in the data dir holding the API address the agent listens on.
pub const API_ADDR_FILE: &str = "api-addr";
/// File in the data dir holding the address of the read-only dashboard listener (`ui.bind`).
pub const UI_ADDR_FILE: &str = "ui-addr";

/// The running agent. See the module docs.
pub struct Daemon;

impl Daemon {
    /// Runs until `shutdown` resolves or a `leave` request arrives; both leave gracefully.
    /// Without a [`reload::ConfigSource`], a reload is refused.
    pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<()> {
        Self::run_reloadable(config, None, shutdown).await
    }

    /// [`Daemon::run`], reloading from `source` on SIGHUP and `POST /v1/reload`.
    pub async fn run_reloadable(
        config: Config,
        source: Option<reload::ConfigSource>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        let data_dir = DataDir::open(&config.data_dir)?;
        let opened = open::open_storage(&data_dir)?;
        let storage = opened.storage.clone();
        let start_keys = crate::grid::start::keys_at_start(&data_dir, &config)?;
        let (keyring, invited) = (start_keys.state.ring.clone(), start_keys.invited.clone());
        let token = data_dir.load_or_create_token()?;
        let identity = NodeIdentity {
            name: config.node_name.clone(),
            team: config.team.clone(),
            addr: config.advertise,
            generation: next_generation(&storage)?,
            tags: config.tags.clone(),
        };
        let generation = identity.generation;
        let (events, events_inbox) = crate::introspection::spawn();
        let settings = CoreSettings {
            identity,
            tunables: Tunables::from(config.profile),
            keyring,
            rng_seed: rand::random(),
        };
        let (events_tx, mut membership_events) = mpsc::unbounded_channel();
        let (membership, membership_task, cluster_port) =
            bind_gossip(settings, config.bind, events_tx).await?;
        let grid = crate::grid::start::start(
            &storage,
            &opened.node_key,
            &data_dir,
            &membership,
            start_keys,
            &config,
        )?;

        let (alerts, alerts_task) = alerts::spawn(AlertsContext {
            team: config.team.clone(),
            host: config.node_name.clone(),
            storage: storage.clone(),
            membership: membership.clone(),
            events: events.clone(),
        })?;
        let sync_now = Arc::new(Notify::new());
        let (worst_tx, worst_rx) = watch::channel(CheckLevel::Ok);
        let (flushed_tx, flushed_rx) = watch::channel(0u64);
        let (health_tx, health_rx) = watch::channel(storage.health());
        let (check_tx, check_rx) = mpsc::channel(64);
        let (roster_tx, roster_rx) = watch::channel(reload::roster(&config.checks));
        let (debounced_tx, debounced_rx) = watch::channel(BTreeMap::new());

        let mut supervisor = Supervisor::new();
        let (members_changed_tx, members_changed) = watch::channel(0u64);
        let (leadership, leadership_task) = leadership::spawn(
            LeadershipSettings {
                name: config.node_name.clone(),
                node_id: opened.node_id,
                team: config.team.clone(),
                // A node that lost its Raft state waits to be added to its peers' group, and so
                // does one invited into a cluster (an invitation is a --join).
                bootstrap: config.election.bootstraps(&config.join)
                    && config.join_token.is_none()
                    && !opened.state_lost,
                max_voters: config.election.max_voters,
                voter_reap_after: config.election.voter_reap_after,
                fallback_after: config.election.fallback_after,
                silent_leader_after: silent_leader_after(config.profile),
            },
            storage.clone(),
            membership.clone(),
            members_changed,
            supervisor.token(),
        )
        .await
        .context("starting the raft node")?;

        let notifiers = Arc::new(
            crate::notify::Notifiers::from_config(&config.notify)
                .context("setting up the notifiers")?,
        );
        tracing::info!(channels = ?notifiers.names(), "notifiers ready");
        let (live_tx, live_rx) = watch::channel(crate::incidents::Live {
            notifiers: notifiers.clone(),
            rules: due_rules(&config),
        });
        let (notifiers_tx, notifiers_rx) = watch::channel(notifiers);

        let (topology, topology_tasks) = crate::topology::start(
            crate::topology::TopologyContext {
                host: config.node_name.clone(),
                settings: config.topology.clone(),
                storage: storage.clone(),
                membership: membership.clone(),
            },
            config.sync_interval,
        )
        .context("starting topology")?;

        let peer_rejected = Arc::new(AtomicU64::new(0));
        let introspect = crate::introspection::remote::Answerer::default();
        let beacon = crate::beacon::sender::channel(
            config.beacon.map_or_else(
                || crate::beacon::sender::Target::Service(grid.parts.grid.clone()),
                crate::beacon::sender::Target::Fixed,
            ),
            config.node_name.clone(),
            membership.clone(),
        );
        supervisor.spawn_critical(
            "events",
            Stop::Dropped,
            events_inbox.run(
                crate::introspection::owner::EventLogSettings {
                    me: config.node_name.clone(),
                    generation,
                    capacity: config.introspection_events,
                    beacon: Some(beacon.0.clone()),
                },
                storage.clone(),
                leadership.watch_status(),
            ),
        );
        supervisor.spawn_critical("beacon", Stop::Dropped, beacon.1.run());
        supervisor.watch_critical("membership", membership_task);
        supervisor.watch_critical("alerts", alerts_task);
        supervisor.spawn_critical("leadership", Stop::Itself, leadership_task);
        supervisor.spawn_critical(
            "cluster-port",
            Stop::Dropped,
            PeerServer {
                membership: membership.clone(),
                alerts: alerts.clone(),
                leadership: leadership.clone(),
                rejected: peer_rejected.clone(),
                topology: topology.clone(),
                grid: grid.peer.clone(),
                storage: storage.clone(),
                introspect: introspect.clone(),
            }
            .serve(cluster_port),
        );
        supervisor.spawn_critical(
            "incidents",
            Stop::Dropped,
            crate::incidents::run(EngineContext {
                me: config.node_name.clone(),
                membership: membership.clone(),
                member_changes: members_changed_tx.subscribe(),
                alerts: alerts.clone(),
                storage: storage.clone(),
                leadership: leadership.clone(),
                live: live_rx,
                topology: topology.clone(),
                events: events.clone(),
                team: config.team.clone(),
                notify_remote: config.teams.notify_remote,
            }),
        );
        for (name, task) in topology_tasks {
            supervisor.watch_critical(name, task);
        }
        // The reloader keeps a sender for the checks a reload adds: it never ends while the
        // agent runs.
        supervisor.spawn_critical(
            "check-results",
            Stop::Dropped,
            housekeeping::check_loop(check_rx, alerts.clone(), worst_tx, roster_rx, debounced_tx),
        );
        let mut reloader = reload::Reloader::new(
            source,
            config.clone(),
            reload::Targets {
                live: live_tx,
                notifiers: notifiers_tx,
                roster: roster_tx,
                check_events: check_tx.clone(),
                debounced: debounced_rx.clone(),
                membership: membership.clone(),
            },
        );
        tasks::spawn_restartable(
            &mut supervisor,
            &config,
            tasks::Shared {
                storage: storage.clone(),
                membership: membership.clone(),
                alerts: alerts.clone(),
                sync_now: sync_now.clone(),
                flushed: flushed_tx,
                health: health_tx,
                worst_check: worst_rx,
                check_events: check_tx,
                debounced: debounced_rx,
                grid: grid.parts.grid.clone(),
            },
        );

        for (name, task) in grid.tasks {
            supervisor.watch_critical(name, task);
        }
        let teams = crate::teams::start(
            crate::teams::TeamsContext {
                team: config.team.clone(),
                host: config.node_name.clone(),
                config: config.teams.clone(),
                alerts: alerts.clone(),
                grid: grid.parts.grid.clone(),
                membership: membership.clone(),
            },
            &mut supervisor,
        )
        .await?;
        let mut seeds = startup_seeds(&config, &storage)?;
        seeds.extend(
            invited
                .into_iter()
                .filter(|a| !seeds.contains(a))
                .collect::<Vec<_>>(),
        );
        if !seeds.is_empty() {
            tracing::info!(seeds = ?seeds, "joining");
            membership.join(seeds).await?;
        }

        let (control_tx, mut control) = mpsc::channel(4);
        let listener = server::bind(config.api).await?;
        let api_addr = listener.local_addr()?;
        crate::data_dir::write_private(
            &data_dir.root().join(API_ADDR_FILE),
            format!("{api_addr}\n").as_bytes(),
        )?;
        let state = ApiState {
            membership: membership.clone(),
            alerts: alerts.clone(),
            storage: storage.clone(),
            flushed: flushed_rx,
            status_interval: config.status_interval,
            status_full_every: config.status_full_every,
            peer_rejected,
            leadership: leadership.clone(),
            notifiers: notifiers_rx,
            token: Arc::from(token.as_str()),
            team: config.team.clone(),
            data_dir: data_dir.root().display().to_string(),
            started: Instant::now(),
            control: control_tx,
            grid: grid.parts.clone(),
            topology: topology.clone(),
            history_replicas: config.history_replicas,
            events: events.clone(),
            member_changes: members_changed_tx.subscribe(),
            teams: teams.clone(),
        };
        introspect.ready(state.clone());
        if let Some(ui_bind) = config.ui_bind {
            let viewer_token = data_dir.load_or_create_viewer_token()?;
            let ui = tokio::net::TcpListener::bind(ui_bind).await.map_err(|e| {
                anyhow::anyhow!("cannot bind the dashboard on {ui_bind}: {e} (ui.bind)")
            })?;
            let ui_addr = ui.local_addr()?;
            crate::data_dir::write_private(
                &data_dir.root().join(UI_ADDR_FILE),
                format!("{ui_addr}\n").as_bytes(),
            )?;
            tracing::info!(ui = %ui_addr, "read-only dashboard for other machines (viewer token: `rover-agent ui token`)");
            let (state, stop) = (state.clone(), supervisor.token());
            supervisor.spawn_critical("ui", Stop::Itself, async move {
                crate::api::viewer::serve(ui, state, &viewer_token, stop.cancelled_owned()).await;
            });
        }
        let stop_serving = supervisor.token();
        supervisor.spawn_critical("api", Stop::Itself, async move {
            server::serve(listener, state, stop_serving.cancelled_owned()).await;
        });
        let advertised = membership
            .status()
            .await
            .map(|s| s.identity.addr)
            .unwrap_or(config.advertise);
        tracing::info!(
            node = %config.node_name,
            team = %config.team,
            gossip = %membership.local_addr(),
            advertise = %advertised,
            api = %api_addr,
            checks = config.checks.len(),
            data_dir = %data_dir.root().display(),
            "rover-agent {} running", env!("CARGO_PKG_VERSION")
        );

        let router = EventRouter {
            teams,
            storage: storage.clone(),
            alerts: alerts.clone(),
            sync_now,
            grid: grid.events.clone(),
            members_changed: members_changed_tx,
            topology,
            events,
            placement: crate::history_replicas::Placement::new(
                &config.node_name,
                config.history_replicas,
            ),
        };
        tokio::pin!(shutdown);
        let storage_closed = storage_health::closed(health_rx);
        tokio::pin!(storage_closed);
        let mut hangups = signals::hangups();
        let ending = loop {
            tokio::select! {
                Some(event) = membership_events.recv() => router.route(event).await,
                Some(control) = control.recv() => match control {
                    Control::Leave(reply) => break Ending::Leave(reply),
                    Control::Reload(reply) => {
                        let _ = reply.send(reloader.reload(&mut supervisor));
                    }
                },
                Some(()) = hangups.recv() => {
                    tracing::info!("SIGHUP: reloading the config file");
                    let _ = reloader.reload(&mut supervisor);
                }
                failure = supervisor.failure() => break Ending::Failed(failure),
                () = &mut shutdown => break Ending::Signal,
                health = &mut storage_closed => break Ending::StorageClosed(health),
            }
        };
        let storage_closed = matches!(ending, Ending::StorageClosed(_));
        let failure = match ending {
            Ending::Leave(reply) => {
                leave(&membership).await;
                let _ = reply.send(());
                None
            }
            Ending::Signal => {
                leave(&membership).await;
                None
            }
            Ending::Failed(failure) => Some(anyhow::Error::from(failure)),
            Ending::StorageClosed(health) => Some(anyhow::anyhow!(
                "storage failed and the database could not be opened again ({}); stopping so \
                 that the agent restarts and verifies it",
                health.failing.map(|f| f.error).unwrap_or_default()
            )),
        };
        while let Ok(event) = membership_events.try_recv() {
            router.route(event).await;
        }
        supervisor.shutdown(SHUTDOWN_GRACE).await;
        drop(alerts);
        if !storage_closed {
            storage.flush_async().await.context("flushing storage")?;
            let last = storage.clone();
            match tokio::task::spawn_blocking(move || last.checkpoint(unix_ms())).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "last storage checkpoint failed"),
                Err(e) => tracing::warn!(error = %e, "last storage checkpoint task failed"),
            }
        }
        if let Some(failure) = failure {
            return Err(failure);
        }
        tracing::info!("left the cluster; bye");
        Ok(())
    }
}

/// Why the main loop ended.
enum Ending {
    /// `rover-agent leave`: answered once the goodbye is sent.
    Leave(tokio::sync::oneshot::Sender<()>),
    /// SIGINT or SIGTERM (or the caller's shutdown future).
    Signal,
    /// A task ended while the agent ran.
    Failed(TaskFailure),
    /// Storage failed and could not be opened again.
    StorageClosed(rover_storage::StorageHealth),
}

/// How long a leader SWIM still lists alive blocks elections once silent: longer than SWIM
/// takes to declare a member cut off by a partition failed (every member probed once, plus the
/// suspicion timeout), so that only a leader whose Raft node is broken is ever voted out while
/// SWIM sees it.
fn silent_leader_after(profile: rover_membership::Profile) -> Duration {
    match profile {
        rover_membership::Profile::Wan => Duration::from_secs(60),
        rover_membership::Profile::Lan | rover_membership::Profile::Local => {
            Duration::from_secs(10)
        }
    }
}

/// How long the tasks have to stop at shutdown before they are aborted.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Binds the gossip UDP socket and the cluster TCP port on the same port number and starts the
/// membership task. With port 0, a port free for both is found (bounded attempts).
async fn bind_gossip(
    settings: CoreSettings,
    bind: std::net::SocketAddr,
    events: mpsc::UnboundedSender<rover_membership::MemberEvent>,
) -> Result<(MembershipHandle, JoinHandle<()>, tokio::net::TcpListener)> {
    if bind.port() != 0 {
        let (membership, task) = runtime::spawn(settings, bind, events).await?;
        let tcp = tokio::net::TcpListener::bind(membership.local_addr())
            .await
            .with_context(|| {
                format!(
                    "cannot bind the cluster TCP port {}",
                    membership.local_addr()
                )
            })?;
        return Ok((membership, task, tcp));
    }
    let mut last_error = None;
    for _ in 0..50 {
        let tcp = tokio::net::TcpListener::bind((bind.ip(), 0)).await?;
        let addr = tcp.local_addr()?;
        match runtime::spawn(settings.clone(), addr, events.clone()).await {
            Ok((membership, task)) => return Ok((membership, task, tcp)),
            Err(e) => last_error = Some(e),
        }
    }
    Err(anyhow::anyhow!(
        "no port free for both gossip (UDP) and cluster (TCP) on {}: {last_error:?}",
        bind.ip()
    ))
}

pub(crate) fn severity_of(
    wanted: crate::checks::config::SeverityOverride,
) -> rover_storage::Severity {
    match wanted {
        crate::checks::config::SeverityOverride::Warning => rover_storage::Severity::Warning,
        crate::checks::config::SeverityOverride::Critical => rover_storage::Severity::Critical,
    }
}

/// A generation above every earlier one of this data dir (and above wall-clock ms, so a lost
/// data dir still yields a newer identity).
fn next_generation(storage: &Storage) -> Result<u64> {
    let meta = storage.meta();
    let stored = meta.get_u64(GENERATION_KEY)?.unwrap_or(0);
    let generation = stored.saturating_add(1).max(unix_ms());
    meta.put_u64(GENERATION_KEY, generation)?;
    storage.flush()?;
    Ok(generation)
}

/// Seeds from the configuration plus every peer remembered from earlier runs.
fn startup_seeds(config: &Config, storage: &Storage) -> Result<Vec<std::net::SocketAddr>> {
    let mut seeds = config.join.clone();
    for member in storage.members().all()? {
        if member.name != config.node_name && !seeds.contains(&member.addr) {
            seeds.push(member.addr);
        }
    }
    Ok(seeds)
}

/// Leaves gracefully: done once the membership task has sent the goodbye to every member
/// (its answer to the leave request), not after a guessed delay.
async fn leave(membership: &MembershipHandle) {
    if let Err(e) = membership.leave().await {
        tracing::warn!(error = %e, "graceful leave failed");
    }
}
