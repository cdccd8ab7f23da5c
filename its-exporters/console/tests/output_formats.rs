//! What the console prints: JSON lines give every point its own window, also when
//! `processor:batch` merged consecutive intervals into one; the table shows floats
//! with six significant digits.

use its_exporter_console::json_lines;
use its_processors::{Aggregator, Keep, Temporality};
use metric_schema::{Counter, Reporter, attribute_set, metric_set};
use nodes::Mergeable;

/// Which worker.
#[attribute_set(name = "test.console.attrs")]
pub struct Worker {
    /// Worker name.
    #[attribute(key = "worker.name")]
    pub name: String,
}

/// Work.
#[metric_set(name = "test.console")]
pub struct Work {
    /// Operations.
    #[metric(unit = "{operation}")]
    pub ops: Counter<u64>,
}

#[test]
fn merged_intervals_print_each_point_with_its_own_window() {
    let (sender, queue) = metric_schema::channel(16);
    let mut r = Reporter::new(sender, 0, 0);
    let w = r.register::<Work, _>(&Worker { name: "w".into() });
    let mut agg = Aggregator::new(Keep::default(), 0);
    let mut cut = |ops: u64, end: u64| {
        w.ops.add(ops);
        r.report();
        while let Some(batch) = queue.try_recv() {
            agg.apply(&batch);
        }
        agg.take(end, &[Temporality::Delta]).remove(0)
    };
    let mut merged = cut(3, 10);
    assert!(merged.merge(Box::new(cut(4, 20))).is_ok());
    let lines: Vec<(u64, u64, u64)> = json_lines(&merged)
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                v["start_unix_nanos"].as_u64().unwrap(),
                v["end_unix_nanos"].as_u64().unwrap(),
                v["value"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(lines, [(0, 10, 3), (10, 20, 4)]);
}

#[test]
fn table_floats_show_six_significant_digits() {
    use its_exporter_console::float_text;
    let cases = [
        (0.998_928_127_999_999_7, "0.998928"),
        (1.998_179_488, "1.99818"),
        (0.000_218_262, "0.000218262"),
        (2.5, "2.5"),
        (100.0, "100"),
        (123_456_789.0, "123456789"),
        (-1_500.25, "-1500.25"),
        (1e-9, "1e-9"),
        (6.02e23, "6.02e23"),
        (0.0, "0"),
        (f64::INFINITY, "inf"),
    ];
    for (value, text) in cases {
        assert_eq!(float_text(value), text, "{value:e}");
    }
}
