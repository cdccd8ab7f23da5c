//! Per-core, allocation-free, multivariate metrics for thread-per-core engines.
//!
//! # Overview
//!
//! A *metric set* is a plain struct of instruments that one core owns. Recording is an
//! ordinary load, add and store: no atomics, no locks, no hashing, no allocation.
//! Attributes (the identity of what the set describes) are bound once, when the set is
//! registered. On a cadence, the core's [`Reporter`] copies only the fields that changed
//! into a sparse [`SnapshotBatch`], resets them, and hands the batch to a bounded queue
//! towards the consumer (the Internal Telemetry System). A full queue never blocks the
//! core and never loses a value: the values wait for the next report.
//!
//! # Concepts
//!
//! - [`macro@metric_set`] turns a struct into a [`MetricSet`] with a `'static`
//!   [`MetricsDescriptor`]: names, units (UCUM), instrument kinds and briefs (from doc
//!   comments), validated at compile time.
//! - [`macro@attribute_set`] and [`derive@AttributeEnum`] describe the attributes bound
//!   to a set.
//! - Instruments: [`Counter`], [`UpDownCounter`], [`Gauge`], [`ObserveCounter`],
//!   [`ObserveUpDownCounter`], [`Mmsc`] and the exponential [`Histogram`].
//! - [`Reporter`] (one per core), [`channel`] (the bounded queue), [`SnapshotBatch`]
//!   (what crosses it) and [`Registry`] (every descriptor linked into the binary).
//!
//! # Quick start
//!
//! ```
//! use metric_schema::{attribute_set, metric_set, AttributeEnum, Counter, Gauge, Histogram};
//!
//! #[derive(AttributeEnum)]
//! pub enum NodeKind { Receiver, Processor, Exporter }
//!
//! /// Identity of a processor node.
//! #[attribute_set(name = "node.attrs")]
//! pub struct NodeAttrs {
//!     /// Node id from the pipeline config.
//!     #[attribute(key = "node.id")]
//!     pub node_id: String,
//!     /// What the node does.
//!     #[attribute(key = "node.kind")]
//!     pub node_kind: NodeKind,
//! }
//!
//! /// Work done by a processor node.
//! #[metric_set(name = "node.processor")]
//! pub struct ProcessorMetrics {
//!     /// Items received from upstream.
//!     #[metric(unit = "{item}")]
//!     pub consumed_items: Counter<u64>,
//!     /// Items waiting in the node's buffer.
//!     #[metric(unit = "{item}")]
//!     pub queued_items: Gauge<u64>,
//!     /// Time spent processing one batch.
//!     #[metric(unit = "s", max_buckets = 64)]
//!     pub batch_duration: Histogram,
//! }
//!
//! // Once per process: the queue; once per core: a reporter.
//! let (sender, receiver) = metric_schema::channel(64);
//! let mut reporter = metric_schema::Reporter::new(sender, /* core */ 0, /* numa node */ 0);
//!
//! // Once per set, on its core: bind the attributes, get a handle.
//! let attrs = NodeAttrs { node_id: "batch-1".into(), node_kind: NodeKind::Processor };
//! let metrics = reporter.register::<ProcessorMetrics, _>(&attrs);
//!
//! // The hot path: plain stores.
//! metrics.consumed_items.add(128);
//! metrics.queued_items.set(3);
//! metrics.batch_duration.record(0.000_25);
//!
//! // On a cadence: a sparse snapshot of what changed, reset, sent without blocking.
//! reporter.report();
//! let batch = receiver.try_recv().expect("one batch");
//! assert_eq!(batch.registrations()[0].descriptor.name, "node.processor");
//! assert_eq!(batch.value_count(), 3);
//! receiver.recycle(batch); // buffers go back to the reporters
//! ```

extern crate self as metric_schema;

mod attributes;
mod descriptor;
mod instrument;
mod metric_set;
mod registry;
pub mod reporter;
pub mod snapshot;

pub use attributes::{AttributeEnum, AttributeSet, AttributeValue, IntoAttributeValue};
pub use descriptor::{
    AttributeField, AttributeType, AttributesDescriptor, InstrumentKind, MetricsDescriptor,
    MetricsField, Stability, Temporality, ValueType,
};
pub use instrument::{
    Counter, DEFAULT_MAX_BUCKETS, Gauge, Histogram, Instrument, MAX_SCALE, MIN_SCALE, Mmsc,
    MonotonicNumber, Number, ObserveCounter, ObserveUpDownCounter, SignedNumber, UpDownCounter,
};
pub use metric_schema_macros::{AttributeEnum, attribute_set, metric_set};
pub use metric_set::{DynMetricSet, MetricSet};
pub use registry::{Registry, RegistryError};
pub use reporter::{
    AlreadyInstalled, InstalledReporter, MetricSetHandle, Recycler, RegisterError, ReportOutcome,
    Reporter, ReporterMetrics, ReporterStats, SnapshotReceiver, SnapshotSender, channel,
    detached_sets, install, lost_values, register, report, report_if_due, try_register,
};
pub use snapshot::{FieldValue, SetId, SnapshotBatch};

/// The only contract between generated code and this crate. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::descriptor::*;
    pub use crate::{AttributeEnum, AttributeSet, AttributeValue, IntoAttributeValue};
    pub use crate::{Instrument, MetricSet, SnapshotWriter};
    pub use ::core::default::Default;
    pub use ::core::marker::Sized;
    pub use ::core::option::Option;
    pub use ::std::vec::Vec;
    pub use linkme;

    /// Every metric set linked into the binary.
    #[linkme::distributed_slice]
    pub static METRIC_SETS: [&'static MetricsDescriptor];

    /// Every attribute set linked into the binary.
    #[linkme::distributed_slice]
    pub static ATTRIBUTE_SETS: [&'static AttributesDescriptor];
}

pub use snapshot::SnapshotWriter;
