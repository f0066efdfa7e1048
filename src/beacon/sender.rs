//! The agent's side of the beacon: the event log's owner hands each event to a [`Feed`]
//! without waiting (a bounded queue of [`QUEUE`] events; a full queue drops the event and
//! counts it), and one supervised, long-lived [`Sender`] task sends them to the beacon in
//! batches over a sealed connection, keeping a batch until the beacon answers it (the beacon
//! drops a batch it already holds), and reconnecting with backoff while the beacon is away.
//! The queue is made before the event log starts, so the first event (`Reboot`) is sent too.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use rover_membership::MembershipHandle;
use tokio::sync::mpsc;

use super::{Batch, MAX_BATCH};
use crate::introspection::ClusterEvent;
use crate::peer::{PeerConnection, PeerMessage, EXCHANGE_TIMEOUT};

/// Events waiting for the beacon at most (while it is away, or slow).
pub const QUEUE: usize = 4_096;

/// The first wait after a failed connection; it doubles up to [`BACKOFF_MAX`].
pub const BACKOFF_FIRST: Duration = Duration::from_millis(100);

/// The longest wait between two connection attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Where the event log puts events for the beacon. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Feed {
    queue: mpsc::Sender<ClusterEvent>,
    dropped: Arc<AtomicU64>,
}

impl Feed {
    /// Queues `event` without waiting; a full queue drops it (counted).
    pub fn offer(&self, event: &ClusterEvent) {
        if self.queue.try_send(event.clone()).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The task that sends the queue to the beacon (see the module docs).
#[derive(Debug)]
pub struct Sender {
    beacon: SocketAddr,
    node: String,
    membership: MembershipHandle,
    queue: mpsc::Receiver<ClusterEvent>,
    dropped: Arc<AtomicU64>,
}

/// The feed and its sender, for the agent `node` sending to `beacon` with the cluster keyring
/// the membership task holds (the current primary key at each connection).
pub fn channel(beacon: SocketAddr, node: String, membership: MembershipHandle) -> (Feed, Sender) {
    let (tx, queue) = mpsc::channel(QUEUE);
    let dropped = Arc::new(AtomicU64::new(0));
    (
        Feed {
            queue: tx,
            dropped: dropped.clone(),
        },
        Sender {
            beacon,
            node,
            membership,
            queue,
            dropped,
        },
    )
}

impl Sender {
    /// Sends until every [`Feed`] is gone (the event log stopped).
    pub async fn run(mut self) {
        let mut pending: Vec<ClusterEvent> = Vec::new();
        let mut connection: Option<PeerConnection> = None;
        let mut backoff = BACKOFF_FIRST;
        let mut told_away = false;
        loop {
            if pending.is_empty() {
                match self.queue.recv().await {
                    Some(event) => pending.push(event),
                    None => return,
                }
            }
            while pending.len() < MAX_BATCH {
                match self.queue.try_recv() {
                    Ok(event) => pending.push(event),
                    Err(_) => break,
                }
            }
            let fresh = connection.is_none();
            let open = match connection.as_mut() {
                Some(open) => open,
                None => match self.connect().await {
                    Ok(open) => {
                        tracing::info!(beacon = %self.beacon, "sending events to the beacon");
                        told_away = false;
                        connection.insert(open)
                    }
                    Err(e) => {
                        if !told_away {
                            told_away = true;
                            tracing::warn!(beacon = %self.beacon, error = %format!("{e:#}"),
                                "the beacon does not answer; keeping events for it (bounded)");
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        continue;
                    }
                },
            };
            match self.send(open, &pending).await {
                Ok(()) => {
                    pending.clear();
                    backoff = BACKOFF_FIRST;
                }
                Err(e) => {
                    tracing::debug!(beacon = %self.beacon, error = %format!("{e:#}"),
                        "beacon connection lost; sending again");
                    connection = None;
                    if fresh {
                        // A connection just made failed at once: do not spin on it.
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                }
            }
        }
    }

    async fn connect(&self) -> Result<PeerConnection> {
        let keyring = self.membership.status().await?.keyring;
        PeerConnection::connect(self.beacon, keyring).await
    }

    async fn send(&self, connection: &mut PeerConnection, events: &[ClusterEvent]) -> Result<()> {
        let batch = Batch {
            node: self.node.clone(),
            dropped: self.dropped.load(Ordering::Relaxed),
            events: events.to_vec(),
        };
        match connection
            .ask(&PeerMessage::BeaconEvents(batch), EXCHANGE_TIMEOUT)
            .await?
        {
            PeerMessage::BeaconAck(_) => Ok(()),
            _ => Err(anyhow!("{} is not a beacon", self.beacon)),
        }
    }
}
