//! What the beacon collected: per sending node, events in time order, bounded per node
//! ([`MAX_EVENTS_PER_NODE`], oldest dropped) and in nodes ([`MAX_NODES`]), every drop counted.
//! A batch sent again (its answer was lost) adds nothing: an event is keyed by its time and
//! number. Pure data; time is passed in.

use std::collections::{BTreeMap, HashMap};

use super::{Arrived, Batch, NodeEvents, MAX_EVENTS_PER_NODE, MAX_NODES};

#[derive(Debug, Default)]
struct Node {
    events: BTreeMap<(u64, u64), Arrived>,
    dropped_by_agent: u64,
    dropped_here: u64,
    batches: u64,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct Store {
    nodes: HashMap<String, Node>,
    dropped_nodes: u64,
}

impl Store {
    /// Nothing collected yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps `batch`, received at `now_ms`; returns how many of its events were new.
    pub fn add(&mut self, batch: Batch, now_ms: u64) -> usize {
        if !self.nodes.contains_key(&batch.node) && self.nodes.len() >= MAX_NODES {
            self.dropped_nodes += 1;
            return 0;
        }
        let node = self.nodes.entry(batch.node).or_default();
        node.batches += 1;
        node.dropped_by_agent = node.dropped_by_agent.max(batch.dropped);
        let mut added = 0;
        for event in batch.events {
            let key = (event.at_ms, event.seq);
            if node.events.contains_key(&key) {
                continue;
            }
            node.events.insert(
                key,
                Arrived {
                    received_ms: now_ms,
                    event,
                },
            );
            added += 1;
            if node.events.len() > MAX_EVENTS_PER_NODE {
                node.events.pop_first();
                node.dropped_here += 1;
            }
        }
        added
    }

    /// Every node's events, nodes by name.
    pub fn nodes(&self) -> Vec<NodeEvents> {
        let mut nodes: Vec<NodeEvents> = self
            .nodes
            .iter()
            .map(|(name, node)| NodeEvents {
                node: name.clone(),
                events: node.events.values().cloned().collect(),
                dropped_by_agent: node.dropped_by_agent,
                dropped_here: node.dropped_here,
                batches: node.batches,
            })
            .collect();
        nodes.sort_by(|a, b| a.node.cmp(&b.node));
        nodes
    }

    /// Batches dropped because [`MAX_NODES`] nodes were held.
    pub fn dropped_nodes(&self) -> u64 {
        self.dropped_nodes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::introspection::{ClusterEvent, EventOp};

    fn event(seq: u64, at_ms: u64) -> ClusterEvent {
        ClusterEvent {
            seq,
            op: EventOp::Join,
            node: "n1".into(),
            at_ms,
            cluster: String::new(),
            old_cluster: None,
            members: 1,
            detail: String::new(),
        }
    }

    fn batch(node: &str, events: Vec<ClusterEvent>) -> Batch {
        Batch {
            node: node.into(),
            dropped: 0,
            events,
        }
    }

    #[test]
    fn events_come_out_per_node_in_time_order_whatever_order_they_arrived_in() {
        let mut store = Store::new();
        store.add(batch("b", vec![event(2, 20), event(1, 10)]), 100);
        store.add(batch("a", vec![event(1, 5)]), 101);
        let nodes = store.nodes();
        assert_eq!(nodes[0].node, "a");
        assert_eq!(nodes[1].node, "b");
        let times: Vec<u64> = nodes[1].events.iter().map(|a| a.event.at_ms).collect();
        assert_eq!(times, vec![10, 20]);
        assert_eq!(nodes[1].events[0].received_ms, 100);
    }

    #[test]
    fn a_batch_sent_again_adds_nothing() {
        let mut store = Store::new();
        assert_eq!(store.add(batch("a", vec![event(1, 5), event(2, 6)]), 1), 2);
        assert_eq!(store.add(batch("a", vec![event(1, 5), event(2, 6)]), 2), 0);
        assert_eq!(store.nodes()[0].events.len(), 2);
        assert_eq!(store.nodes()[0].batches, 2);
    }

    #[test]
    fn a_full_node_lets_its_oldest_events_go_and_counts_them() {
        let mut store = Store::new();
        let events: Vec<ClusterEvent> = (0..MAX_EVENTS_PER_NODE as u64 + 3)
            .map(|i| event(i + 1, 1000 + i))
            .collect();
        store.add(batch("a", events), 1);
        let node = &store.nodes()[0];
        assert_eq!(node.events.len(), MAX_EVENTS_PER_NODE);
        assert_eq!(node.dropped_here, 3);
        assert_eq!(node.events[0].event.seq, 4, "the oldest three went");
    }

    #[test]
    fn nodes_past_the_limit_are_dropped_and_counted() {
        let mut store = Store::new();
        for i in 0..MAX_NODES {
            store.add(batch(&format!("n{i}"), vec![event(1, 1)]), 1);
        }
        store.add(batch("one-too-many", vec![event(1, 1)]), 1);
        assert_eq!(store.nodes().len(), MAX_NODES);
        assert_eq!(store.dropped_nodes(), 1);
        store.add(batch("n0", vec![event(2, 2)]), 1);
        assert_eq!(store.dropped_nodes(), 1, "a known node still gets in");
    }

    #[test]
    fn the_agents_drop_count_is_the_highest_it_reported() {
        let mut store = Store::new();
        let mut b = batch("a", vec![event(1, 1)]);
        b.dropped = 7;
        store.add(b.clone(), 1);
        b.dropped = 3; // an older batch sent again
        store.add(b, 2);
        assert_eq!(store.nodes()[0].dropped_by_agent, 7);
    }
}
