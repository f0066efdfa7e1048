//! The cluster TCP port (same number as gossip): sealed frames carrying [`PeerMessage`]s.
//!
//! Today it carries the alert anti-entropy exchange; later features add their message kinds
//! at the end of the enum (postcard encodes the variant index, so only append).

pub mod server;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use rover_membership::sealed_stream::{read_frame, write_frame};
use rover_membership::Keyring;
use rover_storage::Alert;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

use crate::alerts::table::DigestEntry;

/// How long a peer exchange may take before it is abandoned.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);

/// Messages on the cluster TCP port. Only append variants.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PeerMessage {
    /// "Here is which alert versions I hold."
    AlertDigest(Vec<DigestEntry>),
    /// The answer: what the server holds newer, and its own digest.
    AlertDelta {
        /// Alerts newer on the server than in the client's digest.
        alerts: Vec<Alert>,
        /// The server's digest, so the client can push what the server lacks.
        digest: Vec<DigestEntry>,
    },
    /// What the client holds newer than the server's digest.
    AlertPush(Vec<Alert>),
}

/// One open, sealed connection to a peer.
pub struct PeerConnection {
    stream: TcpStream,
    keyring: Keyring,
}

impl PeerConnection {
    /// Connects to a peer's cluster port.
    pub async fn connect(addr: SocketAddr, keyring: Keyring) -> Result<Self> {
        let stream = tokio::time::timeout(EXCHANGE_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow!("connecting to {addr} timed out"))?
            .with_context(|| format!("connecting to {addr}"))?;
        Ok(Self::from_stream(stream, keyring))
    }

    /// Wraps an accepted stream.
    pub fn from_stream(stream: TcpStream, keyring: Keyring) -> Self {
        let _ = stream.set_nodelay(true);
        Self { stream, keyring }
    }

    /// Sends one message.
    pub async fn send(&mut self, message: &PeerMessage) -> Result<()> {
        let bytes = postcard::to_stdvec(message)?;
        let mut rng: rand::rngs::StdRng = rand::make_rng();
        write_frame(&mut self.stream, &self.keyring, &bytes, &mut rng).await?;
        Ok(())
    }

    /// Receives one message; `None` if the peer closed.
    pub async fn receive(&mut self) -> Result<Option<PeerMessage>> {
        let Some(bytes) = read_frame(&mut self.stream, &self.keyring).await? else {
            return Ok(None);
        };
        Ok(Some(
            postcard::from_bytes(&bytes).context("undecodable peer message")?,
        ))
    }
}
