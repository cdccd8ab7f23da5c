//! Writes an OTAP stream that covers what the engine's own metrics do not, for the
//! independent decoders of the test command, and what every point must decode to.
//!
//! ```text
//! cargo run -p its-exporter-otap --example otap_fixture -- STREAM.bin EXPECTED.json
//! ```
//!
//! `STREAM.bin` holds length-delimited `BatchArrowRecords`, as the exporter's `file:`
//! mode writes them; `EXPECTED.json` is the digest `scripts/otap_check.py --digest`
//! and `tools/otap-peer` compute from what they decode, here computed from the
//! intervals before encoding. The stream has:
//! - scope attributes of every type (strings sharing long prefixes, the empty string,
//!   `i64::MIN`/`MAX`, negative and zero doubles, booleans), so the quasi-delta parent
//!   ids run over every kind of equal and unequal neighbour;
//! - every metric kind (monotonic and up-down sums, float gauges, min/max/sum/count
//!   histograms, exponential histograms);
//! - intervals with cores folded and with `core.id` kept (data-point attributes and
//!   point ids), in turns, and intervals without gauges, so columns come and go;
//! - UInt8 dictionaries limited to 4 values, so keys widen mid-stream (schema resets);
//! - intervals split into several `BatchArrowRecords` of at most 48 points;
//! - two consecutive intervals merged into one, as `processor:batch` merges them, so
//!   the same series appears twice with two windows;
//! - a last interval where every other scope, in canonical order, has one field more,
//!   so that the encoder groups the scopes by their fields and renumbers them (checked
//!   here: the fixture fails if they come out ungrouped).

use std::collections::BTreeMap;
use std::io::Write as _;

use its_exporter_otap::{IpcCompression, Producer, ProducerOptions, encode_parts};
use its_processors::model::Value;
use its_processors::{Aggregator, Interval, Keep, Temporality};
use metric_schema::{
    AttributeValue, Counter, Gauge, Histogram, Mmsc, Reporter, UpDownCounter, attribute_set,
    metric_set,
};
use prost::Message as _;

/// Attributes of every type.
#[attribute_set(name = "fixture.attrs")]
struct Mixed {
    /// A label.
    #[attribute(key = "fixture.label")]
    label: String,
    /// A signed count.
    #[attribute(key = "fixture.count")]
    count: i64,
    /// A ratio.
    #[attribute(key = "fixture.ratio")]
    ratio: f64,
    /// A switch.
    #[attribute(key = "fixture.on")]
    on: bool,
}

/// Every metric kind.
#[metric_set(name = "fixture.kinds")]
struct Kinds {
    /// Requests.
    #[metric(unit = "{request}")]
    requests: Counter<u64>,
    /// Queue level.
    #[metric(unit = "{item}")]
    level: UpDownCounter<i64>,
    /// Depth.
    #[metric(unit = "{item}")]
    depth: Gauge<f64>,
    /// Latency.
    #[metric(unit = "s", max_buckets = 32)]
    latency: Histogram<32>,
    /// Sizes.
    #[metric(unit = "By")]
    size: Mmsc,
}

