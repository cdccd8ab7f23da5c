//! Values sent after the consumer is gone are counted, never silently dropped.
//! (Alone in its file: it reads the process-wide lost-values counter.)

use metric_schema::{Counter, ReportOutcome, Reporter, metric_set};

/// Two counters.
#[metric_set(name = "test.lost")]
pub struct Two {
    /// A.
    #[metric(unit = "{item}")]
    pub a: Counter<u64>,
    /// B.
    #[metric(unit = "{item}")]
    pub b: Counter<u64>,
}

#[test]
fn a_report_to_a_dropped_receiver_counts_its_values() {
    let (tx, rx) = metric_schema::channel(4);
    drop(rx);
    let mut reporter = Reporter::new(tx, 0, 0);
    let set = reporter.register::<Two, _>(&());
    set.a.add(1);
    set.b.add(1);
    assert_eq!(reporter.report(), ReportOutcome::Lost);
    assert_eq!(reporter.stats().lost_values, 2);
    assert_eq!(reporter.stats().lost_batches, 1);
    assert_eq!(metric_schema::lost_values(), 2);
}
