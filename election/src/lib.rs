//! # rover-election
//!
//! Who may send notifications, and the record of what was sent.
//!
//! - [`ledger`]: the notification ledger (incidents, notification records), applied the same
//!   way on every node; applying a command twice changes nothing, so replays and the merge of
//!   a partition's fallback ledger are safe.
//! - [`policy`]: pure decisions: the Raft leader sends once it has confirmed its leadership;
//!   without a Raft leader for `fallback_after`, the lowest-named alive member of a partition
//!   is its fallback leader; which incidents and orphaned intents are due.
//! - [`log_store`] and [`state_machine`]: openraft's log storage and state machine over a
//!   [`disk::RaftDisk`]; the ledger is stored one record per incident and per notification
//!   ([`machine_records`]); [`sled_disk`] puts the log, vote and ledger in the agent's sled
//!   database ([`rover_storage::RaftTrees`]), [`disk::MemoryDisk`] keeps them in memory for
//!   tests.
//!
//! - [`group`]: how the Raft group follows SWIM membership, and the election gate (a voter
//!   calls an election only while its SWIM view shows a majority of the voters);
//!   [`pre_vote`]: the pre-vote a voter then asks of the others before it raises its term;
//!   [`config`]: the Raft timings; [`network`]: the RPCs, carried by the agent's sealed TCP.

#![cfg_attr(test, allow(clippy::unwrap_used))]
// openraft's own error types (StorageError, ConfigError) are large; we return them as openraft
// defines them.
#![allow(clippy::result_large_err)]

pub mod config;
pub mod disk;
pub mod group;
pub mod ledger;
pub mod log_store;
pub mod machine_records;
pub mod network;
pub mod policy;
pub mod pre_vote;
pub mod sled_disk;
pub mod state_machine;
pub mod types;
