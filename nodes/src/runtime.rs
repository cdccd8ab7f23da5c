//! Running pipeline instances: one thread per core, pinned, on a single-threaded
//! runtime where nodes may be `!Send`.

use std::cell::Cell;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use metric_schema::{ObserveCounter, SnapshotSender};

use crate::channel::{self, TrySendError};
use crate::effect::{EffectHandler, OutPort};
use crate::factory::{self, NodeContext, NodeKind};
use crate::message::ControlMsg;
use crate::metrics::{
    ChannelAttrs, ChannelMetrics, NodeAttrs, NodeMetrics, PipelineAttrs, PipelineMetrics,
};
use crate::node::NodeIo;
use crate::topology::CorePlacement;

/// Name of the output port of a connection that names none.
pub const DEFAULT_PORT: &str = "default";

/// Capacity of a node's control channel.
const CONTROL_CAPACITY: usize = 16;

/// One node of a resolved pipeline.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Node id.
    pub id: String,
    /// Type name, e.g. `processor:batch`.
    pub type_name: String,
    /// Its `config` block (`null` when left out).
    pub config: serde_json::Value,
}

impl NodeSpec {
    /// A node of type `type_name` with its `config` block (`Value::Null`: defaults).
    pub fn new(id: &str, type_name: &str, config: serde_json::Value) -> Self {
        NodeSpec {
            id: id.into(),
            type_name: type_name.into(),
            config,
        }
    }
}

/// A connection of a resolved pipeline, by node index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeSpec {
    /// Sending node.
    pub from: usize,
    /// Its output port.
    pub port: String,
    /// Receiving node.
    pub to: usize,
}

/// A validated pipeline graph, ready to run on any number of cores.
#[derive(Debug, Clone)]
pub struct PipelineSpec {
    /// Group id.
    pub group: String,
    /// Pipeline id.
    pub name: String,
    /// Nodes, receivers first.
    pub nodes: Vec<NodeSpec>,
    /// Connections.
    pub edges: Vec<EdgeSpec>,
    /// Capacity of the data channels between nodes.
    pub channel_capacity: usize,
}

impl PipelineSpec {
    /// A linear pipeline: each node feeds the next through its default port.
    pub fn chain(group: &str, name: &str, channel_capacity: usize, nodes: Vec<NodeSpec>) -> Self {
        let edges = (1..nodes.len())
            .map(|to| EdgeSpec {
                from: to - 1,
                port: DEFAULT_PORT.into(),
                to,
            })
            .collect();
        PipelineSpec {
            group: group.into(),
            name: name.into(),
            nodes,
            edges,
            channel_capacity,
        }
    }
}

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// How often each core reports its metric sets.
    pub reporting_interval: Duration,
    /// Whether the engine records its own node, channel and pipeline metrics.
    pub telemetry: bool,
    /// How long a shutdown may take before node tasks are abandoned.
    pub shutdown_grace: Duration,
    /// Resource attributes (`engine.telemetry.resource`) for exporters.
    pub resource: Vec<(String, metric_schema::AttributeValue)>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            reporting_interval: Duration::from_secs(1),
            telemetry: true,
            shutdown_grace: Duration::from_secs(5),
            resource: Vec::new(),
        }
    }
}

/// Errors starting or running an instance.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The thread could not be pinned.
    #[error("cannot pin pipeline `{pipeline}` to core {core} (OS core {os_core}): the OS refused")]
    Pin {
        /// Pipeline.
        pipeline: String,
        /// Logical core.
        core: u32,
        /// OS core.
        os_core: usize,
    },
    /// The runtime or the thread could not start.
    #[error("cannot start pipeline `{pipeline}` on core {core}: {source}")]
    Start {
        /// Pipeline.
        pipeline: String,
        /// Logical core.
        core: u32,
        /// Why.
        source: std::io::Error,
    },
    /// A node could not be built.
    #[error("pipeline `{pipeline}`, node `{node}` ({type_name}): {message}")]
    Node {
        /// Pipeline.
        pipeline: String,
        /// Node id.
        node: String,
        /// Node type.
        type_name: String,
        /// Why.
        message: String,
    },
    /// The instance thread panicked.
    #[error("pipeline `{pipeline}` on core {core} panicked")]
    Panicked {
        /// Pipeline.
        pipeline: String,
        /// Logical core.
        core: u32,
    },
}

