//! `receiver:internal_telemetry`: the source of the internal telemetry pipeline.
//!
//! The engine's cores report their metric sets into bounded SDK queues (one per NUMA
//! node). The controller hands those queues to this crate's [`hub`] before it starts
//! the internal pipeline; the receiver drains them on its interval and sends each
//! snapshot batch downstream as a [`ReceivedBatch`], untouched: registrations ahead of
//! snapshots, snapshots with their time windows, core and NUMA node. Resolving ids to
//! descriptors and attributes happens once per registration, in the processors.
//!
//! It is a source only; configured anywhere but in `engine.observability.pipeline`, or
//! twice there, it is a configuration error.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use metric_schema::reporter::RecvError;
use metric_schema::{Recycler, SnapshotBatch, SnapshotReceiver};
use nodes::{
    ControlChannel, ControlMsg, EffectHandler, NodeConfig, NodeContext, NodeError, NodeFactory,
    NodeKind, NodeTask, PData, Receiver,
};
use serde::Deserialize;

/// The node type name.
pub const TYPE_NAME: &str = "receiver:internal_telemetry";

/// The queues of the engine's telemetry, handed from the controller to the receiver.
pub mod hub {
    use super::{Mutex, SnapshotReceiver};

    /// The queues the receiver drains.
    #[derive(Debug)]
    pub struct Queues {
        /// The engine's queues (one per NUMA node, with the node id): the receiver
        /// stops only once all of them are closed and empty.
        pub engine: Vec<(u32, SnapshotReceiver)>,
        /// The internal pipeline's own telemetry: drained, not waited for.
        pub own: Option<SnapshotReceiver>,
    }

    static QUEUES: Mutex<Option<Queues>> = Mutex::new(None);

    /// Installs the queues for the receiver to take; replaces queues not taken yet.
    pub fn install(queues: Queues) {
        *QUEUES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(queues);
    }

    /// Takes the installed queues (once).
    pub fn take() -> Option<Queues> {
        QUEUES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// Identity of the receiver.
#[metric_schema::attribute_set(name = "its.receiver.attrs")]
pub struct ReceiverAttrs {
    /// Node id from the configuration.
    #[attribute(key = "node.id")]
    pub node: String,
}

/// What the receiver sees of the engine's queues.
#[metric_schema::metric_set(name = "its.receiver")]
pub struct ReceiverMetrics {
    /// Snapshot batches waiting in the engine's queues, sampled at each drain.
    #[metric(unit = "{batch}")]
    pub queue_depth: metric_schema::Gauge<u64>,
    /// Snapshot batches received.
    #[metric(unit = "{batch}")]
    pub batches: metric_schema::Counter<u64>,
    /// Field values (data points) received.
    #[metric(unit = "{point}")]
    pub points: metric_schema::Counter<u64>,
}

/// A snapshot batch on its way through the internal pipeline; give it back with
/// [`ReceivedBatch::recycle`] once processed so that reporters can reuse its buffers.
#[derive(Debug)]
pub struct ReceivedBatch {
    /// The batch as the core sent it.
    pub batch: SnapshotBatch,
    /// NUMA node of the queue it came through.
    pub queue_numa_node: u32,
    recycler: Recycler,
}

impl ReceivedBatch {
    /// A batch that will be recycled into `recycler` (for tests and custom sources).
    pub fn new(batch: SnapshotBatch, queue_numa_node: u32, recycler: Recycler) -> Self {
        ReceivedBatch {
            batch,
            queue_numa_node,
            recycler,
        }
    }

    /// Returns the batch's buffers to the reporters.
    pub fn recycle(self) {
        self.recycler.recycle(self.batch);
    }
}

/// What the receiver forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Metric set snapshots.
    Metrics,
    /// Events (`otel_*!`); accepted now, wired with the logging providers.
    Logs,
}

/// `metrics:` settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// How often to drain the queues (default: `engine.telemetry.reporting_interval`).
    #[serde(default, deserialize_with = "nodes::duration::deserialize_option")]
    pub interval: Option<Duration>,
}

/// Configuration of `receiver:internal_telemetry`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InternalTelemetryConfig {
    /// Signals to forward (default: metrics).
    pub signals: Vec<Signal>,
    /// Metric settings.
    pub metrics: MetricsConfig,
}

impl Default for InternalTelemetryConfig {
    fn default() -> Self {
        InternalTelemetryConfig {
            signals: vec![Signal::Metrics],
            metrics: MetricsConfig::default(),
        }
    }
}

