//! Grid-control records (seed 004): small facts that every agent keeps, each signed by the
//! node that states it, replaced only by a newer statement of the same signer.
//!
//! A record is `(service, signer, seqnum, payload, signature)`. The signer is a node's ed25519
//! public key; the signature covers a versioned, canonical postcard encoding of everything
//! else ([`signed`]). Which record a node keeps is decided by pure rules ([`order`]): a record
//! replaces another only when it has the same `(signer, service)` and a strictly higher
//! seqnum; the same seqnum with other content is a conflict and is dropped. [`payload`] says
//! what the services carry (addresses, named service addresses, trust recommendations), and
//! [`GridStore`] keeps the records in the [`crate::trees::GRID`] tree.
//!
//! This module decides nothing about the network: the agent feeds it what gossip and the
//! anti-entropy sync bring, and counts what it drops by [`DropReason`].

pub mod order;
pub mod payload;
pub mod signed;
mod store;

pub use self::order::{judge, DropCounts, DropReason, Verdict};
pub use self::signed::{RecordError, SignedRecord};
pub use self::store::{GridStore, SledGridStore};
