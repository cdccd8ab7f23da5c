//! The encoded tables follow the OTAP column rules, and decoding their ids the way the
//! upstream consumers do (delta, quasi-delta) gives back the interval's points.

use std::collections::BTreeMap;

use arrow_array::cast::AsArray;
use arrow_array::{
    Array, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StructArray,
    UInt8Array, UInt16Array,
};
use arrow_schema::DataType;
use its_exporter_otap::{PayloadType, encode, series_key};
use its_processors::model::{Point, Value};
use its_processors::{Aggregator, Interval, Keep, Temporality};
use metric_schema::{
    AttributeValue, Counter, Gauge, Histogram, Mmsc, Reporter, UpDownCounter, attribute_set,
    metric_set,
};

/// Who.
#[attribute_set(name = "test.otap.attrs")]
pub struct Who {
    /// Name.
    #[attribute(key = "test.name")]
    pub name: String,
    /// Shard.
    #[attribute(key = "test.shard")]
    pub shard: u32,
}

/// Every kind.
#[metric_set(name = "test.otap")]
pub struct Kinds {
    /// Requests.
    #[metric(unit = "{request}")]
    pub requests: Counter<u64>,
    /// Level.
    #[metric(unit = "{item}")]
    pub level: UpDownCounter<i64>,
    /// Depth.
    #[metric(unit = "{item}")]
    pub depth: Gauge<f64>,
    /// Latency.
    #[metric(unit = "s", max_buckets = 16)]
    pub latency: Histogram<16>,
    /// Sizes.
    #[metric(unit = "By")]
    pub size: Mmsc,
}

/// What `queue` holds, aggregated with `keep` into one interval of `temporality`.
fn aggregate(
    queue: &metric_schema::SnapshotReceiver,
    keep: Keep,
    temporality: Temporality,
) -> Interval {
    let mut agg = Aggregator::new(keep, 0);
    while let Some(batch) = queue.try_recv() {
        agg.apply(&batch);
    }
    agg.take(1_000, &[temporality]).remove(0)
}

fn interval(temporality: Temporality) -> Interval {
    let (sender, queue) = metric_schema::channel(16);
    let mut r = Reporter::new(sender, 0, 0);
    let a = r.register::<Kinds, _>(&Who {
        name: "a".into(),
        shard: 1,
    });
    let b = r.register::<Kinds, _>(&Who {
        name: "b".into(),
        shard: 2,
    });
    a.requests.add(5);
    b.requests.add(7);
    a.level.add(-3);
    b.depth.set(2.5);
    for v in [0.001, 0.002, 0.5] {
        a.latency.record(v);
    }
    b.size.record(100.0);
    b.size.record(300.0);
    r.report();
    aggregate(&queue, Keep::default(), temporality)
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> &'a T {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("column {name}"))
        .as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| panic!("type of {name}"))
}

/// A string column, plain or dictionary-encoded (the encoder gives each batch its own
/// `Dictionary<UInt16, Utf8>`), as values.
fn strings(batch: &RecordBatch, name: &str) -> Vec<String> {
    // A left-out optional column reads as all null.
    let Some(column) = batch.column_by_name(name) else {
        return vec![String::new(); batch.num_rows()];
    };
    if let Some(dict) = column.as_dictionary_opt::<arrow_array::types::UInt16Type>() {
        let values = dict.values().as_string::<i32>();
        dict.keys()
            .values()
            .iter()
            .map(|k| values.value(usize::from(*k)).to_owned())
            .collect()
    } else {
        column
            .as_string::<i32>()
            .iter()
            .map(|v| v.unwrap_or_default().to_owned())
            .collect()
    }
}

/// `decoded[i] = decoded[i-1] + wire[i]`.
fn undelta(wire: &UInt16Array) -> Vec<u16> {
    let mut sum = 0u16;
    wire.values()
        .iter()
        .map(|d| {
            sum += d;
            sum
        })
        .collect()
}

