//! The data dir: the keyring, the API token and the database, each kept private (0700 dir,
//! 0600 files). What is found there is trusted only if this user owns it and nobody else may
//! write it ([`trust`]): otherwise the agent refuses to start and says which `chmod` or
//! `chown` to run. A token others could read is replaced by a new one.
//!
//! Keyring rules: once `keyring` exists it is the truth (so a restart after a rotation keeps
//! the rotated keys). A key given with `--key-file` (or an invitation) that is not yet in it is
//! installed and made primary (the operator changed the key), unless a cluster-wide rotation
//! removed it: then it is ignored, so an agent restarted with its original command line still
//! seals with the rotated key (see [`crate::keys::state`]). With no key anywhere, a new one is
//! generated.

pub mod trust;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rand::Rng;
use rover_membership::{ClusterKey, Keyring};

use crate::keys::state::{GivenKey, KeyringState};

/// File names inside the data dir.
pub const KEYRING_FILE: &str = "keyring";
/// The API token the CLI presents for changes.
pub const TOKEN_FILE: &str = "token";
/// The dashboard viewer token file (`ui.bind`, `rover-agent ui token`).
pub const VIEWER_TOKEN_FILE: &str = "ui-token";
/// The sled database directory.
pub const DB_DIR: &str = "db";

/// Paths inside one data dir.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

/// What [`DataDir::load_keyring`] did, so the daemon can tell the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyringOrigin {
    /// Read from the persisted keyring.
    Persisted,
    /// The key file's key was new: installed and made primary.
    FromKeyFile,
    /// No key anywhere: a new one was generated.
    Generated,
    /// The key file's key was removed by a rotation: ignored (its fingerprint).
    KeyFileKeyRemoved(String),
    /// The invitation's key was new: installed and made primary.
    FromInvitation,
    /// The invitation's key was removed by a rotation: ignored (its fingerprint).
    InvitationKeyRemoved(String),
}

impl DataDir {
    /// Creates the directory (mode 0700) if needed; refuses one that another user owns or
    /// others may write (see [`trust::check_dir`]).
    pub fn open(root: &Path) -> Result<Self> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .with_context(|| format!("cannot create data dir {}", root.display()))?;
        trust::check_dir(root)?;
        Ok(Self {
            root: root.to_owned(),
        })
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of the keyring file.
    pub fn keyring_path(&self) -> PathBuf {
        self.root.join(KEYRING_FILE)
    }

    /// Path of the token file.
    pub fn token_path(&self) -> PathBuf {
        self.root.join(TOKEN_FILE)
    }

    /// Path of the database.
    pub fn db_path(&self) -> PathBuf {
        self.root.join(DB_DIR)
    }

    /// Loads the keyring per the module rules, persisting any change.
    pub fn load_keyring(&self, key_file: Option<&Path>) -> Result<(Keyring, KeyringOrigin)> {
        let (state, origin) = self.load_keyring_state(key_file, None)?;
        Ok((state.ring, origin))
    }

