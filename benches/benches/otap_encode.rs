//! OTAP encoding: from an aggregated interval to one `BatchArrowRecords` (tables built,
//! ids encoded, IPC streams written with zstd), in data points per second on one core,
//! and the bytes per point on the wire in steady state (after a stream's first batch),
//! side by side with OTLP protobuf (`opentelemetry-proto`'s messages, the shape an
//! OpenTelemetry SDK exports: one metric per name, one data point per series with its
//! attributes) for the same interval, compressed with zstd as a whole message.
//!
//! The interval: 8 cores x 64 sets x 32 counters, plus 64 sets of one counter, gauge,
//! exponential histogram and min/max/sum/count each, folded into 128 series of 2304
//! points. Values are spread over six decades (a seeded generator), as counts of bytes
//! and requests are: identical values would flatter whole-message compression.
//!
//! Wire sizes also for a proxy's per-upstream sets (512 upstreams named by address,
//! route and tenant: many distinct strings, where OTAP's stream dictionaries should
//! pay most) and for the engine's own telemetry from a run of the default pipeline.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use its_exporter_otap::{IpcCompression, Producer, encode};
use its_processors::{Aggregator, Interval, Keep, Temporality};
use metric_schema::{AttributeValue, Reporter};
use prost::Message as _;

use benches::{HotSet, WideSet};
use its_processors::model::{Buckets, Value};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    exponential_histogram_data_point, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

/// Which set: the shape of the engine's own node attributes.
#[metric_schema::attribute_set(name = "bench.otap")]
struct SetIndex {
    /// Pipeline group.
    #[attribute(key = "pipeline.group")]
    group: &'static str,
    /// Pipeline id within its group.
    #[attribute(key = "pipeline.id")]
    pipeline: &'static str,
    /// Node id.
    #[attribute(key = "node.id")]
    node: String,
    /// Node type.
    #[attribute(key = "node.type")]
    node_type: &'static str,
}

impl SetIndex {
    fn new(index: u32) -> Self {
        const TYPES: [&str; 4] = [
            "receiver:traffic_generator",
            "processor:batch",
            "processor:debug",
            "exporter:noop",
        ];
        SetIndex {
            group: "ingest",
            pipeline: "main",
            node: format!("node-{index}"),
            node_type: TYPES[index as usize % TYPES.len()],
        }
    }
}

/// xorshift64*: a fixed sequence, so that every run encodes the same interval.
struct Values {
    state: u64,
    /// Decades the counts spread over (0: every count is 1).
    decades: u32,
}

