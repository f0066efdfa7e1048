//! The connections of border links: the listener for links arriving from other teams, the
//! dialer of each link, and the pump of one connection.
//!
//! A connection opens with the cluster port's Noise handshake ([`sealed_stream`]) keyed by the
//! link's pairwise key, so a peer that does not hold the key gets nothing more than a refused
//! handshake (nothing over 128 bytes is read before it is confirmed). Each end then sends a
//! [`LinkFrame::Hello`] naming its team, host and mode; a Hello of another team than the link's
//! closes the connection. After that the pump reads frames (each at most
//! [`wire::MAX_FRAME_BYTES`]) and hands them to the owner task, and writes what the owner
//! queued, with a heartbeat whenever it has been quiet for a third of `link_timeout`. A
//! connection silent for `link_timeout` is closed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rover_membership::sealed_stream::{self, SealedReader, SealedWriter};
use rover_membership::{ClusterKey, Keyring};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use super::border::Input;
use super::wire::{self, LinkFrame, LinkMode};
use crate::peer::limits::ConnectionLimits;

/// Bound on connecting and on the handshake with its Hello.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
/// Frames queued for one connection; a peer that lets more pile up is too slow and is closed.
pub const OUTBOX_FRAMES: usize = 16_384;
/// A connection that lasted this long resets the dial backoff.
const STEADY: Duration = Duration::from_secs(5);
/// Longest wait between two dials of a link.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

static CONNECTION_IDS: AtomicU64 = AtomicU64::new(1);

/// Who this end is, as its Hello says.
#[derive(Debug, Clone)]
pub struct LocalEnd {
    /// Our team.
    pub team: String,
    /// Our host name.
    pub host: String,
}

/// One link as the connections need it.
#[derive(Debug, Clone)]
pub struct LinkEnd {
    /// Index of the link in the configuration.
    pub index: usize,
    /// The other team.
    pub team: String,
    /// The pairwise key.
    pub key: ClusterKey,
    /// What this end offers.
    pub mode: LinkMode,
}

/// What the peer's Hello said.
#[derive(Debug, Clone)]
pub struct PeerHello {
    /// Its host name.
    pub host: String,
    /// Its mode.
    pub mode: LinkMode,
}

/// Accepts links from other teams' border agents on `listener` until the task is aborted.
pub async fn listen(
    listener: TcpListener,
    local: LocalEnd,
    links: Vec<LinkEnd>,
    timeout: Duration,
    owner: mpsc::Sender<Input>,
) {
    let limits = Arc::new(ConnectionLimits::default());
    let mut keyring: Option<Keyring> = None;
    for link in &links {
        match &mut keyring {
            None => keyring = Some(Keyring::new(link.key.clone())),
            Some(ring) => ring.install(link.key.clone()),
        }
    }
    let Some(keyring) = keyring else { return };
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "team link accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(mut slot) = limits.admit(from.ip()) else {
            let _ = owner.try_send(Input::Refused {
                link: None,
                reason: "over_limit",
            });
            continue;
        };
        let (keyring, links, local, owner) =
            (keyring.clone(), links.clone(), local.clone(), owner.clone());
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let opened = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
                let sealed = sealed_stream::accept(stream, &keyring)
                    .await
                    .map_err(|_| (None, "handshake"))?;
                let id = sealed.key_id();
                let link = links
                    .iter()
                    .find(|l| l.key.id() == id)
                    .ok_or((None, "handshake"))?;
                let (mut reader, mut writer) = sealed.into_split();
                let hello = exchange_hello(&mut reader, &mut writer, &local, link).await?;
                Ok::<_, (Option<usize>, &'static str)>((link.clone(), reader, writer, hello))
            })
            .await;
            match opened {
                Ok(Ok((link, reader, writer, hello))) => {
                    slot.authenticated();
                    tracing::debug!(%from, team = %link.team, "team link accepted");
                    pump(link, reader, writer, hello, false, timeout, owner).await;
                }
                Ok(Err((link, reason))) => {
                    tracing::debug!(%from, reason, "team link refused");
                    let _ = owner.try_send(Input::Refused { link, reason });
                }
                Err(_) => {
                    let _ = owner.try_send(Input::Refused {
                        link: None,
                        reason: "handshake_timeout",
                    });
                }
            }
            drop(slot);
        });
    }
}

