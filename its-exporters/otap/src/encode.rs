//! ITS intervals as the normalized OTAP metrics tables (sans I/O).
//!
//! Ids delta-encoded and attribute parent ids quasi-delta-encoded, rows sorted so that
//! no delta is negative (`../shared/OTAP.md` §0). One resource (from
//! `engine.telemetry.resource`); one scope per metric set and entity attributes (the
//! set's name, its attributes as scope attributes); one metric row per field of a
//! scope, with all its points (the scope's kept cores or NUMA nodes, and the intervals
//! `processor:batch` merged), as an OpenTelemetry SDK exports a metric; a kept
//! `core.id` / `numa.node` as data-point attributes (the `*_DP_ATTRS` tables, with
//! point ids). The root table's strings (name, description, unit, scope name) and the
//! attribute tables' keys and string values are `Dictionary<UInt16, Utf8>` with a
//! dictionary of this batch only; the [`Producer`](crate::Producer) folds them into
//! per-stream dictionaries with the narrowest keys OTAP allows. Optional columns that
//! hold only nulls are left out. Series are taken in the canonical order
//! ([`series_order`], which `processor:aggregate` emits already), except that the
//! scopes of a set whose fields alternate from scope to scope are grouped by the fields
//! they have points for (see `group_scopes_by_fields`); u16 metric ids cap
//! a batch at 65,536 metric rows, and [`encode_parts`] splits bigger intervals at as
//! many points (or ones bigger in bytes than a receiver takes in one message).

use std::sync::Arc;

use arrow_array::builder::{Float64Builder, Int32Builder, UInt64Builder};
use arrow_array::types::UInt16Type;
use arrow_array::{
    ArrayRef, BooleanArray, DictionaryArray, Float64Array, Int32Array, Int64Array, ListArray,
    RecordBatch, StringArray, StructArray, TimestampNanosecondArray, UInt8Array, UInt16Array,
    UInt32Array, UInt64Array,
};
use arrow_buffer::{BooleanBuffer, NullBuffer, OffsetBuffer};
use arrow_schema::{ArrowError, DataType, Field, Fields, Schema, TimeUnit};
use its_processors::model::{
    Buckets, Identity, Interval, Series, Temporality, Value, leading_bytes, same_or_cmp,
    series_order,
};
use metric_schema::{AttributeValue, AttributesDescriptor, InstrumentKind};

/// OTAP payload types this encoder produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i32)]
pub enum PayloadType {
    /// Resource attributes.
    ResourceAttrs = 1,
    /// Scope attributes.
    ScopeAttrs = 2,
    /// The root table: one row per metric.
    UnivariateMetrics = 10,
    /// Gauge and sum points.
    NumberDataPoints = 11,
    /// Histogram points (our `Mmsc`: count, sum, min, max, no buckets).
    HistogramDataPoints = 13,
    /// Exponential histogram points.
    ExpHistogramDataPoints = 14,
    /// Attributes of number points (the kept `core.id` / `numa.node`).
    NumberDpAttrs = 15,
    /// Attributes of histogram points.
    HistogramDpAttrs = 17,
    /// Attributes of exponential histogram points.
    ExpHistogramDpAttrs = 18,
}

/// The tables of one interval; empty tables are left out.
#[derive(Debug, Clone)]
pub struct MetricsTables {
    /// Every table present, root first.
    pub tables: Vec<(PayloadType, RecordBatch)>,
    /// When the interval is cumulative, the series whose totals the tables carry, as
    /// [`series_key`]s (sorted, deduplicated); empty for delta. A newer batch with
    /// the totals of all these series makes this one redundant: the transport does
    /// not send it again after such a batch was taken (it would land late).
    pub totals_of: Vec<u64>,
}

impl MetricsTables {
    /// The table of `kind`, if present.
    pub fn get(&self, kind: PayloadType) -> Option<&RecordBatch> {
        self.tables.iter().find(|(k, _)| *k == kind).map(|(_, b)| b)
    }

    /// Data points across the point tables.
    pub fn point_count(&self) -> usize {
        [
            PayloadType::NumberDataPoints,
            PayloadType::HistogramDataPoints,
            PayloadType::ExpHistogramDataPoints,
        ]
        .iter()
        .filter_map(|k| self.get(*k))
        .map(RecordBatch::num_rows)
        .sum()
    }
}

/// Why an interval could not be encoded.
#[derive(Debug)]
pub enum EncodeError {
    /// More metric rows, resources or scopes than OTAP's u16 ids allow in one batch.
    TooManyRows {
        /// What overflowed.
        what: &'static str,
        /// How many there were.
        count: usize,
    },
    /// Arrow refused a column (a bug in this encoder).
    Arrow(ArrowError),
}

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EncodeError::TooManyRows { what, count } => write!(
                f,
                "{count} {what} in one batch, more than the 65536 OTAP's u16 ids allow: split the interval with `encode_parts`"
            ),
            EncodeError::Arrow(e) => write!(f, "arrow: {e}"),
        }
    }
}

impl std::error::Error for EncodeError {}

impl From<ArrowError> for EncodeError {
    fn from(e: ArrowError) -> Self {
        EncodeError::Arrow(e)
    }
}

fn id_field(name: &str, data_type: DataType, nullable: bool, encoding: &str) -> Field {
    let metadata: std::collections::HashMap<String, String> =
        [("encoding".to_string(), encoding.to_string())]
            .into_iter()
            .collect();
    Field::new(name, data_type, nullable).with_metadata(metadata)
}

/// The time zone OTAP producers attach to every timestamp column (receivers still
/// take untagged ones, for now only).
const UTC: &str = "UTC";

/// Nanoseconds since the Unix epoch, in UTC.
fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some(UTC.into()))
}

fn u16_id(i: usize, what: &'static str) -> Result<u16, EncodeError> {
    u16::try_from(i).map_err(|_| EncodeError::TooManyRows { what, count: i + 1 })
}

/// Values written as deltas of the previous one (the first as is).
fn delta_u16(values: &[u16]) -> Vec<u16> {
    let mut prev = 0u16;
    values
        .iter()
        .map(|&v| {
            let d = v.wrapping_sub(prev);
            prev = v;
            d
        })
        .collect()
}

/// One attribute row before sorting and quasi-delta encoding.
#[derive(Debug, Clone, PartialEq)]
struct AttrRow<'a> {
    parent: u32,
    key: &'a str,
    value: AttrValue<'a>,
}

#[derive(Debug, Clone, PartialEq)]
enum AttrValue<'a> {
    Str(&'a str),
    Int(i64),
    Double(f64),
    Bool(bool),
}

impl<'a> AttrValue<'a> {
    fn of(v: &'a AttributeValue) -> AttrValue<'a> {
        match v {
            AttributeValue::Str(s) => AttrValue::Str(s),
            AttributeValue::Int(i) => AttrValue::Int(*i),
            // -0.0 as 0.0: the Go consumer compares doubles with `==` and the Rust one
            // by total order, so only one zero keeps their quasi-delta decoding equal.
            AttributeValue::Double(d) => AttrValue::Double(if *d == 0.0 { 0.0 } else { *d }),
            AttributeValue::Bool(b) => AttrValue::Bool(*b),
        }
    }

    /// A prefix of the value's order: equal values have equal ones, and a smaller one
    /// means a smaller value (strings: their first eight bytes; doubles: IEEE 754
    /// total order).
    fn leading(&self) -> u64 {
        match self {
            AttrValue::Str(s) => leading_bytes(s),
            AttrValue::Int(i) => (*i as u64) ^ (1 << 63),
            AttrValue::Double(d) => {
                let bits = d.to_bits();
                if bits >> 63 == 1 {
                    !bits
                } else {
                    bits | 1 << 63
                }
            }
            AttrValue::Bool(b) => u64::from(*b),
        }
    }

    /// The OTAP AnyValue type code (1 string, 2 int, 3 double, 4 bool).
    fn code(&self) -> u8 {
        match self {
            AttrValue::Str(_) => 1,
            AttrValue::Int(_) => 2,
            AttrValue::Double(_) => 3,
            AttrValue::Bool(_) => 4,
        }
    }
}

/// A string column of sorted rows as a batch dictionary: a value equal to the previous
/// row's reuses its key, so the work per row is one comparison (values may repeat in the
/// dictionary; the producer folds them into the stream's unique ones).
struct RunDictionary<'a> {
    values: Vec<&'a str>,
    /// Wider than the keys written, so that an overflow can still fall back.
    keys: Vec<u32>,
    valid: Vec<bool>,
}

