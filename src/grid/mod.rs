//! Grid-control records in the agent (seed 004): the owner task that holds the table, stores
//! what is news, publishes this node's own statements and hands records to gossip and to the
//! anti-entropy sync.
//!
//! - Received records (a gossip item of [`Topic::Record`], or a batch from the sync) are
//!   offered to the [`table::GridTable`], which verifies and judges them; news is stored in the
//!   `grid_control` tree. Drops are counted per reason (`info`, `/metrics`).
//! - Our own statements ([`GridHandle::publish`]) are signed with the node key, at a seqnum
//!   above every one this node or the service has seen and above the wall clock in ms (so a
//!   node whose database was lost still states newer records), stored durably before the
//!   caller hears back, then broadcast.
//! - On start every stored record is verified again; one that fails is logged at ERROR,
//!   counted and removed.
//!
//! [`services`] builds and reads the three services; [`sync`] is the digest exchange;
//! [`bootstrap`] publishes our addresses and joins through the stored ones when alone.

pub mod bootstrap;
pub mod services;
pub mod start;
pub mod sync;
pub mod table;

use rover_membership::runtime::unix_ms;
use rover_membership::{BroadcastItem, MembershipHandle, Topic};
use rover_storage::grid::order::winner;
use rover_storage::grid::payload::Service;
use rover_storage::grid::{GridStore, SignedRecord};
use rover_storage::Storage;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use self::table::{DigestEntry, GridCounters, GridTable, Offered};
use crate::node_key::NodeKey;

/// What the API needs for records, keys and invitations.
#[derive(Debug, Clone)]
pub struct GridParts {
    /// The records owner task.
    pub grid: GridHandle,
    /// The keys owner task.
    pub keys: crate::keys::KeysHandle,
    /// The node key (it signs invitations).
    pub node_key: NodeKey,
    /// Our team (invitations carry it).
    pub team: String,
}

/// A request to the grid owner task.
#[derive(Debug)]
pub enum GridInput {
    /// A record heard by gossip (the broadcast payload).
    Gossip(Vec<u8>),
    /// Records pulled or pushed by anti-entropy, each encoded.
    Synced(Vec<Vec<u8>>),
    /// Sign, store and broadcast a statement of ours.
    Publish {
        /// Its service.
        service: Service,
        /// Its payload.
        payload: Vec<u8>,
        /// The record as published.
        reply: oneshot::Sender<Result<SignedRecord, GridError>>,
    },
    /// Every record held.
    List(oneshot::Sender<Vec<SignedRecord>>),
    /// The digest.
    Digest(oneshot::Sender<Vec<DigestEntry>>),
    /// What we hold newer than a peer's digest, encoded.
    NewerThan(Vec<DigestEntry>, oneshot::Sender<Vec<Vec<u8>>>),
    /// The counters.
    Counters(oneshot::Sender<GridCounters>),
}

/// Why a publish did not happen; nothing changed in each case.
#[derive(Debug, thiserror::Error)]
pub enum GridError {
    /// The task has stopped (the agent is shutting down).
    #[error("the records task has stopped")]
    Stopped,
    /// The statement is not a valid record (too big, bad service name).
    #[error("not a valid record: {0}")]
    Invalid(String),
    /// It could not be stored durably.
    #[error("storage is failing, the record was not published: {0}")]
    NotStored(String),
}

/// A cloneable handle to the grid owner task.
#[derive(Debug, Clone)]
pub struct GridHandle {
    inputs: mpsc::Sender<GridInput>,
    signer: [u8; 32],
    changed: watch::Receiver<u64>,
}

