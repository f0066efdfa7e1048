//! The sealed envelope every gossip datagram travels in.
//!
//! Layout: `version (1) | key id (4) | sender time (8, ms, big-endian) | nonce (24) |
//! ciphertext + tag (16)`. The cipher is XChaCha20-Poly1305; the version byte, the key id and
//! the sender's time are authenticated as associated data, so none of them can be altered
//! without the packet failing to open. The time and the nonce let the receiver refuse replays
//! (see [`crate::replay`]). Opening is a pure function: a packet that does not open is never
//! parsed further.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::error::OpenError;

/// The only envelope version this build writes and reads (1 had no sender time).
pub const ENVELOPE_VERSION: u8 = 2;
/// Length of the random nonce.
pub const NONCE_LEN: usize = 24;
/// Length of the key id.
pub const KEY_ID_LEN: usize = 4;
/// Length of the sender's time.
pub const TIME_LEN: usize = 8;
/// Length of the Poly1305 tag.
pub const TAG_LEN: usize = 16;
/// Bytes the envelope adds to a plaintext.
pub const ENVELOPE_OVERHEAD: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;

const HEADER_LEN: usize = 1 + KEY_ID_LEN + TIME_LEN;

/// A 32-byte cluster key.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterKey {
    bytes: [u8; 32],
}

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        write!(f, "ClusterKey({})", self.fingerprint())
    }
}

impl ClusterKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self { bytes }
    }

    /// Makes a new random key.
    pub fn generate(rng: &mut impl Rng) -> Self {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        Self { bytes }
    }

    /// Parses the one-line base64 form that `keygen` prints and key files hold.
    pub fn from_base64(text: &str) -> Result<Self, crate::error::KeyParseError> {
        use base64::Engine;
        let trimmed = text.trim();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(trimmed)
            .map_err(|_| crate::error::KeyParseError::NotBase64)?;
        let bytes: [u8; 32] = decoded
            .try_into()
            .map_err(|v: Vec<u8>| crate::error::KeyParseError::WrongLength(v.len()))?;
        Ok(Self { bytes })
    }

    /// The one-line base64 form of the key.
    pub fn to_base64(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(self.bytes)
    }

    /// The 4-byte id carried in every envelope: the first bytes of SHA-256 over the key.
    pub fn id(&self) -> [u8; KEY_ID_LEN] {
        let digest = Sha256::digest(self.bytes);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        id
    }

    /// A short printable fingerprint (hex of the key id), safe to show and log.
    pub fn fingerprint(&self) -> String {
        self.id().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The raw key bytes (for deriving the stream handshake's pre-shared key).
    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.bytes.into())
    }
}

/// A packet that opened: what the sender sealed, when, and under which nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The sender's clock when it sealed the packet (ms since the Unix epoch).
    pub sent_ms: u64,
    /// The packet's random nonce (unique per packet: a repeat is a replay).
    pub nonce: [u8; NONCE_LEN],
    /// The plaintext.
    pub plaintext: Vec<u8>,
}

/// Seals `plaintext` under `key`, stamped with `sent_ms`, with a fresh nonce drawn from `rng`.
pub fn seal(key: &ClusterKey, sent_ms: u64, plaintext: &[u8], rng: &mut impl Rng) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let mut header = [0u8; HEADER_LEN];
    header[0] = ENVELOPE_VERSION;
    header[1..1 + KEY_ID_LEN].copy_from_slice(&key.id());
    header[1 + KEY_ID_LEN..].copy_from_slice(&sent_ms.to_be_bytes());
    let ciphertext = key
        .cipher()
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &header,
            },
        )
        // Encryption only fails for plaintexts near 2^38 bytes; ours are bounded by the
        // datagram limit long before that.
        .unwrap_or_default();
    let mut out = Vec::with_capacity(ENVELOPE_OVERHEAD + plaintext.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    out
}

/// The envelope version a packet claims (its first byte), if it has one.
pub fn claimed_version(packet: &[u8]) -> Option<u8> {
    packet.first().copied()
}