impl<'a> RunDictionary<'a> {
    fn with_capacity(n: usize) -> Self {
        RunDictionary {
            values: Vec::new(),
            keys: Vec::with_capacity(n),
            valid: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, value: Option<&'a str>) {
        let Some(value) = value else {
            self.keys.push(0);
            self.valid.push(false);
            return;
        };
        if self
            .values
            .last()
            .is_none_or(|last| !std::ptr::eq(*last, value) && *last != value)
        {
            self.values.push(value);
        }
        self.keys.push((self.values.len() - 1) as u32);
        self.valid.push(true);
    }

    /// `Dictionary<UInt16, Utf8>`, or plain `Utf8` when the values outnumber the keys.
    fn finish(self) -> Result<ArrayRef, ArrowError> {
        if self.values.len() > usize::from(u16::MAX) + 1 {
            let plain: StringArray = self
                .keys
                .iter()
                .zip(&self.valid)
                .map(|(k, v)| v.then(|| self.values[*k as usize]))
                .collect();
            return Ok(Arc::new(plain));
        }
        let nulls = if self.valid.iter().all(|v| *v) {
            None
        } else {
            Some(self.valid.iter().copied().collect::<NullBuffer>())
        };
        Ok(Arc::new(DictionaryArray::<UInt16Type>::try_new(
            UInt16Array::new(self.keys.iter().map(|k| *k as u16).collect(), nulls),
            Arc::new(StringArray::from_iter_values(self.values)),
        )?))
    }
}

/// Sorts attribute rows by (type, key, value, parent), the order quasi-delta parent ids
/// need. Rows arrive in parent order (the encoder pushes them point by point and scope
/// by scope), and every step keeps that order among equals, so the parent is never
/// compared: a counting sort groups the rows by (type, key), then a stable sort orders
/// each group by value, comparing the values' leading bytes as one integer first and
/// the whole values only when those tie. Runs already in order cost one comparison a
/// row.
fn sort_attributes(rows: &mut Vec<AttrRow<'_>>) {
    if !rows.is_sorted_by_key(|r| r.parent) {
        rows.sort_by_key(|r| r.parent);
    }
    // The distinct keys, ranked: an attribute table has few of them.
    let mut keys: Vec<&str> = Vec::new();
    for row in rows.iter() {
        if !keys
            .iter()
            .any(|k| std::ptr::eq(*k, row.key) || *k == row.key)
        {
            keys.push(row.key);
        }
    }
    keys.sort_unstable();
    let rank = |key: &str| {
        keys.iter()
            .position(|k| std::ptr::eq(*k, key))
            .or_else(|| keys.binary_search(&key).ok())
            .unwrap_or(0)
    };
    // Group the rows by (type, key), keeping their order.
    let group = |row: &AttrRow<'_>| usize::from(row.value.code() - 1) * keys.len() + rank(row.key);
    let groups: Vec<usize> = rows.iter().map(group).collect();
    let keyed: Vec<(u64, u32)> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| (row.value.leading(), i as u32))
        .collect();
    let (mut keyed, starts) = counting_sort(&keyed, 4 * keys.len(), |k| groups[k.1 as usize]);
    // Then each group by value: the runs already in order cost one comparison a row.
    // Only strings can tie on their leading bytes and still differ.
    for (group, bounds) in starts.windows(2).enumerate() {
        let slice = &mut keyed[bounds[0]..bounds[1]];
        if group >= keys.len() {
            sort_numbers(slice);
            continue;
        }
        slice.sort_by(|a, b| {
            a.0.cmp(&b.0).then_with(|| {
                match (&rows[a.1 as usize].value, &rows[b.1 as usize].value) {
                    (AttrValue::Str(v), AttrValue::Str(w)) => same_or_cmp(v, w),
                    _ => std::cmp::Ordering::Equal,
                }
            })
        });
    }
    let sorted = keyed.iter().map(|k| rows[k.1 as usize].clone()).collect();
    *rows = sorted;
}

/// Sorts (value, row) pairs by value, keeping the rows' order among equal values: a
/// counting sort when the values span a narrow range (a kept `core.id` or `numa.node`
/// takes a handful of values over thousands of points), a stable sort otherwise.
fn sort_numbers(slice: &mut [(u64, u32)]) {
    let (Some(min), Some(max)) = (
        slice.iter().map(|k| k.0).min(),
        slice.iter().map(|k| k.0).max(),
    ) else {
        return;
    };
    let span = max - min;
    if span >= slice.len() as u64 + 1024 {
        slice.sort_by_key(|k| k.0);
        return;
    }
    let (sorted, _) = counting_sort(slice, span as usize + 1, |k| (k.0 - min) as usize);
    slice.copy_from_slice(&sorted);
}

