//! Opening the database at start: verified against its watermark, moved aside when damaged,
//! and said so at ERROR with the path and what is lost (see `rover_storage::integrity`).
//!
//! A node whose database was replaced lost its Raft vote and log: it gets a new Raft node id
//! (the node key with the new database's epoch) and must not start a Raft group of its own,
//! since its peers' group still holds what it forgot; it waits to be added to theirs and
//! refills its alert table from them by the anti-entropy sync.

use anyhow::{Context, Result};
use rover_membership::runtime::unix_ms;
use rover_storage::{Damage, OpenState, Storage, Watermark};

use crate::data_dir::DataDir;
use crate::node_key::{NodeKey, NODE_KEY_FILE};

/// The opened database and what start-up must know about it.
#[derive(Debug)]
pub struct OpenedStorage {
    /// The database.
    pub storage: Storage,
    /// The Raft node id (the node key with the database's epoch).
    pub node_id: u64,
    /// The node key.
    pub node_key: NodeKey,
    /// Whether this node's earlier state is gone (the database was replaced, or is missing
    /// while the node key is not): it must not bootstrap a Raft group alone.
    pub state_lost: bool,
}

/// Opens the database of `data_dir` checked, logs what was found, and loads the node key.
pub fn open_storage(data_dir: &DataDir) -> Result<OpenedStorage> {
    let key_existed = data_dir.root().join(NODE_KEY_FILE).exists();
    let db = data_dir.db_path();
    let (storage, report) = Storage::open_checked(&db, unix_ms(), new_epoch())
        .with_context(|| format!("opening the database {}", db.display()))?;
    let node_key = NodeKey::load_or_create(data_dir.root())?;
    let node_id = node_key.node_id_in(report.epoch);
    let mut state_lost = report.replaced();
    match &report.state {
        OpenState::Replaced {
            damage,
            moved_to,
            lost,
            readable_alerts,
        } => log_replaced(
            &db,
            damage,
            moved_to.as_deref(),
            *lost,
            *readable_alerts,
            node_id,
        ),
        OpenState::Created if key_existed => {
            state_lost = true;
            tracing::error!(
                path = %db.display(),
                raft_node_id = %format!("{node_id:016x}"),
                "the database and its watermark are missing although this data dir has a node \
                 key: this node's alerts, history, remembered members and Raft vote and log are \
                 lost. Started with an empty database; rejoining as a new Raft node and \
                 refilling alerts from peers"
            );
        }
        OpenState::Created => {
            tracing::info!(path = %db.display(), "created a new database");
        }
        OpenState::Unverified => tracing::warn!(
            path = %db.display(),
            "the database has no watermark to compare with (a data dir from an earlier version, \
             or the watermark was removed): its records check out and it is trusted; a \
             watermark is kept from now on"
        ),
        OpenState::Verified => {
            tracing::debug!(path = %db.display(), epoch = report.epoch, "database verified")
        }
    }
    tracing::debug!(epoch = %format!("{:016x}", report.epoch), "database epoch");
    Ok(OpenedStorage {
        storage,
        node_id,
        node_key,
        state_lost,
    })
}

/// A random nonzero epoch for a database made now.
fn new_epoch() -> u64 {
    rand::random::<u64>().max(1)
}

/// What the last watermark counted, as words for the log.
fn lost_words(lost: Option<Watermark>) -> String {
    match lost {
        Some(mark) => format!(
            "{} alerts, {} remembered members, {} Raft log entries{}, and the history, as of the \
             checkpoint at {} (unix ms)",
            mark.alerts,
            mark.members,
            mark.raft_entries,
            if mark.raft_state {
                " and the Raft vote"
            } else {
                ""
            },
            mark.at_ms
        ),
        None => {
            "everything it held (alerts, history, remembered members, Raft vote and log)".to_owned()
        }
    }
}

fn log_replaced(
    db: &std::path::Path,
    damage: &Damage,
    moved_to: Option<&std::path::Path>,
    lost: Option<Watermark>,
    readable_alerts: Option<usize>,
    node_id: u64,
) {
    let kept = match (moved_to, readable_alerts) {
        (Some(to), Some(n)) => format!(
            "moved aside to {} (kept for inspection; sled still reads {n} alerts from it)",
            to.display()
        ),
        (Some(to), None) => format!("moved aside to {} (kept for inspection)", to.display()),
        (None, _) => "nothing to move aside".to_owned(),
    };
    tracing::error!(
        path = %db.display(),
        moved_to = %moved_to.map(|p| p.display().to_string()).unwrap_or_default(),
        raft_node_id = %format!("{node_id:016x}"),
        "the database is damaged: {damage}. It was {kept}. Lost: {}. Started with an empty \
         database; rejoining as a new Raft node and refilling alerts from peers",
        lost_words(lost)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_start_creates_a_database_and_loses_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let opened = open_storage(&dir).unwrap();
        assert!(!opened.state_lost);
        let id = opened.node_id;
        drop(opened);
        let again = reopen(&dir);
        assert!(!again.state_lost);
        assert_eq!(again.node_id, id, "a verified database keeps the node id");
    }

    #[test]
    fn a_deleted_database_loses_the_state_and_changes_the_node_id() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let id = open_storage(&dir).unwrap().node_id;
        wait_released(&dir);
        std::fs::remove_dir_all(dir.db_path()).unwrap();
        let again = open_storage(&dir).unwrap();
        assert!(again.state_lost);
        assert_ne!(again.node_id, id);
    }

    #[test]
    fn a_database_and_watermark_both_deleted_beside_a_node_key_still_count_as_lost() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        drop(open_storage(&dir).unwrap());
        wait_released(&dir);
        std::fs::remove_dir_all(dir.db_path()).unwrap();
        std::fs::remove_file(tmp.path().join("db.watermark")).unwrap();
        assert!(open_storage(&dir).unwrap().state_lost);
    }

    /// Opens again once sled's threads let go of the database this process just dropped.
    fn reopen(dir: &DataDir) -> OpenedStorage {
        for _ in 0..250 {
            if let Ok(opened) = open_storage(dir) {
                return opened;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        open_storage(dir).unwrap()
    }

    /// sled's threads let go of a dropped database shortly after the drop.
    fn wait_released(dir: &DataDir) {
        for _ in 0..250 {
            if Storage::open(dir.db_path()).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
