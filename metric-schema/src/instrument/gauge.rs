//! Values reported when they change: `Gauge`, `ObserveCounter`, `ObserveUpDownCounter`.
//!
//! The consumer of snapshots starts every field at zero when it learns a set's
//! registration; after that a field is only sent when its value differs (bit for bit) from
//! the last value sent.

use std::cell::Cell;

use super::{Instrument, MonotonicNumber, Number, SignedNumber, sealed};
use crate::descriptor::{InstrumentKind, Temporality, ValueType};
use crate::snapshot::SnapshotWriter;

/// Storage shared by the three "send when changed" instruments.
#[derive(Debug, Default)]
struct LastValue<T: Number> {
    value: Cell<T>,
    reported: Cell<T>,
}

impl<T: Number> LastValue<T> {
    #[inline(always)]
    fn set(&self, v: T) {
        self.value.set(v);
    }

    #[inline(always)]
    fn dirty_word(&self) -> u64 {
        self.value.get().to_word() ^ self.reported.get().to_word()
    }

    #[inline(always)]
    fn snapshot(&self, field: u16, out: &mut SnapshotWriter<'_>) {
        let v = self.value.get();
        if v.to_word() != self.reported.get().to_word() {
            out.number(field, T::VALUE_TYPE, v.to_word());
            self.reported.set(v);
        }
    }
}

macro_rules! last_value_instrument {
    (
        $(#[$doc:meta])*
        $name:ident<$bound:ident>, $kind:expr, $temporality:expr, $setter:ident, $setter_doc:literal
    ) => {
        $(#[$doc])*
        #[derive(Debug, Default)]
        pub struct $name<T: $bound> {
            inner: LastValue<T>,
        }

        impl<T: $bound> $name<T> {
            #[doc = $setter_doc]
            #[inline(always)]
            pub fn $setter(&self, v: T) {
                self.inner.set(v);
            }

            /// The current value.
            #[inline]
            pub fn get(&self) -> T {
                self.inner.value.get()
            }
        }

        impl<T: $bound> sealed::Sealed for $name<T> {}

        impl<T: $bound> Instrument for $name<T> {
            const KIND: InstrumentKind = $kind;
            const VALUE_TYPE: ValueType = T::VALUE_TYPE;
            const TEMPORALITY: Temporality = $temporality;

            #[inline(always)]
            fn dirty_word(&self) -> u64 {
                self.inner.dirty_word()
            }

            #[inline(always)]
            fn snapshot(&self, field: u16, out: &mut SnapshotWriter<'_>) {
                self.inner.snapshot(field, out);
            }
        }
    };
}

last_value_instrument!(
    /// The last value set (`u64`, `i64` or `f64`), reported when it changes.
    ///
    /// ```
    /// let g = metric_schema::Gauge::<u64>::default();
    /// g.set(7);
    /// assert_eq!(g.get(), 7);
    /// ```
    Gauge<Number>, InstrumentKind::Gauge, Temporality::Instantaneous, set,
    "Sets the current value."
);

last_value_instrument!(
    /// A monotonic running total observed from elsewhere (`u64` or `f64`), for example a
    /// counter the OS keeps. Reported when it changes, as a cumulative value.
    ObserveCounter<MonotonicNumber>, InstrumentKind::ObserveCounter, Temporality::Cumulative,
    observe, "Records the current total."
);

last_value_instrument!(
    /// A non-monotonic running total observed from elsewhere (`i64` or `f64`). Reported
    /// when it changes, as a cumulative value.
    ObserveUpDownCounter<SignedNumber>, InstrumentKind::ObserveUpDownCounter,
    Temporality::Cumulative, observe, "Records the current total."
);

impl<T: Number> Gauge<T> {
    /// Adds `delta` to the current value (wrapping for integers).
    #[inline(always)]
    pub fn add(&self, delta: T) {
        self.inner.set(self.inner.value.get().wrapping_add(delta));
    }
}
