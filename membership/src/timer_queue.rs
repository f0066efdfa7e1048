//! One ordered timer queue: timers come out by deadline, and in insertion order for equal
//! deadlines, which foca requires (its timers must not overtake each other).
//!
//! Time is a plain [`Duration`] since an arbitrary origin, so the same queue serves the tokio
//! runtime (origin: process start) and the simulation (origin: virtual time zero).

use std::collections::BTreeMap;
use std::time::Duration;

/// Timers keyed by `(deadline, insertion sequence)`.
#[derive(Debug)]
pub struct TimerQueue<T> {
    entries: BTreeMap<(Duration, u64), T>,
    next_seq: u64,
}

impl<T> Default for TimerQueue<T> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
            next_seq: 0,
        }
    }
}

impl<T> TimerQueue<T> {
    /// Schedules `timer` at `deadline`.
    pub fn push(&mut self, deadline: Duration, timer: T) {
        self.entries.insert((deadline, self.next_seq), timer);
        self.next_seq += 1;
    }

    /// The earliest deadline, if any.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.entries.keys().next().map(|(deadline, _)| *deadline)
    }

    /// Removes and returns the earliest timer due at or before `now`.
    pub fn pop_due(&mut self, now: Duration) -> Option<T> {
        let first = *self.entries.keys().next()?;
        if first.0 <= now {
            self.entries.remove(&first)
        } else {
            None
        }
    }

    /// Number of pending timers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops every pending timer.
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_come_out_by_deadline_then_by_insertion() {
        let mut q = TimerQueue::default();
        q.push(Duration::from_secs(2), "late");
        q.push(Duration::from_secs(1), "first");
        q.push(Duration::from_secs(1), "second");
        assert_eq!(q.pop_due(Duration::from_millis(500)), None);
        assert_eq!(q.pop_due(Duration::from_secs(5)), Some("first"));
        assert_eq!(q.pop_due(Duration::from_secs(5)), Some("second"));
        assert_eq!(q.pop_due(Duration::from_secs(5)), Some("late"));
        assert!(q.is_empty());
    }
}
