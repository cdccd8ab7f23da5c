//! The configuration model: `otel_dataflow/v1` YAML, as the upstream OTAP dataflow
//! engine lays it out. Unknown fields are errors.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// The only version this build understands.
pub const VERSION: &str = "otel_dataflow/v1";

/// A whole configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Must be `otel_dataflow/v1`.
    pub version: String,
    /// Engine-wide settings and the internal telemetry pipeline.
    #[serde(default)]
    pub engine: Engine,
    /// The engine's own pipelines, by group.
    #[serde(default)]
    pub groups: Unique<Group>,
}

/// `engine`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Engine {
    /// `engine.telemetry`.
    #[serde(default)]
    pub telemetry: Telemetry,
    /// `engine.observability`.
    #[serde(default)]
    pub observability: Observability,
    /// A synthetic topology (`numa:2 core:2`) instead of the machine's.
    #[serde(default)]
    pub topology: Option<String>,
    /// How long a shutdown may take (default `5s`).
    #[serde(default, deserialize_with = "nodes::duration::deserialize_option")]
    pub shutdown_grace: Option<Duration>,
}

/// `engine.telemetry`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Telemetry {
    /// How often each core reports its metric sets (default `1s`).
    #[serde(
        default = "default_interval",
        deserialize_with = "nodes::duration::deserialize"
    )]
    pub reporting_interval: Duration,
    /// Whether the engine records its own node, channel and pipeline metrics.
    #[serde(default = "yes")]
    pub engine_metrics: bool,
    /// `engine.telemetry.logs`.
    #[serde(default)]
    pub logs: Logs,
    /// Resource attributes of everything the ITS exports.
    #[serde(default)]
    pub resource: BTreeMap<String, serde_json::Value>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry {
            reporting_interval: default_interval(),
            engine_metrics: true,
            logs: Logs::default(),
            resource: BTreeMap::new(),
        }
    }
}

fn default_interval() -> Duration {
    Duration::from_secs(1)
}

fn yes() -> bool {
    true
}

/// `engine.telemetry.logs`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logs {
    /// Default level (`RUST_LOG` overrides it).
    #[serde(default)]
    pub level: LogLevel,
    /// Where the events of each context go.
    #[serde(default)]
    pub providers: Providers,
}

/// A log level.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Nothing.
    Off,
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// The default.
    #[default]
    Info,
    /// Chatty.
    Debug,
    /// Everything.
    Trace,
}

/// `engine.telemetry.logs.providers`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Providers {
    /// Threads outside the engine.
    #[serde(default)]
    pub global: Provider,
    /// Engine pipeline threads.
    #[serde(default)]
    pub engine: Provider,
    /// The admin/controller thread.
    #[serde(default)]
    pub admin: Provider,
    /// The internal telemetry pipeline itself.
    #[serde(default = "console_direct")]
    pub internal: Provider,
}

fn console_direct() -> Provider {
    Provider::ConsoleDirect
}

/// Where events go.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// Into the ITS as log records.
    Its,
    /// To stderr through a background thread.
    #[default]
    ConsoleAsync,
    /// To stderr from the calling thread.
    ConsoleDirect,
    /// Through the OpenTelemetry Rust SDK.
    Opentelemetry,
    /// Nowhere.
    Noop,
}

/// `engine.observability`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observability {
    /// The internal telemetry pipeline.
    #[serde(default)]
    pub pipeline: Option<Pipeline>,
}

/// `groups.<group>`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// `groups.<group>.pipelines`.
    pub pipelines: Unique<Pipeline>,
}

/// One pipeline.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// Cores to run an instance on (default: one core, the first).
    #[serde(default)]
    pub cores: Cores,
    /// Capacity of the channels between nodes (default 128).
    #[serde(default = "default_capacity")]
    pub channel_capacity: usize,
    /// Nodes by id.
    pub nodes: Unique<Node>,
    /// How nodes are wired.
    #[serde(default)]
    pub connections: Vec<Connection>,
}

