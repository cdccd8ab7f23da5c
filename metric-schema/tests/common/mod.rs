//! A test consumer: folds batches into per-(set, field) totals and checks the protocol
//! (a registration before the first snapshot, nothing after the unregistration).
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};

use metric_schema::snapshot::{FieldValue, Registration};
use metric_schema::{SetId, SnapshotBatch, SnapshotReceiver};

/// What the consumer knows about one field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldTotal {
    /// Sum of every delta received (counters, up-down counters), or the last value
    /// (gauges, observed totals), as i128 so that u64 and i64 both fit.
    pub int: i128,
    /// Same for f64 values.
    pub float: f64,
    /// Histogram / Mmsc: number of values.
    pub count: u64,
    /// Histogram / Mmsc: sum of values.
    pub sum: f64,
    /// Histogram: total of the bucket counts plus the zero count.
    pub bucket_total: u64,
}

#[derive(Debug, Default)]
pub struct Consumer {
    pub registrations: BTreeMap<SetId, Registration>,
    pub unregistered: BTreeSet<SetId>,
    pub totals: BTreeMap<(SetId, u16), FieldTotal>,
    pub batches: usize,
}

impl Consumer {
    pub fn apply(&mut self, batch: &SnapshotBatch) {
        self.batches += 1;
        for r in batch.registrations() {
            assert!(
                self.registrations.insert(r.set_id, r.clone()).is_none(),
                "set {:?} registered twice",
                r.set_id
            );
        }
        for set in batch.sets() {
            let reg = self
                .registrations
                .get(&set.set_id)
                .unwrap_or_else(|| panic!("snapshot of {:?} before its registration", set.set_id));
            assert!(
                !self.unregistered.contains(&set.set_id),
                "snapshot of {:?} after its unregistration",
                set.set_id
            );
            assert!(set.start_unix_nanos <= batch.end_unix_nanos());
            let mut last_field = None;
            for (field, value) in set.fields() {
                assert!(last_field < Some(field), "fields out of order or repeated");
                last_field = Some(field);
                let desc = reg.descriptor.fields[usize::from(field)];
                let total = self.totals.entry((set.set_id, field)).or_default();
                let cumulative = matches!(
                    desc.temporality,
                    metric_schema::Temporality::Cumulative
                        | metric_schema::Temporality::Instantaneous
                );
                match value {
                    FieldValue::U64(v) if cumulative => total.int = i128::from(v),
                    FieldValue::I64(v) if cumulative => total.int = i128::from(v),
                    FieldValue::F64(v) if cumulative => total.float = v,
                    FieldValue::U64(v) => total.int += i128::from(v),
                    FieldValue::I64(v) => total.int += i128::from(v),
                    FieldValue::F64(v) => total.float += v,
                    FieldValue::Mmsc(m) => {
                        total.count += m.count;
                        total.sum += m.sum;
                    }
                    FieldValue::Histogram(h) => {
                        total.count += h.count;
                        total.sum += h.sum;
                        total.bucket_total += h.zero_count
                            + h.positive.counts.iter().sum::<u64>()
                            + h.negative.counts.iter().sum::<u64>();
                    }
                }
            }
        }
        for id in batch.unregistrations() {
            assert!(
                self.registrations.contains_key(id),
                "unregistration of unknown {id:?}"
            );
            assert!(self.unregistered.insert(*id), "{id:?} unregistered twice");
        }
    }

    /// Applies and recycles every batch waiting in the queue; returns how many.
    pub fn drain(&mut self, receiver: &SnapshotReceiver) -> usize {
        let mut n = 0;
        while let Some(batch) = receiver.try_recv() {
            self.apply(&batch);
            receiver.recycle(batch);
            n += 1;
        }
        n
    }

    pub fn total(&self, set: SetId, field: u16) -> FieldTotal {
        self.totals.get(&(set, field)).cloned().unwrap_or_default()
    }
}
