//! A base-2 exponential histogram with a fixed memory budget.
//!
//! Follows the OpenTelemetry ExponentialHistogram data model: at scale `s`, bucket `i`
//! counts the values in `(2^(i/2^s), 2^((i+1)/2^s)]`. Values are indexed at the table
//! scale ([`MAX_SCALE`]) with one lookup in a 512-entry mantissa table (built by
//! `build.rs`) and then shifted down to the current scale: downscaling by one merges
//! bucket pairs, so `index(s - 1) == index(s) >> 1` exactly. When a value falls outside
//! the `N` buckets of its side, the histogram first slides its window and, if the range
//! no longer fits, lowers the scale just enough (a cold path).
//!
//! Every report resets the histogram, scale included: each interval gets the finest
//! scale its own values allow.

use std::cell::Cell;

use super::{Instrument, sealed};
use crate::descriptor::{InstrumentKind, Temporality, ValueType};
use crate::snapshot::{BucketsView, HistogramView, SnapshotWriter};

include!(concat!(env!("OUT_DIR"), "/exp_table.rs"));

/// The finest scale: 256 buckets per power of two (relative error below 0.14 %).
pub const MAX_SCALE: i32 = TABLE_SCALE;
/// The coarsest scale the data model allows; every finite `f64` fits in 4 buckets.
pub const MIN_SCALE: i32 = -10;
/// Buckets per side when the field attribute does not say (as OpenTelemetry SDKs).
pub const DEFAULT_MAX_BUCKETS: usize = 160;

const MANTISSA_MASK: u64 = (1 << 52) - 1;
const EXPONENT_BIAS: i32 = 1023;
/// Offset of a side with no values: every index lands outside its window.
const EMPTY: i32 = i32::MIN / 2;

/// Index of a positive, finite, non-zero value at [`MAX_SCALE`], given the value's
/// unbiased exponent and mantissa bits.
#[inline(always)]
fn table_index(exponent: i32, mantissa: u64) -> i32 {
    let entry = MANTISSA_TABLE[(mantissa >> TABLE_BIN_SHIFT) as usize];
    let below = (entry >> 52) as i32 + i32::from(mantissa > (entry & MANTISSA_MASK));
    (exponent << TABLE_SCALE) + below - 1
}

/// Index of `v` (finite, non-zero; sign ignored) at `scale`.
pub(crate) fn bucket_index(v: f64, scale: i32) -> i32 {
    let bits = v.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let mantissa = bits & MANTISSA_MASK;
    let index = if biased == 0 {
        // Subnormal: normalise so that the leading one becomes the implicit bit.
        let lead = 63 - mantissa.leading_zeros() as i32;
        let normal = (mantissa << (52 - lead)) & MANTISSA_MASK;
        table_index(lead - 1074, normal)
    } else {
        table_index(biased - EXPONENT_BIAS, mantissa)
    };
    index >> (MAX_SCALE - scale)
}

#[derive(Debug)]
struct Buckets<const N: usize> {
    offset: Cell<i32>,
    counts: [Cell<u64>; N],
}

impl<const N: usize> Default for Buckets<N> {
    fn default() -> Self {
        Buckets {
            offset: Cell::new(EMPTY),
            counts: std::array::from_fn(|_| Cell::new(0)),
        }
    }
}

impl<const N: usize> Buckets<N> {
    /// Counts one value at `index` if it falls in the window.
    #[inline(always)]
    fn try_increment(&self, index: i32) -> bool {
        let rel = index.wrapping_sub(self.offset.get()) as u32 as usize;
        if let Some(cell) = self.counts.get(rel) {
            cell.set(cell.get() + 1);
            true
        } else {
            false
        }
    }

    /// First and last used positions in `counts`.
    fn used(&self) -> Option<(usize, usize)> {
        if self.offset.get() == EMPTY {
            return None;
        }
        let first = self.counts.iter().position(|c| c.get() != 0)?;
        let last = self.counts.iter().rposition(|c| c.get() != 0)?;
        Some((first, last))
    }

    /// First and last used bucket indexes.
    fn used_indexes(&self) -> Option<(i32, i32)> {
        let offset = self.offset.get();
        self.used()
            .map(|(first, last)| (offset + first as i32, offset + last as i32))
    }

