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

fn report(c: &mut Criterion) {
    let mut group = c.benchmark_group("report");
    let mut words: Vec<u64> = Vec::with_capacity(1024);
    let set = WideSet::default();
    let set = &set;
    for dirty in [0usize, 4, 32] {
        group.bench_function(format!("dirty_{dirty}"), |b| {
            b.iter(|| {
                set.dirty(dirty);
                words.clear();
                black_box(set).snapshot_into(&mut SnapshotWriter::new(&mut words));
            });
        });
    }
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
