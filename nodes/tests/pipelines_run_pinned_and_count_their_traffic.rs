//! A pipeline instance on a pinned core moves data and reports its own metrics.

mod common;

use std::time::Duration;

use common::{Collector, edge, node, start_on_first_core};
use nodes::{DEFAULT_PORT, PipelineSpec};

#[test]
fn generator_debug_noop_moves_every_batch_and_counts_it() {
    let spec = PipelineSpec {
        group: "default".into(),
        name: "main".into(),
        nodes: vec![
            node(
                "gen",
                "receiver:traffic_generator",
                serde_json::json!({"batch_size": 10, "max_batches": 500}),
            ),
            node(
                "batch",
                "processor:batch",
                serde_json::json!({"max_items": 1000, "timeout": "10ms"}),
            ),
            node("debug", "processor:debug", serde_json::Value::Null),
            node("out", "exporter:noop", serde_json::Value::Null),
        ],
        edges: vec![
            edge(0, DEFAULT_PORT, 1),
            edge(1, DEFAULT_PORT, 2),
            edge(2, DEFAULT_PORT, 3),
        ],
        channel_capacity: 4,
    };
    let started = start_on_first_core(spec, Duration::from_millis(20));
    // The generator stops by itself after 500 batches: the graph drains and the
    // instance ends without a shutdown request.
    let summary = started.instance.join().unwrap();
    assert!(!started.shutdown.is_triggered());
    assert!(
        summary.node_failures.is_empty(),
        "{:?}",
        summary.node_failures
    );
    let mut metrics = Collector::default();
    metrics.drain(&started.receiver);
    let get = |set: &str, label: &str, field: &str| metrics.get(set, label, field);
    assert_eq!(get("engine.node", "gen", "produced_messages"), 500);
    assert_eq!(get("engine.node", "gen", "produced_items"), 5000);
    assert_eq!(get("engine.node", "batch", "consumed_items"), 5000);
    assert_eq!(get("engine.node", "batch", "produced_items"), 5000);
    assert!(
        get("engine.node", "batch", "produced_messages") < 500,
        "batching merged messages"
    );
    assert_eq!(get("engine.node", "out", "consumed_items"), 5000);
    assert_eq!(get("engine.node", "debug", "failed_messages"), 0);
    assert_eq!(get("engine.channel", "gen", "sent_messages"), 500);
}

#[test]
fn a_shutdown_stops_the_receiver_first_and_drains_every_queue() {
    let spec = PipelineSpec {
        group: "default".into(),
        name: "endless".into(),
        nodes: vec![
            node(
                "gen",
                "receiver:traffic_generator",
                serde_json::json!({"batch_size": 3}),
            ),
            node("debug", "processor:debug", serde_json::Value::Null),
            node("out", "exporter:noop", serde_json::Value::Null),
        ],
        edges: vec![edge(0, DEFAULT_PORT, 1), edge(1, DEFAULT_PORT, 2)],
        channel_capacity: 8,
    };
    let started = start_on_first_core(spec, Duration::from_millis(10));
    // Wait for the first report that shows traffic, then ask for a shutdown.
    let mut metrics = Collector::default();
    while metrics.get("engine.node", "out", "consumed_items") == 0 {
        let batch = started
            .receiver
            .recv_timeout(Duration::from_secs(30))
            .expect("the instance reports traffic");
        metrics.apply(&batch);
    }
    started.shutdown.trigger();
    let summary = started.instance.join().unwrap();
    assert!(
        summary.node_failures.is_empty(),
        "{:?}",
        summary.node_failures
    );
    metrics.drain(&started.receiver);
    let produced = metrics.get("engine.node", "gen", "produced_items");
    assert!(produced > 0);
    assert_eq!(
        metrics.get("engine.node", "debug", "consumed_items"),
        produced
    );
    assert_eq!(
        metrics.get("engine.node", "out", "consumed_items"),
        produced
    );
}
