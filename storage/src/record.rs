//! Versioned encoding of every stored value: `[version byte][postcard body]`.
//!
//! The version byte belongs to the record type ([`Record::VERSION`]). When a type's layout
//! changes, bump its version: values written by another version are then reported as
//! [`StorageError::UnknownVersion`] instead of being misread. Decoding never panics; bad bytes
//! become [`StorageError::Corrupt`] naming the tree and key they came from.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{printable_key, StorageError};

/// A value that can be stored: serde-encodable, with a version byte for its layout.
pub trait Record: Serialize + DeserializeOwned {
    /// The layout version written before the body, and the only one [`decode`] accepts.
    const VERSION: u8;
}

/// Encodes `value` as its version byte followed by its postcard body.
///
/// Fails only if the value's `Serialize` impl fails (postcard cannot encode sequences of
/// unknown length, for instance); nothing is written then.
pub fn encode<T: Record>(value: &T) -> Result<Vec<u8>, StorageError> {
    postcard::to_extend(value, vec![T::VERSION]).map_err(|err| StorageError::Encode {
        record: std::any::type_name::<T>(),
        reason: err.to_string(),
    })
}

/// Decodes a value stored at `key` of `tree`; `tree` and `key` only name the value in errors.
///
/// The bytes must be exactly one version byte equal to `T::VERSION` and one postcard body,
/// with nothing after it.
pub fn decode<T: Record>(tree: &str, key: &[u8], bytes: &[u8]) -> Result<T, StorageError> {
    let corrupt = |reason: String| StorageError::Corrupt {
        tree: tree.to_owned(),
        key: printable_key(key),
        reason,
    };
    let Some((&version, body)) = bytes.split_first() else {
        return Err(corrupt("empty value, no version byte".to_owned()));
    };
    if version != T::VERSION {
        return Err(StorageError::UnknownVersion {
            tree: tree.to_owned(),
            key: printable_key(key),
            version,
            supported: T::VERSION,
        });
    }
    let (value, rest) = postcard::take_from_bytes::<T>(body)
        .map_err(|err| corrupt(format!("undecodable body: {err}")))?;
    if !rest.is_empty() {
        return Err(corrupt(format!("{} bytes after the body", rest.len())));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        name: String,
        count: u64,
    }

    impl Record for Sample {
        const VERSION: u8 = 3;
    }

    fn sample() -> Sample {
        Sample {
            name: "disk".to_owned(),
            count: 42,
        }
    }

    #[test]
    fn an_encoded_record_starts_with_its_version_and_decodes_back() {
        let bytes = encode(&sample()).unwrap();
        assert_eq!(bytes[0], 3);
        assert_eq!(decode::<Sample>("t", b"k", &bytes).unwrap(), sample());
    }

    #[test]
    fn an_unknown_version_byte_names_the_tree_key_and_version() {
        let mut bytes = encode(&sample()).unwrap();
        bytes[0] = 9;
        let err = decode::<Sample>("members", b"node-a", &bytes).unwrap_err();
        assert!(
            matches!(
                &err,
                StorageError::UnknownVersion { tree, key, version: 9, supported: 3 }
                    if tree == "members" && key == "node-a"
            ),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains("`members`") && message.contains("`node-a`"),
            "{message}"
        );
    }

    #[test]
    fn an_empty_value_is_corrupt_rather_than_a_panic() {
        let err = decode::<Sample>("meta", b"k", &[]).unwrap_err();
        assert!(matches!(err, StorageError::Corrupt { .. }), "{err:?}");
    }

    #[test]
    fn a_truncated_body_is_corrupt_and_names_tree_and_key() {
        let bytes = encode(&sample()).unwrap();
        let err = decode::<Sample>("meta", &[0, 1], &bytes[..bytes.len() - 1]).unwrap_err();
        assert!(
            matches!(&err, StorageError::Corrupt { tree, key, .. } if tree == "meta" && key == "0x0001"),
            "{err:?}"
        );
        assert!(err.to_string().contains("`meta`"), "{err}");
    }

    #[test]
    fn trailing_bytes_after_the_body_are_corrupt() {
        let mut bytes = encode(&sample()).unwrap();
        bytes.push(0);
        let err = decode::<Sample>("meta", b"k", &bytes).unwrap_err();
        assert!(
            matches!(&err, StorageError::Corrupt { reason, .. } if reason.contains("1 bytes after")),
            "{err:?}"
        );
    }

    #[test]
    fn random_garbage_never_panics() {
        let mut seed: u32 = 0x9e37_79b9;
        for len in 0..200 {
            let mut bytes = vec![Sample::VERSION];
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                bytes.push(seed.to_le_bytes()[0]);
            }
            let _ = decode::<Sample>("t", b"k", &bytes);
        }
    }
}