/// Asks every instance to stop; shared by the controller and the instances.
#[derive(Debug, Default)]
pub struct ShutdownSignal {
    flag: AtomicBool,
    notify: tokio::sync::Notify,
}

impl ShutdownSignal {
    /// Asks for a shutdown (idempotent, callable from any thread).
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Whether a shutdown was asked for.
    pub fn is_triggered(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Waits until a shutdown is asked for.
    pub async fn wait(&self) {
        loop {
            let mut notified = pin!(self.notify.notified());
            notified.as_mut().enable();
            if self.is_triggered() {
                return;
            }
            notified.await;
        }
    }
}

/// How an instance ended.
#[derive(Debug, Clone, Default)]
pub struct InstanceSummary {
    /// Group and pipeline.
    pub pipeline: (String, String),
    /// Logical core.
    pub core: u32,
    /// Nodes that ended with an error, and the error.
    pub node_failures: Vec<(String, String)>,
}

/// A running instance.
#[derive(Debug)]
pub struct InstanceHandle {
    /// Where it runs.
    pub placement: CorePlacement,
    pipeline: String,
    thread: JoinHandle<Result<InstanceSummary, EngineError>>,
}

impl InstanceHandle {
    /// Waits for the instance to end.
    pub fn join(self) -> Result<InstanceSummary, EngineError> {
        self.thread.join().unwrap_or(Err(EngineError::Panicked {
            pipeline: self.pipeline,
            core: self.placement.core,
        }))
    }

