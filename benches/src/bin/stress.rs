//! The conservation stress test of the ITS.
//!
//! `cargo run --release -p benches --bin stress -- --threads N --seconds S
//! --queue-capacity C [--topology 'numa:2 core:1'] [--slow-ms M]`
//!
//! N engine threads, pinned to cores, record at full speed into several metric sets
//! (counters, up-down counters, histograms) and report every few milliseconds, while the
//! internal pipeline (`receiver:internal_telemetry -> processor:aggregate -> a
//! deliberately slow exporter`) drains queues of capacity C. Then everything shuts down
//! gracefully. Every thread keeps its own tally; the exporter keeps what it received.
//! The last line is `recorded=<n> exported=<n> lost=<n> rate=<increments/s>`, and the
//! exit code is 1 if anything differs.
//!
//! Before that (unless `--no-baseline`), the same threads run for the same time with no
//! ITS at all, so that the engine's throughput with and without the ITS can be
//! compared. RSS is printed at the start and the end of the ITS run.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use benches::pin_to_core;
use its_processors::Interval;
use its_processors::model::Value;
use metric_schema::{Counter, Histogram, Reporter, UpDownCounter, attribute_set, metric_set};
use nodes::{
    EffectHandler, EngineSettings, Exporter, Message, NodeContext, NodeError, NodeFactory,
    NodeKind, NodeSpec, NodeTask, PipelineSpec, ShutdownSignal, Topology,
};

/// Which of a thread's sets.
#[attribute_set(name = "stress.attrs")]
struct Which {
    /// The set's name, shared by every thread (so the ITS merges across cores).
    #[attribute(key = "stress.set")]
    set: String,
}

/// What each engine thread records.
#[metric_set(name = "stress.work")]
struct Work {
    /// Operations done.
    #[metric(unit = "{operation}")]
    ops: Counter<u64>,
    /// Bytes moved.
    #[metric(unit = "By")]
    bytes: Counter<u64>,
    /// Items in flight: +1, -1, +1, ...
    #[metric(unit = "{item}")]
    in_flight: UpDownCounter<i64>,
    /// Operation latency.
    #[metric(unit = "s", max_buckets = 64)]
    latency: Histogram<64>,
}

const SETS: [&str; 3] = ["alpha", "beta", "gamma"];

/// A thread's own count of what it recorded, per set.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    ops: u64,
    bytes: u64,
    in_flight: i64,
    latency_count: u64,
}

/// What the slow exporter received, per set.
static RECEIVED: Mutex<BTreeMap<String, Tally>> = Mutex::new(BTreeMap::new());
/// Milliseconds the exporter sleeps per interval.
static SLOW_MS: Mutex<u64> = Mutex::new(20);

struct SlowSink;

impl Exporter for SlowSink {
    async fn export(&mut self, msg: Message, _effect: &EffectHandler) -> Result<(), NodeError> {
        let Message::PData(pdata) = msg else {
            return Ok(());
        };
        let Some(interval) = pdata.downcast_ref::<Interval>() else {
            return Err(NodeError::new("the stress sink takes intervals"));
        };
        {
            let mut received = RECEIVED.lock().expect("the sink's tally");
            for series in interval
                .series
                .iter()
                .filter(|s| s.descriptor.name == "stress.work")
            {
                let t = received
                    .entry(series.identity.values[0].to_string())
                    .or_default();
                for p in &series.points {
                    match (
                        series.descriptor.fields[usize::from(p.field)].name,
                        &p.value,
                    ) {
                        ("ops", Value::U64(v)) => t.ops += v,
                        ("bytes", Value::U64(v)) => t.bytes += v,
                        ("in_flight", Value::I64(v)) => t.in_flight += v,
                        ("latency", Value::Histogram(h)) => t.latency_count += h.count,
                        _ => {}
                    }
                }
            }
        }
        let slow = *SLOW_MS.lock().expect("the sink's delay");
        tokio::time::sleep(Duration::from_millis(slow)).await;
        Ok(())
    }
}

#[linkme::distributed_slice(nodes::NODE_FACTORIES)]
static SLOW_SINK: NodeFactory = NodeFactory {
    type_name: "exporter:stress_sink",
    kind: NodeKind::Exporter,
    description: "stress test: tallies what it receives, slowly",
    validate: |_| Ok(()),
    create: |_, _: &NodeContext| Ok(NodeTask::exporter(SlowSink)),
};

