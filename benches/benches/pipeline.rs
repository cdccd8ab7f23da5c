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
use nodes::{EdgeSpec, EngineSettings, NodeSpec, PipelineSpec, ShutdownSignal, Topology};

fn spec(batches: u64) -> Arc<PipelineSpec> {
    let node = |id: &str, type_name: &str, config: serde_json::Value| NodeSpec {
        id: id.into(),
        type_name: type_name.into(),
        config,
    };
    let edge = |from, to| EdgeSpec {
        from,
        port: nodes::DEFAULT_PORT.into(),
        to,
    };
    Arc::new(PipelineSpec {
        group: "bench".into(),
        name: "chain".into(),
        nodes: vec![
            node(
                "gen",
                "receiver:traffic_generator",
                serde_json::json!({"batch_size": 1, "max_batches": batches}),
            ),
            node("debug", "processor:debug", serde_json::Value::Null),
            node("noop", "exporter:noop", serde_json::Value::Null),
        ],
        edges: vec![edge(0, 1), edge(1, 2)],
        channel_capacity: 128,
    })
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
