//! The signed record: its wire and stored form, signing and verification.
//!
//! Encoded form: `format version (1 byte) | postcard(service, signer, seqnum, payload,
//! signature)`, the same bytes on the wire and in the [`crate::trees::GRID`] tree. The
//! signature is ed25519 (strict verification) over the postcard encoding of
//! `(SIGNING_DOMAIN, format version, service, signer, seqnum, payload)`: canonical, since
//! postcard writes each of these types one way only, and bound to this use by the domain text.
//!
//! Checks run cheapest first, so garbage costs little: the length of the whole encoding, the
//! version byte, the decoding, the service name, the payload size, then the signature.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::payload::Service;
use crate::record::Record;

/// The only record format this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;

/// The largest payload a record may carry, in bytes: a record then still fits one gossip
/// broadcast item (see the agent's `grid` module).
pub const MAX_PAYLOAD: usize = 400;

/// The longest service name, in bytes.
pub const MAX_SERVICE_LEN: usize = 64;

/// The longest encoded record: version, service, signer, seqnum, payload, signature with
/// their length prefixes.
pub const MAX_ENCODED: usize = 1 + (1 + MAX_SERVICE_LEN) + 32 + 10 + (2 + MAX_PAYLOAD) + (1 + 64);

/// Bound into every signature so that a record signature means nothing elsewhere.
const SIGNING_DOMAIN: &str = "rover-agent grid-control record";

/// One grid-control record. Field order is the encoding (postcard).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRecord {
    /// What the record is about: `addresses`, `service/NAME` or `trust/WHO`.
    pub service: String,
    /// The signer's ed25519 public key.
    pub signer: [u8; 32],
    /// Higher replaces lower for the same signer and service.
    pub seqnum: u64,
    /// Service-specific bytes (see [`super::payload`]).
    pub payload: Vec<u8>,
    /// ed25519 signature (64 bytes) over the signed bytes (see the module docs).
    pub signature: Vec<u8>,
}

impl Record for SignedRecord {
    const VERSION: u8 = FORMAT_VERSION;
}

/// Why a record was refused before it was compared with anything.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    /// The bytes are not a record (truncated, garbage, trailing bytes).
    #[error("not a record: {0}")]
    Malformed(String),
    /// A record format this build does not know (a newer agent).
    #[error("record format {0} is unknown (this build reads {FORMAT_VERSION})")]
    UnknownVersion(u8),
    /// The record or its payload is over the size limit.
    #[error("{what} of {len} bytes is over the limit of {limit}")]
    TooBig {
        /// "record" or "payload".
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The service name is not one this build knows or is badly formed.
    #[error("service name {0:?} is not addresses, service/NAME or trust/KEY")]
    BadService(String),
    /// The signature does not verify under the signer's key (or the key is not a key).
    #[error("the signature does not verify")]
    BadSignature,
}

impl SignedRecord {
    /// Signs `payload` for `service` with `key` at `seqnum`. Fails like [`Self::verify`] for
    /// a bad service name or a payload over [`MAX_PAYLOAD`]; nothing is signed then.
    pub fn sign(
        key: &SigningKey,
        service: &str,
        seqnum: u64,
        payload: Vec<u8>,
    ) -> Result<Self, RecordError> {
        let mut record = SignedRecord {
            service: service.to_owned(),
            signer: key.verifying_key().to_bytes(),
            seqnum,
            payload,
            signature: Vec::new(),
        };
        record.check_shape()?;
        record.signature = key.sign(&record.signed_bytes()).to_bytes().to_vec();
        Ok(record)
    }

    /// The encoded form (the same on the wire and on disk).
    pub fn encode(&self) -> Vec<u8> {
        // Encoding a struct of strings, arrays, integers and byte vectors cannot fail.
        postcard::to_extend(self, vec![FORMAT_VERSION]).unwrap_or_default()
    }

    /// Decodes and verifies one encoded record (see the module docs for the order of the
    /// checks). Never panics, whatever the bytes.
    pub fn decode_verified(bytes: &[u8]) -> Result<Self, RecordError> {
        let record = Self::decode(bytes)?;
        record.verify()?;
        Ok(record)
    }

    /// Decodes one encoded record without verifying its signature.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        if bytes.len() > MAX_ENCODED {
            return Err(RecordError::TooBig {
                what: "record",
                len: bytes.len(),
                limit: MAX_ENCODED,
            });
        }
        let Some((&version, body)) = bytes.split_first() else {
            return Err(RecordError::Malformed("no bytes".into()));
        };
        if version != FORMAT_VERSION {
            return Err(RecordError::UnknownVersion(version));
        }
        let (record, rest) = postcard::take_from_bytes::<SignedRecord>(body)
            .map_err(|e| RecordError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(RecordError::Malformed(format!(
                "{} bytes after the record",
                rest.len()
            )));
        }
        Ok(record)
    }

    /// Checks the service name, the payload size and the signature.
    pub fn verify(&self) -> Result<(), RecordError> {
        self.check_shape()?;
        let signature: [u8; 64] = self
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| RecordError::BadSignature)?;
        let key = VerifyingKey::from_bytes(&self.signer).map_err(|_| RecordError::BadSignature)?;
        // Strict: refuses weak keys and non-canonical signatures, so one statement has one
        // signature.
        key.verify_strict(&self.signed_bytes(), &Signature::from_bytes(&signature))
            .map_err(|_| RecordError::BadSignature)
    }

    /// What the service name says the record is about.
    pub fn service_kind(&self) -> Option<Service> {
        Service::parse(&self.service)
    }

    /// The id of this record's `(signer, service)` slot (see [`slot_id`]).
    pub fn slot_id(&self) -> String {
        slot_id(&self.signer, &self.service)
    }

    /// A short printable fingerprint of the signer (the first 8 bytes in hex).
    pub fn signer_fingerprint(&self) -> String {
        fingerprint(&self.signer)
    }

    fn check_shape(&self) -> Result<(), RecordError> {
        if self.service.len() > MAX_SERVICE_LEN || Service::parse(&self.service).is_none() {
            return Err(RecordError::BadService(self.service.clone()));
        }
        if self.payload.len() > MAX_PAYLOAD {
            return Err(RecordError::TooBig {
                what: "payload",
                len: self.payload.len(),
                limit: MAX_PAYLOAD,
            });
        }
        Ok(())
    }

    fn signed_bytes(&self) -> Vec<u8> {
        let body = (
            SIGNING_DOMAIN,
            FORMAT_VERSION,
            &self.service,
            &self.signer,
            self.seqnum,
            &self.payload,
        );
        postcard::to_stdvec(&body).unwrap_or_default()
    }
}