struct Args {
    threads: usize,
    seconds: f64,
    queue_capacity: usize,
    topology: Option<String>,
    slow_ms: u64,
    baseline: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        threads: 2,
        seconds: 2.0,
        queue_capacity: 1,
        topology: None,
        slow_ms: 20,
        baseline: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("`{flag}` needs a value"));
        match flag.as_str() {
            "--threads" => {
                args.threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?;
            }
            "--seconds" => {
                args.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?;
            }
            "--queue-capacity" => {
                args.queue_capacity = value()?
                    .parse()
                    .map_err(|e| format!("--queue-capacity: {e}"))?;
            }
            "--topology" => args.topology = Some(value()?),
            "--no-baseline" => args.baseline = false,
            "--slow-ms" => {
                args.slow_ms = value()?.parse().map_err(|e| format!("--slow-ms: {e}"))?;
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if args.threads == 0 || args.seconds.is_nan() || args.seconds <= 0.0 || args.queue_capacity == 0
    {
        return Err("--threads, --seconds and --queue-capacity must be positive".into());
    }
    Ok(args)
}

/// Resident set size in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4)
}

/// Runs `threads` recording threads for `seconds`; returns their tallies and the total
/// increments per second. With `queues`, each thread reports into its NUMA node's queue.
fn record(
    args: &Args,
    topology: &Topology,
    queues: Option<&BTreeMap<u32, metric_schema::SnapshotSender>>,
) -> (Vec<BTreeMap<String, Tally>>, f64) {
    let cores = topology.cores();
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(args.threads + 1));
    let handles: Vec<_> = (0..args.threads)
        .map(|t| {
            let placement = topology
                .placement(cores[t % cores.len()])
                .expect("a core of the topology");
            let sender = queues.map(|q| q[&placement.numa_node].clone());
            let (stop, start) = (Arc::clone(&stop), Arc::clone(&start));
            std::thread::spawn(move || {
                pin_to_core(placement.os_core);
                let mut reporter = sender.map(|s| {
                    Reporter::new(s, placement.core, placement.numa_node)
                        .with_interval(Duration::from_millis(5))
                });
                // With the ITS: registered sets. Without: the same structs, unregistered.
                let handles: Vec<_> = match &mut reporter {
                    Some(r) => SETS
                        .iter()
                        .map(|name| {
                            r.register::<Work, _>(&Which {
                                set: (*name).into(),
                            })
                        })
                        .collect(),
                    None => Vec::new(),
                };
                let plain: Vec<Work> = SETS.iter().map(|_| Work::default()).collect();
                let sets: Vec<&Work> = if handles.is_empty() {
                    plain.iter().collect()
                } else {
                    handles.iter().map(|h| &**h).collect()
                };
                let mut tallies = vec![Tally::default(); SETS.len()];
                start.wait();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..1024 {
                        let s = (i % 3) as usize;
                        let set = &sets[s];
                        let tally = &mut tallies[s];
                        set.ops.inc();
                        tally.ops += 1;
                        let bytes = 64 + (i & 63);
                        set.bytes.add(bytes);
                        tally.bytes += bytes;
                        let delta = if i & 1 == 0 { 1 } else { -1 };
                        set.in_flight.add(delta);
                        tally.in_flight += delta;
                        if i.is_multiple_of(16) {
                            set.latency.record(1e-6 * (1 + (i & 1023)) as f64);
                            tally.latency_count += 1;
                        }
                        i += 1;
                    }
                    if let Some(r) = &mut reporter {
                        r.report_if_due();
                    }
                }
                drop(sets);
                drop(handles);
                if let Some(r) = reporter {
                    // Graceful: wait for room in the queue, however slow the ITS is.
                    r.shutdown(Instant::now() + Duration::from_mins(1));
                }
                SETS.iter()
                    .zip(tallies)
                    .map(|(name, t)| ((*name).to_string(), t))
                    .collect::<BTreeMap<_, _>>()
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(args.seconds));
    stop.store(true, Ordering::Relaxed);
    let tallies: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("a recording thread"))
        .collect();
    let elapsed = began.elapsed().as_secs_f64();
    // Each operation is three increments (ops, bytes, in_flight); one in 16 also
    // records a latency.
    let increments: u64 = tallies
        .iter()
        .flat_map(|t| t.values())
        .map(|t| 3 * t.ops + t.latency_count)
        .sum();
    (tallies, increments as f64 / elapsed)
}

fn its_pipeline() -> PipelineSpec {
    PipelineSpec::chain(
        "engine",
        "observability",
        1,
        vec![
            NodeSpec::new(
                "telemetry",
                its_receiver::TYPE_NAME,
                serde_json::json!({"metrics": {"interval": "2ms"}}),
            ),
            NodeSpec::new(
                "aggregate",
                "processor:aggregate",
                serde_json::json!({"interval": "50ms"}),
            ),
            NodeSpec::new("sink", "exporter:stress_sink", serde_json::Value::Null),
        ],
    )
}

