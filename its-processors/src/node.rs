//! The `processor:aggregate` node around [`Aggregator`].

use its_receiver::ReceivedBatch;
use metric_schema::reporter::unix_nanos;
use nodes::{
    ControlMsg, EffectHandler, Message, NodeContext, NodeError, NodeFactory, NodeKind, NodeTask,
    PData, Payload, Processor,
};

use crate::aggregate::{AggregateConfig, Aggregator, Keep};
use crate::model::{Interval, Temporality};

struct Aggregate {
    aggregator: Aggregator,
    config: AggregateConfig,
    interval: std::time::Duration,
    timer_started: bool,
}

impl Aggregate {
    async fn emit(&mut self, effect: &EffectHandler) -> Result<(), NodeError> {
        let ports: Vec<(String, Temporality)> = effect
            .ports()
            .map(|p| {
                let t = self
                    .config
                    .port_temporality
                    .get(p)
                    .copied()
                    .unwrap_or(self.config.temporality);
                (p.to_string(), t)
            })
            .collect();
        let mut wanted: Vec<Temporality> = ports.iter().map(|(_, t)| *t).collect();
        wanted.sort_by_key(|t| *t as u8);
        wanted.dedup();
        let intervals = self.aggregator.take(unix_nanos(), &wanted);
        for (port, temporality) in ports {
            let Some(interval) = intervals.iter().find(|i| i.temporality == temporality) else {
                continue;
            };
            if interval.series.is_empty() {
                continue;
            }
            let items = interval.point_count() as u64;
            effect
                .send_to(&port, PData::any(items, interval.clone()))
                .await?;
        }
        Ok(())
    }
}

impl Processor for Aggregate {
    async fn process(&mut self, msg: Message, effect: &EffectHandler) -> Result<(), NodeError> {
        if !self.timer_started {
            effect.start_periodic_timer(self.interval);
            self.timer_started = true;
        }
        match msg {
            Message::PData(pdata) => {
                let Payload::Any(any) = pdata.payload else {
                    return Err(NodeError::new(
                        "processor:aggregate takes metric snapshots from receiver:internal_telemetry, not synthetic data",
                    ));
                };
                match any.downcast::<ReceivedBatch>() {
                    Ok(received) => {
                        self.aggregator.apply(&received.batch);
                        received.recycle();
                        Ok(())
                    }
                    Err(_) => Err(NodeError::new(
                        "processor:aggregate takes metric snapshots from receiver:internal_telemetry",
                    )),
                }
            }
            Message::Control(ControlMsg::TimerTick | ControlMsg::Shutdown { .. }) => {
                self.emit(effect).await
            }
            Message::Control(ControlMsg::CollectTelemetry) => Ok(()),
        }
    }
}

#[linkme::distributed_slice(nodes::NODE_FACTORIES)]
static AGGREGATE: NodeFactory = NodeFactory {
    type_name: "processor:aggregate",
    kind: NodeKind::Processor,
    description: "merges metric snapshots across cores and time into one interval per output (delta or cumulative)",
    validate: |value| nodes::parse_config::<AggregateConfig>(value).map(|_| ()),
    create,
};

fn create(value: &serde_json::Value, ctx: &NodeContext) -> Result<NodeTask, String> {
    let config = nodes::parse_config::<AggregateConfig>(value)?;
    let keep = Keep::parse(&config.keep)?;
    Ok(NodeTask::processor(Aggregate {
        aggregator: Aggregator::new(keep, unix_nanos()),
        interval: config.interval.unwrap_or(ctx.reporting_interval),
        config,
        timer_started: false,
    }))
}

/// The interval carried by a message from `processor:aggregate`, if it is one.
pub fn interval_of(pdata: &PData) -> Option<&Interval> {
    pdata.downcast_ref::<Interval>()
}
