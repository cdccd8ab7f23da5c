//! `processor:views`: select points by metric set, metric and attribute values, then
//! rename, re-describe or drop the metric, or drop attributes (series that become
//! identical are aggregated again).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use metric_schema::{
    AttributeField, AttributesDescriptor, InstrumentKind, MetricsDescriptor, MetricsField,
};
use nodes::{
    ControlMsg, EffectHandler, Message, NodeConfig, NodeContext, NodeError, NodeFactory, NodeKind,
    NodeTask, PData, Processor,
};
use serde::Deserialize;

use crate::model::{Identity, Interval, Point, Series, Value};

/// Which points a view applies to; every criterion given must match.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Select {
    /// Metric set name.
    pub set: Option<String>,
    /// Metric name within the set.
    pub metric: Option<String>,
    /// Attribute values, by key (`core.id` and `numa.node` included when kept).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// One view.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct View {
    /// Which points.
    #[serde(default)]
    pub select: Select,
    /// New metric name.
    pub rename: Option<String>,
    /// New brief.
    pub describe: Option<String>,
    /// Drop the points.
    #[serde(default)]
    pub drop: bool,
    /// Attribute keys to drop (points that become identical are merged).
    #[serde(default)]
    pub drop_attributes: Vec<String>,
}

/// Configuration of `processor:views`; the first matching view applies.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ViewsConfig {
    /// The views, in order.
    pub views: Vec<View>,
}

impl NodeConfig for ViewsConfig {
    fn check(&self) -> Result<(), String> {
        let registry = metric_schema::Registry::linked().map_err(|e| e.to_string())?;
        // (set, new name) -> index of the view that renamed into it
        let mut renamed: BTreeMap<(String, String), usize> = BTreeMap::new();
        for (i, view) in self.views.iter().enumerate() {
            if view.drop && (view.rename.is_some() || view.describe.is_some()) {
                return Err(format!(
                    "views[{i}]: `drop` cannot be combined with `rename` or `describe`"
                ));
            }
            let Some(new_name) = &view.rename else {
                continue;
            };
            let (Some(set), Some(metric)) = (&view.select.set, &view.select.metric) else {
                return Err(format!(
                    "views[{i}]: `rename` needs `select.set` and `select.metric` (one metric gets one new name)"
                ));
            };
            if let Some(descriptor) = registry.metric_set(set) {
                if !descriptor.fields.iter().any(|f| f.name == *metric) {
                    return Err(format!(
                        "views[{i}]: metric set `{set}` has no metric `{metric}`"
                    ));
                }
                if descriptor
                    .fields
                    .iter()
                    .any(|f| f.name == *new_name && f.name != *metric)
                {
                    return Err(format!(
                        "views[{i}]: renaming `{set}.{metric}` to `{new_name}` collides with the metric of that name in `{set}`"
                    ));
                }
            }
            if let Some(first) = renamed.insert((set.clone(), new_name.clone()), i) {
                return Err(format!(
                    "views[{i}]: `{set}.{metric}` is renamed to `{new_name}`, which views[{first}] already gives another metric of `{set}`"
                ));
            }
        }
        Ok(())
    }
}

impl View {
    fn matches(&self, series: &Series, pairs: &[(String, String)], field: &MetricsField) -> bool {
        let s = &self.select;
        s.set.as_deref().is_none_or(|n| n == series.descriptor.name)
            && s.metric.as_deref().is_none_or(|m| m == field.name)
            && s.attributes
                .iter()
                .all(|(k, v)| pairs.iter().any(|(pk, pv)| pk == k && pv == v))
    }
}

/// Applies views to intervals; keeps the descriptors it derives, one per (set, views
/// applied), for the life of the process.
struct Views {
    config: ViewsConfig,
    derived: HashMap<(usize, Vec<Option<usize>>), &'static MetricsDescriptor>,
    derived_attributes: HashMap<(usize, Vec<usize>), &'static AttributesDescriptor>,
}

