//! Sparse snapshot batches: what crosses the queue from a core's reporter to the consumer.
//!
//! A [`SnapshotBatch`] carries, in this order of meaning:
//! 1. registrations of sets the consumer has not seen yet (descriptor, attribute values,
//!    core, NUMA node), always ahead of the first snapshot of the set;
//! 2. one sparse snapshot per set that had something to report: `(field index, value)`
//!    pairs for the dirty fields only, with the time window they cover;
//! 3. the ids of sets that were dropped, after their last snapshot.
//!
//! Values live in one flat `Vec<u64>` of words, so a batch is a handful of vectors that
//! the consumer hands back for reuse: in steady state nothing is allocated. The type is
//! public and constructible, for tests and for consumers that build batches themselves.

use std::ops::Range;

use crate::attributes::AttributeValue;
use crate::descriptor::{AttributesDescriptor, MetricsDescriptor, ValueType};

/// Identifies a registered metric set, unique within the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SetId(pub u32);

/// The first message about a set: what it is and whom it describes.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The id later snapshots use.
    pub set_id: SetId,
    /// The set's shape.
    pub descriptor: &'static MetricsDescriptor,
    /// The shape of the attributes bound to the set.
    pub attributes: &'static AttributesDescriptor,
    /// Attribute values, in the order of [`AttributesDescriptor::keys`].
    pub attribute_values: Vec<AttributeValue>,
    /// The core that owns the set.
    pub core: u32,
    /// The NUMA node of that core.
    pub numa_node: u32,
    /// When the set was registered (Unix epoch, nanoseconds): the start of its first
    /// window and of its cumulative values.
    pub start_unix_nanos: u64,
}

/// Minimum, maximum, sum and count, as reported by [`Mmsc`](crate::Mmsc).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MmscValue {
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Sum of values.
    pub sum: f64,
    /// Number of values.
    pub count: u64,
}

impl MmscValue {
    /// Folds `other` in: the smaller minimum, the larger maximum, sums and counts added.
    pub fn merge(&mut self, other: &MmscValue) {
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
        self.count += other.count;
    }
}

/// One side (positive or negative) of an exponential histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketsView<'a> {
    /// Index of the bucket `counts[0]` counts.
    pub offset: i32,
    /// Consecutive bucket counts.
    pub counts: &'a [u64],
}

/// An exponential histogram as reported, following the OpenTelemetry
/// ExponentialHistogram data model: bucket `i` counts values in
/// `(base^i, base^(i+1)]` with `base = 2^(2^-scale)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistogramView<'a> {
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
    /// Number of values equal to zero.
    pub zero_count: u64,
    /// Buckets of positive values.
    pub positive: BucketsView<'a>,
    /// Buckets of negative values (indexed by absolute value).
    pub negative: BucketsView<'a>,
}

/// The reported value of one field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValue<'a> {
    /// From a `u64` counter, gauge or observed total.
    U64(u64),
    /// From an `i64` up-down counter, gauge or observed total.
    I64(i64),
    /// From an `f64` instrument.
    F64(f64),
    /// From an [`Mmsc`](crate::Mmsc).
    Mmsc(MmscValue),
    /// From a [`Histogram`](crate::Histogram).
    Histogram(HistogramView<'a>),
}

impl FieldValue<'_> {
    /// The value as a float, for scalar values (`None` for `Mmsc` and histograms).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            FieldValue::U64(v) => Some(v as f64),
            FieldValue::I64(v) => Some(v as f64),
            FieldValue::F64(v) => Some(v),
            FieldValue::Mmsc(_) | FieldValue::Histogram(_) => None,
        }
    }
}

const TAG_U64: u64 = 1;
const TAG_I64: u64 = 2;
const TAG_F64: u64 = 3;
const TAG_MMSC: u64 = 4;
const TAG_HISTOGRAM: u64 = 5;
/// Words of a histogram payload before its bucket counts.
const HISTOGRAM_HEAD: usize = 10;