#[test]
fn the_root_table_has_one_row_per_point_with_its_metric_kind() {
    let tables = encode(&interval(Temporality::Delta), &[]).unwrap();
    let root = tables.get(PayloadType::UnivariateMetrics).unwrap();
    let schema = root.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    for required in ["id", "metric_type", "name"] {
        assert!(names.contains(&required), "{names:?}");
        assert_eq!(root.column_by_name(required).unwrap().null_count(), 0);
    }
    assert_eq!(
        root.schema().field_with_name("id").unwrap().data_type(),
        &DataType::UInt16
    );
    let ids = undelta(column::<UInt16Array>(root, "id"));
    assert_eq!(ids, (0..root.num_rows() as u16).collect::<Vec<_>>());
    let name = strings(root, "name");
    let kind = column::<UInt8Array>(root, "metric_type");
    let temporality = column::<Int32Array>(root, "aggregation_temporality");
    let monotonic = column::<BooleanArray>(root, "is_monotonic");
    let mut seen = BTreeMap::new();
    for (i, name) in name.iter().enumerate() {
        seen.insert(
            name.as_str(),
            (kind.value(i), temporality.is_null(i), monotonic.is_null(i)),
        );
        match name.as_str() {
            "requests" => {
                assert_eq!(kind.value(i), 2);
                assert_eq!(temporality.value(i), 1, "delta");
                assert!(monotonic.value(i));
            }
            "level" => assert!(!monotonic.value(i)),
            "depth" => assert!(temporality.is_null(i) && monotonic.is_null(i)),
            _ => {}
        }
    }
    // (metric type, temporality null, monotonicity null): temporality for all but
    // gauges, monotonicity for sums only.
    assert_eq!(seen["requests"], (2, false, false));
    assert_eq!(seen["level"], (2, false, false));
    assert_eq!(seen["depth"], (1, true, true));
    assert_eq!(seen["size"], (3, false, true));
    assert_eq!(seen["latency"], (4, false, true));
    // Scopes: the metric set's name; ids grouped so that deltas are never negative.
    let scope = root
        .column_by_name("scope")
        .unwrap()
        .as_any()
        .downcast_ref::<StructArray>()
        .unwrap();
    let scope_ids = undelta(
        scope
            .column_by_name("id")
            .unwrap()
            .as_any()
            .downcast_ref()
            .unwrap(),
    );
    assert!(scope_ids.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(*scope_ids.last().unwrap(), 1, "two series, two scopes");
}

#[test]
fn number_points_point_back_to_their_metric_rows() {
    let tables = encode(&interval(Temporality::Cumulative), &[]).unwrap();
    let root = tables.get(PayloadType::UnivariateMetrics).unwrap();
    let names = strings(root, "name");
    let dp = tables.get(PayloadType::NumberDataPoints).unwrap();
    let parents = undelta(column::<UInt16Array>(dp, "parent_id"));
    let ints = column::<Int64Array>(dp, "int_value");
    let doubles = column::<Float64Array>(dp, "double_value");
    let mut requests = 0;
    for (i, parent) in parents.iter().enumerate() {
        let metric = names[usize::from(*parent)].as_str();
        assert!(
            ints.is_null(i) != doubles.is_null(i),
            "exactly one value column"
        );
        match metric {
            "requests" => requests += ints.value(i),
            "level" => assert_eq!(ints.value(i), -3),
            "depth" => assert_eq!(doubles.value(i).to_bits(), 2.5f64.to_bits()),
            other => panic!("{other} is not a number metric"),
        }
    }
    assert_eq!(requests, 12);
    // Null slots still go on the wire: they must hold zeros, not the other column's
    // values (which would send every value twice).
    assert!(
        doubles.null_count() > 0 && ints.null_count() > 0,
        "both kinds"
    );
    for i in 0..dp.num_rows() {
        if ints.is_null(i) {
            assert_eq!(ints.values()[i], 0, "int_value null slot {i}");
        }
        if doubles.is_null(i) {
            assert_eq!(
                doubles.values()[i].to_bits(),
                0,
                "double_value null slot {i}"
            );
        }
    }
    let temporality = column::<Int32Array>(root, "aggregation_temporality");
    assert!((0..root.num_rows()).any(|i| !temporality.is_null(i) && temporality.value(i) == 2));
    let exp = tables.get(PayloadType::ExpHistogramDataPoints).unwrap();
    assert_eq!(exp.num_rows(), 1);
    let hist = tables.get(PayloadType::HistogramDataPoints).unwrap();
    assert_eq!(hist.num_rows(), 1);
    assert_eq!(tables.point_count(), 4 + 2);
}

/// A UInt16 or UInt32 id column, as u32.
fn ids(batch: &RecordBatch, name: &str) -> Vec<u32> {
    let column = batch.column_by_name(name).unwrap();
    match column.as_primitive_opt::<arrow_array::types::UInt16Type>() {
        Some(c) => c.values().iter().map(|v| u32::from(*v)).collect(),
        None => column
            .as_primitive::<arrow_array::types::UInt32Type>()
            .values()
            .to_vec(),
    }
}

/// OTAP §4.3: quasi-delta parent ids of an attribute table, sorted.
fn attributes(batch: &RecordBatch) -> Vec<(u32, String, String)> {
    let mut out = attributes_in_row_order(batch);
    out.sort();
    out
}

/// How a consumer decides that a row's value equals the previous row's, which makes
/// its parent id a delta.
#[derive(Clone, Copy, Debug)]
enum Consumer {
    /// Go compares doubles with `==`: NaN never equals anything, -0.0 equals 0.0.
    Go,
    /// Rust compares them with arrow's kernels, in IEEE 754 total order: by bits.
    Rust,
}

/// OTAP §4.3: quasi-delta parent ids of an attribute table, in row order, as both
/// upstream consumers decode them (they must agree).
fn attributes_in_row_order(batch: &RecordBatch) -> Vec<(u32, String, String)> {
    let go = attributes_as(batch, Consumer::Go);
    let rust = attributes_as(batch, Consumer::Rust);
    assert_eq!(
        go, rust,
        "the Go and the Rust consumer decode different parent ids"
    );
    go
}

/// OTAP §4.3: quasi-delta parent ids of an attribute table, in row order, as
/// `consumer` decodes them.
fn attributes_as(batch: &RecordBatch, consumer: Consumer) -> Vec<(u32, String, String)> {
    let parent = ids(batch, "parent_id");
    let key = strings(batch, "key");
    let kind = column::<UInt8Array>(batch, "type");
    let strs = strings(batch, "str");
    let ints = batch
        .column_by_name("int")
        .map(AsArray::as_primitive::<arrow_array::types::Int64Type>);
    let doubles = batch
        .column_by_name("double")
        .map(AsArray::as_primitive::<arrow_array::types::Float64Type>);
    let bools = batch.column_by_name("bool").map(AsArray::as_boolean);
    let mut out = Vec::new();
    let mut prev: Option<(u8, String, String)> = None;
    let mut prev_pid = 0u32;
    for row in 0..batch.num_rows() {
        // What the consumer compares: a double by its bits or by `==`.
        let same_as = match (kind.value(row), consumer) {
            (3, Consumer::Rust) => Some(format!("{:016x}", doubles.unwrap().value(row).to_bits())),
            (3, Consumer::Go) => {
                let v = doubles.unwrap().value(row);
                Some(if v.is_nan() {
                    format!("NaN in row {row}")
                } else {
                    format!("{:?}", if v == 0.0 { 0.0 } else { v })
                })
            }
            _ => None,
        };
        let value = match kind.value(row) {
            1 => strs[row].clone(),
            2 => ints
                .expect("an int attribute needs the int column")
                .value(row)
                .to_string(),
            3 => format!(
                "{:?}",
                doubles
                    .expect("a double attribute needs the double column")
                    .value(row)
            ),
            4 => bools
                .expect("a bool attribute needs the bool column")
                .value(row)
                .to_string(),
            other => panic!("type {other}"),
        };
        let this = (
            kind.value(row),
            key[row].clone(),
            same_as.unwrap_or_else(|| value.clone()),
        );
        let pid = if prev.as_ref() == Some(&this) {
            prev_pid + parent[row]
        } else {
            parent[row]
        };
        prev = Some(this);
        prev_pid = pid;
        out.push((pid, key[row].clone(), value));
    }
    out
}

/// Every attribute value type, with strings that share their first eight bytes and
/// values that repeat across sets.
#[attribute_set(name = "test.otap.mixed")]
pub struct Mixed {
    /// Count (first, so that scope ids do not follow the labels' order).
    #[attribute(key = "test.count")]
    pub count: i64,
    /// Label.
    #[attribute(key = "test.label")]
    pub label: String,
    /// Ratio.
    #[attribute(key = "test.ratio")]
    pub ratio: f64,
    /// On.
    #[attribute(key = "test.on")]
    pub on: bool,
}

#[test]
fn attributes_of_every_type_sort_and_decode_to_what_was_bound() {
    let labels = ["pipeline-long-b", "pipeline-long-a", "pipeline", "a", ""];
    let counts = [-3, 7, -3, i64::MIN, i64::MAX];
    // NaN for two sets with different labels: adjacent rows of one key that must not
    // delta-code for either consumer.
    let ratios = [0.25, -1.5, 0.25, -1e300, -0.0, 0.0, f64::NAN];
    let sets: Vec<Mixed> = (0..15)
        .map(|i| Mixed {
            label: labels[i % 5].to_string(),
            count: counts[(i / 3) % 5],
            ratio: ratios[(i / 2) % 7],
            on: i % 2 == 0,
        })
        .chain([-0.0, 0.0].map(|ratio| Mixed {
            label: "zero".into(),
            count: 0,
            ratio,
            on: true,
        }))
        .collect();
    let (sender, queue) = metric_schema::channel(64);
    let mut r = Reporter::new(sender, 0, 0);
    let handles: Vec<_> = sets
        .iter()
        .map(|who| {
            let set = r.register::<Kinds, _>(who);
            set.requests.add(1);
            set
        })
        .collect();
    r.report();
    let interval = aggregate(&queue, Keep::default(), Temporality::Delta);
    let tables = encode(&interval, &[]).unwrap();
    let batch = tables.get(PayloadType::ScopeAttrs).unwrap();

    // Rows in (type, key, value, parent) order: no quasi-delta goes negative.
    let kind = column::<UInt8Array>(batch, "type");
    let decoded = attributes_in_row_order(batch);
    let order = |row: usize| {
        let (parent, key, value) = &decoded[row];
        // Values compare as their type does: a number as a number, not as text.
        let (int, double) = match kind.value(row) {
            2 => (value.parse::<i64>().unwrap(), 0.0),
            3 => (0, value.parse::<f64>().unwrap()),
            _ => (0, 0.0),
        };
        (
            kind.value(row),
            key.clone(),
            int,
            double,
            value.clone(),
            *parent,
        )
    };
    for row in 1..batch.num_rows() {
        let (a, b) = (order(row - 1), order(row));
        let ordered = (&a.0, &a.1, a.2)
            .cmp(&(&b.0, &b.1, b.2))
            .then(a.3.total_cmp(&b.3))
            .then_with(|| {
                if a.0 == 1 || a.0 == 4 {
                    a.4.cmp(&b.4)
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .then(a.5.cmp(&b.5));
        assert!(ordered.is_le(), "row {row} out of order: {a:?} then {b:?}");
    }
    // Every scope decodes to exactly one of the bound sets, and every set appears.
    let mut scopes: BTreeMap<u32, BTreeMap<String, String>> = BTreeMap::new();
    for (scope, key, value) in decoded {
        scopes.entry(scope).or_default().insert(key, value);
    }
    // One `requests` row per scope: sets bound with equal values (-0.0 and 0.0 among
    // them) are one series, not two rows of one scope.
    let root = tables.get(PayloadType::UnivariateMetrics).unwrap();
    assert_eq!(root.num_rows(), scopes.len());
    let mut got: Vec<_> = scopes.into_values().collect();
    let mut want: Vec<BTreeMap<String, String>> = sets
        .iter()
        .map(|m| {
            BTreeMap::from([
                ("test.label".to_string(), m.label.clone()),
                ("test.count".to_string(), m.count.to_string()),
                // -0.0 travels as 0.0 (see the encoder's `AttrValue::of`).
                (
                    "test.ratio".to_string(),
                    format!("{:?}", if m.ratio == 0.0 { 0.0 } else { m.ratio }),
                ),
                ("test.on".to_string(), m.on.to_string()),
            ])
        })
        .collect();
    // Sets bound twice with the same values are one series.
    want.sort();
    want.dedup();
    got.sort();
    assert_eq!(got, want);
    drop(handles);
}

#[test]
fn scope_and_resource_attributes_decode_to_what_was_bound() {
    let resource = [
        (
            "service.name".to_string(),
            AttributeValue::Str("its".into()),
        ),
        ("service.instance".to_string(), AttributeValue::Int(3)),
    ];
    let tables = encode(&interval(Temporality::Delta), &resource).unwrap();
    let scope = attributes(tables.get(PayloadType::ScopeAttrs).unwrap());
    assert_eq!(
        scope,
        vec![
            (0, "test.name".into(), "a".into()),
            (0, "test.shard".into(), "1".into()),
            (1, "test.name".into(), "b".into()),
            (1, "test.shard".into(), "2".into()),
        ]
    );
    let resource = attributes(tables.get(PayloadType::ResourceAttrs).unwrap());
    assert_eq!(
        resource,
        vec![
            (0, "service.instance".into(), "3".into()),
            (0, "service.name".into(), "its".into()),
        ]
    );
}

#[test]
fn an_empty_interval_has_only_an_empty_root() {
    let empty = Interval {
        start_unix_nanos: 0,
        end_unix_nanos: 1,
        temporality: Temporality::Delta,
        series: Vec::new(),
    };
    let tables = encode(&empty, &[]).unwrap();
    assert_eq!(tables.tables.len(), 1);
    assert_eq!(
        tables
            .get(PayloadType::UnivariateMetrics)
            .unwrap()
            .num_rows(),
        0
    );
}

#[test]
fn counts_past_i64_max_go_as_doubles_of_their_magnitude() {
    // OTLP's integer points are signed: a u64 count over i64::MAX cannot go as one.
    let interval = model_interval(
        [u64::MAX, 1 << 63, (1 << 63) - 1, 7]
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                let point = Point {
                    field: 0,
                    value: Value::U64(v),
                };
                (format!("s{i}"), vec![point])
            }),
    );
    let tables = encode(&interval, &[]).unwrap();
    let dp = tables.get(PayloadType::NumberDataPoints).unwrap();
    let ints = column::<Int64Array>(dp, "int_value");
    let doubles = column::<Float64Array>(dp, "double_value");
    let values: Vec<String> = (0..dp.num_rows())
        .map(|i| {
            assert!(ints.is_valid(i) != doubles.is_valid(i), "one of the two");
            if ints.is_valid(i) {
                format!("int {}", ints.value(i))
            } else {
                format!("double {:e}", doubles.value(i))
            }
        })
        .collect();
    assert_eq!(
        values,
        [
            "double 1.8446744073709552e19",
            "double 9.223372036854776e18",
            "int 9223372036854775807",
            "int 7"
        ]
    );
}

#[test]
fn series_without_points_get_no_scope_and_an_interval_of_them_no_batch() {
    // Receivers refuse a batch without metric rows: the Go one breaks the stream when
    // the first payload is not the root table, which a batch of attributes only is.
    let resource = [(
        "service.name".to_string(),
        AttributeValue::Str("its".into()),
    )];
    let point = || Point {
        field: 0,
        value: Value::U64(1),
    };
    let interval = model_interval(
        [("a", vec![point()]), ("b", vec![]), ("c", vec![point()])]
            .into_iter()
            .map(|(name, points)| (name.to_string(), points)),
    );
    let tables = encode(&interval, &resource).unwrap();
    let scopes = attributes(tables.get(PayloadType::ScopeAttrs).unwrap());
    let names: Vec<_> = scopes
        .iter()
        .filter(|(_, key, _)| key == "test.name")
        .map(|(scope, _, name)| (*scope, name.as_str()))
        .collect();
    assert_eq!(names, [(0, "a"), (1, "c")], "b has no points, so no scope");

    let empty = model_interval((0..3).map(|i| (format!("s{i}"), Vec::new())));
    let parts = its_exporter_otap::encode_parts(&empty, &resource, 1 << 16).unwrap();
    assert!(parts.is_empty(), "{} batches of nothing", parts.len());
    let mut producer = its_exporter_otap::Producer::new(its_exporter_otap::IpcCompression::None);
    let refused = producer
        .produce(&encode(&empty, &resource).unwrap())
        .unwrap_err();
    assert!(
        refused.to_string().contains("without metric rows"),
        "{refused}"
    );
}

/// One set on each core (core `i` counting `requests[i]`), aggregated with the cores
/// kept apart into one interval of `temporality`.
fn per_core(requests: &[u64], temporality: Temporality) -> Interval {
    let (sender, queue) = metric_schema::channel(16);
    let mut reporters = Vec::new();
    for (core, requests) in (0..).zip(requests) {
        let mut r = Reporter::new(sender.clone(), core, 0);
        let set = r.register::<Kinds, _>(&Who {
            name: "a".into(),
            shard: 1,
        });
        set.requests.add(*requests);
        r.report();
        reporters.push((r, set));
    }
    let keep = Keep {
        core: true,
        numa_node: false,
    };
    aggregate(&queue, keep, temporality)
}

#[test]
fn a_kept_core_is_a_data_point_attribute_of_one_shared_scope() {
    let interval = per_core(&[5, 7], Temporality::Delta);
    let tables = encode(&interval, &[]).unwrap();
    // One scope: the set and its own attributes, not the core.
    let scope = attributes(tables.get(PayloadType::ScopeAttrs).unwrap());
    assert_eq!(
        scope,
        vec![
            (0, "test.name".into(), "a".into()),
            (0, "test.shard".into(), "1".into()),
        ]
    );
    // One metric, as an OpenTelemetry SDK would export it: both points under it.
    let root = tables.get(PayloadType::UnivariateMetrics).unwrap();
    assert_eq!(strings(root, "name"), ["requests"]);
    // Two points, with ids, each with its core.
    let dp = tables.get(PayloadType::NumberDataPoints).unwrap();
    assert_eq!(undelta(column::<UInt16Array>(dp, "parent_id")), [0, 0]);
    let mut sum = 0u32;
    let point_ids: Vec<u32> = ids(dp, "id")
        .iter()
        .map(|d| {
            sum += d;
            sum
        })
        .collect();
    assert_eq!(point_ids, [0, 1]);
    let values = column::<Int64Array>(dp, "int_value");
    let dp_attrs = attributes(tables.get(PayloadType::NumberDpAttrs).unwrap());
    let by_core: BTreeMap<String, i64> = dp_attrs
        .iter()
        .map(|(point, key, core)| {
            assert_eq!(key, "core.id");
            (core.clone(), values.value(*point as usize))
        })
        .collect();
    assert_eq!(
        by_core,
        BTreeMap::from([("0".to_string(), 5), ("1".to_string(), 7)])
    );
}

/// A pinned worker: its attribute set names its core itself.
#[attribute_set(name = "test.otap.pinned")]
pub struct Pinned {
    /// The core the worker is pinned to.
    #[attribute(key = "core.id")]
    pub core: u32,
}

#[test]
fn a_kept_core_the_set_already_names_is_not_repeated_on_its_points() {
    use its_processors::model::Identity;
    use metric_schema::AttributeSet;
    // Cores 2 and 3, NUMA node 1 kept: the pinned sets name `core.id`, not
    // `numa.node`; a set of another attribute set, on core 4, names neither.
    let who = Who {
        name: "w".into(),
        shard: 0,
    };
    let interval = delta_interval(
        [
            (2, Pinned::DESCRIPTOR),
            (3, Pinned::DESCRIPTOR),
            (4, Who::DESCRIPTOR),
        ]
        .into_iter()
        .map(|(core, attributes)| {
            let identity = Identity {
                attributes,
                values: if core < 4 {
                    vec![AttributeValue::Int(core)]
                } else {
                    who.values()
                },
                core: Some(core as u32),
                numa_node: Some(1),
            };
            let requests = Point {
                field: 0,
                value: Value::U64(10 + core as u64),
            };
            (identity, vec![requests])
        }),
    );
    let tables = encode(&interval, &[]).unwrap();
    // Canonical order: `test.otap.attrs` (core 4) before `test.otap.pinned`.
    let scope = attributes(tables.get(PayloadType::ScopeAttrs).unwrap());
    assert_eq!(
        scope,
        vec![
            (0, "test.name".into(), "w".into()),
            (0, "test.shard".into(), "0".into()),
            (1, "core.id".into(), "2".into()),
            (2, "core.id".into(), "3".into()),
        ]
    );
    let points = attributes(tables.get(PayloadType::NumberDpAttrs).unwrap());
    assert_eq!(
        points,
        vec![
            (0, "core.id".into(), "4".into()),
            (0, "numa.node".into(), "1".into()),
            (1, "numa.node".into(), "1".into()),
            (2, "numa.node".into(), "1".into()),
        ]
    );
}

#[test]
fn cumulative_batches_name_the_series_whose_totals_they_carry() {
    // Delta batches name none: nothing supersedes a delta.
    assert!(
        encode(&interval(Temporality::Delta), &[])
            .unwrap()
            .totals_of
            .is_empty()
    );
    // A cumulative batch names each of its series once, by the key that series has
    // in every interval (here two intervals from sets registered anew).
    let first = interval(Temporality::Cumulative);
    let mut keys: Vec<u64> = first.series.iter().map(series_key).collect();
    keys.sort_unstable();
    assert_eq!(keys.len(), 2);
    assert_ne!(keys[0], keys[1]);
    assert_eq!(encode(&first, &[]).unwrap().totals_of, keys);
    let again = encode(&interval(Temporality::Cumulative), &[]).unwrap();
    assert_eq!(again.totals_of, keys);

    // A kept core tells series apart; split batches name only their own series.
    let per_core = per_core(&[1; 4], Temporality::Cumulative);
    let parts = its_exporter_otap::encode_parts(&per_core, &[], 2).unwrap();
    assert_eq!(parts.len(), 2);
    let named: Vec<Vec<u64>> = parts.iter().map(|p| p.totals_of.clone()).collect();
    assert!(named.iter().all(|keys| keys.len() == 2), "{named:?}");
    let mut all: Vec<u64> = named.concat();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 4, "four cores, four series");
    let mut expected: Vec<u64> = per_core.series.iter().map(series_key).collect();
    expected.sort_unstable();
    assert_eq!(all, expected);
}

#[test]
fn an_interval_bigger_than_a_batch_splits_between_series() {
    let (sender, queue) = metric_schema::channel(64);
    let mut r = Reporter::new(sender, 0, 0);
    let sets: Vec<_> = (0..10)
        .map(|i| {
            let set = r.register::<Kinds, _>(&Who {
                name: format!("w{i}"),
                shard: i,
            });
            set.requests.add(1 + u64::from(i));
            set.level.add(-1);
            set.depth.set(0.5);
            set
        })
        .collect();
    r.report();
    let interval = aggregate(&queue, Keep::default(), Temporality::Delta);
    assert_eq!(interval.point_count(), 30);

    let whole = its_exporter_otap::encode_parts(&interval, &[], 1 << 16).unwrap();
    assert_eq!(whole.len(), 1);

    // Three points a series, seven rows a batch: two series (six rows) per batch.
    let parts = its_exporter_otap::encode_parts(&interval, &[], 7).unwrap();
    assert_eq!(parts.len(), 5);
    let mut requests = Vec::new();
    for part in &parts {
        let root = part.get(PayloadType::UnivariateMetrics).unwrap();
        assert_eq!(root.num_rows(), 6);
        // Each batch numbers its own scopes from 0 and carries their attributes.
        let scope = attributes(part.get(PayloadType::ScopeAttrs).unwrap());
        assert_eq!(scope.len(), 4, "two scopes of two attributes");
        let names = strings(root, "name");
        let values = column::<Int64Array>(
            part.get(PayloadType::NumberDataPoints).unwrap(),
            "int_value",
        );
        let parents = undelta(column::<UInt16Array>(
            part.get(PayloadType::NumberDataPoints).unwrap(),
            "parent_id",
        ));
        for (row, parent) in parents.iter().enumerate() {
            if names[usize::from(*parent)] == "requests" {
                requests.push(values.value(row));
            }
        }
    }
    // Every series went out once: the requests of all ten sets, none twice.
    requests.sort_unstable();
    assert_eq!(requests, (1..=10).collect::<Vec<i64>>());
    // A series is never split, even when it alone is over the limit.
    let singles = its_exporter_otap::encode_parts(&interval, &[], 1).unwrap();
    assert_eq!(singles.len(), 10);
    assert!(singles.iter().all(|p| p.point_count() == 3));
    drop(sets);
}

/// A delta interval over [0, 1] of `Kinds` series, built directly as the aggregator's
/// model: one per `(name, points)`, its shard the series' index.
fn model_interval(series: impl Iterator<Item = (String, Vec<Point>)>) -> Interval {
    use its_processors::model::Identity;
    use metric_schema::AttributeSet;
    delta_interval(series.zip(0..).map(|((name, points), i)| {
        let identity = Identity {
            attributes: <Who as AttributeSet>::DESCRIPTOR,
            values: vec![AttributeValue::Str(name.into()), AttributeValue::Int(i)],
            core: None,
            numa_node: None,
        };
        (identity, points)
    }))
}

/// A delta interval over [0, 1] of `Kinds` series, one per `(identity, points)`.
fn delta_interval(
    series: impl Iterator<Item = (its_processors::model::Identity, Vec<Point>)>,
) -> Interval {
    use metric_schema::MetricSet;
    let series = series
        .map(|(identity, points)| its_processors::model::Series {
            descriptor: <Kinds as MetricSet>::DESCRIPTOR,
            identity: std::sync::Arc::new(identity),
            start_unix_nanos: 0,
            end_unix_nanos: 1,
            points,
        })
        .collect();
    Interval {
        start_unix_nanos: 0,
        end_unix_nanos: 1,
        temporality: Temporality::Delta,
        series,
    }
}

/// 65,540 points (13,108 series of five): one more metric row than a batch's u16 ids
/// address.
fn oversized_interval() -> Interval {
    model_interval((0..13_108).map(|i| {
        let points = (0..5)
            .map(|field| Point {
                field,
                value: Value::U64(1),
            })
            .collect();
        (format!("s{i}"), points)
    }))
}

/// Scope ids of the root rows, decoded.
fn root_scopes(root: &RecordBatch) -> Vec<u16> {
    let scope = root.column_by_name("scope").unwrap().as_struct();
    undelta(scope.column_by_name("id").unwrap().as_primitive())
}

/// Every number point of `tables` decoded the way a consumer does: its metric row's
/// name, that row's scope's `test.name` attribute, and its integer value; sorted.
fn decoded_number_points(tables: &its_exporter_otap::MetricsTables) -> Vec<(String, String, i64)> {
    let root = tables.get(PayloadType::UnivariateMetrics).unwrap();
    let names = strings(root, "name");
    let scopes = root_scopes(root);
    let scope_names: BTreeMap<u32, String> =
        attributes(tables.get(PayloadType::ScopeAttrs).unwrap())
            .into_iter()
            .filter(|(_, key, _)| key == "test.name")
            .map(|(scope, _, name)| (scope, name))
            .collect();
    let dp = tables.get(PayloadType::NumberDataPoints).unwrap();
    let ints = column::<Int64Array>(dp, "int_value");
    let mut points: Vec<(String, String, i64)> = undelta(column::<UInt16Array>(dp, "parent_id"))
        .iter()
        .enumerate()
        .map(|(i, metric)| {
            let metric = usize::from(*metric);
            let scope = u32::from(scopes[metric]);
            (
                scope_names[&scope].clone(),
                names[metric].clone(),
                ints.value(i),
            )
        })
        .collect();
    points.sort();
    points
}

/// A delta interval of `Kinds` series named s0, s1, ...: each has `requests`, and
/// those that `with_level` picks have `level` too (a delta interval sends only the
/// fields that moved).
fn sparse_interval(series: usize, with_level: impl Fn(usize) -> bool) -> Interval {
    model_interval((0..series).map(|i| {
        let mut points = vec![Point {
            field: 0,
            value: Value::U64(i as u64 + 1),
        }];
        if with_level(i) {
            points.push(Point {
                field: 1,
                value: Value::I64(-(i as i64) - 1),
            });
        }
        (format!("s{i:02}"), points)
    }))
}

/// The root table's metric names of 16 scopes grouped by their fields: eight with
/// `requests` alone, then eight with `requests` and `level`.
fn eight_without_level_then_eight_with() -> Vec<&'static str> {
    let mut names = vec!["requests"; 8];
    names.extend(["requests", "level"].repeat(8));
    names
}