    /// Whether the instance's thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }
}

/// `os_core` of an instance that runs on a thread of its own, not pinned.
const UNPINNED: usize = usize::MAX;

/// Starts the internal telemetry pipeline on a thread of its own, not pinned. Its own
/// metric sets (if `telemetry` is given) report into a queue of their own, which the
/// ITS drains like the engine's but does not wait for: what the ITS says about itself
/// is a bounded handful of series per interval, never a loop that grows.
pub fn spawn_internal(
    spec: Arc<PipelineSpec>,
    settings: EngineSettings,
    shutdown: Arc<ShutdownSignal>,
    telemetry: Option<SnapshotSender>,
) -> Result<InstanceHandle, EngineError> {
    let placement = CorePlacement {
        core: 0,
        numa_node: 0,
        os_core: UNPINNED,
    };
    spawn_instance(spec, placement, telemetry, settings, shutdown)
}

/// Starts one instance of `spec` on `placement`. Its metric sets report into
/// `telemetry` (none: the engine's telemetry goes nowhere and is not recorded).
pub fn spawn_instance(
    spec: Arc<PipelineSpec>,
    placement: CorePlacement,
    telemetry: Option<SnapshotSender>,
    settings: EngineSettings,
    shutdown: Arc<ShutdownSignal>,
) -> Result<InstanceHandle, EngineError> {
    let pipeline = format!("{}/{}", spec.group, spec.name);
    let name = format!("its-{}-{}", spec.name, placement.core);
    let thread = std::thread::Builder::new()
        .name(name)
        .spawn({
            let pipeline = pipeline.clone();
            move || run_thread(&spec, placement, telemetry, &settings, &shutdown, pipeline)
        })
        .map_err(|source| EngineError::Start {
            pipeline: pipeline.clone(),
            core: placement.core,
            source,
        })?;
    Ok(InstanceHandle {
        placement,
        pipeline,
        thread,
    })
}

fn run_thread(
    spec: &PipelineSpec,
    placement: CorePlacement,
    telemetry: Option<SnapshotSender>,
    settings: &EngineSettings,
    shutdown: &ShutdownSignal,
    pipeline: String,
) -> Result<InstanceSummary, EngineError> {
    if placement.os_core != UNPINNED
        && !core_affinity::set_for_current(core_affinity::CoreId {
            id: placement.os_core,
        })
    {
        return Err(EngineError::Pin {
            pipeline,
            core: placement.core,
            os_core: placement.os_core,
        });
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|source| EngineError::Start {
            pipeline: pipeline.clone(),
            core: placement.core,
            source,
        })?;
    let installed = match telemetry.filter(|_| settings.telemetry) {
        Some(sender) => {
            let reporter =
                metric_schema::Reporter::new(sender, placement.core, placement.numa_node)
                    .with_interval(settings.reporting_interval);
            metric_schema::install(reporter).ok()
        }
        None => None,
    };
    let local = tokio::task::LocalSet::new();
    let result = local.block_on(
        &runtime,
        run_instance(spec, placement, settings, shutdown, installed.is_some()),
    );
    // Every node task has ended: report this core's sets one last time.
    if let Some(installed) = installed {
        installed
            .uninstall()
            .shutdown(Instant::now() + settings.shutdown_grace);
    }
    result
}

struct Started {
    kind: NodeKind,
    id: String,
    control: channel::Sender<ControlMsg>,
    task: tokio::task::JoinHandle<Result<(), crate::node::NodeError>>,
}

#[expect(
    clippy::too_many_lines,
    reason = "one linear start-up sequence, easier read whole"
)]
async fn run_instance(
    spec: &PipelineSpec,
    placement: CorePlacement,
    settings: &EngineSettings,
    shutdown: &ShutdownSignal,
    telemetry: bool,
) -> Result<InstanceSummary, EngineError> {
    let started_at = Instant::now();
    let core = placement.core;
    let deadline = Rc::new(Cell::new(Instant::now() + settings.shutdown_grace));
    let pipeline_metrics = telemetry.then(|| {
        metric_schema::register::<PipelineMetrics, _>(&PipelineAttrs {
            group: spec.group.clone(),
            pipeline: spec.name.clone(),
            core,
            numa_node: placement.numa_node,
        })
    });

    // One input channel per node that has upstream connections.
    let mut inputs: Vec<Option<(channel::Sender<_>, channel::Receiver<_>)>> = (0..spec.nodes.len())
        .map(|i| {
            spec.edges
                .iter()
                .any(|e| e.to == i)
                .then(|| channel::channel(spec.channel_capacity))
        })
        .collect();
    let mut ports: Vec<Vec<OutPort>> = (0..spec.nodes.len()).map(|_| Vec::new()).collect();
    // Channel depths are sampled on each telemetry tick, not on each send.
    let mut depths: Vec<(
        channel::Observer<_>,
        metric_schema::MetricSetHandle<ChannelMetrics>,
    )> = Vec::new();
    for edge in &spec.edges {
        let Some((sender, _)) = &inputs[edge.to] else {
            continue;
        };
        let metrics = telemetry.then(|| {
            metric_schema::register::<ChannelMetrics, _>(&ChannelAttrs {
                group: spec.group.clone(),
                pipeline: spec.name.clone(),
                from: spec.nodes[edge.from].id.clone(),
                port: edge.port.clone(),
                to: spec.nodes[edge.to].id.clone(),
                core,
            })
        });
        if let Some(m) = &metrics {
            depths.push((sender.observer(), m.clone()));
        }
        ports[edge.from].push(OutPort {
            name: edge.port.clone(),
            sender: sender.clone(),
            metrics,
        });
    }

    let mut started: Vec<Started> = Vec::with_capacity(spec.nodes.len());
    // Node tasks still running, and a wake-up for when none is.
    let live = Rc::new((Cell::new(0usize), tokio::sync::Notify::new()));
    for (index, node) in spec.nodes.iter().enumerate() {
        let node_error = |message: String| EngineError::Node {
            pipeline: format!("{}/{}", spec.group, spec.name),
            node: node.id.clone(),
            type_name: node.type_name.clone(),
            message,
        };
        let factory = factory::factory(&node.type_name)
            .ok_or_else(|| node_error("unknown node type".into()))?;
        let ctx = NodeContext {
            node_id: node.id.clone(),
            pipeline: (spec.group.clone(), spec.name.clone()),
            core,
            numa_node: placement.numa_node,
            reporting_interval: settings.reporting_interval,
            resource: settings.resource.clone(),
        };
        let task = (factory.create)(&node.config, &ctx).map_err(node_error)?;
        let metrics = telemetry.then(|| {
            metric_schema::register::<NodeMetrics, _>(&NodeAttrs {
                group: spec.group.clone(),
                pipeline: spec.name.clone(),
                node: node.id.clone(),
                node_type: node.type_name.clone(),
                core,
            })
        });
        let (control_tx, control_rx) = channel::channel(CONTROL_CAPACITY);
        let effect = EffectHandler::new(
            Rc::from(node.id.as_str()),
            core,
            std::mem::take(&mut ports[index]),
            metrics.clone(),
            control_tx.clone(),
        );
        let io = NodeIo {
            control: control_rx,
            input: inputs[index].take().map(|(_, rx)| rx),
            effect,
            metrics,
            deadline: Rc::clone(&deadline),
        };
        let running = task.start(io);
        let live = Rc::clone(&live);
        live.0.set(live.0.get() + 1);
        started.push(Started {
            kind: factory.kind,
            id: node.id.clone(),
            control: control_tx,
            task: tokio::task::spawn_local(async move {
                let result = running.await;
                live.0.set(live.0.get() - 1);
                if live.0.get() == 0 {
                    live.1.notify_one();
                }
                result
            }),
        });
    }
    // Only the upstream nodes hold input senders now: an input closes when they end.
    drop(inputs);

    // Telemetry ticks until a shutdown is asked for or every node has ended by itself.
    let observe = |m: &Option<metric_schema::MetricSetHandle<PipelineMetrics>>| {
        if let Some(m) = m {
            let uptime: &ObserveCounter<f64> = &m.uptime;
            uptime.observe(started_at.elapsed().as_secs_f64());
            m.cpu_time.observe(crate::metrics::thread_cpu_seconds());
        }
    };
    loop {
        let stop = {
            let all_done = live.1.notified();
            let mut all_done = pin!(all_done);
            all_done.as_mut().enable();
            if live.0.get() == 0 {
                break;
            }
            let mut wait = pin!(shutdown.wait());
            let mut tick = pin!(tokio::time::sleep(settings.reporting_interval));
            poll_fn(|cx| {
                if wait.as_mut().poll(cx).is_ready() || all_done.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(true);
                }
                tick.as_mut().poll(cx).map(|()| false)
            })
            .await
        };
        if stop {
            break;
        }
        for s in &started {
            let _ = s.control.try_send(ControlMsg::CollectTelemetry);
        }
        tokio::task::yield_now().await;
        observe(&pipeline_metrics);
        for (observer, metrics) in &depths {
            metrics.queue_depth.set(observer.len() as u64);
        }
        metric_schema::report();
    }

    // Receivers stop first; everything downstream drains and ends as inputs close.
    let end = Instant::now() + settings.shutdown_grace;
    deadline.set(end);
    for s in started.iter().filter(|s| s.kind == NodeKind::Receiver) {
        match s.control.try_send(ControlMsg::Shutdown { deadline: end }) {
            Ok(()) | Err(TrySendError::Closed(_)) => {}
            Err(TrySendError::Full(msg)) => {
                let _ = s.control.send(msg).await;
            }
        }
    }
    let mut summary = InstanceSummary {
        pipeline: (spec.group.clone(), spec.name.clone()),
        core,
        node_failures: Vec::new(),
    };
    for s in started {
        drop(s.control);
        let outcome = match tokio::time::timeout_at(end.into(), s.task).await {
            Ok(Ok(Ok(()))) => continue,
            Ok(Ok(Err(e))) => e.to_string(),
            Ok(Err(join)) => format!("the node's task failed: {join}"),
            Err(_) => "did not stop before the shutdown deadline".to_string(),
        };
        summary.node_failures.push((s.id, outcome));
    }
    observe(&pipeline_metrics);
    Ok(summary)
}
