//! The cluster TCP port's protocol: a Noise handshake keyed by the keyring, then encrypted
//! frames whose per-direction counters refuse any replayed, reordered or foreign frame.
//!
//! On the wire, every frame is `u16 big-endian length | bytes`.
//!
//! 1. The initiator sends an 8-byte preamble in clear: [`STREAM_MAGIC`] (3 bytes),
//!    [`STREAM_VERSION`] (1) and the id of the key it uses (4, its primary key), then the first
//!    handshake message of `Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s`. The preamble is the Noise
//!    prologue, so it is authenticated: a changed key id fails the handshake. The pre-shared
//!    key is derived from the named cluster key, so every key of the keyring (not only the
//!    primary) still accepts connections while a rotation is under way.
//! 2. The responder answers with the second handshake message. Both sides now hold fresh
//!    session keys from new ephemeral keys: nothing recorded from an earlier connection opens.
//! 3. The initiator sends an empty confirmation frame, so the responder knows the initiator
//!    holds the session keys (a replayed first message cannot produce it). Until then the
//!    responder reads nothing larger than [`MAX_HANDSHAKE_FRAME`] and allocates nothing more.
//!
//! After that, each frame is one Noise transport message (at most 65 535 bytes). Noise
//! numbers the messages of each direction (the nonce is a counter), so a frame played twice,
//! out of order or from another connection fails to decrypt; the connection is then closed.
//! A message longer than one frame is sent in chunks: each plaintext starts with a byte that
//! says whether more chunks follow. Messages are capped at [`MAX_MESSAGE`].
//!
//! Deadlines are the caller's: wrap [`accept`] and [`connect`] in a timeout.

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::envelope::{ClusterKey, KEY_ID_LEN};
use crate::keyring::Keyring;

/// The first bytes of every cluster-port connection.
pub const STREAM_MAGIC: [u8; 3] = *b"RVS";
/// The stream protocol version this build speaks.
pub const STREAM_VERSION: u8 = 1;
/// Length of the clear preamble: magic, version, key id.
pub const PREAMBLE_LEN: usize = STREAM_MAGIC.len() + 1 + KEY_ID_LEN;
/// The largest frame read before the handshake has succeeded (our handshake messages are 48
/// bytes and the confirmation 17).
pub const MAX_HANDSHAKE_FRAME: usize = 128;
/// The largest message accepted after the handshake (16 MiB).
pub const MAX_MESSAGE: usize = 16 << 20;
/// The largest Noise message.
const MAX_FRAME: usize = 65_535;
/// Poly1305 tag on every Noise message.
const TAG_LEN: usize = 16;
/// Plaintext bytes per chunk: a frame minus the tag and the "more follows" byte.
const CHUNK: usize = MAX_FRAME - TAG_LEN - 1;
/// The chunk flag values.
const LAST_CHUNK: u8 = 0;
const MORE_CHUNKS: u8 = 1;

const NOISE_PARAMS: &str = "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s";

/// Why a connection was refused or ended. Each variant closes the connection; nothing the
/// peer sent past the failure is read.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The connection failed or closed; unusable.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// The peer does not speak this protocol (no preamble); nothing more was read.
    #[error("not a rover-agent cluster connection")]
    NotOurProtocol,
    /// The peer speaks another version of the stream protocol; nothing more was read.
    #[error("cluster stream protocol version {0} (ours is {STREAM_VERSION})")]
    Version(u8),
    /// The peer names a key this keyring does not hold; nothing more was read.
    #[error("the peer uses a cluster key this agent does not hold")]
    UnknownKey,
    /// A frame announced more than allowed (before the handshake: more than a handshake
    /// message); its bytes were not read.
    #[error("frame of {0} bytes exceeds the limit")]
    TooLong(usize),
    /// The handshake failed: the peer lacks the key, forged or replayed a handshake, or did
    /// not confirm it.
    #[error("handshake failed: {0}")]
    Handshake(&'static str),
    /// A frame after the handshake did not decrypt: replayed, reordered, from another
    /// connection or forged.
    #[error("frame refused (replayed, reordered or forged)")]
    Refused,
}

