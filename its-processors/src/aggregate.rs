//! `processor:aggregate`: merges the deltas of the same (metric set, attributes) across
//! cores and over time, and emits one [`Interval`] per interval and output.
//!
//! Ids stay dense: a snapshot's set id indexes a vector that leads to the series slot
//! chosen once, when the set registered; each point is then one add into that slot's
//! field accumulator. No hashing and no lock per point.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use metric_schema::snapshot::{FieldValue, HistogramView, MmscValue, Registration};
use metric_schema::{MetricsDescriptor, SnapshotBatch, Temporality as FieldTemporality};
use serde::Deserialize;

use crate::model::{ExpHistogram, Identity, Interval, Point, Series, Temporality, Value};

/// What a series keeps apart that merging would otherwise fold together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Keep {
    /// One series per core (`core.id`).
    pub core: bool,
    /// One series per NUMA node (`numa.node`).
    pub numa_node: bool,
}

/// The attributes `keep` accepts.
pub const KEEPABLE: &[&str] = &["core.id", "numa.node"];

impl Keep {
    /// Parses `keep: [...]`.
    pub fn parse(names: &[String]) -> Result<Keep, String> {
        let mut keep = Keep::default();
        for name in names {
            match name.as_str() {
                "core.id" => keep.core = true,
                "numa.node" => keep.numa_node = true,
                other => {
                    return Err(format!(
                        "`keep` names `{other}`, which is not an attribute the aggregation can keep (known: {})",
                        KEEPABLE.join(", ")
                    ));
                }
            }
        }
        Ok(keep)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    U(u64),
    I(i64),
    F(f64),
}

impl Num {
    fn from_field(value: &FieldValue<'_>) -> Option<Num> {
        match *value {
            FieldValue::U64(v) => Some(Num::U(v)),
            FieldValue::I64(v) => Some(Num::I(v)),
            FieldValue::F64(v) => Some(Num::F(v)),
            FieldValue::Mmsc(_) | FieldValue::Histogram(_) => None,
        }
    }

    fn word(self) -> u64 {
        match self {
            Num::U(v) => v,
            Num::I(v) => v as u64,
            Num::F(v) => v.to_bits(),
        }
    }

    fn add(self, other: Num) -> Num {
        match (self, other) {
            (Num::U(a), Num::U(b)) => Num::U(a.wrapping_add(b)),
            (Num::I(a), Num::I(b)) => Num::I(a.wrapping_add(b)),
            (Num::F(a), Num::F(b)) => Num::F(a + b),
            // A field never changes type; keep the left side if it ever did.
            (a, _) => a,
        }
    }

    /// `self - previous`, for observed totals.
    fn since(self, previous_word: u64) -> Num {
        match self {
            Num::U(v) => Num::U(v.wrapping_sub(previous_word)),
            Num::I(v) => Num::I(v.wrapping_sub(previous_word as i64)),
            Num::F(v) => Num::F(v - f64::from_bits(previous_word)),
        }
    }

    fn value(self) -> Value {
        match self {
            Num::U(v) => Value::U64(v),
            Num::I(v) => Value::I64(v),
            Num::F(v) => Value::F64(v),
        }
    }
}

/// One field's accumulator.
#[derive(Debug, Clone, PartialEq)]
enum Acc {
    Empty,
    Sum(Num),
    Last(Num),
    Mmsc(MmscValue),
    Histogram(Box<ExpHistogram>),
}

impl Acc {
    fn add_sum(&mut self, n: Num) {
        *self = match std::mem::replace(self, Acc::Empty) {
            Acc::Sum(s) => Acc::Sum(s.add(n)),
            _ => Acc::Sum(n),
        };
    }

    fn add_mmsc(&mut self, m: MmscValue) {
        match self {
            Acc::Mmsc(acc) => {
                acc.min = acc.min.min(m.min);
                acc.max = acc.max.max(m.max);
                acc.sum += m.sum;
                acc.count += m.count;
            }
            _ => *self = Acc::Mmsc(m),
        }
    }