    /// Moves the window so that it starts at `offset` (the used range must fit).
    fn move_to(&self, offset: i32) {
        let shift = self.offset.get() - offset;
        let n = self.counts.len();
        if shift > 0 {
            let shift = shift as usize;
            for i in (0..n).rev() {
                let v = if i >= shift {
                    self.counts[i - shift].get()
                } else {
                    0
                };
                self.counts[i].set(v);
            }
        } else if shift < 0 {
            let shift = shift.unsigned_abs() as usize;
            for i in 0..n {
                let v = self.counts.get(i + shift).map_or(0, Cell::get);
                self.counts[i].set(v);
            }
        }
        self.offset.set(offset);
    }

    /// Merges buckets for a scale `k` steps coarser.
    fn downscale(&self, k: u32) {
        let Some((lo, _)) = self.used_indexes() else {
            return;
        };
        let offset = self.offset.get();
        let new_offset = lo >> k;
        for (i, cell) in self.counts.iter().enumerate() {
            let v = cell.replace(0);
            if v != 0 {
                let target = (((offset + i as i32) >> k) - new_offset) as usize;
                let t = &self.counts[target];
                t.set(t.get() + v);
            }
        }
        self.offset.set(new_offset);
    }

    fn reset(&self) {
        if let Some((first, last)) = self.used() {
            for c in &self.counts[first..=last] {
                c.set(0);
            }
        }
        self.offset.set(EMPTY);
    }

    fn view_head(&self) -> (i32, usize) {
        match self.used() {
            Some((first, last)) => (self.offset.get() + first as i32, last - first + 1),
            None => (0, 0),
        }
    }
}

/// An exponential histogram of `f64` values with at most `N` buckets per sign.
///
/// Memory is fixed: `2 * N` counters plus a few words. Set `N` from the field attribute
/// (`#[metric(unit = "s", max_buckets = 64)]`); the default is [`DEFAULT_MAX_BUCKETS`].
/// NaN and infinities are ignored, as OpenTelemetry SDKs do.
///
/// ```
/// let h = metric_schema::Histogram::<16>::default();
/// h.record(1.5);
/// h.record(3.0);
/// assert_eq!((h.count(), h.sum()), (2, 4.5));
/// ```
#[derive(Debug)]
pub struct Histogram<const N: usize = DEFAULT_MAX_BUCKETS> {
    count: Cell<u64>,
    sum: Cell<f64>,
    min: Cell<f64>,
    max: Cell<f64>,
    zero_count: Cell<u64>,
    /// `MAX_SCALE - scale`: what the table index is shifted right by.
    shift: Cell<u32>,
    positive: Buckets<N>,
    negative: Buckets<N>,
}

impl<const N: usize> Default for Histogram<N> {
    fn default() -> Self {
        const { assert!(N >= 4, "a histogram needs at least 4 buckets per sign") };
        Histogram {
            count: Cell::new(0),
            sum: Cell::new(0.0),
            min: Cell::new(f64::INFINITY),
            max: Cell::new(f64::NEG_INFINITY),
            zero_count: Cell::new(0),
            shift: Cell::new(0),
            positive: Buckets::default(),
            negative: Buckets::default(),
        }
    }
}

impl<const N: usize> Histogram<N> {
    /// Records one value.
    #[inline(always)]
    pub fn record(&self, v: f64) {
        let bits = v.to_bits();
        let biased = ((bits >> 52) & 0x7ff) as i32;
        // Zero, subnormals (biased 0), infinities and NaN (biased 0x7ff) go the slow way.
        if (biased.wrapping_sub(1) as u32) >= 0x7fe {
            self.record_special(v);
            return;
        }
        self.record_stats(v);
        let index = table_index(biased - EXPONENT_BIAS, bits & MANTISSA_MASK) >> self.shift.get();
        let side = if (bits as i64) < 0 {
            &self.negative
        } else {
            &self.positive
        };
        if !side.try_increment(index) {
            self.insert_slow((bits as i64) < 0, index);
        }
    }

    #[inline(always)]
    fn record_stats(&self, v: f64) {
        self.count.set(self.count.get() + 1);
        self.sum.set(self.sum.get() + v);
        // Branches, not selects: a new extreme is rare, so the branch predicts well and
        // the next record does not wait on this one's min/max store.
        if v < self.min.get() {
            self.min.set(v);
        }
        if v > self.max.get() {
            self.max.set(v);
        }
    }

    #[cold]
    #[inline(never)]
    fn record_special(&self, v: f64) {
        if !v.is_finite() {
            return;
        }
        self.record_stats(v);
        if v == 0.0 {
            self.zero_count.set(self.zero_count.get() + 1);
            return;
        }
        let index = bucket_index(v, self.scale());
        let side = if v < 0.0 {
            &self.negative
        } else {
            &self.positive
        };
        if !side.try_increment(index) {
            self.insert_slow(v < 0.0, index);
        }
    }

