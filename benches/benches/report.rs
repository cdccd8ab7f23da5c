//! Cost of reporting a 32-field set with 0, 4 and 32 dirty fields.
//!
//! - `report/dirty_N`: the per-set work of a report: walk the set, copy the dirty fields
//!   into the batch's words and reset them (criterion times the routine only; the set is
//!   dirtied in the untimed setup).
//! - `report_cycle/dirty_N`: a whole `Reporter::report` of that one set (clock read,
//!   batch reuse, snapshot, `try_send`) plus the consumer's `try_recv` and `recycle`,
//!   that is everything a report costs end to end.

use std::hint::black_box;

use benches::WideSet;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use metric_schema::{MetricSet, SnapshotWriter};

fn report(c: &mut Criterion) {
    let mut group = c.benchmark_group("report");
    let mut words: Vec<u64> = Vec::with_capacity(1024);
    for dirty in [0usize, 4, 32] {
        group.bench_function(format!("dirty_{dirty}"), |b| {
            b.iter_batched_ref(
                || {
                    let set = Box::new(WideSet::default());
                    set.dirty(dirty);
                    set
                },
                |set| {
                    words.clear();
                    black_box(&**set).snapshot_into(&mut SnapshotWriter::new(&mut words));
                },
                BatchSize::SmallInput,
            );
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