impl NodeConfig for InternalTelemetryConfig {
    fn check(&self) -> Result<(), String> {
        if self.signals.is_empty() {
            return Err("`signals` is empty: list `metrics` and/or `logs`".into());
        }
        if self
            .metrics
            .interval
            .is_some_and(|i| i < Duration::from_millis(1))
        {
            return Err("`metrics.interval` must be at least 1ms".into());
        }
        Ok(())
    }
}

struct InternalTelemetry {
    queues: Vec<(u32, SnapshotReceiver)>,
    own: Option<SnapshotReceiver>,
    interval: Duration,
    metrics: bool,
    observed: metric_schema::MetricSetHandle<ReceiverMetrics>,
}

impl InternalTelemetry {
    /// Forwards every waiting batch; `true` once every queue is disconnected and empty.
    async fn drain(&self, effect: &EffectHandler) -> Result<bool, NodeError> {
        let depth: usize = self.queues.iter().map(|(_, q)| q.len()).sum();
        self.observed.queue_depth.set(depth as u64);
        if let Some(own) = &self.own {
            while let Ok(Some(batch)) = own.try_next() {
                self.forward(effect, u32::MAX, own, batch).await?;
            }
        }
        let mut closed = 0;
        for (numa_node, queue) in &self.queues {
            loop {
                match queue.try_next() {
                    Ok(Some(batch)) => self.forward(effect, *numa_node, queue, batch).await?,
                    Ok(None) => break,
                    Err(RecvError::Disconnected | RecvError::Timeout) => {
                        closed += 1;
                        break;
                    }
                }
            }
        }
        Ok(closed == self.queues.len())
    }

    async fn forward(
        &self,
        effect: &EffectHandler,
        numa_node: u32,
        queue: &SnapshotReceiver,
        batch: SnapshotBatch,
    ) -> Result<(), NodeError> {
        if !self.metrics {
            queue.recycle(batch);
            return Ok(());
        }
        let items = batch.value_count() as u64;
        self.observed.batches.inc();
        self.observed.points.add(items);
        let received = ReceivedBatch::new(batch, numa_node, queue.recycler());
        effect.send_message(PData::any(items, received)).await?;
        Ok(())
    }
}

impl InternalTelemetry {
    /// After a shutdown request the engine's pipelines have stopped and their last
    /// reports are in the queues or on their way: drain until every queue is closed.
    async fn finish(&self, effect: &EffectHandler, deadline: Instant) -> Result<(), NodeError> {
        loop {
            if self.drain(effect).await? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let waiting: usize = self.queues.iter().map(|(_, q)| q.len()).sum();
                return Err(NodeError::new(format!(
                    "shutdown deadline passed with telemetry queues still open ({waiting} batches waiting)"
                )));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

impl Receiver for InternalTelemetry {
    async fn run(
        self: Box<Self>,
        control: ControlChannel,
        effect: EffectHandler,
    ) -> Result<(), NodeError> {
        loop {
            self.drain(&effect).await?;
            match tokio::time::timeout(self.interval, control.recv()).await {
                Ok(Some(ControlMsg::Shutdown { deadline })) => {
                    return self.finish(&effect, deadline).await;
                }
                Ok(None) => {
                    return self
                        .finish(&effect, Instant::now() + Duration::from_secs(5))
                        .await;
                }
                Ok(Some(_)) | Err(_) => {}
            }
        }
    }
}

#[linkme::distributed_slice(nodes::NODE_FACTORIES)]
static INTERNAL_TELEMETRY: NodeFactory = NodeFactory {
    type_name: TYPE_NAME,
    kind: NodeKind::Receiver,
    description: "drains the engine's metric snapshot queues into the internal pipeline (engine.observability.pipeline only)",
    validate: |value| nodes::parse_config::<InternalTelemetryConfig>(value).map(|_| ()),
    create,
};

fn create(value: &serde_json::Value, ctx: &NodeContext) -> Result<NodeTask, String> {
    let config = nodes::parse_config::<InternalTelemetryConfig>(value)?;
    let hub::Queues { engine, own } = hub::take().ok_or_else(|| {
        format!(
            "`{TYPE_NAME}` has no telemetry queues to drain: it runs only as the receiver of `engine.observability.pipeline`, once"
        )
    })?;
    Ok(NodeTask::receiver(InternalTelemetry {
        queues: engine,
        own,
        interval: config.metrics.interval.unwrap_or(ctx.reporting_interval),
        metrics: config.signals.contains(&Signal::Metrics),
        observed: metric_schema::register::<ReceiverMetrics, _>(&ReceiverAttrs {
            node: ctx.node_id.clone(),
        }),
    }))
}
