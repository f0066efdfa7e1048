//! The beacon's port: accepts sealed connections with the cluster port's limits
//! ([`crate::peer::limits`]: connections in total and per address, tighter while in the
//! handshake; the handshake within [`HANDSHAKE_TIMEOUT`], nothing bigger than a handshake
//! frame read before it succeeds; a connection silent for [`IDLE_TIMEOUT`] closed) and answers
//! only the `Beacon*` messages. `BeaconStop` writes what was collected to `--out` and ends
//! [`Beacon::serve`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{bail, Context, Result};
use rover_membership::runtime::unix_ms;
use rover_membership::sealed_stream::StreamError;
use rover_membership::Keyring;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::store::Store;
use super::{Collected, StopAnswer, MAX_BATCH};
use crate::peer::limits::{ConnectionLimits, Refusals};
use crate::peer::server::kind_of;
use crate::peer::{PeerConnection, PeerMessage, HANDSHAKE_TIMEOUT, IDLE_TIMEOUT};

/// The running beacon. Cheap to clone (one per connection task).
#[derive(Debug, Clone)]
pub struct Beacon {
    keyring: Keyring,
    out: Option<PathBuf>,
    listening: SocketAddr,
    started_ms: u64,
    store: Arc<Mutex<Store>>,
    refusals: Arc<Refusals>,
    stop: CancellationToken,
}

impl Beacon {
    /// A beacon answering on `listening` (the address it tells), sealed with `keyring`,
    /// writing to `out` when stopped.
    pub fn new(keyring: Keyring, listening: SocketAddr, out: Option<PathBuf>) -> Self {
        Self {
            keyring,
            out,
            listening,
            started_ms: unix_ms(),
            store: Arc::default(),
            refusals: Arc::default(),
            stop: CancellationToken::new(),
        }
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        match self.store.lock() {
            Ok(store) => store,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Everything collected so far.
    pub fn collected(&self) -> Collected {
        let store = self.store();
        Collected {
            pid: std::process::id(),
            listening: self.listening.to_string(),
            started_ms: self.started_ms,
            nodes: store.nodes(),
            dropped_nodes: store.dropped_nodes(),
            refused: self.refusals.read(),
        }
    }

    /// Accepts connections until a `BeaconStop` was answered.
    pub async fn serve(self, listener: TcpListener) {
        let limits = Arc::new(ConnectionLimits::default());
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = self.stop.cancelled() => return,
            };
            let (stream, from) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "beacon accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Some(mut slot) = limits.admit(from.ip()) else {
                self.refusals.over_limit();
                continue;
            };
            let beacon = self.clone();
            tokio::spawn(async move {
                let Some(connection) = beacon.handshake(stream).await else {
                    return;
                };
                slot.authenticated();
                if let Err(e) = beacon.handle(connection).await {
                    if matches!(
                        e.downcast_ref::<StreamError>(),
                        Some(StreamError::Refused | StreamError::TooLong(_))
                    ) {
                        beacon.refusals.frame();
                    }
                    tracing::debug!(%from, error = %e, "beacon connection dropped");
                }
                drop(slot);
            });
        }
    }

    async fn handshake(&self, stream: TcpStream) -> Option<PeerConnection> {
        match tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            PeerConnection::accept(stream, &self.keyring),
        )
        .await
        {
            Ok(Ok(connection)) => Some(connection),
            Ok(Err(_)) => {
                self.refusals.handshake();
                None
            }
            Err(_) => {
                self.refusals.timeout();
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
                PeerMessage::BeaconEvents(batch) => {
                    if batch.events.len() > MAX_BATCH {
                        bail!(
                            "a batch of {} events (at most {MAX_BATCH})",
                            batch.events.len()
                        );
                    }
                    let added = self.store().add(batch, unix_ms());
                    let added = u64::try_from(added).unwrap_or(u64::MAX);
                    connection.send(&PeerMessage::BeaconAck(added)).await?;
                }
                PeerMessage::BeaconDump => {
                    let collected = self.collected();
                    connection
                        .send(&PeerMessage::BeaconDumpAnswer(collected))
                        .await?;
                }
                PeerMessage::BeaconStop => {
                    let answer = self.write_out();
                    let stopping = answer.is_ok();
                    connection
                        .send(&PeerMessage::BeaconStopAnswer(answer))
                        .await?;
                    if stopping {
                        self.stop.cancel();
                    }
                }
                other => bail!("{} is not a beacon message", kind_of(&other)),
            }
        }
    }

    /// Writes what was collected to `--out` (through a temporary file, so a reader never sees
    /// half of it).
    fn write_out(&self) -> StopAnswer {
        let Some(out) = &self.out else {
            return Ok(None);
        };
        let written = (|| -> Result<()> {
            let json = serde_json::to_vec_pretty(&self.collected())?;
            let mut tmp = out.clone().into_os_string();
            tmp.push(".tmp");
            let tmp = PathBuf::from(tmp);
            std::fs::write(&tmp, json).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, out).with_context(|| format!("renaming to {}", out.display()))
        })();
        match written {
            Ok(()) => Ok(Some(out.display().to_string())),
            Err(e) => Err(format!("{e:#}")),
        }
    }

    /// Stops [`Beacon::serve`] (for tests that run a beacon in-process).
    pub fn stop(&self) {
        self.stop.cancel();
    }
}
