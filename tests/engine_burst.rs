//! A burst of 200 alerts raised and cleared within group_wait beside a ledger of 5 000 closed
//! incidents owes no message, and each pass of the engine's core does work in proportion to
//! what changed, not to the ledger: counted in allocations made by the pass (deterministic, on
//! this test's thread), never timed.

#![allow(clippy::unwrap_used)]
// The counting allocator below is the only unsafe code: it forwards to the system allocator.
#![allow(unsafe_code)]

#[path = "common/burst.rs"]
mod burst;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use burst::{Scenario, CLEARED_AFTER_MS, PASS_GAP_MS, T0};
use rover_election::ledger::IncidentState;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// The system allocator, counting the allocations of each thread.
struct Counting;

// SAFETY: every call is forwarded unchanged to `System`.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// What a burst did: every message due in any pass, and the most allocations of one pass.
struct Run {
    due: usize,
    most_allocations: u64,
    scenario: Scenario,
}

/// Passes PASS_GAP apart from the burst until twice group_wait after it.
fn run(closed: usize, burst: usize) -> Run {
    let mut scenario = Scenario::new(closed, burst);
    let mut due = 0;
    let mut most_allocations = 0;
    let end = T0 + 2 * burst::rules().group_wait_ms;
    let mut now = T0;
    while now <= end {
        scenario.table_at(now);
        let before = allocations();
        let plan = scenario.plan(now);
        most_allocations = most_allocations.max(allocations() - before);
        for change in &plan.changes {
            scenario.ledger.apply(change);
        }
        due += plan.work.len();
        now += PASS_GAP_MS;
    }
    Run {
        due,
        most_allocations,
        scenario,
    }
}

#[test]
fn a_burst_raised_and_cleared_within_group_wait_beside_5000_closed_incidents_owes_no_message() {
    assert!(CLEARED_AFTER_MS < burst::rules().group_wait_ms);
    let run = run(5_000, 200);
    let incidents = run.scenario.burst_incidents();
    assert_eq!(incidents.len(), 200, "every alert of the burst opened one");
    assert!(
        incidents.iter().all(|i| i.state == IncidentState::Closed),
        "every flap is closed without a message"
    );
    assert_eq!(run.due, 0, "nothing is due about a flap");
    assert_eq!(run.scenario.ledger.active_incidents().count(), 0);
}

#[test]
fn a_pass_does_work_in_proportion_to_what_changed_not_to_the_closed_incidents_kept() {
    let small = run(100, 200);
    let large = run(5_000, 200);
    // Fifty times the closed incidents: a pass that copies or scans them shows it many times
    // over; one that looks at what changed stays within a small factor.
    assert!(
        large.most_allocations <= small.most_allocations * 3 / 2 + 1_000,
        "a pass with 5 000 closed incidents made {} allocations, with 100 {}",
        large.most_allocations,
        small.most_allocations
    );
}
