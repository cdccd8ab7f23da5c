//! The engine observes itself with the SDK: one set per node, per channel and per
//! pipeline instance, registered on the instance's core.

use metric_schema::{Counter, Gauge, ObserveCounter, attribute_set, metric_set};

/// Identity of a node instance.
#[attribute_set(name = "engine.node.attrs")]
pub struct NodeAttrs {
    /// Pipeline group.
    #[attribute(key = "pipeline.group")]
    pub group: String,
    /// Pipeline id within its group.
    #[attribute(key = "pipeline.id")]
    pub pipeline: String,
    /// Node id from the pipeline config.
    #[attribute(key = "node.id")]
    pub node: String,
    /// Node type, e.g. `processor:batch`.
    #[attribute(key = "node.type")]
    pub node_type: String,
    /// Core the instance runs on.
    #[attribute(key = "core.id")]
    pub core: u32,
}

/// Messages and items through one node.
#[metric_set(name = "engine.node")]
pub struct NodeMetrics {
    /// Messages received from upstream.
    #[metric(unit = "{message}")]
    pub consumed_messages: Counter<u64>,
    /// Items in the messages received from upstream.
    #[metric(unit = "{item}")]
    pub consumed_items: Counter<u64>,
    /// Messages sent downstream.
    #[metric(unit = "{message}")]
    pub produced_messages: Counter<u64>,
    /// Items in the messages sent downstream.
    #[metric(unit = "{item}")]
    pub produced_items: Counter<u64>,
    /// Messages whose processing failed (the node returned an error).
    #[metric(unit = "{message}")]
    pub failed_messages: Counter<u64>,
}

/// Identity of a channel between two nodes.
#[attribute_set(name = "engine.channel.attrs")]
pub struct ChannelAttrs {
    /// Pipeline group.
    #[attribute(key = "pipeline.group")]
    pub group: String,
    /// Pipeline id within its group.
    #[attribute(key = "pipeline.id")]
    pub pipeline: String,
    /// Sending node.
    #[attribute(key = "channel.from")]
    pub from: String,
    /// Output port of the sending node.
    #[attribute(key = "channel.port")]
    pub port: String,
    /// Receiving node.
    #[attribute(key = "channel.to")]
    pub to: String,
    /// Core the instance runs on.
    #[attribute(key = "core.id")]
    pub core: u32,
}

/// Traffic and backpressure on one channel.
#[metric_set(name = "engine.channel")]
pub struct ChannelMetrics {
    /// Messages sent on the channel.
    #[metric(unit = "{message}")]
    pub sent_messages: Counter<u64>,
    /// Sends that found the channel full and had to wait (backpressure).
    #[metric(unit = "{message}")]
    pub full: Counter<u64>,
    /// Messages waiting in the channel, sampled at each telemetry tick.
    #[metric(unit = "{message}")]
    pub queue_depth: Gauge<u64>,
}

/// Identity of a pipeline instance.
#[attribute_set(name = "engine.pipeline.attrs")]
pub struct PipelineAttrs {
    /// Pipeline group.
    #[attribute(key = "pipeline.group")]
    pub group: String,
    /// Pipeline id within its group.
    #[attribute(key = "pipeline.id")]
    pub pipeline: String,
    /// Core the instance runs on.
    #[attribute(key = "core.id")]
    pub core: u32,
    /// NUMA node of that core.
    #[attribute(key = "numa.node")]
    pub numa_node: u32,
}

/// Life of a pipeline instance.
#[metric_set(name = "engine.pipeline")]
pub struct PipelineMetrics {
    /// Time since the instance started.
    #[metric(unit = "s")]
    pub uptime: ObserveCounter<f64>,
    /// CPU time the instance's thread used.
    #[metric(unit = "s")]
    pub cpu_time: ObserveCounter<f64>,
}

/// CPU time of the calling thread, in seconds (0 where the OS does not say).
pub fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and the clock id is a constant the
    // platform defines; the call only writes into `ts`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    if rc == 0 {
        ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
    } else {
        0.0
    }
}
