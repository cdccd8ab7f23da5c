//! What ITS processors emit and exporters read: aggregated intervals of series.

use std::cmp::Ordering;
use std::sync::Arc;

use metric_schema::snapshot::{BucketsView, HistogramView, MmscValue};
use metric_schema::{AttributeValue, AttributesDescriptor, MetricsDescriptor};
use serde::Deserialize;

/// What the values of an interval mean over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Temporality {
    /// Changes during the interval only.
    #[default]
    Delta,
    /// Totals since each series started.
    Cumulative,
}

impl Temporality {
    /// `delta` or `cumulative`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Temporality::Delta => "delta",
            Temporality::Cumulative => "cumulative",
        }
    }
}

/// `a.cmp(b)`, without reading the bytes when both are the same string (keys and names
/// come from `'static` descriptors, so equal ones usually share their address), and
/// without a `memcmp` call when both fit in eight bytes (node ids and the like):
/// zero-padded big-endian words order like the strings, and a tie means one is a
/// prefix of the other, so the shorter comes first.
pub fn same_or_cmp(a: &str, b: &str) -> Ordering {
    if std::ptr::eq(a, b) {
        Ordering::Equal
    } else if a.len() <= 8 && b.len() <= 8 {
        (leading_bytes(a), a.len()).cmp(&(leading_bytes(b), b.len()))
    } else {
        a.cmp(b)
    }
}

/// The first eight bytes of `s`, zero-padded, as a big-endian word: a prefix of `s`'s
/// order.
pub fn leading_bytes(s: &str) -> u64 {
    let mut head = [0u8; 8];
    let n = s.len().min(8);
    head[..n].copy_from_slice(&s.as_bytes()[..n]);
    u64::from_be_bytes(head)
}

/// The canonical order of series, which `processor:aggregate` emits and exporters can
/// rely on: set name, attribute set, attribute values (strings before integers before
/// doubles before booleans; doubles by IEEE total order), core, NUMA node. Series that
/// differ only in the kept core or NUMA node are next to each other.
pub fn identity_order(
    a_set: &MetricsDescriptor,
    a: &Identity,
    b_set: &MetricsDescriptor,
    b: &Identity,
) -> Ordering {
    same_or_cmp(a_set.name, b_set.name)
        .then_with(|| same_or_cmp(a.attributes.name, b.attributes.name))
        .then_with(|| {
            a.values
                .iter()
                .zip(&b.values)
                .map(|(v, w)| value_order(v, w))
                .find(|o| o.is_ne())
                .unwrap_or(a.values.len().cmp(&b.values.len()))
        })
        .then_with(|| (a.core, a.numa_node).cmp(&(b.core, b.numa_node)))
}

/// [`identity_order`] of two series.
pub fn series_order(a: &Series, b: &Series) -> Ordering {
    identity_order(a.descriptor, &a.identity, b.descriptor, &b.identity)
}

fn value_order(v: &AttributeValue, w: &AttributeValue) -> Ordering {
    let rank = |v: &AttributeValue| match v {
        AttributeValue::Str(_) => 0,
        AttributeValue::Int(_) => 1,
        AttributeValue::Double(_) => 2,
        AttributeValue::Bool(_) => 3,
    };
    match (v, w) {
        (AttributeValue::Str(a), AttributeValue::Str(b)) => same_or_cmp(a, b),
        (AttributeValue::Int(a), AttributeValue::Int(b)) => a.cmp(b),
        (AttributeValue::Double(a), AttributeValue::Double(b)) => a.total_cmp(b),
        (AttributeValue::Bool(a), AttributeValue::Bool(b)) => a.cmp(b),
        _ => rank(v).cmp(&rank(w)),
    }
}

/// Whom a series describes: a metric set's attribute values, and the core or NUMA node
/// when the aggregation keeps them.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The attribute set's description.
    pub attributes: &'static AttributesDescriptor,
    /// Values in the order of `attributes.keys()`.
    pub values: Vec<AttributeValue>,
    /// The core, when kept (`keep: [core.id]`).
    pub core: Option<u32>,
    /// The NUMA node, when kept (`keep: [numa.node]`).
    pub numa_node: Option<u32>,
}

impl Identity {
    /// `key=value` pairs, including the kept core and NUMA node.
    pub fn pairs(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .attributes
            .keys()
            .iter()
            .zip(&self.values)
            .map(|(k, v)| (k.key.to_string(), v.to_string()))
            .collect();
        // A kept core or NUMA node the set's own attributes already name is not repeated.
        for (key, value) in [("core.id", self.core), ("numa.node", self.numa_node)] {
            if let Some(value) = value
                && !out.iter().any(|(k, _)| k == key)
            {
                out.push((key.into(), value.to_string()));
            }
        }
        out
    }
}

/// One side of an exponential histogram, owned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Buckets {
    /// Index of `counts[0]`.
    pub offset: i32,
    /// Consecutive bucket counts.
    pub counts: Vec<u64>,
}