#[inline(always)]
fn header(field: u16, tag: u64, len: usize) -> u64 {
    u64::from(field) | (tag << 16) | ((len as u64) << 32)
}

/// Appends field values to the current set of a batch. Obtained from
/// [`SnapshotBatch::write_set`]; instruments call it from
/// [`Instrument::snapshot`](crate::Instrument::snapshot).
///
/// Scalar values are written straight into the vector's spare capacity with the write
/// position kept in a register: the vector's length is stored once, when the writer is
/// dropped, instead of once per field (a store-to-load chain that would otherwise bound
/// a report at about one field per nanosecond and a half).
pub struct SnapshotWriter<'a> {
    words: &'a mut Vec<u64>,
    /// Base of the vector's buffer (refreshed whenever the vector may reallocate).
    ptr: *mut u64,
    /// Words initialised in the buffer (the vector's length is behind until `sync`).
    len: usize,
    /// The buffer's capacity.
    cap: usize,
}

impl<'a> SnapshotWriter<'a> {
    /// A writer appending to `words`, for benchmarks and custom consumers.
    #[doc(hidden)]
    #[inline]
    pub fn new(words: &'a mut Vec<u64>) -> Self {
        SnapshotWriter {
            ptr: words.as_mut_ptr(),
            len: words.len(),
            cap: words.capacity(),
            words,
        }
    }

    /// Brings the vector's length up to date (before any use of the vector itself).
    #[inline]
    fn sync(&mut self) {
        // SAFETY: `len <= cap` always holds, and every word in `[old len, len)` was
        // written by `push2`, so the first `len` words are initialised.
        unsafe { self.words.set_len(self.len) };
    }

    /// Runs `f` on the vector itself, keeping the cached pointer, length and capacity
    /// in step with it.
    #[inline]
    fn with_vec(&mut self, f: impl FnOnce(&mut Vec<u64>)) {
        self.sync();
        f(self.words);
        self.ptr = self.words.as_mut_ptr();
        self.len = self.words.len();
        self.cap = self.words.capacity();
    }

