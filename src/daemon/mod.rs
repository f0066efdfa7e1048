//! The daemon: opens the data dir, starts the membership, alerts, checks, status and cluster-port
//! tasks and the API, and owns shutdown (graceful leave on the first signal or `leave`).

mod events;
mod housekeeping;
pub mod open;
pub mod signals;
pub mod storage_health;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use rover_membership::runtime::{self, unix_ms};
use rover_membership::{CoreSettings, MembershipHandle, NodeIdentity, Tunables};
use rover_storage::{CheckLevel, MemberStore, MetaStore, Storage};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use self::events::{EventRouter, GENERATION_KEY};
use crate::alerts::{self, AlertsContext};
use crate::api::server::{self, ApiState, Control};
use crate::config::Config;
use crate::data_dir::{DataDir, KeyringOrigin};
use crate::incidents::EngineContext;
use crate::leadership::{self, LeadershipSettings};
use crate::peer::server::PeerServer;
use crate::status::Sampler;
use rover_election::policy::DueRules;

/// When messages fall due, from `[notify]`: a notification pending twice as long as a send may
/// take is taken over even from a holder that still looks alive; closed incidents go after
/// `incidents.retention`.
fn due_rules(config: &Config) -> DueRules {
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

/// The running agent. See the module docs.
pub struct Daemon;

impl Daemon {
    /// Runs until `shutdown` resolves or a `leave` request arrives; both leave gracefully.
    pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<()> {
        let data_dir = DataDir::open(&config.data_dir)?;
        let opened = open::open_storage(&data_dir)?;
        let storage = opened.storage.clone();
        let keyring = load_keyring(&data_dir, &config)?;
        let token = data_dir.load_or_create_token()?;
        let identity = NodeIdentity {
            name: config.node_name.clone(),
            team: config.team.clone(),
            addr: config.advertise,
            generation: next_generation(&storage)?,
        };
        let settings = CoreSettings {
            identity,
            tunables: Tunables::from(config.profile),
            keyring,
            rng_seed: rand::random(),
        };
        let (events_tx, mut membership_events) = mpsc::unbounded_channel();
        let (membership, membership_task, cluster_port) =
            bind_gossip(settings, config.bind, events_tx).await?;

        let (alerts, alerts_task) = alerts::spawn(AlertsContext {
            team: config.team.clone(),
            host: config.node_name.clone(),
            storage: storage.clone(),
            membership: membership.clone(),
        })?;
        let sync_now = Arc::new(Notify::new());
        let (worst_tx, worst_rx) = watch::channel(CheckLevel::Ok);
        let (flushed_tx, flushed_rx) = watch::channel(0u64);
        let (health_tx, health_rx) = watch::channel(storage.health());
        let (check_tx, check_rx) = mpsc::channel(64);
        let overrides: BTreeMap<_, _> = config
            .checks
            .iter()
            .filter_map(|c| c.severity.map(|s| (c.name.clone(), severity_of(s))))
            .collect();

        let (leadership, leadership_task) = leadership::spawn(
            LeadershipSettings {
                name: config.node_name.clone(),
                node_id: opened.node_id,
                team: config.team.clone(),
                // A node that lost its Raft state waits to be added to its peers' group.
                bootstrap: config.election.bootstraps(&config.join) && !opened.state_lost,
                max_voters: config.election.max_voters,
                voter_reap_after: config.election.voter_reap_after,
                fallback_after: config.election.fallback_after,
            },
            storage.clone(),
            membership.clone(),
        )
        .await
        .context("starting the raft node")?;

        let notifiers = Arc::new(
            crate::notify::Notifiers::from_config(&config.notify)
                .context("setting up the notifiers")?,
        );
        tracing::info!(channels = ?notifiers.names(), "notifiers ready");

        let peer_rejected = Arc::new(AtomicU64::new(0));
        let mut background: Vec<JoinHandle<()>> = vec![
            tokio::spawn(
                PeerServer {
                    membership: membership.clone(),
                    alerts: alerts.clone(),
                    leadership: leadership.clone(),
                    rejected: peer_rejected.clone(),
                }
                .serve(cluster_port),
            ),
            tokio::spawn(alerts::sync::run(
                config.sync_interval,
                membership.clone(),
                alerts.clone(),
                sync_now.clone(),
            )),
            tokio::spawn({
                let run = storage_health::run(storage.clone(), flushed_tx, health_tx);
                async move {
                    run.await;
                }
            }),
            tokio::spawn(housekeeping::compact_loop(
                storage.clone(),
                config.raw_retention,
                config.retention,
            )),
            tokio::spawn(housekeeping::check_loop(
                check_rx,
                alerts.clone(),
                worst_tx,
                overrides,
            )),
            tokio::spawn(
                Sampler {
                    host: config.node_name.clone(),
                    team: config.team.clone(),
                    interval: config.status_interval,
                    mounts: config.mounts.clone(),
                    storage: storage.clone(),
                    membership: membership.clone(),
                    worst_check: worst_rx,
                }
                .run(),
            ),
        ];
        let (member_changed, member_changes) = watch::channel(0u64);
        background.push(tokio::spawn(crate::incidents::run(EngineContext {
            me: config.node_name.clone(),
            membership: membership.clone(),
            member_changes,
            alerts: alerts.clone(),
            storage: storage.clone(),
            leadership: leadership.clone(),
            notifiers: notifiers.clone(),
            rules: due_rules(&config),
        })));
        background.extend(crate::checks::runner::spawn(
            config.checks.clone(),
            check_tx,
        ));

        let seeds = startup_seeds(&config, &storage)?;
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
            peer_rejected,
            leadership: leadership.clone(),
            notifiers: notifiers.clone(),
            token: Arc::from(token.as_str()),
            team: config.team.clone(),
            data_dir: data_dir.root().display().to_string(),
            started: Instant::now(),
            control: control_tx,
        };
        let (api_stop_tx, api_stop) = tokio::sync::oneshot::channel::<()>();
        let api_task = tokio::spawn(async move {
            let serve =
                axum::serve(listener, server::router(state)).with_graceful_shutdown(async {
                    let _ = api_stop.await;
                });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "API server stopped");
            }
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
            storage: storage.clone(),
            alerts: alerts.clone(),
            sync_now,
            member_changed,
        };
        tokio::pin!(shutdown);
        let storage_closed = storage_health::closed(health_rx);
        tokio::pin!(storage_closed);
        let mut fatal = None;
        let leave_reply = loop {
            tokio::select! {
                Some(event) = membership_events.recv() => router.route(event).await,
                Some(Control::Leave(reply)) = control.recv() => break Some(reply),
                _ = &mut shutdown => break None,
                health = &mut storage_closed => {
                    fatal = Some(health);
                    break None;
                }
            }
        };
        leave(&membership).await;
        if let Some(reply) = leave_reply {
            let _ = reply.send(());
        }
        while let Ok(event) = membership_events.try_recv() {
            router.route(event).await;
        }
        for task in background {
            task.abort();
        }
        leadership_task.abort();
        leadership.shutdown().await;
        let _ = membership.stop().await;
        let _ = membership_task.await;
        drop(alerts);
        alerts_task.abort();
        let _ = api_stop_tx.send(());
        let _ = api_task.await;
        if let Some(health) = fatal {
            anyhow::bail!(
                "storage failed and the database could not be opened again ({}); stopping so \
                 that the agent restarts and verifies it",
                health.failing.map(|f| f.error).unwrap_or_default()
            );
        }
        storage.flush_async().await.context("flushing storage")?;
        let last = storage.clone();
        match tokio::task::spawn_blocking(move || last.checkpoint(unix_ms())).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "last storage checkpoint failed"),
            Err(e) => tracing::warn!(error = %e, "last storage checkpoint task failed"),
        }
        tracing::info!("left the cluster; bye");
        Ok(())
    }
}

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