/// Dials `peer` for `link` whenever the link has no connection (`connected` false), with a
/// backoff from 100 ms to 5 s between failed tries, until the task is aborted.
pub async fn dial(
    peer: String,
    local: LocalEnd,
    link: LinkEnd,
    timeout: Duration,
    owner: mpsc::Sender<Input>,
    mut connected: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        while *connected.borrow_and_update() {
            if connected.changed().await.is_err() {
                return;
            }
        }
        match open(&peer, &local, &link).await {
            Ok((reader, writer, hello)) => {
                let opened = std::time::Instant::now();
                pump(
                    link.clone(),
                    reader,
                    writer,
                    hello,
                    true,
                    timeout,
                    owner.clone(),
                )
                .await;
                // Only a connection that lasted resets the backoff: a peer that shakes hands
                // and closes at once is not dialed again every 100 ms.
                if opened.elapsed() >= STEADY {
                    backoff = Duration::from_millis(100);
                }
            }
            Err(reason) => {
                tracing::debug!(team = %link.team, %peer, reason, "team link dial failed");
                let _ = owner.try_send(Input::Refused {
                    link: Some(link.index),
                    reason,
                });
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

type Reader = SealedReader<tokio::io::ReadHalf<TcpStream>>;
type Writer = SealedWriter<tokio::io::WriteHalf<TcpStream>>;

/// Connects, shakes hands and exchanges Hellos within [`HANDSHAKE_TIMEOUT`].
async fn open(
    peer: &str,
    local: &LocalEnd,
    link: &LinkEnd,
) -> Result<(Reader, Writer, PeerHello), &'static str> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(peer)
            .await
            .map_err(|_| "unresolved")?
            .collect();
        let addr = addrs.first().ok_or("unresolved")?;
        let stream = TcpStream::connect(addr).await.map_err(|_| "unreachable")?;
        let _ = stream.set_nodelay(true);
        let sealed = sealed_stream::connect(stream, &Keyring::new(link.key.clone()))
            .await
            .map_err(|_| "handshake")?;
        let (mut reader, mut writer) = sealed.into_split();
        let hello = exchange_hello(&mut reader, &mut writer, local, link)
            .await
            .map_err(|(_, reason)| reason)?;
        Ok((reader, writer, hello))
    })
    .await
    .map_err(|_| "handshake_timeout")?
}

/// Sends our Hello and reads theirs: it must be the first frame and name the link's team.
async fn exchange_hello(
    reader: &mut Reader,
    writer: &mut Writer,
    local: &LocalEnd,
    link: &LinkEnd,
) -> Result<PeerHello, (Option<usize>, &'static str)> {
    let refused = |reason| (Some(link.index), reason);
    let ours = LinkFrame::Hello {
        protocol: wire::PROTOCOL,
        team: local.team.clone(),
        host: local.host.clone(),
        mode: link.mode,
    };
    writer
        .send(&wire::encode(&ours))
        .await
        .map_err(|_| refused("closed"))?;
    let bytes = reader
        .receive_at_most(wire::MAX_FRAME_BYTES)
        .await
        .map_err(|_| refused("bad_frame"))?
        .ok_or(refused("closed"))?;
    match wire::decode(&bytes) {
        Ok(LinkFrame::Hello {
            protocol,
            team,
            host,
            mode,
        }) => {
            if protocol != wire::PROTOCOL {
                return Err(refused("protocol"));
            }
            if team == local.team {
                return Err(refused("same_team"));
            }
            if team != link.team {
                return Err(refused("wrong_team"));
            }
            Ok(PeerHello { host, mode })
        }
        Ok(_) => Err(refused("no_hello")),
        Err(e) => Err(refused(e.reason())),
    }
}

/// Runs one connection until it fails, stays silent for `timeout`, or the owner drops its
/// outbox (it keeps another connection of the link, or the peer was too slow).
async fn pump(
    link: LinkEnd,
    mut reader: Reader,
    mut writer: Writer,
    hello: PeerHello,
    dialed: bool,
    timeout: Duration,
    owner: mpsc::Sender<Input>,
) {
    let conn = CONNECTION_IDS.fetch_add(1, Ordering::Relaxed);
    let (outbox, mut queued) = mpsc::channel::<Vec<u8>>(OUTBOX_FRAMES);
    let registered = owner
        .send(Input::Connected {
            link: link.index,
            conn,
            outbox,
            dialed,
            hello,
        })
        .await;
    if registered.is_err() {
        return;
    }
    let heartbeat_every = timeout / 3;
    let writing = async move {
        let heartbeat = wire::encode(&LinkFrame::Heartbeat);
        loop {
            let frame = match tokio::time::timeout(heartbeat_every, queued.recv()).await {
                Ok(Some(frame)) => frame,
                Ok(None) => return "replaced",
                Err(_) => heartbeat.clone(),
            };
            if writer.send(&frame).await.is_err() {
                return "closed";
            }
        }
    };
    let reading = {
        let owner = owner.clone();
        async move {
            loop {
                let received =
                    tokio::time::timeout(timeout, reader.receive_at_most(wire::MAX_FRAME_BYTES))
                        .await;
                let bytes = match received {
                    Err(_) => return "silent",
                    Ok(Ok(Some(bytes))) => bytes,
                    Ok(Ok(None)) => return "closed",
                    Ok(Err(sealed_stream::StreamError::TooLong(_))) => return "oversized",
                    Ok(Err(sealed_stream::StreamError::Refused)) => return "forged",
                    Ok(Err(_)) => return "closed",
                };
                // An authenticated frame that does not decode is dropped and counted; the
                // stream stays in step, so the link goes on.
                let input = match wire::decode(&bytes) {
                    Ok(frame) => Input::Frame {
                        link: link.index,
                        conn,
                        frame,
                    },
                    Err(e) => Input::Refused {
                        link: Some(link.index),
                        reason: e.reason(),
                    },
                };
                if owner.send(input).await.is_err() {
                    return "stopped";
                }
            }
        }
    };
    let reason = tokio::select! {
        reason = writing => reason,
        reason = reading => reason,
    };
    let _ = owner
        .send(Input::Dropped {
            link: link.index,
            conn,
            reason,
        })
        .await;
}
