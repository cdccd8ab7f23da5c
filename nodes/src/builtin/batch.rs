//! `processor:batch`: merges small synthetic batches into bigger ones, bounded by size
//! and by time.

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
    timer_started: bool,
}

impl Batch {
    async fn flush(&mut self, effect: &EffectHandler) -> Result<(), NodeError> {
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
    "merges synthetic batches up to `max_items` items or `timeout`",
    BatchConfig,
    |config: BatchConfig, _ctx: &crate::NodeContext| {
        Ok::<_, String>(NodeTask::processor(Batch {
            config,
            items: 0,
            bytes: 0,
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
