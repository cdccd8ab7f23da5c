//! What one report puts in a batch, and what it leaves behind in the set.

mod common;

use common::Consumer;
use metric_schema::snapshot::FieldValue;
use metric_schema::{
    Counter, Gauge, Histogram, Mmsc, ObserveCounter, ReportOutcome, Reporter, UpDownCounter,
    attribute_set, metric_set,
};

/// Identity.
#[attribute_set(name = "test.attrs")]
pub struct Attrs {
    /// Name.
    #[attribute(key = "test.name")]
    pub name: String,
}

/// A bit of everything.
#[metric_set(name = "test.mixed")]
pub struct Mixed {
    /// A counter.
    #[metric(unit = "{item}")]
    pub items: Counter<u64>,
    /// An up-down counter.
    #[metric(unit = "{item}")]
    pub level: UpDownCounter<i64>,
    /// A gauge.
    #[metric(unit = "{item}")]
    pub depth: Gauge<u64>,
    /// A total the OS keeps.
    #[metric(unit = "By")]
    pub os_written: ObserveCounter<u64>,
    /// Durations.
    #[metric(unit = "s", max_buckets = 16)]
    pub duration: Histogram,
    /// Sizes.
    #[metric(unit = "By")]
    pub size: Mmsc,
}

fn setup() -> (Reporter, metric_schema::SnapshotReceiver) {
    let (tx, rx) = metric_schema::channel(8);
    (Reporter::new(tx, 3, 1), rx)
}

#[test]
fn the_registration_travels_ahead_of_the_first_snapshot() {
    let (mut reporter, rx) = setup();
    let set = reporter.register::<Mixed, _>(&Attrs { name: "a".into() });
    set.items.add(5);
    assert_eq!(reporter.report(), ReportOutcome::Sent);
    let batch = rx.try_recv().expect("a batch");
    let reg = &batch.registrations()[0];
    assert_eq!(reg.set_id, set.id().unwrap());
    assert_eq!((reg.core, reg.numa_node), (3, 1));
    assert_eq!(reg.attributes.name, "test.attrs");
    assert_eq!(reg.attribute_values[0].to_string(), "a");
    assert_eq!((batch.core(), batch.numa_node()), (3, 1));
    let snaps: Vec<_> = batch.sets().collect();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0].set_id, reg.set_id);
    assert!(snaps[0].start_unix_nanos >= reg.start_unix_nanos);

    // The next batch carries no registration.
    set.items.inc();
    rx.recycle(batch);
    reporter.report();
    assert!(rx.try_recv().unwrap().registrations().is_empty());
}

#[test]
fn a_set_registered_with_nothing_recorded_is_still_announced() {
    let (mut reporter, rx) = setup();
    let _set = reporter.register::<Mixed, _>(&());
    assert_eq!(reporter.report(), ReportOutcome::Sent);
    let batch = rx.try_recv().unwrap();
    assert_eq!(batch.registrations().len(), 1);
    assert_eq!(batch.sets().len(), 0);
    assert_eq!(reporter.report(), ReportOutcome::Idle);
    assert!(rx.try_recv().is_none());
}

#[test]
fn only_dirty_fields_are_sent_and_deltas_reset() {
    let (mut reporter, rx) = setup();
    let set = reporter.register::<Mixed, _>(&());
    reporter.report();
    rx.try_recv().unwrap();

    set.items.add(7);
    set.size.record(3.0);
    reporter.report();
    let batch = rx.try_recv().unwrap();
    let fields: Vec<_> = batch.sets().next().unwrap().fields().collect();
    assert_eq!(fields.len(), 2);
    assert_eq!(fields[0], (0, FieldValue::U64(7)));
    assert_eq!(fields[1].0, 5);
    assert_eq!(set.items.get(), 0, "delta fields reset on report");
    assert_eq!(set.size.count(), 0);
    assert_eq!(reporter.report(), ReportOutcome::Idle);
}

#[test]
fn gauges_and_observed_totals_are_sent_only_when_they_change() {
    let (mut reporter, rx) = setup();
    let mut consumer = Consumer::default();
    let set = reporter.register::<Mixed, _>(&());
    let id = set.id().unwrap();
    set.depth.set(4);
    set.os_written.observe(1000);
    reporter.report();
    consumer.drain(&rx);
    assert_eq!(consumer.total(id, 2).int, 4);
    assert_eq!(consumer.total(id, 3).int, 1000);

    // Same values again: nothing to send; the values stay in place.
    set.depth.set(4);
    set.os_written.observe(1000);
    assert_eq!(reporter.report(), ReportOutcome::Idle);
    assert_eq!(set.depth.get(), 4);

    set.depth.set(0);
    set.os_written.observe(1500);
    reporter.report();
    let batch = rx.try_recv().unwrap();
    let fields: Vec<_> = batch.sets().next().unwrap().fields().collect();
    assert_eq!(
        fields,
        vec![(2, FieldValue::U64(0)), (3, FieldValue::U64(1500))]
    );
}

#[test]
fn histograms_carry_buckets_and_reset() {
    let (mut reporter, rx) = setup();
    let set = reporter.register::<Mixed, _>(&());
    for v in [0.001, 0.002, 0.002, 0.5, 0.0, -1.0] {
        set.duration.record(v);
    }
    reporter.report();
    let batch = rx.try_recv().unwrap();
    let (_, value) = batch.sets().next().unwrap().fields().next().unwrap();
    let FieldValue::Histogram(h) = value else {
        panic!("expected a histogram, got {value:?}");
    };
    assert_eq!(h.count, 6);
    assert_eq!(h.zero_count, 1);
    assert_eq!(h.positive.counts.iter().sum::<u64>(), 4);
    assert_eq!(h.negative.counts.iter().sum::<u64>(), 1);
    assert!(h.positive.counts.len() <= 16);
    assert_eq!((h.min, h.max), (-1.0, 0.5));
    assert_eq!(set.duration.count(), 0);
}