    fn add_histogram(&mut self, h: &HistogramView<'_>) {
        match self {
            Acc::Histogram(acc) => acc.merge(h),
            _ => *self = Acc::Histogram(Box::new(ExpHistogram::from_view(h))),
        }
    }

    /// Folds a delta accumulator into a running total.
    fn fold(&mut self, delta: &Acc) {
        match delta {
            Acc::Empty => {}
            Acc::Sum(n) => self.add_sum(*n),
            Acc::Last(n) => *self = Acc::Last(*n),
            Acc::Mmsc(m) => self.add_mmsc(*m),
            Acc::Histogram(h) => match self {
                Acc::Histogram(acc) => acc.merge_owned(h),
                _ => *self = Acc::Histogram(h.clone()),
            },
        }
    }

    fn value(&self) -> Option<Value> {
        match self {
            Acc::Empty => None,
            Acc::Sum(n) | Acc::Last(n) => Some(n.value()),
            Acc::Mmsc(m) => Some(Value::Mmsc(*m)),
            Acc::Histogram(h) => Some(Value::Histogram((**h).clone())),
        }
    }
}

struct Slot {
    descriptor: &'static MetricsDescriptor,
    identity: Arc<Identity>,
    start_unix_nanos: u64,
    delta: Vec<Acc>,
    total: Vec<Acc>,
    touched: bool,
}

struct SetEntry {
    slot: usize,
    /// Last value of each observed (cumulative) field, as reported by this set.
    observed: Vec<u64>,
}

/// Folds snapshot batches into series; see the [module documentation](self).
pub struct Aggregator {
    keep: Keep,
    sets: Vec<Option<SetEntry>>,
    slots: Vec<Slot>,
    keys: HashMap<String, usize>,
    interval_start: u64,
    points_in: u64,
}

impl Aggregator {
    /// An empty aggregator whose first interval starts at `start_unix_nanos`.
    pub fn new(keep: Keep, start_unix_nanos: u64) -> Self {
        Aggregator {
            keep,
            sets: Vec::new(),
            slots: Vec::new(),
            keys: HashMap::new(),
            interval_start: start_unix_nanos,
            points_in: 0,
        }
    }

    /// Series known so far.
    pub fn series_count(&self) -> usize {
        self.slots.len()
    }

    /// Points applied since the aggregator started.
    pub fn points_in(&self) -> u64 {
        self.points_in
    }

    #[cold]
    fn register(&mut self, r: &Registration) {
        let core = self.keep.core.then_some(r.core);
        let numa_node = self.keep.numa_node.then_some(r.numa_node);
        let key = format!(
            "{}\u{1}{}\u{1}{:?}\u{1}{:?}\u{1}{:?}",
            r.descriptor.name, r.attributes.name, r.attribute_values, core, numa_node
        );
        let fields = r.descriptor.fields.len();
        let slot = *self.keys.entry(key).or_insert_with(|| {
            self.slots.push(Slot {
                descriptor: r.descriptor,
                identity: Arc::new(Identity {
                    attributes: r.attributes,
                    values: r.attribute_values.clone(),
                    core,
                    numa_node,
                }),
                start_unix_nanos: r.start_unix_nanos,
                delta: vec![Acc::Empty; fields],
                total: vec![Acc::Empty; fields],
                touched: false,
            });
            self.slots.len() - 1
        });
        let s = &mut self.slots[slot];
        s.start_unix_nanos = s.start_unix_nanos.min(r.start_unix_nanos);
        let index = r.set_id.0 as usize;
        if self.sets.len() <= index {
            self.sets.resize_with(index + 1, || None);
        }
        self.sets[index] = Some(SetEntry {
            slot,
            observed: vec![0; fields],
        });
    }

