//! The `exporter:otap` node: intervals become OTAP metrics tables on the ITS thread,
//! then either a gRPC `ArrowMetrics` stream (the transport thread) or a file of
//! length-delimited `BatchArrowRecords`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use its_processors::Interval;
use nodes::{
    ControlMsg, EffectHandler, Exporter, Message, NodeConfig, NodeContext, NodeError, NodeFactory,
    NodeKind, NodeTask,
};
use prost::Message as _;
use serde::Deserialize;

use crate::encode::{BatchLimits, MAX_ROWS_PER_BATCH, MetricsTables, encode_parts};
use crate::producer::{IpcCompression, Producer, ProducerOptions};
use crate::transport::{GrpcCompression, TransportHandle, TransportSettings, TransportStats};

/// IPC body compression in the configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// zstd exactly when the gRPC messages go uncompressed (default; in `file:` mode,
    /// zstd).
    #[default]
    Auto,
    /// zstd.
    Zstd,
    /// None.
    None,
}

/// Configuration of `exporter:otap`. Give `endpoint` or `file`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtapConfig {
    /// gRPC endpoint, `http://HOST:PORT` or `https://HOST:PORT`.
    pub endpoint: Option<String>,
    /// Write `BatchArrowRecords` messages to this file instead, each prefixed with its
    /// length as a protobuf varint.
    pub file: Option<PathBuf>,
    /// Arrow IPC body compression: `auto` (default: zstd when the messages are not
    /// compressed), `zstd` or `none`.
    pub compression: Compression,
    /// gRPC message compression: `auto` (default: zstd, then gzip, then none, as the
    /// receiver refuses each), `none`, `gzip` or `zstd`.
    pub grpc_compression: GrpcCompression,
    /// PEM certificate authority for an `https` endpoint (the web PKI roots otherwise).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for receivers that require one (mutual TLS); with
    /// `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Batches sent and not yet answered, at most.
    pub max_in_flight: usize,
    /// Intervals waiting for the transport, at most; beyond, the oldest is dropped.
    pub queue_capacity: usize,
    /// Failures charged to a batch before it is dropped, at most: a refusal of it, or
    /// a stream that broke with it the oldest unanswered batch.
    pub max_retries: u32,
    /// First wait before reconnecting (doubles on each failure).
    #[serde(deserialize_with = "nodes::duration::deserialize")]
    pub initial_backoff: Duration,
    /// Longest wait before reconnecting.
    #[serde(deserialize_with = "nodes::duration::deserialize")]
    pub max_backoff: Duration,
    /// How long a batch may stay unanswered before the stream is given up.
    #[serde(deserialize_with = "nodes::duration::deserialize")]
    pub ack_timeout: Duration,
    /// How long connecting may take.
    #[serde(deserialize_with = "nodes::duration::deserialize")]
    pub connect_timeout: Duration,
    /// How long one gRPC stream is used before a fresh one (with fresh dictionaries)
    /// takes over; its batches are answered first, and nothing is counted as a failure.
    #[serde(deserialize_with = "nodes::duration::deserialize")]
    pub max_stream_lifetime: Duration,
    /// Values a UInt8-keyed dictionary column (metric names, units, descriptions, scope
    /// names) holds before it moves to UInt16 keys, which is a schema reset: 1 to 256
    /// (the default, all a UInt8 key addresses). The test command lowers it to put a
    /// reset in the middle of a live stream.
    pub u8_dictionary_limit: usize,
    /// Points per `BatchArrowRecords`, at most (1 to 65536, OTAP's u16 metric ids);
    /// a bigger interval goes out as several batches. The default, 16384, keeps a batch
    /// like the bench's (counters, gauges, a few histograms: 82 bytes a point before
    /// compression, 9 after) at about 1.3 MiB uncompressed.
    pub max_batch_points: usize,
    /// Bytes per `BatchArrowRecords` before compression, at most, as the encoder
    /// reckons them (above the real size: by a few percent for histograms with many
    /// buckets, about twice for counters with short names): a bigger interval goes
    /// out as several batches, split between series. The default, 3 MiB,
    /// stays under the 4 MiB gRPC servers take by default, where exponential
    /// histograms (up to 640 bucket counts each) make points big; raise it with the
    /// receiver's limit. 65536 to 1 GiB.
    pub max_batch_bytes: usize,
    /// gRPC headers sent when each stream opens, such as `authorization` or an API key.
    /// `${env:NAME}` in a value is replaced by that environment variable, so that
    /// secrets stay out of the file.
    pub headers: Headers,
}