/// An output series: its descriptor's address, its attributes after the views, and
/// when it was taken.
type SeriesKey = (usize, Vec<(String, String)>, u64);

fn merge(into: &mut Value, from: &Value, kind: InstrumentKind) {
    match (into, from) {
        (Value::U64(a), Value::U64(b)) if kind != InstrumentKind::Gauge => *a = a.wrapping_add(*b),
        (Value::I64(a), Value::I64(b)) if kind != InstrumentKind::Gauge => *a = a.wrapping_add(*b),
        (Value::F64(a), Value::F64(b)) if kind != InstrumentKind::Gauge => *a += b,
        (Value::Mmsc(a), Value::Mmsc(b)) => a.merge(b),
        (Value::Histogram(a), Value::Histogram(b)) => a.merge_owned(b),
        // Gauges: the last series wins, as the last report would.
        (a, b) => *a = b.clone(),
    }
}

impl Views {
    /// An attribute descriptor with only the keys at positions `kept` (flattened).
    fn derive_attributes(
        &mut self,
        attributes: &'static AttributesDescriptor,
        kept: &[usize],
    ) -> &'static AttributesDescriptor {
        let key = (std::ptr::from_ref(attributes) as usize, kept.to_vec());
        self.derived_attributes.entry(key).or_insert_with(|| {
            let keys = attributes.keys();
            let fields: Vec<AttributeField> = kept.iter().map(|i| *keys[*i]).collect();
            Box::leak(Box::new(AttributesDescriptor {
                fields: Box::leak(fields.into_boxed_slice()),
                ..*attributes
            }))
        })
    }

    /// The descriptor of `descriptor` after the views chosen per field.
    fn derive(
        &mut self,
        descriptor: &'static MetricsDescriptor,
        chosen: &[Option<usize>],
    ) -> &'static MetricsDescriptor {
        if chosen.iter().all(|c| {
            c.is_none_or(|v| {
                let view = &self.config.views[v];
                view.rename.is_none() && view.describe.is_none()
            })
        }) {
            return descriptor;
        }
        let key = (std::ptr::from_ref(descriptor) as usize, chosen.to_vec());
        let views = &self.config.views;
        self.derived.entry(key).or_insert_with(|| {
            let fields: Vec<MetricsField> = descriptor
                .fields
                .iter()
                .zip(chosen)
                .map(|(field, view)| {
                    let mut field = *field;
                    if let Some(view) = view.map(|v| &views[v]) {
                        if let Some(name) = &view.rename {
                            field.name = Box::leak(name.clone().into_boxed_str());
                        }
                        if let Some(brief) = &view.describe {
                            field.brief = Box::leak(brief.clone().into_boxed_str());
                        }
                    }
                    field
                })
                .collect();
            Box::leak(Box::new(MetricsDescriptor {
                fields: Box::leak(fields.into_boxed_slice()),
                ..*descriptor
            }))
        })
    }

    fn apply(&mut self, interval: &Interval) -> Interval {
        // Output series by (descriptor, identity after dropped attributes).
        let mut out: Vec<Series> = Vec::new();
        // Series taken at different times (intervals `processor:batch` merged) never
        // merge: the end is part of the key.
        let mut index: HashMap<SeriesKey, usize> = HashMap::new();
        for series in &interval.series {
            let pairs = series.identity.pairs();
            let chosen: Vec<Option<usize>> = series
                .descriptor
                .fields
                .iter()
                .map(|field| {
                    self.config
                        .views
                        .iter()
                        .position(|v| v.matches(series, &pairs, field))
                })
                .collect();
            // Attributes dropped for this series: those of the views chosen by its points.
            let mut dropped: Vec<String> = chosen
                .iter()
                .flatten()
                .flat_map(|v| self.config.views[*v].drop_attributes.iter().cloned())
                .collect();
            dropped.sort_unstable();
            dropped.dedup();
            let descriptor = self.derive(series.descriptor, &chosen);
            let identity = if dropped.is_empty() {
                Arc::clone(&series.identity)
            } else {
                let keys = series.identity.attributes.keys();
                let kept: Vec<usize> = (0..keys.len())
                    .filter(|i| !dropped.iter().any(|d| d == keys[*i].key))
                    .collect();
                let attributes = self.derive_attributes(series.identity.attributes, &kept);
                let values = kept
                    .iter()
                    .map(|i| series.identity.values[*i].clone())
                    .collect();
                Arc::new(Identity {
                    attributes,
                    values,
                    core: series
                        .identity
                        .core
                        .filter(|_| !dropped.iter().any(|d| d == "core.id")),
                    numa_node: series
                        .identity
                        .numa_node
                        .filter(|_| !dropped.iter().any(|d| d == "numa.node")),
                })
            };
            let key_pairs: Vec<(String, String)> = identity
                .pairs()
                .into_iter()
                .filter(|(k, _)| !dropped.contains(k))
                .collect();
            let slot = *index
                .entry((
                    std::ptr::from_ref(descriptor) as usize,
                    key_pairs,
                    series.end_unix_nanos,
                ))
                .or_insert_with(|| {
                    out.push(Series {
                        descriptor,
                        identity: Arc::clone(&identity),
                        start_unix_nanos: series.start_unix_nanos,
                        end_unix_nanos: series.end_unix_nanos,
                        points: Vec::new(),
                    });
                    out.len() - 1
                });
            let target = &mut out[slot];
            target.start_unix_nanos = target.start_unix_nanos.min(series.start_unix_nanos);
            for p in &series.points {
                if chosen[usize::from(p.field)].is_some_and(|v| self.config.views[v].drop) {
                    continue;
                }
                let kind = descriptor.fields[usize::from(p.field)].instrument;
                match target.points.iter_mut().find(|q| q.field == p.field) {
                    Some(q) => merge(&mut q.value, &p.value, kind),
                    None => target.points.push(Point {
                        field: p.field,
                        value: p.value.clone(),
                    }),
                }
            }
        }
        out.retain(|s| !s.points.is_empty());
        for s in &mut out {
            s.points.sort_by_key(|p| p.field);
        }
        Interval {
            start_unix_nanos: interval.start_unix_nanos,
            end_unix_nanos: interval.end_unix_nanos,
            temporality: interval.temporality,
            series: out,
        }
    }
}