    /// Loads the keyring with its rotation state per the module rules, taking the key of
    /// `key_file` and then `invited` (a key from an invitation), and persists any change.
    pub fn load_keyring_state(
        &self,
        key_file: Option<&Path>,
        invited: Option<&ClusterKey>,
    ) -> Result<(KeyringState, KeyringOrigin)> {
        if let Some(file) = key_file {
            trust::check_key_file(file)?;
        }
        let given = key_file.map(read_key_file).transpose()?;
        let path = self.keyring_path();
        if let trust::FileTrust::Readable(mode) = trust::check_private_file(&path, "keyring")? {
            trust::make_private(&path, "keyring", mode)?;
        }
        let persisted = match fs::read_to_string(&path) {
            Ok(text) => Some(
                KeyringState::from_text(&text)
                    .with_context(|| format!("keyring {} is unreadable", path.display()))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let loaded = persisted.clone();
        let (mut state, mut origin) = match (persisted, &given, invited) {
            (Some(state), _, _) => (state, KeyringOrigin::Persisted),
            (None, Some(key), _) => (KeyringState::new(key.clone()), KeyringOrigin::FromKeyFile),
            (None, None, Some(key)) => (
                KeyringState::new(key.clone()),
                KeyringOrigin::FromInvitation,
            ),
            (None, None, None) => (
                KeyringState::new(ClusterKey::generate(&mut rand::rng())),
                KeyringOrigin::Generated,
            ),
        };
        if let Some(key) = &given {
            match state.take_given_key(key) {
                GivenKey::Held => {}
                GivenKey::MadePrimary => origin = KeyringOrigin::FromKeyFile,
                GivenKey::Removed => origin = KeyringOrigin::KeyFileKeyRemoved(key.fingerprint()),
            }
        }
        if let Some(key) = invited {
            match state.take_given_key(key) {
                GivenKey::Held => {}
                GivenKey::MadePrimary => origin = KeyringOrigin::FromInvitation,
                GivenKey::Removed => {
                    origin = KeyringOrigin::InvitationKeyRemoved(key.fingerprint())
                }
            }
        }
        if loaded.as_ref() != Some(&state) {
            self.save_keyring_state(&state)?;
        }
        Ok((state, origin))
    }

    /// Writes the keyring (mode 0600) atomically.
    pub fn save_keyring(&self, ring: &Keyring) -> Result<()> {
        write_private(&self.keyring_path(), ring.to_lines().as_bytes())
    }

    /// Writes the keyring with its rotation state (mode 0600) atomically and durably.
    pub fn save_keyring_state(&self, state: &KeyringState) -> Result<()> {
        write_private(&self.keyring_path(), state.to_text().as_bytes())
    }

    /// The API token, created (mode 0600) on first use. A token that others could read (or
    /// that is too short) is replaced by a new one; one of another user, or that others may
    /// write, is refused.
    pub fn load_or_create_token(&self) -> Result<String> {
        load_or_create_secret(&self.token_path(), "API token")
    }

    /// Path of the dashboard viewer token (`ui.bind`).
    pub fn viewer_token_path(&self) -> PathBuf {
        self.root.join(VIEWER_TOKEN_FILE)
    }

    /// The dashboard viewer token, created (mode 0600) on first use, kept like the API token.
    /// It only reads: the `ui.bind` listener serves no change.
    pub fn load_or_create_viewer_token(&self) -> Result<String> {
        load_or_create_secret(&self.viewer_token_path(), "viewer token")
    }
}

/// A 32-byte random secret in hex, in a file of mode 0600 created on first use (see
/// [`DataDir::load_or_create_token`]).
fn load_or_create_secret(path: &Path, what: &str) -> Result<String> {
    match trust::check_private_file(path, what)? {
        trust::FileTrust::Private => {
            if let Ok(text) = fs::read_to_string(path) {
                let token = text.trim().to_owned();
                if token.len() >= 32 {
                    return Ok(token);
                }
            }
        }
        trust::FileTrust::Readable(mode) => tracing::warn!(
            path = %path.display(),
            mode = %format!("{mode:04o}"),
            "the {what} was readable by other users: replaced it with a new one (0600)"
        ),
        trust::FileTrust::Absent => {}
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(path, format!("{token}\n").as_bytes())?;
    Ok(token)
}

/// Reads a key file: one base64 line (comments with `#` allowed).
pub fn read_key_file(path: &Path) -> Result<ClusterKey> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'));
    let Some(line) = line else {
        bail!(
            "key file {} holds no key (expected one base64 line from `rover-agent keygen`)",
            path.display()
        );
    };
    ClusterKey::from_base64(line).with_context(|| {
        format!(
            "key file {} does not hold a key from `rover-agent keygen`",
            path.display()
        )
    })
}

/// Writes `bytes` to `path` with mode 0600, through a temporary file and a rename.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn key_file(dir: &Path, key: &ClusterKey) -> PathBuf {
        let path = dir.join("key");
        fs::write(&path, key.to_base64() + "\n").unwrap();
        path
    }