/// Header names and values from the configuration. `Debug` shows the names only, so
/// that a token written in the file never reaches a log.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Headers(pub std::collections::BTreeMap<String, String>);

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl Default for OtapConfig {
    fn default() -> Self {
        let t = TransportSettings::default();
        OtapConfig {
            endpoint: None,
            file: None,
            compression: Compression::Auto,
            grpc_compression: GrpcCompression::Auto,
            ca_file: None,
            cert_file: None,
            key_file: None,
            max_in_flight: t.max_in_flight,
            queue_capacity: t.queue_capacity,
            max_retries: t.max_retries,
            initial_backoff: t.initial_backoff,
            max_backoff: t.max_backoff,
            ack_timeout: t.ack_timeout,
            connect_timeout: t.connect_timeout,
            max_stream_lifetime: t.max_stream_lifetime,
            u8_dictionary_limit: t.producer.u8_dictionary_limit,
            max_batch_points: 16_384,
            max_batch_bytes: 3 << 20,
            headers: Headers::default(),
        }
    }
}

impl NodeConfig for OtapConfig {
    fn check(&self) -> Result<(), String> {
        match (&self.file, &self.endpoint) {
            (Some(_), None) => {
                if self.ca_file.is_some() || self.cert_file.is_some() || self.key_file.is_some() {
                    return Err(
                        "`ca_file`, `cert_file` and `key_file` are for a gRPC `endpoint`, not a `file`"
                            .into(),
                    );
                }
            }
            (None, Some(endpoint)) => {
                if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                    return Err(format!(
                        "`endpoint: {endpoint}`: give `http://HOST:PORT` or `https://HOST:PORT`"
                    ));
                }
                if let Err(e) = endpoint.parse::<http::Uri>() {
                    return Err(format!("`endpoint: {endpoint}`: {e}"));
                }
                let tls = [
                    ("ca_file", self.ca_file.is_some()),
                    ("cert_file", self.cert_file.is_some()),
                    ("key_file", self.key_file.is_some()),
                ];
                if let Some((name, _)) = tls.iter().find(|(_, given)| *given)
                    && !endpoint.starts_with("https://")
                {
                    return Err(format!("`{name}` is for `https` endpoints"));
                }
                if self.cert_file.is_some() != self.key_file.is_some() {
                    return Err(
                        "give `cert_file` and `key_file` together (the client certificate and its key)"
                            .into(),
                    );
                }
            }
            (Some(_), Some(_)) => return Err("give `file` or `endpoint`, not both".into()),
            (None, None) => {
                return Err(
                    "missing `endpoint: http://HOST:PORT` (or `file: PATH` to write the stream to a file)"
                        .into(),
                );
            }
        }
        for (name, value, max, why) in [
            ("max_in_flight", self.max_in_flight, 1024, ""),
            ("u8_dictionary_limit", self.u8_dictionary_limit, 256, ""),
            (
                "max_batch_points",
                self.max_batch_points,
                MAX_ROWS_PER_BATCH,
                " (OTAP's u16 metric ids)",
            ),
            ("queue_capacity", self.queue_capacity, 65536, ""),
        ] {
            if !(1..=max).contains(&value) {
                return Err(format!("`{name}: {value}`: give 1 to {max}{why}"));
            }
        }
        if !(65_536..=1 << 30).contains(&self.max_batch_bytes) {
            return Err(format!(
                "`max_batch_bytes: {}`: give 65536 (64 KiB) to 1073741824 (1 GiB); a receiver's message size limit is usually 4 MiB",
                self.max_batch_bytes
            ));
        }
        for (name, value) in [
            ("initial_backoff", self.initial_backoff),
            ("max_backoff", self.max_backoff),
            ("ack_timeout", self.ack_timeout),
            ("connect_timeout", self.connect_timeout),
            ("max_stream_lifetime", self.max_stream_lifetime),
        ] {
            if value.is_zero() {
                return Err(format!("`{name}` must be longer than zero"));
            }
        }
        if !self.headers.0.is_empty() {
            if self.file.is_some() {
                return Err("`headers` are for a gRPC `endpoint`, not a `file`".into());
            }
            crate::transport::metadata(&self.headers()?)?;
        }
        if self.max_backoff < self.initial_backoff {
            return Err(format!(
                "`max_backoff` ({:?}) is shorter than `initial_backoff` ({:?})",
                self.max_backoff, self.initial_backoff
            ));
        }
        Ok(())
    }
}

