//! Sealed frames over a byte stream (the cluster TCP port): `u32 big-endian length | envelope`.
//!
//! Each frame is one [`crate::envelope`] sealed under the keyring's primary key, so TCP traffic
//! gets the same protection as gossip datagrams. A frame that is too long or does not open ends
//! the connection with a typed error; nothing of it is parsed.

use rand::Rng;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::OpenError;
use crate::keyring::Keyring;

/// The largest sealed frame accepted (16 MiB).
pub const MAX_FRAME: usize = 16 << 20;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The connection failed or closed mid-frame; the connection is unusable.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// The peer announced a frame over [`MAX_FRAME`]; nothing was read past the length.
    #[error("frame of {0} bytes exceeds the limit")]
    TooLong(usize),
    /// The frame did not open with our keyring; dropped unparsed.
    #[error("frame does not open: {0}")]
    Unsealed(#[from] OpenError),
}

/// Seals `plaintext` with the primary key and writes it as one frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    keyring: &Keyring,
    plaintext: &[u8],
    rng: &mut impl Rng,
) -> std::io::Result<()> {
    let sealed = keyring.seal(plaintext, rng);
    let len = u32::try_from(sealed.len())
        .ok()
        .filter(|len| (*len as usize) <= MAX_FRAME)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "frame too long"))?;
    writer.write_all(&len.to_be_bytes()).await?;
    writer.write_all(&sealed).await?;
    writer.flush().await
}

/// Reads one frame and opens it; `Ok(None)` when the peer closed cleanly between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    keyring: &Keyring,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLong(len));
    }
    let mut sealed = vec![0u8; len];
    reader.read_exact(&mut sealed).await?;
    Ok(Some(keyring.open(&sealed)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::ClusterKey;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn ring(byte: u8) -> Keyring {
        Keyring::new(ClusterKey::from_bytes([byte; 32]))
    }

    #[tokio::test]
    async fn frames_round_trip_in_order() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let mut rng = StdRng::seed_from_u64(3);
        write_frame(&mut a, &ring(1), b"one", &mut rng)
            .await
            .unwrap();
        write_frame(&mut a, &ring(1), b"two", &mut rng)
            .await
            .unwrap();
        drop(a);
        assert_eq!(read_frame(&mut b, &ring(1)).await.unwrap().unwrap(), b"one");
        assert_eq!(read_frame(&mut b, &ring(1)).await.unwrap().unwrap(), b"two");
        assert!(read_frame(&mut b, &ring(1)).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_frame_under_another_key_is_refused() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        write_frame(&mut a, &ring(1), b"secret", &mut StdRng::seed_from_u64(3))
            .await
            .unwrap();
        assert!(matches!(
            read_frame(&mut b, &ring(2)).await,
            Err(FrameError::Unsealed(_))
        ));
    }

    #[tokio::test]
    async fn an_oversized_length_is_refused_before_reading_it() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        assert!(matches!(
            read_frame(&mut b, &ring(1)).await,
            Err(FrameError::TooLong(_))
        ));
    }
}
