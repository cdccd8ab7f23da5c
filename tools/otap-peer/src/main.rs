//! A second, independent decoder of what `exporter:otap` sends: the published
//! `otlp2records` crate reads each stream of `BatchArrowRecords` with one stateful
//! `OtapDecoder` (Arrow IPC streams keyed by schema id, dictionary deltas, schema
//! resets), validates every column against its own canonical OTAP tables, decodes the
//! ids and flattens the points.
//!
//! ```text
//! otap-peer [--expect-items N] [--digest DIGEST.json]... STREAM...
//! ```
//!
//! Each `STREAM` is one OTAP stream as a file of length-delimited `BatchArrowRecords`
//! (the exporter's `file:` mode, or what `scripts/otap_check.py --dump-dir` received on
//! one gRPC stream). The check fails unless every batch decodes and every exponential
//! histogram's buckets hold its count; with `--expect-items`, unless on every core the
//! demo pipeline's generator produced and its no-op exporter consumed `N` items. Each
//! `--digest` is what every point (kind, scope, metric, attributes) added up to for
//! someone else: the Python decoder (`scripts/otap_check.py`), which shares no code
//! with this one, or the source intervals (`its-exporter-otap`'s `otap_fixture`
//! example); ours must be the same, key by key.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use arrow_array::{
    Array, Float64Array, Int64Array, ListArray, RecordBatch, StringArray, TimestampNanosecondArray,
    UInt64Array,
};
use otlp2records::otap::OtapDecoder;
use serde_json::{Map, Value};

/// Per key: the points, the sum of their integer values (counts, for histograms), the
/// wrapping sum of the bits of their doubles (double values, histogram sums), and the
/// wrapping sum of `start + 3 * time` over their windows.
type Digest = BTreeMap<String, (u64, i128, u64, u64)>;

fn main() -> ExitCode {
    match run() {
        Ok(summary) => {
            println!("otap-peer: {summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("otap-peer: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<String, String> {
    let mut args = std::env::args().skip(1);
    let (mut expect_items, mut digests, mut streams) = (None, Vec::new(), Vec::new());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--expect-items" => {
                let n = args.next().ok_or("--expect-items needs a number")?;
                expect_items = Some(
                    n.parse::<i128>()
                        .map_err(|e| format!("--expect-items {n}: {e}"))?,
                );
            }
            "--digest" => digests.push(args.next().ok_or("--digest needs a file")?),
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}")),
            _ => streams.push(arg),
        }
    }
    if streams.is_empty() {
        return Err("give at least one stream file".into());
    }

    let mut digest = Digest::new();
    let (mut bars, mut histograms) = (0, 0);
    for path in &streams {
        let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
        let mut decoder = OtapDecoder::new();
        for (n, message) in messages(&bytes).enumerate() {
            let message = message.map_err(|e| format!("{path}: BatchArrowRecords {n}: {e}"))?;
            let batches = decoder
                .decode_metrics(message)
                .map_err(|e| format!("{path}: BatchArrowRecords {n} does not decode: {e}"))?;
            let skipped = &batches.skipped;
            if skipped.summaries
                + skipped.nan_values
                + skipped.infinity_values
                + skipped.missing_values
                > 0
            {
                return Err(format!(
                    "{path}: BatchArrowRecords {n}: points skipped: {skipped:?}"
                ));
            }
            for batch in [&batches.sum, &batches.gauge].into_iter().flatten() {
                add_points("number", batch, ["int_value", "double_value"], &mut digest)?;
            }
            if let Some(batch) = &batches.histogram {
                add_points("histogram", batch, ["count", "sum"], &mut digest)?;
            }
            if let Some(batch) = &batches.exp_histogram {
                add_points("exp_histogram", batch, ["count", "sum"], &mut digest)?;
                histograms += check_buckets(batch)?;
            }
            bars += 1;
        }
    }

    let mut summary = format!(
        "{} stream(s), {bars} BatchArrowRecords decoded, {} point keys, {histograms} exponential \
         histograms ok",
        streams.len(),
        digest.len()
    );
    if let Some(expect) = expect_items {
        let cores = check_items(&digest, expect)?;
        let _ = write!(summary, ", {cores} cores x {expect} items conserved");
    }
    for path in &digests {
        compare(&digest, path)?;
        let _ = write!(summary, ", every point as in {path}");
    }
    Ok(summary)
}

/// The length-delimited messages of a stream file (a protobuf varint, then the bytes).
fn messages(bytes: &[u8]) -> impl Iterator<Item = Result<&[u8], String>> {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at == bytes.len() {
            return None;
        }
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let Some(&b) = bytes.get(at) else {
                return Some(Err("truncated length prefix".into()));
            };
            at += 1;
            len |= usize::from(b & 0x7f) << shift;
            shift += 7;
            if b < 0x80 {
                break;
            }
            if shift > 63 {
                return Some(Err("length prefix longer than a u64".into()));
            }
        }
        let Some(message) = bytes.get(at..at + len) else {
            return Some(Err(format!(
                "message of {len} bytes, {} left",
                bytes.len() - at
            )));
        };
        at += len;
        Some(Ok(message))
    })
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, String> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| format!("normalized batch without a {name} column of the expected type"))
}

/// The attributes of a point, scope and point attributes together, as
/// `key=value,...` with keys sorted and values in JSON (as `json.dumps` writes them).
fn attributes(scope: &StringArray, point: &StringArray, row: usize) -> Result<String, String> {
    let mut merged = BTreeMap::new();
    for column in [scope, point] {
        if column.is_null(row) {
            continue;
        }
        let parsed: Map<String, Value> =
            serde_json::from_str(column.value(row)).map_err(|e| format!("attributes JSON: {e}"))?;
        for (key, value) in parsed {
            if merged.insert(key.clone(), value).is_some() {
                return Err(format!("attribute {key} on both the scope and the point"));
            }
        }
    }
    Ok(merged
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(","))
}