impl OtapConfig {
    /// The headers with `${env:NAME}` replaced by the environment's values.
    fn headers(&self) -> Result<Vec<(String, String)>, String> {
        self.headers
            .0
            .iter()
            .map(|(name, value)| {
                expand_env(value)
                    .map(|value| (name.clone(), value))
                    .map_err(|e| format!("header `{name}`: {e}"))
            })
            .collect()
    }

    fn producer_options(&self) -> ProducerOptions {
        ProducerOptions {
            compression: match self.compression {
                Compression::Auto | Compression::Zstd => IpcCompression::Zstd,
                Compression::None => IpcCompression::None,
            },
            u8_dictionary_limit: self.u8_dictionary_limit,
        }
    }
}

/// Identity of an OTAP exporter.
#[metric_schema::attribute_set(name = "its.exporter.otap.attrs")]
pub struct OtapAttrs {
    /// Node id from the configuration.
    #[attribute(key = "node.id")]
    pub node: String,
    /// Where the stream goes: the endpoint or the file.
    #[attribute(key = "server.address")]
    pub destination: String,
}

/// What `exporter:otap` did.
#[metric_schema::metric_set(name = "its.exporter.otap")]
pub struct OtapMetrics {
    /// Intervals encoded and handed to the transport (or written to the file).
    #[metric(unit = "{interval}")]
    pub intervals: metric_schema::Counter<u64>,
    /// Data points encoded.
    #[metric(unit = "{point}")]
    pub points: metric_schema::Counter<u64>,
    /// Time encoding one interval took on the ITS thread.
    #[metric(unit = "s", max_buckets = 32)]
    pub encode_duration: metric_schema::Histogram<32>,
    /// BatchArrowRecords sent on a gRPC stream, retries and resends after a refused
    /// compression included.
    #[metric(unit = "{batch}")]
    pub sent_batches: metric_schema::ObserveCounter<u64>,
    /// Bytes of BatchArrowRecords sent or written, before gRPC compression.
    #[metric(unit = "By")]
    pub sent_size: metric_schema::ObserveCounter<u64>,
    /// Batches the receiver answered OK.
    #[metric(unit = "{batch}")]
    pub acked_batches: metric_schema::ObserveCounter<u64>,
    /// Data points in batches answered OK.
    #[metric(unit = "{point}")]
    pub acked_points: metric_schema::ObserveCounter<u64>,
    /// Batches answered with a non-OK status.
    #[metric(unit = "{batch}")]
    pub rejected_batches: metric_schema::ObserveCounter<u64>,
    /// Batches sent again on a new stream.
    #[metric(unit = "{batch}")]
    pub retried_batches: metric_schema::ObserveCounter<u64>,
    /// Batches given up: out of retries, refused for good (invalid, unauthenticated),
    /// pushed out of a full queue (unless superseded), or held at shutdown.
    #[metric(unit = "{batch}")]
    pub dropped_batches: metric_schema::ObserveCounter<u64>,
    /// Data points in dropped batches.
    #[metric(unit = "{point}")]
    pub dropped_points: metric_schema::ObserveCounter<u64>,
    /// Cumulative batches let go because newer batches carry the totals of all their
    /// series: taken already (it would land late), or waiting behind it in a full
    /// queue. No value lost, only an earlier reading.
    #[metric(unit = "{batch}")]
    pub superseded_batches: metric_schema::ObserveCounter<u64>,
    /// Data points in superseded batches.
    #[metric(unit = "{point}")]
    pub superseded_points: metric_schema::ObserveCounter<u64>,
    /// Connection attempts that failed.
    #[metric(unit = "{connection}")]
    pub connect_failures: metric_schema::ObserveCounter<u64>,
    /// Streams that ended in failure (broken, closed by the peer, non-OK status, no answer).
    #[metric(unit = "{stream}")]
    pub stream_failures: metric_schema::ObserveCounter<u64>,
    /// Statuses for batch ids that were not in flight.
    #[metric(unit = "{status}")]
    pub unknown_statuses: metric_schema::ObserveCounter<u64>,
    /// Streams given up because a batch stayed unanswered too long.
    #[metric(unit = "{stream}")]
    pub ack_timeouts: metric_schema::ObserveCounter<u64>,
    /// Batches in flight.
    #[metric(unit = "{batch}")]
    pub in_flight: metric_schema::Gauge<u64>,
}