/// The most buckets per sign an aggregated histogram keeps before lowering its scale.
pub const MAX_MERGED_BUCKETS: usize = 320;

impl Buckets {
    fn add(&mut self, index: i32, count: u64) {
        if count == 0 {
            return;
        }
        if self.counts.is_empty() {
            self.offset = index;
            self.counts.push(count);
            return;
        }
        if index < self.offset {
            let grow = (self.offset - index) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = index;
        }
        let at = (index - self.offset) as usize;
        if at >= self.counts.len() {
            self.counts.resize(at + 1, 0);
        }
        self.counts[at] += count;
    }

    fn downscale(&mut self, k: u32) {
        if k == 0 || self.counts.is_empty() {
            return;
        }
        let old = std::mem::take(&mut self.counts);
        let offset = self.offset;
        self.offset = offset >> k;
        for (i, c) in old.into_iter().enumerate() {
            self.add((offset + i as i32) >> k, c);
        }
    }

    fn span(&self) -> usize {
        self.counts.len()
    }
}

/// An exponential histogram, owned (the OpenTelemetry data model).
#[derive(Debug, Clone, PartialEq)]
pub struct ExpHistogram {
    /// Resolution.
    pub scale: i32,
    /// Number of values.
    pub count: u64,
    /// Sum of values.
    pub sum: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Values equal to zero.
    pub zero_count: u64,
    /// Positive buckets.
    pub positive: Buckets,
    /// Negative buckets (by absolute value).
    pub negative: Buckets,
}

impl ExpHistogram {
    /// A copy of a reported histogram.
    pub fn from_view(view: &HistogramView<'_>) -> Self {
        let side = |b: &BucketsView<'_>| Buckets {
            offset: b.offset,
            counts: b.counts.to_vec(),
        };
        ExpHistogram {
            scale: view.scale,
            count: view.count,
            sum: view.sum,
            min: view.min,
            max: view.max,
            zero_count: view.zero_count,
            positive: side(&view.positive),
            negative: side(&view.negative),
        }
    }

    /// Adds a reported histogram, lowering the scale to the coarser of the two (and
    /// further if the range needs more than [`MAX_MERGED_BUCKETS`]).
    pub fn merge(&mut self, other: &HistogramView<'_>) {
        let scale = self.scale.min(other.scale);
        self.downscale((self.scale - scale) as u32);
        let shift = (other.scale - scale) as u32;
        for (side, view) in [
            (&mut self.positive, &other.positive),
            (&mut self.negative, &other.negative),
        ] {
            for (i, &c) in view.counts.iter().enumerate() {
                side.add((view.offset + i as i32) >> shift, c);
            }
        }
        self.count += other.count;
        self.sum += other.sum;
        self.zero_count += other.zero_count;
        if other.min < self.min {
            self.min = other.min;
        }
        if other.max > self.max {
            self.max = other.max;
        }
        while self.positive.span().max(self.negative.span()) > MAX_MERGED_BUCKETS {
            self.downscale(1);
        }
    }

    /// Adds another owned histogram.
    pub fn merge_owned(&mut self, other: &ExpHistogram) {
        self.merge(&other.view());
    }

    /// A borrowed view.
    pub fn view(&self) -> HistogramView<'_> {
        HistogramView {
            scale: self.scale,
            count: self.count,
            sum: self.sum,
            min: self.min,
            max: self.max,
            zero_count: self.zero_count,
            positive: BucketsView {
                offset: self.positive.offset,
                counts: &self.positive.counts,
            },
            negative: BucketsView {
                offset: self.negative.offset,
                counts: &self.negative.counts,
            },
        }
    }

    fn downscale(&mut self, k: u32) {
        if k == 0 {
            return;
        }
        self.positive.downscale(k);
        self.negative.downscale(k);
        self.scale -= k as i32;
    }

    /// Total of every bucket and the zero count (equals `count` when nothing is lost).
    pub fn bucket_total(&self) -> u64 {
        self.zero_count
            + self.positive.counts.iter().sum::<u64>()
            + self.negative.counts.iter().sum::<u64>()
    }
}

/// The value of one point.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An unsigned sum or last value.
    U64(u64),
    /// A signed sum or last value.
    I64(i64),
    /// A float sum or last value.
    F64(f64),
    /// Minimum, maximum, sum, count.
    Mmsc(MmscValue),
    /// An exponential histogram (boxed: it is much larger than the other values).
    Histogram(Box<ExpHistogram>),
}

impl Value {
    /// The value as a float, for scalars.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::U64(v) => Some(v as f64),
            Value::I64(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            Value::Mmsc(_) | Value::Histogram(_) => None,
        }
    }
}

/// One field of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Field index in the series' descriptor.
    pub field: u16,
    /// Its value.
    pub value: Value,
}