/// What [`decoded_number_points`] should give for `interval`.
fn expected_number_points(interval: &Interval) -> Vec<(String, String, i64)> {
    let mut expected: Vec<(String, String, i64)> = interval
        .series
        .iter()
        .flat_map(|s| {
            let AttributeValue::Str(name) = &s.identity.values[0] else {
                panic!("a name")
            };
            s.points.iter().map(move |p| {
                let value = match p.value {
                    Value::U64(v) => v as i64,
                    Value::I64(v) => v,
                    _ => panic!("numbers only"),
                };
                let field = s.descriptor.fields[usize::from(p.field)].name;
                (name.to_string(), field.to_string(), value)
            })
        })
        .collect();
    expected.sort();
    expected
}

/// The series names in the order of their scopes' ids.
fn scope_order(tables: &its_exporter_otap::MetricsTables) -> Vec<String> {
    attributes(tables.get(PayloadType::ScopeAttrs).unwrap())
        .into_iter()
        .filter(|(_, key, _)| key == "test.name")
        .map(|(_, _, name)| name)
        .collect()
}

#[test]
fn scopes_whose_fields_alternate_are_grouped_by_them_and_decode_the_same() {
    // Every other series has `level`: 15 changes of fields between 16 scopes, two
    // distinct sets of fields. Grouped, the root rows repeat one period per group.
    let interval = sparse_interval(16, |i| i % 2 == 1);
    let tables = encode(&interval, &[]).unwrap();
    let root = tables.get(PayloadType::UnivariateMetrics).unwrap();
    let names = eight_without_level_then_eight_with();
    assert_eq!(strings(root, "name"), names);
    let scopes = root_scopes(root);
    assert_eq!(scopes[..8], (0..8).collect::<Vec<u16>>(), "one row a scope");
    assert_eq!(
        scopes[8..],
        (8..16).flat_map(|s| [s, s]).collect::<Vec<u16>>()
    );
    // The scopes keep their canonical order within a group, and their attributes
    // follow them: what every point decodes to is unchanged.
    let order = scope_order(&tables);
    assert_eq!(
        [&order[0], &order[7], &order[8], &order[15]],
        ["s00", "s14", "s01", "s15"]
    );
    assert_eq!(
        decoded_number_points(&tables),
        expected_number_points(&interval)
    );
}

