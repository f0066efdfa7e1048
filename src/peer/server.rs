//! Accepts cluster TCP connections and answers peer messages, one task per connection.
//! A connection over a limit (see [`super::limits`]) is closed at once; one that does not finish
//! its handshake within [`HANDSHAKE_TIMEOUT`], or whose handshake or frames do not open or
//! decode, is closed and counted; one that stays silent for [`IDLE_TIMEOUT`] is closed quietly.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Result;
use rover_membership::sealed_stream::StreamError;
use rover_membership::MembershipHandle;
use tokio::net::{TcpListener, TcpStream};

use super::limits::{ConnectionLimits, REFUSED};
use super::{PeerConnection, PeerMessage, HANDSHAKE_TIMEOUT, IDLE_TIMEOUT};
use crate::alerts::{AlertInput, AlertsHandle};
use crate::grid::sync::Handled;
use crate::leadership::LeadershipHandle;

/// What the server needs to answer.
#[derive(Debug, Clone)]
pub struct PeerServer {
    /// Keyring source (the membership task holds the current one).
    pub membership: MembershipHandle,
    /// The alerts owner task.
    pub alerts: AlertsHandle,
    /// The Raft group and leadership.
    pub leadership: LeadershipHandle,
    /// Connections dropped because they did not open, decode or follow the protocol.
    pub rejected: Arc<AtomicU64>,
    /// Grid-control records and keys.
    pub grid: crate::grid::sync::GridPeer,
    /// The topology owner task.
    pub topology: crate::topology::TopologyHandle,
    /// Storage, to answer history queries.
    pub storage: rover_storage::Storage,
    /// Answers reads from outside the cluster (`--via`).
    pub introspect: crate::introspection::remote::Answerer,
}

