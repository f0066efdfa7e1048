//! Cluster-wide key rotation (`keys list|install|use|remove`), restart-proof.
//!
//! One owner task holds this member's [`state::KeyringState`]: every change (a step an
//! operator asked for here or on another member, a step heard by gossip, a newer keyring
//! taken from a peer) is applied to a copy, written to the data dir's `keyring` file (fsync,
//! rename) and only then handed to the membership runtime and acknowledged. So an
//! acknowledged step survives a crash, and a restart after a rotation seals with the new key
//! even when the command line still names the old key file (the old key is remembered as
//! removed).
//!
//! [`rotation`] runs a step across the cluster and reports per member; [`peer`] answers the
//! other members' requests on the cluster port and fetches a newer keyring when this member
//! is alone (it was away during a rotation).

pub mod peer;
pub mod rotation;
pub mod state;

use rover_membership::{ClusterKey, MembershipHandle};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use self::state::{id_text, KeyId, KeyOp, KeyringState, KeyringWire, Origin};
use crate::data_dir::DataDir;

/// A rotation step as it travels (cluster port and gossip), sealed with the cluster key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireOp {
    /// Install this key (base64).
    Install(String),
    /// Make this key (base64) primary.
    Use(String),
    /// Remove the key with this id.
    Remove(KeyId),
}

/// A rotation step and its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyChange {
    /// The step.
    pub op: WireOp,
    /// Its version (the coordinator's clock in ms, above every earlier step it knew).
    pub version: u64,
}

impl KeyChange {
    /// The step for `op` at `version`.
    pub fn of(op: &KeyOp, version: u64) -> Self {
        let op = match op {
            KeyOp::Install(key) => WireOp::Install(key.to_base64()),
            KeyOp::Use(key) => WireOp::Use(key.to_base64()),
            KeyOp::Remove(id) => WireOp::Remove(*id),
        };
        Self { op, version }
    }

    /// The step, if its key is a key.
    pub fn op(&self) -> Option<KeyOp> {
        match &self.op {
            WireOp::Install(key) => ClusterKey::from_base64(key).ok().map(KeyOp::Install),
            WireOp::Use(key) => ClusterKey::from_base64(key).ok().map(KeyOp::Use),
            WireOp::Remove(id) => Some(KeyOp::Remove(*id)),
        }
    }
}

/// Which keys a member holds, by fingerprint only (never the keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyringSummary {
    /// The member's node name.
    pub node: String,
    /// Fingerprint of its primary key.
    pub primary: String,
    /// Fingerprints of every key it holds, primary first.
    pub keys: Vec<String>,
    /// Version of the last rotation step it applied.
    pub version: u64,
}

impl KeyringSummary {
    fn of(node: &str, state: &KeyringState) -> Self {
        Self {
            node: node.to_owned(),
            primary: state.ring.primary().fingerprint(),
            keys: state.ring.keys().map(ClusterKey::fingerprint).collect(),
            version: state.version,
        }
    }
}

/// A request to the keys owner task.
#[derive(Debug)]
pub enum KeysInput {
    /// Apply a step; the answer says what this member holds afterwards.
    Apply {
        /// The step.
        op: KeyOp,
        /// Its version.
        version: u64,
        /// Operator (always applied) or gossip (only if newer).
        origin: Origin,
        /// The answer, if someone waits for it.
        reply: Option<oneshot::Sender<Result<KeyringSummary, String>>>,
    },
    /// Take a peer's keyring if it is newer; answers whether it did.
    Adopt(KeyringWire, oneshot::Sender<bool>),
    /// The current state.
    State(oneshot::Sender<KeyringState>),
}

/// The task has stopped (the agent is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the keys task has stopped")]
pub struct KeysStopped;

/// A cloneable handle to the keys owner task.
#[derive(Debug, Clone)]
pub struct KeysHandle {
    inputs: mpsc::Sender<KeysInput>,
    node: String,
}

