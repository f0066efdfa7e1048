//! One Raft node of the ledger group on this agent: started from the sled trees, bootstrapped
//! alone when allowed, forgotten (ledger kept aside for merging) when its group yields to a
//! bigger one, and started again after openraft stopped it on a storage error, once a
//! [`probe`] write goes through.
//!
//! A test-only fault switch, honoured by debug builds only, makes the node's storage fail:
//! while the file named by `ROVER_TEST_RAFT_DISK_FAULT` exists, every write of the Raft log,
//! vote and ledger fails (see [`Disk`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use openraft::{BasicNode, Raft};
use rover_election::config::raft_config;
use rover_election::disk::{DiskError, MachineRecord, MachineWrite, RaftDisk};
use rover_election::group::ClusterStamp;
use rover_election::ledger::LedgerCommand;
use rover_election::log_store::LogStore;
use rover_election::network::Network;
use rover_election::state_machine::{LedgerMachine, LedgerReader};
use rover_election::types::LedgerRaft;
use rover_storage::raft::RaftTrees;

use super::transport::PeerTransport;

/// Raft meta key holding the group id (8 bytes, big-endian).
const CLUSTER_ID_KEY: &str = "cluster_id";
/// Raft meta key the storage probe writes.
const PROBE_KEY: &str = "storage_probe";
/// The environment variable of the test-only storage fault switch (debug builds only).
pub const DISK_FAULT_SWITCH: &str = "ROVER_TEST_RAFT_DISK_FAULT";

/// A running Raft node and what the rest of the agent reads from it.
#[derive(Clone)]
pub struct RaftNode {
    /// openraft's handle.
    pub raft: Raft<LedgerRaft>,
    /// The applied ledger.
    pub reader: LedgerReader,
    /// The group this node belongs to, if any yet.
    pub cluster: Option<u64>,
    /// The group this node yielded to, as it described itself, and when: until that group's
    /// leader replicates its membership here, this node speaks for the group by that stamp,
    /// so a second leader greeting it meanwhile does not take it away (see [`Self::stamp`]).
    pub joining: Option<(ClusterStamp, Instant)>,
}

/// How long a node that yielded speaks for its new group by the stamp it was greeted with
/// (see [`RaftNode::stamp`]); after that, a group that never added it no longer holds it.
pub const JOINING_GRACE: Duration = Duration::from_secs(15);

impl RaftNode {
    /// Starts the node on `disk` (its log, vote and ledger as left by the last run).
    pub async fn start(
        node_id: u64,
        team: &str,
        disk: Disk,
        transport: PeerTransport,
    ) -> Result<Self> {
        let cluster = read_cluster_id(&disk.trees)?;
        let machine = LedgerMachine::open(disk.clone()).context("opening the ledger")?;
        let reader = machine.reader();
        let raft = Raft::new(
            node_id,
            raft_config(team).context("raft configuration")?,
            Network::new(transport),
            LogStore::new(disk),
            machine,
        )
        .await
        .context("starting the raft node")?;
        Ok(Self {
            raft,
            reader,
            cluster,
            joining: None,
        })
    }

    /// Makes this node a group of one (first start of a standalone agent) with a new group id.
    pub async fn bootstrap(&mut self, node_id: u64, name: &str, disk: &Disk) -> Result<()> {
        let id = rand::random::<u64>().max(1);
        write_cluster_id(&disk.trees, id)?;
        let members: BTreeMap<u64, BasicNode> =
            [(node_id, BasicNode::new(name))].into_iter().collect();
        self.raft
            .initialize(members)
            .await
            .context("initializing the raft group")?;
        self.cluster = Some(id);
        tracing::info!(cluster = %format!("{id:016x}"), "started a new raft group");
        Ok(())
    }

    /// Records that this node, never in a group, now waits to be added to group `cluster`.
    pub fn join_cluster(&mut self, cluster: u64, disk: &Disk) -> Result<()> {
        write_cluster_id(&disk.trees, cluster)?;
        disk.trees.flush().context("flushing the raft state")?;
        self.cluster = Some(cluster);
        Ok(())
    }

    /// Stops the node, forgets its Raft state and starts it again, empty, in group `cluster`
    /// (waiting to be added by that group's leader). Returns the commands that rebuild the
    /// ledger it held, to merge into the new group.
    pub async fn yield_to(
        self,
        cluster: u64,
        node_id: u64,
        team: &str,
        disk: Disk,
        transport: PeerTransport,
    ) -> Result<(Self, Vec<LedgerCommand>)> {
        let kept = self.reader.ledger().as_commands();
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft node did not stop cleanly");
        }
        drop(self);
        disk.trees.clear().context("clearing the raft state")?;
        write_cluster_id(&disk.trees, cluster)?;
        disk.trees.flush().context("flushing the raft state")?;
        let node = Self::start(node_id, team, disk, transport).await?;
        Ok((node, kept))
    }

    /// The group this node is in as a greeting leader should see it: its id, how many nodes
    /// its membership holds and whether it has a Raft leader (`led`, as this node sees it).
    /// A node that just yielded and holds no membership yet answers with the stamp of the
    /// group it yielded to (for [`JOINING_GRACE`]): without that it would look like a group of
    /// none without a leader, and yield again to the next leader that greets it, leaving the
    /// first group with a voter it can never reach.
    pub fn stamp(&self, led: bool) -> Option<ClusterStamp> {
        let id = self.cluster?;
        let size = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .nodes()
            .count();
        if size == 0 {
            if let Some((theirs, since)) = self.joining {
                if theirs.id == id && since.elapsed() < JOINING_GRACE {
                    return Some(theirs);
                }
            }
        }
        Some(ClusterStamp {
            id,
            size: u32::try_from(size).unwrap_or(u32::MAX),
            led,
        })
    }

    /// Whether the node holds any Raft state (it was bootstrapped or added before).
    pub async fn is_initialized(&self) -> bool {
        self.raft.is_initialized().await.unwrap_or(false)
    }

    /// Why openraft stopped this node, if it did (a storage error is fatal to it).
    pub fn stopped(&self) -> Option<String> {
        let metrics = self.raft.metrics();
        // A core that panicked publishes nothing more: its metrics still say it runs, but
        // their sender is gone.
        if metrics.has_changed().is_err() {
            return Some("the raft core ended (it panicked)".into());
        }
        let state = metrics.borrow().running_state.clone();
        match state {
            Ok(()) => None,
            Err(fatal) => Some(fatal.to_string()),
        }
    }
}

