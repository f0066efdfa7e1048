//! Accepts cluster TCP connections and answers peer messages, one task per connection.
//! A connection whose frames do not open or decode is closed and counted; one that stays
//! silent for [`IDLE_TIMEOUT`] is closed quietly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Result;
use rover_membership::MembershipHandle;
use tokio::net::{TcpListener, TcpStream};

use super::{PeerConnection, PeerMessage, IDLE_TIMEOUT};
use crate::alerts::{AlertInput, AlertsHandle};
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
}

impl PeerServer {
    /// Accepts connections until the listener fails or the task is aborted.
    pub async fn serve(self, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, from)) => {
                    let server = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = server.handle(stream).await {
                            server.rejected.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%from, error = %e, "peer connection dropped");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cluster port accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn handle(&self, stream: TcpStream) -> Result<()> {
        let keyring = self.membership.status().await?.keyring;
        let mut connection = PeerConnection::from_stream(stream, keyring);
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
                other @ (PeerMessage::AlertDelta { .. }
                | PeerMessage::RaftAnswer(_)
                | PeerMessage::RaftRefused(_)
                | PeerMessage::GroupHelloAnswer { .. }
                | PeerMessage::GroupAdoptAnswer(_)
                | PeerMessage::LedgerWriteAnswer(_)) => {
                    anyhow::bail!("unexpected answer {} from a client", kind_of(&other))
                }
            }
        }
    }
}

fn kind_of(message: &PeerMessage) -> &'static str {
    match message {
        PeerMessage::AlertDigest(_) => "AlertDigest",
        PeerMessage::AlertDelta { .. } => "AlertDelta",
        PeerMessage::AlertPush(_) => "AlertPush",
        PeerMessage::Raft { .. } => "Raft",
        PeerMessage::RaftAnswer(_) => "RaftAnswer",
        PeerMessage::RaftRefused(_) => "RaftRefused",
        PeerMessage::GroupHello => "GroupHello",
        PeerMessage::GroupHelloAnswer { .. } => "GroupHelloAnswer",
        PeerMessage::GroupAdopt(_) => "GroupAdopt",
        PeerMessage::GroupAdoptAnswer(_) => "GroupAdoptAnswer",
        PeerMessage::LedgerWrite(_) => "LedgerWrite",
        PeerMessage::LedgerWriteAnswer(_) => "LedgerWriteAnswer",
    }
}
