//! OTAP encoding: from an aggregated interval to one `BatchArrowRecords` (tables built,
//! ids encoded, IPC streams written with zstd), in data points per second on one core,
//! and the bytes per point on the wire in steady state (after a stream's first batch).
//!
//! The interval: 8 cores x 64 sets x 32 counters folded into 64 series of 32 points.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use its_exporter_otap::{IpcCompression, Producer, encode};
use its_processors::{Aggregator, Interval, Keep, Temporality};
use metric_schema::{AttributeValue, Reporter};
use prost::Message as _;

use benches::WideSet;

/// Which set.
#[metric_schema::attribute_set(name = "bench.otap")]
struct SetIndex {
    /// Set number.
    #[attribute(key = "bench.set.index")]
    index: u32,
}

fn interval() -> Interval {
    let (sender, receiver) = metric_schema::channel(64);
    let mut reporters = Vec::new();
    let mut aggregator = Aggregator::new(Keep::default(), 0);
    for core in 0..8 {
        let mut reporter = Reporter::new(sender.clone(), core, 0);
        let sets: Vec<_> = (0..64)
            .map(|i| reporter.register::<WideSet, _>(&SetIndex { index: i }))
            .collect();
        for set in &sets {
            set.dirty(32);
        }
        reporter.report();
        while let Some(batch) = receiver.try_recv() {
            aggregator.apply(&batch);
        }
        reporters.push((reporter, sets));
    }
    aggregator.take(1_000_000, &[Temporality::Delta]).remove(0)
}

fn otap_encode(c: &mut Criterion) {
    let interval = interval();
    let points = interval.point_count() as u64;
    let resource = [(
        "service.name".to_string(),
        AttributeValue::Str("its".into()),
    )];
    let mut producer = Producer::new(IpcCompression::Zstd);
    // The first batch of each stream carries the schemas.
    let first = producer
        .produce(&encode(&interval, &resource).expect("encodes"))
        .expect("produces");
    let steady = producer
        .produce(&encode(&interval, &resource).expect("encodes"))
        .expect("produces");
    eprintln!(
        "otap wire size: {} points, first batch {} bytes, steady state {} bytes ({:.2} bytes/point)",
        points,
        first.encoded_len(),
        steady.encoded_len(),
        steady.encoded_len() as f64 / points as f64
    );
    let mut group = c.benchmark_group("otap_encode");
    group.throughput(Throughput::Elements(points));
    group.bench_function("encode_and_produce_zstd", |b| {
        b.iter(|| {
            let tables = encode(&interval, &resource).expect("encodes");
            producer.produce(&tables).expect("produces")
        });
    });
    let mut plain = Producer::new(IpcCompression::None);
    group.bench_function("encode_and_produce_uncompressed", |b| {
        b.iter(|| {
            let tables = encode(&interval, &resource).expect("encodes");
            plain.produce(&tables).expect("produces")
        });
    });
    group.bench_function("encode_only", |b| {
        b.iter(|| encode(&interval, &resource).expect("encodes"));
    });
    group.finish();
}

criterion_group!(benches, otap_encode);
criterion_main!(benches);