impl Values {
    fn next(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Log-uniform over `decades` decades from 1 (1 ..= 1e6 for six).
    fn count(&mut self) -> u64 {
        let spread = u64::from(self.decades) * 1_000;
        let exponent = (self.next() % spread.max(1)) as f64 / 1_000.0;
        10f64.powf(exponent) as u64
    }
}

/// One delta interval of 8 cores, each recording through `record` (whose handles stay
/// alive until the cut), folded with `keep`.
fn over_8_cores<H>(keep: Keep, mut record: impl FnMut(&mut Reporter) -> H) -> Interval {
    let (sender, receiver) = metric_schema::channel(64);
    let mut aggregator = Aggregator::new(keep, 0);
    let mut alive = Vec::new();
    for core in 0..8 {
        let mut reporter = Reporter::new(sender.clone(), core, 0);
        let handles = record(&mut reporter);
        reporter.report();
        while let Some(batch) = receiver.try_recv() {
            aggregator.apply(&batch);
        }
        alive.push((reporter, handles));
    }
    aggregator.take(1_000_000, &[Temporality::Delta]).remove(0)
}

/// One interval of `sets` wide sets and `sets` hot sets per core, over 8 cores, with
/// values from `seed` spread over `decades`, cores folded unless `keep` says otherwise.
fn interval(sets: u32, seed: u64, decades: u32, keep: Keep) -> Interval {
    let mut values = Values {
        state: seed | 1,
        decades,
    };
    over_8_cores(keep, |reporter| {
        let wide: Vec<_> = (0..sets)
            .map(|i| reporter.register::<WideSet, _>(&SetIndex::new(i)))
            .collect();
        for set in &wide {
            for field in set.fields() {
                field.add(values.count());
            }
        }
        let hot: Vec<_> = (0..sets)
            .map(|i| reporter.register::<HotSet, _>(&SetIndex::new(i)))
            .collect();
        for set in &hot {
            set.counter.add(values.count());
            set.gauge.set(values.count());
            for _ in 0..20 {
                let seconds = values.count() as f64 * 1e-6;
                set.histogram.record(seconds);
                set.mmsc.record(seconds);
            }
        }
        (wide, hot)
    })
}

fn key_value(key: &str, value: &AttributeValue) -> KeyValue {
    let value = match value {
        AttributeValue::Str(s) => any_value::Value::StringValue(s.to_string()),
        AttributeValue::Int(i) => any_value::Value::IntValue(*i),
        AttributeValue::Double(d) => any_value::Value::DoubleValue(*d),
        AttributeValue::Bool(b) => any_value::Value::BoolValue(*b),
    };
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

fn otlp_buckets(b: &Buckets) -> exponential_histogram_data_point::Buckets {
    exponential_histogram_data_point::Buckets {
        offset: b.offset,
        bucket_counts: b.counts.clone(),
    }
}

/// The interval as an OTLP export request: one scope per metric set, one metric per
/// field name, one data point per series carrying the series' attributes.
#[expect(clippy::too_many_lines, reason = "one match arm per OTLP point kind")]
fn otlp(interval: &Interval, resource: &[(String, AttributeValue)]) -> ExportMetricsServiceRequest {
    use std::collections::BTreeMap;
    let temporality = match interval.temporality {
        Temporality::Delta => AggregationTemporality::Delta,
        Temporality::Cumulative => AggregationTemporality::Cumulative,
    } as i32;
    let mut scopes: BTreeMap<&str, BTreeMap<usize, Metric>> = BTreeMap::new();
    for series in &interval.series {
        let (start, end) = (series.start_unix_nanos, series.end_unix_nanos);
        let attributes: Vec<KeyValue> = series
            .identity
            .attributes
            .keys()
            .iter()
            .zip(&series.identity.values)
            .map(|(k, v)| key_value(k.key, v))
            .collect();
        let metrics = scopes.entry(series.descriptor.name).or_default();
        for point in &series.points {
            let field = &series.descriptor.fields[usize::from(point.field)];
            let metric = metrics
                .entry(usize::from(point.field))
                .or_insert_with(|| Metric {
                    name: field.name.to_string(),
                    description: field.brief.to_string(),
                    unit: field.unit.to_string(),
                    ..Metric::default()
                });
            let number = |value| NumberDataPoint {
                attributes: attributes.clone(),
                start_time_unix_nano: start,
                time_unix_nano: end,
                value: Some(value),
                ..NumberDataPoint::default()
            };
            match (&point.value, field.instrument) {
                (Value::Mmsc(m), _) => {
                    let data = metric.data.get_or_insert_with(|| {
                        metric::Data::Histogram(Histogram {
                            data_points: Vec::new(),
                            aggregation_temporality: temporality,
                        })
                    });
                    if let metric::Data::Histogram(h) = data {
                        h.data_points.push(HistogramDataPoint {
                            attributes: attributes.clone(),
                            start_time_unix_nano: start,
                            time_unix_nano: end,
                            count: m.count,
                            sum: Some(m.sum),
                            min: Some(m.min),
                            max: Some(m.max),
                            ..HistogramDataPoint::default()
                        });
                    }
                }
                (Value::Histogram(e), _) => {
                    let data = metric.data.get_or_insert_with(|| {
                        metric::Data::ExponentialHistogram(ExponentialHistogram {
                            data_points: Vec::new(),
                            aggregation_temporality: temporality,
                        })
                    });
                    if let metric::Data::ExponentialHistogram(h) = data {
                        h.data_points.push(ExponentialHistogramDataPoint {
                            attributes: attributes.clone(),
                            start_time_unix_nano: start,
                            time_unix_nano: end,
                            count: e.count,
                            sum: Some(e.sum),
                            min: Some(e.min),
                            max: Some(e.max),
                            scale: e.scale,
                            zero_count: e.zero_count,
                            positive: Some(otlp_buckets(&e.positive)),
                            negative: Some(otlp_buckets(&e.negative)),
                            ..ExponentialHistogramDataPoint::default()
                        });
                    }
                }
                (scalar, kind) => {
                    let value = match scalar {
                        Value::U64(v) => number_data_point::Value::AsInt(*v as i64),
                        Value::I64(v) => number_data_point::Value::AsInt(*v),
                        Value::F64(v) => number_data_point::Value::AsDouble(*v),
                        _ => unreachable!("handled above"),
                    };
                    let gauge = kind == metric_schema::InstrumentKind::Gauge;
                    let data = metric.data.get_or_insert_with(|| {
                        if gauge {
                            metric::Data::Gauge(Gauge {
                                data_points: Vec::new(),
                            })
                        } else {
                            metric::Data::Sum(Sum {
                                data_points: Vec::new(),
                                aggregation_temporality: temporality,
                                is_monotonic: kind.is_monotonic(),
                            })
                        }
                    });
                    match data {
                        metric::Data::Gauge(g) => g.data_points.push(number(value)),
                        metric::Data::Sum(s) => s.data_points.push(number(value)),
                        _ => {}
                    }
                }
            }
        }
    }
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource.iter().map(|(k, v)| key_value(k, v)).collect(),
                ..Resource::default()
            }),
            scope_metrics: scopes
                .into_iter()
                .map(|(name, metrics)| ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: name.to_string(),
                        ..InstrumentationScope::default()
                    }),
                    metrics: metrics.into_values().collect(),
                    schema_url: String::new(),
                })
                .collect(),
            schema_url: String::new(),
        }],
    }
}