enum Output {
    File {
        producer: Producer,
        out: std::io::BufWriter<std::fs::File>,
        path: PathBuf,
        bytes: u64,
        batches: u64,
    },
    Grpc {
        transport: TransportHandle,
        stats: Arc<TransportStats>,
    },
}

struct Otap {
    resource: Vec<(String, metric_schema::AttributeValue)>,
    /// How big a batch may get.
    limits: BatchLimits,
    output: Output,
    observed: metric_schema::MetricSetHandle<OtapMetrics>,
}

impl Exporter for Otap {
    async fn export(&mut self, msg: Message, _effect: &EffectHandler) -> Result<(), NodeError> {
        let pdata = match msg {
            Message::PData(pdata) => pdata,
            Message::Control(ControlMsg::Shutdown { deadline }) => {
                let flushed = match &mut self.output {
                    Output::File { out, path, .. } => out.flush().map_err(|e| io_error(path, &e)),
                    Output::Grpc { transport, .. } => {
                        transport.close(deadline).await;
                        Ok(())
                    }
                };
                self.observe();
                return flushed;
            }
            Message::Control(ControlMsg::CollectTelemetry) => {
                self.observe();
                return Ok(());
            }
            Message::Control(_) => return Ok(()),
        };
        let Some(interval) = pdata.downcast_ref::<Interval>() else {
            return Err(NodeError::new(
                "exporter:otap takes intervals from processor:aggregate",
            ));
        };
        if interval.series.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        // More points than one batch's u16 metric ids address, or more bytes than a
        // receiver takes in one message, go out as several batches.
        let parts = encode_parts(interval, &self.resource, self.limits)
            .map_err(|e| NodeError::new(e.to_string()))?;
        self.observed.intervals.inc();
        let points: usize = parts.iter().map(MetricsTables::point_count).sum();
        self.observed.points.add(points as u64);
        match &mut self.output {
            Output::Grpc { transport, .. } => transport.push_interval(parts),
            Output::File {
                producer,
                out,
                path,
                bytes,
                batches,
            } => {
                for tables in parts {
                    let bar = producer
                        .produce(&tables)
                        .map_err(|e| NodeError::new(format!("arrow ipc: {e}")))?;
                    let encoded = bar.encode_length_delimited_to_vec();
                    out.write_all(&encoded)
                        .and_then(|()| out.flush())
                        .map_err(|e| io_error(path, &e))?;
                    *bytes += encoded.len() as u64;
                    *batches += 1;
                }
            }
        }
        self.observed
            .encode_duration
            .record(started.elapsed().as_secs_f64());
        Ok(())
    }
}

