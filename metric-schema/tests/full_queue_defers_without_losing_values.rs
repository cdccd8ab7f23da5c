//! A full queue never blocks the core and never loses a value.

mod common;

use std::time::{Duration, Instant};

use common::Consumer;
use metric_schema::{Counter, ReportOutcome, Reporter, metric_set};

/// One counter.
#[metric_set(name = "test.queue")]
pub struct One {
    /// Items.
    #[metric(unit = "{item}")]
    pub items: Counter<u64>,
}

#[test]
fn values_wait_in_the_set_while_the_queue_is_full() {
    let (tx, rx) = metric_schema::channel(1);
    let mut reporter = Reporter::new(tx, 0, 0);
    let set = reporter.register::<One, _>(&());
    let id = set.id().unwrap();
    let mut consumer = Consumer::default();

    set.items.add(1);
    assert_eq!(reporter.report(), ReportOutcome::Sent);
    set.items.add(10);
    assert_eq!(reporter.report(), ReportOutcome::Deferred);
    assert_eq!(set.items.get(), 10, "the deferred values stay in the set");
    set.items.add(100);
    assert_eq!(reporter.report(), ReportOutcome::Deferred);
    assert_eq!(reporter.stats().deferred, 2);

    consumer.drain(&rx);
    assert_eq!(reporter.report(), ReportOutcome::Sent);
    consumer.drain(&rx);
    assert_eq!(consumer.total(id, 0).int, 111);
    assert_eq!(metric_schema::lost_values(), 0);
}

#[test]
fn shutdown_waits_for_room_until_its_deadline() {
    let (tx, rx) = metric_schema::channel(1);
    let mut reporter = Reporter::new(tx, 0, 0);
    let set = reporter.register::<One, _>(&());
    let id = set.id().unwrap();
    set.items.add(2);
    reporter.report();
    set.items.add(3);
    drop(set);

    let consumer = std::thread::spawn(move || {
        let mut consumer = Consumer::default();
        while let Some(batch) = rx.recv() {
            consumer.apply(&batch);
        }
        consumer
    });
    let outcome = reporter.shutdown(Instant::now() + Duration::from_secs(30));
    assert_eq!(outcome, ReportOutcome::Sent);
    let consumer = consumer.join().unwrap();
    assert_eq!(consumer.total(id, 0).int, 5);
    assert!(consumer.unregistered.contains(&id));
}

#[test]
fn a_reporter_with_self_metrics_reports_its_deferrals() {
    let (tx, rx) = metric_schema::channel(1);
    let mut reporter = Reporter::new(tx, 4, 1).with_self_metrics();
    let set = reporter.register::<One, _>(&());
    let mut consumer = Consumer::default();
    set.items.add(1);
    assert_eq!(reporter.report(), ReportOutcome::Sent);
    assert_eq!(reporter.report(), ReportOutcome::Deferred);
    assert_eq!(reporter.report(), ReportOutcome::Deferred);
    consumer.drain(&rx);
    assert_eq!(reporter.report(), ReportOutcome::Sent);
    consumer.drain(&rx);
    let (self_id, reg) = consumer
        .registrations
        .iter()
        .find(|(_, r)| r.descriptor.name == "metric_schema.reporter")
        .expect("the reporter's own set is registered");
    assert_eq!(reg.attribute_values[0].to_string(), "4");
    let field = |name: &str| {
        reg.descriptor
            .fields
            .iter()
            .position(|f| f.name == name)
            .unwrap() as u16
    };
    let self_id = *self_id;
    assert_eq!(consumer.total(self_id, field("deferred")).int, 2);
    assert_eq!(
        consumer.total(self_id, field("reports")).int,
        3,
        "the 4th is counted in the next report"
    );
    assert_eq!(consumer.total(self_id, field("batches_sent")).int, 1);
}
