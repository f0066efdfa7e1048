//! When this node last accepted entries from a Raft leader, on a monotonic clock (a wall clock
//! that jumps would make a leader look present or gone when it is not).
//!
//! The cluster-port server notes every accepted `AppendEntries` here ([`LeaderContact::
//! note_entries`]); the owner task reads it to decide whether the leader is present (it holds
//! the lease: it heard from a quorum within [`super::LEASE_MS`]) and how long it has been
//! silent. Writes are two relaxed stores per heartbeat; nothing waits on a lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::LEASE_MS;

/// Monotonic times (ms since this node's start, plus one: 0 means never) of leader contact.
#[derive(Debug)]
pub struct LeaderContact {
    origin: Instant,
    entries: AtomicU64,
    confirmed: AtomicU64,
}

impl Default for LeaderContact {
    fn default() -> Self {
        Self::new()
    }
}

impl LeaderContact {
    /// No contact yet.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
            entries: AtomicU64::new(0),
            confirmed: AtomicU64::new(0),
        }
    }

    /// Milliseconds since this node's start (the clock every other time here is on).
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Entries from a leader were accepted; `lease` when that leader said it holds the lease.
    /// True when the leader had been silent for longer than the lease (the owner task should
    /// look again now rather than at its next deadline).
    pub fn note_entries(&self, lease: bool) -> bool {
        let now = self.now_ms().saturating_add(1);
        self.entries.store(now, Ordering::Relaxed);
        if !lease {
            return false;
        }
        let before = self.confirmed.swap(now, Ordering::Relaxed);
        before == 0 || now.saturating_sub(before) > LEASE_MS
    }

    /// Counts the leader as confirmed now (after joining a group: give its leader a lease's
    /// time to reach us before falling back).
    pub fn confirm_now(&self) {
        let now = self.now_ms().saturating_add(1);
        self.confirmed.store(now, Ordering::Relaxed);
    }

    /// When (ms on [`Self::now_ms`]'s clock) entries were last accepted, if ever.
    pub fn entries_at(&self) -> Option<u64> {
        stamp(self.entries.load(Ordering::Relaxed))
    }

    /// When (ms on [`Self::now_ms`]'s clock) a lease holder's entries were last accepted.
    pub fn confirmed_at(&self) -> Option<u64> {
        stamp(self.confirmed.load(Ordering::Relaxed))
    }
}

fn stamp(stored: u64) -> Option<u64> {
    stored.checked_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_that_never_heard_a_leader_has_no_contact_times() {
        let contact = LeaderContact::new();
        assert_eq!(contact.entries_at(), None);
        assert_eq!(contact.confirmed_at(), None);
    }

    #[test]
    fn the_first_lease_holders_entries_ask_the_owner_to_look_and_the_next_do_not() {
        let contact = LeaderContact::new();
        assert!(!contact.note_entries(false), "not a lease holder");
        assert!(contact.entries_at().is_some());
        assert_eq!(contact.confirmed_at(), None);
        assert!(contact.note_entries(true));
        assert!(!contact.note_entries(true));
        assert!(contact.confirmed_at().is_some());
    }
}
