//! `exporter:otap` (in progress): ITS intervals as OTAP Arrow metrics.
//!
//! - [`encode()`](encode::encode) (module [`encode`](mod@encode)): the sans-I/O
//!   encoder from an aggregated interval to the normalized OTAP metrics tables (no
//!   dictionaries, delta and quasi-delta ids, sorted rows).
//! - [`Producer`]: one Arrow IPC stream per payload type (zstd bodies, schema ids from
//!   one counter, schema resets, no end-of-stream marker) into `BatchArrowRecords`.
//! - [`proto`]: the OTAP messages, with prost's derive (no `protoc`).
//!
//! - `exporter:otap`: writes the stream to `file:` (length-delimited
//!   `BatchArrowRecords`). Next: the gRPC transport (see the open issue).

pub mod encode;
mod node;
pub mod producer;
pub mod proto;

pub use encode::{EncodeError, MetricsTables, PayloadType, encode};
pub use node::{Compression, OtapConfig};
pub use producer::{IpcCompression, Producer};