#[test]
fn scopes_are_grouped_from_four_changes_of_fields_per_set_of_fields() {
    // Two sets of fields among 16 scopes: eight changes are enough, seven are not;
    // below, the canonical order stays (it compresses the scope attributes best).
    let canonical: Vec<String> = (0..16).map(|i| format!("s{i:02}")).collect();
    let seven = sparse_interval(16, |i| [1, 3, 5].contains(&i) || i >= 7);
    let tables = encode(&seven, &[]).unwrap();
    assert_eq!(scope_order(&tables), canonical);
    let root = tables.get(PayloadType::UnivariateMetrics).unwrap();
    assert_eq!(
        strings(root, "name")[1..4],
        ["requests", "level", "requests"]
    );
    assert_eq!(
        decoded_number_points(&tables),
        expected_number_points(&seven)
    );

    let eight = sparse_interval(16, |i| [1, 3, 5, 7].contains(&i));
    let tables = encode(&eight, &[]).unwrap();
    // Those without `level` first, then those with it, each in canonical order.
    let grouped: Vec<String> = [0, 2, 4, 6]
        .into_iter()
        .chain(8..16)
        .chain([1, 3, 5, 7])
        .map(|i| format!("s{i:02}"))
        .collect();
    assert_eq!(scope_order(&tables), grouped);
    assert_eq!(
        decoded_number_points(&tables),
        expected_number_points(&eight)
    );
}

