//! The installed reporter of a thread lets code register sets without passing the
//! reporter around. (Alone in its file: it touches the process-wide detached counter.)

use metric_schema::{Counter, ReportOutcome, Reporter, metric_set};

/// One counter.
#[metric_set(name = "test.tls")]
pub struct One {
    /// Items.
    #[metric(unit = "{item}")]
    pub items: Counter<u64>,
}

#[test]
fn register_and_report_go_through_the_installed_reporter() {
    let (tx, rx) = metric_schema::channel(4);
    let guard = metric_schema::install(Reporter::new(tx.clone(), 2, 0)).expect("first install");
    assert!(
        metric_schema::install(Reporter::new(tx, 2, 0)).is_err(),
        "one per thread"
    );
    let set = metric_schema::register::<One, _>(&());
    set.items.add(3);
    assert_eq!(metric_schema::report(), Some(ReportOutcome::Sent));
    let batch = rx.try_recv().unwrap();
    assert_eq!(batch.core(), 2);
    assert_eq!(batch.value_count(), 1);
    let reporter = guard.uninstall();
    assert_eq!(reporter.set_count(), 1);
    assert_eq!(metric_schema::report(), None);
}

#[test]
fn without_a_reporter_registration_is_detached_and_counted() {
    std::thread::spawn(|| {
        assert_eq!(
            metric_schema::try_register::<One, _>(&()).unwrap_err(),
            metric_schema::RegisterError::NoReporter
        );
        let set = metric_schema::register::<One, _>(&());
        set.items.inc();
        assert_eq!(set.id(), None);
        assert_eq!(metric_schema::detached_sets(), 1);
    })
    .join()
    .unwrap();
}