fn resource() -> [(String, AttributeValue); 1] {
    [(
        "service.name".to_string(),
        AttributeValue::Str("its".into()),
    )]
}

/// The values of `interval` alone, packed tight (integers as varints, floats as
/// their eight bytes, histograms field by field), in series order: what any encoding
/// must carry, without names, attributes, ids or timestamps.
fn values_alone(interval: &Interval, out: &mut Vec<u8>) {
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let zigzag = |v: i64| ((v << 1) ^ (v >> 63)) as u64;
    for series in &interval.series {
        for point in &series.points {
            match &point.value {
                Value::U64(v) => varint(*v, out),
                Value::I64(v) => varint(zigzag(*v), out),
                Value::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
                Value::Mmsc(m) => {
                    varint(m.count, out);
                    for f in [m.sum, m.min, m.max] {
                        out.extend_from_slice(&f.to_le_bytes());
                    }
                }
                Value::Histogram(h) => {
                    varint(h.count, out);
                    for f in [h.sum, h.min, h.max] {
                        out.extend_from_slice(&f.to_le_bytes());
                    }
                    varint(zigzag(i64::from(h.scale)), out);
                    varint(h.zero_count, out);
                    for side in [&h.positive, &h.negative] {
                        varint(zigzag(i64::from(side.offset)), out);
                        varint(side.counts.len() as u64, out);
                        for c in &side.counts {
                            varint(*c, out);
                        }
                    }
                }
            }
        }
    }
}

/// Bytes per point in steady state: the OTAP stream (after its first batch) and OTLP
/// (stateless), over `batches` intervals of `sets` sets with values spread over
/// `decades`; and the values alone, packed and compressed hard, for reference.
fn wire_sizes(label: &str, sets: u32, batches: u64, decades: u32) {
    let intervals: Vec<Interval> = (0..=batches)
        .map(|b| interval(sets, 7 + b, decades, Keep::default()))
        .collect();
    wire_sizes_of(
        &format!("{label}, values over {decades} decades"),
        &intervals,
    );
}

