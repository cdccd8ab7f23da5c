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

use crate::model::{
    ExpHistogram, Identity, Interval, Point, Series, Temporality, Value, identity_order,
};

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
    fn add(self, other: Num) -> Num {
        match (self, other) {
            (Num::U(a), Num::U(b)) => Num::U(a.wrapping_add(b)),
            (Num::I(a), Num::I(b)) => Num::I(a.wrapping_add(b)),
            (Num::F(a), Num::F(b)) => Num::F(a + b),
            // A field never changes type; keep the left side if it ever did.
            (a, _) => a,
        }
    }

    fn word(self) -> u64 {
        match self {
            Num::U(v) => v,
            Num::I(v) => v as u64,
            Num::F(v) => v.to_bits(),
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
            Acc::Mmsc(acc) => acc.merge(&m),
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
            Acc::Histogram(h) => Some(Value::Histogram(h.clone())),
        }
    }
}

/// What a scalar point does to its field's word, decided once per series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// Integer delta (u64 or i64: the same two's-complement add).
    AddInt,
    /// Float delta.
    AddFloat,
    /// Last value (gauges).
    Last,
    /// Integer running total observed by the source: add the change.
    ObservedInt,
    /// Float running total observed by the source: add the change.
    ObservedFloat,
    /// Mmsc or histogram: kept in `complex`.
    Complex,
}

impl Op {
    fn of(field: &metric_schema::MetricsField) -> Op {
        use metric_schema::ValueType;
        let float = field.value_type == ValueType::F64;
        match (field.instrument, field.temporality, float) {
            (
                metric_schema::InstrumentKind::Mmsc | metric_schema::InstrumentKind::Histogram,
                _,
                _,
            ) => Op::Complex,
            (_, FieldTemporality::Instantaneous, _) => Op::Last,
            (_, FieldTemporality::Cumulative, false) => Op::ObservedInt,
            (_, FieldTemporality::Cumulative, true) => Op::ObservedFloat,
            (_, FieldTemporality::Delta, false) => Op::AddInt,
            (_, FieldTemporality::Delta, true) => Op::AddFloat,
        }
    }
}

struct Slot {
    descriptor: &'static MetricsDescriptor,
    identity: Arc<Identity>,
    start_unix_nanos: u64,
    ops: Vec<Op>,
    /// This interval's scalar values, as words, and whether each has one.
    words: Vec<u64>,
    present: Vec<bool>,
    /// This interval's Mmsc and histogram values.
    complex: Vec<Acc>,
    total: Vec<Acc>,
    touched: bool,
    /// The id this series goes by when relayed (NUMA first stage), once announced.
    relay_id: Option<metric_schema::SetId>,
}

impl Slot {
    /// This interval's value of scalar field `f`, if it has one.
    fn scalar(&self, f: usize) -> Option<Num> {
        if !self.present[f] {
            return None;
        }
        let w = self.words[f];
        Some(match self.descriptor.fields[f].value_type {
            metric_schema::ValueType::U64 => Num::U(w),
            metric_schema::ValueType::I64 => Num::I(w as i64),
            metric_schema::ValueType::F64 => Num::F(f64::from_bits(w)),
        })
    }

