//! Once warm, recording, reporting and recycling allocate nothing.
//! (Alone in its file: it installs a counting global allocator.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use metric_schema::{Counter, Gauge, Histogram, Mmsc, ReportOutcome, Reporter, metric_set};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; it only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// A set with every kind of payload.
#[metric_set(name = "test.alloc")]
pub struct Busy {
    /// A.
    #[metric(unit = "1")]
    pub count: Counter<u64>,
    /// B.
    #[metric(unit = "1")]
    pub gauge: Gauge<u64>,
    /// C.
    #[metric(unit = "s", max_buckets = 32)]
    pub hist: Histogram,
    /// D.
    #[metric(unit = "s")]
    pub mmsc: Mmsc,
}

#[test]
fn a_warm_report_cycle_allocates_nothing() {
    let (tx, rx) = metric_schema::channel(2);
    let mut reporter = Reporter::new(tx, 0, 0);
    let sets: Vec<_> = (0..4).map(|_| reporter.register::<Busy, _>(&())).collect();
    let mut cycle = |round: u64| {
        for (i, set) in sets.iter().enumerate() {
            set.count.add(round);
            set.gauge.set(round + i as u64);
            set.hist.record(round as f64 * 1e-3 + 1e-6);
            set.hist.record(1e3);
            set.mmsc.record(round as f64);
        }
        let outcome = reporter.report();
        let batch = rx.try_recv().expect("the consumer keeps up");
        rx.recycle(batch);
        outcome
    };
    // Warm-up: registrations, buffer growth, recycled batches in circulation.
    for round in 1..=5 {
        cycle(round);
    }
    let before = allocations();
    for round in 6..1_006 {
        assert_eq!(cycle(round), ReportOutcome::Sent);
    }
    assert_eq!(
        allocations() - before,
        0,
        "allocations in 1000 warm report cycles"
    );

    // The counter can fail: a cycle that registers a new set does allocate.
    let before = allocations();
    let _extra = reporter.register::<Busy, _>(&());
    assert!(allocations() > before);
}
