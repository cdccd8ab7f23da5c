//! From a parsed configuration to pipelines ready to run: node types, node configs,
//! connections, graph shape and core placement, each error with its YAML path.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nodes::{CorePlacement, EdgeSpec, EngineSettings, NodeKind, NodeSpec, PipelineSpec, Topology};

use crate::config::{Config, Pipeline, VERSION};
use crate::error::{ConfigError, ConfigErrors, locate};

/// What `its run` starts.
#[derive(Debug)]
pub struct Plan {
    /// Engine settings.
    pub settings: EngineSettings,
    /// The topology pipelines are placed on.
    pub topology: Topology,
    /// Each pipeline and its cores.
    pub pipelines: Vec<(Arc<PipelineSpec>, Vec<CorePlacement>)>,
    /// The internal telemetry pipeline, if the configuration has one.
    pub internal: Option<Arc<PipelineSpec>>,
}

struct Errors<'a> {
    file: &'a Path,
    text: &'a str,
    list: Vec<ConfigError>,
}

impl Errors<'_> {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        self.list.push(ConfigError {
            file: self.file.to_path_buf(),
            position: locate(self.text, &path),
            path,
            message: message.into(),
        });
    }
}

/// Validates `config` (read from `file`, whose text is `text`) and places its pipelines
/// on `topology`.
pub fn plan(
    file: &Path,
    text: &str,
    config: &Config,
    topology: Topology,
) -> Result<Plan, ConfigErrors> {
    let mut errors = Errors {
        file,
        text,
        list: Vec::new(),
    };
    if config.version != VERSION {
        errors.push(
            "version",
            format!(
                "unsupported version `{}`; expected `{VERSION}`",
                config.version
            ),
        );
    }
    let telemetry = &config.engine.telemetry;
    if telemetry.reporting_interval < Duration::from_millis(1) {
        errors.push(
            "engine.telemetry.reporting_interval",
            "the reporting interval must be at least 1ms",
        );
    }
    let settings = EngineSettings {
        reporting_interval: telemetry.reporting_interval,
        telemetry: telemetry.engine_metrics,
        shutdown_grace: config
            .engine
            .shutdown_grace
            .unwrap_or(Duration::from_secs(5)),
        resource: resource_attributes(&mut errors, &telemetry.resource),
    };

    let internal = match config.engine.observability.pipeline.as_ref() {
        Some(p) => {
            let path = "engine.observability.pipeline";
            let receivers: Vec<&String> = p
                .nodes
                .iter()
                .filter(|(_, n)| n.type_name == its_receiver::TYPE_NAME)
                .map(|(id, _)| id)
                .collect();
            if receivers.len() > 1 {
                errors.push(
                    format!("{path}.nodes.{}", receivers[1]),
                    format!(
                        "a second `{}` (`{}` is the first): the internal pipeline has exactly one",
                        its_receiver::TYPE_NAME,
                        receivers[0]
                    ),
                );
            }
            check_pipeline(&mut errors, path, "engine", "observability", p)
        }
        None => Some(builtin_internal_pipeline()),
    };

    if config.groups.values().all(|g| g.pipelines.is_empty()) {
        errors.push(
            "groups",
            "no pipeline to run: add `groups.<group>.pipelines.<pipeline>` with `nodes` and `connections`",
        );
    }
    let mut pipelines = Vec::new();
    for (group_id, group) in config.groups.iter() {
        for (pipeline_id, pipeline) in group.pipelines.iter() {
            let path = format!("groups.{group_id}.pipelines.{pipeline_id}");
            for (id, node) in pipeline.nodes.iter() {
                if node.type_name == its_receiver::TYPE_NAME {
                    errors.push(
                        format!("{path}.nodes.{id}.type"),
                        format!(
                            "`{}` runs only in `engine.observability.pipeline`",
                            its_receiver::TYPE_NAME
                        ),
                    );
                }
            }
            let Some(spec) = check_pipeline(&mut errors, &path, group_id, pipeline_id, pipeline)
            else {
                continue;
            };
            match pipeline.cores.0.resolve(&topology) {
                Ok(placements) => pipelines.push((Arc::new(spec), placements)),
                Err(message) => errors.push(format!("{path}.cores"), message),
            }
        }
    }
    if !errors.list.is_empty() {
        return Err(ConfigErrors(errors.list));
    }
    Ok(Plan {
        settings,
        topology,
        pipelines,
        internal: internal.map(Arc::new),
    })
}

