//! The agent's side of the beacon: the event log's owner hands each event to a [`Feed`]
//! without waiting (a bounded queue of [`QUEUE`] events; a full queue drops the event and
//! counts it), and one supervised, long-lived [`Sender`] task sends them to the beacon in
//! batches over a sealed connection, keeping a batch until the beacon answers it (the beacon
//! drops a batch it already holds), and reconnecting with backoff while the beacon is away.
//! The queue is made before the event log starts, so the first event (`Reboot`) is sent too.
//!
//! The beacon is `--beacon ADDR` ([`Target::Fixed`]) or, without it, the named service
//! [`SERVICE`] of the grid-control records (`service set beacon IP:PORT`,
//! [`Target::Service`]): looked up at each connection, and waited for (on the records' change
//! watch) while none is set; the first events wait in the queue meanwhile.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use rover_membership::MembershipHandle;
use tokio::sync::{mpsc, watch};

use super::{Batch, MAX_BATCH};
use crate::grid::GridHandle;
use crate::introspection::ClusterEvent;
use crate::peer::{PeerConnection, PeerMessage, EXCHANGE_TIMEOUT};

/// Events waiting for the beacon at most (while it is away, or slow).
pub const QUEUE: usize = 4_096;

/// The first wait after a failed connection; it doubles up to [`BACKOFF_MAX`].
pub const BACKOFF_FIRST: Duration = Duration::from_millis(100);

/// The longest wait between two connection attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The named service an agent started without `--beacon` sends to.
pub const SERVICE: &str = "beacon";

/// Where the beacon is.
#[derive(Debug, Clone)]
pub enum Target {
    /// `--beacon ADDR`.
    Fixed(SocketAddr),
    /// The named service [`SERVICE`], whenever one is set.
    Service(GridHandle),
}

/// Where the event log puts events for the beacon. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Feed {
    queue: mpsc::Sender<ClusterEvent>,
    dropped: Arc<AtomicU64>,
}

impl Feed {
    fn with_capacity(capacity: usize) -> (Self, mpsc::Receiver<ClusterEvent>) {
        let (queue, rx) = mpsc::channel(capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        (Self { queue, dropped }, rx)
    }

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
    target: Target,
    changes: Option<watch::Receiver<u64>>,
    told_unusable: Option<String>,
    node: String,
    membership: MembershipHandle,
    queue: mpsc::Receiver<ClusterEvent>,
    dropped: Arc<AtomicU64>,
}

/// The feed and its sender, for the agent `node` sending to `target` with the cluster keyring
/// the membership task holds (the current primary key at each connection).
pub fn channel(target: Target, node: String, membership: MembershipHandle) -> (Feed, Sender) {
    let (feed, queue) = Feed::with_capacity(QUEUE);
    let dropped = feed.dropped.clone();
    (
        feed,
        Sender {
            changes: match &target {
                Target::Service(grid) => Some(grid.changes()),
                Target::Fixed(_) => None,
            },
            target,
            told_unusable: None,
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
                    Ok((beacon, open)) => {
                        tracing::info!(%beacon, "sending events to the beacon");
                        told_away = false;
                        connection.insert(open)
                    }
                    Err(e) => {
                        if !told_away {
                            told_away = true;
                            tracing::warn!(error = %format!("{e:#}"),
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
                    tracing::debug!(error = %format!("{e:#}"),
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

    async fn connect(&mut self) -> Result<(SocketAddr, PeerConnection)> {
        let beacon = self.resolve().await;
        let keyring = self.membership.status().await?.keyring;
        Ok((beacon, PeerConnection::connect(beacon, keyring).await?))
    }

    /// The beacon's address: `--beacon`, or the named service once one is set (waited for).
    async fn resolve(&mut self) -> SocketAddr {
        let grid = match &self.target {
            Target::Fixed(addr) => return *addr,
            Target::Service(grid) => grid.clone(),
        };
        loop {
            if let Some(changes) = self.changes.as_mut() {
                changes.borrow_and_update();
            }
            let records = grid.list().await.unwrap_or_default();
            let named = rover_storage::grid::payload::named_services(&records);
            if let Some((_, addr)) = named.get(SERVICE) {
                match crate::config::parse_seed(addr) {
                    Ok(beacon) => return beacon,
                    Err(e) if self.told_unusable.as_deref() != Some(addr) => {
                        tracing::warn!(service = SERVICE, %addr, error = %e,
                            "the beacon service is no IP:PORT; waiting for another");
                        self.told_unusable = Some(addr.clone());
                    }
                    Err(_) => {}
                }
            }
            let changed = match self.changes.as_mut() {
                Some(changes) => changes.changed().await.is_ok(),
                None => false,
            };
            if !changed {
                // The records task stopped (the agent stops too): wait for the end.
                std::future::pending::<()>().await;
            }
        }
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
            _ => Err(anyhow!("the beacon's address is not a beacon's")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::introspection::EventOp;

    fn event(seq: u64) -> ClusterEvent {
        ClusterEvent {
            seq,
            op: EventOp::Reboot,
            node: "a".into(),
            at_ms: seq,
            cluster: String::new(),
            old_cluster: None,
            members: 1,
            detail: String::new(),
        }
    }

    #[test]
    fn a_full_feed_keeps_the_first_events_and_counts_the_rest_without_waiting() {
        let (feed, mut queue) = Feed::with_capacity(3);
        for seq in 1..=5 {
            feed.offer(&event(seq));
        }
        assert_eq!(feed.dropped(), 2);
        let kept: Vec<u64> = std::iter::from_fn(|| queue.try_recv().ok())
            .map(|e| e.seq)
            .collect();
        assert_eq!(kept, vec![1, 2, 3], "the first events wait for the beacon");
        feed.offer(&event(6));
        assert_eq!(queue.try_recv().unwrap().seq, 6, "room again once read");
    }

    #[test]
    fn a_feed_whose_sender_is_gone_counts_its_events_as_dropped() {
        let (feed, queue) = Feed::with_capacity(3);
        drop(queue);
        feed.offer(&event(1));
        assert_eq!(feed.dropped(), 1);
    }
}
