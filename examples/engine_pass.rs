//! How long one pass of the incident engine's pure core takes beside a ledger of N closed
//! incidents (N = 100, 1 000, 5 000, 10 000), while a burst of 200 alerts opens and while it
//! clears, and how long a copy of that ledger takes (what an apply costs the state machine
//! while a reader holds the previous snapshot). Median of 21 runs, in microseconds.
//!
//!   cargo run --release --example engine_pass

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../tests/common/burst.rs"]
mod burst;

use std::time::Instant;

use burst::{Scenario, CLEARED_AFTER_MS, T0};

const RUNS: usize = 21;

fn median_us(mut run: impl FnMut() -> u128) -> u128 {
    let mut times: Vec<u128> = (0..RUNS).map(|_| run()).collect();
    times.sort_unstable();
    times[RUNS / 2]
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, u128) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed().as_micros())
}

fn main() {
    println!("closed_incidents\topening_pass_us\tclearing_pass_us\tidle_pass_us\tledger_clone_us");
    for closed in [100, 1_000, 5_000, 10_000] {
        let mut scenario = Scenario::new(closed, 200);
        scenario.table_at(T0);
        let opening = median_us(|| timed(|| scenario.plan(T0)).1);
        scenario.pass(T0);
        let cleared = T0 + CLEARED_AFTER_MS;
        scenario.table_at(cleared);
        let clearing = median_us(|| timed(|| scenario.plan(cleared)).1);
        scenario.pass(cleared);
        let idle = median_us(|| timed(|| scenario.plan(cleared + 100)).1);
        let clone = median_us(|| timed(|| scenario.ledger.clone()).1);
        println!("{closed}\t{opening}\t{clearing}\t{idle}\t{clone}");
    }
}
