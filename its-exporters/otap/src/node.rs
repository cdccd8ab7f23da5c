//! The `exporter:otap` node. This build writes OTAP streams to a file; the gRPC
//! transport is the next step (an `endpoint` is refused with a clear message).

use std::io::Write;
use std::path::PathBuf;

use its_processors::Interval;
use nodes::{
    ControlMsg, EffectHandler, Exporter, Message, NodeConfig, NodeContext, NodeError, NodeFactory,
    NodeKind, NodeTask,
};
use prost::Message as _;
use serde::Deserialize;

use crate::encode::encode;
use crate::producer::{IpcCompression, Producer};

/// IPC body compression in the configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// zstd (default).
    #[default]
    Zstd,
    /// None.
    None,
}

/// Configuration of `exporter:otap`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtapConfig {
    /// Write `BatchArrowRecords` messages to this file, each prefixed with its length as
    /// a protobuf varint.
    pub file: Option<PathBuf>,
    /// gRPC endpoint (`http://HOST:PORT` or `https://`): not in this build yet.
    pub endpoint: Option<String>,
    /// Arrow IPC body compression: `zstd` (default) or `none`.
    pub compression: Compression,
}

impl NodeConfig for OtapConfig {
    fn check(&self) -> Result<(), String> {
        match (&self.file, &self.endpoint) {
            (Some(_), None) => Ok(()),
            (None, Some(endpoint)) => Err(format!(
                "`endpoint: {endpoint}`: the gRPC transport is not in this build yet; use `file: PATH`"
            )),
            (Some(_), Some(_)) => Err("give `file` or `endpoint`, not both".into()),
            (None, None) => Err("missing `file: PATH` (where to write the OTAP stream)".into()),
        }
    }
}

struct Otap {
    resource: Vec<(String, metric_schema::AttributeValue)>,
    producer: Producer,
    out: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
}

impl Exporter for Otap {
    async fn export(&mut self, msg: Message, _effect: &EffectHandler) -> Result<(), NodeError> {
        let pdata = match msg {
            Message::PData(pdata) => pdata,
            Message::Control(ControlMsg::Shutdown { .. }) => {
                return self.out.flush().map_err(|e| self.io_error(&e));
            }
            Message::Control(_) => return Ok(()),
        };
        let Some(interval) = pdata.downcast_ref::<Interval>() else {
            return Err(NodeError::new(
                "exporter:otap takes intervals from processor:aggregate",
            ));
        };
        if interval.series.is_empty() {
            return Ok(());
        }
        let tables = encode(interval, &self.resource).map_err(|e| NodeError::new(e.to_string()))?;
        let bar = self
            .producer
            .produce(&tables)
            .map_err(|e| NodeError::new(format!("arrow ipc: {e}")))?;
        let bytes = bar.encode_length_delimited_to_vec();
        self.out
            .write_all(&bytes)
            .and_then(|()| self.out.flush())
            .map_err(|e| self.io_error(&e))
    }
}

impl Otap {
    fn io_error(&self, e: &std::io::Error) -> NodeError {
        NodeError::new(format!(
            "exporter:otap cannot write {}: {e}",
            self.path.display()
        ))
    }
}

#[linkme::distributed_slice(nodes::NODE_FACTORIES)]
static OTAP: NodeFactory = NodeFactory {
    type_name: "exporter:otap",
    kind: NodeKind::Exporter,
    description: "OTAP Arrow metrics (BatchArrowRecords) to a file; gRPC in a later build",
    validate: |value| nodes::parse_config::<OtapConfig>(value).map(|_| ()),
    create,
};

fn create(value: &serde_json::Value, ctx: &NodeContext) -> Result<NodeTask, String> {
    let config = nodes::parse_config::<OtapConfig>(value)?;
    let path = config.file.clone().unwrap_or_default();
    let file = std::fs::File::create(&path)
        .map_err(|e| format!("cannot create `{}`: {e}", path.display()))?;
    Ok(NodeTask::exporter(Otap {
        resource: ctx.resource.clone(),
        producer: Producer::new(match config.compression {
            Compression::Zstd => IpcCompression::Zstd,
            Compression::None => IpcCompression::None,
        }),
        out: std::io::BufWriter::new(file),
        path,
    }))
}
