//! `exporter:otap`: ITS intervals as OTAP Arrow metrics.
//!
//! - [`encode()`](encode::encode) (module [`encode`](mod@encode)): the sans-I/O
//!   encoder from an aggregated interval to the normalized OTAP metrics tables (delta
//!   and quasi-delta ids, sorted rows); [`encode_parts`] splits an
//!   interval bigger than one batch's u16 metric ids address, or than a receiver's
//!   message size limit.
//! - [`Producer`]: one Arrow IPC stream per payload type (zstd bodies, dictionaries,
//!   schema ids from one counter, schema resets, no end-of-stream marker) into
//!   `BatchArrowRecords`.
//! - [`transport`]: the gRPC `ArrowMetrics` client (tonic) on a thread of its own:
//!   batch ids, statuses matched by id, a bounded window, reconnects with fresh
//!   producer state, retries with backoff, every failure counted.
//! - [`proto`]: the OTAP messages, with prost's derive (no `protoc`).
//! - `exporter:otap`: the node, to a gRPC `endpoint` or to a `file` of
//!   length-delimited `BatchArrowRecords`.

mod dictionary;
pub mod encode;
mod node;
pub mod producer;
pub mod proto;
pub mod transport;

pub use encode::{
    BATCH_RESERVE, BatchLimits, EncodeError, MAX_ROWS_PER_BATCH, MetricsTables, PayloadType,
    encode, encode_parts, estimated_size, series_key,
};
pub use node::{Compression, Headers, OtapAttrs, OtapConfig, OtapMetrics};
pub use producer::{IpcCompression, Producer, ProducerOptions};
pub use transport::{GrpcCompression, LogSink, TransportHandle, TransportSettings, TransportStats};