fn default_capacity() -> usize {
    128
}

/// `cores`: `all`, a count, or a list of cores and ranges.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "serde_json::Value")]
pub struct Cores(pub nodes::CoreAllocation);

impl Default for Cores {
    fn default() -> Self {
        Cores(nodes::CoreAllocation::Count(1))
    }
}

const CORES_EXPECTED: &str = "expected `all`, a core count such as `2`, or a list of cores and ranges such as `[0, \"2-3\"]`";

impl TryFrom<serde_json::Value> for Cores {
    type Error = String;

    fn try_from(value: serde_json::Value) -> Result<Self, String> {
        use nodes::CoreAllocation;
        match &value {
            serde_json::Value::String(s) if s == "all" => Ok(Cores(CoreAllocation::AllCores)),
            serde_json::Value::Number(n) => n
                .as_u64()
                .map(|n| Cores(CoreAllocation::Count(n as usize)))
                .ok_or_else(|| format!("`{n}` is not a core count; {CORES_EXPECTED}")),
            serde_json::Value::Array(items) => {
                let mut set = Vec::new();
                for item in items {
                    match item {
                        serde_json::Value::Number(n) => {
                            set.push(n.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(
                                || format!("`{n}` is not a core id; {CORES_EXPECTED}"),
                            )?);
                        }
                        serde_json::Value::String(s) => set.extend(
                            nodes::topology::parse_cpu_list(s)
                                .filter(|l| !l.is_empty())
                                .ok_or_else(|| {
                                    format!("`{s}` is not a core range; {CORES_EXPECTED}")
                                })?,
                        ),
                        other => return Err(format!("`{other}` is not a core; {CORES_EXPECTED}")),
                    }
                }
                Ok(Cores(CoreAllocation::Set(set)))
            }
            other => Err(format!("`{other}`: {CORES_EXPECTED}")),
        }
    }
}

/// One node.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Type name, e.g. `processor:batch` (see `its nodes`).
    #[serde(rename = "type")]
    pub type_name: String,
    /// Node-specific settings; left out, the node's defaults apply.
    #[serde(default)]
    pub config: serde_json::Value,
    /// Free text for people.
    #[serde(default)]
    pub description: Option<String>,
}

/// One connection: `from` (and its `port`) to one or more nodes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    /// Sending node.
    pub from: String,
    /// Output port of the sending node (default `default`).
    #[serde(default)]
    pub port: Option<String>,
    /// Receiving node or nodes.
    pub to: Targets,
}

/// One node id or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "a node id or a list of node ids")]
pub enum Targets {
    /// One node.
    One(String),
    /// Several nodes.
    Many(Vec<String>),
}

impl Targets {
    /// The node ids.
    pub fn ids(&self) -> Vec<&str> {
        match self {
            Targets::One(id) => vec![id.as_str()],
            Targets::Many(ids) => ids.iter().map(String::as_str).collect(),
        }
    }
}

/// A mapping whose keys must be unique: YAML parsers keep the last of two equal keys,
/// which would silently drop a node, a pipeline or a group.
#[derive(Debug)]
pub struct Unique<V>(pub BTreeMap<String, V>);

impl<V> Default for Unique<V> {
    fn default() -> Self {
        Unique(BTreeMap::new())
    }
}

impl<V> std::ops::Deref for Unique<V> {
    type Target = BTreeMap<String, V>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Unique<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<V>(std::marker::PhantomData<V>);

        impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Visit<V> {
            type Value = Unique<V>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a mapping of ids")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    if out.contains_key(&key) {
                        return Err(serde::de::Error::custom(format!(
                            "id `{key}` is used twice; ids must be unique"
                        )));
                    }
                    let value = map.next_value()?;
                    out.insert(key, value);
                }
                Ok(Unique(out))
            }
        }

        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}
