//! `its run`: start every pipeline instance, stop them on SIGINT/SIGTERM.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use metric_schema::snapshot::FieldValue;
use metric_schema::{SetId, SnapshotReceiver};
use nodes::{EngineError, InstanceSummary, ShutdownSignal};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::plan::Plan;

/// Snapshot batches in flight between the cores and the telemetry consumer.
const TELEMETRY_QUEUE: usize = 256;

/// How an `its run` ended.
#[derive(Debug)]
pub struct RunOutcome {
    /// One per instance.
    pub instances: Vec<InstanceSummary>,
    /// Items that reached exporters, per pipeline (`group/pipeline`), from the engine's
    /// own metrics.
    pub exported_items: HashMap<String, u64>,
    /// Whether a signal asked for the stop (otherwise every pipeline ended by itself).
    pub signalled: bool,
}

impl RunOutcome {
    /// Whether every node of every instance ended without an error.
    pub fn is_clean(&self) -> bool {
        self.instances.iter().all(|i| i.node_failures.is_empty())
    }
}

/// Runs `plan` until SIGINT/SIGTERM or until every pipeline ends by itself; progress
/// lines go to `progress`.
#[expect(
    clippy::too_many_lines,
    reason = "the start-up and stop sequence, in order"
)]
pub fn run(plan: &Plan, mut progress: Box<dyn Write + Send>) -> Result<RunOutcome, EngineError> {
    let shutdown = Arc::new(ShutdownSignal::default());
    let mut signals = Signals::new([SIGINT, SIGTERM]).map_err(|source| EngineError::Start {
        pipeline: "(controller)".into(),
        core: 0,
        source,
    })?;
    let signal_handle = signals.handle();
    let signal_thread = {
        let shutdown = Arc::clone(&shutdown);
        std::thread::spawn(move || {
            let got = signals.forever().next().is_some();
            if got {
                shutdown.trigger();
            }
        })
    };

    let instances_count: usize = plan.pipelines.iter().map(|(_, p)| p.len()).sum();
    // Signals are handled from here on: tell whoever waits for it.
    let _ = writeln!(
        progress,
        "its: running {instances_count} pipeline instance(s); SIGINT or SIGTERM stops them"
    );
    let _ = progress.flush();
    // One telemetry queue per NUMA node: each core reports into its node's queue.
    let mut senders = HashMap::new();
    let mut queues = Vec::new();
    for node in plan.topology.numa_nodes() {
        let (sender, receiver) = metric_schema::channel(TELEMETRY_QUEUE);
        senders.insert(node.id, sender);
        queues.push((node.id, receiver));
    }
    let its_drains = plan.internal.as_ref().is_some_and(|spec| {
        spec.nodes
            .iter()
            .any(|n| n.type_name == its_receiver::TYPE_NAME)
    });
    let mut stages = None;
    // The ITS's own telemetry: a queue of its own, drained but not waited for.
    let (own_sender, own_queue) = metric_schema::channel(16);
    let mut own_queue = (its_drains && plan.settings.telemetry).then_some(own_queue);
    let own_sender = own_queue.is_some().then_some(own_sender);
    let drain = if its_drains {
        if queues.len() > 1 {
            // Several NUMA nodes: a first stage per node relays pre-aggregated batches.
            let (cross, cross_queue) = metric_schema::channel(TELEMETRY_QUEUE);
            stages = Some(its_processors::numa::spawn_first_stages(
                queues,
                &plan.topology,
                first_stage_keep(plan),
                plan.settings.reporting_interval,
                &cross,
            ));
            its_receiver::hub::install(its_receiver::hub::Queues {
                engine: vec![(u32::MAX, cross_queue)],
                own: own_queue.take(),
            });
        } else {
            its_receiver::hub::install(its_receiver::hub::Queues {
                engine: queues,
                own: own_queue.take(),
            });
        }
        None
    } else {
        Some(spawn_drain(
            queues.into_iter().map(|(_, q)| q).collect(),
            plan.settings.reporting_interval,
            progress,
        ))
    };

    let mut start_error = None;
    // The internal pipeline has its own stop signal: it stops after the engine's
    // pipelines, so that it sees their last reports.
    let internal_shutdown = Arc::new(ShutdownSignal::default());
    let internal = match &plan.internal {
        Some(spec) => match nodes::spawn_internal(
            Arc::clone(spec),
            plan.settings.clone(),
            Arc::clone(&internal_shutdown),
            own_sender,
        ) {
            Ok(handle) => Some(handle),
            Err(e) => {
                start_error = Some(e);
                shutdown.trigger();
                None
            }
        },
        None => None,
    };
    let mut instances = Vec::new();
    for (spec, placements) in &plan.pipelines {
        for placement in placements {
            match nodes::spawn_instance(
                Arc::clone(spec),
                *placement,
                senders.get(&placement.numa_node).cloned(),
                plan.settings.clone(),
                Arc::clone(&shutdown),
            ) {
                Ok(handle) => instances.push(handle),
                Err(e) => {
                    start_error.get_or_insert(e);
                    shutdown.trigger();
                }
            }
        }
    }
    drop(senders);
    let mut summaries = Vec::new();
    for handle in instances {
        match handle.join() {
            Ok(summary) => summaries.push(summary),
            Err(e) => {
                start_error.get_or_insert(e);
                shutdown.trigger();
            }
        }
    }
    // The first stages end once every core's reporter is gone, after their last relay.
    if let Some(stages) = stages {
        stages.join();
    }
    internal_shutdown.trigger();
    if let Some(handle) = internal {
        match handle.join() {
            Ok(summary) => summaries.push(summary),
            Err(e) => {
                start_error.get_or_insert(e);
            }
        }
    }
    let signalled = shutdown.is_triggered();
    signal_handle.close();
    let _ = signal_thread.join();
    let exported_items = drain
        .map(|d| d.join().unwrap_or_default())
        .unwrap_or_default();
    if let Some(e) = start_error {
        return Err(e);
    }
    Ok(RunOutcome {
        instances: summaries,
        exported_items,
        signalled,
    })
}