impl GridHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> GridInput,
    ) -> Result<T, GridError> {
        let (tx, rx) = oneshot::channel();
        self.inputs
            .send(make(tx))
            .await
            .map_err(|_| GridError::Stopped)?;
        rx.await.map_err(|_| GridError::Stopped)
    }

    /// Hands over an input without waiting for an answer.
    pub async fn send(&self, input: GridInput) -> Result<(), GridError> {
        self.inputs
            .send(input)
            .await
            .map_err(|_| GridError::Stopped)
    }

    /// A count of the records kept (received or published) since the start: it changes each
    /// time the table takes a record (for readers of a named service, such as the beacon's).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.clone()
    }

    /// This node's signer key.
    pub fn signer(&self) -> [u8; 32] {
        self.signer
    }

    /// Signs, stores (durably) and broadcasts a statement of ours.
    pub async fn publish(
        &self,
        service: Service,
        payload: Vec<u8>,
    ) -> Result<SignedRecord, GridError> {
        self.ask(|reply| GridInput::Publish {
            service,
            payload,
            reply,
        })
        .await?
    }

    /// Every record held, by signer then service.
    pub async fn list(&self) -> Result<Vec<SignedRecord>, GridError> {
        self.ask(GridInput::List).await
    }

    /// Our digest.
    pub async fn digest(&self) -> Result<Vec<DigestEntry>, GridError> {
        self.ask(GridInput::Digest).await
    }

    /// What we hold newer than `digest`.
    pub async fn newer_than(&self, digest: Vec<DigestEntry>) -> Result<Vec<Vec<u8>>, GridError> {
        self.ask(|tx| GridInput::NewerThan(digest, tx)).await
    }

    /// The counters.
    pub async fn counters(&self) -> Result<GridCounters, GridError> {
        self.ask(GridInput::Counters).await
    }
}

/// What the task needs.
#[derive(Debug, Clone)]
pub struct GridContext {
    /// Where records are kept.
    pub storage: Storage,
    /// Where our statements are broadcast.
    pub membership: MembershipHandle,
    /// The key our statements are signed with.
    pub node_key: NodeKey,
}

/// Loads and verifies the stored records and starts the owner task.
pub fn spawn(context: GridContext) -> anyhow::Result<(GridHandle, JoinHandle<()>)> {
    let stored = context.storage.grid();
    let mut table = GridTable::default();
    for record in stored.all()? {
        if let Offered::Dropped(reason, why) = table.offer(record.clone()) {
            tracing::error!(
                service = %crate::control_chars::escape(&record.service),
                signer = %record.signer_fingerprint(),
                reason = reason.as_str(),
                %why,
                "a stored grid-control record fails its check: removed"
            );
            stored.remove(&record.signer, &record.service)?;
        }
    }
    for (signer, service) in table.take_forgotten() {
        stored.remove(&signer, &service)?;
    }
    let (inputs, rx) = mpsc::channel(256);
    let (changed, changes) = watch::channel(0);
    let handle = GridHandle {
        inputs,
        signer: context.node_key.public_bytes(),
        changed: changes,
    };
    let task = GridTask {
        table,
        context,
        changed,
    };
    Ok((handle, tokio::spawn(task.run(rx))))
}

struct GridTask {
    table: GridTable,
    context: GridContext,
    changed: watch::Sender<u64>,
}

impl GridTask {
    async fn run(mut self, mut inputs: mpsc::Receiver<GridInput>) {
        while let Some(input) = inputs.recv().await {
            match input {
                GridInput::Gossip(bytes) => self.receive(&bytes, "gossip"),
                GridInput::Synced(batch) => {
                    for bytes in batch {
                        self.receive(&bytes, "sync");
                    }
                }
                GridInput::Publish {
                    service,
                    payload,
                    reply,
                } => {
                    let _ = reply.send(self.publish(service, payload).await);
                }
                GridInput::List(reply) => {
                    let _ = reply.send(self.table.records().cloned().collect());
                }
                GridInput::Digest(reply) => {
                    let _ = reply.send(self.table.digest());
                }
                GridInput::NewerThan(digest, reply) => {
                    let _ = reply.send(self.table.newer_than(&digest));
                }
                GridInput::Counters(reply) => {
                    let _ = reply.send(self.table.counters());
                }
            }
        }
    }

