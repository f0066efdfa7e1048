//! Whether what the agent finds in its data dir can be trusted: the directory, the token, the
//! keyring and the node key must belong to the user the agent runs as and must not be
//! writable by anyone else, or someone else could have planted them. Refusals name the exact
//! `chmod` or `chown` to run.

use std::fs::{self, Metadata};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::unistd::{geteuid, Uid, User};

/// Group and other write bits.
const WRITABLE_BY_OTHERS: u32 = 0o022;
/// Group and other read, write and execute bits.
const OPEN_TO_OTHERS: u32 = 0o077;

/// A user as `chown` takes it: the name when known, else the number.
fn user_name(uid: u32) -> String {
    match User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(user)) => user.name,
        _ => uid.to_string(),
    }
}

/// Refuses `meta` of `path` (a `what`) when another user owns it or others may write it;
/// `private_mode` is the mode the `chmod` advice gives.
fn refuse_untrusted(path: &Path, what: &str, meta: &Metadata, private_mode: u32) -> Result<()> {
    let me = geteuid().as_raw();
    if meta.uid() != me {
        bail!(
            "{what} {} is owned by {} (uid {}), not by {} (uid {me}) that runs the agent: \
             someone else may have put it there. Check it, then run `chown {} {}` (or run the \
             agent as {})",
            path.display(),
            user_name(meta.uid()),
            meta.uid(),
            user_name(me),
            user_name(me),
            path.display(),
            user_name(meta.uid())
        );
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & WRITABLE_BY_OTHERS != 0 {
        bail!(
            "{what} {} is writable by other users (mode {mode:04o}): someone else may have \
             changed what is in it. Check it, then run `chmod {private_mode:o} {}`",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

/// Checks the data dir itself (following a symlink to it) and makes it private (0700).
pub fn check_dir(root: &Path) -> Result<()> {
    let meta =
        fs::metadata(root).with_context(|| format!("cannot read data dir {}", root.display()))?;
    if !meta.is_dir() {
        bail!("data dir {} is not a directory", root.display());
    }
    refuse_untrusted(root, "data dir", &meta, 0o700)?;
    if meta.permissions().mode() & OPEN_TO_OTHERS != 0 {
        fs::set_permissions(root, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make data dir {} private", root.display()))?;
    }
    Ok(())
}

/// What [`check_private_file`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileTrust {
    /// There is no such file.
    Absent,
    /// Ours, mode 0600 or stricter.
    Private,
    /// Ours and not writable by others, but readable by them (the mode it had).
    Readable(u32),
}

/// Checks a file the agent keeps in its data dir (a `what`): absent, or a regular file (not a
/// symlink) that this user owns and nobody else may write. Refuses anything else.
pub fn check_private_file(path: &Path, what: &str) -> Result<FileTrust> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileTrust::Absent),
        Err(e) => return Err(e).with_context(|| format!("cannot read {what} {}", path.display())),
    };
    if !meta.file_type().is_file() {
        bail!(
            "{what} {} is not a regular file (a symlink or something else was put there): \
             check it, then remove it with `rm {}` so the agent makes a new one",
            path.display(),
            path.display()
        );
    }
    refuse_untrusted(path, what, &meta, 0o600)?;
    let mode = meta.permissions().mode() & 0o777;
    Ok(if mode & OPEN_TO_OTHERS == 0 {
        FileTrust::Private
    } else {
        FileTrust::Readable(mode)
    })
}

/// Makes a file the agent keeps private again (0600), saying so once.
pub fn make_private(path: &Path, what: &str, mode: u32) -> Result<()> {
    tracing::warn!(
        path = %path.display(),
        mode = %format!("{mode:04o}"),
        "{what} was readable by other users: made it private (0600)"
    );
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make {what} {} private", path.display()))
}

/// Checks a key file given with `--key-file`: refuses one that others may write (they could
/// change the cluster key), and warns (once, at start) about one that others may read.
pub fn check_key_file(path: &Path) -> Result<()> {
    let meta =
        fs::metadata(path).with_context(|| format!("cannot read key file {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o002 != 0 {
        bail!(
            "key file {} is writable by every user (mode {mode:04o}): someone else could \
             change the cluster key. Check it, then run `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
    if mode & 0o004 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = %format!("{mode:04o}"),
            "the key file is readable by every user, who can then read and forge cluster \
             traffic: run `chmod 600 {}`",
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_data_dir_writable_by_others_is_refused_with_the_chmod_to_run() {
        let tmp = tempfile::tempdir().unwrap();
        chmod(tmp.path(), 0o777);
        let err = format!("{:#}", check_dir(tmp.path()).unwrap_err());
        assert!(err.contains("writable by other users (mode 0777)"), "{err}");
        assert!(
            err.contains(&format!("`chmod 700 {}`", tmp.path().display())),
            "{err}"
        );
    }

    #[test]
    fn a_readable_data_dir_of_ours_is_made_private() {
        let tmp = tempfile::tempdir().unwrap();
        chmod(tmp.path(), 0o755);
        check_dir(tmp.path()).unwrap();
        let mode = fs::metadata(tmp.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn a_file_of_another_user_is_refused_with_the_chown_to_run() {
        if !geteuid().is_root() {
            eprintln!("skipped: needs root to give a file to another user");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("keyring");
        fs::write(&path, "x").unwrap();
        chmod(&path, 0o600);
        nix::unistd::chown(&path, Some(Uid::from_raw(65534)), None).unwrap();
        let err = format!("{:#}", check_private_file(&path, "keyring").unwrap_err());
        assert!(err.contains("uid 65534"), "{err}");
        assert!(
            err.contains(&format!("`chown {} {}`", user_name(0), path.display())),
            "{err}"
        );
    }

    #[test]
    fn a_symlink_in_place_of_a_private_file_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("elsewhere");
        fs::write(&target, "x").unwrap();
        let link = tmp.path().join("token");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = format!("{:#}", check_private_file(&link, "token").unwrap_err());
        assert!(err.contains("not a regular file"), "{err}");
    }

    #[test]
    fn private_files_are_told_apart_from_readable_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("node.key");
        assert_eq!(
            check_private_file(&path, "node key").unwrap(),
            FileTrust::Absent
        );
        fs::write(&path, "x").unwrap();
        chmod(&path, 0o600);
        assert_eq!(
            check_private_file(&path, "node key").unwrap(),
            FileTrust::Private
        );
        chmod(&path, 0o644);
        assert_eq!(
            check_private_file(&path, "node key").unwrap(),
            FileTrust::Readable(0o644)
        );
        chmod(&path, 0o666);
        assert!(check_private_file(&path, "node key").is_err());
    }

    #[test]
    fn a_key_file_writable_by_everyone_is_refused_and_a_readable_one_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("key");
        fs::write(&path, "x").unwrap();
        chmod(&path, 0o644);
        check_key_file(&path).unwrap();
        chmod(&path, 0o666);
        let err = format!("{:#}", check_key_file(&path).unwrap_err());
        assert!(err.contains("`chmod 600"), "{err}");
    }
}