/// Writes and flushes a small value through the Raft node's own storage: once this works,
/// storage that failed works again and a stopped node can start. Blocking: call it on a
/// blocking thread.
pub fn probe(disk: &Disk) -> Result<(), DiskError> {
    disk.put_meta(
        PROBE_KEY,
        &rover_membership::runtime::unix_ms().to_be_bytes(),
    )?;
    disk.flush()
}

/// The Raft node's storage: the sled trees, behind the test-only fault switch (see the
/// module docs; release builds never read it).
#[derive(Debug, Clone)]
pub struct Disk {
    trees: RaftTrees,
    fault: Option<PathBuf>,
}

impl Disk {
    /// The trees, with the fault switch if this is a debug build and it is set.
    pub fn new(trees: RaftTrees) -> Self {
        let fault = cfg!(debug_assertions)
            .then(|| std::env::var_os(DISK_FAULT_SWITCH).map(PathBuf::from))
            .flatten();
        Self { trees, fault }
    }

    fn check(&self, doing: &str) -> Result<(), DiskError> {
        match &self.fault {
            Some(file) if file.exists() => Err(DiskError(format!(
                "{doing}: test fault ({DISK_FAULT_SWITCH} file {} exists)",
                file.display()
            ))),
            _ => Ok(()),
        }
    }
}

impl RaftDisk for Disk {
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, DiskError> {
        RaftDisk::get_meta(&self.trees, key)
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), DiskError> {
        self.check("writing raft meta")?;
        RaftDisk::put_meta(&self.trees, key, value)
    }

    fn remove_meta(&self, key: &str) -> Result<(), DiskError> {
        self.check("removing raft meta")?;
        RaftDisk::remove_meta(&self.trees, key)
    }

    fn get_snapshot(&self) -> Result<Option<Vec<u8>>, DiskError> {
        RaftDisk::get_snapshot(&self.trees)
    }

    fn put_snapshot(&self, bytes: &[u8]) -> Result<(), DiskError> {
        self.check("writing the raft snapshot")?;
        RaftDisk::put_snapshot(&self.trees, bytes)
    }

    fn machine_records(&self) -> Result<Vec<MachineRecord>, DiskError> {
        RaftDisk::machine_records(&self.trees)
    }

    fn write_machine(&self, changes: &[MachineWrite]) -> Result<(), DiskError> {
        self.check("writing the ledger")?;
        RaftDisk::write_machine(&self.trees, changes)
    }

    fn replace_machine(&self, records: &[MachineRecord]) -> Result<(), DiskError> {
        self.check("replacing the ledger")?;
        RaftDisk::replace_machine(&self.trees, records)
    }

    fn put_entries(&self, entries: &[(u64, Vec<u8>)]) -> Result<(), DiskError> {
        self.check("appending raft log entries")?;
        RaftDisk::put_entries(&self.trees, entries)
    }

    fn entries(&self, from: u64, to: u64) -> Result<Vec<(u64, Vec<u8>)>, DiskError> {
        RaftDisk::entries(&self.trees, from, to)
    }

    fn last_entry(&self) -> Result<Option<(u64, Vec<u8>)>, DiskError> {
        RaftDisk::last_entry(&self.trees)
    }

    fn delete_from(&self, from: u64) -> Result<(), DiskError> {
        self.check("truncating the raft log")?;
        RaftDisk::delete_from(&self.trees, from)
    }

    fn delete_through(&self, through: u64) -> Result<(), DiskError> {
        self.check("purging the raft log")?;
        RaftDisk::delete_through(&self.trees, through)
    }

    fn clear(&self) -> Result<(), DiskError> {
        self.check("clearing the raft state")?;
        RaftDisk::clear(&self.trees)
    }

    fn flush(&self) -> Result<(), DiskError> {
        self.check("flushing the raft state")?;
        RaftDisk::flush(&self.trees)
    }
}

fn read_cluster_id(disk: &RaftTrees) -> Result<Option<u64>> {
    let Some(bytes) = disk.get_meta(CLUSTER_ID_KEY)? else {
        return Ok(None);
    };
    let bytes: [u8; 8] = bytes
        .as_slice()
        .try_into()
        .context("the stored raft group id is damaged")?;
    Ok(Some(u64::from_be_bytes(bytes)))
}

fn write_cluster_id(disk: &RaftTrees, id: u64) -> Result<()> {
    disk.put_meta(CLUSTER_ID_KEY, &id.to_be_bytes())?;
    Ok(())
}