#[test]
fn scopes_shared_by_kept_cores_move_whole() {
    // Each scope holds two cores' series; every other scope's cores moved `level`.
    let mut interval = sparse_interval(16, |i| i % 2 == 1);
    interval.series = interval
        .series
        .into_iter()
        .flat_map(|series| {
            (0..2).map(move |core| {
                let mut series = series.clone();
                let mut identity = (*series.identity).clone();
                identity.core = Some(core);
                series.identity = std::sync::Arc::new(identity);
                series
            })
        })
        .collect();
    let tables = encode(&interval, &[]).unwrap();
    let root = tables.get(PayloadType::UnivariateMetrics).unwrap();
    let names = eight_without_level_then_eight_with();
    assert_eq!(
        strings(root, "name"),
        names,
        "one metric row per field of a scope"
    );
    let dp = tables.get(PayloadType::NumberDataPoints).unwrap();
    assert_eq!(dp.num_rows(), 48, "both cores' points");
    assert_eq!(
        decoded_number_points(&tables),
        expected_number_points(&interval)
    );
}

#[test]
fn scopes_of_a_set_wider_than_64_fields_group_by_their_fields_too() {
    // Past 64 fields a scope's fields are hashed instead of set as bits: scopes with
    // equal fields must still land together. Every other series has field 66 as well.
    use metric_schema::{
        InstrumentKind, MetricsDescriptor, MetricsField, Stability, Temporality, ValueType,
    };
    let names: Vec<&'static str> = (0..70)
        .map(|i| &*Box::leak(format!("f{i}").into_boxed_str()))
        .collect();
    let fields: Vec<MetricsField> = names
        .iter()
        .map(|name| MetricsField {
            name,
            unit: "1",
            instrument: InstrumentKind::Counter,
            value_type: ValueType::U64,
            temporality: Temporality::Delta,
            brief: "A field.",
            stability: Stability::Experimental,
        })
        .collect();
    let wide: &'static MetricsDescriptor = Box::leak(Box::new(MetricsDescriptor {
        name: "test.otap.wide",
        brief: "Wide.",
        stability: Stability::Experimental,
        fields: Box::leak(fields.into_boxed_slice()),
        rust_type: "tests::Wide",
    }));
    let mut interval = sparse_interval(16, |_| false);
    for (i, series) in interval.series.iter_mut().enumerate() {
        series.descriptor = wide;
        if i % 2 == 1 {
            series.points.push(Point {
                field: 66,
                value: Value::U64(i as u64),
            });
        }
    }
    let tables = encode(&interval, &[]).unwrap();
    let root = tables.get(PayloadType::UnivariateMetrics).unwrap();
    // The groups come in the order of their hashes: either may be first.
    let (mut alone, mut with_66) = (vec!["f0"; 8], ["f0", "f66"].repeat(8));
    let names = strings(root, "name");
    if names[1] == "f66" {
        std::mem::swap(&mut alone, &mut with_66);
    }
    assert_eq!(names, [alone, with_66].concat());
    assert_eq!(
        decoded_number_points(&tables),
        expected_number_points(&interval)
    );
}

