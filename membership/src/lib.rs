//! # rover-membership
//!
//! Who is in the cluster and who is alive: SWIM gossip through [foca], sealed on the wire.
//!
//! - [`core::MembershipCore`] is the sans-IO state machine: packets, timers and commands in;
//!   sealed packets, timers and [`core::MemberEvent`]s out. Time and randomness are injected.
//! - [`envelope`] and [`keyring`] are pure functions: seal and open datagrams with
//!   XChaCha20-Poly1305 under a keyring of one primary key and decrypt-only extras;
//!   [`replay`] refuses datagrams sent outside a time window or already seen inside it.
//! - [`sealed_stream`] is the cluster TCP port's protocol: a Noise handshake keyed by the
//!   keyring, then encrypted frames with per-direction counters.
//! - [`broadcast`] carries versioned custom items (alerts, status samples, records) on foca's
//!   messages.
//! - [`runtime`] drives a core with tokio: one UDP socket, one timer queue, one owner task.
//! - [`sim`] drives many cores in one process on a virtual clock with loss, delay and
//!   partitions, for deterministic tests at scale.
//!
//! This crate knows nothing of storage, HTTP or notifications; the agent binary wires it up.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod broadcast;
pub mod codec;
pub mod core;
pub mod envelope;
pub mod error;
pub mod identity;
pub mod keyring;
pub mod local_health;
pub mod member;
pub mod member_id;
pub mod peek;
pub mod profile;
pub mod replay;
pub mod runtime;
pub mod sealed_stream;
pub mod sim;
pub mod stale_suspicion;
pub mod suspicion;
pub mod tags;
pub mod timer_queue;

pub use crate::broadcast::{BroadcastItem, Topic};
pub use crate::core::{
    CoreSettings, CoreTimer, Counters, MemberEvent, MemberInfo, MemberStatus, MembershipCore,
    Output,
};
pub use crate::envelope::ClusterKey;
pub use crate::identity::NodeIdentity;
pub use crate::keyring::Keyring;
pub use crate::member_id::MemberId;
pub use crate::profile::{Profile, Tunables};
pub use crate::runtime::{MembershipHandle, RuntimeStatus};
pub use crate::tags::Tags;
