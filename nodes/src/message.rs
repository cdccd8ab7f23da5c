//! What flows through a pipeline: pipeline data and control messages.

use std::any::Any;
use std::fmt;
use std::time::Instant;

/// A payload that `processor:batch` can merge with another of the same type.
pub trait Mergeable: Any {
    /// Appends `other` to `self`; hands it back when the two cannot be merged (another
    /// type, or values that must stay apart).
    fn merge(&mut self, other: Box<dyn Mergeable>) -> Result<(), Box<dyn Mergeable>>;
    /// For downcasting.
    fn as_any(&self) -> &dyn Any;
    /// For downcasting by value.
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

/// The body of a [`PData`].
pub enum Payload {
    /// Synthetic data from `receiver:traffic_generator`: only a size.
    Synthetic {
        /// Bytes the batch stands for.
        bytes: usize,
    },
    /// Anything else a node family defines (telemetry batches of the ITS, ...).
    Any(Box<dyn Any>),
    /// A value `processor:batch` can merge (the ITS's aggregated intervals, ...).
    Mergeable(Box<dyn Mergeable>),
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Payload::Synthetic { bytes } => {
                f.debug_struct("Synthetic").field("bytes", bytes).finish()
            }
            Payload::Any(_) => f.write_str("Any(..)"),
            Payload::Mergeable(_) => f.write_str("Mergeable(..)"),
        }
    }
}

/// One message of pipeline data: a batch of `items` items.
#[derive(Debug)]
pub struct PData {
    /// Items in the batch (records, data points, ...): what node metrics count.
    pub items: u64,
    /// The batch itself.
    pub payload: Payload,
}

impl PData {
    /// A synthetic batch.
    pub fn synthetic(items: u64, bytes: usize) -> Self {
        PData {
            items,
            payload: Payload::Synthetic { bytes },
        }
    }

    /// A batch carrying a value of any type.
    pub fn any<T: Any>(items: u64, value: T) -> Self {
        PData {
            items,
            payload: Payload::Any(Box::new(value)),
        }
    }

    /// A batch carrying a value `processor:batch` can merge.
    pub fn mergeable<T: Mergeable>(items: u64, value: T) -> Self {
        PData {
            items,
            payload: Payload::Mergeable(Box::new(value)),
        }
    }

    /// The carried value, if it is a `T`.
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        match &self.payload {
            Payload::Any(b) => b.downcast_ref(),
            Payload::Mergeable(m) => m.as_any().downcast_ref(),
            Payload::Synthetic { .. } => None,
        }
    }
}

/// Control messages the engine sends to nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlMsg {
    /// A timer started with [`EffectHandler::start_periodic_timer`](crate::EffectHandler)
    /// fired.
    TimerTick,
    /// Time to report metrics (the engine reports the core's metric sets right after
    /// every node has seen this).
    CollectTelemetry,
    /// Stop. Receivers stop producing; processors and exporters get it once their input
    /// is closed and drained, to flush what they hold before `deadline`.
    Shutdown {
        /// When the engine stops waiting.
        deadline: Instant,
    },
}

/// What a processor or an exporter receives.
#[derive(Debug)]
pub enum Message {
    /// Pipeline data from upstream.
    PData(PData),
    /// A control message from the engine.
    Control(ControlMsg),
}