    /// Makes room for `index` (sliding the window, then lowering the scale) and counts it.
    #[cold]
    #[inline(never)]
    fn insert_slow(&self, negative: bool, mut index: i32) {
        let n = N as i32;
        loop {
            let side = if negative {
                &self.negative
            } else {
                &self.positive
            };
            if side.try_increment(index) {
                return;
            }
            let Some((lo, hi)) = side.used_indexes() else {
                side.offset.set(index - n / 2);
                continue;
            };
            let (lo, hi) = (lo.min(index), hi.max(index));
            if hi - lo < n {
                // Fits at this scale: centre the used range in the window.
                side.move_to(lo - (n - 1 - (hi - lo)) / 2);
                continue;
            }
            let mut k = 0u32;
            while (hi >> k) - (lo >> k) >= n {
                k += 1;
            }
            let k = k.min((self.scale() - MIN_SCALE) as u32);
            self.positive.downscale(k);
            self.negative.downscale(k);
            self.shift.set(self.shift.get() + k);
            index >>= k;
        }
    }

    /// Number of values recorded since the last report.
    pub fn count(&self) -> u64 {
        self.count.get()
    }
    /// Sum of values recorded since the last report.
    pub fn sum(&self) -> f64 {
        self.sum.get()
    }
    /// Smallest value since the last report (`+inf` when empty).
    pub fn min(&self) -> f64 {
        self.min.get()
    }
    /// Largest value since the last report (`-inf` when empty).
    pub fn max(&self) -> f64 {
        self.max.get()
    }
    /// Current scale.
    pub fn scale(&self) -> i32 {
        MAX_SCALE - self.shift.get() as i32
    }

    /// Calls `f` with the current content, as a consumer would see it.
    pub fn with_view<R>(&self, f: impl FnOnce(&HistogramView<'_>) -> R) -> R {
        let collect = |b: &Buckets<N>| -> (i32, Vec<u64>) {
            let (offset, len) = b.view_head();
            let start = (offset - b.offset.get()) as usize;
            let counts = if len == 0 {
                Vec::new()
            } else {
                b.counts[start..start + len].iter().map(Cell::get).collect()
            };
            (offset, counts)
        };
        let (pos_offset, pos) = collect(&self.positive);
        let (neg_offset, neg) = collect(&self.negative);
        f(&self.head(
            BucketsView {
                offset: pos_offset,
                counts: &pos,
            },
            BucketsView {
                offset: neg_offset,
                counts: &neg,
            },
        ))
    }

    fn head<'a>(&self, positive: BucketsView<'a>, negative: BucketsView<'a>) -> HistogramView<'a> {
        HistogramView {
            scale: self.scale(),
            count: self.count.get(),
            sum: self.sum.get(),
            min: self.min.get(),
            max: self.max.get(),
            zero_count: self.zero_count.get(),
            positive,
            negative,
        }
    }

    fn reset(&self) {
        self.count.set(0);
        self.sum.set(0.0);
        self.min.set(f64::INFINITY);
        self.max.set(f64::NEG_INFINITY);
        self.zero_count.set(0);
        self.shift.set(0);
        self.positive.reset();
        self.negative.reset();
    }
}

impl<const N: usize> sealed::Sealed for Histogram<N> {}

impl<const N: usize> Instrument for Histogram<N> {
    const KIND: InstrumentKind = InstrumentKind::Histogram;
    const VALUE_TYPE: ValueType = ValueType::F64;
    const TEMPORALITY: Temporality = Temporality::Delta;

    #[inline(always)]
    fn dirty_word(&self) -> u64 {
        self.count.get()
    }

    fn snapshot(&self, field: u16, out: &mut SnapshotWriter<'_>) {
        if self.count.get() == 0 {
            return;
        }
        let (pos_offset, pos_len) = self.positive.view_head();
        let (neg_offset, neg_len) = self.negative.view_head();
        let head = self.head(
            BucketsView {
                offset: pos_offset,
                counts: &[],
            },
            BucketsView {
                offset: neg_offset,
                counts: &[],
            },
        );
        out.histogram_with(field, &head, (pos_len, neg_len), |words| {
            for (side, offset, len) in [
                (&self.positive, pos_offset, pos_len),
                (&self.negative, neg_offset, neg_len),
            ] {
                let start = (offset - side.offset.get()) as usize;
                if len > 0 {
                    words.extend(side.counts[start..start + len].iter().map(Cell::get));
                }
            }
        });
        self.reset();
    }
}

#[cfg(test)]
#[expect(
    clippy::float_cmp,
    reason = "the values compared are exact binary fractions"
)]
mod tests {
    use super::*;