/// An authenticated connection: send and receive whole messages.
pub struct SealedStream<S> {
    stream: S,
    noise: snow::TransportState,
    frame: Vec<u8>,
    plain: Vec<u8>,
    handshake_bytes_out: usize,
    key_id: [u8; KEY_ID_LEN],
}

impl<S> std::fmt::Debug for SealedStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedStream").finish_non_exhaustive()
    }
}

/// The Noise pre-shared key for streams, derived from a cluster key (so the datagram cipher
/// and the stream handshake never use the same key).
fn stream_psk(key: &ClusterKey) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(b"rover-agent cluster stream psk v1");
    hash.update(key.as_bytes());
    hash.finalize().into()
}

fn preamble(key: &ClusterKey) -> [u8; PREAMBLE_LEN] {
    let mut out = [0u8; PREAMBLE_LEN];
    out[..3].copy_from_slice(&STREAM_MAGIC);
    out[3] = STREAM_VERSION;
    out[4..].copy_from_slice(&key.id());
    out
}

fn noise(
    key: &ClusterKey,
    prologue: &[u8],
    initiator: bool,
) -> Result<snow::HandshakeState, StreamError> {
    let params: snow::params::NoiseParams = NOISE_PARAMS
        .parse()
        .map_err(|_| StreamError::Handshake("unsupported Noise parameters"))?;
    let psk = stream_psk(key);
    let builder = snow::Builder::new(params)
        .psk(0, &psk)
        .and_then(|b| b.prologue(prologue))
        .map_err(|_| StreamError::Handshake("bad Noise setup"))?;
    let state = if initiator {
        builder.build_initiator()
    } else {
        builder.build_responder()
    };
    state.map_err(|_| StreamError::Handshake("bad Noise setup"))
}

/// Opens a connection as the initiator with the keyring's primary key.
pub async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    keyring: &Keyring,
) -> Result<SealedStream<S>, StreamError> {
    let key = keyring.primary();
    let prologue = preamble(key);
    let mut handshake = noise(key, &prologue, true)?;
    let mut message = [0u8; MAX_HANDSHAKE_FRAME];
    let len = handshake
        .write_message(&[], &mut message)
        .map_err(|_| StreamError::Handshake("cannot write the first message"))?;
    let mut first = Vec::with_capacity(PREAMBLE_LEN + 2 + len);
    first.extend_from_slice(&prologue);
    push_frame(&mut first, &message[..len]);
    stream.write_all(&first).await?;
    stream.flush().await?;
    let mut answer = [0u8; MAX_HANDSHAKE_FRAME];
    let answer_len = read_small_frame(&mut stream, &mut answer).await?;
    handshake
        .read_message(&answer[..answer_len], &mut message)
        .map_err(|_| StreamError::Handshake("the peer does not hold our key"))?;
    let noise = handshake
        .into_transport_mode()
        .map_err(|_| StreamError::Handshake("handshake incomplete"))?;
    let mut sealed = SealedStream {
        stream,
        noise,
        frame: Vec::new(),
        plain: Vec::new(),
        handshake_bytes_out: first.len(),
        key_id: key.id(),
    };
    sealed.send(&[]).await?;
    sealed.handshake_bytes_out += 2 + TAG_LEN + 1;
    Ok(sealed)
}