    fn receive(&mut self, bytes: &[u8], via: &'static str) {
        match self.table.offer_bytes(bytes) {
            Offered::Kept(record) => {
                tracing::debug!(
                    via,
                    service = %record.service,
                    signer = %record.signer_fingerprint(),
                    seqnum = record.seqnum,
                    "grid-control record"
                );
                if let Err(e) = self.context.storage.grid().put(&record) {
                    tracing::warn!(error = %e, "cannot store a grid-control record (kept in memory)");
                }
                self.remove_forgotten();
                self.changed.send_modify(|n| *n += 1);
            }
            Offered::Duplicate => {}
            Offered::Dropped(reason, why) => {
                tracing::debug!(via, reason = reason.as_str(), %why, "grid-control record dropped");
            }
        }
    }

    /// Removes from storage the old withdrawals the table forgot.
    fn remove_forgotten(&mut self) {
        for (signer, service) in self.table.take_forgotten() {
            if let Err(e) = self.context.storage.grid().remove(&signer, &service) {
                tracing::warn!(error = %e, "cannot remove a forgotten withdrawal from storage");
            }
        }
    }

    /// The seqnum of our next statement of `service`: above ours, above the service's winner
    /// (so a named service we set wins), and at least the wall clock in ms.
    fn next_seqnum(&self, service: &Service, signer: &[u8; 32]) -> u64 {
        let name = service.name();
        let ours = self.table.get(signer, &name).map_or(0, |r| r.seqnum);
        let best = match service {
            Service::Named(_) => {
                winner(self.table.records().filter(|r| r.service == name)).map_or(0, |r| r.seqnum)
            }
            _ => 0,
        };
        ours.max(best).saturating_add(1).max(unix_ms())
    }

    async fn publish(
        &mut self,
        service: Service,
        payload: Vec<u8>,
    ) -> Result<SignedRecord, GridError> {
        let key = self.context.node_key.signing_key();
        let signer = self.context.node_key.public_bytes();
        let seqnum = self.next_seqnum(&service, &signer);
        let record = SignedRecord::sign(key, &service.name(), seqnum, payload)
            .map_err(|e| GridError::Invalid(e.to_string()))?;
        if let Err((reason, why)) = self.table.check(&record) {
            // Our own record refused by our own table: the table is full.
            return Err(GridError::Invalid(format!("{}: {why}", reason.as_str())));
        }
        self.context
            .storage
            .grid()
            .put(&record)
            .map_err(|e| GridError::NotStored(e.to_string()))?;
        if let Err(e) = self.context.storage.flush_async().await {
            // Not durable: take it back so that nothing changed (best effort; the disk fails).
            let _ = self
                .context
                .storage
                .grid()
                .remove(&record.signer, &record.service);
            return Err(GridError::NotStored(e.to_string()));
        }
        self.table.offer(record.clone());
        self.remove_forgotten();
        self.changed.send_modify(|n| *n += 1);
        let item = BroadcastItem {
            topic: Topic::Record,
            key: record.slot_id(),
            version: record.seqnum,
            payload: record.encode(),
        };
        if let Err(e) = self.context.membership.broadcast(item).await {
            tracing::warn!(error = %e, "grid-control record not broadcast (the sync carries it)");
        }
        Ok(record)
    }
}

/// The membership events the records and keys care about: record and keyring gossip, and
/// joining a cluster (this node then asks a member for its keyring).
#[derive(Debug, Clone)]
pub struct GridEvents {
    /// The records owner task.
    pub grid: GridHandle,
    /// The keys owner task.
    pub keys: crate::keys::KeysHandle,
    /// Wakes the bootstrap loop when this node joins a cluster.
    pub joined: std::sync::Arc<tokio::sync::Notify>,
}

impl GridEvents {
    /// Hands `event` on if it is one of ours; anything else is ignored.
    pub async fn route(&self, event: &rover_membership::MemberEvent) {
        use rover_membership::MemberEvent;
        let stopped = match event {
            MemberEvent::Broadcast(item) if item.topic == Topic::Record => self
                .grid
                .send(GridInput::Gossip(item.payload.clone()))
                .await
                .is_err(),
            MemberEvent::Broadcast(item) if item.topic == Topic::Keyring => {
                self.keys.gossip(&item.payload).await.is_err()
            }
            MemberEvent::Active => {
                self.joined.notify_one();
                false
            }
            _ => false,
        };
        if stopped {
            tracing::debug!("a records or keys task has stopped; event dropped");
        }
    }
}