/// When the internal pipeline has no `receiver:internal_telemetry`, the controller
/// drains the queues itself: it follows the engine's own metrics and prints, at most
/// every few seconds, how many items reached the exporters of each pipeline.
fn spawn_drain(
    queues: Vec<SnapshotReceiver>,
    interval: Duration,
    mut progress: Box<dyn Write + Send>,
) -> JoinHandle<HashMap<String, u64>> {
    std::thread::spawn(move || {
        // set id -> (pipeline, is an exporter's node set, descriptor)
        let mut sets: HashMap<SetId, (String, bool, &'static metric_schema::MetricsDescriptor)> =
            HashMap::new();
        let mut totals: HashMap<String, u64> = HashMap::new();
        let mut last_print = Instant::now();
        let mut printed: HashMap<String, u64> = HashMap::new();
        let print_every = interval.max(Duration::from_secs(5));
        let mut open = vec![true; queues.len()];
        while open.iter().any(|o| *o) {
            let mut idle = true;
            for (queue, open) in queues.iter().zip(&mut open) {
                let batch = match queue.try_next() {
                    Ok(Some(batch)) => batch,
                    Ok(None) => continue,
                    Err(_) => {
                        *open = false;
                        continue;
                    }
                };
                idle = false;
                for r in batch.registrations() {
                    if r.descriptor.name == "engine.node" {
                        let v = &r.attribute_values;
                        let pipeline = format!("{}/{}", v[0], v[1]);
                        let exporter = v[3].to_string().starts_with("exporter:");
                        sets.insert(r.set_id, (pipeline, exporter, r.descriptor));
                    }
                }
                for set in batch.sets() {
                    let Some((pipeline, true, descriptor)) = sets.get(&set.set_id) else {
                        continue;
                    };
                    for (field, value) in set.fields() {
                        if let ("consumed_items", FieldValue::U64(n)) =
                            (descriptor.fields[usize::from(field)].name, value)
                        {
                            *totals.entry(pipeline.clone()).or_default() += n;
                        }
                    }
                }
                queue.recycle(batch);
            }
            if idle {
                // Reports come once per interval: a short nap costs nothing here.
                std::thread::sleep(Duration::from_millis(5));
            }
            let elapsed = last_print.elapsed();
            if elapsed >= print_every {
                let mut names: Vec<&String> = totals.keys().collect();
                names.sort();
                for name in names {
                    let now = totals[name];
                    let before = printed.insert(name.clone(), now).unwrap_or(0);
                    let rate = (now - before) as f64 / elapsed.as_secs_f64();
                    let _ = writeln!(
                        progress,
                        "its: {name}: {} items/s into exporters ({now} in total)",
                        human(rate)
                    );
                }
                last_print = Instant::now();
            }
        }
        totals
    })
}

/// What the NUMA first stage may merge: what the internal pipeline's aggregation
/// merges, or nothing across cores when that cannot be told.
fn first_stage_keep(plan: &Plan) -> its_processors::Keep {
    let everything = its_processors::Keep {
        core: true,
        numa_node: true,
    };
    let Some(internal) = &plan.internal else {
        return everything;
    };
    let aggregates: Vec<_> = internal
        .nodes
        .iter()
        .filter(|n| n.type_name == "processor:aggregate")
        .collect();
    match aggregates.as_slice() {
        [one] => nodes::parse_config::<its_processors::AggregateConfig>(&one.config)
            .ok()
            .and_then(|c| its_processors::Keep::parse(&c.keep).ok())
            .unwrap_or(everything),
        _ => everything,
    }
}

fn human(rate: f64) -> String {
    match rate {
        r if r >= 1e9 => format!("{:.2}G", r / 1e9),
        r if r >= 1e6 => format!("{:.2}M", r / 1e6),
        r if r >= 1e3 => format!("{:.2}k", r / 1e3),
        r => format!("{r:.0}"),
    }
}
