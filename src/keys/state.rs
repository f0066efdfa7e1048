//! The keyring as rotation sees it: the keys (primary first), the ids of keys removed by a
//! rotation, and the version of the last rotation step applied. Pure: the owner task
//! ([`super`]) persists and hands the result to the membership runtime.
//!
//! Why the extra two: a key removed cluster-wide must stay removed on this host even when the
//! agent is restarted with its original command line (`--key-file` still naming the old
//! key), which is where Serf's rotation fails; and a member that was away during a rotation
//! must be able to tell which of two keyrings is newer. Each step of a rotation carries a
//! version (the coordinator's clock in ms, above every earlier step); a step heard by gossip
//! applies only if it is newer than the last one applied, and a member that finds a peer with
//! a newer keyring takes it whole ([`KeyringState::adopt`]).
//!
//! Persisted form (the data dir's `keyring` file): one base64 key per line, primary first,
//! then `#removed <key id in hex>` and `#version <n>` lines. Older agents read the keys and
//! skip the `#` lines.

use rover_membership::{ClusterKey, Keyring};
use serde::{Deserialize, Serialize};

/// The most removed key ids remembered (the oldest are forgotten first).
pub const MAX_REMOVED: usize = 64;

/// A key id (the 4 bytes every envelope names).
pub type KeyId = [u8; 4];

/// The keyring with its rotation bookkeeping. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyringState {
    /// The keys; the primary seals.
    pub ring: Keyring,
    /// Ids of keys removed by a rotation, oldest first.
    pub removed: Vec<KeyId>,
    /// Version of the last rotation step applied (0: none).
    pub version: u64,
}

/// One step of a rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOp {
    /// Add a key that opens but does not seal.
    Install(ClusterKey),
    /// Make a key the primary (installing it if needed).
    Use(ClusterKey),
    /// Remove the key with this id (never the primary).
    Remove(KeyId),
}

impl KeyOp {
    /// The step's name as the CLI says it.
    pub fn verb(&self) -> &'static str {
        match self {
            KeyOp::Install(_) => "install",
            KeyOp::Use(_) => "use",
            KeyOp::Remove(_) => "remove",
        }
    }

    /// The id of the key the step is about.
    pub fn key_id(&self) -> KeyId {
        match self {
            KeyOp::Install(key) | KeyOp::Use(key) => key.id(),
            KeyOp::Remove(id) => *id,
        }
    }
}

/// Who asks for a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// An operator's command, here or relayed by the coordinator: always applied.
    Operator,
    /// Heard by gossip: applied only if newer than the last step applied.
    Gossip,
}

/// Why a step was refused; the keyring is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyOpError {
    /// Removing the primary key.
    #[error("{0} is this member's primary key: make another key primary first (keys use)")]
    RemovingPrimary(String),
}

/// What a key given at start (`--key-file`, an invitation) did to the keyring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GivenKey {
    /// The keyring holds it already.
    Held,
    /// A rotation removed it: ignored.
    Removed,
    /// It was new: installed and made primary.
    MadePrimary,
}

/// The full keyring as one member sends it to another (over the sealed cluster port).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyringWire {
    /// The keys in base64, primary first.
    pub keys: Vec<String>,
    /// Removed key ids.
    pub removed: Vec<KeyId>,
    /// The version.
    pub version: u64,
}

