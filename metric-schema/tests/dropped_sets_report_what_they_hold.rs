//! Dropping a handle reports what the set still holds, then unregisters it.

mod common;

use common::Consumer;
use metric_schema::{Counter, Reporter, metric_set};

/// One counter.
#[metric_set(name = "test.drop")]
pub struct One {
    /// Items.
    #[metric(unit = "{item}")]
    pub items: Counter<u64>,
}

#[test]
fn the_last_values_of_a_dropped_set_arrive_before_its_unregistration() {
    let (tx, rx) = metric_schema::channel(4);
    let mut reporter = Reporter::new(tx, 0, 0);
    let mut consumer = Consumer::default();
    let keep = reporter.register::<One, _>(&());
    let gone = reporter.register::<One, _>(&());
    let gone_id = gone.id().unwrap();
    gone.items.add(9);
    drop(gone);
    keep.items.add(1);
    reporter.report();
    consumer.drain(&rx);
    assert_eq!(consumer.total(gone_id, 0).int, 9);
    assert!(consumer.unregistered.contains(&gone_id));
    assert_eq!(reporter.set_count(), 1);
    assert!(!consumer.unregistered.contains(&keep.id().unwrap()));
}

#[test]
fn dropping_the_reporter_flushes_and_unregisters_everything() {
    let (tx, rx) = metric_schema::channel(4);
    let mut reporter = Reporter::new(tx, 0, 0);
    let set = reporter.register::<One, _>(&());
    let id = set.id().unwrap();
    set.items.add(4);
    drop(reporter);
    let mut consumer = Consumer::default();
    consumer.drain(&rx);
    assert_eq!(consumer.total(id, 0).int, 4);
    assert!(consumer.unregistered.contains(&id));
}
