//! Shared fixtures of the benchmarks: the metric sets they record into, and pinning.

use metric_schema::{Counter, Gauge, Histogram, Mmsc, metric_set};

/// A set with one field of each hot-path instrument.
#[metric_set(name = "bench.hot")]
pub struct HotSet {
    /// Items counted.
    #[metric(unit = "{item}")]
    pub counter: Counter<u64>,
    /// A level.
    #[metric(unit = "{item}")]
    pub gauge: Gauge<u64>,
    /// A duration distribution.
    #[metric(unit = "s")]
    pub histogram: Histogram,
    /// Duration min/max/sum/count.
    #[metric(unit = "s")]
    pub mmsc: Mmsc,
}

/// A 32-counter set, for the cost of one report.
#[metric_set(name = "bench.wide")]
pub struct WideSet {
    /// Field 0 of the wide set.
    #[metric(unit = "{item}")]
    pub f00: Counter<u64>,
    /// Field 1 of the wide set.
    #[metric(unit = "{item}")]
    pub f01: Counter<u64>,
    /// Field 2 of the wide set.
    #[metric(unit = "{item}")]
    pub f02: Counter<u64>,
    /// Field 3 of the wide set.
    #[metric(unit = "{item}")]
    pub f03: Counter<u64>,
    /// Field 4 of the wide set.
    #[metric(unit = "{item}")]
    pub f04: Counter<u64>,
    /// Field 5 of the wide set.
    #[metric(unit = "{item}")]
    pub f05: Counter<u64>,
    /// Field 6 of the wide set.
    #[metric(unit = "{item}")]
    pub f06: Counter<u64>,
    /// Field 7 of the wide set.
    #[metric(unit = "{item}")]
    pub f07: Counter<u64>,
    /// Field 8 of the wide set.
    #[metric(unit = "{item}")]
    pub f08: Counter<u64>,
    /// Field 9 of the wide set.
    #[metric(unit = "{item}")]
    pub f09: Counter<u64>,
    /// Field 10 of the wide set.
    #[metric(unit = "{item}")]
    pub f10: Counter<u64>,
    /// Field 11 of the wide set.
    #[metric(unit = "{item}")]
    pub f11: Counter<u64>,
    /// Field 12 of the wide set.
    #[metric(unit = "{item}")]
    pub f12: Counter<u64>,
    /// Field 13 of the wide set.
    #[metric(unit = "{item}")]
    pub f13: Counter<u64>,
    /// Field 14 of the wide set.
    #[metric(unit = "{item}")]
    pub f14: Counter<u64>,
    /// Field 15 of the wide set.
    #[metric(unit = "{item}")]
    pub f15: Counter<u64>,
    /// Field 16 of the wide set.
    #[metric(unit = "{item}")]
    pub f16: Counter<u64>,
    /// Field 17 of the wide set.
    #[metric(unit = "{item}")]
    pub f17: Counter<u64>,
    /// Field 18 of the wide set.
    #[metric(unit = "{item}")]
    pub f18: Counter<u64>,
    /// Field 19 of the wide set.
    #[metric(unit = "{item}")]
    pub f19: Counter<u64>,
    /// Field 20 of the wide set.
    #[metric(unit = "{item}")]
    pub f20: Counter<u64>,
    /// Field 21 of the wide set.
    #[metric(unit = "{item}")]
    pub f21: Counter<u64>,
    /// Field 22 of the wide set.
    #[metric(unit = "{item}")]
    pub f22: Counter<u64>,
    /// Field 23 of the wide set.
    #[metric(unit = "{item}")]
    pub f23: Counter<u64>,
    /// Field 24 of the wide set.
    #[metric(unit = "{item}")]
    pub f24: Counter<u64>,
    /// Field 25 of the wide set.
    #[metric(unit = "{item}")]
    pub f25: Counter<u64>,
    /// Field 26 of the wide set.
    #[metric(unit = "{item}")]
    pub f26: Counter<u64>,
    /// Field 27 of the wide set.
    #[metric(unit = "{item}")]
    pub f27: Counter<u64>,
    /// Field 28 of the wide set.
    #[metric(unit = "{item}")]
    pub f28: Counter<u64>,
    /// Field 29 of the wide set.
    #[metric(unit = "{item}")]
    pub f29: Counter<u64>,
    /// Field 30 of the wide set.
    #[metric(unit = "{item}")]
    pub f30: Counter<u64>,
    /// Field 31 of the wide set.
    #[metric(unit = "{item}")]
    pub f31: Counter<u64>,
}

