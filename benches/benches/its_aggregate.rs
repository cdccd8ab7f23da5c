//! `processor:aggregate`'s core: from received snapshot batches to an aggregated
//! interval, in data points per second on one core.
//!
//! 8 cores x 64 sets x 32 counters report once with their registrations (applied once,
//! untimed), then once more without: each iteration folds those steady-state batches
//! (65,536 points, merged across cores into 64 series) and ends the interval.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use its_processors::{Aggregator, Keep, Temporality};
use metric_schema::{Reporter, SnapshotBatch};

use benches::WideSet;

const CORES: u32 = 8;
const SETS: usize = 64;

/// One attribute: which of the 64 sets, so that cores merge set by set.
#[metric_schema::attribute_set(name = "bench.set")]
struct SetIndex {
    /// Set number.
    #[attribute(key = "bench.set.index")]
    index: u32,
}

fn batches() -> (Vec<SnapshotBatch>, Vec<SnapshotBatch>) {
    let (sender, receiver) = metric_schema::channel(64);
    let mut first = Vec::new();
    let mut steady = Vec::new();
    // Reporters stay alive until the end: a dropped one sends a final batch.
    let mut reporters = Vec::new();
    for core in 0..CORES {
        let mut reporter = Reporter::new(sender.clone(), core, 0);
        let sets: Vec<_> = (0..SETS)
            .map(|i| reporter.register::<WideSet, _>(&SetIndex { index: i as u32 }))
            .collect();
        for round in 0..2 {
            for set in &sets {
                set.dirty(32);
            }
            reporter.report();
            let batch = receiver.try_recv().expect("a batch");
            if round == 0 { &mut first } else { &mut steady }.push(batch);
        }
        reporters.push((reporter, sets));
    }
    assert!(
        steady
            .iter()
            .all(|b| b.registrations().is_empty() && b.unregistrations().is_empty())
    );
    (first, steady)
}

fn its_aggregate(c: &mut Criterion) {
    let (first, steady) = batches();
    let points: usize = steady.iter().map(SnapshotBatch::value_count).sum();
    let mut aggregator = Aggregator::new(Keep::default(), 0);
    for batch in &first {
        aggregator.apply(batch);
    }
    aggregator.take(1, &[Temporality::Delta]);
    let mut group = c.benchmark_group("its_aggregate");
    group.throughput(Throughput::Elements(points as u64));
    let mut now = 2;
    group.bench_function("fold_and_take_delta", |b| {
        b.iter(|| {
            for batch in &steady {
                aggregator.apply(batch);
            }
            now += 1;
            aggregator.take(now, &[Temporality::Delta])
        });
    });
    // The fold alone: what one point costs before the interval is cut.
    group.bench_function("fold_only", |b| {
        b.iter(|| {
            for batch in &steady {
                aggregator.apply(batch);
            }
        });
    });
    group.finish();
    assert_eq!(aggregator.series_count(), SETS);
}

criterion_group!(benches, its_aggregate);
criterion_main!(benches);
