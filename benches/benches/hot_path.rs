//! Cost of one measurement on the owning core, side by side with the plain-`u64` limit
//! and with the libraries a user would otherwise pick (each recording into an instrument
//! obtained once, outside the loop, as their docs recommend).
//!
//! Every routine goes through `black_box(&instrument)` so that the compiler cannot fold
//! the loop into one add: each iteration is a real load, add and store.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use benches::{HotSet, sample_durations};
use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;

/// The limit: a `u64 +=` on an owned, cache-aligned struct.
#[repr(align(64))]
#[derive(Default)]
struct Plain {
    value: u64,
}

fn hot_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("hot_path");
    let durations: [f64; 1024] = sample_durations()
        .try_into()
        .expect("sample_durations returns 1024 values");

    let mut plain = Plain::default();
    let plain = &mut plain;
    group.bench_function("plain_u64", |b| {
        b.iter(|| black_box(&mut *plain).value += 1);
    });

    let (sender, _receiver) = metric_schema::channel(4);
    let mut reporter = metric_schema::Reporter::new(sender, 0, 0);
    let handle = reporter.register::<HotSet, _>(&());
    // Record through a plain reference, as a hot loop does once the compiler has hoisted
    // the handle's dereference (the same shape as `plain_u64` above).
    let set: &HotSet = &handle;
    group.bench_function("counter_add", |b| b.iter(|| black_box(set).counter.add(1)));
    let mut i = 0u64;
    group.bench_function("gauge_set", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            black_box(set).gauge.set(i);
        });
    });
    let mut j = 0usize;
    group.bench_function("histogram_record", |b| {
        b.iter(|| {
            j = (j + 1) & 1023;
            black_box(set).histogram.record(durations[j]);
        });
    });
    group.bench_function("mmsc_record", |b| {
        b.iter(|| {
            j = (j + 1) & 1023;
            black_box(set).mmsc.record(durations[j]);
        });
    });

    // OpenTelemetry SDK with a reader attached, so that measurements are aggregated.
    let reader = opentelemetry_sdk::metrics::ManualReader::builder().build();
    let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_reader(reader)
        .build();
    let meter = provider.meter("bench");
    let otel_counter = meter.u64_counter("items").build();
    group.bench_function("opentelemetry_sdk_0_attrs", |b| {
        b.iter(|| black_box(&otel_counter).add(1, &[]));
    });
    let attrs = [
        KeyValue::new("node.id", "batch-1"),
        KeyValue::new("node.kind", "processor"),
        KeyValue::new("pipeline", "main"),
    ];
    group.bench_function("opentelemetry_sdk_3_attrs", |b| {
        b.iter(|| black_box(&otel_counter).add(1, black_box(&attrs)));
    });

    // metrics-rs: the handle its registry-backed recorders hand out (an atomic behind an
    // `Arc<dyn CounterFn>`), obtained once.
    let metrics_counter = metrics::Counter::from_arc(Arc::new(AtomicU64::new(0)));
    group.bench_function("metrics_rs_handle", |b| {
        b.iter(|| black_box(&metrics_counter).increment(1));
    });

    let prom_counter = prometheus::IntCounter::new("items", "items").expect("valid name");
    group.bench_function("prometheus_int_counter", |b| {
        b.iter(|| black_box(&prom_counter).inc());
    });

    let pc_counter = prometheus_client::metrics::counter::Counter::<u64>::default();
    group.bench_function("prometheus_client_counter", |b| {
        b.iter(|| black_box(&pc_counter).inc());
    });

    group.finish();
    drop(provider);
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
