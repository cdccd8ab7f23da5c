//! `exporter:console`: each aggregated interval as a readable table (set, entity
//! attributes, metric, value with unit) or as JSON lines, on stdout or stderr.

use std::fmt::Write as _;
use std::io::Write;

use its_processors::model::{Interval, Series, Value};
use nodes::{
    ControlMsg, EffectHandler, Exporter, Message, NodeConfig, NodeContext, NodeError, NodeFactory,
    NodeKind, NodeTask,
};
use serde::Deserialize;

/// How intervals are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// A table per interval.
    #[default]
    Table,
    /// One JSON object per point.
    Json,
}

/// Where they are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    /// Standard output.
    #[default]
    Stdout,
    /// Standard error.
    Stderr,
}

/// Configuration of `exporter:console`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// `table` (default) or `json`.
    pub format: Format,
    /// `stdout` (default) or `stderr`.
    pub output: Output,
}

impl NodeConfig for ConsoleConfig {}

/// `HH:MM:SS.mmm` (UTC) of a Unix time in nanoseconds.
pub fn clock(unix_nanos: u64) -> String {
    let ms = unix_nanos / 1_000_000;
    let (s, ms) = (ms / 1000, ms % 1000);
    let (h, m, s) = ((s / 3600) % 24, (s / 60) % 60, s % 60);
    format!("{h:02}:{m:02}:{s:02}.{ms:03}")
}

/// A float for people: six significant digits, no trailing zeros (sums of floats carry
/// rounding noise such as `0.9989281279999997`); the JSON lines keep every digit.
pub fn float_text(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let exponent = v.abs().log10().floor();
    let trim = |text: String| -> String {
        if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            text
        }
    };
    if (-4.0..15.0).contains(&exponent) {
        // Six significant digits: the digits left of the point count too.
        let decimals = (5.0 - exponent).max(0.0) as usize;
        trim(format!("{v:.decimals$}"))
    } else {
        let text = format!("{v:.5e}");
        let (mantissa, power) = text.split_once('e').unwrap_or((&text, "0"));
        format!("{}e{power}", trim(mantissa.to_string()))
    }
}

fn value_text(value: &Value, unit: &str) -> String {
    let f = float_text;
    match value {
        Value::U64(v) => format!("{v} {unit}"),
        Value::I64(v) => format!("{v} {unit}"),
        Value::F64(v) => format!("{} {unit}", f(*v)),
        Value::Mmsc(m) => format!(
            "count={} sum={} min={} max={} {unit}",
            m.count,
            f(m.sum),
            f(m.min),
            f(m.max)
        ),
        Value::Histogram(h) => format!(
            "count={} sum={} min={} max={} scale={} buckets={}+{} {unit}",
            h.count,
            f(h.sum),
            f(h.min),
            f(h.max),
            h.scale,
            h.positive.counts.len(),
            h.negative.counts.len()
        ),
    }
}

/// Renders an interval as a table.
pub fn table(interval: &Interval) -> String {
    let mut out = format!(
        "── {} → {} UTC, {} ({} series, {} points) ──\n",
        clock(interval.start_unix_nanos),
        clock(interval.end_unix_nanos),
        interval.temporality.as_str(),
        interval.series.len(),
        interval.point_count()
    );
    let mut series: Vec<&Series> = interval.series.iter().collect();
    series.sort_by_key(|s| (s.descriptor.name, s.identity.pairs()));
    for s in series {
        let attrs: Vec<String> = s
            .identity
            .pairs()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(out, "{} {{{}}}", s.descriptor.name, attrs.join(", "));
        for p in &s.points {
            let field = &s.descriptor.fields[usize::from(p.field)];
            let _ = writeln!(
                out,
                "  {:<28} {}",
                field.name,
                value_text(&p.value, field.unit)
            );
        }
    }
    out
}