/// A proxy's upstream: the peer it forwards to, the route and the tenant. Many
/// distinct strings, as per-peer, per-route and per-tenant series have.
#[metric_schema::attribute_set(name = "bench.proxy")]
struct Upstream {
    /// The peer's address and port.
    #[attribute(key = "server.address")]
    peer: String,
    /// The route template.
    #[attribute(key = "http.route")]
    route: String,
    /// The tenant the traffic belongs to.
    #[attribute(key = "tenant.id")]
    tenant: String,
}

/// What a proxy records per upstream.
#[metric_schema::metric_set(name = "bench.proxy.upstream")]
struct UpstreamSet {
    /// Requests forwarded.
    #[metric(unit = "{request}")]
    requests: metric_schema::Counter<u64>,
    /// Responses with a 4xx status.
    #[metric(unit = "{response}")]
    responses_4xx: metric_schema::Counter<u64>,
    /// Responses with a 5xx status.
    #[metric(unit = "{response}")]
    responses_5xx: metric_schema::Counter<u64>,
    /// Bytes received from clients.
    #[metric(unit = "By")]
    bytes_received: metric_schema::Counter<u64>,
    /// Bytes sent to clients.
    #[metric(unit = "By")]
    bytes_sent: metric_schema::Counter<u64>,
    /// Connections open to the peer.
    #[metric(unit = "{connection}")]
    connections: metric_schema::Gauge<u64>,
    /// Request durations.
    #[metric(unit = "s")]
    duration: metric_schema::Mmsc,
    /// Request duration distribution.
    #[metric(unit = "s")]
    latency: metric_schema::Histogram,
}

impl Upstream {
    fn new(index: u32) -> Self {
        let mut values = Values {
            state: u64::from(index).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            decades: 0,
        };
        let address = values.next();
        Upstream {
            peer: format!(
                "10.{}.{}.{}:{}",
                address & 0xff,
                (address >> 8) & 0xff,
                (address >> 16) & 0xff,
                8000 + (address >> 24) % 1000
            ),
            route: format!(
                "/api/v{}/{}",
                1 + index % 3,
                [
                    "orders", "users", "carts", "items", "search", "payments", "sessions",
                    "reviews"
                ][(index / 3 % 8) as usize]
            ),
            tenant: format!("tenant-{:08x}", values.next() as u32 % 64),
        }
    }
}

/// A proxy's per-upstream telemetry: `upstreams` series over 8 cores, values over
/// three decades, `histograms` saying whether the latency distribution is recorded.
fn proxy_interval(upstreams: u32, seed: u64, histograms: bool) -> Interval {
    let mut values = Values {
        state: seed | 1,
        decades: 3,
    };
    over_8_cores(Keep::default(), |reporter| {
        let sets: Vec<_> = (0..upstreams)
            .map(|i| reporter.register::<UpstreamSet, _>(&Upstream::new(i)))
            .collect();
        for set in &sets {
            let requests = values.count();
            set.requests.add(requests);
            set.responses_4xx.add(values.next() % (requests / 20 + 1));
            set.responses_5xx.add(values.next() % (requests / 200 + 1));
            set.bytes_received
                .add(requests * (200 + values.next() % 800));
            set.bytes_sent
                .add(requests * (1_000 + values.next() % 9_000));
            set.connections.set(1 + values.next() % 16);
            for _ in 0..requests.min(20) {
                let seconds = values.count() as f64 * 1e-4;
                set.duration.record(seconds);
                if histograms {
                    set.latency.record(seconds);
                }
            }
        }
        sets
    })
}

