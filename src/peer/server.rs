//! Accepts cluster TCP connections and answers peer messages, one task per connection.
//! A connection whose frames do not open or decode is closed and counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Result;
use rover_membership::MembershipHandle;
use tokio::net::{TcpListener, TcpStream};

use super::{PeerConnection, PeerMessage, EXCHANGE_TIMEOUT};
use crate::alerts::{AlertInput, AlertsHandle};

/// What the server needs to answer.
#[derive(Debug, Clone)]
pub struct PeerServer {
    /// Keyring source (the membership task holds the current one).
    pub membership: MembershipHandle,
    /// The alerts owner task.
    pub alerts: AlertsHandle,
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
                        let exchange =
                            tokio::time::timeout(EXCHANGE_TIMEOUT, server.handle(stream));
                        let failed = match exchange.await {
                            Ok(Ok(())) => None,
                            Ok(Err(e)) => Some(e.to_string()),
                            Err(_) => Some("timed out".to_owned()),
                        };
                        if let Some(why) = failed {
                            server.rejected.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%from, why, "peer connection dropped");
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
        while let Some(message) = connection.receive().await? {
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
                PeerMessage::AlertDelta { .. } => {
                    anyhow::bail!("unexpected AlertDelta from a client")
                }
            }
        }
        Ok(())
    }
}