/// `items` ordered by `bucket` (below `buckets`), keeping their order within a bucket,
/// and where each bucket starts (`buckets + 1` offsets, the last one the length).
fn counting_sort<T: Copy>(
    items: &[T],
    buckets: usize,
    bucket: impl Fn(&T) -> usize,
) -> (Vec<T>, Vec<usize>) {
    let mut starts = vec![0usize; buckets + 1];
    for item in items {
        starts[bucket(item) + 1] += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let mut next = starts.clone();
    let mut sorted = items.to_vec();
    for item in items {
        let at = &mut next[bucket(item)];
        sorted[*at] = *item;
        *at += 1;
    }
    (sorted, starts)
}

/// A resource or scope attribute table (UInt16 parents), sorted by (type, key, value,
/// parent) with quasi-delta parent ids. Data points' attributes, the kept cores and
/// NUMA nodes, come out in the same order from [`KeptAttrs::table`].
fn attrs_table(mut rows: Vec<AttrRow<'_>>) -> Result<Option<RecordBatch>, EncodeError> {
    sort_attributes(&mut rows);
    sorted_attrs_table(&rows)
}

/// [`attrs_table`] of rows already in its order.
fn sorted_attrs_table(rows: &[AttrRow<'_>]) -> Result<Option<RecordBatch>, EncodeError> {
    if rows.is_empty() {
        return Ok(None);
    }
    let n = rows.len();
    let kind = UInt8Array::from_iter_values(rows.iter().map(|r| r.value.code()));
    let present = |code: u8| kind.values().contains(&code);
    let mut parent = Vec::with_capacity(n);
    let mut key = RunDictionary::with_capacity(n);
    let mut prev: Option<&AttrRow> = None;
    for row in rows {
        // Keys are mostly one `'static` string: the address answers first.
        let same = prev.is_some_and(|p| {
            (std::ptr::eq(p.key, row.key) || p.key == row.key) && p.value == row.value
        });
        parent.push(if same {
            row.parent - prev.map_or(0, |p| p.parent)
        } else {
            row.parent
        });
        prev = Some(row);
        key.push(Some(row.key));
    }
    let strs = present(1).then(|| {
        let mut strs = RunDictionary::with_capacity(n);
        for row in rows {
            strs.push(match row.value {
                AttrValue::Str(v) => Some(v),
                _ => None,
            });
        }
        strs
    });
    let parent = Arc::new(UInt16Array::from_iter_values(
        parent.iter().map(|p| *p as u16),
    ));
    let (mut fields, mut columns) = attrs_head((DataType::UInt16, parent), key.finish()?, &kind);
    // A value column per type present, valid where the row has that type.
    let valid = |code: u8| {
        let rows = kind.values();
        Some(NullBuffer::new(BooleanBuffer::collect_bool(n, |i| {
            rows[i] == code
        })))
    };
    if let Some(strs) = strs {
        let strs = strs.finish()?;
        fields.push(Field::new("str", strs.data_type().clone(), true));
        columns.push(strs);
    }
    if present(2) {
        let values = rows.iter().map(|r| match r.value {
            AttrValue::Int(v) => v,
            _ => 0,
        });
        fields.push(Field::new("int", DataType::Int64, true));
        columns.push(Arc::new(Int64Array::new(values.collect(), valid(2))));
    }
    if present(3) {
        // NaN rows sort together and never delta-code (NaN is not equal to itself),
        // but the Rust consumer compares doubles by their bits: two adjacent NaNs with
        // the same bits would look equal to it and add their parent ids. So NaNs go
        // out with two payloads in turn, which no consumer takes as equal.
        let mut nans = 0u64;
        let values = rows.iter().map(|r| match r.value {
            AttrValue::Double(v) if v.is_nan() => {
                nans += 1;
                f64::from_bits(f64::NAN.to_bits() | (nans & 1))
            }
            AttrValue::Double(v) => v,
            _ => 0.0,
        });
        fields.push(Field::new("double", DataType::Float64, true));
        columns.push(Arc::new(Float64Array::new(values.collect(), valid(3))));
    }
    if present(4) {
        let values =
            BooleanBuffer::collect_bool(n, |i| matches!(rows[i].value, AttrValue::Bool(true)));
        fields.push(Field::new("bool", DataType::Boolean, true));
        columns.push(Arc::new(BooleanArray::new(values, valid(4))));
    }
    Ok(Some(table(fields.into_iter().map(Arc::new), columns)?))
}

/// An attribute table's first three columns: `parent_id` (quasi-delta), `key`, `type`.
fn attrs_head(
    (parent_type, parent): (DataType, ArrayRef),
    key: ArrayRef,
    kind: &UInt8Array,
) -> (Vec<Field>, Vec<ArrayRef>) {
    let fields = vec![
        id_field("parent_id", parent_type, false, "quasidelta"),
        Field::new("key", key.data_type().clone(), false),
        Field::new("type", DataType::UInt8, false),
    ];
    (fields, vec![parent, key, Arc::new(kind.clone())])
}

/// OTLP metric type of an instrument (1 gauge, 2 sum, 3 histogram, 4 exponential).
fn metric_type(kind: InstrumentKind) -> u8 {
    match kind {
        InstrumentKind::Gauge => 1,
        InstrumentKind::Counter
        | InstrumentKind::UpDownCounter
        | InstrumentKind::ObserveCounter
        | InstrumentKind::ObserveUpDownCounter => 2,
        InstrumentKind::Mmsc => 3,
        InstrumentKind::Histogram => 4,
    }
}

/// One metric row, before encoding.
#[derive(Clone, Copy)]
struct MetricRow<'a> {
    scope: u16,
    /// The root row the point goes under: one per field of a scope, shared by the
    /// points of the scope's series (cores kept apart, merged intervals).
    metric: u16,
    series: &'a Series,
    field: usize,
    value: &'a Value,
}

/// Orders one scope's rows field by field, each field's points in series order: the
/// scope's series (its cores, or the intervals merged into this one) then go under one
/// metric per field. One series' points are in field order already.
fn by_field(rows: &mut [MetricRow<'_>]) {
    if !rows.is_sorted_by_key(|r| r.field) {
        let fields = rows[0].series.descriptor.fields.len();
        let (sorted, _) = counting_sort(rows, fields, |r| r.field);
        rows.copy_from_slice(&sorted);
    }
}

/// How many changes of fields between a set's consecutive scopes, per distinct set of
/// fields, make [`group_scopes_by_fields`] group them.
const GROUP_AT_CHANGES_PER_FIELD_SET: usize = 4;

/// Orders a metric set's scopes by the fields they have points for, where those
/// alternate from scope to scope. A delta interval carries only the fields that moved,
/// so the scopes of a set whose error counters are mostly zero, say, alternate between
/// a few sets of fields; every root column (names, units, kinds, scope ids) then
/// changes with every scope. Grouped, each column repeats one period per group, which
/// message compression takes to almost nothing (512 proxy upstreams with sparse error
/// counters: 5.26 -> 4.73 bytes per point on the wire).
///
/// Regrouping gives up the canonical order of the scope attributes' parent ids, which
/// compress well in it, so a set's scopes are regrouped only when that removes most
/// of the changes: at least [`GROUP_AT_CHANGES_PER_FIELD_SET`] changes per distinct
/// set of fields. Within a group the scopes keep their canonical order, so the order
/// stays deterministic. Scopes are renumbered in their new order, and their attributes
/// with them.
fn group_scopes_by_fields(rows: &mut Vec<MetricRow<'_>>, scope_attrs: &mut [AttrRow<'_>]) {
    // Per scope, in scope id order: the fields it has points for, and its rows.
    let mut scopes: Vec<(u64, std::ops::Range<usize>)> = Vec::new();
    for chunk in rows.chunk_by(|a, b| a.scope == b.scope) {
        let start = scopes.last().map_or(0, |s| s.1.end);
        debug_assert_eq!(usize::from(chunk[0].scope), scopes.len());
        scopes.push((fields_of(chunk), start..start + chunk.len()));
    }
    let descriptor = |scope: usize| rows[scopes[scope].1.start].series.descriptor;
    let mut order: Vec<usize> = (0..scopes.len()).collect();
    let mut regrouped = false;
    for set in order.chunk_by_mut(|a, b| std::ptr::eq(descriptor(*a), descriptor(*b))) {
        let changes = set
            .windows(2)
            .filter(|w| scopes[w[0]].0 != scopes[w[1]].0)
            .count();
        // Fewer changes than the threshold for one set of fields: not worth counting.
        if changes < GROUP_AT_CHANGES_PER_FIELD_SET {
            continue;
        }
        let mut distinct: Vec<u64> = set.iter().map(|s| scopes[*s].0).collect();
        distinct.sort_unstable();
        distinct.dedup();
        if changes >= GROUP_AT_CHANGES_PER_FIELD_SET * distinct.len() {
            set.sort_by_key(|s| scopes[*s].0);
            regrouped = true;
        }
    }
    if !regrouped {
        return;
    }
    // Scope ids fit u16 (checked as they were given), and so do their new numbers.
    let mut renumbered = vec![0u16; scopes.len()];
    let mut grouped = Vec::with_capacity(rows.len());
    for (new, old) in order.iter().enumerate() {
        renumbered[*old] = new as u16;
        let scope = new as u16;
        grouped.extend(
            rows[scopes[*old].1.clone()]
                .iter()
                .map(|r| MetricRow { scope, ..*r }),
        );
    }
    *rows = grouped;
    for attribute in scope_attrs {
        attribute.parent = u32::from(renumbered[attribute.parent as usize]);
    }
}

/// The fields one scope's rows (in field order) have points for, as one number: a
/// bit per field for sets of up to 64 fields, an FNV-1a hash of the field list beyond
/// (equal lists give equal numbers, which is all the grouping needs; a collision
/// only puts two groups together; and the hash is fixed, so the order is the same
/// with every toolchain).
fn fields_of(rows: &[MetricRow<'_>]) -> u64 {
    if rows[0].series.descriptor.fields.len() <= 64 {
        return rows.iter().fold(0, |bits, r| bits | 1 << r.field);
    }
    rows.chunk_by(|a, b| a.field == b.field)
        .flat_map(|field| (field[0].field as u64).to_le_bytes())
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

/// Encodes `interval` with `resource` attributes.
///
/// Fails with [`EncodeError::TooManyRows`] when the interval has more points than one
/// batch's u16 metric ids address; [`encode_parts`] splits such an interval instead.
pub fn encode(
    interval: &Interval,
    resource: &[(String, AttributeValue)],
) -> Result<MetricsTables, EncodeError> {
    encode_series(interval, &sorted_series(interval), resource)
}

/// The most metric rows one batch holds (OTAP's metric ids are u16), and so the most
/// points [`encode_parts`] puts in one: a point needs a metric row at most.
pub const MAX_ROWS_PER_BATCH: usize = 1 << 16;

/// How big one batch may get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Points (each needing a metric row at most), at most; capped at
    /// [`MAX_ROWS_PER_BATCH`].
    pub points: usize,
    /// Bytes before compression, at most, as [`estimated_size`] reckons them, plus
    /// the resource's attributes and [`BATCH_RESERVE`] for the batch's schemas and
    /// IPC metadata: what keeps a batch under a receiver's message size limit (4 MiB
    /// for gRPC servers by default) when exponential histograms with many buckets make
    /// points big.
    pub bytes: usize,
}

impl From<usize> for BatchLimits {
    /// At most `points` points, of any size.
    fn from(points: usize) -> Self {
        BatchLimits {
            points,
            bytes: usize::MAX,
        }
    }
}

/// What a batch takes before its series: Arrow schemas (on a stream's first batch),
/// IPC message headers and padding, for every payload type.
pub const BATCH_RESERVE: usize = 16 * 1024;

/// A scope or resource attribute row: parent, key, type, and a slot in each value
/// column (str key, int, double, bool), with their validity bits, rounded up.
const ATTRIBUTE_ROW: usize = 32;

/// A string a dictionary may have to carry: its bytes, its offset, and a key.
fn text(s: &str) -> usize {
    s.len() + 8
}

/// What an attribute adds: its row, its key and, for a string, its value.
fn attribute(key: &str, value: &AttributeValue) -> usize {
    ATTRIBUTE_ROW
        + text(key)
        + match value {
            AttributeValue::Str(s) => text(s),
            _ => 0,
        }
}

/// Each of a series' own attributes (not its kept core or NUMA node) as key and value,
/// without allocating its set's key list.
fn for_each_attribute<'a>(
    identity: &'a Identity,
    mut f: impl FnMut(&'static str, &'a AttributeValue),
) {
    let mut values = identity.values.iter();
    identity.attributes.for_each_key(|key| {
        if let Some(value) = values.next() {
            f(key.key, value);
        }
    });
}

/// A generous reckoning of what `series` adds to a batch before compression: its
/// rows in the root, point and attribute tables, its bucket counts, and the strings
/// its dictionaries may have to carry (names, descriptions, units, attribute keys and
/// values) as if none had been sent before. It runs above what the producer writes:
/// a few percent for histograms with many buckets, about twice for counters with
/// short names (whose batches the point limit caps first), more where series share
/// their strings.
pub fn estimated_size(series: &Series) -> usize {
    // Per point: a root row (ids, type, name/description/unit keys, temporality,
    // monotonicity, resource and scope ids: about 20 bytes) and a number row (id,
    // parent, two timestamps, one value in each of two columns: 38), rounded up.
    const POINT: usize = 64;
    // The kept core or NUMA node: an attribute row per point (parent, key, type, int).
    const KEPT: usize = 24;
    let identity = &series.identity;
    let kept =
        KEPT * (usize::from(identity.core.is_some()) + usize::from(identity.numa_node.is_some()));
    let mut size = text(series.descriptor.name);
    for_each_attribute(identity, |key, value| size += attribute(key, value));
    for point in &series.points {
        let field = &series.descriptor.fields[usize::from(point.field)];
        size += POINT + kept + text(field.name) + text(field.brief) + text(field.unit);
        size += match &point.value {
            Value::U64(_) | Value::I64(_) | Value::F64(_) => 0,
            // count, sum, min, max
            Value::Mmsc(_) => 32,
            // count, sum, min, max, scale, zero count, two sides' offsets and list
            // offsets, and 8 bytes a bucket
            Value::Histogram(h) => 64 + 8 * (h.positive.counts.len() + h.negative.counts.len()),
        };
    }
    size
}

/// Encodes `interval` as one or more batches within `limits` (points capped at
/// [`MAX_ROWS_PER_BATCH`]), split between series, never inside one: a big engine's
/// interval (say 64 cores kept apart, thousands of sets, or histograms with hundreds
/// of buckets) goes out whole, as several `BatchArrowRecords`. A series bigger than
/// the byte limit on its own goes alone. Series that share a scope may land in
/// different batches; each batch then carries that scope and its attributes. An
/// interval without points gives no batch at all.
pub fn encode_parts(
    interval: &Interval,
    resource: &[(String, AttributeValue)],
    limits: impl Into<BatchLimits>,
) -> Result<Vec<MetricsTables>, EncodeError> {
    let limits = limits.into();
    let max_rows = limits.points.clamp(1, MAX_ROWS_PER_BATCH);
    // Every batch carries the resource's attributes.
    let resource_size: usize = resource.iter().map(|(k, v)| attribute(k, v)).sum();
    let max_bytes = limits
        .bytes
        .saturating_sub(BATCH_RESERVE)
        .saturating_sub(resource_size);
    let series = sorted_series(interval);
    let mut parts = Vec::new();
    let (mut start, mut rows, mut bytes) = (0, 0, 0_usize);
    for (i, s) in series.iter().enumerate() {
        let size = if limits.bytes == usize::MAX {
            0
        } else {
            estimated_size(s)
        };
        if i > start && (rows + s.points.len() > max_rows || bytes.saturating_add(size) > max_bytes)
        {
            parts.push(encode_series(interval, &series[start..i], resource)?);
            (start, rows, bytes) = (i, 0, 0);
        }
        rows += s.points.len();
        bytes = bytes.saturating_add(size);
    }
    if start < series.len() {
        parts.push(encode_series(interval, &series[start..], resource)?);
    }
    // A batch without metric rows is refused by receivers (the Go one wants the root
    // table first in every batch): an interval without points sends nothing.
    parts.retain(|p| p.point_count() > 0);
    Ok(parts)
}

/// The interval's series in the canonical order ([`series_order`]: scopes stable,
/// set name then attributes). The aggregator emits them in that order already, so
/// this is usually one comparison a series.
fn sorted_series(interval: &Interval) -> Vec<&Series> {
    let mut series: Vec<&Series> = interval.series.iter().collect();
    if !series.is_sorted_by(|a, b| series_order(a, b).is_le()) {
        series.sort_unstable_by(|a, b| series_order(a, b));
    }
    series
}

/// Encodes `series` (sorted, from `interval`) as one batch.
fn encode_series(
    interval: &Interval,
    series: &[&Series],
    resource: &[(String, AttributeValue)],
) -> Result<MetricsTables, EncodeError> {
    let points = series.iter().map(|s| s.points.len()).sum();
    let mut rows: Vec<MetricRow<'_>> = Vec::with_capacity(points);
    let mut scope_attrs = Vec::with_capacity(series.len() * 4);
    // One scope per metric set and entity attributes; series that differ only in the
    // kept core or NUMA node share it (they are adjacent in this order), and their
    // points carry `core.id` / `numa.node` as data-point attributes.
    let mut scope = None::<u16>;
    let mut previous: Option<&Series> = None;
    // A series without points has nothing to say: no scope either, so that a batch
    // never holds attributes without metric rows.
    for s in series.iter().filter(|s| !s.points.is_empty()) {
        let same_scope = previous.is_some_and(|p| {
            std::ptr::eq(p.descriptor, s.descriptor)
                && std::ptr::eq(p.identity.attributes, s.identity.attributes)
                && p.identity.values == s.identity.values
        });
        if !same_scope {
            let next = scope.map_or(Ok(0), |id| u16_id(usize::from(id) + 1, "scopes"))?;
            scope = Some(next);
            for_each_attribute(&s.identity, |key, value| {
                scope_attrs.push(AttrRow {
                    parent: u32::from(next),
                    key,
                    value: AttrValue::of(value),
                });
            });
        }
        previous = Some(s);
        let scope = scope.expect("set above");
        for p in &s.points {
            rows.push(MetricRow {
                scope,
                metric: 0,
                series: s,
                field: usize::from(p.field),
                value: &p.value,
            });
        }
    }
    // One metric per field of a scope, with every point of it.
    for scope in rows.chunk_by_mut(|a, b| a.scope == b.scope) {
        by_field(scope);
    }
    group_scopes_by_fields(&mut rows, &mut scope_attrs);
    let mut metrics = 0;
    for metric in rows.chunk_by_mut(|a, b| a.field == b.field && a.scope == b.scope) {
        // Past u16 the batch is refused below.
        for r in metric {
            r.metric = metrics as u16;
        }
        metrics += 1;
    }
    if metrics > usize::from(u16::MAX) + 1 {
        return Err(EncodeError::TooManyRows {
            what: "metric rows",
            count: metrics,
        });
    }
    let resource_attrs: Vec<AttrRow> = resource
        .iter()
        .map(|(k, v)| AttrRow {
            parent: 0,
            key: k,
            value: AttrValue::of(v),
        })
        .collect();

    let heads: Vec<&MetricRow<'_>> = rows
        .chunk_by(|a, b| a.metric == b.metric)
        .map(|metric| &metric[0])
        .collect();
    let mut tables = vec![(
        PayloadType::UnivariateMetrics,
        root_table(interval, &heads)?,
    )];
    let points = points_tables(&rows)?;
    tables.extend(points);
    if let Some(t) = attrs_table(resource_attrs)? {
        tables.push((PayloadType::ResourceAttrs, t));
    }
    if let Some(t) = attrs_table(scope_attrs)? {
        tables.push((PayloadType::ScopeAttrs, t));
    }
    let mut totals_of = Vec::new();
    if interval.temporality == Temporality::Cumulative {
        totals_of.extend(
            series
                .iter()
                .filter(|s| !s.points.is_empty())
                .map(|s| series_key(s)),
        );
        totals_of.sort_unstable();
        totals_of.dedup();
    }
    Ok(MetricsTables { tables, totals_of })
}

/// A series' identity as one number: a hash of its metric set's name, its attribute
/// set's name and values, and the kept core and NUMA node. Equal series have equal
/// keys in every interval of a process.
pub fn series_key(series: &Series) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::hash::DefaultHasher::new();
    series.descriptor.name.hash(&mut hasher);
    let identity = &series.identity;
    identity.attributes.name.hash(&mut hasher);
    for value in &identity.values {
        match value {
            AttributeValue::Str(text) => (0_u8, text.as_ref()).hash(&mut hasher),
            AttributeValue::Int(n) => (1_u8, n).hash(&mut hasher),
            AttributeValue::Double(x) => (2_u8, x.to_bits()).hash(&mut hasher),
            AttributeValue::Bool(b) => (3_u8, b).hash(&mut hasher),
        }
    }
    (identity.core, identity.numa_node).hash(&mut hasher);
    hasher.finish()
}

