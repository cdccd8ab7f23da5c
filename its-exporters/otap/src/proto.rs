//! The OTAP gRPC messages (`opentelemetry.proto.experimental.arrow.v1`), written out
//! with prost's derive so that no `protoc` is needed at build time.

/// A batch of Arrow IPC payloads, one per payload type at most.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BatchArrowRecords {
    /// 0, 1, 2, … within one gRPC stream.
    #[prost(int64, tag = "1")]
    pub batch_id: i64,
    /// The payloads.
    #[prost(message, repeated, tag = "2")]
    pub arrow_payloads: Vec<ArrowPayload>,
    /// HPACK-encoded headers (left empty).
    #[prost(bytes = "vec", tag = "3")]
    pub headers: Vec<u8>,
}

/// The next slice of one payload type's Arrow IPC stream.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ArrowPayload {
    /// Identifies the IPC stream, unique across payload types in a gRPC stream.
    #[prost(string, tag = "1")]
    pub schema_id: String,
    /// `ArrowPayloadType`.
    #[prost(int32, tag = "2")]
    pub r#type: i32,
    /// Encapsulated Arrow IPC messages.
    #[prost(bytes = "vec", tag = "3")]
    pub record: Vec<u8>,
}

/// The receiver's answer to one batch.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BatchStatus {
    /// The batch answered.
    #[prost(int64, tag = "1")]
    pub batch_id: i64,
    /// gRPC status code numbers (0 is OK).
    #[prost(int32, tag = "2")]
    pub status_code: i32,
    /// Free text.
    #[prost(string, tag = "3")]
    pub status_message: String,
}
