//! What a node keeps outside the Raft ledger, in the meta tree so it survives a restart:
//!
//! - the **fallback ledger**: what this node recorded while it led a partition without a Raft
//!   quorum;
//! - the **pending merge**: ledger commands waiting to be folded into the Raft ledger (the
//!   fallback ledger once a Raft leader is back, or the ledger of a group that yielded).
//!
//! Merging is idempotent (the ledger ignores what it already holds), so a merge sent twice,
//! or a fallback entry the Raft side also recorded, changes nothing the second time.

use anyhow::{Context, Result};
use rover_election::ledger::{Applied, Ledger, LedgerCommand};
use rover_storage::{MetaStore, Storage};

const FALLBACK_KEY: &str = "fallback_ledger";
const PENDING_KEY: &str = "pending_merge";

/// The fallback ledger and the pending merge of this node.
#[derive(Debug)]
pub struct SideLedgers {
    storage: Storage,
    fallback: Ledger,
    pending: Vec<LedgerCommand>,
}

impl SideLedgers {
    /// Loads both from the meta tree.
    pub fn load(storage: Storage) -> Result<Self> {
        let meta = storage.meta();
        let fallback = match meta.get_bytes(FALLBACK_KEY)? {
            Some(bytes) => postcard::from_bytes(&bytes).context("fallback ledger is damaged")?,
            None => Ledger::default(),
        };
        let pending = match meta.get_bytes(PENDING_KEY)? {
            Some(bytes) => postcard::from_bytes(&bytes).context("pending merge is damaged")?,
            None => Vec::new(),
        };
        Ok(Self {
            storage,
            fallback,
            pending,
        })
    }

    /// The fallback ledger.
    pub fn fallback(&self) -> &Ledger {
        &self.fallback
    }

    /// Applies commands to the fallback ledger and stores it. A command about an incident
    /// only `base` (this node's copy of the Raft ledger) knows first copies that incident and
    /// its records over, so the fallback leader continues what the Raft side started instead
    /// of announcing it again.
    pub fn apply_fallback(
        &mut self,
        commands: &[LedgerCommand],
        base: &Ledger,
    ) -> Result<Vec<Applied>> {
        let mut applied = Vec::with_capacity(commands.len());
        for command in commands {
            if let Some(id) = command.incident_id() {
                if self.fallback.incident(id).is_none() && base.incident(id).is_some() {
                    for copied in base.commands_of(id) {
                        self.fallback.apply(&copied);
                    }
                }
            }
            applied.push(self.fallback.apply(command));
        }
        self.save()?;
        Ok(applied)
    }

    /// Moves the fallback ledger into the pending merge (a Raft leader is back).
    pub fn hand_over_fallback(&mut self) -> Result<()> {
        if self.fallback == Ledger::default() {
            return Ok(());
        }
        self.pending.extend(self.fallback.as_commands());
        self.fallback = Ledger::default();
        self.save()
    }

    /// Adds commands to merge later.
    pub fn add_pending(&mut self, commands: Vec<LedgerCommand>) -> Result<()> {
        if commands.is_empty() {
            return Ok(());
        }
        self.pending.extend(commands);
        self.save()
    }

    /// The commands waiting to be merged, as one merge command (if any).
    pub fn pending_merge(&self) -> Option<LedgerCommand> {
        (!self.pending.is_empty()).then(|| LedgerCommand::Merge(self.pending.clone()))
    }

    /// Forgets the first `count` pending commands (they are in the Raft ledger now).
    pub fn merged(&mut self, count: usize) -> Result<()> {
        self.pending.drain(..count.min(self.pending.len()));
        self.save()
    }

    /// How many commands wait to be merged.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    fn save(&self) -> Result<()> {
        let meta = self.storage.meta();
        meta.put_bytes(FALLBACK_KEY, &postcard::to_stdvec(&self.fallback)?)?;
        meta.put_bytes(PENDING_KEY, &postcard::to_stdvec(&self.pending)?)?;
        self.storage.flush()?;
        Ok(())
    }
}