#[test]
fn more_points_than_u16_ids_need_encode_parts() {
    let interval = oversized_interval();
    assert_eq!(interval.point_count(), 65_540);
    let e = encode(&interval, &[]).unwrap_err().to_string();
    assert!(
        e.contains("65540 metric rows") && e.contains("encode_parts"),
        "{e}"
    );
    let parts = its_exporter_otap::encode_parts(&interval, &[], 1 << 16).unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].point_count(), 65_535, "13,107 whole series");
    let total: usize = parts
        .iter()
        .map(its_exporter_otap::MetricsTables::point_count)
        .sum();
    assert_eq!(total, 65_540);
}

#[test]
fn merged_intervals_send_each_point_with_its_own_window() {
    // `processor:batch` merges consecutive intervals: the same series twice, taken at
    // 10 and at 20. Each point goes out with its own start and time, not the merged
    // interval's end for all.
    use nodes::Mergeable;
    let (sender, queue) = metric_schema::channel(16);
    let mut r = Reporter::new(sender, 0, 0);
    let a = r.register::<Kinds, _>(&Who {
        name: "a".into(),
        shard: 1,
    });
    let mut agg = Aggregator::new(Keep::default(), 0);
    let mut cut = |requests: u64, end: u64| {
        a.requests.add(requests);
        r.report();
        while let Some(batch) = queue.try_recv() {
            agg.apply(&batch);
        }
        agg.take(end, &[Temporality::Delta]).remove(0)
    };
    let mut merged = cut(3, 10);
    assert!(merged.merge(Box::new(cut(4, 20))).is_ok());
    let tables = encode(&merged, &[]).unwrap();
    let dp = tables.get(PayloadType::NumberDataPoints).unwrap();
    let starts = dp
        .column_by_name("start_time_unix_nano")
        .unwrap()
        .as_primitive::<arrow_array::types::TimestampNanosecondType>();
    let times = dp
        .column_by_name("time_unix_nano")
        .unwrap()
        .as_primitive::<arrow_array::types::TimestampNanosecondType>();
    let ints = column::<Int64Array>(dp, "int_value");
    let points: Vec<(i64, i64, i64)> = (0..dp.num_rows())
        .map(|i| (starts.value(i), times.value(i), ints.value(i)))
        .collect();
    assert_eq!(points, [(0, 10, 3), (10, 20, 4)]);
    // Under one metric: the same series, so the same scope and field.
    let root = tables.get(PayloadType::UnivariateMetrics).unwrap();
    assert_eq!(root.num_rows(), 1);
    assert_eq!(undelta(column::<UInt16Array>(dp, "parent_id")), [0, 0]);
}

