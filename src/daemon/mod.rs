//! The daemon: opens the data dir, starts the membership task and the API, records membership
//! changes in storage, and owns shutdown (graceful leave on the first signal or `leave`).

pub mod signals;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use rover_membership::runtime::{self, unix_ms};
use rover_membership::{
    CoreSettings, MemberEvent, MemberInfo, MembershipHandle, NodeIdentity, Tunables,
};
use rover_storage::{MemberStore, MetaStore, Storage, StoredMember};
use tokio::sync::mpsc;

use crate::api::server::{self, ApiState, Control};
use crate::config::Config;
use crate::data_dir::{DataDir, KeyringOrigin};

/// Meta key under which the last identity generation is kept.
const GENERATION_KEY: &str = "generation";
/// File in the data dir holding the API address the agent listens on.
pub const API_ADDR_FILE: &str = "api-addr";

/// The running agent. See the module docs.
pub struct Daemon;

impl Daemon {
    /// Runs until `shutdown` resolves or a `leave` request arrives; both leave gracefully.
    pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<()> {
        let data_dir = DataDir::open(&config.data_dir)?;
        let storage = Storage::open(data_dir.db_path())?;
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
        let token = data_dir.load_or_create_token()?;

        let generation = next_generation(&storage)?;
        let identity = NodeIdentity {
            name: config.node_name.clone(),
            team: config.team.clone(),
            addr: config.advertise,
            generation,
        };
        let settings = CoreSettings {
            identity,
            tunables: Tunables::from(config.profile),
            keyring,
            rng_seed: rand::random(),
        };
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let (membership, membership_task) =
            runtime::spawn(settings, config.bind, events_tx).await?;

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
        tracing::info!(
            node = %config.node_name,
            team = %config.team,
            gossip = %membership.local_addr(),
            advertise = %config.advertise,
            api = %api_addr,
            data_dir = %data_dir.root().display(),
            "rover-agent {} running", env!("CARGO_PKG_VERSION")
        );

        tokio::pin!(shutdown);
        let leave_reply = loop {
            tokio::select! {
                Some(event) = events.recv() => {
                    record_event(&storage, &event);
                    // Membership changes are rare: make each durable at once, so a kill -9
                    // right after joining still leaves the peers to rejoin through.
                    if let Err(e) = storage.flush_async().await {
                        tracing::error!(error = %e, "cannot flush storage");
                    }
                }
                Some(Control::Leave(reply)) = control.recv() => break Some(reply),
                _ = &mut shutdown => break None,
            }
        };
        leave(&membership).await;
        if let Some(reply) = leave_reply {
            let _ = reply.send(());
        }
        while let Ok(event) = events.try_recv() {
            record_event(&storage, &event);
        }
        let _ = membership.stop().await;
        let _ = membership_task.await;
        let _ = api_stop_tx.send(());
        let _ = api_task.await;
        storage.flush_async().await.context("flushing storage")?;
        tracing::info!("left the cluster; bye");
        Ok(())
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

async fn leave(membership: &MembershipHandle) {
    if let Err(e) = membership.leave().await {
        tracing::warn!(error = %e, "graceful leave failed");
    }
    tokio::time::sleep(runtime::LEAVE_GRACE).await;
}

fn record_event(storage: &Storage, event: &MemberEvent) {
    let result = match event {
        MemberEvent::Up(m) => {
            tracing::info!(member = %m.name, addr = %m.addr, "member alive");
            store_member(storage, m)
        }
        MemberEvent::Failed(m) => {
            tracing::warn!(member = %m.name, addr = %m.addr, "member failed");
            store_member(storage, m)
        }
        MemberEvent::Left(m) => {
            tracing::info!(member = %m.name, "member left");
            store_member(storage, m)
        }
        MemberEvent::Rejoined(me) => {
            tracing::warn!(
                generation = me.generation,
                "the cluster declared us down; rejoined with a new generation"
            );
            storage
                .meta()
                .put_u64(GENERATION_KEY, me.generation)
                .map_err(Into::into)
        }
        MemberEvent::Idle => {
            tracing::warn!("no other member reachable; re-announcing to known seeds");
            Ok(())
        }
        MemberEvent::Active => {
            tracing::info!("in a cluster");
            Ok(())
        }
        MemberEvent::Renamed { .. } | MemberEvent::Broadcast(_) => Ok(()),
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "cannot record membership change");
    }
}

fn store_member(storage: &Storage, m: &MemberInfo) -> Result<()> {
    storage.members().put(&StoredMember {
        name: m.name.clone(),
        team: m.team.clone(),
        addr: m.addr,
        generation: m.generation,
        status: m.status.as_str().to_owned(),
        updated_ms: unix_ms(),
    })?;
    Ok(())
}
