//! Measures the memory of a full cluster event ring buffer (`introspection.events`, default
//! 10 000) with realistic events; prints one JSON line per size:
//! `{"bench":"event_ring_memory","events":N,"rss_bytes":B,"heap_estimate_bytes":H,"bytes_per_event":P}`.
//!
//! `rss_bytes` is the growth of the process's resident set while filling (from
//! `/proc/self/statm`); `heap_estimate_bytes` adds up the events' own sizes and their strings.
//! Run: `cargo run --example event_ring_memory`.

use rover_agent::introspection::ring::EventRing;
use rover_agent::introspection::{ClusterEvent, EventOp};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn event(i: usize) -> ClusterEvent {
    let ops = EventOp::ALL;
    ClusterEvent {
        seq: 0,
        op: ops[i % ops.len()],
        node: format!("node-{:04}.rack{}.example.net", i % 300, i % 12),
        at_ms: 1_764_000_000_000 + i as u64,
        cluster: "9f3c2a7b41d0e8f5".to_owned(),
        old_cluster: (i % 50 == 0).then(|| "0a1b2c3d4e5f6789".to_owned()),
        members: 20 + i % 280,
        detail: format!(
            "generation {} (raft) -> node-{:04} (raft), term {}",
            i,
            i % 300,
            i / 10
        ),
    }
}

fn heap_estimate(ring: &EventRing, events: &[ClusterEvent]) -> usize {
    let strings: usize = events
        .iter()
        .map(|e| {
            e.node.capacity()
                + e.cluster.capacity()
                + e.detail.capacity()
                + e.old_cluster.as_ref().map_or(0, String::capacity)
        })
        .sum();
    ring.capacity() * std::mem::size_of::<ClusterEvent>() + strings
}

fn main() {
    for size in [1_000usize, 10_000, 100_000] {
        let before = rss_bytes();
        let mut ring = EventRing::new(size);
        // Twice round: the buffer is full and has pushed out as many as it holds.
        for i in 0..size * 2 {
            ring.push(event(i));
        }
        let after = rss_bytes();
        let held = ring.query(&Default::default());
        let heap = heap_estimate(&ring, &held);
        println!(
            "{}",
            serde_json::json!({
                "bench": "event_ring_memory",
                "events": size,
                "held": ring.len(),
                "rss_bytes": after.saturating_sub(before),
                "heap_estimate_bytes": heap,
                "bytes_per_event": heap / size,
            })
        );
        drop(held);
        drop(ring);
    }
}