/// Accepts a connection as the responder with whichever key of `keyring` the initiator names.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    keyring: &Keyring,
) -> Result<SealedStream<S>, StreamError> {
    let mut prologue = [0u8; PREAMBLE_LEN];
    stream.read_exact(&mut prologue).await?;
    if prologue[..3] != STREAM_MAGIC {
        return Err(StreamError::NotOurProtocol);
    }
    if prologue[3] != STREAM_VERSION {
        return Err(StreamError::Version(prologue[3]));
    }
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&prologue[4..]);
    let key = keyring.by_id(id).ok_or(StreamError::UnknownKey)?;
    let mut handshake = noise(key, &prologue, false)?;
    let mut message = [0u8; MAX_HANDSHAKE_FRAME];
    let len = read_small_frame(&mut stream, &mut message).await?;
    let mut payload = [0u8; MAX_HANDSHAKE_FRAME];
    handshake
        .read_message(&message[..len], &mut payload)
        .map_err(|_| StreamError::Handshake("the peer does not hold the key it names"))?;
    let len = handshake
        .write_message(&[], &mut message)
        .map_err(|_| StreamError::Handshake("cannot write the answer"))?;
    let mut answer = Vec::with_capacity(2 + len);
    push_frame(&mut answer, &message[..len]);
    stream.write_all(&answer).await?;
    stream.flush().await?;
    let mut noise = handshake
        .into_transport_mode()
        .map_err(|_| StreamError::Handshake("handshake incomplete"))?;
    let len = read_small_frame(&mut stream, &mut message).await?;
    let confirmed = noise.read_message(&message[..len], &mut payload);
    if confirmed.ok() != Some(1) || payload[0] != LAST_CHUNK {
        return Err(StreamError::Handshake(
            "not confirmed (a replayed handshake?)",
        ));
    }
    Ok(SealedStream {
        stream,
        noise,
        frame: Vec::new(),
        plain: Vec::new(),
        handshake_bytes_out: answer.len(),
        key_id: id,
    })
}

/// Appends `u16 length | bytes`.
fn push_frame(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes[..usize::from(len)]);
}

/// Reads one frame of at most `buf.len()` bytes into `buf` (pre-handshake: fixed buffers).
async fn read_small_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut [u8],
) -> Result<usize, StreamError> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let len = usize::from(u16::from_be_bytes(len));
    if len > buf.len() {
        return Err(StreamError::TooLong(len));
    }
    stream.read_exact(&mut buf[..len]).await?;
    Ok(len)
}

impl<S: AsyncRead + AsyncWrite + Unpin> SealedStream<S> {
    /// Bytes this side wrote for the handshake (preamble, messages, confirmation).
    pub fn handshake_bytes_out(&self) -> usize {
        self.handshake_bytes_out
    }

    /// The id of the key the handshake used (which key of the keyring the initiator named).
    pub fn key_id(&self) -> [u8; KEY_ID_LEN] {
        self.key_id
    }

    /// Encrypts and writes one message (in chunks if needed); returns the bytes written.
    pub async fn send(&mut self, message: &[u8]) -> Result<usize, StreamError> {
        if message.len() > MAX_MESSAGE {
            return Err(StreamError::TooLong(message.len()));
        }
        let chunks = message.len().div_ceil(CHUNK).max(1);
        let mut out = Vec::with_capacity(message.len() + chunks * (2 + 1 + TAG_LEN));
        seal_chunks(&mut self.noise, message, &mut out)?;
        self.stream.write_all(&out).await?;
        self.stream.flush().await?;
        Ok(out.len())
    }

    /// Reads and decrypts one message; `Ok(None)` if the peer closed between messages.
    pub async fn receive(&mut self) -> Result<Option<Vec<u8>>, StreamError> {
        self.receive_at_most(MAX_MESSAGE).await
    }

    /// [`Self::receive`] for messages of at most `max` bytes (a longer one ends the
    /// connection with [`StreamError::TooLong`] before it is all read).
    pub async fn receive_at_most(&mut self, max: usize) -> Result<Option<Vec<u8>>, StreamError> {
        let noise = &mut self.noise;
        read_message(
            &mut self.stream,
            &mut self.frame,
            &mut self.plain,
            max,
            |f, p| noise.read_message(f, p).map_err(|_| StreamError::Refused),
        )
        .await
    }
}

/// The reading half of a split [`SealedStream`] (see [`SealedStream::into_split`]).
pub struct SealedReader<R> {
    stream: R,
    noise: std::sync::Arc<std::sync::Mutex<snow::TransportState>>,
    frame: Vec<u8>,
    plain: Vec<u8>,
}

