//! Delta sums: `Counter` and `UpDownCounter`.

use std::cell::Cell;

use super::{Instrument, MonotonicNumber, SignedNumber, sealed};
use crate::descriptor::{InstrumentKind, Temporality, ValueType};
use crate::snapshot::SnapshotWriter;

/// A monotonic sum of increments (`u64` or `f64`), reset each time it is reported.
///
/// ```
/// let c = metric_schema::Counter::<u64>::default();
/// c.inc();
/// c.add(41);
/// assert_eq!(c.get(), 42);
/// ```
#[derive(Debug, Default)]
#[repr(transparent)]
pub struct Counter<T: MonotonicNumber> {
    value: Cell<T>,
}

impl<T: MonotonicNumber> Counter<T> {
    /// Adds `v`. For `f64`, adding a negative value breaks monotonicity: don't.
    #[inline(always)]
    pub fn add(&self, v: T) {
        self.value.set(self.value.get().wrapping_add(v));
    }

    /// The increments recorded since the last report.
    #[inline]
    pub fn get(&self) -> T {
        self.value.get()
    }
}

impl Counter<u64> {
    /// Adds one.
    #[inline(always)]
    pub fn inc(&self) {
        self.add(1);
    }
}

impl Counter<f64> {
    /// Adds one.
    #[inline(always)]
    pub fn inc(&self) {
        self.add(1.0);
    }
}

impl<T: MonotonicNumber> sealed::Sealed for Counter<T> {}

impl<T: MonotonicNumber> Instrument for Counter<T> {
    const KIND: InstrumentKind = InstrumentKind::Counter;
    const VALUE_TYPE: ValueType = T::VALUE_TYPE;
    const TEMPORALITY: Temporality = Temporality::Delta;

    #[inline(always)]
    fn dirty_word(&self) -> u64 {
        self.value.get().nonzero_word()
    }

    #[inline(always)]
    fn snapshot(&self, field: u16, out: &mut SnapshotWriter<'_>) {
        let v = self.value.get();
        if v.nonzero_word() != 0 {
            out.number(field, T::VALUE_TYPE, v.to_word());
            self.value.set(T::default());
        }
    }
}

/// A non-monotonic sum of increments (`i64` or `f64`), reset each time it is reported.
///
/// ```
/// let c = metric_schema::UpDownCounter::<i64>::default();
/// c.inc();
/// c.add(-3);
/// assert_eq!(c.get(), -2);
/// ```
#[derive(Debug, Default)]
#[repr(transparent)]
pub struct UpDownCounter<T: SignedNumber> {
    value: Cell<T>,
}

impl<T: SignedNumber> UpDownCounter<T> {
    /// Adds `v` (which may be negative).
    #[inline(always)]
    pub fn add(&self, v: T) {
        self.value.set(self.value.get().wrapping_add(v));
    }

    /// The net change recorded since the last report.
    #[inline]
    pub fn get(&self) -> T {
        self.value.get()
    }
}

impl UpDownCounter<i64> {
    /// Adds one.
    #[inline(always)]
    pub fn inc(&self) {
        self.add(1);
    }
    /// Subtracts one.
    #[inline(always)]
    pub fn dec(&self) {
        self.add(-1);
    }
}

impl UpDownCounter<f64> {
    /// Adds one.
    #[inline(always)]
    pub fn inc(&self) {
        self.add(1.0);
    }
    /// Subtracts one.
    #[inline(always)]
    pub fn dec(&self) {
        self.add(-1.0);
    }
}

impl<T: SignedNumber> sealed::Sealed for UpDownCounter<T> {}

impl<T: SignedNumber> Instrument for UpDownCounter<T> {
    const KIND: InstrumentKind = InstrumentKind::UpDownCounter;
    const VALUE_TYPE: ValueType = T::VALUE_TYPE;
    const TEMPORALITY: Temporality = Temporality::Delta;

    #[inline(always)]
    fn dirty_word(&self) -> u64 {
        self.value.get().nonzero_word()
    }

    #[inline(always)]
    fn snapshot(&self, field: u16, out: &mut SnapshotWriter<'_>) {
        let v = self.value.get();
        if v.nonzero_word() != 0 {
            out.number(field, T::VALUE_TYPE, v.to_word());
            self.value.set(T::default());
        }
    }
}
