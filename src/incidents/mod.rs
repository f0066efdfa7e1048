//! Incidents: the leader turns what the cluster sees (hosts down and back, alerts firing and
//! resolved) into ledger incidents and sends one message per batch of them, exactly once.
//!
//! - [`reconcile`]: what the ledger should say, given the cluster (pure).
//! - [`message`]: the text and JSON of one message (pure).
//! - [`engine`]: the owner task that ties them to the ledger, the policy and the notifiers.
//!
//! The decisions of when a message is due (group_wait folding, flaps, reminders, orphaned
//! intents) are `rover_election::policy::due_work`.

pub mod engine;
pub mod message;
pub mod reconcile;
pub mod switches;

pub use self::engine::{run, Deliver, EngineContext};