    /// Runs `f` with a writer that lives in `f`'s own frame.
    ///
    /// Generated `snapshot_into` code writes all the fields of a set through such a
    /// local writer: once inlined, its position stays in a register even though `self`
    /// came from a caller across a dynamic call. Not public API.
    #[doc(hidden)]
    #[inline(always)]
    pub fn scoped(&mut self, f: impl FnOnce(&mut SnapshotWriter<'_>)) {
        self.sync();
        f(&mut SnapshotWriter::new(self.words));
        self.ptr = self.words.as_mut_ptr();
        self.len = self.words.len();
        self.cap = self.words.capacity();
    }

    #[inline(always)]
    fn push2(&mut self, a: u64, b: u64) {
        if self.cap - self.len < 2 {
            // Values in, values out: the writer's address does not escape, so it can
            // live in registers.
            (self.ptr, self.cap) = grow(self.words, self.len);
        }
        // SAFETY: `len + 2 <= cap` was just ensured and `ptr` is the base of a buffer of
        // `cap` words owned by `words`, which nothing else touches while the writer
        // holds it mutably.
        unsafe {
            let p = self.ptr.add(self.len);
            p.write(a);
            p.add(1).write(b);
        }
        self.len += 2;
    }

    /// Words written so far into the underlying vector (including earlier sets).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the underlying vector holds no word at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A scalar value.
    #[inline(always)]
    pub fn number(&mut self, field: u16, value_type: ValueType, word: u64) {
        let tag = match value_type {
            ValueType::U64 => TAG_U64,
            ValueType::I64 => TAG_I64,
            ValueType::F64 => TAG_F64,
        };
        self.push2(header(field, tag, 1), word);
    }

    /// Minimum, maximum, sum and count.
    #[inline]
    pub fn mmsc(&mut self, field: u16, min: f64, max: f64, sum: f64, count: u64) {
        self.with_vec(|v| {
            v.extend_from_slice(&[
                header(field, TAG_MMSC, 4),
                min.to_bits(),
                max.to_bits(),
                sum.to_bits(),
                count,
            ]);
        });
    }

    /// An exponential histogram.
    pub fn histogram(&mut self, field: u16, h: &HistogramView<'_>) {
        let lens = (h.positive.counts.len(), h.negative.counts.len());
        self.histogram_with(field, h, lens, |words| {
            words.extend_from_slice(h.positive.counts);
            words.extend_from_slice(h.negative.counts);
        });
    }

    /// Appends an exponential histogram whose bucket counts are produced by the caller:
    /// `fill` receives the words to extend with `pos_len` then `neg_len` counts.
    pub(crate) fn histogram_with(
        &mut self,
        field: u16,
        head: &HistogramView<'_>,
        (pos_len, neg_len): (usize, usize),
        fill: impl FnOnce(&mut Vec<u64>),
    ) {
        let len = HISTOGRAM_HEAD + pos_len + neg_len;
        self.with_vec(|words| {
            words.reserve(len + 1);
            words.extend_from_slice(&[
                header(field, TAG_HISTOGRAM, len),
                i64::from(head.scale) as u64,
                head.count,
                head.sum.to_bits(),
                head.min.to_bits(),
                head.max.to_bits(),
                head.zero_count,
                i64::from(head.positive.offset) as u64,
                pos_len as u64,
                i64::from(head.negative.offset) as u64,
                neg_len as u64,
            ]);
            let before = words.len();
            fill(words);
            debug_assert_eq!(words.len() - before, pos_len + neg_len);
        });
    }
}

/// Makes room for at least 64 more words after the first `len` (initialised) words.
#[cold]
#[inline(never)]
fn grow(words: &mut Vec<u64>, len: usize) -> (*mut u64, usize) {
    // SAFETY: the writer that calls this initialised the first `len` words, and
    // `len <= capacity`.
    unsafe { words.set_len(len) };
    words.reserve(64);
    (words.as_mut_ptr(), words.capacity())
}

impl Drop for SnapshotWriter<'_> {
    #[inline]
    fn drop(&mut self) {
        self.sync();
    }
}

/// The snapshot of one set inside a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SetEntry {
    set_id: SetId,
    start_unix_nanos: u64,
    words: Range<usize>,
}

/// A batch of registrations, sparse snapshots and unregistrations from one core.
#[derive(Debug, Default)]
pub struct SnapshotBatch {
    core: u32,
    numa_node: u32,
    end_unix_nanos: u64,
    registrations: Vec<Registration>,
    sets: Vec<SetEntry>,
    words: Vec<u64>,
    unregistrations: Vec<SetId>,
}

impl SnapshotBatch {
    /// An empty batch from `core` on `numa_node`, whose windows end at `end_unix_nanos`.
    pub fn new(core: u32, numa_node: u32, end_unix_nanos: u64) -> Self {
        SnapshotBatch {
            core,
            numa_node,
            end_unix_nanos,
            ..SnapshotBatch::default()
        }
    }

    /// Empties the batch for reuse, keeping its buffers.
    pub fn reset(&mut self, core: u32, numa_node: u32, end_unix_nanos: u64) {
        self.core = core;
        self.numa_node = numa_node;
        self.end_unix_nanos = end_unix_nanos;
        self.registrations.clear();
        self.sets.clear();
        self.words.clear();
        self.unregistrations.clear();
    }

    /// The core that sent the batch.
    pub fn core(&self) -> u32 {
        self.core
    }

    /// The NUMA node of that core.
    pub fn numa_node(&self) -> u32 {
        self.numa_node
    }

    /// End of every window in the batch (Unix epoch, nanoseconds).
    pub fn end_unix_nanos(&self) -> u64 {
        self.end_unix_nanos
    }