/// The key id a packet claims, if it is long enough to have one and has our version.
pub fn claimed_key_id(packet: &[u8]) -> Result<[u8; KEY_ID_LEN], OpenError> {
    match claimed_version(packet) {
        Some(ENVELOPE_VERSION) => {}
        Some(version) if packet.len() > 1 + KEY_ID_LEN => {
            return Err(OpenError::UnknownVersion(version))
        }
        _ => return Err(OpenError::TooShort(packet.len())),
    }
    if packet.len() < ENVELOPE_OVERHEAD {
        return Err(OpenError::TooShort(packet.len()));
    }
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&packet[1..1 + KEY_ID_LEN]);
    Ok(id)
}

/// Opens `packet` with `key`; fails unless it was sealed with exactly this key and is intact.
pub fn open(key: &ClusterKey, packet: &[u8]) -> Result<Opened, OpenError> {
    let id = claimed_key_id(packet)?;
    if id != key.id() {
        return Err(OpenError::UnknownKey);
    }
    let (header, rest) = packet.split_at(HEADER_LEN);
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| OpenError::TooShort(0))?;
    let mut time = [0u8; TIME_LEN];
    time.copy_from_slice(&header[1 + KEY_ID_LEN..]);
    let plaintext = key
        .cipher()
        .decrypt(
            &XNonce::from(nonce),
            Payload {
                msg: ciphertext,
                aad: header,
            },
        )
        .map_err(|_| OpenError::Forged)?;
    Ok(Opened {
        sent_ms: u64::from_be_bytes(time),
        nonce,
        plaintext,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn rng() -> StdRng {
        StdRng::seed_from_u64(7)
    }

    #[test]
    fn a_sealed_packet_opens_with_the_same_key() {
        let mut rng = rng();
        let key = ClusterKey::generate(&mut rng);
        let packet = seal(&key, 1_234, b"hello", &mut rng);
        assert_eq!(packet.len(), 5 + ENVELOPE_OVERHEAD);
        let opened = open(&key, &packet).unwrap();
        assert_eq!(opened.plaintext, b"hello");
        assert_eq!(opened.sent_ms, 1_234);
    }

    #[test]
    fn a_packet_sealed_with_another_key_does_not_open() {
        let mut rng = rng();
        let key = ClusterKey::generate(&mut rng);
        let other = ClusterKey::generate(&mut rng);
        let packet = seal(&key, 0, b"hello", &mut rng);
        assert_eq!(open(&other, &packet), Err(OpenError::UnknownKey));
    }

    #[test]
    fn any_flipped_bit_makes_the_packet_fail_to_open() {
        let mut rng = rng();
        let key = ClusterKey::generate(&mut rng);
        let packet = seal(&key, 99, b"some payload", &mut rng);
        for i in 0..packet.len() {
            let mut bad = packet.clone();
            bad[i] ^= 0x01;
            assert!(
                open(&key, &bad).is_err(),
                "bit flip at byte {i} was accepted"
            );
        }
    }

    #[test]
    fn short_and_unknown_version_packets_are_named_as_such() {
        let key = ClusterKey::from_bytes([1; 32]);
        assert_eq!(open(&key, &[]), Err(OpenError::TooShort(0)));
        let mut packet = seal(&key, 0, b"x", &mut rng());
        packet[0] = 9;
        assert_eq!(open(&key, &packet), Err(OpenError::UnknownVersion(9)));
        packet[0] = 1;
        assert_eq!(open(&key, &packet), Err(OpenError::UnknownVersion(1)));
    }

    #[test]
    fn a_key_round_trips_through_its_base64_line() {
        let key = ClusterKey::generate(&mut rng());
        let line = key.to_base64();
        assert_eq!(ClusterKey::from_base64(&format!("{line}\n")).unwrap(), key);
        assert!(ClusterKey::from_base64("not base64!").is_err());
        assert!(ClusterKey::from_base64("AAAA").is_err());
    }

    #[test]
    fn two_seals_of_the_same_plaintext_differ() {
        let mut rng = rng();
        let key = ClusterKey::generate(&mut rng);
        assert_ne!(
            seal(&key, 5, b"same", &mut rng),
            seal(&key, 5, b"same", &mut rng)
        );
    }
}
