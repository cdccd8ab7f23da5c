//! Processors of the internal telemetry pipeline.
//!
//! - `processor:aggregate` ([`aggregate`]): merges the deltas of the same (metric set,
//!   attributes) across cores and over time; `keep: [core.id]` (or `numa.node`) keeps a
//!   per-core breakdown instead. Counters and histograms add, gauges keep the last
//!   value, observed totals become deltas. Each output port gets delta or cumulative
//!   intervals; cumulative series keep their start time and survive going idle.
//! - `processor:views` ([`views`]): rename, re-describe or drop metrics selected by set,
//!   metric and attribute values; drop attributes and aggregate again.
//! - [`model`]: the [`Interval`]s they emit, which exporters read.
//! - [`numa`]: the NUMA first stage, one pinned thread per node that relays only
//!   pre-aggregated batches across nodes.

pub mod aggregate;
pub mod model;
mod node;
pub mod numa;
pub mod views;

pub use aggregate::{AggregateConfig, Aggregator, Keep};
pub use model::{Interval, Series, Temporality, Value};
pub use node::interval_of;
