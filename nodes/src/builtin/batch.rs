//! `processor:batch`: merges small batches into bigger ones, bounded by size (items)
//! and by time: synthetic batches, and any [`Mergeable`](crate::Mergeable) payload (the
//! ITS's intervals). Other payloads pass through.

use std::time::Duration;

use serde::Deserialize;

use crate::effect::EffectHandler;
use crate::message::{ControlMsg, Message, PData, Payload};
use crate::node::{NodeError, NodeTask, Processor};

/// Configuration of `processor:batch`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Send a batch once it holds this many items.
    pub max_items: u64,
    /// Send what is held at least this often.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub timeout: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_items: 8192,
            timeout: Duration::from_millis(200),
        }
    }
}

struct Batch {
    config: BatchConfig,
    items: u64,
    bytes: usize,
    /// A mergeable payload being built, and its items.
    held: Option<(Box<dyn crate::message::Mergeable>, u64)>,
    timer_started: bool,
}

impl Batch {
    async fn flush(&mut self, effect: &EffectHandler) -> Result<(), NodeError> {
        if let Some((held, items)) = self.held.take() {
            effect
                .send_message(PData {
                    items,
                    payload: Payload::Mergeable(held),
                })
                .await?;
        }
        if self.items == 0 {
            return Ok(());
        }
        let out = PData::synthetic(self.items, self.bytes);
        self.items = 0;
        self.bytes = 0;
        effect.send_message(out).await?;
        Ok(())
    }
}

impl Processor for Batch {
    async fn process(&mut self, msg: Message, effect: &EffectHandler) -> Result<(), NodeError> {
        if !self.timer_started {
            effect.start_periodic_timer(self.config.timeout);
            self.timer_started = true;
        }
        match msg {
            Message::PData(pdata) => match pdata.payload {
                Payload::Synthetic { bytes } => {
                    self.items += pdata.items;
                    self.bytes += bytes;
                    if self.items >= self.config.max_items {
                        self.flush(effect).await?;
                    }
                }
                Payload::Mergeable(value) => {
                    let items = pdata.items;
                    let rejected = if let Some((held, held_items)) = &mut self.held {
                        match held.merge(value) {
                            Ok(()) => {
                                *held_items += items;
                                None
                            }
                            Err(back) => Some(back),
                        }
                    } else {
                        self.held = Some((value, items));
                        None
                    };
                    if let Some(back) = rejected {
                        // Cannot merge with what is held: send that, hold this.
                        self.flush(effect).await?;
                        self.held = Some((back, items));
                    }
                    if self
                        .held
                        .as_ref()
                        .is_some_and(|(_, n)| *n >= self.config.max_items)
                    {
                        self.flush(effect).await?;
                    }
                }
                // Opaque payloads cannot be merged: flush what is held, pass them on.
                Payload::Any(_) => {
                    self.flush(effect).await?;
                    effect.send_message(pdata).await?;
                }
            },
            Message::Control(ControlMsg::TimerTick | ControlMsg::Shutdown { .. }) => {
                self.flush(effect).await?;
            }
            Message::Control(ControlMsg::CollectTelemetry) => {}
        }
        Ok(())
    }
}

super::node_factory!(
    BATCH,
    "processor:batch",
    Processor,
    "merges synthetic or mergeable batches (ITS intervals) up to `max_items` items or `timeout`",
    BatchConfig,
    |config: BatchConfig, _ctx: &crate::NodeContext| {
        Ok::<_, String>(NodeTask::processor(Batch {
            config,
            items: 0,
            bytes: 0,
            held: None,
            timer_started: false,
        }))
    }
);

impl crate::factory::NodeConfig for BatchConfig {
    fn check(&self) -> Result<(), String> {
        if self.max_items == 0 {
            return Err("`max_items` must be at least 1".to_string());
        }
        if self.timeout.is_zero() {
            return Err("`timeout` must be longer than zero".to_string());
        }
        Ok(())
    }
}
