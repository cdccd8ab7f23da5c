//! `Mmsc`: minimum, maximum, sum and count, reset each time it is reported.

use std::cell::Cell;

use super::{Instrument, sealed};
use crate::descriptor::{InstrumentKind, Temporality, ValueType};
use crate::snapshot::SnapshotWriter;

/// Minimum, maximum, sum and count of the values recorded since the last report: a
/// histogram without buckets, for when the distribution's shape is not worth its memory.
///
/// ```
/// let m = metric_schema::Mmsc::default();
/// m.record(2.0);
/// m.record(5.0);
/// assert_eq!((m.min(), m.max(), m.sum(), m.count()), (2.0, 5.0, 7.0, 2));
/// ```
#[derive(Debug)]
pub struct Mmsc {
    min: Cell<f64>,
    max: Cell<f64>,
    sum: Cell<f64>,
    count: Cell<u64>,
}

impl Default for Mmsc {
    fn default() -> Self {
        Mmsc {
            min: Cell::new(f64::INFINITY),
            max: Cell::new(f64::NEG_INFINITY),
            sum: Cell::new(0.0),
            count: Cell::new(0),
        }
    }
}

impl Mmsc {
    /// Records one value. NaN is ignored: it has no place in a min or a max.
    #[inline(always)]
    pub fn record(&self, v: f64) {
        if v.is_nan() {
            return;
        }
        // Branches, not selects: a new extreme is rare, so the branch predicts well and
        // the next record does not wait on this one's min/max store.
        if v < self.min.get() {
            self.min.set(v);
        }
        if v > self.max.get() {
            self.max.set(v);
        }
        self.sum.set(self.sum.get() + v);
        self.count.set(self.count.get().wrapping_add(1));
    }

    /// Smallest value since the last report (`+inf` when empty).
    pub fn min(&self) -> f64 {
        self.min.get()
    }
    /// Largest value since the last report (`-inf` when empty).
    pub fn max(&self) -> f64 {
        self.max.get()
    }
    /// Sum of the values since the last report.
    pub fn sum(&self) -> f64 {
        self.sum.get()
    }
    /// Number of values since the last report.
    pub fn count(&self) -> u64 {
        self.count.get()
    }
}

impl sealed::Sealed for Mmsc {}

impl Instrument for Mmsc {
    const KIND: InstrumentKind = InstrumentKind::Mmsc;
    const VALUE_TYPE: ValueType = ValueType::F64;
    const TEMPORALITY: Temporality = Temporality::Delta;

    #[inline(always)]
    fn dirty_word(&self) -> u64 {
        self.count.get()
    }

    #[inline]
    fn snapshot(&self, field: u16, out: &mut SnapshotWriter<'_>) {
        let count = self.count.get();
        if count != 0 {
            out.mmsc(field, self.min.get(), self.max.get(), self.sum.get(), count);
            self.reset();
        }
    }
}

impl Mmsc {
    #[inline]
    fn reset(&self) {
        self.min.set(f64::INFINITY);
        self.max.set(f64::NEG_INFINITY);
        self.sum.set(0.0);
        self.count.set(0);
    }
}