/// `sets` series of `Kinds`, each with its five points: counters, a gauge, a summary
/// and an exponential histogram of `buckets` positive buckets.
fn histogram_heavy_interval(sets: usize, buckets: usize) -> Interval {
    use its_processors::model::{Buckets, ExpHistogram};
    use metric_schema::snapshot::MmscValue;
    let histogram = |i: usize| ExpHistogram {
        scale: 3,
        count: (buckets * 2) as u64,
        sum: 1.0,
        min: 0.5,
        max: 2.0,
        zero_count: 0,
        positive: Buckets {
            offset: -4,
            counts: (0..buckets).map(|b| 1 + ((b + i) % 3) as u64).collect(),
        },
        negative: Buckets::default(),
    };
    let point = |field, value| Point { field, value };
    model_interval((0..sets).map(|i| {
        let points = vec![
            point(0, Value::U64(i as u64)),
            point(1, Value::I64(-(i as i64))),
            point(2, Value::F64(0.5)),
            point(3, Value::Histogram(Box::new(histogram(i)))),
            point(
                4,
                Value::Mmsc(MmscValue {
                    min: 1.0,
                    max: 3.0,
                    sum: 4.0,
                    count: 2,
                }),
            ),
        ];
        (format!("set-{i}"), points)
    }))
}