fn add_points(
    kind: &str,
    batch: &RecordBatch,
    [value, double]: [&str; 2],
    digest: &mut Digest,
) -> Result<(), String> {
    let names = column::<StringArray>(batch, "name")?;
    let scopes = column::<StringArray>(batch, "scope_name")?;
    let scope_attrs = column::<StringArray>(batch, "scope_attributes")?;
    let point_attrs = column::<StringArray>(batch, "metric_attributes")?;
    let values: Vec<Option<i128>> = if let Ok(ints) = column::<Int64Array>(batch, value) {
        ints.iter().map(|v| v.map(i128::from)).collect()
    } else {
        column::<UInt64Array>(batch, value)?
            .iter()
            .map(|v| v.map(i128::from))
            .collect()
    };
    let doubles = column::<Float64Array>(batch, double)?;
    let times = column::<TimestampNanosecondArray>(batch, "time_unix_nano")?;
    let starts = column::<TimestampNanosecondArray>(batch, "start_time_unix_nano")?;
    for (row, v) in values.into_iter().enumerate() {
        let scope = if scopes.is_valid(row) {
            scopes.value(row)
        } else {
            ""
        };
        let key = format!(
            "{kind}\t{scope}\t{}\t{}",
            names.value(row),
            attributes(scope_attrs, point_attrs, row)?,
        );
        let entry = digest.entry(key).or_default();
        entry.0 += 1;
        entry.1 += v.unwrap_or(0);
        if doubles.is_valid(row) {
            entry.2 = entry.2.wrapping_add(doubles.value(row).to_bits());
        }
        let nanos = |t: &TimestampNanosecondArray| {
            if t.is_valid(row) {
                t.value(row).cast_unsigned()
            } else {
                0
            }
        };
        entry.3 = entry
            .3
            .wrapping_add(nanos(starts))
            .wrapping_add(nanos(times).wrapping_mul(3));
    }
    Ok(())
}

/// Every exponential histogram's buckets and zero count add up to its count.
fn check_buckets(batch: &RecordBatch) -> Result<usize, String> {
    let counts = column::<UInt64Array>(batch, "count")?;
    let zeros = column::<UInt64Array>(batch, "zero_count")?;
    let positive = column::<ListArray>(batch, "positive_bucket_counts")?;
    let negative = column::<ListArray>(batch, "negative_bucket_counts")?;
    let bucket_sum = |list: &ListArray, row: usize| -> u64 {
        if list.is_null(row) {
            return 0;
        }
        let values = list.value(row);
        values
            .as_any()
            .downcast_ref::<UInt64Array>()
            .map_or(0, |v| v.iter().flatten().sum())
    };
    for row in 0..batch.num_rows() {
        let held = bucket_sum(positive, row) + bucket_sum(negative, row) + zeros.value(row);
        if held != counts.value(row) {
            return Err(format!(
                "exponential histogram {row}: buckets and zero count hold {held}, count is {}",
                counts.value(row)
            ));
        }
    }
    Ok(batch.num_rows())
}

/// On every core, the demo pipeline's generator produced and its no-op exporter
/// consumed `expect` items; returns the number of cores.
fn check_items(digest: &Digest, expect: i128) -> Result<usize, String> {
    let mut totals: BTreeMap<(String, String), i128> = BTreeMap::new();
    for (key, (_, sum, _, _)) in digest {
        let mut parts = key.split('\t');
        let (Some("number"), Some("engine.node"), Some(metric), Some(attrs)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let attr = |name: &str| {
            attrs
                .split(',')
                .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
                .unwrap_or("")
                .to_string()
        };
        if attr("pipeline.group") != "\"demo\"" {
            continue;
        }
        let counted = matches!(
            (attr("node.id").as_str(), metric),
            ("\"generator\"", "produced_items") | ("\"noop\"", "consumed_items")
        );
        if counted {
            *totals
                .entry((attr("core.id"), format!("{}.{metric}", attr("node.id"))))
                .or_default() += sum;
        }
    }
    let cores: std::collections::BTreeSet<_> =
        totals.keys().map(|(core, _)| core.clone()).collect();
    if cores.is_empty() {
        return Err("no engine.node points of pipeline group demo".into());
    }
    for core in &cores {
        for metric in ["\"generator\".produced_items", "\"noop\".consumed_items"] {
            let got = totals
                .get(&(core.clone(), metric.to_string()))
                .copied()
                .unwrap_or(0);
            if got != expect {
                return Err(format!("core {core} {metric}: {got}, expected {expect}"));
            }
        }
    }
    Ok(cores.len())
}

/// The digest in `path` (`{key: [points, sum, double bits, windows]}`) equals ours,
/// key by key.
fn compare(digest: &Digest, path: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let theirs: Digest = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    if theirs.is_empty() {
        return Err(format!("{path}: an empty digest"));
    }
    for (key, ours) in digest {
        match theirs.get(key) {
            Some(t) if t == ours => {}
            Some(t) => {
                return Err(format!(
                    "{key:?}: (points, sum, double bits, windows) {ours:?} here, {t:?} in {path}"
                ));
            }
            None => return Err(format!("{key:?}: decoded here, not in {path}")),
        }
    }
    if let Some(key) = theirs.keys().find(|k| !digest.contains_key(*k)) {
        return Err(format!("{key:?}: in {path}, not decoded here"));
    }
    Ok(())
}