/// The internal pipeline when the configuration has none: the engine's metrics,
/// aggregated across cores, printed as a table every reporting interval.
fn builtin_internal_pipeline() -> PipelineSpec {
    let none = serde_json::Value::Null;
    PipelineSpec::chain(
        "engine",
        "observability",
        64,
        vec![
            NodeSpec::new("telemetry", its_receiver::TYPE_NAME, none.clone()),
            NodeSpec::new("aggregate", "processor:aggregate", none.clone()),
            NodeSpec::new("console", "exporter:console", none),
        ],
    )
}

/// `engine.telemetry.resource` as attribute values: strings, integers, floats, booleans.
fn resource_attributes(
    errors: &mut Errors<'_>,
    resource: &BTreeMap<String, serde_json::Value>,
) -> Vec<(String, metric_schema::AttributeValue)> {
    use metric_schema::AttributeValue;
    let mut out = Vec::new();
    for (key, value) in resource {
        let v = match value {
            serde_json::Value::String(s) => AttributeValue::Str(s.clone().into()),
            serde_json::Value::Bool(b) => AttributeValue::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => AttributeValue::Int(i),
                None => AttributeValue::Double(n.as_f64().unwrap_or(f64::NAN)),
            },
            other => {
                errors.push(
                    format!("engine.telemetry.resource.{key}"),
                    format!("`{other}` is not a string, number or boolean"),
                );
                continue;
            }
        };
        out.push((key.clone(), v));
    }
    out
}