/// Hex of a key id: its fingerprint.
pub fn id_text(id: &KeyId) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses [`id_text`].
pub fn parse_id(text: &str) -> Option<KeyId> {
    if text.len() != 8 {
        return None;
    }
    let mut id = [0u8; 4];
    for (i, slot) in id.iter_mut().enumerate() {
        *slot = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(id)
}

impl KeyringState {
    /// A keyring of one key, with no rotation yet.
    pub fn new(primary: ClusterKey) -> Self {
        Self {
            ring: Keyring::new(primary),
            removed: Vec::new(),
            version: 0,
        }
    }

    /// The persisted form (see the module docs).
    pub fn to_text(&self) -> String {
        let mut text = self.ring.to_lines();
        for id in &self.removed {
            text.push_str(&format!("#removed {}\n", id_text(id)));
        }
        text.push_str(&format!("#version {}\n", self.version));
        text
    }

    /// Parses [`Self::to_text`] (and the older form with keys only).
    pub fn from_text(text: &str) -> Result<Self, rover_membership::error::KeyringError> {
        let ring = Keyring::from_lines(text)?;
        let mut state = Self {
            ring,
            removed: Vec::new(),
            version: 0,
        };
        for line in text.lines().map(str::trim) {
            if let Some(id) = line
                .strip_prefix("#removed ")
                .and_then(|t| parse_id(t.trim()))
            {
                state.remember_removed(id);
            } else if let Some(v) = line.strip_prefix("#version ") {
                state.version = v.trim().parse().unwrap_or(0);
            }
        }
        Ok(state)
    }

    fn remember_removed(&mut self, id: KeyId) {
        if !self.removed.contains(&id) {
            self.removed.push(id);
        }
        if self.removed.len() > MAX_REMOVED {
            self.removed.remove(0);
        }
    }

    fn holds(&self, id: &KeyId) -> bool {
        self.ring.keys().any(|k| k.id() == *id)
    }

    /// Applies a key given at start: a new one becomes primary (the operator changed the key),
    /// one a rotation removed is ignored. The version does not change: this is not a
    /// cluster-wide step.
    pub fn take_given_key(&mut self, key: &ClusterKey) -> GivenKey {
        if self.holds(&key.id()) {
            return GivenKey::Held;
        }
        if self.removed.contains(&key.id()) {
            return GivenKey::Removed;
        }
        self.ring.install(key.clone());
        // Just installed, so using it cannot fail.
        let _ = self.ring.use_key(key);
        GivenKey::MadePrimary
    }

    /// Applies one rotation step of `version`; `Ok(true)` if the keyring changed.
    pub fn apply(&mut self, op: &KeyOp, version: u64, origin: Origin) -> Result<bool, KeyOpError> {
        if origin == Origin::Gossip
            && (version <= self.version
                || matches!(op, KeyOp::Install(k) if self.removed.contains(&k.id())))
        {
            return Ok(false);
        }
        let before = self.clone();
        match op {
            KeyOp::Install(key) => {
                self.removed.retain(|id| *id != key.id());
                self.ring.install(key.clone());
            }
            KeyOp::Use(key) => {
                self.removed.retain(|id| *id != key.id());
                self.ring.install(key.clone());
                let _ = self.ring.use_key(key);
            }
            KeyOp::Remove(id) => {
                if self.ring.primary().id() == *id {
                    return Err(KeyOpError::RemovingPrimary(id_text(id)));
                }
                let held = self.ring.keys().find(|k| k.id() == *id).cloned();
                if let Some(key) = held {
                    let _ = self.ring.remove(&key);
                }
                self.remember_removed(*id);
            }
        }
        self.version = self.version.max(version);
        Ok(*self != before)
    }

    /// The whole keyring, to send to a member that asks for it.
    pub fn to_wire(&self) -> KeyringWire {
        KeyringWire {
            keys: self.ring.keys().map(ClusterKey::to_base64).collect(),
            removed: self.removed.clone(),
            version: self.version,
        }
    }

    /// Takes a peer's keyring whole if it is newer than ours; `true` if it did.
    pub fn adopt(&mut self, wire: &KeyringWire) -> bool {
        if wire.version <= self.version {
            return false;
        }
        let Ok(keys) = wire
            .keys
            .iter()
            .map(|k| ClusterKey::from_base64(k))
            .collect::<Result<Vec<_>, _>>()
        else {
            return false;
        };
        let mut keys = keys.into_iter();
        let Some(primary) = keys.next() else {
            return false;
        };
        let mut ring = Keyring::new(primary);
        for key in keys {
            ring.install(key);
        }
        self.ring = ring;
        self.removed = wire
            .removed
            .iter()
            .rev()
            .take(MAX_REMOVED)
            .rev()
            .copied()
            .collect();
        self.version = wire.version;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> ClusterKey {
        ClusterKey::from_bytes([byte; 32])
    }

    #[test]
    fn install_use_remove_leaves_only_the_new_key_and_remembers_the_old_one() {
        let mut state = KeyringState::new(key(1));
        assert_eq!(
            state.apply(&KeyOp::Install(key(2)), 10, Origin::Operator),
            Ok(true)
        );
        assert_eq!(
            state.apply(&KeyOp::Use(key(2)), 11, Origin::Operator),
            Ok(true)
        );
        assert_eq!(
            state.apply(&KeyOp::Remove(key(1).id()), 12, Origin::Operator),
            Ok(true)
        );
        assert_eq!(state.ring.primary(), &key(2));
        assert_eq!(state.ring.keys().count(), 1);
        assert_eq!(state.removed, vec![key(1).id()]);
        assert_eq!(state.version, 12);
    }

    #[test]
    fn removing_the_primary_is_refused_and_changes_nothing() {
        let mut state = KeyringState::new(key(1));
        let before = state.clone();
        assert!(state
            .apply(&KeyOp::Remove(key(1).id()), 5, Origin::Operator)
            .is_err());
        assert_eq!(state, before);
    }

    #[test]
    fn a_removed_key_given_again_at_start_is_ignored_and_a_new_one_becomes_primary() {
        let mut state = KeyringState::new(key(1));
        state
            .apply(&KeyOp::Use(key(2)), 2, Origin::Operator)
            .unwrap();
        state
            .apply(&KeyOp::Remove(key(1).id()), 3, Origin::Operator)
            .unwrap();
        assert_eq!(state.take_given_key(&key(1)), GivenKey::Removed);
        assert_eq!(state.ring.primary(), &key(2));
        assert_eq!(state.take_given_key(&key(2)), GivenKey::Held);
        assert_eq!(state.take_given_key(&key(3)), GivenKey::MadePrimary);
        assert_eq!(state.ring.primary(), &key(3));
        assert_eq!(state.version, 3);
    }

    #[test]
    fn gossip_applies_only_newer_steps_and_never_reinstalls_a_removed_key() {
        let mut state = KeyringState::new(key(1));
        state
            .apply(&KeyOp::Use(key(2)), 20, Origin::Operator)
            .unwrap();
        // An older step arriving late by gossip (use key 1 at 10) changes nothing.
        assert_eq!(
            state.apply(&KeyOp::Use(key(1)), 10, Origin::Gossip),
            Ok(false)
        );
        assert_eq!(state.ring.primary(), &key(2));
        state
            .apply(&KeyOp::Remove(key(1).id()), 21, Origin::Operator)
            .unwrap();
        assert_eq!(
            state.apply(&KeyOp::Install(key(1)), 30, Origin::Gossip),
            Ok(false)
        );
        assert!(!state.ring.keys().any(|k| *k == key(1)));
        // An operator may install it again on purpose.
        assert_eq!(
            state.apply(&KeyOp::Install(key(1)), 31, Origin::Operator),
            Ok(true)
        );
        assert!(state.removed.is_empty());
    }

    #[test]
    fn a_newer_keyring_is_adopted_whole_and_an_older_one_is_not() {
        let mut ahead = KeyringState::new(key(1));
        ahead
            .apply(&KeyOp::Use(key(2)), 50, Origin::Operator)
            .unwrap();
        ahead
            .apply(&KeyOp::Remove(key(1).id()), 51, Origin::Operator)
            .unwrap();
        let mut behind = KeyringState::new(key(1));
        assert!(behind.adopt(&ahead.to_wire()));
        assert_eq!(behind, ahead);
        assert!(!ahead.adopt(&KeyringState::new(key(9)).to_wire()));
        assert_eq!(ahead.ring.primary(), &key(2));
    }

    #[test]
    fn the_persisted_form_round_trips_and_older_files_still_read() {
        let mut state = KeyringState::new(key(1));
        state
            .apply(&KeyOp::Install(key(2)), 7, Origin::Operator)
            .unwrap();
        state
            .apply(&KeyOp::Remove(key(3).id()), 8, Origin::Operator)
            .unwrap();
        assert_eq!(KeyringState::from_text(&state.to_text()).unwrap(), state);
        let old = KeyringState::from_text(&state.ring.to_lines()).unwrap();
        assert_eq!(old.ring, state.ring);
        assert_eq!(old.version, 0);
    }
}