/// The batch's own dictionaries of the root table's string columns: every field of a
/// metric set enters once, when the set's first row does, so that the per-row work is
/// one key. Values may repeat (units); the producer folds them into each IPC stream's
/// dictionary of unique values.
#[derive(Default)]
struct RootDictionaries {
    /// Set descriptor -> key of its first field in `names`/`briefs`/`units`, and of
    /// its name in `set_names`.
    sets: Vec<(*const metric_schema::MetricsDescriptor, u16, u16)>,
    names: Vec<&'static str>,
    briefs: Vec<&'static str>,
    units: Vec<&'static str>,
    /// OTLP metric type and monotonicity of each field, by the same key.
    kinds: Vec<(u8, bool)>,
    set_names: Vec<&'static str>,
}

impl RootDictionaries {
    /// Keys of `descriptor`'s first field and of its name.
    fn base(&mut self, descriptor: &'static metric_schema::MetricsDescriptor) -> (u16, u16) {
        let ptr = std::ptr::from_ref(descriptor);
        if let Some(&(_, field, set)) = self.sets.iter().find(|(p, _, _)| *p == ptr) {
            return (field, set);
        }
        let field = self.names.len() as u16;
        let set = self.set_names.len() as u16;
        for f in descriptor.fields {
            self.names.push(f.name);
            self.briefs.push(f.brief);
            self.units.push(f.unit);
            self.kinds
                .push((metric_type(f.instrument), f.instrument.is_monotonic()));
        }
        self.set_names.push(descriptor.name);
        self.sets.push((ptr, field, set));
        (field, set)
    }
}

