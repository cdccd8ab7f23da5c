//! Messages per second through `receiver:traffic_generator -> processor:debug ->
//! exporter:noop` on one pinned core, with the engine's own telemetry on and off.
//!
//! Each sample runs one pipeline instance that generates exactly as many batches as
//! criterion asks for, then drains and ends; the time is from the start of the instance
//! to its end (thread start-up and shutdown included, a fixed cost of well under a
//! millisecond, spread over hundreds of thousands of messages per sample). With
//! telemetry on, a consumer thread drains the metric snapshots as the ITS would.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nodes::{EngineSettings, NodeSpec, PipelineSpec, ShutdownSignal, Topology};

fn spec(batches: u64) -> Arc<PipelineSpec> {
    Arc::new(PipelineSpec::chain(
        "bench",
        "chain",
        128,
        vec![
            NodeSpec::new(
                "gen",
                "receiver:traffic_generator",
                serde_json::json!({"batch_size": 1, "max_batches": batches}),
            ),
            NodeSpec::new("debug", "processor:debug", serde_json::Value::Null),
            NodeSpec::new("noop", "exporter:noop", serde_json::Value::Null),
        ],
    ))
}

fn run_once(batches: u64, telemetry: bool) -> Duration {
    let topology = Topology::detect().expect("a topology");
    let placement = topology.placement(topology.cores()[0]).expect("core 0");
    let settings = EngineSettings {
        reporting_interval: Duration::from_millis(100),
        telemetry,
        ..EngineSettings::default()
    };
    let (sender, receiver) = metric_schema::channel(64);
    let drain = std::thread::spawn(move || {
        while let Some(batch) = receiver.recv() {
            receiver.recycle(batch);
        }
    });
    let start = Instant::now();
    let instance = nodes::spawn_instance(
        spec(batches),
        placement,
        Some(sender),
        settings,
        Arc::new(ShutdownSignal::default()),
    )
    .expect("the instance starts");
    let summary = instance.join().expect("the instance ends");
    let elapsed = start.elapsed();
    assert!(
        summary.node_failures.is_empty(),
        "{:?}",
        summary.node_failures
    );
    drain.join().expect("the drain thread");
    elapsed
}

fn pipeline(c: &mut Criterion) {
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(1));
    group.bench_function("telemetry_off", |b| {
        b.iter_custom(|iters| run_once(iters, false));
    });
    group.bench_function("telemetry_on", |b| {
        b.iter_custom(|iters| run_once(iters, true));
    });
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
