//! The bounded buffer of events: the newest `capacity` events in order, and counts by op.
//! Pure data: the owner task feeds it and asks it.

use std::collections::{BTreeMap, VecDeque};

use super::{ClusterEvent, EventCounts, EventFilter, EventOp};

/// See the module docs.
#[derive(Debug, Clone)]
pub struct EventRing {
    capacity: usize,
    events: VecDeque<ClusterEvent>,
    next_seq: u64,
    by_op: BTreeMap<EventOp, u64>,
    evicted: u64,
}

impl EventRing {
    /// An empty buffer of `capacity` events (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            events: VecDeque::with_capacity(capacity.min(1024)),
            next_seq: 1,
            by_op: BTreeMap::new(),
            evicted: 0,
        }
    }

    /// Puts back events kept from before a restart (oldest first); counts them as neither
    /// recorded nor evicted. Numbering goes on after the newest.
    pub fn restore(&mut self, events: impl IntoIterator<Item = ClusterEvent>) {
        for event in events {
            self.next_seq = self.next_seq.max(event.seq.saturating_add(1));
            if self.events.len() == self.capacity {
                self.events.pop_front();
            }
            self.events.push_back(event);
        }
    }

    /// Numbers `event`, keeps it (pushing out the oldest when full) and returns it as kept.
    pub fn push(&mut self, mut event: ClusterEvent) -> &ClusterEvent {
        event.seq = self.next_seq;
        self.next_seq += 1;
        *self.by_op.entry(event.op).or_default() += 1;
        if self.events.len() == self.capacity {
            self.events.pop_front();
            self.evicted += 1;
        }
        self.events.push_back(event);
        self.events.back().expect("just pushed")
    }

    /// The events that pass `filter`, oldest first.
    pub fn query(&self, filter: &EventFilter) -> Vec<ClusterEvent> {
        self.events
            .iter()
            .filter(|e| filter.matches(e))
            .cloned()
            .collect()
    }

    /// How many it holds, its size, what it recorded and evicted (the other counts zero).
    pub fn counts(&self) -> EventCounts {
        EventCounts {
            held: self.events.len(),
            capacity: self.capacity,
            by_op: self
                .by_op
                .iter()
                .map(|(op, n)| (op.as_str().to_owned(), *n))
                .collect(),
            evicted: self.evicted,
            ..EventCounts::default()
        }
    }

    /// The buffer's size.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Events held now.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}
