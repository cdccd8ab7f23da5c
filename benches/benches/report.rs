//! Cost of reporting a 32-field set with 0, 4 and 32 dirty fields.
//!
//! - `report/dirty_N`: the per-set work of a report: walk the set, copy the dirty fields
//!   into the batch's words and reset them. The set stays hot in cache, as on the core
//!   that just recorded into it; making N fields dirty again (N plain adds) is inside the
//!   timed routine, so the figure is an upper bound.
//! - `report_cycle/dirty_N`: a whole `Reporter::report` of that one set (clock read,
//!   batch reuse, snapshot, `try_send`) plus the consumer's `try_recv` and `recycle`,
//!   that is everything a report costs end to end.

use std::hint::black_box;

use benches::WideSet;
use criterion::{Criterion, criterion_group, criterion_main};
use metric_schema::{MetricSet, SnapshotWriter};

/// One `report/dirty_N` case. Eight sets, hot in L1, take turns: each iteration
/// snapshots one set and makes dirty (N plain adds, part of the timing) the set it will
/// snapshot four iterations later, so that no snapshot reads a store still in flight,
/// just as recording happens long before a report on a real core.
fn snapshot_case<const N: usize>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    words: &mut Vec<u64>,
) {
    let sets: Vec<WideSet> = (0..8).map(|_| WideSet::default()).collect();
    for set in &sets {
        set.dirty(N);
    }
    let mut i = 0usize;
    group.bench_function(format!("dirty_{N}"), |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            sets[(i + 4) & 7].dirty(N);
            words.clear();
            black_box(&sets[i & 7]).snapshot_into(&mut SnapshotWriter::new(words));
        });
    });
}

fn report(c: &mut Criterion) {
    let mut group = c.benchmark_group("report");
    let mut words: Vec<u64> = Vec::with_capacity(1024);
    snapshot_case::<0>(&mut group, &mut words);
    snapshot_case::<4>(&mut group, &mut words);
    snapshot_case::<32>(&mut group, &mut words);
    let set = WideSet::default();
    let set = &set;
    // What making 32 fields dirty costs on its own (it is inside `dirty_32`).
    group.bench_function("record_32", |b| b.iter(|| black_box(set).dirty(32)));
    group.finish();

    let mut group = c.benchmark_group("report_cycle");
    for dirty in [0usize, 4, 32] {
        let (sender, receiver) = metric_schema::channel(4);
        let mut reporter = metric_schema::Reporter::new(sender, 0, 0);
        let set = reporter.register::<WideSet, _>(&());
        reporter.report();
        if let Some(batch) = receiver.try_recv() {
            receiver.recycle(batch);
        }
        group.bench_function(format!("dirty_{dirty}"), |b| {
            b.iter(|| {
                set.dirty(dirty);
                black_box(reporter.report());
                if let Some(batch) = receiver.try_recv() {
                    receiver.recycle(batch);
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, report);
criterion_main!(benches);