    /// Whether the batch carries nothing at all.
    pub fn is_empty(&self) -> bool {
        self.registrations.is_empty() && self.sets.is_empty() && self.unregistrations.is_empty()
    }

    /// Adds a registration. It must precede the first snapshot of its set.
    pub fn push_registration(&mut self, registration: Registration) {
        self.registrations.push(registration);
    }

    /// Registrations carried by this batch, to be processed before [`Self::sets`].
    pub fn registrations(&self) -> &[Registration] {
        &self.registrations
    }

    /// Moves the registrations out (keeping the batch's other buffers).
    pub fn take_registrations(&mut self) -> Vec<Registration> {
        std::mem::take(&mut self.registrations)
    }

    /// Adds the snapshot of one set: `write` appends its dirty fields. A set that
    /// writes nothing leaves no trace in the batch. Returns whether anything was written.
    #[inline]
    pub fn write_set(
        &mut self,
        set_id: SetId,
        start_unix_nanos: u64,
        write: impl FnOnce(&mut SnapshotWriter<'_>),
    ) -> bool {
        let start = self.words.len();
        write(&mut SnapshotWriter::new(&mut self.words));
        let end = self.words.len();
        if end == start {
            return false;
        }
        self.sets.push(SetEntry {
            set_id,
            start_unix_nanos,
            words: start..end,
        });
        true
    }

    /// Marks a set as dropped: the consumer forgets it after this batch's snapshots.
    pub fn push_unregistration(&mut self, set_id: SetId) {
        self.unregistrations.push(set_id);
    }

    /// Ids of sets dropped by their owner, to be processed after [`Self::sets`].
    pub fn unregistrations(&self) -> &[SetId] {
        &self.unregistrations
    }

    /// The sparse snapshots, in the order they were written.
    #[inline]
    pub fn sets(&self) -> impl ExactSizeIterator<Item = SetSnapshot<'_>> + '_ {
        self.sets.iter().map(|e| SetSnapshot {
            set_id: e.set_id,
            start_unix_nanos: e.start_unix_nanos,
            words: &self.words[e.words.clone()],
        })
    }

    /// Number of field values in the batch (a histogram or an `Mmsc` counts as one).
    pub fn value_count(&self) -> usize {
        self.sets().map(|s| s.fields().count()).sum()
    }

    /// Bytes of value words, a measure of what the batch moves.
    pub fn word_bytes(&self) -> usize {
        self.words.len() * 8
    }
}

/// The sparse snapshot of one set.
#[derive(Debug, Clone, Copy)]
pub struct SetSnapshot<'a> {
    /// Which set.
    pub set_id: SetId,
    /// Start of the window (Unix epoch, nanoseconds); it ends at the batch's end.
    pub start_unix_nanos: u64,
    words: &'a [u64],
}

impl<'a> SetSnapshot<'a> {
    /// The dirty fields: `(field index, value)`, in field order.
    #[inline]
    pub fn fields(&self) -> FieldIter<'a> {
        FieldIter { words: self.words }
    }
}

/// Iterator over the fields of a [`SetSnapshot`].
#[derive(Debug, Clone)]
pub struct FieldIter<'a> {
    words: &'a [u64],
}

