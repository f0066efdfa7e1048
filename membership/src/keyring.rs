//! The keyring: one primary key that seals, and extra keys that only open.
//!
//! Rotation follows the usual three steps: install a new key everywhere (it opens), make it the
//! primary everywhere (it seals), then remove the old one. Removing the primary is refused.

use rand::Rng;

use crate::envelope::{self, ClusterKey};
use crate::error::{KeyringError, OpenError};

/// The keys a member seals and opens with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyring {
    primary: ClusterKey,
    extra: Vec<ClusterKey>,
}

impl Keyring {
    /// A keyring holding only `primary`.
    pub fn new(primary: ClusterKey) -> Self {
        Self {
            primary,
            extra: Vec::new(),
        }
    }

    /// The key used to seal.
    pub fn primary(&self) -> &ClusterKey {
        &self.primary
    }

    /// Every key, primary first.
    pub fn keys(&self) -> impl Iterator<Item = &ClusterKey> {
        std::iter::once(&self.primary).chain(self.extra.iter())
    }

    /// Adds a decrypt-only key; installing a key already present changes nothing.
    pub fn install(&mut self, key: ClusterKey) {
        if !self.keys().any(|k| *k == key) {
            self.extra.push(key);
        }
    }

    /// Makes an installed key the primary; the old primary stays as a decrypt-only key.
    pub fn use_key(&mut self, key: &ClusterKey) -> Result<(), KeyringError> {
        if self.primary == *key {
            return Ok(());
        }
        let position = self
            .extra
            .iter()
            .position(|k| k == key)
            .ok_or(KeyringError::NotInstalled)?;
        let new_primary = self.extra.remove(position);
        let old_primary = std::mem::replace(&mut self.primary, new_primary);
        self.extra.push(old_primary);
        Ok(())
    }

    /// Removes a decrypt-only key; the primary cannot be removed.
    pub fn remove(&mut self, key: &ClusterKey) -> Result<(), KeyringError> {
        if self.primary == *key {
            return Err(KeyringError::RemovingPrimary);
        }
        let before = self.extra.len();
        self.extra.retain(|k| k != key);
        if self.extra.len() == before {
            return Err(KeyringError::NotInstalled);
        }
        Ok(())
    }

    /// The key with this id, if the keyring holds it (any key, not only the primary: every
    /// installed key still opens connections and datagrams during a rotation).
    pub fn by_id(&self, id: [u8; envelope::KEY_ID_LEN]) -> Option<&ClusterKey> {
        self.keys().find(|k| k.id() == id)
    }

    /// Seals with the primary key, stamped with the sender's time `sent_ms`.
    pub fn seal(&self, sent_ms: u64, plaintext: &[u8], rng: &mut impl Rng) -> Vec<u8> {
        envelope::seal(&self.primary, sent_ms, plaintext, rng)
    }

    /// Opens with whichever key the packet names; fails if none of ours opens it.
    ///
    /// A packet of another envelope version is named as such only when it carries one of our
    /// key ids where every version so far has it (bytes 1 to 4); random bytes are not "a newer
    /// agent" but garbage sealed with no key of ours.
    pub fn open(&self, packet: &[u8]) -> Result<envelope::Opened, OpenError> {
        let id = match envelope::claimed_key_id(packet) {
            Err(OpenError::UnknownVersion(version)) => {
                let mut id = [0u8; envelope::KEY_ID_LEN];
                id.copy_from_slice(&packet[1..1 + envelope::KEY_ID_LEN]);
                return Err(if self.by_id(id).is_some() {
                    OpenError::UnknownVersion(version)
                } else {
                    OpenError::UnknownKey
                });
            }
            other => other?,
        };
        let mut last = OpenError::UnknownKey;
        for key in self.keys().filter(|k| k.id() == id) {
            match envelope::open(key, packet) {
                Ok(plain) => return Ok(plain),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The keyring as lines of base64, primary first (the persisted form).
    pub fn to_lines(&self) -> String {
        self.keys().map(|k| k.to_base64() + "\n").collect()
    }

    /// Parses the persisted form written by [`Keyring::to_lines`].
    pub fn from_lines(text: &str) -> Result<Self, KeyringError> {
        let mut keys = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(ClusterKey::from_base64);
        let primary = keys.next().ok_or(KeyringError::Empty)??;
        let mut ring = Keyring::new(primary);
        for key in keys {
            ring.install(key?);
        }
        Ok(ring)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn keys(n: usize) -> (StdRng, Vec<ClusterKey>) {
        let mut rng = StdRng::seed_from_u64(1);
        let keys = (0..n).map(|_| ClusterKey::generate(&mut rng)).collect();
        (rng, keys)
    }

    #[test]
    fn an_installed_key_opens_but_does_not_seal() {
        let (mut rng, k) = keys(2);
        let mut ring = Keyring::new(k[0].clone());
        ring.install(k[1].clone());
        let from_new = envelope::seal(&k[1], 0, b"x", &mut rng);
        assert_eq!(ring.open(&from_new).unwrap().plaintext, b"x");
        let sealed = ring.seal(0, b"y", &mut rng);
        assert_eq!(envelope::open(&k[0], &sealed).unwrap().plaintext, b"y");
    }

    #[test]
    fn rotation_moves_the_old_primary_to_decrypt_only() {
        let (mut rng, k) = keys(2);
        let mut ring = Keyring::new(k[0].clone());
        ring.install(k[1].clone());
        ring.use_key(&k[1]).unwrap();
        assert_eq!(ring.primary(), &k[1]);
        let old = envelope::seal(&k[0], 0, b"old", &mut rng);
        assert_eq!(ring.open(&old).unwrap().plaintext, b"old");
        ring.remove(&k[0]).unwrap();
        assert!(ring.open(&old).is_err());
    }

    #[test]
    fn removing_the_primary_is_refused_and_changes_nothing() {
        let (_, k) = keys(1);
        let mut ring = Keyring::new(k[0].clone());
        assert_eq!(ring.remove(&k[0]), Err(KeyringError::RemovingPrimary));
        assert_eq!(ring.primary(), &k[0]);
    }

    #[test]
    fn using_a_key_that_is_not_installed_is_refused() {
        let (_, k) = keys(2);
        let mut ring = Keyring::new(k[0].clone());
        assert_eq!(ring.use_key(&k[1]), Err(KeyringError::NotInstalled));
    }

    #[test]
    fn the_persisted_form_round_trips() {
        let (_, k) = keys(3);
        let mut ring = Keyring::new(k[0].clone());
        ring.install(k[1].clone());
        ring.install(k[2].clone());
        assert_eq!(Keyring::from_lines(&ring.to_lines()).unwrap(), ring);
        assert_eq!(Keyring::from_lines("\n"), Err(KeyringError::Empty));
    }
}