#[test]
fn big_histograms_split_under_a_byte_limit_a_receiver_takes() {
    use its_exporter_otap::{BatchLimits, IpcCompression, Producer, estimated_size};
    use prost::Message as _;
    // 400 sets with a 600-bucket histogram each: about 2 MB before compression, and
    // well under the point limit.
    let interval = histogram_heavy_interval(400, 600);
    let estimate: usize = interval.series.iter().map(estimated_size).sum();
    let whole = encode(&interval, &[]).unwrap();
    let actual = Producer::new(IpcCompression::None)
        .produce(&whole)
        .unwrap()
        .encoded_len();
    // The estimate is generous (it also counts every string), and not absurdly so.
    assert!(
        actual <= estimate && estimate < 2 * actual,
        "{actual} bytes, estimated {estimate}"
    );

    let limit = 256 * 1024;
    let limits = BatchLimits {
        points: 1 << 16,
        bytes: limit,
    };
    let parts = its_exporter_otap::encode_parts(&interval, &[], limits).unwrap();
    assert!(parts.len() >= actual / limit, "{} parts", parts.len());
    // Every batch of one stream (the first carries the schemas and dictionaries) is
    // within the limit, uncompressed, and every point goes out once.
    let mut producer = Producer::new(IpcCompression::None);
    let mut points = 0;
    for part in &parts {
        let size = producer.produce(part).unwrap().encoded_len();
        assert!(size <= limit, "a batch of {size} bytes, over {limit}");
        points += part.point_count();
    }
    assert_eq!(points, interval.point_count());
    // The point limit still holds on its own.
    let by_points = its_exporter_otap::encode_parts(&interval, &[], 1000).unwrap();
    assert_eq!(by_points.len(), 2, "200 sets of five points a batch");
}

#[test]
fn attribute_heavy_series_and_a_big_resource_stay_under_the_byte_limit() {
    use its_exporter_otap::{BatchLimits, IpcCompression, Producer};
    use its_processors::model::{Identity, Series};
    use metric_schema::MetricSet;
    use metric_schema::{AttributeField, AttributeType, AttributesDescriptor};
    use prost::Message as _;
    // 3,000 series of one counter, each with 40 unique short strings under one-letter
    // keys, an int, a double and a bool: attribute rows and dictionary values, hardly
    // any points; and a 20 KB resource attribute in every batch.
    let field = |key: String, ty| AttributeField {
        key: Box::leak(key.into_boxed_str()),
        ty,
        brief: "",
    };
    let keys = ('A'..='Z').chain('a'..='n');
    let mut fields: Vec<AttributeField> = keys
        .map(|k| field(k.to_string(), AttributeType::String))
        .collect();
    fields.push(field("n".into(), AttributeType::Int));
    fields.push(field("x".into(), AttributeType::Double));
    fields.push(field("f".into(), AttributeType::Bool));
    let wide: &'static AttributesDescriptor = Box::leak(Box::new(AttributesDescriptor {
        name: "test.otap.wide",
        brief: "",
        fields: Box::leak(fields.into_boxed_slice()),
        rust_type: "Wide",
    }));
    let series = (0..3_000)
        .map(|i: i64| {
            let mut values: Vec<AttributeValue> = (0..40)
                .map(|k| AttributeValue::Str(format!("{k}.{i}").into()))
                .collect();
            values.push(AttributeValue::Int(i));
            values.push(AttributeValue::Double(i as f64 / 3.0));
            values.push(AttributeValue::Bool(i % 2 == 0));
            Series {
                descriptor: <Kinds as MetricSet>::DESCRIPTOR,
                identity: std::sync::Arc::new(Identity {
                    attributes: wide,
                    values,
                    core: None,
                    numa_node: None,
                }),
                start_unix_nanos: 0,
                end_unix_nanos: 1,
                points: vec![Point {
                    field: 0,
                    value: Value::U64(1),
                }],
            }
        })
        .collect();
    let interval = Interval {
        start_unix_nanos: 0,
        end_unix_nanos: 1,
        temporality: Temporality::Delta,
        series,
    };
    let resource = [(
        "service.name".to_string(),
        AttributeValue::Str("r".repeat(20_000).into()),
    )];
    let limit = 2 << 20;
    let limits = BatchLimits {
        points: 1 << 16,
        bytes: limit,
    };
    let parts = its_exporter_otap::encode_parts(&interval, &resource, limits).unwrap();
    assert!(parts.len() > 2, "{} parts", parts.len());
    let mut producer = Producer::new(IpcCompression::None);
    for part in &parts {
        let size = producer.produce(part).unwrap().encoded_len();
        assert!(size <= limit, "a batch of {size} bytes, over {limit}");
    }
    let points: usize = parts
        .iter()
        .map(its_exporter_otap::MetricsTables::point_count)
        .sum();
    assert_eq!(points, 3_000);
}
