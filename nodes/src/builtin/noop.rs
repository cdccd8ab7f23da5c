//! `exporter:noop`: accepts everything, keeps nothing.

use serde::Deserialize;

use crate::effect::EffectHandler;
use crate::message::Message;
use crate::node::{Exporter, NodeError, NodeTask};

/// `exporter:noop` takes no configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoopConfig {}

struct Noop;

impl Exporter for Noop {
    async fn export(&mut self, _msg: Message, _effect: &EffectHandler) -> Result<(), NodeError> {
        Ok(())
    }
}

super::node_factory!(
    NOOP,
    "exporter:noop",
    Exporter,
    "drops every message (its node metrics still count them)",
    NoopConfig,
    |_config: NoopConfig, _ctx: &crate::NodeContext| Ok::<_, String>(NodeTask::exporter(Noop))
);

impl crate::factory::NodeConfig for NoopConfig {}