    /// Applies one batch: registrations, then snapshots, then unregistrations.
    pub fn apply(&mut self, batch: &SnapshotBatch) {
        for r in batch.registrations() {
            self.register(r);
        }
        for set in batch.sets() {
            let Some(Some(entry)) = self.sets.get_mut(set.set_id.0 as usize) else {
                // A snapshot without its registration: the protocol forbids it.
                continue;
            };
            let slot = &mut self.slots[entry.slot];
            slot.touched = true;
            for (field, value) in set.fields() {
                let f = usize::from(field);
                let (Some(meta), Some(acc)) =
                    (slot.descriptor.fields.get(f), slot.delta.get_mut(f))
                else {
                    continue;
                };
                self.points_in += 1;
                match value {
                    FieldValue::Mmsc(m) => acc.add_mmsc(m),
                    FieldValue::Histogram(h) => acc.add_histogram(&h),
                    scalar => {
                        let Some(n) = Num::from_field(&scalar) else {
                            continue;
                        };
                        match meta.temporality {
                            FieldTemporality::Delta => acc.add_sum(n),
                            FieldTemporality::Instantaneous => *acc = Acc::Last(n),
                            FieldTemporality::Cumulative => {
                                let previous = std::mem::replace(&mut entry.observed[f], n.word());
                                acc.add_sum(n.since(previous));
                            }
                        }
                    }
                }
            }
        }
        for id in batch.unregistrations() {
            if let Some(entry) = self.sets.get_mut(id.0 as usize) {
                *entry = None;
            }
        }
    }

    /// Ends the interval at `end_unix_nanos` and returns it in each temporality asked
    /// for (delta first computed, then folded into the totals).
    pub fn take(&mut self, end_unix_nanos: u64, wanted: &[Temporality]) -> Vec<Interval> {
        let start = self.interval_start;
        self.interval_start = end_unix_nanos;
        let mut delta_series = Vec::new();
        let want_delta = wanted.contains(&Temporality::Delta);
        for slot in &mut self.slots {
            if !slot.touched {
                continue;
            }
            if want_delta {
                let points: Vec<Point> = slot
                    .delta
                    .iter()
                    .enumerate()
                    .filter_map(|(f, acc)| {
                        acc.value().map(|value| Point {
                            field: f as u16,
                            value,
                        })
                    })
                    .collect();
                if !points.is_empty() {
                    delta_series.push(Series {
                        descriptor: slot.descriptor,
                        identity: Arc::clone(&slot.identity),
                        start_unix_nanos: start,
                        points,
                    });
                }
            }
            for (total, delta) in slot.total.iter_mut().zip(&mut slot.delta) {
                total.fold(delta);
                *delta = Acc::Empty;
            }
            slot.touched = false;
        }
        wanted
            .iter()
            .map(|t| match t {
                Temporality::Delta => Interval {
                    start_unix_nanos: start,
                    end_unix_nanos,
                    temporality: Temporality::Delta,
                    series: delta_series.clone(),
                },
                Temporality::Cumulative => Interval {
                    start_unix_nanos: start,
                    end_unix_nanos,
                    temporality: Temporality::Cumulative,
                    series: self
                        .slots
                        .iter()
                        .filter_map(|slot| {
                            let points: Vec<Point> = slot
                                .total
                                .iter()
                                .enumerate()
                                .filter_map(|(f, acc)| {
                                    acc.value().map(|value| Point {
                                        field: f as u16,
                                        value,
                                    })
                                })
                                .collect();
                            (!points.is_empty()).then(|| Series {
                                descriptor: slot.descriptor,
                                identity: Arc::clone(&slot.identity),
                                start_unix_nanos: slot.start_unix_nanos,
                                points,
                            })
                        })
                        .collect(),
                },
            })
            .collect()
    }
}

/// Configuration of `processor:aggregate`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AggregateConfig {
    /// Attributes kept apart instead of merged: `core.id`, `numa.node`.
    pub keep: Vec<String>,
    /// Length of an interval (default: `engine.telemetry.reporting_interval`).
    #[serde(deserialize_with = "nodes::duration::deserialize_option")]
    pub interval: Option<Duration>,
    /// Temporality of every output (default `delta`).
    pub temporality: Temporality,
    /// Temporality of named output ports, overriding `temporality`.
    pub port_temporality: BTreeMap<String, Temporality>,
}

impl nodes::NodeConfig for AggregateConfig {
    fn check(&self) -> Result<(), String> {
        Keep::parse(&self.keep)?;
        if self.interval.is_some_and(|i| i < Duration::from_millis(1)) {
            return Err("`interval` must be at least 1ms".into());
        }
        Ok(())
    }
}
