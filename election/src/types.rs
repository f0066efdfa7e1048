//! The Raft types of the notification ledger: commands are [`LedgerCommand`]s, answers are
//! [`Applied`], nodes are numbered by a 64-bit id derived from their node key and reached at
//! their cluster address.

use std::io::Cursor;

use crate::ledger::{Applied, LedgerCommand};

openraft::declare_raft_types!(
    /// openraft's type configuration for the ledger group.
    pub LedgerRaft:
        D = LedgerCommand,
        R = Applied,
        NodeId = u64,
        Node = openraft::BasicNode,
);

/// A log entry of the ledger group.
pub type LedgerEntry = openraft::Entry<LedgerRaft>;
/// openraft's storage error for our node ids.
pub type StorageError = openraft::StorageError<u64>;

/// Wraps any error as an openraft storage IO error of the given kind.
pub(crate) fn io_error(
    kind: fn(openraft::AnyError) -> openraft::StorageIOError<u64>,
    error: &(impl std::error::Error + 'static),
) -> StorageError {
    StorageError::from(kind(openraft::AnyError::new(error)))
}
