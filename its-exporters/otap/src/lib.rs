//! `exporter:otap` (in progress): ITS intervals as OTAP Arrow metrics.
//!
//! Today: [`encode()`](encode::encode) (module [`encode`](mod@encode)), the sans-I/O encoder from an aggregated interval to the
//! normalized OTAP metrics tables (no dictionaries, delta and quasi-delta ids, sorted
//! rows). Next: one Arrow IPC stream per payload type with zstd bodies and schema ids
//! from one counter, `BatchArrowRecords` over the gRPC `ArrowMetricsService` stream and
//! to a file, and the independent pyarrow check (see the open issue).

pub mod encode;

pub use encode::{EncodeError, MetricsTables, PayloadType, encode};