    /// The reference definition: the smallest `i` with `v <= base^(i+1)`.
    fn reference_index(v: f64, scale: i32) -> i32 {
        let approx = (v.log2() * f64::from(scale).exp2()).ceil() as i32 - 1;
        // Correct the float estimate against the exact boundaries around it.
        let boundary = |i: i32| (f64::from(i) / f64::from(scale).exp2()).exp2();
        let mut i = approx;
        while v > boundary(i + 1) {
            i += 1;
        }
        while v <= boundary(i) {
            i -= 1;
        }
        i
    }

    /// `2^e`, exactly (`exp2` may be perturbed by a few ulps, and is under miri).
    fn pow2(e: i32) -> f64 {
        f64::from_bits(((e + 1023) as u64) << 52)
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "miri perturbs log2/exp2 that the reference uses; this code has no unsafe"
    )]
    fn table_index_matches_the_definition_at_every_scale() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let exponent = (x % 80) as i32 - 40;
            let mantissa = 1.0 + ((x >> 12) as f64 / (1u64 << 52) as f64);
            let v = mantissa * f64::from(exponent).exp2();
            for scale in [MAX_SCALE, 5, 1, 0, -1, -4, MIN_SCALE] {
                assert_eq!(
                    bucket_index(v, scale),
                    reference_index(v, scale),
                    "v={v:e} scale={scale}"
                );
            }
        }
    }

    #[test]
    fn exact_powers_of_two_close_their_bucket() {
        for scale in [MAX_SCALE, 3, 0, -2] {
            for e in [-30, -1, 0, 1, 7, 100] {
                let v = pow2(e);
                // 2^e is the upper bound of the bucket ending there.
                let expected = if scale >= 0 {
                    (e << scale) - 1
                } else {
                    (e - 1) >> -scale
                };
                assert_eq!(bucket_index(v, scale), expected, "2^{e} at scale {scale}");
            }
        }
    }

    #[test]
    fn subnormals_are_indexed_by_their_value() {
        let v = f64::from_bits(1); // 2^-1074
        assert_eq!(bucket_index(v, 0), -1075);
        let h = Histogram::<8>::default();
        h.record(v);
        h.record(-v);
        assert_eq!(h.count(), 2);
    }

    fn total(view: &HistogramView<'_>) -> u64 {
        view.positive.counts.iter().sum::<u64>()
            + view.negative.counts.iter().sum::<u64>()
            + view.zero_count
    }

    #[test]
    fn a_wide_range_downscales_and_keeps_every_count() {
        let h = Histogram::<16>::default();
        let values = [1e-9, 3.0, -2.5, 0.0, 1e12, 7.0, 7.0, -1e-3, 42.0];
        for v in values {
            h.record(v);
        }
        h.with_view(|view| {
            assert_eq!(view.count, values.len() as u64);
            assert_eq!(total(view), values.len() as u64);
            assert!(view.positive.counts.len() <= 16);
            assert!(view.scale < MAX_SCALE);
            for v in values.iter().filter(|v| **v > 0.0) {
                let i = bucket_index(*v, view.scale) - view.positive.offset;
                assert!(view.positive.counts[i as usize] > 0, "{v} lost");
            }
            assert_eq!(view.zero_count, 1);
            assert_eq!(view.min, -2.5);
            assert_eq!(view.max, 1e12);
        });
    }

    #[test]
    fn descending_values_slide_the_window_before_downscaling() {
        let h = Histogram::<32>::default();
        for i in 0..20 {
            h.record(1.0 + f64::from(20 - i) / 256.0);
        }
        assert_eq!(h.scale(), MAX_SCALE);
        h.with_view(|view| assert_eq!(total(view), 20));
    }

    #[test]
    fn nan_and_infinities_are_ignored() {
        let h = Histogram::<8>::default();
        h.record(f64::NAN);
        h.record(f64::INFINITY);
        h.record(f64::NEG_INFINITY);
        assert_eq!(h.count(), 0);
    }

    #[test]
    fn snapshot_resets_including_the_scale() {
        let h = Histogram::<8>::default();
        h.record(1e-6);
        h.record(1e6);
        assert!(h.scale() < MAX_SCALE);
        let mut words = Vec::new();
        h.snapshot(0, &mut SnapshotWriter::new(&mut words));
        assert!(!words.is_empty());
        assert_eq!((h.count(), h.scale()), (0, MAX_SCALE));
        h.record(2.0);
        h.with_view(|view| assert_eq!(view.positive.counts, &[1]));
    }
}