/// The writing half of a split [`SealedStream`].
pub struct SealedWriter<W> {
    stream: W,
    noise: std::sync::Arc<std::sync::Mutex<snow::TransportState>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> SealedStream<S> {
    /// Splits the connection so that one task may wait for messages while another sends: the
    /// halves share the session's keys (each direction keeps its own counter).
    pub fn into_split(
        self,
    ) -> (
        SealedReader<tokio::io::ReadHalf<S>>,
        SealedWriter<tokio::io::WriteHalf<S>>,
    ) {
        let (read, write) = tokio::io::split(self.stream);
        let noise = std::sync::Arc::new(std::sync::Mutex::new(self.noise));
        (
            SealedReader {
                stream: read,
                noise: noise.clone(),
                frame: self.frame,
                plain: self.plain,
            },
            SealedWriter {
                stream: write,
                noise,
            },
        )
    }
}

impl<R: AsyncRead + Unpin> SealedReader<R> {
    /// As [`SealedStream::receive_at_most`].
    pub async fn receive_at_most(&mut self, max: usize) -> Result<Option<Vec<u8>>, StreamError> {
        let noise = &self.noise;
        read_message(
            &mut self.stream,
            &mut self.frame,
            &mut self.plain,
            max,
            |f, p| {
                let mut noise = noise.lock().map_err(|_| StreamError::Refused)?;
                noise.read_message(f, p).map_err(|_| StreamError::Refused)
            },
        )
        .await
    }
}

impl<W: AsyncWrite + Unpin> SealedWriter<W> {
    /// As [`SealedStream::send`].
    pub async fn send(&mut self, message: &[u8]) -> Result<usize, StreamError> {
        if message.len() > MAX_MESSAGE {
            return Err(StreamError::TooLong(message.len()));
        }
        let mut out = Vec::with_capacity(message.len() + 2 + 1 + TAG_LEN);
        {
            let mut noise = self
                .noise
                .lock()
                .map_err(|_| StreamError::Handshake("cannot encrypt"))?;
            seal_chunks(&mut noise, message, &mut out)?;
        }
        self.stream.write_all(&out).await?;
        self.stream.flush().await?;
        Ok(out.len())
    }
}

/// Reads one message of at most `max` bytes (chunk by chunk, each frame opened by `open`);
/// `Ok(None)` if the peer closed between messages.
async fn read_message<R: AsyncRead + Unpin>(
    stream: &mut R,
    frame: &mut Vec<u8>,
    plain: &mut Vec<u8>,
    max: usize,
    mut open: impl FnMut(&[u8], &mut [u8]) -> Result<usize, StreamError>,
) -> Result<Option<Vec<u8>>, StreamError> {
    let max = max.min(MAX_MESSAGE);
    let mut message = Vec::new();
    loop {
        let mut len = [0u8; 2];
        match stream.read_exact(&mut len).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && message.is_empty() => {
                return Ok(None)
            }
            Err(e) => return Err(e.into()),
        }
        let len = usize::from(u16::from_be_bytes(len));
        frame.resize(len, 0);
        stream.read_exact(frame).await?;
        plain.resize(len, 0);
        let plain_len = open(frame, plain)?;
        let Some((flag, data)) = plain[..plain_len].split_first() else {
            return Err(StreamError::Refused);
        };
        if message.len() + data.len() > max {
            return Err(StreamError::TooLong(message.len() + data.len()));
        }
        message.extend_from_slice(data);
        match *flag {
            LAST_CHUNK => return Ok(Some(message)),
            MORE_CHUNKS => {}
            _ => return Err(StreamError::Refused),
        }
    }
}

/// Encrypts `message` as chunks of frames appended to `out`.
fn seal_chunks(
    noise: &mut snow::TransportState,
    message: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), StreamError> {
    let chunks = message.len().div_ceil(CHUNK).max(1);
    let mut plain = Vec::with_capacity(message.len().min(CHUNK) + 1);
    let mut sealed = vec![0u8; MAX_FRAME.min(message.len() + 1 + TAG_LEN)];
    for (index, chunk) in message
        .chunks(CHUNK)
        .chain(message.is_empty().then_some(&[][..]))
        .enumerate()
    {
        plain.clear();
        plain.push(if index + 1 == chunks {
            LAST_CHUNK
        } else {
            MORE_CHUNKS
        });
        plain.extend_from_slice(chunk);
        let len = noise
            .write_message(&plain, &mut sealed)
            .map_err(|_| StreamError::Handshake("cannot encrypt"))?;
        push_frame(out, &sealed[..len]);
    }
    Ok(())
}

#[cfg(test)]
#[path = "sealed_stream_tests.rs"]
mod tests;
