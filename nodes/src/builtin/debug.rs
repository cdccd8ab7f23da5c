//! `processor:debug`: counts what passes and optionally prints a sample.

use serde::Deserialize;

use crate::effect::EffectHandler;
use crate::message::{Message, Payload};
use crate::node::{NodeError, NodeTask, Processor};

/// Configuration of `processor:debug`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebugConfig {
    /// Print one message out of this many to stderr (none when absent).
    pub sample_every: Option<u64>,
}

struct Debug {
    id: String,
    sample_every: Option<u64>,
    seen: u64,
    items: u64,
}

impl Processor for Debug {
    async fn process(&mut self, msg: Message, effect: &EffectHandler) -> Result<(), NodeError> {
        match msg {
            Message::PData(pdata) => {
                self.seen += 1;
                self.items += pdata.items;
                if let Some(n) = self.sample_every.filter(|n| self.seen.is_multiple_of(*n)) {
                    let body = match &pdata.payload {
                        Payload::Synthetic { bytes } => format!("synthetic, {bytes} bytes"),
                        Payload::Any(_) | Payload::Mergeable(_) => "opaque".to_string(),
                    };
                    eprintln!(
                        "debug `{}` core {}: message {} (1 in {n}): {} items, {body}",
                        self.id,
                        effect.core(),
                        self.seen,
                        pdata.items
                    );
                }
                effect.send_message(pdata).await?;
            }
            Message::Control(crate::ControlMsg::Shutdown { .. }) => {
                if self.sample_every.is_some() {
                    eprintln!(
                        "debug `{}` core {}: {} messages, {} items",
                        self.id,
                        effect.core(),
                        self.seen,
                        self.items
                    );
                }
            }
            Message::Control(_) => {}
        }
        Ok(())
    }
}

super::node_factory!(
    DEBUG,
    "processor:debug",
    Processor,
    "passes messages through, counting them; prints one in `sample_every` to stderr",
    DebugConfig,
    |config: DebugConfig, ctx: &crate::NodeContext| {
        Ok::<_, String>(NodeTask::processor(Debug {
            id: ctx.node_id.clone(),
            sample_every: config.sample_every,
            seen: 0,
            items: 0,
        }))
    }
);

impl crate::factory::NodeConfig for DebugConfig {
    fn check(&self) -> Result<(), String> {
        if self.sample_every == Some(0) {
            return Err("`sample_every` must be at least 1".to_string());
        }
        Ok(())
    }
}