    /// This interval's value of field `f` as an accumulator.
    fn delta(&self, f: usize) -> Acc {
        match (self.ops[f], self.scalar(f)) {
            (Op::Complex, _) => self.complex[f].clone(),
            (_, None) => Acc::Empty,
            (Op::Last, Some(n)) => Acc::Last(n),
            (_, Some(n)) => Acc::Sum(n),
        }
    }
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
    /// Slot indices in the canonical series order ([`identity_order`]), sorted again
    /// only after new series registered, so that every interval comes out sorted and
    /// its consumers need not sort it again.
    order: Vec<usize>,
    order_sorted: bool,
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
            order: Vec::new(),
            order_sorted: true,
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
                ops: r.descriptor.fields.iter().map(Op::of).collect(),
                words: vec![0; fields],
                present: vec![false; fields],
                complex: vec![Acc::Empty; fields],
                total: vec![Acc::Empty; fields],
                touched: false,
                relay_id: None,
            });
            // Sorted at the next interval cut: registrations come in bursts.
            self.order.push(self.slots.len() - 1);
            self.order_sorted = false;
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
                if f >= slot.ops.len() {
                    continue;
                }
                self.points_in += 1;
                let word = match value {
                    FieldValue::U64(v) => v,
                    FieldValue::I64(v) => v as u64,
                    FieldValue::F64(v) => v.to_bits(),
                    FieldValue::Mmsc(m) => {
                        slot.complex[f].add_mmsc(m);
                        continue;
                    }
                    FieldValue::Histogram(h) => {
                        slot.complex[f].add_histogram(&h);
                        continue;
                    }
                };
                let acc = &mut slot.words[f];
                *acc = match slot.ops[f] {
                    Op::AddInt => acc.wrapping_add(word),
                    Op::AddFloat => (f64::from_bits(*acc) + f64::from_bits(word)).to_bits(),
                    Op::Last => word,
                    Op::ObservedInt => {
                        let previous = std::mem::replace(&mut entry.observed[f], word);
                        acc.wrapping_add(word.wrapping_sub(previous))
                    }
                    Op::ObservedFloat => {
                        let previous = std::mem::replace(&mut entry.observed[f], word);
                        let change = f64::from_bits(word) - f64::from_bits(previous);
                        (f64::from_bits(*acc) + change).to_bits()
                    }
                    Op::Complex => continue,
                };
                slot.present[f] = true;
            }
        }
        for id in batch.unregistrations() {
            if let Some(entry) = self.sets.get_mut(id.0 as usize) {
                *entry = None;
            }
        }
    }

    /// Ends the interval at `end_unix_nanos` by writing it into `batch` as snapshots of
    /// one set per series (registered the first time), for a downstream aggregator: the
    /// NUMA first stage relays only pre-aggregated data across nodes. Deltas go as
    /// deltas, gauges as their last value, observed totals as running totals (the next
    /// stage computes their changes, as it does for a core's sets).
    pub fn relay_into(&mut self, batch: &mut metric_schema::SnapshotBatch, end_unix_nanos: u64) {
        let start = std::mem::replace(&mut self.interval_start, end_unix_nanos);
        for slot in &mut self.slots {
            if !slot.touched {
                continue;
            }
            let id = *slot.relay_id.get_or_insert_with(|| {
                let id = metric_schema::reporter::next_set_id();
                batch.push_registration(Registration {
                    set_id: id,
                    descriptor: slot.descriptor,
                    attributes: slot.identity.attributes,
                    attribute_values: slot.identity.values.clone(),
                    core: slot.identity.core.unwrap_or(u32::MAX),
                    numa_node: slot.identity.numa_node.unwrap_or(batch.numa_node()),
                    start_unix_nanos: slot.start_unix_nanos,
                });
                id
            });
            let mut values: Vec<(usize, Acc)> = Vec::new();
            for f in 0..slot.ops.len() {
                let delta = match slot.ops[f] {
                    Op::Complex => std::mem::replace(&mut slot.complex[f], Acc::Empty),
                    _ => slot.delta(f),
                };
                slot.total[f].fold(&delta);
                let relayed = match (slot.ops[f], &delta) {
                    (_, Acc::Empty) => continue,
                    (Op::ObservedInt | Op::ObservedFloat, _) => slot.total[f].clone(),
                    _ => delta,
                };
                slot.words[f] = 0;
                slot.present[f] = false;
                values.push((f, relayed));
            }
            slot.touched = false;
            let descriptor = slot.descriptor;
            batch.write_set(id, start, |w| {
                for (f, acc) in &values {
                    let field = f16(*f);
                    match acc {
                        Acc::Sum(n) | Acc::Last(n) => {
                            w.number(field, descriptor.fields[*f].value_type, n.word());
                        }
                        Acc::Mmsc(m) => w.mmsc(field, m.min, m.max, m.sum, m.count),
                        Acc::Histogram(h) => w.histogram(field, &h.view()),
                        Acc::Empty => {}
                    }
                }
            });
        }
    }

    /// Ends the interval at `end_unix_nanos` and returns it in each temporality asked
    /// for (delta first computed, then folded into the totals).
    pub fn take(&mut self, end_unix_nanos: u64, wanted: &[Temporality]) -> Vec<Interval> {
        let start = self.interval_start;
        self.interval_start = end_unix_nanos;
        if !self.order_sorted {
            let slots = &self.slots;
            self.order.sort_unstable_by(|&a, &b| {
                let (a, b) = (&slots[a], &slots[b]);
                identity_order(a.descriptor, &a.identity, b.descriptor, &b.identity)
            });
            self.order_sorted = true;
        }
        let mut delta_series = Vec::new();
        let want_delta = wanted.contains(&Temporality::Delta);
        for &index in &self.order {
            let slot = &mut self.slots[index];
            if !slot.touched {
                continue;
            }
            let mut points = Vec::new();
            if want_delta {
                points.reserve(slot.present.iter().filter(|p| **p).count());
            }
            for f in 0..slot.ops.len() {
                let delta = match slot.ops[f] {
                    Op::Complex => std::mem::replace(&mut slot.complex[f], Acc::Empty),
                    _ => slot.delta(f),
                };
                if want_delta && let Some(value) = delta.value() {
                    points.push(Point {
                        field: f as u16,
                        value,
                    });
                }
                slot.total[f].fold(&delta);
                slot.words[f] = 0;
                slot.present[f] = false;
            }
            if !points.is_empty() {
                delta_series.push(Series {
                    descriptor: slot.descriptor,
                    identity: Arc::clone(&slot.identity),
                    start_unix_nanos: start,
                    end_unix_nanos,
                    points,
                });
            }
            slot.touched = false;
        }
        let mut delta_series = Some(delta_series);
        wanted
            .iter()
            .map(|t| match t {
                Temporality::Delta => Interval {
                    start_unix_nanos: start,
                    end_unix_nanos,
                    temporality: Temporality::Delta,
                    series: delta_series.take().unwrap_or_default(),
                },
                Temporality::Cumulative => Interval {
                    start_unix_nanos: start,
                    end_unix_nanos,
                    temporality: Temporality::Cumulative,
                    series: self
                        .order
                        .iter()
                        .map(|&index| &self.slots[index])
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
                                end_unix_nanos,
                                points,
                            })
                        })
                        .collect(),
                },
            })
            .collect()
    }
}

/// A field index as snapshots carry it (sets have at most 65535 fields).
fn f16(f: usize) -> u16 {
    u16::try_from(f).unwrap_or(u16::MAX)
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
