//! Shared helpers of the engine's integration tests: building specs, starting an
//! instance on the first core, and folding the engine's own metrics.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use metric_schema::snapshot::FieldValue;
use metric_schema::{MetricsDescriptor, SetId, SnapshotBatch, SnapshotReceiver};
use nodes::{
    EdgeSpec, EngineSettings, InstanceHandle, NodeSpec, PipelineSpec, ShutdownSignal, Topology,
};

pub fn node(id: &str, type_name: &str, config: serde_json::Value) -> NodeSpec {
    NodeSpec::new(id, type_name, config)
}

pub fn edge(from: usize, port: &str, to: usize) -> EdgeSpec {
    EdgeSpec {
        from,
        port: port.into(),
        to,
    }
}

/// An instance running on the machine's first core, reporting into `receiver`.
pub struct Started {
    pub instance: InstanceHandle,
    pub receiver: SnapshotReceiver,
    pub shutdown: Arc<ShutdownSignal>,
}

pub fn start_on_first_core(spec: PipelineSpec, reporting_interval: Duration) -> Started {
    let topology = Topology::detect().unwrap();
    let placement = topology.placement(topology.cores()[0]).unwrap();
    let (sender, receiver) = metric_schema::channel(1024);
    let shutdown = Arc::new(ShutdownSignal::default());
    let settings = EngineSettings {
        reporting_interval,
        ..EngineSettings::default()
    };
    let instance = nodes::spawn_instance(
        Arc::new(spec),
        placement,
        Some(sender),
        settings,
        Arc::clone(&shutdown),
    )
    .unwrap();
    Started {
        instance,
        receiver,
        shutdown,
    }
}

/// Totals per (set name, third attribute, field name) of every batch received: for
/// node sets the third attribute is the node id, for channel sets the sending node.
#[derive(Default)]
pub struct Collector {
    registrations: HashMap<SetId, (&'static MetricsDescriptor, String)>,
    totals: HashMap<(String, String, String), u64>,
}

impl Collector {
    pub fn apply(&mut self, batch: &SnapshotBatch) {
        for r in batch.registrations() {
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

    /// Applies every batch waiting in `receiver`.
    pub fn drain(&mut self, receiver: &SnapshotReceiver) {
        while let Some(batch) = receiver.try_recv() {
            self.apply(&batch);
            receiver.recycle(batch);
        }
    }

    pub fn get(&self, set: &str, label: &str, field: &str) -> u64 {
        self.totals
            .get(&(set.to_string(), label.to_string(), field.to_string()))
            .copied()
            .unwrap_or(0)
    }
}