fn dictionary(keys: UInt16Array, values: &[&'static str]) -> Result<ArrayRef, EncodeError> {
    Ok(Arc::new(DictionaryArray::<UInt16Type>::try_new(
        keys,
        Arc::new(StringArray::from_iter_values(values.iter())),
    )?))
}

fn dictionary_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8))
}

/// The root table: a row for each metric, given as its first point.
fn root_table(interval: &Interval, rows: &[&MetricRow<'_>]) -> Result<RecordBatch, EncodeError> {
    let n = rows.len();
    let mut dicts = RootDictionaries::default();
    let mut field_keys = Vec::with_capacity(n);
    let mut set_keys = Vec::with_capacity(n);
    let mut scopes = Vec::with_capacity(n);
    let mut last: Option<(*const Series, (u16, u16))> = None;
    let mut previous_scope = 0;
    for r in rows {
        let (field_base, set_key) = match last {
            Some((series, bases)) if std::ptr::eq(series, r.series) => bases,
            _ => {
                let bases = dicts.base(r.series.descriptor);
                last = Some((std::ptr::from_ref(r.series), bases));
                bases
            }
        };
        field_keys.push(field_base + r.field as u16);
        set_keys.push(set_key);
        scopes.push(r.scope - previous_scope);
        previous_scope = r.scope;
    }
    let kinds = |k: &u16| dicts.kinds[usize::from(*k)];
    let kind = UInt8Array::from_iter_values(field_keys.iter().map(|k| kinds(k).0));
    // Temporality for all but gauges, monotonicity for sums only.
    let otlp_temporality = match interval.temporality {
        Temporality::Delta => 1,
        Temporality::Cumulative => 2,
    };
    let types = kind.values();
    let temporality = Int32Array::new(
        vec![otlp_temporality; n].into(),
        types
            .contains(&1)
            .then(|| NullBuffer::new(BooleanBuffer::collect_bool(n, |i| types[i] != 1))),
    );
    let monotonic = BooleanArray::new(
        BooleanBuffer::collect_bool(n, |i| kinds(&field_keys[i]).1),
        Some(NullBuffer::new(BooleanBuffer::collect_bool(n, |i| {
            types[i] == 2
        }))),
    );
    // Ids in row order, delta-encoded: a first 0, then ones.
    let ids = UInt16Array::from_iter_values((0..n).map(|i| u16::from(i > 0)));
    let resource_fields = Fields::from(vec![id_field("id", DataType::UInt16, true, "delta")]);
    let scope_fields = Fields::from(vec![
        id_field("id", DataType::UInt16, true, "delta"),
        Field::new("name", dictionary_type(), true),
    ]);
    let resource = StructArray::try_new(
        resource_fields.clone(),
        vec![Arc::new(UInt16Array::from(vec![0u16; n])) as ArrayRef],
        None,
    )?;
    let scope = StructArray::try_new(
        scope_fields.clone(),
        vec![
            Arc::new(UInt16Array::from(scopes)) as ArrayRef,
            dictionary(UInt16Array::from(set_keys), &dicts.set_names)?,
        ],
        None,
    )?;
    let schema = Schema::new(vec![
        id_field("id", DataType::UInt16, false, "delta"),
        Field::new("metric_type", DataType::UInt8, false),
        Field::new("name", dictionary_type(), false),
        Field::new("description", dictionary_type(), true),
        Field::new("unit", dictionary_type(), true),
        Field::new("aggregation_temporality", DataType::Int32, true),
        Field::new("is_monotonic", DataType::Boolean, true),
        // After the scope: the all-zero resource ids between the metric columns and
        // the scope's broke the matches message compression finds there (a proxy's
        // 512 upstreams: 4.73 -> 4.56 bytes per point; most other batches measured did
        // not move, exponential histograms alone grew 5 %; column order is free).
        Field::new("scope", DataType::Struct(scope_fields), true),
        Field::new("resource", DataType::Struct(resource_fields), true),
    ]);
    // Name, description and unit share one keys buffer.
    let field_keys = UInt16Array::from(field_keys);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ids),
        Arc::new(kind),
        dictionary(field_keys.clone(), &dicts.names)?,
        dictionary(field_keys.clone(), &dicts.briefs)?,
        dictionary(field_keys, &dicts.units)?,
        Arc::new(temporality),
        Arc::new(monotonic),
        Arc::new(scope),
        Arc::new(resource),
    ];
    Ok(table(schema.fields().iter().cloned(), columns)?)
}

