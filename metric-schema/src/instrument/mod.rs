//! Instruments: plain per-core storage behind `Cell`s.
//!
//! Every instrument is owned by the core that registered its metric set. Recording is a
//! load, an add and a store on a `Cell`: no atomics, no locks, no allocation. `Cell` makes
//! the sets `!Sync`, so the compiler enforces that only the owning thread records.

mod counter;
mod gauge;
mod histogram;
mod mmsc;

pub use counter::{Counter, UpDownCounter};
pub use gauge::{Gauge, ObserveCounter, ObserveUpDownCounter};
pub use histogram::{DEFAULT_MAX_BUCKETS, Histogram, MAX_SCALE, MIN_SCALE};
pub use mmsc::Mmsc;

use crate::descriptor::{InstrumentKind, Temporality, ValueType};
use crate::snapshot::SnapshotWriter;

/// What the macro-generated code needs from an instrument type.
///
/// Implemented by every instrument of this crate; sealed, so that the set of field types a
/// consumer must understand stays closed.
pub trait Instrument: Default + sealed::Sealed {
    /// Instrument kind, for the descriptor.
    const KIND: InstrumentKind;
    /// Value type, for the descriptor.
    const VALUE_TYPE: ValueType;
    /// Temporality of snapshot values, for the descriptor.
    const TEMPORALITY: Temporality;

    /// Non-zero iff the instrument has something to report.
    ///
    /// Generated code ORs these words over a whole set to skip a clean set with one
    /// branch.
    fn dirty_word(&self) -> u64;

    /// Writes the field's value into `out` if it has something to report, and resets it
    /// (delta instruments) or remembers what was reported (gauges and observed totals).
    fn snapshot(&self, field: u16, out: &mut SnapshotWriter<'_>);
}

pub(crate) mod sealed {
    pub trait Sealed {}
}

/// Numeric types an instrument can hold. Sealed: `u64`, `i64` and `f64`.
pub trait Number: Copy + Default + PartialEq + sealed::Sealed + 'static {
    /// The descriptor's value type.
    const VALUE_TYPE: ValueType;
    /// The value as a snapshot word (two's complement for `i64`, IEEE bits for `f64`).
    fn to_word(self) -> u64;
    /// The inverse of [`Number::to_word`].
    fn from_word(word: u64) -> Self;
    /// `self + other`, wrapping for integers (a counter never panics).
    #[must_use]
    fn wrapping_add(self, other: Self) -> Self;
    /// The word that is non-zero iff the value is not zero (for `f64`, `-0.0` is zero).
    fn nonzero_word(self) -> u64;
}

impl sealed::Sealed for u64 {}
impl sealed::Sealed for i64 {}
impl sealed::Sealed for f64 {}

impl Number for u64 {
    const VALUE_TYPE: ValueType = ValueType::U64;
    #[inline(always)]
    fn to_word(self) -> u64 {
        self
    }
    #[inline(always)]
    fn from_word(word: u64) -> Self {
        word
    }
    #[inline(always)]
    fn wrapping_add(self, other: Self) -> Self {
        u64::wrapping_add(self, other)
    }
    #[inline(always)]
    fn nonzero_word(self) -> u64 {
        self
    }
}

impl Number for i64 {
    const VALUE_TYPE: ValueType = ValueType::I64;
    #[inline(always)]
    fn to_word(self) -> u64 {
        self as u64
    }
    #[inline(always)]
    fn from_word(word: u64) -> Self {
        word as i64
    }
    #[inline(always)]
    fn wrapping_add(self, other: Self) -> Self {
        i64::wrapping_add(self, other)
    }
    #[inline(always)]
    fn nonzero_word(self) -> u64 {
        self as u64
    }
}

impl Number for f64 {
    const VALUE_TYPE: ValueType = ValueType::F64;
    #[inline(always)]
    fn to_word(self) -> u64 {
        self.to_bits()
    }
    #[inline(always)]
    fn from_word(word: u64) -> Self {
        f64::from_bits(word)
    }
    #[inline(always)]
    fn wrapping_add(self, other: Self) -> Self {
        self + other
    }
    #[inline(always)]
    fn nonzero_word(self) -> u64 {
        self.to_bits() << 1
    }
}

/// Marker for the number types a monotonic counter accepts: `u64` and `f64`.
pub trait MonotonicNumber: Number {}
impl MonotonicNumber for u64 {}
impl MonotonicNumber for f64 {}

/// Marker for the number types an up-down counter accepts: `i64` and `f64`.
pub trait SignedNumber: Number {}
impl SignedNumber for i64 {}
impl SignedNumber for f64 {}