impl Processor for Views {
    async fn process(&mut self, msg: Message, effect: &EffectHandler) -> Result<(), NodeError> {
        match msg {
            Message::PData(pdata) => {
                let Some(interval) = pdata.downcast_ref::<Interval>() else {
                    return Err(NodeError::new(
                        "processor:views takes intervals from processor:aggregate",
                    ));
                };
                let viewed = self.apply(interval);
                if !viewed.series.is_empty() {
                    let items = viewed.point_count() as u64;
                    effect.send_message(PData::mergeable(items, viewed)).await?;
                }
                Ok(())
            }
            Message::Control(ControlMsg::Shutdown { .. } | _) => Ok(()),
        }
    }
}

#[linkme::distributed_slice(nodes::NODE_FACTORIES)]
static VIEWS: NodeFactory = NodeFactory {
    type_name: "processor:views",
    kind: NodeKind::Processor,
    description: "renames, re-describes or drops metrics and drops attributes of aggregated intervals",
    validate: |value| nodes::parse_config::<ViewsConfig>(value).map(|_| ()),
    create,
};

fn create(value: &serde_json::Value, _ctx: &NodeContext) -> Result<NodeTask, String> {
    let config = nodes::parse_config::<ViewsConfig>(value)?;
    Ok(NodeTask::processor(Views {
        config,
        derived: HashMap::new(),
        derived_attributes: HashMap::new(),
    }))
}

/// Applies `config` to one interval (for tests and custom pipelines).
pub fn apply_views(config: &ViewsConfig, interval: &Interval) -> Interval {
    Views {
        config: config.clone(),
        derived: HashMap::new(),
        derived_attributes: HashMap::new(),
    }
    .apply(interval)
}
