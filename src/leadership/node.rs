//! One Raft node of the ledger group on this agent: started from the sled trees, bootstrapped
//! alone when allowed, and forgotten (ledger kept aside for merging) when its group yields to
//! a bigger one.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use openraft::{BasicNode, Raft};
use rover_election::config::raft_config;
use rover_election::ledger::LedgerCommand;
use rover_election::log_store::LogStore;
use rover_election::network::Network;
use rover_election::state_machine::{LedgerMachine, LedgerReader};
use rover_election::types::LedgerRaft;
use rover_storage::raft::RaftTrees;

use super::transport::PeerTransport;

/// Raft meta key holding the group id (8 bytes, big-endian).
const CLUSTER_ID_KEY: &str = "cluster_id";

/// A running Raft node and what the rest of the agent reads from it.
#[derive(Clone)]
pub struct RaftNode {
    /// openraft's handle.
    pub raft: Raft<LedgerRaft>,
    /// The applied ledger.
    pub reader: LedgerReader,
    /// The group this node belongs to, if any yet.
    pub cluster: Option<u64>,
}

impl RaftNode {
    /// Starts the node on `disk` (its log, vote and ledger as left by the last run).
    pub async fn start(
        node_id: u64,
        team: &str,
        disk: RaftTrees,
        transport: PeerTransport,
    ) -> Result<Self> {
        let cluster = read_cluster_id(&disk)?;
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
        })
    }

    /// Makes this node a group of one (first start of a standalone agent) with a new group id.
    pub async fn bootstrap(&mut self, node_id: u64, name: &str, disk: &RaftTrees) -> Result<()> {
        let id = rand::random::<u64>().max(1);
        write_cluster_id(disk, id)?;
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
    pub fn join_cluster(&mut self, cluster: u64, disk: &RaftTrees) -> Result<()> {
        write_cluster_id(disk, cluster)?;
        disk.flush().context("flushing the raft state")?;
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
        disk: RaftTrees,
        transport: PeerTransport,
    ) -> Result<(Self, Vec<LedgerCommand>)> {
        let kept = self.reader.ledger().as_commands();
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft node did not stop cleanly");
        }
        drop(self);
        disk.clear().context("clearing the raft state")?;
        write_cluster_id(&disk, cluster)?;
        disk.flush().context("flushing the raft state")?;
        let node = Self::start(node_id, team, disk, transport).await?;
        Ok((node, kept))
    }

    /// Whether the node holds any Raft state (it was bootstrapped or added before).
    pub async fn is_initialized(&self) -> bool {
        self.raft.is_initialized().await.unwrap_or(false)
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
