//! Declare a metric set, record on a core, report on a cadence, read the batches.
//!
//! `cargo run -p metric-schema --example quickstart`

use std::time::{Duration, Instant};

use metric_schema::snapshot::FieldValue;
use metric_schema::{AttributeEnum, Counter, Gauge, Histogram, attribute_set, metric_set};

/// What a node does; exported as `receiver`, `processor` or `exporter`.
#[derive(AttributeEnum, Clone, Copy)]
pub enum NodeKind {
    /// Brings data in.
    Receiver,
    /// Transforms data.
    Processor,
    /// Sends data out.
    Exporter,
}

/// Identity of a processor node.
#[attribute_set(name = "node.attrs")]
pub struct NodeAttrs {
    /// Node id from the pipeline config.
    #[attribute(key = "node.id")]
    pub node_id: String,
    /// What the node does.
    #[attribute(key = "node.kind")]
    pub node_kind: NodeKind,
}

/// Work done by a processor node.
#[metric_set(name = "node.processor")]
pub struct ProcessorMetrics {
    /// Items received from upstream.
    #[metric(unit = "{item}")]
    pub consumed_items: Counter<u64>,
    /// Items waiting in the node's buffer.
    #[metric(unit = "{item}")]
    pub queued_items: Gauge<u64>,
    /// Time spent processing one batch.
    #[metric(unit = "s")]
    pub batch_duration: Histogram,
}

fn main() {
    let registry = metric_schema::Registry::linked().expect("no conflicting metric sets");
    let (sender, receiver) = metric_schema::channel(16);

    let core = std::thread::spawn(move || {
        let reporter =
            metric_schema::Reporter::new(sender, 0, 0).with_interval(Duration::from_millis(100));
        let _installed = metric_schema::install(reporter).expect("one reporter per thread");
        let attrs = NodeAttrs {
            node_id: "batch-1".into(),
            node_kind: NodeKind::Processor,
        };
        let metrics = metric_schema::register::<ProcessorMetrics, _>(&attrs);
        let end = Instant::now() + Duration::from_millis(350);
        let mut batch = 0u64;
        while Instant::now() < end {
            let started = Instant::now();
            metrics.consumed_items.add(128);
            metrics.queued_items.set(batch % 7);
            metrics
                .batch_duration
                .record(started.elapsed().as_secs_f64());
            batch += 1;
            metric_schema::report_if_due();
        }
        // Dropping `_installed` reports one last time.
    });
    core.join().expect("the core thread");

    println!("{}", registry.to_semconv_yaml());
    let mut names = std::collections::HashMap::new();
    let mut consumed = 0u64;
    while let Some(batch) = receiver.try_recv() {
        for r in batch.registrations() {
            println!(
                "registered {} {:?} on core {}",
                r.descriptor.name, r.attribute_values, r.core
            );
            names.insert(r.set_id, r.descriptor);
        }
        for set in batch.sets() {
            for (field, value) in set.fields() {
                let name = names[&set.set_id].fields[usize::from(field)].name;
                match value {
                    FieldValue::U64(v) if name == "consumed_items" => consumed += v,
                    FieldValue::Histogram(h) => println!(
                        "{name}: {} batches, scale {}, max {:.2e} s",
                        h.count, h.scale, h.max
                    ),
                    _ => {}
                }
            }
        }
        receiver.recycle(batch);
    }
    println!("consumed_items: {consumed}");
}
