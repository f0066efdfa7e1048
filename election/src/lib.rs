//! # rover-election
//!
//! Leader election and the notification ledger of rover-agent. **Not built yet**: this crate
//! holds no code until the election work, and nothing in the agent depends on it.
//!
//! What it will hold (see DESIGN.md, section 3):
//! - openraft 0.9 over the agent's sealed TCP, on the gossip port, with the raft log, vote and
//!   state machine in sled;
//! - a Raft group that follows SWIM membership (learners promoted up to `max_voters`, voters
//!   removed after being failed for `voter_reap_after`);
//! - the notification ledger as the state machine (incidents opened, notified, resolved), and a
//!   pure policy module deciding who may send (the Raft leader, or a fallback leader in a
//!   partition without quorum).
//!
//! Until then, `info` and `leader` report no leader.
