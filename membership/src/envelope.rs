//! The sealed envelope every gossip datagram and cluster TCP frame travels in.
//!
//! Layout: `version (1 byte) | key id (4 bytes) | nonce (24 bytes) | ciphertext + tag (16 bytes)`.
//! The cipher is XChaCha20-Poly1305; the version byte and the key id are authenticated as
//! associated data, so neither can be altered without the packet failing to open. Opening is a
//! pure function: a packet that does not open is never parsed further.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::error::OpenError;

/// The only envelope version this build writes and reads.
pub const ENVELOPE_VERSION: u8 = 1;
/// Length of the random nonce.
pub const NONCE_LEN: usize = 24;
/// Length of the key id.
pub const KEY_ID_LEN: usize = 4;
/// Length of the Poly1305 tag.
pub const TAG_LEN: usize = 16;
/// Bytes the envelope adds to a plaintext.
pub const ENVELOPE_OVERHEAD: usize = 1 + KEY_ID_LEN + NONCE_LEN + TAG_LEN;

const HEADER_LEN: usize = 1 + KEY_ID_LEN;

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

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.bytes.into())
    }
}

/// Seals `plaintext` under `key` with a fresh random nonce drawn from `rng`.
pub fn seal(key: &ClusterKey, plaintext: &[u8], rng: &mut impl Rng) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let mut header = [0u8; HEADER_LEN];
    header[0] = ENVELOPE_VERSION;
    header[1..].copy_from_slice(&key.id());
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
        // datagram and frame limits long before that.
        .unwrap_or_default();
    let mut out = Vec::with_capacity(ENVELOPE_OVERHEAD + plaintext.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    out
}

/// The key id a packet claims, if it is long enough to have one and has our version.
pub fn claimed_key_id(packet: &[u8]) -> Result<[u8; KEY_ID_LEN], OpenError> {
    if packet.len() < ENVELOPE_OVERHEAD {
        return Err(OpenError::TooShort(packet.len()));
    }
    if packet[0] != ENVELOPE_VERSION {
        return Err(OpenError::UnknownVersion(packet[0]));
    }
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&packet[1..HEADER_LEN]);
    Ok(id)
}

/// Opens `packet` with `key`; fails unless it was sealed with exactly this key and is intact.
pub fn open(key: &ClusterKey, packet: &[u8]) -> Result<Vec<u8>, OpenError> {
    let id = claimed_key_id(packet)?;
    if id != key.id() {
        return Err(OpenError::UnknownKey);
    }
    let (header, rest) = packet.split_at(HEADER_LEN);
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| OpenError::TooShort(0))?;
    key.cipher()
        .decrypt(
            &XNonce::from(nonce),
            Payload {
                msg: ciphertext,
                aad: header,
            },
        )
        .map_err(|_| OpenError::Forged)
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
        let packet = seal(&key, b"hello", &mut rng);
        assert_eq!(packet.len(), 5 + ENVELOPE_OVERHEAD);
        assert_eq!(open(&key, &packet).unwrap(), b"hello");
    }

    #[test]
    fn a_packet_sealed_with_another_key_does_not_open() {
        let mut rng = rng();
        let key = ClusterKey::generate(&mut rng);
        let other = ClusterKey::generate(&mut rng);
        let packet = seal(&key, b"hello", &mut rng);
        assert_eq!(open(&other, &packet), Err(OpenError::UnknownKey));
    }

    #[test]
    fn any_flipped_bit_makes_the_packet_fail_to_open() {
        let mut rng = rng();
        let key = ClusterKey::generate(&mut rng);
        let packet = seal(&key, b"some payload", &mut rng);
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
        let mut packet = seal(&key, b"x", &mut rng());
        packet[0] = 9;
        assert_eq!(open(&key, &packet), Err(OpenError::UnknownVersion(9)));
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
        assert_ne!(seal(&key, b"same", &mut rng), seal(&key, b"same", &mut rng));
    }
}
