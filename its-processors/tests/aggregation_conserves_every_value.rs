//! Whatever the schedule of records, reports, full queues and interval cuts, the
//! aggregated deltas add up to what the cores recorded, and the cumulative totals equal
//! it; per-core breakdowns keep cores apart.
use std::collections::BTreeMap;

use its_processors::model::Value;
use its_processors::{Aggregator, Interval, Keep, Temporality};
use metric_schema::{
    Counter, Gauge, Histogram, MetricSetHandle, Mmsc, ObserveCounter, ReportOutcome, Reporter,
    SnapshotReceiver, UpDownCounter, attribute_set, metric_set,
};
use proptest::prelude::*;

/// Which series.
#[attribute_set(name = "test.agg.attrs")]
pub struct Name {
    /// Series name.
    #[attribute(key = "test.name")]
    pub name: String,
}

/// Every kind.
#[metric_set(name = "test.agg")]
pub struct Kinds {
    /// Counter.
    #[metric(unit = "1")]
    pub count: Counter<u64>,
    /// Up-down.
    #[metric(unit = "1")]
    pub level: UpDownCounter<i64>,
    /// Gauge.
    #[metric(unit = "1")]
    pub gauge: Gauge<i64>,
    /// Observed total.
    #[metric(unit = "1")]
    pub observed: ObserveCounter<u64>,
    /// Histogram.
    #[metric(unit = "s", max_buckets = 8)]
    pub hist: Histogram<8>,
    /// Mmsc.
    #[metric(unit = "s")]
    pub mmsc: Mmsc,
}

const CORES: usize = 3;
const NAMES: [&str; 2] = ["a", "b"];

#[derive(Debug, Clone)]
enum Op {
    Count(usize, usize, u64),
    Level(usize, usize, i64),
    Observe(usize, usize, u64),
    Hist(usize, usize, i32),
    Mmsc(usize, usize, i32),
    Report(usize),
    Drain,
    Cut,
}

fn op() -> impl Strategy<Value = Op> {
    let at = (0..CORES, 0..NAMES.len());
    prop_oneof![
        4 => (at.clone(), 0..1000u64).prop_map(|((c, n), v)| Op::Count(c, n, v)),
        2 => (at.clone(), -500..500i64).prop_map(|((c, n), v)| Op::Level(c, n, v)),
        1 => (at.clone(), 0..100u64).prop_map(|((c, n), v)| Op::Observe(c, n, v)),
        2 => (at.clone(), -64..64i32).prop_map(|((c, n), v)| Op::Hist(c, n, v)),
        1 => (at, -64..64i32).prop_map(|((c, n), v)| Op::Mmsc(c, n, v)),
        3 => (0..CORES).prop_map(Op::Report),
        2 => Just(Op::Drain),
        1 => Just(Op::Cut),
    ]
}

#[derive(Debug, Default, Clone, PartialEq)]
struct Totals {
    count: u64,
    level: i64,
    observed: u64,
    hist_count: u64,
    hist_sum: f64,
    mmsc_count: u64,
    mmsc_sum: f64,
}

fn fold(into: &mut BTreeMap<String, Totals>, interval: &Interval, replace: bool) {
    for s in &interval.series {
        let name = s.identity.values[0].to_string();
        let t = into.entry(name).or_default();
        if replace {
            *t = Totals::default();
        }
        for p in &s.points {
            let field = s.descriptor.fields[usize::from(p.field)].name;
            match (field, &p.value) {
                ("count", Value::U64(v)) => t.count += v,
                ("level", Value::I64(v)) => t.level += v,
                ("observed", Value::U64(v)) => t.observed += v,
                ("hist", Value::Histogram(h)) => {
                    assert_eq!(h.bucket_total(), h.count, "every value in a bucket");
                    t.hist_count += h.count;
                    t.hist_sum += h.sum;
                }
                ("mmsc", Value::Mmsc(m)) => {
                    t.mmsc_count += m.count;
                    t.mmsc_sum += m.sum;
                }
                ("gauge", _) => {}
                (other, value) => panic!("unexpected {other}: {value:?}"),
            }
        }
    }
}