fn severity_of(wanted: crate::checks::config::SeverityOverride) -> rover_storage::Severity {
    match wanted {
        crate::checks::config::SeverityOverride::Warning => rover_storage::Severity::Warning,
        crate::checks::config::SeverityOverride::Critical => rover_storage::Severity::Critical,
    }
}

fn load_keyring(data_dir: &DataDir, config: &Config) -> Result<rover_membership::Keyring> {
    let (keyring, origin) = data_dir.load_keyring(config.key_file.as_deref())?;
    match origin {
        KeyringOrigin::Generated => tracing::warn!(
            keyring = %data_dir.keyring_path().display(),
            fingerprint = %keyring.primary().fingerprint(),
            "no cluster key given: generated a new one. Other agents need the same key: copy the \
             first line of the keyring file into a file (mode 0600) on each host and start them \
             with --key-file FILE"
        ),
        KeyringOrigin::FromKeyFile => {
            tracing::info!(fingerprint = %keyring.primary().fingerprint(), "using the key from the key file")
        }
        KeyringOrigin::Persisted => {}
    }
    Ok(keyring)
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

async fn leave(membership: &MembershipHandle) {
    if let Err(e) = membership.leave().await {
        tracing::warn!(error = %e, "graceful leave failed");
    }
    tokio::time::sleep(runtime::LEAVE_GRACE).await;
}