/// The engine's own telemetry, as the ITS receives it: the default configuration's
/// pipeline (traffic generator, batch, debug, no-op) on each of `cores` cores (a
/// synthetic topology over this machine's), reporting every 10 ms while it runs 20,000
/// batches of 100 items at 100,000 batches a second; every 10 ms of reports becomes one
/// delta interval. Each core's sets carry their `core.id`, so the series add up.
fn engine_intervals(cores: u32) -> Vec<Interval> {
    use nodes::{EngineSettings, NodeSpec, PipelineSpec, ShutdownSignal, Topology};
    use std::sync::Arc;
    let machine = Topology::detect().expect("a topology");
    let topology = Topology::synthetic(&format!("numa:1 core:{cores}"), &machine)
        .expect("a synthetic topology");
    let settings = EngineSettings {
        reporting_interval: std::time::Duration::from_millis(10),
        telemetry: true,
        ..EngineSettings::default()
    };
    let spec = Arc::new(PipelineSpec::chain(
        "default",
        "main",
        128,
        vec![
            NodeSpec::new(
                "generator",
                "receiver:traffic_generator",
                serde_json::json!({"batch_size": 100, "max_batches": 20_000, "batches_per_second": 100_000}),
            ),
            NodeSpec::new(
                "batch",
                "processor:batch",
                serde_json::json!({"max_items": 8192, "timeout": "100ms"}),
            ),
            NodeSpec::new("debug", "processor:debug", serde_json::Value::Null),
            NodeSpec::new("noop", "exporter:noop", serde_json::Value::Null),
        ],
    ));
    let (sender, receiver) = metric_schema::channel(1024);
    let drain = std::thread::spawn(move || {
        let mut batches = Vec::new();
        while let Some(batch) = receiver.recv() {
            batches.push(batch);
        }
        batches
    });
    let shutdown = Arc::new(ShutdownSignal::default());
    let instances: Vec<_> = topology
        .cores()
        .into_iter()
        .map(|core| {
            let placement = topology.placement(core).expect("a core of the topology");
            nodes::spawn_instance(
                Arc::clone(&spec),
                placement,
                Some(sender.clone()),
                settings.clone(),
                Arc::clone(&shutdown),
            )
            .expect("the instance starts")
        })
        .collect();
    drop(sender);
    for instance in instances {
        let summary = instance.join().expect("the instance ends");
        assert!(
            summary.node_failures.is_empty(),
            "{:?}",
            summary.node_failures
        );
    }
    let mut batches = drain.join().expect("the drain thread");
    batches.sort_by_key(metric_schema::SnapshotBatch::end_unix_nanos);
    // One interval per 10 ms of report times, as `processor:aggregate` cuts them.
    let mut aggregator = Aggregator::new(Keep::default(), 0);
    let mut intervals = Vec::new();
    let mut cut = None;
    for batch in &batches {
        let this = batch.end_unix_nanos();
        let cut_at = *cut.get_or_insert(this + 10_000_000);
        if this >= cut_at {
            let interval = aggregator.take(cut_at, &[Temporality::Delta]).remove(0);
            if !interval.series.is_empty() {
                intervals.push(interval);
            }
            cut = Some(this + 10_000_000);
        }
        aggregator.apply(batch);
    }
    intervals
}

