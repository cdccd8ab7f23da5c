//! A pipeline instance on a pinned core moves data and reports its own metrics.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use metric_schema::snapshot::FieldValue;
use nodes::{EdgeSpec, EngineSettings, NodeSpec, PipelineSpec, ShutdownSignal, Topology};

fn node(id: &str, type_name: &str, config: serde_json::Value) -> NodeSpec {
    NodeSpec {
        id: id.into(),
        type_name: type_name.into(),
        config,
    }
}

fn edge(from: usize, to: usize) -> EdgeSpec {
    EdgeSpec {
        from,
        port: nodes::DEFAULT_PORT.into(),
        to,
    }
}

/// Totals per (set name, node or channel label, field name) of every batch received.
#[derive(Default)]
struct Collector {
    registrations:
        HashMap<metric_schema::SetId, (&'static metric_schema::MetricsDescriptor, String)>,
    totals: HashMap<(String, String, String), u64>,
}

impl Collector {
    fn apply(&mut self, batch: &metric_schema::SnapshotBatch) {
        for r in batch.registrations() {
            // Node sets carry the node id third; channel sets the sending node third.
            let label = r
                .attribute_values
                .get(2)
                .map(ToString::to_string)
                .unwrap_or_default();
            self.registrations.insert(r.set_id, (r.descriptor, label));
        }
        for set in batch.sets() {
            let (descriptor, label) = &self.registrations[&set.set_id];
            for (field, value) in set.fields() {
                if let FieldValue::U64(v) = value {
                    let key = (
                        descriptor.name.to_string(),
                        label.clone(),
                        descriptor.fields[usize::from(field)].name.to_string(),
                    );
                    *self.totals.entry(key).or_default() += v;
                }
            }
        }
    }

    fn get(&self, set: &str, label: &str, field: &str) -> u64 {
        self.totals
            .get(&(set.to_string(), label.to_string(), field.to_string()))
            .copied()
            .unwrap_or(0)
    }
}

#[test]
fn generator_debug_noop_moves_every_batch_and_counts_it() {
    let spec = Arc::new(PipelineSpec {
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
        edges: vec![edge(0, 1), edge(1, 2), edge(2, 3)],
        channel_capacity: 4,
    });
    let topology = Topology::detect().unwrap();
    let placement = topology.placement(topology.cores()[0]).unwrap();
    let (sender, receiver) = metric_schema::channel(1024);
    let shutdown = Arc::new(ShutdownSignal::default());
    let settings = EngineSettings {
        reporting_interval: Duration::from_millis(20),
        ..EngineSettings::default()
    };
    let instance = nodes::spawn_instance(
        spec,
        placement,
        Some(sender),
        settings,
        Arc::clone(&shutdown),
    )
    .unwrap();
    // The generator stops by itself after 500 batches: the graph drains and the
    // instance ends without a shutdown request.
    let summary = instance.join().unwrap();
    assert!(!shutdown.is_triggered());
    assert!(
        summary.node_failures.is_empty(),
        "{:?}",
        summary.node_failures
    );
    let mut collector = Collector::default();
    while let Some(batch) = receiver.try_recv() {
        collector.apply(&batch);
    }
    let get = |set: &str, label: &str, field: &str| collector.get(set, label, field);
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
    let spec = Arc::new(PipelineSpec {
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
        edges: vec![edge(0, 1), edge(1, 2)],
        channel_capacity: 8,
    });
    let topology = Topology::detect().unwrap();
    let placement = topology.placement(topology.cores()[0]).unwrap();
    let (sender, receiver) = metric_schema::channel(1024);
    let shutdown = Arc::new(ShutdownSignal::default());
    let settings = EngineSettings {
        reporting_interval: Duration::from_millis(10),
        ..EngineSettings::default()
    };
    let instance = nodes::spawn_instance(
        spec,
        placement,
        Some(sender),
        settings,
        Arc::clone(&shutdown),
    )
    .unwrap();
    // Wait for the first report that shows traffic, then ask for a shutdown.
    let mut collector = Collector::default();
    while collector.get("engine.node", "out", "consumed_items") == 0 {
        let batch = receiver
            .recv_timeout(Duration::from_secs(30))
            .expect("the instance reports traffic");
        collector.apply(&batch);
    }
    shutdown.trigger();
    let summary = instance.join().unwrap();
    assert!(
        summary.node_failures.is_empty(),
        "{:?}",
        summary.node_failures
    );
    while let Some(batch) = receiver.try_recv() {
        collector.apply(&batch);
    }
    let produced = collector.get("engine.node", "gen", "produced_items");
    assert!(produced > 0);
    assert_eq!(
        collector.get("engine.node", "debug", "consumed_items"),
        produced
    );
    assert_eq!(
        collector.get("engine.node", "out", "consumed_items"),
        produced
    );
}
