//! # rover-storage
//!
//! The persistent state of rover-agent, in one [sled] database per process.
//!
//! - [`Storage`] opens the database in the data directory (failing with
//!   [`StorageError::Locked`] when another process holds it) and hands out one typed store per
//!   keyspace. Each keyspace is a sled tree named in [`trees`].
//! - [`record`] encodes every stored value as a version byte and a postcard body; unreadable
//!   values become [`StorageError::Corrupt`] or [`StorageError::UnknownVersion`] naming the
//!   tree and key, never a panic.
//! - [`members`] persists the known cluster members so a restarted agent can rejoin its peers;
//!   [`meta`] keeps small named values such as the last identity generation. Each has a sled
//!   and an in-memory implementation, held to the same rules by [`conformance`].
//! - [`keys`] builds big-endian time keys for time-ordered range scans.
//!
//! This crate knows nothing of gossip, HTTP or notifications: it stores what it is given, and
//! callers decide what a stored value means.

// Tests assert with `unwrap`; the library code itself must not use it.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod conformance;
pub mod db;
pub mod error;
pub mod keys;
pub mod members;
pub mod meta;
pub mod record;
pub mod trees;

pub use crate::db::Storage;
pub use crate::error::StorageError;
pub use crate::keys::{parse_time_key, time_key};
pub use crate::members::{MemberStore, MemoryMemberStore, SledMemberStore, StoredMember};
pub use crate::meta::{MemoryMetaStore, MetaStore, SledMetaStore};
pub use crate::record::Record;
