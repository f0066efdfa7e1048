//! What the daemon calls to start records, keys and invitations: the keyring at start (the
//! key file and an invitation applied), then the owner tasks and the bootstrap loop once the
//! membership runtime runs.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use rover_membership::runtime::unix_ms;
use rover_membership::MembershipHandle;
use rover_storage::Storage;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::bootstrap::Bootstrap;
use super::sync::GridPeer;
use super::{GridContext, GridEvents, GridParts};
use crate::config::Config;
use crate::data_dir::{DataDir, KeyringOrigin};
use crate::invite::Invitation;
use crate::keys::state::KeyringState;
use crate::node_key::NodeKey;

/// The keyring to start with, and the addresses of an invitation to announce to.
pub struct StartKeys {
    /// The keyring (persisted).
    pub state: KeyringState,
    /// The invitation's member addresses (none without one).
    pub invited: Vec<SocketAddr>,
}

/// Loads the keyring per the data dir's rules, with `--key-file` and `--join-token`, and says
/// what it did. A bad token is refused here too (the CLI refuses it before with exit 2).
pub fn keys_at_start(data_dir: &DataDir, config: &Config) -> Result<StartKeys> {
    let invitation = config
        .join_token
        .as_deref()
        .map(|token| Invitation::redeem(token, unix_ms()))
        .transpose()?;
    let invited_key = invitation.as_ref().map(Invitation::cluster_key);
    let (state, origin) =
        data_dir.load_keyring_state(config.key_file.as_deref(), invited_key.as_ref())?;
    let primary = state.ring.primary().fingerprint();
    match origin {
        KeyringOrigin::Generated => tracing::warn!(
            keyring = %data_dir.keyring_path().display(),
            fingerprint = %primary,
            "no cluster key given: generated a new one. Other agents need the same key: run \
             `rover-agent invite` here and start them with --join-token TOKEN, or copy the \
             first line of the keyring file into a file (mode 0600) on each host and start \
             them with --key-file FILE"
        ),
        KeyringOrigin::FromKeyFile => {
            tracing::info!(fingerprint = %primary, "using the key from the key file")
        }
        KeyringOrigin::FromInvitation => {
            tracing::info!(fingerprint = %primary, "using the cluster key of the invitation")
        }
        KeyringOrigin::KeyFileKeyRemoved(old) => tracing::warn!(
            removed = %old,
            fingerprint = %primary,
            "the key file holds a key that a cluster-wide rotation removed: ignored it, sealing \
             with the keyring's primary key (update the key file, or leave --key-file out)"
        ),
        KeyringOrigin::InvitationKeyRemoved(old) => tracing::warn!(
            removed = %old,
            fingerprint = %primary,
            "the invitation holds a key that a cluster-wide rotation removed: ignored it"
        ),
        KeyringOrigin::Persisted => {}
    }
    let invited = invitation.map(|i| i.body.addrs).unwrap_or_default();
    Ok(StartKeys { state, invited })
}

/// The running records and keys: handles for the API and the cluster port, the event hook,
/// and the tasks to supervise (name, handle).
pub struct Started {
    /// Handles for the API.
    pub parts: GridParts,
    /// For the event router.
    pub events: GridEvents,
    /// For the cluster port.
    pub peer: GridPeer,
    /// The owner tasks and the bootstrap loop.
    pub tasks: Vec<(&'static str, JoinHandle<()>)>,
}

/// Starts the records and keys owner tasks and the bootstrap loop.
pub fn start(
    storage: &Storage,
    node_key: &NodeKey,
    data_dir: &DataDir,
    membership: &MembershipHandle,
    keys: StartKeys,
    config: &Config,
) -> Result<Started> {
    let (grid, grid_task) = super::spawn(GridContext {
        storage: storage.clone(),
        membership: membership.clone(),
        node_key: node_key.clone(),
    })?;
    let (keys, keys_task) = crate::keys::spawn(
        keys.state,
        data_dir.clone(),
        membership.clone(),
        config.node_name.clone(),
    );
    let joined = Arc::new(Notify::new());
    let bootstrap = tokio::spawn(
        Bootstrap {
            grid: grid.clone(),
            keys: keys.clone(),
            membership: membership.clone(),
            joined: joined.clone(),
        }
        .run(),
    );
    Ok(Started {
        parts: GridParts {
            grid: grid.clone(),
            keys: keys.clone(),
            node_key: node_key.clone(),
            team: config.team.clone(),
        },
        events: GridEvents {
            grid: grid.clone(),
            keys: keys.clone(),
            joined,
        },
        peer: GridPeer { grid, keys },
        tasks: vec![
            ("records", grid_task),
            ("keys", keys_task),
            ("bootstrap", bootstrap),
        ],
    })
}