impl PeerServer {
    /// Accepts connections until the listener fails or the task is aborted.
    pub async fn serve(self, listener: TcpListener) {
        let limits = Arc::new(ConnectionLimits::default());
        loop {
            match listener.accept().await {
                Ok((stream, from)) => {
                    let Some(mut slot) = limits.admit(from.ip()) else {
                        REFUSED.over_limit();
                        self.rejected.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%from, "cluster port connection over the limit");
                        continue;
                    };
                    let server = self.clone();
                    tokio::spawn(async move {
                        let Some(connection) = server.handshake(stream, from).await else {
                            server.rejected.fetch_add(1, Ordering::Relaxed);
                            return;
                        };
                        slot.authenticated();
                        if let Err(e) = server.handle(connection).await {
                            server.rejected.fetch_add(1, Ordering::Relaxed);
                            if matches!(
                                e.downcast_ref::<StreamError>(),
                                Some(StreamError::Refused | StreamError::TooLong(_))
                            ) {
                                REFUSED.frame();
                            }
                            tracing::debug!(%from, error = %e, "peer connection dropped");
                        }
                        drop(slot);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cluster port accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// The responder's handshake within [`HANDSHAKE_TIMEOUT`]; `None` (counted) if it fails.
    async fn handshake(&self, stream: TcpStream, from: SocketAddr) -> Option<PeerConnection> {
        let keyring = self.membership.status().await.ok()?.keyring;
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, PeerConnection::accept(stream, &keyring))
            .await
        {
            Ok(Ok(connection)) => Some(connection),
            Ok(Err(e)) => {
                REFUSED.handshake();
                tracing::debug!(%from, error = %e, "cluster port handshake refused");
                None
            }
            Err(_) => {
                REFUSED.timeout();
                tracing::debug!(%from, "cluster port handshake timed out");
                None
            }
        }
    }

    async fn handle(&self, mut connection: PeerConnection) -> Result<()> {
        loop {
            let Ok(received) = tokio::time::timeout(IDLE_TIMEOUT, connection.receive()).await
            else {
                return Ok(()); // idle: close quietly
            };
            let Some(message) = received? else {
                return Ok(());
            };
            match message {
                PeerMessage::AlertDigest(digest) => {
                    let alerts = self.alerts.newer_than(digest).await?;
                    let digest = self.alerts.digest().await?;
                    connection
                        .send(&PeerMessage::AlertDelta { alerts, digest })
                        .await?;
                }
                PeerMessage::AlertPush(alerts) => {
                    self.alerts.send(AlertInput::Synced(alerts)).await?;
                }
                PeerMessage::SyncSummary { alerts, records } => {
                    let answer = crate::alerts::sync::summary_answer(
                        alerts,
                        records,
                        &self.alerts,
                        &self.grid.grid,
                    )
                    .await?;
                    connection.send(&answer).await?;
                }
                PeerMessage::Raft {
                    cluster,
                    lease,
                    request,
                    target,
                } => {
                    let answer = self
                        .leadership
                        .serve_raft(cluster, target, lease, request)
                        .await;
                    connection.send(&answer).await?;
                }
                PeerMessage::PreVote { cluster, request } => {
                    let granted = self.leadership.serve_pre_vote(cluster, &request);
                    connection
                        .send(&PeerMessage::PreVoteAnswer(granted))
                        .await?;
                }
                PeerMessage::GroupHello => {
                    connection.send(&self.leadership.hello()).await?;
                }
                PeerMessage::GroupAdopt(stamp) => {
                    let adopted = self.leadership.adopt(stamp).await;
                    connection
                        .send(&PeerMessage::GroupAdoptAnswer(adopted))
                        .await?;
                }
                PeerMessage::LedgerWrite(commands) => {
                    let error = self.leadership.write_here(commands).await.err();
                    connection
                        .send(&PeerMessage::LedgerWriteAnswer(
                            error.map(|e| format!("{e:#}")),
                        ))
                        .await?;
                }
                ours @ (PeerMessage::RecordDigest(_)
                | PeerMessage::RecordPush(_)
                | PeerMessage::KeyringQuery
                | PeerMessage::KeyringChange(_)
                | PeerMessage::KeyringFetch) => {
                    if let Handled::Answer(answer) = self.grid.handle(ours).await? {
                        connection.send(&answer).await?;
                    }
                }
                PeerMessage::TopologyDigest(digest) => {
                    let digest = digest.into_iter().take(crate::topology::table::MAX_DIGEST);
                    let records = self.topology.newer_than(digest.collect()).await?;
                    let digest = self.topology.digest().await?;
                    connection
                        .send(&PeerMessage::TopologyDelta { records, digest })
                        .await?;
                }
                PeerMessage::TopologySummary(theirs) => {
                    let ours = crate::alerts::sync::digest_hash(&self.topology.digest().await?);
                    connection
                        .send(&PeerMessage::TopologySummaryAnswer(ours == theirs))
                        .await?;
                }
                PeerMessage::TopologyPush(records) => {
                    self.topology.synced(records).await?;
                }
                PeerMessage::HistoryQuery {
                    host,
                    since_ms,
                    limit,
                } => {
                    let answer =
                        crate::history_remote::answer(&self.storage, host, since_ms, limit).await?;
                    connection.send(&answer).await?;
                }
                PeerMessage::IntrospectQuery(query) => {
                    connection
                        .send(&self.introspect.answer(query).await)
                        .await?;
                }
                other @ (PeerMessage::AlertDelta { .. }
                | PeerMessage::SyncSummaryAnswer { .. }
                | PeerMessage::TopologySummaryAnswer(_)
                | PeerMessage::TopologyDelta { .. }
                | PeerMessage::RaftAnswer(_)
                | PeerMessage::RaftRefused(_)
                | PeerMessage::GroupHelloAnswer { .. }
                | PeerMessage::GroupAdoptAnswer(_)
                | PeerMessage::LedgerWriteAnswer(_)
                | PeerMessage::RecordDelta { .. }
                | PeerMessage::KeyringSummary(_)
                | PeerMessage::KeyringChangeAnswer(_)
                | PeerMessage::KeyringFetchAnswer(_)
                | PeerMessage::HistoryAnswer { .. }
                | PeerMessage::IntrospectAnswer(_)
                | PeerMessage::PreVoteAnswer(_)) => {
                    anyhow::bail!("unexpected answer {} from a client", kind_of(&other))
                }
                other @ (PeerMessage::BeaconEvents(_)
                | PeerMessage::BeaconAck(_)
                | PeerMessage::BeaconDump
                | PeerMessage::BeaconDumpAnswer(_)
                | PeerMessage::BeaconStop
                | PeerMessage::BeaconStopAnswer(_)) => {
                    anyhow::bail!("{} is for a beacon, not a member", kind_of(&other))
                }
            }
        }
    }
}

pub(crate) fn kind_of(message: &PeerMessage) -> &'static str {
    match message {
        PeerMessage::AlertDigest(_) => "AlertDigest",
        PeerMessage::AlertDelta { .. } => "AlertDelta",
        PeerMessage::AlertPush(_) => "AlertPush",
        PeerMessage::SyncSummary { .. } => "SyncSummary",
        PeerMessage::SyncSummaryAnswer { .. } => "SyncSummaryAnswer",
        PeerMessage::TopologySummary(_) => "TopologySummary",
        PeerMessage::TopologySummaryAnswer(_) => "TopologySummaryAnswer",
        PeerMessage::Raft { .. } => "Raft",
        PeerMessage::RaftAnswer(_) => "RaftAnswer",
        PeerMessage::RaftRefused(_) => "RaftRefused",
        PeerMessage::GroupHello => "GroupHello",
        PeerMessage::GroupHelloAnswer { .. } => "GroupHelloAnswer",
        PeerMessage::GroupAdopt(_) => "GroupAdopt",
        PeerMessage::GroupAdoptAnswer(_) => "GroupAdoptAnswer",
        PeerMessage::LedgerWrite(_) => "LedgerWrite",
        PeerMessage::LedgerWriteAnswer(_) => "LedgerWriteAnswer",
        PeerMessage::RecordDigest(_) => "RecordDigest",
        PeerMessage::RecordDelta { .. } => "RecordDelta",
        PeerMessage::RecordPush(_) => "RecordPush",
        PeerMessage::KeyringQuery => "KeyringQuery",
        PeerMessage::KeyringSummary(_) => "KeyringSummary",
        PeerMessage::KeyringChange(_) => "KeyringChange",
        PeerMessage::KeyringChangeAnswer(_) => "KeyringChangeAnswer",
        PeerMessage::KeyringFetch => "KeyringFetch",
        PeerMessage::KeyringFetchAnswer(_) => "KeyringFetchAnswer",
        PeerMessage::TopologyDigest(_) => "TopologyDigest",
        PeerMessage::TopologyDelta { .. } => "TopologyDelta",
        PeerMessage::TopologyPush(_) => "TopologyPush",
        PeerMessage::HistoryQuery { .. } => "HistoryQuery",
        PeerMessage::HistoryAnswer { .. } => "HistoryAnswer",
        PeerMessage::IntrospectQuery(_) => "IntrospectQuery",
        PeerMessage::IntrospectAnswer(_) => "IntrospectAnswer",
        PeerMessage::PreVote { .. } => "PreVote",
        PeerMessage::PreVoteAnswer(_) => "PreVoteAnswer",
        PeerMessage::BeaconEvents(_) => "BeaconEvents",
        PeerMessage::BeaconAck(_) => "BeaconAck",
        PeerMessage::BeaconDump => "BeaconDump",
        PeerMessage::BeaconDumpAnswer(_) => "BeaconDumpAnswer",
        PeerMessage::BeaconStop => "BeaconStop",
        PeerMessage::BeaconStopAnswer(_) => "BeaconStopAnswer",
    }
}
