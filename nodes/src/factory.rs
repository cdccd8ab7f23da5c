//! Node factories, collected at link time and keyed by type names such as
//! `receiver:traffic_generator`.

use serde::de::DeserializeOwned;

use crate::node::NodeTask;

/// Receiver, processor or exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeKind {
    /// A source: no input.
    Receiver,
    /// Input and outputs.
    Processor,
    /// A sink: no output.
    Exporter,
}

impl NodeKind {
    /// `receiver`, `processor` or `exporter`: the prefix of type names.
    pub const fn as_str(self) -> &'static str {
        match self {
            NodeKind::Receiver => "receiver",
            NodeKind::Processor => "processor",
            NodeKind::Exporter => "exporter",
        }
    }
}

/// What a factory knows when it builds a node.
#[derive(Debug, Clone)]
pub struct NodeContext {
    /// Node id from the config.
    pub node_id: String,
    /// Pipeline group and pipeline id.
    pub pipeline: (String, String),
    /// Logical core of the instance.
    pub core: u32,
    /// NUMA node of that core.
    pub numa_node: u32,
    /// How often the engine reports its metric sets (the default cadence of nodes that
    /// work per interval).
    pub reporting_interval: std::time::Duration,
    /// Resource attributes (`engine.telemetry.resource`), for exporters.
    pub resource: Vec<(String, metric_schema::AttributeValue)>,
}

/// Builds nodes of one type.
pub struct NodeFactory {
    /// Type name, `kind:name`.
    pub type_name: &'static str,
    /// What the node is.
    pub kind: NodeKind,
    /// One line for `its nodes`.
    pub description: &'static str,
    /// Checks a `config` block (`null` when the YAML leaves it out); the message names
    /// the offending field.
    pub validate: fn(&serde_json::Value) -> Result<(), String>,
    /// Builds a node on the instance's thread.
    pub create: fn(&serde_json::Value, &NodeContext) -> Result<NodeTask, String>,
}

impl std::fmt::Debug for NodeFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeFactory")
            .field("type_name", &self.type_name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Every node factory linked into the binary.
#[linkme::distributed_slice]
pub static NODE_FACTORIES: [NodeFactory];

/// The factories, sorted by type name; an error names a type registered twice or a
/// type name whose prefix does not match its kind.
pub fn factories() -> Result<Vec<&'static NodeFactory>, String> {
    let mut all: Vec<&'static NodeFactory> = NODE_FACTORIES.iter().collect();
    all.sort_by_key(|f| f.type_name);
    for pair in all.windows(2) {
        if pair[0].type_name == pair[1].type_name {
            return Err(format!(
                "node type `{}` is registered twice",
                pair[0].type_name
            ));
        }
    }
    for f in &all {
        let prefix = format!("{}:", f.kind.as_str());
        if !f.type_name.starts_with(&prefix) || f.type_name.len() == prefix.len() {
            return Err(format!(
                "node type `{}` must be named `{prefix}<name>`",
                f.type_name
            ));
        }
    }
    Ok(all)
}

/// The factory of `type_name`.
pub fn factory(type_name: &str) -> Option<&'static NodeFactory> {
    NODE_FACTORIES.iter().find(|f| f.type_name == type_name)
}

/// A node's configuration type: deserialized from the `config` block, then checked.
pub trait NodeConfig: DeserializeOwned + Default {
    /// Checks what deserialization cannot (ranges, combinations); the message names
    /// the field.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Deserializes and checks a node's `config` block; a missing block (`null`) means the
/// defaults.
pub fn parse_config<C: NodeConfig>(value: &serde_json::Value) -> Result<C, String> {
    let config = if value.is_null() {
        C::default()
    } else {
        C::deserialize(value).map_err(|e| e.to_string())?
    };
    config.check()?;
    Ok(config)
}