/// Renders an interval as JSON lines, one per point.
pub fn json_lines(interval: &Interval) -> String {
    let mut out = String::new();
    for s in &interval.series {
        let attributes: serde_json::Map<String, serde_json::Value> = s
            .identity
            .pairs()
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
        for p in &s.points {
            let field = &s.descriptor.fields[usize::from(p.field)];
            let value = match &p.value {
                Value::U64(v) => serde_json::json!(v),
                Value::I64(v) => serde_json::json!(v),
                Value::F64(v) => serde_json::json!(v),
                Value::Mmsc(m) => {
                    serde_json::json!({"count": m.count, "sum": m.sum, "min": m.min, "max": m.max})
                }
                Value::Histogram(h) => serde_json::json!({
                    "count": h.count, "sum": h.sum, "min": h.min, "max": h.max, "scale": h.scale,
                    "zero_count": h.zero_count,
                    "positive": {"offset": h.positive.offset, "counts": h.positive.counts},
                    "negative": {"offset": h.negative.offset, "counts": h.negative.counts},
                }),
            };
            let line = serde_json::json!({
                "start_unix_nanos": s.start_unix_nanos,
                "end_unix_nanos": s.end_unix_nanos,
                "temporality": interval.temporality.as_str(),
                "set": s.descriptor.name,
                "attributes": attributes,
                "metric": field.name,
                "unit": field.unit,
                "instrument": format!("{:?}", field.instrument),
                "value": value,
            });
            out.push_str(&line.to_string());
            out.push('\n');
        }
    }
    out
}

/// Identity of an exporter.
#[metric_schema::attribute_set(name = "its.exporter.attrs")]
pub struct ExporterAttrs {
    /// Node id from the configuration.
    #[attribute(key = "node.id")]
    pub node: String,
    /// Node type.
    #[attribute(key = "node.type")]
    pub node_type: &'static str,
}

/// What an exporter of the ITS did.
#[metric_schema::metric_set(name = "its.exporter")]
pub struct ExporterMetrics {
    /// Intervals exported.
    #[metric(unit = "{interval}")]
    pub intervals: metric_schema::Counter<u64>,
    /// Points exported.
    #[metric(unit = "{point}")]
    pub points: metric_schema::Counter<u64>,
    /// Time one export took.
    #[metric(unit = "s", max_buckets = 32)]
    pub duration: metric_schema::Histogram<32>,
}

struct Console {
    config: ConsoleConfig,
    observed: metric_schema::MetricSetHandle<ExporterMetrics>,
}

impl Exporter for Console {
    async fn export(&mut self, msg: Message, _effect: &EffectHandler) -> Result<(), NodeError> {
        let pdata = match msg {
            Message::PData(pdata) => pdata,
            Message::Control(ControlMsg::Shutdown { .. } | _) => return Ok(()),
        };
        let Some(interval) = its_processors::interval_of(&pdata) else {
            return Err(NodeError::new(
                "exporter:console takes intervals from processor:aggregate",
            ));
        };
        let started = std::time::Instant::now();
        let text = match self.config.format {
            Format::Table => table(interval),
            Format::Json => json_lines(interval),
        };
        let written = match self.config.output {
            Output::Stdout => std::io::stdout().lock().write_all(text.as_bytes()),
            Output::Stderr => std::io::stderr().lock().write_all(text.as_bytes()),
        };
        written.map_err(|e| NodeError::new(format!("exporter:console cannot write: {e}")))?;
        self.observed.intervals.inc();
        self.observed.points.add(interval.point_count() as u64);
        self.observed
            .duration
            .record(started.elapsed().as_secs_f64());
        Ok(())
    }
}

#[linkme::distributed_slice(nodes::NODE_FACTORIES)]
static CONSOLE: NodeFactory = NodeFactory {
    type_name: "exporter:console",
    kind: NodeKind::Exporter,
    description: "prints each aggregated interval as a table or JSON lines",
    validate: |value| nodes::parse_config::<ConsoleConfig>(value).map(|_| ()),
    create,
};

fn create(value: &serde_json::Value, ctx: &NodeContext) -> Result<NodeTask, String> {
    let config = nodes::parse_config::<ConsoleConfig>(value)?;
    let observed = metric_schema::register::<ExporterMetrics, _>(&ExporterAttrs {
        node: ctx.node_id.clone(),
        node_type: "exporter:console",
    });
    Ok(NodeTask::exporter(Console { config, observed }))
}
