//! `receiver:traffic_generator`: synthetic batches at a configured rate, or as fast as
//! the pipeline takes them.

use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::effect::EffectHandler;
use crate::message::{ControlMsg, PData};
use crate::node::{ControlChannel, NodeError, NodeTask, Receiver};

/// Configuration of `receiver:traffic_generator`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrafficConfig {
    /// Batches per second per core; absent: as fast as the pipeline takes them.
    pub batches_per_second: Option<f64>,
    /// Items in each batch.
    pub batch_size: u64,
    /// Bytes each item stands for.
    pub item_bytes: usize,
    /// Stop after this many batches (per core); the pipeline instance then drains and
    /// ends. Absent: run until shutdown.
    pub max_batches: Option<u64>,
}

impl Default for TrafficConfig {
    fn default() -> Self {
        TrafficConfig {
            batches_per_second: None,
            batch_size: 100,
            item_bytes: 64,
            max_batches: None,
        }
    }
}

struct TrafficGenerator {
    config: TrafficConfig,
}

/// Between two yields to the runtime when running flat out, so that control messages
/// and the telemetry tick are not starved.
const BURST: u64 = 64;

impl Receiver for TrafficGenerator {
    async fn run(
        self: Box<Self>,
        control: ControlChannel,
        effect: EffectHandler,
    ) -> Result<(), NodeError> {
        let config = self.config;
        let period = config
            .batches_per_second
            .map(|r| Duration::from_secs_f64(1.0 / r));
        let start = Instant::now();
        let mut sent = 0u64;
        loop {
            if config.max_batches.is_some_and(|max| sent >= max) {
                // Done: ending closes the output, the pipeline drains and ends.
                return Ok(());
            }
            if let Some(period) = period {
                let due = start + period.mul_f64(sent as f64);
                if let Ok(Some(ControlMsg::Shutdown { .. }) | None) =
                    tokio::time::timeout_at(due.into(), control.recv()).await
                {
                    return Ok(());
                }
            } else if sent.is_multiple_of(BURST) {
                tokio::task::yield_now().await;
                while let Some(msg) = control.try_recv() {
                    if matches!(msg, ControlMsg::Shutdown { .. }) {
                        return Ok(());
                    }
                }
            }
            let batch = PData::synthetic(
                config.batch_size,
                config.batch_size as usize * config.item_bytes,
            );
            effect.send_message(batch).await?;
            sent += 1;
        }
    }
}

super::node_factory!(
    TRAFFIC_GENERATOR,
    "receiver:traffic_generator",
    Receiver,
    "synthetic batches at `batches_per_second`, or as fast as the pipeline takes them",
    TrafficConfig,
    |config: TrafficConfig, _ctx: &crate::NodeContext| {
        Ok::<_, String>(NodeTask::receiver(TrafficGenerator { config }))
    }
);

impl crate::factory::NodeConfig for TrafficConfig {
    fn check(&self) -> Result<(), String> {
        if let Some(rate) = self.batches_per_second
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(format!(
                "`batches_per_second` must be a positive number, not {rate}"
            ));
        }
        if self.batch_size == 0 {
            return Err("`batch_size` must be at least 1".to_string());
        }
        Ok(())
    }
}