/// Per point key: the points, the sum of their integer values (counts for
/// histograms), the wrapping sum of their doubles' bits (gauge values, histogram
/// sums), and the wrapping sum of `start + 3 * time` over their windows.
type Digest = BTreeMap<String, (u64, i128, u64, u64)>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(stream_path), Some(digest_path), None) = (args.next(), args.next(), args.next())
    else {
        return Err("usage: otap_fixture STREAM.bin EXPECTED.json".into());
    };

    let sets = sets();
    let alternate = every_other_in_canonical_order(&sets);
    let (sender, queue) = metric_schema::channel(1024);
    let mut folded = Aggregator::new(Keep::default(), 0);
    let mut kept = Aggregator::new(
        Keep {
            core: true,
            numa_node: false,
        },
        0,
    );
    let mut reporters: Vec<_> = (0..3)
        .map(|core| {
            let mut reporter = Reporter::new(sender.clone(), core, 0);
            let handles: Vec<_> = sets
                .iter()
                .map(|who| reporter.register::<Kinds, _>(who))
                .collect();
            (reporter, handles)
        })
        .collect();

    let mut producer = Producer::new(ProducerOptions {
        compression: IpcCompression::Zstd,
        u8_dictionary_limit: 4,
    });
    let resource = [(
        "service.name".to_string(),
        AttributeValue::Str("otap-fixture".into()),
    )];
    let mut stream = Vec::new();
    let mut digest = Digest::new();
    let mut held: Option<Interval> = None;
    for round in 0..9u32 {
        for (core, (reporter, handles)) in (0u32..).zip(reporters.iter_mut()) {
            record(round, core, handles, &alternate);
            reporter.report();
        }
        while let Some(batch) = queue.try_recv() {
            folded.apply(&batch);
            kept.apply(&batch);
        }
        let end = 1_000_000 * u64::from(round + 1);
        // Cores folded and kept apart, in turns; each aggregator's other interval
        // is cut and dropped so that the two do not drift apart. Rounds 6 and 7 go
        // out as one interval, merged as `processor:batch` merges them: each point
        // must keep its own window.
        let mut intervals = [
            folded.take(end, &[Temporality::Delta]),
            kept.take(end, &[Temporality::Delta]),
        ];
        let mut interval = intervals[round as usize % 2].remove(0);
        if round == 6 {
            held = Some(interval);
            continue;
        }
        if let Some(mut earlier) = held.take() {
            nodes::Mergeable::merge(&mut earlier, Box::new(interval))
                .map_err(|_| "intervals of one temporality merge")?;
            interval = earlier;
        }
        add_interval(&interval, &mut digest);
        for tables in encode_parts(&interval, &resource, 48)? {
            if round == 8 && field_changes_between_scopes(&tables)? > 1 {
                return Err("the last interval's scopes alternate fields, yet the encoder did not group them: the decoders would not see grouped scopes".into());
            }
            let bar = producer.produce(&tables)?;
            bar.encode_length_delimited(&mut stream)?;
        }
    }

    std::fs::write(&stream_path, &stream)?;
    write_digest(&digest, &digest_path)?;
    println!(
        "otap_fixture: {} bytes of BatchArrowRecords, {} point keys",
        stream.len(),
        digest.len()
    );
    Ok(())
}

/// Sets bound with attributes of every type: strings that share long prefixes and the
/// empty string, extreme and repeated integers, negative and zero doubles, booleans.
fn sets() -> Vec<Mixed> {
    let labels = ["pipeline-long-b", "pipeline-long-a", "pipeline", "a", ""];
    let counts = [-3, 7, -3, i64::MIN, i64::MAX];
    let ratios = [0.25, -1.5, 0.25, -1500.0, -0.0, 0.0];
    (0..15)
        .map(|i| Mixed {
            label: labels[i % 5].to_string(),
            count: counts[(i / 3) % 5],
            ratio: ratios[(i / 2) % 6],
            on: i % 2 == 0,
        })
        .collect()
}

/// Whether each set is every other one in the canonical order of series
/// (`its_processors::model::series_order`: the attribute values in declaration order,
/// doubles by total order).
fn every_other_in_canonical_order(sets: &[Mixed]) -> Vec<bool> {
    let mut order: Vec<usize> = (0..sets.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&sets[a], &sets[b]);
        (a.label.as_bytes(), a.count)
            .cmp(&(b.label.as_bytes(), b.count))
            .then(a.ratio.total_cmp(&b.ratio))
            .then(a.on.cmp(&b.on))
    });
    let mut alternate = vec![false; sets.len()];
    for (rank, set) in order.into_iter().enumerate() {
        alternate[set] = rank % 2 == 1;
    }
    alternate
}

/// How often the metrics of one scope differ from the previous scope's, over the
/// root table of `tables`.
fn field_changes_between_scopes(
    tables: &its_exporter_otap::MetricsTables,
) -> Result<usize, Box<dyn std::error::Error>> {
    use arrow_array::cast::AsArray as _;
    use arrow_array::types::UInt16Type;
    let root = tables
        .get(its_exporter_otap::PayloadType::UnivariateMetrics)
        .ok_or("no root table")?;
    let names = root
        .column_by_name("name")
        .ok_or("no name column")?
        .as_dictionary::<UInt16Type>();
    let values = names.values().as_string::<i32>();
    let scope = root.column_by_name("scope").ok_or("no scope column")?;
    let ids = scope
        .as_struct()
        .column_by_name("id")
        .ok_or("no scope id")?
        .as_primitive::<UInt16Type>();
    let mut scopes: Vec<Vec<&str>> = Vec::new();
    let mut id = 0;
    for (row, delta) in ids.values().iter().enumerate() {
        id += usize::from(*delta);
        scopes.resize_with(scopes.len().max(id + 1), Vec::new);
        scopes[id].push(values.value(usize::from(names.keys().value(row))));
    }
    Ok(scopes.windows(2).filter(|w| w[0] != w[1]).count())
}

