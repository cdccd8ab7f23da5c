//! What a node can do to the world: send downstream, start timers.

use std::rc::Rc;
use std::time::Duration;

use metric_schema::MetricSetHandle;

use crate::channel::{Sender, TrySendError};
use crate::message::{ControlMsg, PData};
use crate::metrics::{ChannelMetrics, NodeMetrics};

/// Why a message could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The node has no output port of that name.
    #[error("node `{node}` has no output port `{port}` (ports: {known})")]
    UnknownPort {
        /// The node.
        node: String,
        /// The port asked for.
        port: String,
        /// The ports it has.
        known: String,
    },
    /// The node has several output ports and none is the default.
    #[error("node `{node}` has {count} output ports; name one with `send_to`")]
    NoDefaultPort {
        /// The node.
        node: String,
        /// How many ports it has.
        count: usize,
    },
    /// The downstream node is gone (it failed or stopped).
    #[error("node `{node}`: the node downstream of port `{port}` is gone")]
    Closed {
        /// The node.
        node: String,
        /// The port.
        port: String,
    },
}

/// One output port: its name, its channel and the channel's metrics.
pub(crate) struct OutPort {
    pub(crate) name: String,
    pub(crate) sender: Sender<PData>,
    pub(crate) metrics: Option<MetricSetHandle<ChannelMetrics>>,
}

/// Handed to a node: sends downstream and starts timers, and counts what it sends.
pub struct EffectHandler {
    node_id: Rc<str>,
    core: u32,
    ports: Vec<OutPort>,
    metrics: Option<MetricSetHandle<NodeMetrics>>,
    control: Sender<ControlMsg>,
}

impl EffectHandler {
    pub(crate) fn new(
        node_id: Rc<str>,
        core: u32,
        ports: Vec<OutPort>,
        metrics: Option<MetricSetHandle<NodeMetrics>>,
        control: Sender<ControlMsg>,
    ) -> Self {
        EffectHandler {
            node_id,
            core,
            ports,
            metrics,
            control,
        }
    }

    /// The node's id in the pipeline config.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The logical core this instance runs on.
    pub fn core(&self) -> u32 {
        self.core
    }

    /// Names of the output ports (`default` for an unnamed connection).
    pub fn ports(&self) -> impl Iterator<Item = &str> {
        self.ports.iter().map(|p| p.name.as_str())
    }

    /// Sends on the node's only output port (or the one named `default`), waiting while
    /// the channel is full.
    pub async fn send_message(&self, pdata: PData) -> Result<(), SendError> {
        let index = match self.ports.len() {
            1 => 0,
            count => self
                .ports
                .iter()
                .position(|p| p.name == crate::DEFAULT_PORT)
                .ok_or_else(|| SendError::NoDefaultPort {
                    node: self.node_id.to_string(),
                    count,
                })?,
        };
        self.send_on(index, pdata).await
    }

    /// Sends on the named output port, waiting while the channel is full.
    pub async fn send_to(&self, port: &str, pdata: PData) -> Result<(), SendError> {
        let index = self
            .ports
            .iter()
            .position(|p| p.name == port)
            .ok_or_else(|| SendError::UnknownPort {
                node: self.node_id.to_string(),
                port: port.to_string(),
                known: self.ports().collect::<Vec<_>>().join(", "),
            })?;
        self.send_on(index, pdata).await
    }

    async fn send_on(&self, index: usize, pdata: PData) -> Result<(), SendError> {
        let port = &self.ports[index];
        let items = pdata.items;
        let result = match port.sender.try_send(pdata) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(pdata)) => {
                if let Some(m) = &port.metrics {
                    m.full.inc();
                }
                port.sender.send(pdata).await.map_err(|_| ())
            }
            Err(TrySendError::Closed(_)) => Err(()),
        };
        if result.is_err() {
            return Err(SendError::Closed {
                node: self.node_id.to_string(),
                port: port.name.clone(),
            });
        }
        if let Some(m) = &port.metrics {
            m.sent_messages.inc();
        }
        if let Some(m) = &self.metrics {
            m.produced_messages.inc();
            m.produced_items.add(items);
        }
        Ok(())
    }

    /// Delivers [`ControlMsg::TimerTick`] to this node every `every` until the node
    /// stops. Ticks that find the node's control channel full are coalesced.
    pub fn start_periodic_timer(&self, every: Duration) {
        let control = self.control.clone();
        let every = every.max(Duration::from_millis(1));
        tokio::task::spawn_local(async move {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval.tick().await;
            loop {
                interval.tick().await;
                match control.try_send(ControlMsg::TimerTick) {
                    Ok(()) | Err(TrySendError::Full(_)) => {}
                    Err(TrySendError::Closed(_)) => break,
                }
            }
        });
    }
}