/// Compares what the threads recorded with what the exporter received, prints the
/// last line, and says whether they match.
fn verdict(tallies: &[BTreeMap<String, Tally>], rate_on: f64) -> bool {
    let mut recorded: BTreeMap<String, Tally> = BTreeMap::new();
    for t in tallies {
        for (name, v) in t {
            let r = recorded.entry(name.clone()).or_default();
            r.ops += v.ops;
            r.bytes += v.bytes;
            r.in_flight += v.in_flight;
            r.latency_count += v.latency_count;
        }
    }
    let received = RECEIVED.lock().expect("the sink's tally").clone();
    let mut ok = true;
    for (name, want) in &recorded {
        let got = received.get(name).copied().unwrap_or_default();
        if got != *want {
            ok = false;
            println!("MISMATCH {name}: recorded {want:?}, exported {got:?}");
        }
    }
    let count = |m: &BTreeMap<String, Tally>| -> u64 {
        m.values()
            .map(|t| t.ops + t.bytes + t.in_flight.unsigned_abs() + t.latency_count)
            .sum()
    };
    let (rec, exp) = (count(&recorded), count(&received));
    let lost = metric_schema::lost_values() + rec.saturating_sub(exp);
    ok &= lost == 0 && rec == exp;
    println!("recorded={rec} exported={exp} lost={lost} rate={rate_on:.0}");
    ok
}

#[expect(clippy::too_many_lines, reason = "the run, step by step, in order")]
fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("stress: {e}");
            return ExitCode::from(2);
        }
    };
    *SLOW_MS.lock().expect("the sink's delay") = args.slow_ms;
    let machine = Topology::detect().expect("the machine's topology");
    let topology = match &args.topology {
        Some(spec) => match Topology::synthetic(spec, &machine) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("stress: {e}");
                return ExitCode::from(2);
            }
        },
        None => machine,
    };
    println!("topology: {topology}");

    // 1. The engine alone: no reporter, no ITS.
    let rate_off = if args.baseline {
        let (_, rate) = record(&args, &topology, None);
        println!("ITS off: {rate:.0} increments/s");
        rate
    } else {
        f64::NAN
    };

    // 2. The same with the ITS: one queue per NUMA node, a slow exporter.
    let mut senders = BTreeMap::new();
    let mut queues = Vec::new();
    for node in topology.numa_nodes() {
        let (s, r) = metric_schema::channel(args.queue_capacity);
        senders.insert(node.id, s);
        queues.push((node.id, r));
    }
    // Several NUMA nodes: a first stage per node relays only pre-aggregated batches.
    let stages = if queues.len() > 1 {
        let (cross, cross_queue) = metric_schema::channel(args.queue_capacity);
        let stages = its_processors::numa::spawn_first_stages(
            queues,
            &topology,
            its_processors::Keep::default(),
            Duration::from_millis(20),
            &cross,
        );
        its_receiver::hub::install(its_receiver::hub::Queues {
            engine: vec![(u32::MAX, cross_queue)],
            own: None,
        });
        Some(stages)
    } else {
        its_receiver::hub::install(its_receiver::hub::Queues {
            engine: queues,
            own: None,
        });
        None
    };
    let shutdown = Arc::new(ShutdownSignal::default());
    let settings = EngineSettings {
        reporting_interval: Duration::from_millis(50),
        telemetry: false,
        shutdown_grace: Duration::from_mins(1),
        resource: Vec::new(),
    };
    let its = nodes::spawn_internal(
        Arc::new(its_pipeline()),
        settings,
        Arc::clone(&shutdown),
        None,
    )
    .expect("the internal pipeline starts");
    let rss_start = rss_kib();
    let (tallies, rate_on) = record(&args, &topology, Some(&senders));
    drop(senders);
    if let Some(stages) = stages {
        for st in stages.join() {
            println!(
                "numa node {}: {} batches / {} bytes in from its cores, {} batches / {} bytes across nodes ({:.1}x fewer bytes)",
                st.numa_node,
                st.batches_in,
                st.bytes_in,
                st.batches_out,
                st.bytes_out,
                st.bytes_in as f64 / st.bytes_out.max(1) as f64
            );
        }
    }
    shutdown.trigger();
    let summary = its.join().expect("the internal pipeline ends");
    let rss_end = rss_kib();
    if !summary.node_failures.is_empty() {
        eprintln!("stress: ITS node failures: {:?}", summary.node_failures);
    }
    println!(
        "ITS on:  {rate_on:.0} increments/s ({:+.1} % against off)",
        (rate_on / rate_off - 1.0) * 100.0
    );
    println!("rss: {rss_start} KiB at start, {rss_end} KiB at end");

    let ok = verdict(&tallies, rate_on) && summary.node_failures.is_empty();
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