fn known_types() -> String {
    nodes::factories()
        .unwrap_or_default()
        .iter()
        .map(|f| f.type_name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[expect(
    clippy::too_many_lines,
    reason = "one check after the other, in document order"
)]
fn check_pipeline(
    errors: &mut Errors<'_>,
    path: &str,
    group: &str,
    name: &str,
    pipeline: &Pipeline,
) -> Option<PipelineSpec> {
    let before = errors.list.len();
    if pipeline.nodes.is_empty() {
        errors.push(
            format!("{path}.nodes"),
            "a pipeline needs at least one node",
        );
        return None;
    }
    if pipeline.channel_capacity == 0 {
        errors.push(
            format!("{path}.channel_capacity"),
            "the channel capacity must be at least 1",
        );
    }
    let mut kinds: BTreeMap<&str, NodeKind> = BTreeMap::new();
    for (id, node) in pipeline.nodes.iter() {
        let node_path = format!("{path}.nodes.{id}");
        match nodes::factory(&node.type_name) {
            None => errors.push(
                format!("{node_path}.type"),
                format!(
                    "unknown node type `{}`; known types: {}",
                    node.type_name,
                    known_types()
                ),
            ),
            Some(factory) => {
                kinds.insert(id, factory.kind);
                if let Err(message) = (factory.validate)(&node.config) {
                    errors.push(format!("{node_path}.config"), message);
                }
            }
        }
    }
    let ids: Vec<&str> = pipeline.nodes.keys().map(String::as_str).collect();
    let mut edges: Vec<(&str, String, &str)> = Vec::new();
    for (i, connection) in pipeline.connections.iter().enumerate() {
        let c_path = format!("{path}.connections[{i}]");
        let from = connection.from.as_str();
        let port = connection
            .port
            .clone()
            .unwrap_or_else(|| nodes::DEFAULT_PORT.to_string());
        if !ids.contains(&from) {
            errors.push(
                format!("{c_path}.from"),
                format!(
                    "no node named `{from}` in this pipeline (nodes: {})",
                    ids.join(", ")
                ),
            );
            continue;
        }
        if kinds.get(from) == Some(&NodeKind::Exporter) {
            errors.push(
                format!("{c_path}.from"),
                format!("`{from}` is an exporter: an exporter has no output"),
            );
        }
        let targets = connection.to.ids();
        if targets.len() > 1 {
            errors.push(
                format!("{c_path}.to"),
                format!(
                    "port `{port}` of `{from}` cannot feed {} nodes: give each its own connection with a `port`",
                    targets.len()
                ),
            );
        }
        for to in targets {
            if !ids.contains(&to) {
                errors.push(
                    format!("{c_path}.to"),
                    format!(
                        "no node named `{to}` in this pipeline (nodes: {})",
                        ids.join(", ")
                    ),
                );
                continue;
            }
            if kinds.get(to) == Some(&NodeKind::Receiver) {
                errors.push(
                    format!("{c_path}.to"),
                    format!("`{to}` is a receiver: a receiver has no input"),
                );
            }
            if edges.iter().any(|(f, p, _)| *f == from && *p == port) {
                errors.push(
                    c_path.clone(),
                    format!("port `{port}` of `{from}` is connected twice: give each connection its own `port`"),
                );
            }
            edges.push((from, port.clone(), to));
        }
    }
    if errors.list.len() > before {
        return None;
    }
    // Shape: at least one receiver; every other node fed; every non-exporter feeding.
    if !kinds.values().any(|k| *k == NodeKind::Receiver) {
        errors.push(
            format!("{path}.nodes"),
            "the pipeline has no receiver: add a `receiver:...` node",
        );
    }
    for (id, kind) in &kinds {
        let has_input = edges.iter().any(|(_, _, to)| to == id);
        let has_output = edges.iter().any(|(from, _, _)| from == id);
        if *kind != NodeKind::Receiver && !has_input {
            errors.push(
                format!("{path}.nodes.{id}"),
                format!(
                    "{} `{id}` has no input: connect a node to it",
                    kind.as_str()
                ),
            );
        }
        if *kind != NodeKind::Exporter && !has_output {
            errors.push(
                format!("{path}.nodes.{id}"),
                format!(
                    "{} `{id}` has no output: connect it to a node",
                    kind.as_str()
                ),
            );
        }
    }
    let order = match topological_order(&ids, &edges) {
        Ok(order) => order,
        Err(cycle) => {
            errors.push(
                format!("{path}.connections"),
                format!("the connections form a cycle: {}", cycle.join(" -> ")),
            );
            return None;
        }
    };
    if errors.list.len() > before {
        return None;
    }
    let index = |id: &str| {
        order
            .iter()
            .position(|o| *o == id)
            .expect("every node is ordered")
    };
    Some(PipelineSpec {
        group: group.to_string(),
        name: name.to_string(),
        nodes: order
            .iter()
            .map(|id| NodeSpec {
                id: (*id).to_string(),
                type_name: pipeline.nodes[*id].type_name.clone(),
                config: pipeline.nodes[*id].config.clone(),
            })
            .collect(),
        edges: edges
            .iter()
            .map(|(from, port, to)| EdgeSpec {
                from: index(from),
                port: port.clone(),
                to: index(to),
            })
            .collect(),
        channel_capacity: pipeline.channel_capacity,
    })
}

/// Nodes with sources first; on a cycle, the nodes along it.
fn topological_order<'a>(
    ids: &[&'a str],
    edges: &[(&'a str, String, &'a str)],
) -> Result<Vec<&'a str>, Vec<&'a str>> {
    let mut indegree: BTreeMap<&str, usize> = ids.iter().map(|id| (*id, 0)).collect();
    for (_, _, to) in edges {
        *indegree.entry(to).or_default() += 1;
    }
    let mut ready: Vec<&str> = indegree
        .iter()
        .filter(|(_, d)| **d == 0)
        .map(|(id, _)| *id)
        .collect();
    let mut order = Vec::with_capacity(ids.len());
    while let Some(id) = ready.pop() {
        order.push(id);
        for (_, _, to) in edges.iter().filter(|(from, _, _)| *from == id) {
            let d = indegree.get_mut(to).expect("known node");
            *d -= 1;
            if *d == 0 {
                ready.push(to);
            }
        }
    }
    if order.len() == ids.len() {
        return Ok(order);
    }
    // Every node left over still has an unplaced predecessor: walking predecessors
    // must come back to a node already seen, and that loop is a cycle.
    let placed: BTreeSet<&str> = order.iter().copied().collect();
    let mut node = *ids
        .iter()
        .find(|id| !placed.contains(*id))
        .expect("a node is left");
    let mut path = vec![node];
    loop {
        let Some(prev) = edges
            .iter()
            .find(|(from, _, to)| *to == node && !placed.contains(from))
            .map(|(from, _, _)| *from)
        else {
            return Err(path);
        };
        if let Some(start) = path.iter().position(|n| *n == prev) {
            // Edges run path[k+1] -> path[k], and prev -> path[last].
            let mut cycle = vec![prev];
            cycle.extend(path[start..].iter().rev());
            return Err(cycle);
        }
        path.push(prev);
        node = prev;
    }
}