    #[test]
    fn with_no_key_one_is_generated_and_kept_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let (ring, origin) = dir.load_keyring(None).unwrap();
        assert_eq!(origin, KeyringOrigin::Generated);
        let mode = fs::metadata(dir.keyring_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, origin) = dir.load_keyring(None).unwrap();
        assert_eq!(origin, KeyringOrigin::Persisted);
        assert_eq!(again, ring);
    }

    #[test]
    fn a_rotated_keyring_survives_a_restart_with_the_old_key_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let old = ClusterKey::from_bytes([1; 32]);
        let new = ClusterKey::from_bytes([2; 32]);
        let file = key_file(tmp.path(), &old);
        let (mut ring, _) = dir.load_keyring(Some(&file)).unwrap();
        ring.install(new.clone());
        ring.use_key(&new).unwrap();
        dir.save_keyring(&ring).unwrap();
        let (after, origin) = dir.load_keyring(Some(&file)).unwrap();
        assert_eq!(origin, KeyringOrigin::Persisted);
        assert_eq!(after.primary(), &new);
    }

    #[test]
    fn a_changed_key_file_becomes_primary_and_keeps_the_old_key_for_decrypting() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let old = ClusterKey::from_bytes([1; 32]);
        dir.load_keyring(Some(&key_file(tmp.path(), &old))).unwrap();
        let new = ClusterKey::from_bytes([3; 32]);
        let (ring, origin) = dir.load_keyring(Some(&key_file(tmp.path(), &new))).unwrap();
        assert_eq!(origin, KeyringOrigin::FromKeyFile);
        assert_eq!(ring.primary(), &new);
        assert!(ring.keys().any(|k| *k == old));
    }

    #[test]
    fn a_key_file_naming_a_key_a_rotation_removed_is_ignored_at_restart() {
        use crate::keys::state::{KeyOp, Origin};
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let old = ClusterKey::from_bytes([1; 32]);
        let new = ClusterKey::from_bytes([2; 32]);
        let file = key_file(tmp.path(), &old);
        let (mut state, _) = dir.load_keyring_state(Some(&file), None).unwrap();
        state
            .apply(&KeyOp::Install(new.clone()), 1, Origin::Operator)
            .unwrap();
        state
            .apply(&KeyOp::Use(new.clone()), 2, Origin::Operator)
            .unwrap();
        state
            .apply(&KeyOp::Remove(old.id()), 3, Origin::Operator)
            .unwrap();
        dir.save_keyring_state(&state).unwrap();
        let (after, origin) = dir.load_keyring_state(Some(&file), None).unwrap();
        assert_eq!(origin, KeyringOrigin::KeyFileKeyRemoved(old.fingerprint()));
        assert_eq!(after.ring.primary(), &new);
        assert!(!after.ring.keys().any(|k| *k == old));
    }

    #[test]
    fn an_invitation_key_becomes_primary_over_a_generated_one() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let invited = ClusterKey::from_bytes([7; 32]);
        let (state, origin) = dir.load_keyring_state(None, Some(&invited)).unwrap();
        assert_eq!(origin, KeyringOrigin::FromInvitation);
        assert_eq!(state.ring.primary(), &invited);
        let (again, origin) = dir.load_keyring_state(None, Some(&invited)).unwrap();
        assert_eq!(origin, KeyringOrigin::Persisted);
        assert_eq!(again, state);
    }

    #[test]
    fn a_bad_key_file_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("key");
        fs::write(&path, "hello\n").unwrap();
        let err = format!("{:#}", read_key_file(&path).unwrap_err());
        assert!(err.contains("keygen"), "{err}");
    }

    #[test]
    fn a_planted_token_in_a_directory_open_to_everyone_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(TOKEN_FILE), "a".repeat(64)).unwrap();
        fs::set_permissions(
            tmp.path().join(TOKEN_FILE),
            fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let err = format!("{:#}", DataDir::open(tmp.path()).unwrap_err());
        assert!(err.contains("chmod 700"), "{err}");
    }

    #[test]
    fn a_token_readable_by_others_is_replaced_by_a_private_one() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let planted = "a".repeat(64);
        fs::write(dir.token_path(), &planted).unwrap();
        fs::set_permissions(dir.token_path(), fs::Permissions::from_mode(0o644)).unwrap();
        let token = dir.load_or_create_token().unwrap();
        assert_ne!(token, planted);
        let mode = fs::metadata(dir.token_path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_keyring_writable_by_others_is_refused_and_a_readable_one_made_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        dir.load_keyring(None).unwrap();
        fs::set_permissions(dir.keyring_path(), fs::Permissions::from_mode(0o644)).unwrap();
        dir.load_keyring(None).unwrap();
        let mode = fs::metadata(dir.keyring_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::set_permissions(dir.keyring_path(), fs::Permissions::from_mode(0o660)).unwrap();
        let err = format!("{:#}", dir.load_keyring(None).unwrap_err());
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn the_token_is_stable_and_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let token = dir.load_or_create_token().unwrap();
        assert_eq!(dir.load_or_create_token().unwrap(), token);
        let mode = fs::metadata(dir.token_path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
