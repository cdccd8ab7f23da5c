//! Node traits and the loops that drive them.
//!
//! A node author implements [`Receiver`], [`Processor`] or [`Exporter`] with plain
//! `async fn`s; [`NodeTask::receiver`] (and friends) wrap it into the object the engine
//! runs, which owns the node's channels, counts its traffic and calls it.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Instant;

use metric_schema::MetricSetHandle;

use crate::channel::Receiver as ChannelReceiver;
use crate::effect::EffectHandler;
use crate::message::{ControlMsg, Message, PData};
use crate::metrics::NodeMetrics;

/// A node's failure to handle a message or to run.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NodeError(pub String);

impl NodeError {
    /// An error with this message.
    pub fn new(msg: impl Into<String>) -> Self {
        NodeError(msg.into())
    }
}

impl From<crate::effect::SendError> for NodeError {
    fn from(e: crate::effect::SendError) -> Self {
        NodeError(e.to_string())
    }
}

/// The control channel of a receiver.
pub struct ControlChannel {
    rx: ChannelReceiver<ControlMsg>,
}

impl ControlChannel {
    /// A control message if one is waiting.
    pub fn try_recv(&self) -> Option<ControlMsg> {
        self.rx.try_recv()
    }

    /// Waits for a control message (`None` when the engine is gone).
    pub async fn recv(&self) -> Option<ControlMsg> {
        self.rx.recv().await
    }
}

/// A source of pipeline data. It runs until it receives [`ControlMsg::Shutdown`].
#[expect(
    async_fn_in_trait,
    reason = "nodes run on one thread and need not be Send"
)]
pub trait Receiver: 'static {
    /// Produces data with `effect` and watches `control` until shutdown.
    async fn run(
        self: Box<Self>,
        control: ControlChannel,
        effect: EffectHandler,
    ) -> Result<(), NodeError>;
}

/// Transforms data between upstream and downstream.
#[expect(
    async_fn_in_trait,
    reason = "nodes run on one thread and need not be Send"
)]
pub trait Processor: 'static {
    /// Handles one message. [`ControlMsg::Shutdown`] comes last, once the input is
    /// closed and drained: flush what the node holds.
    async fn process(&mut self, msg: Message, effect: &EffectHandler) -> Result<(), NodeError>;
}

/// A sink of pipeline data.
#[expect(
    async_fn_in_trait,
    reason = "nodes run on one thread and need not be Send"
)]
pub trait Exporter: 'static {
    /// Handles one message. [`ControlMsg::Shutdown`] comes last, once the input is
    /// closed and drained: flush what the node holds.
    async fn export(&mut self, msg: Message, effect: &EffectHandler) -> Result<(), NodeError>;
}

/// Everything a node task needs from the engine.
pub(crate) struct NodeIo {
    /// Control messages for this node.
    pub(crate) control: ChannelReceiver<ControlMsg>,
    /// Pipeline data from upstream (`None` for receivers).
    pub(crate) input: Option<ChannelReceiver<PData>>,
    /// Outputs and timers.
    pub(crate) effect: EffectHandler,
    /// This node's metrics (`None` when engine telemetry is off).
    pub(crate) metrics: Option<MetricSetHandle<NodeMetrics>>,
    /// When a shutdown must be over.
    pub(crate) deadline: Rc<std::cell::Cell<Instant>>,
}

/// A future the engine runs on the instance's thread.
pub(crate) type LocalFuture = Pin<Box<dyn Future<Output = Result<(), NodeError>>>>;

/// A node ready to run: what factories return.
pub struct NodeTask {
    run: Box<dyn FnOnce(NodeIo) -> LocalFuture>,
}

impl NodeTask {
    /// Wraps a receiver.
    pub fn receiver<R: Receiver>(node: R) -> Self {
        NodeTask {
            run: Box::new(move |io: NodeIo| {
                Box::pin(async move {
                    Box::new(node)
                        .run(ControlChannel { rx: io.control }, io.effect)
                        .await
                })
            }),
        }
    }

    /// Wraps a processor.
    pub fn processor<P: Processor>(node: P) -> Self {
        NodeTask {
            run: Box::new(move |io: NodeIo| Box::pin(consume(io, AsProcessor(node)))),
        }
    }

    /// Wraps an exporter.
    pub fn exporter<E: Exporter>(node: E) -> Self {
        NodeTask {
            run: Box::new(move |io: NodeIo| Box::pin(consume(io, AsExporter(node)))),
        }
    }

    pub(crate) fn start(self, io: NodeIo) -> LocalFuture {
        (self.run)(io)
    }
}

/// What the consuming loop calls: a processor or an exporter.
trait Consume {
    async fn handle(&mut self, msg: Message, effect: &EffectHandler) -> Result<(), NodeError>;
}

struct AsProcessor<P>(P);

impl<P: Processor> Consume for AsProcessor<P> {
    async fn handle(&mut self, msg: Message, effect: &EffectHandler) -> Result<(), NodeError> {
        self.0.process(msg, effect).await
    }
}

struct AsExporter<E>(E);

impl<E: Exporter> Consume for AsExporter<E> {
    async fn handle(&mut self, msg: Message, effect: &EffectHandler) -> Result<(), NodeError> {
        self.0.export(msg, effect).await
    }
}

/// The loop of processors and exporters: control first, then data; `Shutdown` once the
/// input is closed and drained.
async fn consume<C: Consume>(io: NodeIo, mut node: C) -> Result<(), NodeError> {
    let NodeIo {
        control,
        input,
        effect,
        metrics,
        deadline,
    } = io;
    let Some(input) = input else {
        return Err(NodeError::new("a processor or exporter needs an input"));
    };
    loop {
        let next = poll_fn(|cx| {
            if let Poll::Ready(Some(c)) = control.poll_recv(cx) {
                return Poll::Ready(Some(Message::Control(c)));
            }
            input.poll_recv(cx).map(|p| p.map(Message::PData))
        })
        .await;
        let Some(msg) = next else {
            let shutdown = ControlMsg::Shutdown {
                deadline: deadline.get(),
            };
            return node.handle(Message::Control(shutdown), &effect).await;
        };
        if let (Message::PData(p), Some(m)) = (&msg, &metrics) {
            m.consumed_messages.inc();
            m.consumed_items.add(p.items);
        }
        let is_data = matches!(msg, Message::PData(_));
        if let Err(e) = node.handle(msg, &effect).await {
            if is_data && let Some(m) = &metrics {
                m.failed_messages.inc();
            }
            report_failure(effect.node_id(), &e);
        }
    }
}

/// Node failures are logged once per node and counted in `failed_messages`.
fn report_failure(node: &str, e: &NodeError) {
    thread_local! {
        static REPORTED: std::cell::RefCell<std::collections::HashSet<String>> =
            std::cell::RefCell::new(std::collections::HashSet::new());
    }
    REPORTED.with(|r| {
        if r.borrow_mut().insert(node.to_string()) {
            eprintln!(
                "its: node `{node}` failed to handle a message: {e} (further failures of this node are counted in engine.node.failed_messages, not logged)"
            );
        }
    });
}