/// Bytes per point in steady state of `intervals` (the first one opens the stream and
/// is not counted), OTAP and OTLP, and the values alone.
fn wire_sizes_of(label: &str, intervals: &[Interval]) {
    let resource = resource();
    let batches = intervals.len() as u64 - 1;
    let points: u64 = intervals[1..].iter().map(|i| i.point_count() as u64).sum();
    let mut ipc_zstd = Producer::new(IpcCompression::Zstd);
    let mut ipc_plain = Producer::new(IpcCompression::None);
    let (mut otap_ipc_zstd, mut otap_double, mut otap_message_zstd) = (0, 0, 0);
    let (mut otlp_zstd, mut values) = (0, 0);
    // gzip, which `auto` falls back to where zstd messages are refused (level 6, as
    // gRPC implementations use): over plain IPC, over zstd IPC, and over OTLP.
    let (mut gzip_plain, mut gzip_ipc_zstd, mut otlp_gzip) = (0, 0, 0);
    let gzip = |bytes: &[u8]| {
        use std::io::Write as _;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        encoder.write_all(bytes).expect("compresses");
        encoder.finish().expect("compresses").len()
    };
    for (n, interval) in intervals.iter().enumerate() {
        let tables = encode(interval, &resource).expect("encodes");
        let a = ipc_zstd.produce(&tables).expect("produces").encode_to_vec();
        let b = ipc_plain
            .produce(&tables)
            .expect("produces")
            .encode_to_vec();
        let request = otlp(interval, &resource);
        assert_eq!(count_otlp_points(&request), interval.point_count() as u64);
        let request = request.encode_to_vec();
        if n == 0 {
            continue; // the stream's first batch carries the schemas and dictionaries
        }
        let zstd = |bytes: &[u8], level| zstd::bulk::compress(bytes, level).expect("compresses");
        otap_ipc_zstd += a.len();
        otap_double += zstd(&a, 3).len();
        otap_message_zstd += zstd(&b, 3).len();
        otlp_zstd += zstd(&request, 3).len();
        gzip_plain += gzip(&b);
        gzip_ipc_zstd += gzip(&a);
        otlp_gzip += gzip(&request);
        let mut packed = Vec::new();
        values_alone(interval, &mut packed);
        values += zstd(&packed, 19).len();
    }
    let per = |bytes: usize| bytes as f64 / points as f64;
    let ratio = |bytes: usize| bytes as f64 / otlp_zstd as f64;
    eprintln!(
        "wire size, {label} ({} points per batch, {batches} batches), \
         bytes per point: OTAP IPC zstd {:.2}, OTAP IPC zstd + message zstd {:.2}, \
         OTAP IPC plain + message zstd {:.2}, OTLP + message zstd {:.2}, values alone (packed, zstd 19) {:.2}; \
         OTAP/OTLP = {:.2} (IPC zstd), {:.2} (both), {:.2} (message zstd); values alone/OTLP = {:.2}; \
         with gzip messages instead: OTAP IPC plain {:.2}, OTAP IPC zstd {:.2}, OTLP {:.2}",
        points / batches,
        per(otap_ipc_zstd),
        per(otap_double),
        per(otap_message_zstd),
        per(otlp_zstd),
        per(values),
        ratio(otap_ipc_zstd),
        ratio(otap_double),
        ratio(otap_message_zstd),
        ratio(values),
        per(gzip_plain),
        per(gzip_ipc_zstd),
        per(otlp_gzip),
    );
}

/// Which points of an interval to take.
type Takes = fn(&Value) -> bool;

/// `intervals` with only the points `keep` takes (and the series left with any).
fn only(intervals: &[Interval], keep: Takes) -> Vec<Interval> {
    intervals
        .iter()
        .map(|interval| {
            let mut interval = interval.clone();
            for series in &mut interval.series {
                series.points.retain(|p| keep(&p.value));
            }
            interval.series.retain(|s| !s.points.is_empty());
            interval
        })
        .collect()
}

/// The wire sizes of the large interval's points of each kind alone: where OTAP's
/// columns win over OTLP and where they lose.
fn wire_sizes_by_kind(decades: u32) {
    let intervals: Vec<Interval> = (0..=8)
        .map(|b| interval(64, 7 + b, decades, Keep::default()))
        .collect();
    let kinds: [(&str, Takes); 3] = [
        ("counters and gauges", |v| {
            matches!(v, Value::U64(_) | Value::I64(_) | Value::F64(_))
        }),
        ("min/max/sum/count", |v| matches!(v, Value::Mmsc(_))),
        ("exponential histograms", |v| {
            matches!(v, Value::Histogram(_))
        }),
    ];
    for (kind, keep) in kinds {
        wire_sizes_of(
            &format!("large interval, values over {decades} decades, {kind} only"),
            &only(&intervals, keep),
        );
    }
}