impl<'a> Iterator for FieldIter<'a> {
    type Item = (u16, FieldValue<'a>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let (&head, rest) = self.words.split_first()?;
        let field = (head & 0xffff) as u16;
        let tag = (head >> 16) & 0xff;
        let len = (head >> 32) as usize;
        let Some((payload, rest)) = rest.split_at_checked(len) else {
            // Only the writer above produces words, so this cannot happen; end cleanly.
            self.words = &[];
            return None;
        };
        self.words = rest;
        let value = match tag {
            TAG_U64 => FieldValue::U64(payload[0]),
            TAG_I64 => FieldValue::I64(payload[0] as i64),
            TAG_F64 => FieldValue::F64(f64::from_bits(payload[0])),
            TAG_MMSC => FieldValue::Mmsc(MmscValue {
                min: f64::from_bits(payload[0]),
                max: f64::from_bits(payload[1]),
                sum: f64::from_bits(payload[2]),
                count: payload[3],
            }),
            TAG_HISTOGRAM => {
                let pos_len = payload[7] as usize;
                let counts = &payload[HISTOGRAM_HEAD..];
                FieldValue::Histogram(HistogramView {
                    scale: payload[0] as i64 as i32,
                    count: payload[1],
                    sum: f64::from_bits(payload[2]),
                    min: f64::from_bits(payload[3]),
                    max: f64::from_bits(payload[4]),
                    zero_count: payload[5],
                    positive: BucketsView {
                        offset: payload[6] as i64 as i32,
                        counts: &counts[..pos_len],
                    },
                    negative: BucketsView {
                        offset: payload[8] as i64 as i32,
                        counts: &counts[pos_len..],
                    },
                })
            }
            _ => return None,
        };
        Some((field, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_through_words() {
        let mut batch = SnapshotBatch::new(3, 1, 99);
        let written = batch.write_set(SetId(7), 10, |w| {
            w.number(0, ValueType::U64, 5);
            w.number(2, ValueType::I64, (-4i64) as u64);
            w.number(3, ValueType::F64, 1.5f64.to_bits());
            w.mmsc(4, 1.0, 3.0, 4.0, 2);
            w.histogram(
                5,
                &HistogramView {
                    scale: -2,
                    count: 4,
                    sum: 0.5,
                    min: -1.0,
                    max: 2.0,
                    zero_count: 1,
                    positive: BucketsView {
                        offset: -3,
                        counts: &[1, 0, 1],
                    },
                    negative: BucketsView {
                        offset: 0,
                        counts: &[1],
                    },
                },
            );
        });
        assert!(written);
        assert!(!batch.write_set(SetId(8), 10, |_| {}));
        let sets: Vec<_> = batch.sets().collect();
        assert_eq!(sets.len(), 1);
        assert_eq!(sets[0].set_id, SetId(7));
        let fields: Vec<_> = sets[0].fields().collect();
        assert_eq!(fields.len(), 5);
        assert_eq!(fields[0], (0, FieldValue::U64(5)));
        assert_eq!(fields[1], (2, FieldValue::I64(-4)));
        assert_eq!(fields[2], (3, FieldValue::F64(1.5)));
        let FieldValue::Histogram(h) = fields[4].1 else {
            panic!("expected a histogram, got {:?}", fields[4]);
        };
        assert_eq!(h.scale, -2);
        assert_eq!(h.positive.offset, -3);
        assert_eq!(h.positive.counts, &[1, 0, 1]);
        assert_eq!(h.negative.counts, &[1]);
        assert_eq!(batch.value_count(), 5);
    }

    #[test]
    fn the_writer_grows_across_many_fields_and_mixed_payloads() {
        let mut words = Vec::new();
        {
            let mut w = SnapshotWriter::new(&mut words);
            for field in 0..300u16 {
                w.number(field, ValueType::U64, u64::from(field) * 3);
                if field % 7 == 0 {
                    w.mmsc(field, 1.0, 2.0, 3.0, 4);
                }
            }
            assert!(!w.is_empty());
        }
        let mut batch = SnapshotBatch::new(0, 0, 0);
        batch.write_set(SetId(1), 0, |w| {
            for field in 0..300u16 {
                w.number(field, ValueType::U64, u64::from(field) * 3);
            }
        });
        let set = batch.sets().next().unwrap();
        let values: Vec<_> = set.fields().collect();
        assert_eq!(values.len(), 300);
        assert_eq!(values[299], (299, FieldValue::U64(897)));
        assert_eq!(words.len(), 300 * 2 + 43 * 5);
    }
}
