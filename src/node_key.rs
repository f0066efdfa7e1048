//! The node key: an ed25519 key made at first start and kept in the data dir (mode 0600).
//!
//! It names this node across restarts, even when its address or generation changes. The Raft
//! node id is derived from its public half and the database's epoch ([`NodeKey::node_id_in`]):
//! Raft state lives in the database, so a database that was lost or moved aside (a new epoch)
//! makes a new Raft node id, and the group treats the host as a new node instead of trusting
//! a vote it no longer remembers. Losing the whole data dir makes a new key too.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use ed25519_dalek::SigningKey;
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::data_dir::trust::{check_private_file, make_private, FileTrust};
use crate::data_dir::write_private;

/// File name of the node key inside the data dir.
pub const NODE_KEY_FILE: &str = "node.key";

/// This node's ed25519 key.
#[derive(Clone)]
pub struct NodeKey {
    signing: SigningKey,
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeKey")
            .field("public", &self.public_base64())
            .finish_non_exhaustive()
    }
}

impl NodeKey {
    /// Reads the key from `dir`, or makes and stores a new one on first start.
    pub fn load_or_create(dir: &Path) -> Result<Self> {
        let path = dir.join(NODE_KEY_FILE);
        if let FileTrust::Readable(mode) = check_private_file(&path, "node key")? {
            make_private(&path, "node key", mode)?;
        }
        match fs::read_to_string(&path) {
            Ok(text) => Self::parse(text.trim())
                .with_context(|| format!("node key file {} is damaged", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut secret = [0u8; 32];
                rand::rng().fill_bytes(&mut secret);
                let key = Self {
                    signing: SigningKey::from_bytes(&secret),
                };
                let line = base64::engine::general_purpose::STANDARD.encode(secret);
                write_private(&path, format!("{line}\n").as_bytes())?;
                Ok(key)
            }
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    fn parse(line: &str) -> Result<Self> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(line)
            .context("not base64")?;
        let Ok(secret) = <[u8; 32]>::try_from(bytes.as_slice()) else {
            bail!("expected 32 bytes, found {}", bytes.len());
        };
        Ok(Self {
            signing: SigningKey::from_bytes(&secret),
        })
    }

    /// The signing key (it signs this node's grid-control records and invitations).
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// The public half, raw.
    pub fn public_bytes(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// The public half, base64.
    pub fn public_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.signing.verifying_key().as_bytes())
    }

    /// The Raft node id of this key with the database of `epoch`: the first 8 bytes
    /// (big-endian) of SHA-256 of the public key followed by the epoch (8 bytes, big-endian).
    /// Epoch 0 (a database from before epochs) keeps the id of earlier versions: SHA-256 of the
    /// public key alone.
    pub fn node_id_in(&self, epoch: u64) -> u64 {
        let mut hasher = Sha256::new();
        hasher.update(self.signing.verifying_key().as_bytes());
        if epoch != 0 {
            hasher.update(epoch.to_be_bytes());
        }
        let digest = hasher.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_key_and_its_id_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let first = NodeKey::load_or_create(dir.path()).unwrap();
        let again = NodeKey::load_or_create(dir.path()).unwrap();
        assert_eq!(first.node_id_in(7), again.node_id_in(7));
        assert_eq!(first.public_base64(), again.public_base64());
    }

    #[test]
    fn two_data_dirs_get_different_node_ids() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let a = NodeKey::load_or_create(a.path()).unwrap();
        let b = NodeKey::load_or_create(b.path()).unwrap();
        assert_ne!(a.node_id_in(1), b.node_id_in(1));
    }

    #[test]
    fn a_new_database_epoch_makes_a_new_node_id_and_epoch_zero_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let key = NodeKey::load_or_create(dir.path()).unwrap();
        assert_ne!(key.node_id_in(1), key.node_id_in(2));
        assert_ne!(key.node_id_in(0), key.node_id_in(1));
        let digest = Sha256::digest(key.signing.verifying_key().as_bytes());
        let legacy = u64::from_be_bytes(digest[..8].try_into().unwrap());
        assert_eq!(key.node_id_in(0), legacy);
    }

    #[test]
    fn a_damaged_node_key_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(NODE_KEY_FILE), "not a key\n").unwrap();
        let error = format!("{:#}", NodeKey::load_or_create(dir.path()).unwrap_err());
        assert!(error.contains("node.key"), "{error}");
    }
}