/// One metric set instance (or a merge of several) over an interval.
#[derive(Debug, Clone)]
pub struct Series {
    /// The set's shape.
    pub descriptor: &'static MetricsDescriptor,
    /// Whom it describes.
    pub identity: Arc<Identity>,
    /// Start of the values (the interval's start for delta, the series' start for
    /// cumulative), Unix epoch nanoseconds.
    pub start_unix_nanos: u64,
    /// When the values were taken: the end of the interval the series was cut in. It
    /// is the interval's end unless `processor:batch` merged intervals, whose series
    /// keep their own times.
    pub end_unix_nanos: u64,
    /// Fields with something to say.
    pub points: Vec<Point>,
}

/// What `processor:aggregate` sends downstream once per interval.
#[derive(Debug, Clone)]
pub struct Interval {
    /// Start of the interval (Unix epoch, nanoseconds).
    pub start_unix_nanos: u64,
    /// End of the interval.
    pub end_unix_nanos: u64,
    /// What the values mean over time.
    pub temporality: Temporality,
    /// The series.
    pub series: Vec<Series>,
}

/// Intervals of the same temporality merge into one covering both: what
/// `processor:batch` does to cut the number of exports. Each series keeps its own
/// start and end, so the points of consecutive intervals go out with their own times,
/// as they would have unmerged (a series may then appear once per merged interval).
impl nodes::Mergeable for Interval {
    fn merge(&mut self, other: Box<dyn nodes::Mergeable>) -> Result<(), Box<dyn nodes::Mergeable>> {
        let same = other
            .as_any()
            .downcast_ref::<Interval>()
            .is_some_and(|o| o.temporality == self.temporality);
        if !same {
            return Err(other);
        }
        let other = other
            .into_any()
            .downcast::<Interval>()
            .expect("checked to be an Interval above");
        self.start_unix_nanos = self.start_unix_nanos.min(other.start_unix_nanos);
        self.end_unix_nanos = self.end_unix_nanos.max(other.end_unix_nanos);
        self.series.extend(other.series);
        Ok(())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
        self
    }
}

impl Interval {
    /// Number of points.
    pub fn point_count(&self) -> usize {
        self.series.iter().map(|s| s.points.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Short strings compare as words; the order must be `str`'s, NULs included.
    #[test]
    fn strings_compare_as_str_does() {
        let words = [
            "",
            "\0",
            "\0\0",
            "a",
            "a\0",
            "a\0\0",
            "ab",
            "abcdefg",
            "abcdefgh",
            "abcdefgh\0",
            "abcdefghi",
            "abcdefgz",
            "b",
            "\u{e9}",
            "node-1",
            "node-10",
            "node-2",
            "\u{ff}\u{ff}",
        ];
        for a in words {
            for b in words {
                // Copies, so that equal strings do not share their address.
                let (a2, b2) = (a.to_string(), b.to_string());
                assert_eq!(same_or_cmp(&a2, &b2), a.cmp(b), "{a:?} vs {b:?}");
            }
        }
    }

    fn hist(scale: i32, offset: i32, counts: &[u64]) -> ExpHistogram {
        let total: u64 = counts.iter().sum();
        ExpHistogram {
            scale,
            count: total,
            sum: 1.0,
            min: 1.0,
            max: 2.0,
            zero_count: 0,
            positive: Buckets {
                offset,
                counts: counts.to_vec(),
            },
            negative: Buckets::default(),
        }
    }

    #[test]
    fn merging_aligns_scales_and_keeps_every_count() {
        let mut a = hist(3, 8, &[1, 2, 3]);
        let b = hist(1, 1, &[5, 0, 7]);
        a.merge_owned(&b);
        assert_eq!(a.scale, 1);
        assert_eq!(a.count, 18);
        assert_eq!(a.bucket_total(), 18);
        // a's indexes 8,9,10 at scale 3 are 2,2,2 at scale 1.
        assert_eq!(a.positive.offset, 1);
        assert_eq!(a.positive.counts, vec![5, 6, 7]);
    }

    #[test]
    fn intervals_of_one_temporality_merge_into_one() {
        use nodes::Mergeable;
        let interval = |t, start, end| Interval {
            start_unix_nanos: start,
            end_unix_nanos: end,
            temporality: t,
            series: Vec::new(),
        };
        let mut a = interval(Temporality::Delta, 10, 20);
        assert!(
            a.merge(Box::new(interval(Temporality::Delta, 20, 30)))
                .is_ok()
        );
        assert_eq!((a.start_unix_nanos, a.end_unix_nanos), (10, 30));
        let back = a
            .merge(Box::new(interval(Temporality::Cumulative, 0, 40)))
            .expect_err("another temporality stays apart");
        assert!(back.as_any().is::<Interval>());
    }

    #[test]
    fn a_wide_merge_lowers_the_scale_to_fit() {
        let mut a = hist(8, 0, &[1]);
        let b = hist(8, 10_000, &[1]);
        a.merge_owned(&b);
        assert!(a.positive.counts.len() <= MAX_MERGED_BUCKETS);
        assert_eq!(a.bucket_total(), 2);
        assert!(a.scale < 8);
    }
}