impl KeysHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> KeysInput,
    ) -> Result<T, KeysStopped> {
        let (tx, rx) = oneshot::channel();
        self.inputs.send(make(tx)).await.map_err(|_| KeysStopped)?;
        rx.await.map_err(|_| KeysStopped)
    }

    /// This member's node name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Applies a step an operator asked for; persisted before the answer.
    pub async fn apply(&self, op: KeyOp, version: u64) -> Result<KeyringSummary, String> {
        self.ask(|tx| KeysInput::Apply {
            op,
            version,
            origin: Origin::Operator,
            reply: Some(tx),
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Hands over a step heard by gossip (its broadcast payload).
    pub async fn gossip(&self, payload: &[u8]) -> Result<(), KeysStopped> {
        let Ok(change) = postcard::from_bytes::<KeyChange>(payload) else {
            tracing::debug!("undecodable keyring gossip item dropped");
            return Ok(());
        };
        let Some(op) = change.op() else {
            return Ok(());
        };
        self.inputs
            .send(KeysInput::Apply {
                op,
                version: change.version,
                origin: Origin::Gossip,
                reply: None,
            })
            .await
            .map_err(|_| KeysStopped)
    }

    /// Takes `wire` if it is newer than ours.
    pub async fn adopt(&self, wire: KeyringWire) -> Result<bool, KeysStopped> {
        self.ask(|tx| KeysInput::Adopt(wire, tx)).await
    }

    /// The current state.
    pub async fn state(&self) -> Result<KeyringState, KeysStopped> {
        self.ask(KeysInput::State).await
    }

    /// What this member holds, by fingerprint.
    pub async fn summary(&self) -> Result<KeyringSummary, KeysStopped> {
        Ok(KeyringSummary::of(&self.node, &self.state().await?))
    }
}

/// Starts the owner task with the keyring loaded at start.
pub fn spawn(
    state: KeyringState,
    data_dir: DataDir,
    membership: MembershipHandle,
    node: String,
) -> (KeysHandle, JoinHandle<()>) {
    let (inputs, rx) = mpsc::channel(64);
    let task = KeysTask {
        state,
        data_dir,
        membership,
        node: node.clone(),
    };
    (KeysHandle { inputs, node }, tokio::spawn(task.run(rx)))
}

struct KeysTask {
    state: KeyringState,
    data_dir: DataDir,
    membership: MembershipHandle,
    node: String,
}

impl KeysTask {
    async fn run(mut self, mut inputs: mpsc::Receiver<KeysInput>) {
        while let Some(input) = inputs.recv().await {
            match input {
                KeysInput::Apply {
                    op,
                    version,
                    origin,
                    reply,
                } => {
                    let answer = self.apply(&op, version, origin).await;
                    if let Some(reply) = reply {
                        let _ = reply.send(answer);
                    }
                }
                KeysInput::Adopt(wire, reply) => {
                    let mut next = self.state.clone();
                    let adopted = next.adopt(&wire)
                        && self
                            .commit(next, "adopted a newer keyring from a peer")
                            .await
                            .is_ok();
                    let _ = reply.send(adopted);
                }
                KeysInput::State(reply) => {
                    let _ = reply.send(self.state.clone());
                }
            }
        }
    }

    async fn apply(
        &mut self,
        op: &KeyOp,
        version: u64,
        origin: Origin,
    ) -> Result<KeyringSummary, String> {
        let mut next = self.state.clone();
        let changed = next.apply(op, version, origin).map_err(|e| e.to_string())?;
        if changed {
            let what = format!("keyring: {} {}", op.verb(), id_text(&op.key_id()));
            self.commit(next, &what).await?;
        }
        Ok(KeyringSummary::of(&self.node, &self.state))
    }

    /// Persists `next`, then hands it to the membership runtime; nothing changes if the write
    /// fails.
    async fn commit(&mut self, next: KeyringState, what: &str) -> Result<(), String> {
        if let Err(e) = self.data_dir.save_keyring_state(&next) {
            tracing::error!(error = %format!("{e:#}"), "{what}: not applied, the keyring file cannot be written");
            return Err(format!("the keyring file cannot be written: {e:#}"));
        }
        if self
            .membership
            .set_keyring(next.ring.clone())
            .await
            .is_err()
        {
            return Err("the membership task has stopped".into());
        }
        tracing::info!(
            primary = %next.ring.primary().fingerprint(),
            keys = next.ring.keys().count(),
            version = next.version,
            "{what}"
        );
        self.state = next;
        Ok(())
    }
}
