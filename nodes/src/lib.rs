//! The dataflow engine: pipelines of receivers, processors and exporters, one instance
//! per core.
//!
//! # Concepts
//!
//! - A *pipeline* is a graph of nodes joined by bounded channels. Each instance runs on
//!   one thread pinned to one core, on a single-threaded runtime: nodes may be `!Send`,
//!   channels need no atomics, and a full channel makes the sender wait (backpressure),
//!   never grow.
//! - Nodes implement [`Receiver`], [`Processor`] or [`Exporter`] and use an
//!   [`EffectHandler`] to send downstream (default or named ports) and start timers.
//!   The engine sends them [`ControlMsg`]s: `TimerTick`, `CollectTelemetry`,
//!   `Shutdown { deadline }`.
//! - [`NodeFactory`]s are collected at link time in [`NODE_FACTORIES`], keyed by type
//!   names such as `receiver:traffic_generator`; each validates its own `config` block.
//! - [`Topology`] knows cores and NUMA nodes (sysfs, or synthetic for tests);
//!   [`CoreAllocation`] picks the cores of a pipeline.
//! - The engine observes itself with `metric-schema` sets (see [`metrics`]): per node,
//!   per channel and per pipeline instance, reported by each core on the configured
//!   interval.
//!
//! The YAML model and the `its` binary live in the `pipelines` crate.

pub mod builtin;
pub mod channel;
pub mod duration;
mod effect;
mod factory;
mod message;
pub mod metrics;
mod node;
mod runtime;
pub mod topology;

pub use effect::{EffectHandler, SendError};
pub use factory::{
    NODE_FACTORIES, NodeConfig, NodeContext, NodeFactory, NodeKind, factories, factory,
    parse_config,
};
pub use message::{ControlMsg, Mergeable, Message, PData, Payload};
pub use node::{ControlChannel, Exporter, NodeError, NodeTask, Processor, Receiver};
pub use runtime::{
    DEFAULT_PORT, EdgeSpec, EngineError, EngineSettings, InstanceHandle, InstanceSummary, NodeSpec,
    PipelineSpec, ShutdownSignal, spawn_instance, spawn_internal,
};
pub use topology::{CoreAllocation, CorePlacement, Topology};

#[doc(hidden)]
pub use linkme;