impl Otap {
    /// Copies the transport's running totals into the metric set.
    fn observe(&self) {
        let m = &self.observed;
        match &self.output {
            Output::File { bytes, batches, .. } => {
                m.sent_batches.observe(*batches);
                m.sent_size.observe(*bytes);
            }
            Output::Grpc { stats, .. } => {
                let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
                m.sent_batches.observe(get(&stats.batches_sent));
                m.sent_size.observe(get(&stats.bytes_sent));
                m.acked_batches.observe(get(&stats.batches_acked));
                m.acked_points.observe(get(&stats.points_acked));
                m.rejected_batches.observe(get(&stats.batches_rejected));
                m.retried_batches.observe(get(&stats.batches_retried));
                m.dropped_batches.observe(get(&stats.batches_dropped));
                m.dropped_points.observe(get(&stats.points_dropped));
                m.superseded_batches.observe(get(&stats.batches_superseded));
                m.superseded_points.observe(get(&stats.points_superseded));
                m.connect_failures.observe(get(&stats.connect_failures));
                m.stream_failures.observe(get(&stats.stream_failures));
                m.unknown_statuses.observe(get(&stats.unknown_statuses));
                m.ack_timeouts.observe(get(&stats.ack_timeouts));
                m.in_flight.set(get(&stats.in_flight));
            }
        }
    }
}

/// `text` with every `${env:NAME}` replaced by the variable's value.
fn expand_env(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${env:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "${env:".len()..];
        let Some(end) = after.find('}') else {
            return Err("`${env:` without its closing `}`".into());
        };
        let name = &after[..end];
        if name.is_empty() {
            return Err("`${env:}` names no variable".into());
        }
        match std::env::var(name) {
            Ok(value) => out.push_str(&value),
            Err(std::env::VarError::NotPresent) => {
                return Err(format!("environment variable `{name}` is not set"));
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(format!("environment variable `{name}` is not valid UTF-8"));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn io_error(path: &std::path::Path, e: &std::io::Error) -> NodeError {
    NodeError::new(format!(
        "exporter:otap cannot write {}: {e}",
        path.display()
    ))
}

#[linkme::distributed_slice(nodes::NODE_FACTORIES)]
static OTAP: NodeFactory = NodeFactory {
    type_name: "exporter:otap",
    kind: NodeKind::Exporter,
    description: "OTAP Arrow metrics: a gRPC ArrowMetrics stream, or BatchArrowRecords to a file",
    validate: |value| nodes::parse_config::<OtapConfig>(value).map(|_| ()),
    create,
};

fn create(value: &serde_json::Value, ctx: &NodeContext) -> Result<NodeTask, String> {
    let config = nodes::parse_config::<OtapConfig>(value)?;
    let (output, destination) = if let Some(endpoint) = &config.endpoint {
        let stats = Arc::new(TransportStats::default());
        let settings = TransportSettings {
            endpoint: endpoint.clone(),
            ca_file: config.ca_file.clone(),
            client_identity: config.cert_file.clone().zip(config.key_file.clone()),
            grpc_compression: config.grpc_compression,
            producer: config.producer_options(),
            ipc_compression_auto: config.compression == Compression::Auto,
            max_in_flight: config.max_in_flight,
            queue_capacity: config.queue_capacity,
            max_retries: config.max_retries,
            initial_backoff: config.initial_backoff,
            max_backoff: config.max_backoff,
            ack_timeout: config.ack_timeout,
            connect_timeout: config.connect_timeout,
            max_stream_lifetime: config.max_stream_lifetime,
            headers: config.headers()?,
            log: crate::transport::LogSink::default(),
        };
        let transport = TransportHandle::spawn(settings, Arc::clone(&stats))?;
        (Output::Grpc { transport, stats }, endpoint.clone())
    } else {
        let path = config.file.clone().unwrap_or_default();
        let file = std::fs::File::create(&path)
            .map_err(|e| format!("cannot create `{}`: {e}", path.display()))?;
        let destination = path.display().to_string();
        let output = Output::File {
            producer: Producer::new(config.producer_options()),
            out: std::io::BufWriter::new(file),
            path,
            bytes: 0,
            batches: 0,
        };
        (output, destination)
    };
    let observed = metric_schema::register::<OtapMetrics, _>(&OtapAttrs {
        node: ctx.node_id.clone(),
        destination,
    });
    Ok(NodeTask::exporter(Otap {
        resource: ctx.resource.clone(),
        limits: BatchLimits {
            points: config.max_batch_points,
            bytes: config.max_batch_bytes,
        },
        output,
        observed,
    }))
}