impl WideSet {
    /// Every field, in order.
    pub fn fields(&self) -> [&Counter<u64>; 32] {
        [
            &self.f00, &self.f01, &self.f02, &self.f03, &self.f04, &self.f05, &self.f06, &self.f07,
            &self.f08, &self.f09, &self.f10, &self.f11, &self.f12, &self.f13, &self.f14, &self.f15,
            &self.f16, &self.f17, &self.f18, &self.f19, &self.f20, &self.f21, &self.f22, &self.f23,
            &self.f24, &self.f25, &self.f26, &self.f27, &self.f28, &self.f29, &self.f30, &self.f31,
        ]
    }

    /// Makes the first `n` fields dirty (straight-line code: no array of references).
    #[inline(always)]
    pub fn dirty(&self, n: usize) {
        if n > 0 {
            self.f00.add(1);
        }
        if n > 1 {
            self.f01.add(1);
        }
        if n > 2 {
            self.f02.add(1);
        }
        if n > 3 {
            self.f03.add(1);
        }
        if n > 4 {
            self.f04.add(1);
        }
        if n > 5 {
            self.f05.add(1);
        }
        if n > 6 {
            self.f06.add(1);
        }
        if n > 7 {
            self.f07.add(1);
        }
        if n > 8 {
            self.f08.add(1);
        }
        if n > 9 {
            self.f09.add(1);
        }
        if n > 10 {
            self.f10.add(1);
        }
        if n > 11 {
            self.f11.add(1);
        }
        if n > 12 {
            self.f12.add(1);
        }
        if n > 13 {
            self.f13.add(1);
        }
        if n > 14 {
            self.f14.add(1);
        }
        if n > 15 {
            self.f15.add(1);
        }
        if n > 16 {
            self.f16.add(1);
        }
        if n > 17 {
            self.f17.add(1);
        }
        if n > 18 {
            self.f18.add(1);
        }
        if n > 19 {
            self.f19.add(1);
        }
        if n > 20 {
            self.f20.add(1);
        }
        if n > 21 {
            self.f21.add(1);
        }
        if n > 22 {
            self.f22.add(1);
        }
        if n > 23 {
            self.f23.add(1);
        }
        if n > 24 {
            self.f24.add(1);
        }
        if n > 25 {
            self.f25.add(1);
        }
        if n > 26 {
            self.f26.add(1);
        }
        if n > 27 {
            self.f27.add(1);
        }
        if n > 28 {
            self.f28.add(1);
        }
        if n > 29 {
            self.f29.add(1);
        }
        if n > 30 {
            self.f30.add(1);
        }
        if n > 31 {
            self.f31.add(1);
        }
    }
}

/// Pins the calling thread to the `index`-th core the OS reports, if there is one.
/// Returns whether it did.
pub fn pin_to_core(index: usize) -> bool {
    core_affinity::get_core_ids()
        .and_then(|ids| ids.get(index).copied())
        .is_some_and(core_affinity::set_for_current)
}

/// 1024 durations between 1 µs and 1 s, log-uniform, deterministic.
pub fn sample_durations() -> Vec<f64> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x >> 11) as f64 / (1u64 << 53) as f64;
            1e-6 * 1e6f64.powf(u)
        })
        .collect()
}

/// Non-inlined entry points whose machine code can be read with
/// `objdump -d -C target/release/libbenches.rlib` when tuning the hot path.
pub mod codegen {
    use super::{Histogram, Mmsc, WideSet};

    #[inline(never)]
    /// See the module documentation.
    pub fn histogram_record(h: &Histogram, v: f64) {
        h.record(v);
    }

    #[inline(never)]
    /// See the module documentation.
    pub fn mmsc_record(h: &Mmsc, v: f64) {
        h.record(v);
    }

    #[inline(never)]
    /// See the module documentation.
    pub fn wide_snapshot(s: &WideSet, w: &mut metric_schema::SnapshotWriter<'_>) {
        metric_schema::MetricSet::snapshot_into(s, w);
    }
}