/// One round's measurements on one core: gauges only in some rounds, histograms only
/// for some sets, so columns and tables come and go; in the last round, a level move
/// on the scopes `alternate` picks.
fn record(
    round: u32,
    core: u32,
    handles: &[metric_schema::MetricSetHandle<Kinds>],
    alternate: &[bool],
) {
    if round == 8 {
        // Requests everywhere, a level move on every other scope only.
        for ((i, set), moves) in (0u32..).zip(handles.iter()).zip(alternate) {
            set.requests.add(u64::from(1 + core + i));
            if *moves {
                set.level.add(1);
            }
        }
        return;
    }
    for (i, set) in (0u32..).zip(handles.iter()) {
        let v = 1 + round * 7 + core * 3 + i;
        set.requests.add(u64::from(v));
        set.level.add(i64::from(v % 5) - 2);
        if round % 3 != 1 {
            set.depth.set(f64::from(v) * 0.5);
        }
        if (i + round).is_multiple_of(4) {
            for k in 0..v % 6 {
                set.latency.record(f64::from(k + 1) * 1e-3);
                set.size.record(f64::from(v * 100 + k));
            }
        }
    }
}

/// `digest` as JSON: `{key: [points, sum, double bits, windows]}`.
fn write_digest(digest: &Digest, path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut json = serde_json::Map::new();
    for (key, (points, ints, bits, times)) in digest {
        let ints = i64::try_from(*ints)?;
        json.insert(key.clone(), serde_json::json!([points, ints, bits, times]));
    }
    let mut out = std::fs::File::create(path)?;
    out.write_all(serde_json::Value::Object(json).to_string().as_bytes())?;
    Ok(())
}

/// Adds every point of `interval` to `digest`, keyed as the decoders key what they
/// decode: kind, scope (the set's name), metric, and the set's attributes with the
/// kept core, as `key=json` sorted by key.
fn add_interval(interval: &Interval, digest: &mut Digest) {
    for series in &interval.series {
        let identity = &series.identity;
        let mut attrs: BTreeMap<&str, serde_json::Value> = identity
            .attributes
            .keys()
            .iter()
            .zip(&identity.values)
            .map(|(field, value)| {
                let json = match value {
                    AttributeValue::Str(s) => serde_json::Value::from(s.as_ref()),
                    AttributeValue::Int(i) => serde_json::Value::from(*i),
                    AttributeValue::Double(d) => serde_json::Value::from(*d),
                    AttributeValue::Bool(b) => serde_json::Value::from(*b),
                };
                (field.key, json)
            })
            .collect();
        if let Some(core) = identity.core {
            attrs.insert("core.id", core.into());
        }
        let attrs = attrs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        for point in &series.points {
            let field = &series.descriptor.fields[usize::from(point.field)];
            let (kind, ints, double) = match &point.value {
                Value::U64(v) => ("number", i128::from(*v), None),
                Value::I64(v) => ("number", i128::from(*v), None),
                Value::F64(v) => ("number", 0, Some(*v)),
                Value::Mmsc(m) => ("histogram", i128::from(m.count), Some(m.sum)),
                Value::Histogram(h) => ("exp_histogram", i128::from(h.count), Some(h.sum)),
            };
            let key = format!(
                "{kind}\t{}\t{}\t{attrs}",
                series.descriptor.name, field.name
            );
            let entry = digest.entry(key).or_default();
            entry.0 += 1;
            entry.1 += ints;
            entry.2 = entry.2.wrapping_add(double.map_or(0, f64::to_bits));
            entry.3 = entry
                .3
                .wrapping_add(series.start_unix_nanos)
                .wrapping_add(series.end_unix_nanos.wrapping_mul(3));
        }
    }
}
