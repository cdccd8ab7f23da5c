//! Random sequences of records, reports, full queues, drops and a final shutdown conserve
//! every value: per field, what the consumer received equals what was recorded.
#![expect(
    clippy::float_cmp,
    reason = "recorded values are exact binary fractions"
)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::Consumer;
use metric_schema::{
    Counter, Gauge, Histogram, MetricSetHandle, Mmsc, ObserveCounter, Reporter, SetId,
    UpDownCounter, metric_set,
};
use proptest::prelude::*;

/// Every instrument kind.
#[metric_set(name = "test.conservation")]
pub struct All {
    /// A.
    #[metric(unit = "1")]
    pub count: Counter<u64>,
    /// B.
    #[metric(unit = "1")]
    pub fcount: Counter<f64>,
    /// C.
    #[metric(unit = "1")]
    pub level: UpDownCounter<i64>,
    /// D.
    #[metric(unit = "1")]
    pub gauge: Gauge<i64>,
    /// E.
    #[metric(unit = "1")]
    pub observed: ObserveCounter<u64>,
    /// F.
    #[metric(unit = "s", max_buckets = 8)]
    pub hist: Histogram,
    /// G.
    #[metric(unit = "s")]
    pub mmsc: Mmsc,
}

#[derive(Debug, Clone)]
enum Op {
    Count(usize, u64),
    FCount(usize, u32),
    Level(usize, i64),
    Gauge(usize, i64),
    Observe(usize, u64),
    Hist(usize, i32, u8),
    Mmsc(usize, i32),
    Report,
    Drain,
    Drop(usize),
    Register,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..4usize, 0..1_000u64).prop_map(|(s, v)| Op::Count(s, v)),
        2 => (0..4usize, 0..1_000u32).prop_map(|(s, v)| Op::FCount(s, v)),
        2 => (0..4usize, -500..500i64).prop_map(|(s, v)| Op::Level(s, v)),
        2 => (0..4usize, -50..50i64).prop_map(|(s, v)| Op::Gauge(s, v)),
        1 => (0..4usize, 0..1_000u64).prop_map(|(s, v)| Op::Observe(s, v)),
        3 => (0..4usize, -1_000..1_000i32, 0..60u8).prop_map(|(s, m, e)| Op::Hist(s, m, e)),
        1 => (0..4usize, -1_000..1_000i32).prop_map(|(s, v)| Op::Mmsc(s, v)),
        3 => Just(Op::Report),
        1 => Just(Op::Drain),
        1 => (0..4usize).prop_map(Op::Drop),
        1 => Just(Op::Register),
    ]
}

/// What the test itself recorded, per set.
#[derive(Default, Debug)]
struct Tally {
    count: u64,
    fcount: f64,
    level: i64,
    gauge: i64,
    observed: u64,
    hist_count: u64,
    hist_sum: f64,
    mmsc_count: u64,
    mmsc_sum: f64,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_recorded_value_reaches_the_consumer(
        capacity in 1..4usize,
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let (tx, rx) = metric_schema::channel(capacity);
        let mut reporter = Reporter::new(tx, 0, 0);
        let mut consumer = Consumer::default();
        let mut live: Vec<(MetricSetHandle<All>, SetId)> = Vec::new();
        let mut tally: BTreeMap<SetId, Tally> = BTreeMap::new();
        let register = |reporter: &mut Reporter, live: &mut Vec<_>| {
            let set = reporter.register::<All, _>(&());
            let id = set.id().unwrap();
            live.push((set, id));
        };
        for _ in 0..2 {
            register(&mut reporter, &mut live);
        }
        for op in ops {
            let pick = |i: usize| i % live.len().max(1);
            match op {
                Op::Report => { reporter.report(); }
                Op::Drain => { consumer.drain(&rx); }
                Op::Register => register(&mut reporter, &mut live),
                Op::Drop(i) if !live.is_empty() => { live.remove(pick(i)); }
                _ if live.is_empty() => {}
                Op::Count(i, v) => {
                    let (set, id) = &live[pick(i)];
                    set.count.add(v);
                    tally.entry(*id).or_default().count += v;
                }
                Op::FCount(i, v) => {
                    let (set, id) = &live[pick(i)];
                    set.fcount.add(f64::from(v));
                    tally.entry(*id).or_default().fcount += f64::from(v);
                }
                Op::Level(i, v) => {
                    let (set, id) = &live[pick(i)];
                    set.level.add(v);
                    tally.entry(*id).or_default().level += v;
                }
                Op::Gauge(i, v) => {
                    let (set, id) = &live[pick(i)];
                    set.gauge.set(v);
                    tally.entry(*id).or_default().gauge = v;
                }
                Op::Observe(i, v) => {
                    let (set, id) = &live[pick(i)];
                    let t = tally.entry(*id).or_default();
                    t.observed += v;
                    set.observed.observe(t.observed);
                }
                Op::Hist(i, m, e) => {
                    let (set, id) = &live[pick(i)];
                    // Exact binary fractions so that sums compare exactly.
                    let v = f64::from(m) * f64::from(i32::from(e) - 30).exp2();
                    set.hist.record(v);
                    let t = tally.entry(*id).or_default();
                    t.hist_count += 1;
                    t.hist_sum += v;
                }
                Op::Mmsc(i, v) => {
                    let (set, id) = &live[pick(i)];
                    set.mmsc.record(f64::from(v));
                    let t = tally.entry(*id).or_default();
                    t.mmsc_count += 1;
                    t.mmsc_sum += f64::from(v);
                }
                Op::Drop(_) => {}
            }
        }
        // Shutdown: a consumer drains while the reporter waits for room.
        let drainer = std::thread::spawn(move || {
            let mut consumer = consumer;
            while let Some(batch) = rx.recv() {
                consumer.apply(&batch);
            }
            consumer
        });
        drop(live);
        reporter.shutdown(Instant::now() + Duration::from_mins(1));
        let consumer = drainer.join().unwrap();

        for (id, t) in &tally {
            prop_assert_eq!(consumer.total(*id, 0).int, i128::from(t.count));
            prop_assert_eq!(consumer.total(*id, 1).float, t.fcount);
            prop_assert_eq!(consumer.total(*id, 2).int, i128::from(t.level));
            prop_assert_eq!(consumer.total(*id, 3).int, i128::from(t.gauge));
            prop_assert_eq!(consumer.total(*id, 4).int, i128::from(t.observed));
            let h = consumer.total(*id, 5);
            prop_assert_eq!((h.count, h.bucket_total), (t.hist_count, t.hist_count));
            prop_assert!((h.sum - t.hist_sum).abs() <= 1e-9 * t.hist_sum.abs().max(1.0));
            let m = consumer.total(*id, 6);
            prop_assert_eq!((m.count, m.sum), (t.mmsc_count, t.mmsc_sum));
            prop_assert!(consumer.unregistered.contains(id));
        }
        prop_assert_eq!(metric_schema::lost_values(), 0);
    }
}