/// The printable fingerprint of a public key: its first 8 bytes in hex.
pub fn fingerprint(key: &[u8; 32]) -> String {
    key[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// A stable 16-hex-digit id of `(signer, service)` (FNV-1a 64 over both): keys the gossip
/// item of a record, so that a newer record of the same slot replaces an older one in flight.
pub fn slot_id(signer: &[u8; 32], service: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in signer.iter().chain([0u8].iter()).chain(service.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SigningKey {
        SigningKey::from_bytes(&[byte; 32])
    }

    fn record() -> SignedRecord {
        SignedRecord::sign(&key(1), "service/registry", 7, b"127.0.0.1:9999".to_vec()).unwrap()
    }

    #[test]
    fn a_signed_record_round_trips_and_verifies() {
        let record = record();
        let bytes = record.encode();
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert!(bytes.len() <= MAX_ENCODED);
        assert_eq!(SignedRecord::decode_verified(&bytes).unwrap(), record);
    }

    #[test]
    fn a_record_with_any_field_changed_fails_its_signature() {
        let good = record();
        let mut other_seq = good.clone();
        other_seq.seqnum += 1;
        let mut other_payload = good.clone();
        other_payload.payload[0] ^= 1;
        let mut other_service = good.clone();
        other_service.service = "service/steward".into();
        let mut other_signer = good.clone();
        other_signer.signer = key(2).verifying_key().to_bytes();
        for bad in [other_seq, other_payload, other_service, other_signer] {
            assert_eq!(bad.verify(), Err(RecordError::BadSignature), "{bad:?}");
        }
    }

    #[test]
    fn every_truncation_of_a_record_is_refused_without_a_panic() {
        let bytes = record().encode();
        for len in 0..bytes.len() {
            assert!(
                SignedRecord::decode_verified(&bytes[..len]).is_err(),
                "{len}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            SignedRecord::decode_verified(&longer),
            Err(RecordError::Malformed(_))
        ));
    }

    #[test]
    fn flipping_any_bit_never_yields_a_verified_record_that_differs() {
        let good = record();
        let bytes = good.encode();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes.clone();
                bad[i] ^= 1 << bit;
                if let Ok(decoded) = SignedRecord::decode_verified(&bad) {
                    assert_eq!(decoded, good, "byte {i} bit {bit}");
                }
            }
        }
    }

    #[test]
    fn an_unknown_version_and_oversized_inputs_are_named_as_such() {
        let mut bytes = record().encode();
        bytes[0] = 2;
        assert_eq!(
            SignedRecord::decode(&bytes),
            Err(RecordError::UnknownVersion(2))
        );
        let huge = vec![FORMAT_VERSION; MAX_ENCODED + 1];
        assert!(matches!(
            SignedRecord::decode(&huge),
            Err(RecordError::TooBig { what: "record", .. })
        ));
        let too_big = SignedRecord::sign(&key(1), "addresses", 1, vec![0; MAX_PAYLOAD + 1]);
        assert!(matches!(
            too_big,
            Err(RecordError::TooBig {
                what: "payload",
                ..
            })
        ));
    }

    #[test]
    fn the_largest_record_fits_the_encoded_limit() {
        let service = format!("service/{}", "s".repeat(48));
        let record =
            SignedRecord::sign(&key(3), &service, u64::MAX, vec![0xff; MAX_PAYLOAD]).unwrap();
        assert!(
            record.encode().len() <= MAX_ENCODED,
            "{}",
            record.encode().len()
        );
    }

    #[test]
    fn unknown_or_malformed_service_names_are_refused() {
        for service in [
            "",
            "other",
            "service/",
            "service/a b",
            "trust/short",
            "service/\u{1b}[2J",
        ] {
            assert!(
                matches!(
                    SignedRecord::sign(&key(1), service, 1, Vec::new()),
                    Err(RecordError::BadService(_))
                ),
                "{service:?}"
            );
        }
    }

    #[test]
    fn slot_ids_differ_by_signer_and_service_and_are_stable() {
        let a = key(1).verifying_key().to_bytes();
        let b = key(2).verifying_key().to_bytes();
        assert_eq!(slot_id(&a, "addresses"), slot_id(&a, "addresses"));
        assert_ne!(slot_id(&a, "addresses"), slot_id(&b, "addresses"));
        assert_ne!(slot_id(&a, "addresses"), slot_id(&a, "service/x"));
        assert_eq!(slot_id(&a, "addresses").len(), 16);
    }
}