/// A table of `fields` and `columns` without the optional (nullable) columns that hold
/// only nulls: OTAP reads a missing optional column as all null, and leaving it out
/// saves its buffers on the wire and their compression. The producer puts a column back
/// (all null) when its IPC stream already has it, so one that comes and goes costs no
/// schema reset.
fn table(
    fields: impl Iterator<Item = arrow_schema::FieldRef>,
    columns: Vec<ArrayRef>,
) -> Result<RecordBatch, ArrowError> {
    let (fields, columns): (Vec<_>, Vec<_>) = fields
        .zip(columns)
        .filter(|(f, c)| !(f.is_nullable() && !c.is_empty() && c.null_count() == c.len()))
        .unzip();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// Start and end of a point of `series`, as timestamps.
fn window(series: &Series) -> (i64, i64) {
    (
        i64::try_from(series.start_unix_nanos).unwrap_or(i64::MAX),
        i64::try_from(series.end_unix_nanos).unwrap_or(i64::MAX),
    )
}

fn buckets_struct(sides: &[&Buckets]) -> Result<StructArray, EncodeError> {
    let offset = Int32Array::from_iter_values(sides.iter().map(|b| b.offset));
    let total = sides.iter().map(|b| b.counts.len()).sum();
    let mut counts = Vec::with_capacity(total);
    for b in sides {
        counts.extend_from_slice(&b.counts);
    }
    let item = Arc::new(Field::new_list_field(DataType::UInt64, true));
    let list: ArrayRef = Arc::new(ListArray::try_new(
        item,
        OffsetBuffer::from_lengths(sides.iter().map(|b| b.counts.len())),
        Arc::new(UInt64Array::from(counts)),
        None,
    )?);
    let fields = Fields::from(vec![
        Field::new("offset", DataType::Int32, true),
        Field::new("bucket_counts", list.data_type().clone(), true),
    ]);
    Ok(StructArray::try_new(
        fields,
        vec![Arc::new(offset), list],
        None,
    )?)
}

/// Every point's start and end, as the two timestamp columns they become.
#[derive(Default)]
struct Windows {
    start: Vec<i64>,
    end: Vec<i64>,
}

impl Windows {
    fn with_capacity(n: usize) -> Self {
        Windows {
            start: Vec::with_capacity(n),
            end: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, (start, end): (i64, i64)) {
        self.start.push(start);
        self.end.push(end);
    }
}

/// The columns histogram and exponential histogram points share: parent, window,
/// count, sum, min, max.
struct Summaries {
    parent: Vec<u16>,
    t: Windows,
    count: UInt64Builder,
    sum_min_max: [Float64Builder; 3],
}

impl Summaries {
    fn with_capacity(n: usize) -> Self {
        Summaries {
            parent: Vec::with_capacity(n),
            t: Windows::with_capacity(n),
            count: UInt64Builder::with_capacity(n),
            sum_min_max: std::array::from_fn(|_| Float64Builder::with_capacity(n)),
        }
    }

    fn push(&mut self, parent: u16, t: (i64, i64), count: u64, sum_min_max: [f64; 3]) {
        self.parent.push(parent);
        self.t.push(t);
        self.count.append_value(count);
        for (builder, v) in self.sum_min_max.iter_mut().zip(sum_min_max) {
            builder.append_value(v);
        }
    }

    fn finish(&mut self) -> [(&'static str, ArrayRef); 4] {
        let [sum, min, max] = &mut self.sum_min_max;
        [
            ("count", Arc::new(self.count.finish())),
            ("sum", Arc::new(sum.finish())),
            ("min", Arc::new(min.finish())),
            ("max", Arc::new(max.finish())),
        ]
    }
}

#[expect(
    clippy::too_many_lines,
    reason = "three point tables, column by column"
)]
fn points_tables(rows: &[MetricRow<'_>]) -> Result<Vec<(PayloadType, RecordBatch)>, EncodeError> {
    let mut out = Vec::with_capacity(3);
    let (mut numbers, mut mmscs, mut histograms) = (0, 0, 0);
    for r in rows {
        match r.value {
            Value::Mmsc(_) => mmscs += 1,
            Value::Histogram(_) => histograms += 1,
            _ => numbers += 1,
        }
    }
    // NUMBER_DATA_POINTS: values as i64 bits or f64, with a flag per row; the columns
    // get null buffers only when both kinds are present.
    let (mut parent, mut t) = (Vec::with_capacity(numbers), Windows::with_capacity(numbers));
    let (mut number_bits, mut is_double) = (
        Vec::<i64>::with_capacity(numbers),
        Vec::<bool>::with_capacity(numbers),
    );
    // HISTOGRAM_DATA_POINTS (Mmsc), EXP_HISTOGRAM_DATA_POINTS
    let mut mmsc = Summaries::with_capacity(mmscs);
    let mut exp = Summaries::with_capacity(histograms);
    let n = histograms;
    let (mut e_scale, mut e_zero) = (
        Int32Builder::with_capacity(n),
        UInt64Builder::with_capacity(n),
    );
    let (mut e_pos, mut e_neg): (Vec<&Buckets>, Vec<&Buckets>) =
        (Vec::with_capacity(n), Vec::with_capacity(n));
    // A kept core or NUMA node puts an attribute row on every point.
    let kept_core = rows.iter().any(|r| r.series.identity.core.is_some());
    let kept_node = rows.iter().any(|r| r.series.identity.numa_node.is_some());
    let any_kept = kept_core || kept_node;
    let room = |points: usize| KeptAttrs {
        core: Vec::with_capacity(if kept_core { points } else { 0 }),
        numa_node: Vec::with_capacity(if kept_node { points } else { 0 }),
    };
    let (mut number_attrs, mut mmsc_attrs, mut exp_attrs) =
        (room(numbers), room(mmscs), room(histograms));
    let mut kept = PointAttributes::default();
    for r in rows {
        let id = r.metric;
        let window = window(r.series);
        // Floats travel as their bits until the number columns are built.
        let (bits, double) = match r.value {
            Value::Mmsc(m) => {
                if any_kept {
                    kept.push(r.series, mmsc.parent.len(), &mut mmsc_attrs)?;
                }
                mmsc.push(id, window, m.count, [m.sum, m.min, m.max]);
                continue;
            }
            Value::Histogram(h) => {
                if any_kept {
                    kept.push(r.series, exp.parent.len(), &mut exp_attrs)?;
                }
                exp.push(id, window, h.count, [h.sum, h.min, h.max]);
                e_scale.append_value(h.scale);
                e_zero.append_value(h.zero_count);
                e_pos.push(&h.positive);
                e_neg.push(&h.negative);
                continue;
            }
            // OTLP integers are signed: a count past i64::MAX goes as a double, which
            // keeps its magnitude (clamping would have lost it silently).
            Value::U64(v) => match i64::try_from(*v) {
                Ok(v) => (v, false),
                Err(_) => ((*v as f64).to_bits() as i64, true),
            },
            Value::I64(v) => (*v, false),
            Value::F64(v) => (v.to_bits() as i64, true),
        };
        if any_kept {
            kept.push(r.series, parent.len(), &mut number_attrs)?;
        }
        parent.push(id);
        t.push(window);
        number_bits.push(bits);
        is_double.push(double);
    }
    // Points with attributes need ids: 0, 1, 2, … in row order, delta-encoded (a
    // first 0, then ones).
    let common = |parent: &[u16], Windows { start, end }, with_ids: bool| {
        let mut fields = vec![
            id_field("parent_id", DataType::UInt16, false, "delta"),
            Field::new("start_time_unix_nano", timestamp(), true),
            // Required by the Rust receiver; every point has one.
            Field::new("time_unix_nano", timestamp(), false),
        ];
        let mut columns = vec![
            Arc::new(UInt16Array::from(delta_u16(parent))) as ArrayRef,
            Arc::new(TimestampNanosecondArray::from(start).with_timezone(UTC)),
            Arc::new(TimestampNanosecondArray::from(end).with_timezone(UTC)),
        ];
        if with_ids {
            fields.insert(0, id_field("id", DataType::UInt32, true, "delta"));
            let ids = (0..parent.len()).map(|i| u32::from(i > 0));
            columns.insert(0, Arc::new(UInt32Array::from_iter_values(ids)));
        }
        (fields, columns)
    };
    if !parent.is_empty() {
        let (mut fields, mut columns) = common(&parent, t, !number_attrs.is_empty());
        let doubles = is_double.iter().filter(|d| **d).count();
        let (int_nulls, double_nulls) = if doubles == 0 || doubles == is_double.len() {
            (None, None)
        } else {
            (
                Some(is_double.iter().map(|d| !d).collect::<NullBuffer>()),
                Some(is_double.iter().copied().collect::<NullBuffer>()),
            )
        };
        // A null slot still travels: zero it, or each column would also carry the
        // other kind's values, and a batch of both kinds would send its values twice.
        let double_column = (doubles > 0).then(|| {
            Float64Array::new(
                number_bits
                    .iter()
                    .zip(&is_double)
                    .map(|(b, d)| if *d { f64::from_bits(*b as u64) } else { 0.0 })
                    .collect(),
                double_nulls,
            )
        });
        if doubles < is_double.len() {
            if doubles > 0 {
                for (b, d) in number_bits.iter_mut().zip(&is_double) {
                    *b &= i64::from(*d) - 1; // 0 for doubles, the bits for integers
                }
            }
            fields.push(Field::new("int_value", DataType::Int64, true));
            columns.push(Arc::new(Int64Array::new(number_bits.into(), int_nulls)));
        }
        if let Some(column) = double_column {
            fields.push(Field::new("double_value", DataType::Float64, true));
            columns.push(Arc::new(column));
        }
        out.push((
            PayloadType::NumberDataPoints,
            table(fields.into_iter().map(Arc::new), columns)?,
        ));
    }
    if !mmsc.parent.is_empty() {
        let (mut fields, mut columns) = common(
            &mmsc.parent,
            std::mem::take(&mut mmsc.t),
            !mmsc_attrs.is_empty(),
        );
        for (name, column) in mmsc.finish() {
            fields.push(Field::new(name, column.data_type().clone(), true));
            columns.push(column);
        }
        out.push((
            PayloadType::HistogramDataPoints,
            table(fields.into_iter().map(Arc::new), columns)?,
        ));
    }
    if !exp.parent.is_empty() {
        let (mut fields, mut columns) = common(
            &exp.parent,
            std::mem::take(&mut exp.t),
            !exp_attrs.is_empty(),
        );
        let positive = buckets_struct(&e_pos)?;
        let negative = buckets_struct(&e_neg)?;
        for (name, column) in exp.finish().into_iter().chain([
            ("scale", Arc::new(e_scale.finish()) as ArrayRef),
            ("zero_count", Arc::new(e_zero.finish())),
            ("positive", Arc::new(positive)),
            ("negative", Arc::new(negative)),
        ]) {
            fields.push(Field::new(name, column.data_type().clone(), true));
            columns.push(column);
        }
        out.push((
            PayloadType::ExpHistogramDataPoints,
            table(fields.into_iter().map(Arc::new), columns)?,
        ));
    }
    for (kind, attrs) in [
        (PayloadType::NumberDpAttrs, number_attrs),
        (PayloadType::HistogramDpAttrs, mmsc_attrs),
        (PayloadType::ExpHistogramDpAttrs, exp_attrs),
    ] {
        if let Some(t) = attrs.table()? {
            out.push((kind, t));
        }
    }
    Ok(out)
}

/// The kept `core.id` and `numa.node` of a series, as attributes of its data points,
/// unless the set's own attributes already name them.
#[derive(Default)]
struct PointAttributes {
    /// The last attribute set seen, and whether it names `core.id` and `numa.node`
    /// itself: a scope's rows alternate between its cores' series, which share it.
    names: Option<(*const AttributesDescriptor, [bool; 2])>,
}

impl PointAttributes {
    /// Appends the attributes of `series` for data point `id`.
    fn push(&mut self, series: &Series, id: usize, out: &mut KeptAttrs) -> Result<(), EncodeError> {
        let identity = &series.identity;
        if identity.core.is_none() && identity.numa_node.is_none() {
            return Ok(());
        }
        let set = std::ptr::from_ref(identity.attributes);
        let names = match self.names {
            Some((last, names)) if std::ptr::eq(last, set) => names,
            _ => {
                let names = [KeptAttrs::CORE, KeptAttrs::NUMA_NODE]
                    .map(|key| identity.attributes.has_key(key));
                self.names = Some((set, names));
                names
            }
        };
        let parent = u32::try_from(id).map_err(|_| EncodeError::TooManyRows {
            what: "data points",
            count: id + 1,
        })?;
        for ((core, value), named) in [(true, identity.core), (false, identity.numa_node)]
            .into_iter()
            .zip(names)
        {
            if let Some(v) = value
                && !named
            {
                out.push(core, AttrValue::Int(i64::from(v)).leading(), parent);
            }
        }
        Ok(())
    }
}

/// The kept `core.id` and `numa.node` attributes of one point table, by key, as
/// (value's [`AttrValue::leading`], point id) in point order: sorting them is a
/// counting sort per key, where the general attribute sort would group, rank and
/// copy rows of every type (a kept core puts a row on every point).
#[derive(Default, Clone)]
struct KeptAttrs {
    core: Vec<(u64, u32)>,
    numa_node: Vec<(u64, u32)>,
}

impl KeptAttrs {
    const CORE: &'static str = "core.id";
    const NUMA_NODE: &'static str = "numa.node";

    fn is_empty(&self) -> bool {
        self.core.is_empty() && self.numa_node.is_empty()
    }

    /// The integer whose [`AttrValue::leading`] sort key is `leading`.
    fn int(leading: u64) -> i64 {
        (leading ^ (1 << 63)) as i64
    }

    /// The core's (or else the NUMA node's) value, by its sort key, for point `parent`.
    fn push(&mut self, core: bool, leading: u64, parent: u32) {
        let to = if core {
            &mut self.core
        } else {
            &mut self.numa_node
        };
        to.push((leading, parent));
    }

    /// The data-point attribute table: [`sorted_attrs_table`]'s layout of
    /// [`into_rows`](Self::into_rows) with UInt32 parents, built straight from the
    /// pairs (a kept core puts a row on every point): one integer column, a key per
    /// run, quasi-delta parents within a run of equal values.
    fn table(self) -> Result<Option<RecordBatch>, EncodeError> {
        let n = self.core.len() + self.numa_node.len();
        if n == 0 {
            return Ok(None);
        }
        let (mut parent, mut keys, mut ints) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let mut names = Vec::with_capacity(2);
        for (key, mut pairs) in [(Self::CORE, self.core), (Self::NUMA_NODE, self.numa_node)] {
            if pairs.is_empty() {
                continue;
            }
            sort_numbers(&mut pairs);
            let index = names.len() as u16;
            names.push(key);
            let mut previous = None;
            for (leading, point) in pairs {
                parent.push(match previous {
                    Some((value, before)) if value == leading => point - before,
                    _ => point,
                });
                previous = Some((leading, point));
                keys.push(index);
                ints.push(Self::int(leading));
            }
        }
        let key = DictionaryArray::<UInt16Type>::try_new(
            UInt16Array::from(keys),
            Arc::new(StringArray::from_iter_values(names)),
        )?;
        let parent = (
            DataType::UInt32,
            Arc::new(UInt32Array::from(parent)) as ArrayRef,
        );
        let kind = UInt8Array::from(vec![AttrValue::Int(0).code(); n]);
        let (mut fields, mut columns) = attrs_head(parent, Arc::new(key), &kind);
        fields.push(Field::new("int", DataType::Int64, true));
        columns.push(Arc::new(Int64Array::from(ints)));
        Ok(Some(table(fields.into_iter().map(Arc::new), columns)?))
    }

    /// The rows in [`sort_attributes`]'s order: integers, by key (`core.id` before
    /// `numa.node`), then value, then point.
    #[cfg(test)]
    fn into_rows(self) -> Vec<AttrRow<'static>> {
        let mut rows = Vec::with_capacity(self.core.len() + self.numa_node.len());
        for (key, mut pairs) in [(Self::CORE, self.core), (Self::NUMA_NODE, self.numa_node)] {
            sort_numbers(&mut pairs);
            rows.extend(pairs.into_iter().map(|(leading, parent)| AttrRow {
                parent,
                key,
                value: AttrValue::Int(Self::int(leading)),
            }));
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::{
        AttrRow, AttrValue, KeptAttrs, id_field, sort_attributes, sort_numbers, sorted_attrs_table,
    };
    use arrow_array::{ArrayRef, RecordBatch, UInt16Array, UInt32Array};
    use arrow_schema::{DataType, Schema};
    use std::sync::Arc;

    /// Kept cores and NUMA nodes skip the general attribute sort: their rows must come
    /// out exactly as it would order them, so that the quasi-delta ids mean the same.
    #[test]
    fn kept_attributes_come_out_in_the_general_sort_order() {
        for (cores, nodes) in [(true, false), (false, true), (true, true)] {
            let mut kept = KeptAttrs::default();
            let mut general = Vec::new();
            for point in 0..300_u32 {
                // Cores in blocks and out of order, as series of a scope are.
                let core = i64::from((point / 7) % 5) * 3 - 4;
                let node = i64::from(point / 50 % 2);
                for (on, key, value) in [
                    (cores, KeptAttrs::CORE, core),
                    (nodes, KeptAttrs::NUMA_NODE, node),
                ] {
                    if !on {
                        continue;
                    }
                    let row = AttrRow {
                        parent: point,
                        key,
                        value: AttrValue::Int(value),
                    };
                    kept.push(key == KeptAttrs::CORE, row.value.leading(), point);
                    general.push(row);
                }
            }
            sort_attributes(&mut general);
            let table = kept.clone().table().expect("encodes").expect("has rows");
            let want = sorted_attrs_table(&general)
                .expect("encodes")
                .expect("rows");
            assert_eq!(
                table,
                with_u32_parents(&want),
                "cores {cores}, nodes {nodes}"
            );
            assert_eq!(kept.into_rows(), general, "cores {cores}, nodes {nodes}");
        }
    }

    /// `batch` with its first column, `parent_id`, widened to UInt32 (the data-point
    /// form of an attribute table).
    fn with_u32_parents(batch: &RecordBatch) -> RecordBatch {
        let parents = batch.column(0).as_any().downcast_ref::<UInt16Array>();
        let parents = parents.expect("UInt16 parents").values();
        let mut fields: Vec<_> = batch.schema().fields().iter().cloned().collect();
        fields[0] = Arc::new(id_field("parent_id", DataType::UInt32, false, "quasidelta"));
        let mut columns = batch.columns().to_vec();
        columns[0] = Arc::new(UInt32Array::from_iter_values(
            parents.iter().map(|p| u32::from(*p)),
        )) as ArrayRef;
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("same rows")
    }

    /// Narrow spans take the counting sort, wide ones the comparison sort; both must
    /// give what a stable sort by value gives.
    #[test]
    fn number_groups_sort_stably_by_value() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for (len, span) in [
            (0, 1),
            (1, 1),
            (500, 8),
            (500, 600),
            (500, 5_000),
            (64, u64::MAX),
        ] {
            let mut pairs: Vec<(u64, u32)> = (0..len)
                .map(|i| (u64::MAX / 2 + next() % span / 2, i))
                .collect();
            let mut want = pairs.clone();
            want.sort_by_key(|k| k.0);
            sort_numbers(&mut pairs);
            assert_eq!(pairs, want, "{len} values over a span of {span}");
        }
    }
}