fn drain(queue: &SnapshotReceiver, aggregator: &mut Aggregator) {
    while let Some(batch) = queue.try_recv() {
        aggregator.apply(&batch);
        queue.recycle(batch);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn deltas_add_up_and_totals_match(capacity in 1..4usize, ops in proptest::collection::vec(op(), 1..200)) {
        let (sender, queue) = metric_schema::channel(capacity);
        let mut reporters: Vec<Reporter> =
            (0..CORES).map(|c| Reporter::new(sender.clone(), c as u32, 0)).collect();
        let sets: Vec<Vec<MetricSetHandle<Kinds>>> = reporters
            .iter_mut()
            .map(|r| NAMES.iter().map(|n| r.register::<Kinds, _>(&Name { name: (*n).into() })).collect())
            .collect();
        let mut recorded: BTreeMap<String, Totals> = BTreeMap::new();
        let mut observed: BTreeMap<(usize, usize), u64> = BTreeMap::new();
        let mut aggregator = Aggregator::new(Keep::default(), 0);
        let mut deltas: BTreeMap<String, Totals> = BTreeMap::new();
        let mut cumulative: BTreeMap<String, Totals> = BTreeMap::new();
        let mut now = 1;
        let mut cut = |aggregator: &mut Aggregator, deltas: &mut BTreeMap<String, Totals>, cumulative: &mut BTreeMap<String, Totals>| {
            now += 1;
            for interval in aggregator.take(now, &[Temporality::Delta, Temporality::Cumulative]) {
                fold(if interval.temporality == Temporality::Delta { &mut *deltas } else { &mut *cumulative }, &interval, interval.temporality == Temporality::Cumulative);
            }
        };
        for op in ops {
            match op {
                Op::Count(c, n, v) => { sets[c][n].count.add(v); recorded.entry(NAMES[n].into()).or_default().count += v; }
                Op::Level(c, n, v) => { sets[c][n].level.add(v); recorded.entry(NAMES[n].into()).or_default().level += v; }
                Op::Observe(c, n, v) => {
                    let total = observed.entry((c, n)).or_default();
                    *total += v;
                    sets[c][n].observed.observe(*total);
                    recorded.entry(NAMES[n].into()).or_default().observed += v;
                }
                Op::Hist(c, n, v) => {
                    let x = f64::from(v) / 8.0;
                    sets[c][n].hist.record(x);
                    let t = recorded.entry(NAMES[n].into()).or_default();
                    t.hist_count += 1;
                    t.hist_sum += x;
                }
                Op::Mmsc(c, n, v) => {
                    sets[c][n].mmsc.record(f64::from(v));
                    let t = recorded.entry(NAMES[n].into()).or_default();
                    t.mmsc_count += 1;
                    t.mmsc_sum += f64::from(v);
                }
                Op::Report(c) => { reporters[c].report(); }
                Op::Drain => drain(&queue, &mut aggregator),
                Op::Cut => cut(&mut aggregator, &mut deltas, &mut cumulative),
            }
        }
        // Shutdown: report until every core is idle, draining as the ITS would.
        loop {
            drain(&queue, &mut aggregator);
            let outcomes: Vec<ReportOutcome> = reporters.iter_mut().map(Reporter::report).collect();
            if outcomes.iter().all(|o| *o == ReportOutcome::Idle) {
                break;
            }
        }
        drain(&queue, &mut aggregator);
        cut(&mut aggregator, &mut deltas, &mut cumulative);
        for (name, want) in &recorded {
            let got = deltas.get(name).cloned().unwrap_or_default();
            prop_assert_eq!(&got, want, "deltas of {}", name);
            let total = cumulative.get(name).cloned().unwrap_or_default();
            prop_assert_eq!(&total, want, "cumulative of {}", name);
        }
    }
}

#[test]
fn keep_core_keeps_one_series_per_core_and_gauges_keep_their_last_value() {
    let (sender, queue) = metric_schema::channel(16);
    let mut r0 = Reporter::new(sender.clone(), 0, 0);
    let mut r1 = Reporter::new(sender, 1, 0);
    let a0 = r0.register::<Kinds, _>(&Name { name: "a".into() });
    let a1 = r1.register::<Kinds, _>(&Name { name: "a".into() });
    a0.count.add(5);
    a1.count.add(7);
    a0.gauge.set(3);
    r0.report();
    r1.report();
    a0.gauge.set(9);
    r0.report();

    let mut merged = Aggregator::new(Keep::default(), 0);
    let mut per_core = Aggregator::new(
        Keep {
            core: true,
            numa_node: false,
        },
        0,
    );
    while let Some(batch) = queue.try_recv() {
        merged.apply(&batch);
        per_core.apply(&batch);
    }
    let merged = merged.take(1, &[Temporality::Delta]).remove(0);
    assert_eq!(merged.series.len(), 1);
    let per_core = per_core.take(1, &[Temporality::Delta]).remove(0);
    assert_eq!(per_core.series.len(), 2);
    let value = |i: &Interval, core: Option<u32>, field: &str| {
        i.series
            .iter()
            .find(|s| s.identity.core == core)
            .and_then(|s| {
                s.points
                    .iter()
                    .find(|p| s.descriptor.fields[usize::from(p.field)].name == field)
                    .map(|p| p.value.clone())
            })
    };
    assert_eq!(value(&merged, None, "count"), Some(Value::U64(12)));
    assert_eq!(value(&per_core, Some(0), "count"), Some(Value::U64(5)));
    assert_eq!(value(&per_core, Some(1), "count"), Some(Value::U64(7)));
    assert_eq!(value(&per_core, Some(0), "gauge"), Some(Value::I64(9)));
    assert!(
        per_core
            .series
            .iter()
            .all(|s| s.identity.pairs().iter().any(|(k, _)| k == "core.id"))
    );
}

#[test]
fn a_cumulative_series_survives_going_idle_and_keeps_its_start() {
    let (sender, queue) = metric_schema::channel(16);
    let mut r = Reporter::new(sender, 0, 0);
    let a = r.register::<Kinds, _>(&Name { name: "a".into() });
    a.count.add(4);
    r.report();
    let mut agg = Aggregator::new(Keep::default(), 0);
    while let Some(batch) = queue.try_recv() {
        agg.apply(&batch);
    }
    let first = agg.take(10, &[Temporality::Cumulative]).remove(0);
    let start = first.series[0].start_unix_nanos;
    // Nothing new: the delta is empty, the cumulative total stays.
    let next = agg.take(20, &[Temporality::Delta, Temporality::Cumulative]);
    assert!(next[0].series.is_empty());
    assert_eq!(next[1].series.len(), 1);
    assert_eq!(next[1].series[0].points[0].value, Value::U64(4));
    assert_eq!(next[1].series[0].start_unix_nanos, start);
    assert_eq!((next[1].start_unix_nanos, next[1].end_unix_nanos), (10, 20));
}

#[test]
fn keep_names_only_what_it_can_keep() {
    assert_eq!(
        Keep::parse(&["numa.node".into()]).unwrap(),
        Keep {
            core: false,
            numa_node: true
        }
    );
    let e = Keep::parse(&["host.name".into()]).unwrap_err();
    assert!(
        e.contains("`host.name`") && e.contains("core.id, numa.node"),
        "{e}"
    );
}

#[test]
fn intervals_come_out_in_the_canonical_series_order() {
    let (sender, queue) = metric_schema::channel(64);
    let mut reporters: Vec<Reporter> = (0..2)
        .map(|core| Reporter::new(sender.clone(), core, 0))
        .collect();
    // Registered out of order, on two cores that are kept apart.
    let mut handles = Vec::new();
    for name in ["node-10", "node-2", "b", "node-1", "a"] {
        for r in reporters.iter_mut().rev() {
            let set = r.register::<Kinds, _>(&Name { name: name.into() });
            set.count.add(1);
            handles.push(set);
        }
    }
    for r in &mut reporters {
        r.report();
    }
    let keep = Keep {
        core: true,
        numa_node: false,
    };
    let mut agg = Aggregator::new(keep, 0);
    while let Some(batch) = queue.try_recv() {
        agg.apply(&batch);
    }
    for interval in agg.take(1, &[Temporality::Delta, Temporality::Cumulative]) {
        let got: Vec<(String, Option<u32>)> = interval
            .series
            .iter()
            .map(|s| (s.identity.pairs()[0].1.clone(), s.identity.core))
            .collect();
        let names = ["a", "b", "node-1", "node-10", "node-2"];
        let want: Vec<(String, Option<u32>)> = names
            .iter()
            .flat_map(|n| [(n.to_string(), Some(0)), (n.to_string(), Some(1))])
            .collect();
        assert_eq!(got, want, "{:?}", interval.temporality);
        assert!(
            interval
                .series
                .is_sorted_by(|a, b| its_processors::model::series_order(a, b).is_le())
        );
    }
    drop(handles);
}

#[test]
fn merged_intervals_keep_each_series_at_its_own_time() {
    // Two consecutive delta intervals of one series, merged as `processor:batch`
    // merges them: both points stay, each with its own window, and views applied
    // after the merge keep them apart (they were taken at different times).
    use nodes::Mergeable;
    let (sender, queue) = metric_schema::channel(16);
    let mut r = Reporter::new(sender, 0, 0);
    let a = r.register::<Kinds, _>(&Name { name: "a".into() });
    let mut agg = Aggregator::new(Keep::default(), 0);
    let mut cut = |count: u64, end: u64| {
        a.count.add(count);
        r.report();
        while let Some(batch) = queue.try_recv() {
            agg.apply(&batch);
        }
        agg.take(end, &[Temporality::Delta]).remove(0)
    };
    let mut merged = cut(3, 10);
    let second = cut(4, 20);
    assert!(merged.merge(Box::new(second)).is_ok());
    assert_eq!((merged.start_unix_nanos, merged.end_unix_nanos), (0, 20));
    let windows: Vec<(u64, u64, Value)> = merged
        .series
        .iter()
        .map(|s| {
            (
                s.start_unix_nanos,
                s.end_unix_nanos,
                s.points[0].value.clone(),
            )
        })
        .collect();
    assert_eq!(
        windows,
        [(0, 10, Value::U64(3)), (10, 20, Value::U64(4))],
        "each point in its own window"
    );
    let views = nodes::parse_config::<its_processors::views::ViewsConfig>(
        &serde_json::json!({"views": [{"select": {"set": "test.agg"}, "describe": "Counted."}]}),
    )
    .unwrap();
    let viewed = its_processors::views::apply_views(&views, &merged);
    let ends: Vec<u64> = viewed.series.iter().map(|s| s.end_unix_nanos).collect();
    assert_eq!(
        ends,
        [10, 20],
        "views do not merge series of different times"
    );
}
