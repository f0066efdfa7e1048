//! Incidents: the leader turns what the cluster sees (hosts down and back, alerts firing and
//! resolved) into ledger incidents and sends one message per batch of them, exactly once.
//!
//! - [`reconcile`]: what the ledger should say, given the cluster (pure).
//! - [`message`]: the text and JSON of one message (pure).
//! - [`pass`]: what one pass of the engine writes and sends (pure).
//! - [`engine`]: the owner task that ties them to the ledger, the policy and the notifiers;
//! - [`jobs`]: what it hands to spawned tasks (claim and send on one channel, commit a write,
//!   record an outcome), so that nothing it waits for blocks it.
//!
//! The decisions of when a message is due (group_wait folding, flaps, reminders, orphaned
//! intents, retention) and when the next one will be are `rover_election::policy`'s
//! `due_work`, `next_due_at` and `expiry`.

pub mod engine;
pub mod jobs;
pub mod message;
pub mod pass;
pub mod reconcile;
pub mod switches;

pub use self::engine::{run, EngineContext, Live};
pub use self::jobs::Deliver;