fn otap_encode(c: &mut Criterion) {
    // The wire sizes leave the allocator's heap large, which flatters the timings that
    // follow; `OTAP_BENCH_TIMINGS_ONLY=1` skips them to time a fresh process.
    if std::env::var_os("OTAP_BENCH_TIMINGS_ONLY").is_none() {
        wire_size_report();
    }
    timings(c);
}

fn wire_size_report() {
    for decades in [6, 3, 1, 0] {
        wire_sizes("large interval", 64, 8, decades);
    }
    for decades in [6, 1] {
        wire_sizes_by_kind(decades);
    }
    wire_sizes("small interval", 2, 32, 6);
    for histograms in [false, true] {
        let intervals: Vec<Interval> = (0..=8)
            .map(|b| proxy_interval(512, 11 + b, histograms))
            .collect();
        wire_sizes_of(
            &format!(
                "a proxy's 512 upstreams, {} latency histograms",
                if histograms { "with" } else { "without" }
            ),
            &intervals,
        );
    }
    for cores in [1, 8, 32] {
        wire_sizes_of(
            &format!("the engine's own telemetry, {cores} cores"),
            &engine_intervals(cores),
        );
    }
}

fn timings(c: &mut Criterion) {
    let interval = interval(64, 7, 6, Keep::default());
    let points = interval.point_count() as u64;
    let resource = resource();
    let mut group = c.benchmark_group("otap_encode");
    group.throughput(Throughput::Elements(points));
    let mut producer = Producer::new(IpcCompression::Zstd);
    group.bench_function("encode_and_produce_zstd", |b| {
        b.iter(|| {
            let tables = encode(&interval, &resource).expect("encodes");
            producer.produce(&tables).expect("produces")
        });
    });
    let mut plain = Producer::new(IpcCompression::None);
    group.bench_function("encode_and_produce_uncompressed", |b| {
        b.iter(|| {
            let tables = encode(&interval, &resource).expect("encodes");
            plain.produce(&tables).expect("produces")
        });
    });
    let mut plain = Producer::new(IpcCompression::None);
    group.bench_function("encode_and_produce_then_message_zstd", |b| {
        b.iter(|| {
            let tables = encode(&interval, &resource).expect("encodes");
            let bar = plain.produce(&tables).expect("produces");
            zstd::bulk::compress(&bar.encode_to_vec(), 3).expect("compresses")
        });
    });
    group.bench_function("encode_only", |b| {
        b.iter(|| encode(&interval, &resource).expect("encodes"));
    });
    group.bench_function("otlp_protobuf_build_and_encode", |b| {
        b.iter(|| otlp(&interval, &resource).encode_to_vec());
    });
    group.bench_function("otlp_protobuf_build_encode_zstd", |b| {
        b.iter(|| zstd::bulk::compress(&otlp(&interval, &resource).encode_to_vec(), 3));
    });
    group.finish();
    // Cores kept apart: eight times the points, each with its `core.id` in the
    // data-point attribute tables.
    let keep = Keep {
        core: true,
        numa_node: false,
    };
    let per_core = self::interval(64, 7, 6, keep);
    let mut group = c.benchmark_group("otap_encode_kept_core");
    group.throughput(Throughput::Elements(per_core.point_count() as u64));
    group.bench_function("encode_only", |b| {
        b.iter(|| encode(&per_core, &resource).expect("encodes"));
    });
    group.finish();
}

fn count_otlp_points(request: &ExportMetricsServiceRequest) -> u64 {
    let mut n = 0;
    for rm in &request.resource_metrics {
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                n += match &m.data {
                    Some(metric::Data::Sum(s)) => s.data_points.len(),
                    Some(metric::Data::Gauge(g)) => g.data_points.len(),
                    Some(metric::Data::Histogram(h)) => h.data_points.len(),
                    Some(metric::Data::ExponentialHistogram(h)) => h.data_points.len(),
                    _ => 0,
                };
            }
        }
    }
    n as u64
}

criterion_group!(benches, otap_encode);
criterion_main!(benches);
