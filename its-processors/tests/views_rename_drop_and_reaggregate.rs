//! `processor:views`: renames, re-descriptions, drops, and attributes dropped with the
//! series that become identical merged again; bad views are configuration errors.

use its_processors::model::Value;
use its_processors::views::{ViewsConfig, apply_views};
use its_processors::{Aggregator, Interval, Keep, Temporality};
use metric_schema::{Counter, Gauge, Reporter, attribute_set, metric_set};

/// Which worker.
#[attribute_set(name = "test.views.attrs")]
pub struct Worker {
    /// Worker name.
    #[attribute(key = "worker.name")]
    pub name: String,
    /// Shard.
    #[attribute(key = "worker.shard")]
    pub shard: u32,
}

/// Work.
#[metric_set(name = "test.views")]
pub struct Work {
    /// Operations.
    #[metric(unit = "{operation}")]
    pub ops: Counter<u64>,
    /// Errors.
    #[metric(unit = "{error}")]
    pub errors: Counter<u64>,
    /// Depth.
    #[metric(unit = "{item}")]
    pub depth: Gauge<u64>,
}

fn interval() -> Interval {
    let (sender, queue) = metric_schema::channel(16);
    let mut r0 = Reporter::new(sender.clone(), 0, 0);
    let mut r1 = Reporter::new(sender, 1, 0);
    let a = r0.register::<Work, _>(&Worker {
        name: "w".into(),
        shard: 1,
    });
    let b = r1.register::<Work, _>(&Worker {
        name: "w".into(),
        shard: 2,
    });
    a.ops.add(3);
    b.ops.add(4);
    a.errors.add(1);
    b.depth.set(9);
    r0.report();
    r1.report();
    let mut agg = Aggregator::new(
        Keep {
            core: true,
            numa_node: false,
        },
        0,
    );
    while let Some(batch) = queue.try_recv() {
        agg.apply(&batch);
    }
    agg.take(1, &[Temporality::Delta]).remove(0)
}

fn config(yaml: &serde_json::Value) -> Result<ViewsConfig, String> {
    nodes::parse_config::<ViewsConfig>(yaml)
}

fn point<'a>(i: &'a Interval, metric: &str) -> Vec<&'a Value> {
    i.series
        .iter()
        .flat_map(|s| {
            s.points
                .iter()
                .filter(move |p| s.descriptor.fields[usize::from(p.field)].name == metric)
                .map(|p| &p.value)
        })
        .collect()
}

#[test]
fn dropping_attributes_merges_series_again() {
    let input = interval();
    assert_eq!(input.series.len(), 2);
    let views = config(&serde_json::json!({"views": [
        {"select": {"set": "test.views"}, "drop_attributes": ["core.id", "worker.shard"]}
    ]}))
    .unwrap();
    let out = apply_views(&views, &input);
    assert_eq!(out.series.len(), 1);
    assert_eq!(point(&out, "ops"), vec![&Value::U64(7)]);
    let pairs = out.series[0].identity.pairs();
    assert_eq!(pairs, vec![("worker.name".to_string(), "w".to_string())]);
}

#[test]
fn rename_describe_and_drop() {
    let views = config(&serde_json::json!({"views": [
        {"select": {"set": "test.views", "metric": "ops"}, "rename": "operations", "describe": "Operations done."},
        {"select": {"metric": "errors"}, "drop": true},
        {"select": {"set": "test.views", "attributes": {"worker.shard": "2"}, "metric": "depth"}, "rename": "queue.depth"}
    ]}))
    .unwrap();
    let out = apply_views(&views, &interval());
    assert_eq!(point(&out, "operations").len(), 2);
    assert!(point(&out, "ops").is_empty());
    assert!(point(&out, "errors").is_empty(), "dropped");
    assert_eq!(point(&out, "queue.depth"), vec![&Value::U64(9)]);
    let field = out.series[0]
        .descriptor
        .fields
        .iter()
        .find(|f| f.name == "operations")
        .unwrap();
    assert_eq!(field.brief, "Operations done.");
}

#[test]
fn two_metrics_renamed_to_one_name_is_a_config_error() {
    let e = config(&serde_json::json!({"views": [
        {"select": {"set": "test.views", "metric": "ops"}, "rename": "work"},
        {"select": {"set": "test.views", "metric": "errors"}, "rename": "work"}
    ]}))
    .unwrap_err();
    assert!(
        e.contains("views[1]") && e.contains("views[0]") && e.contains("`work`"),
        "{e}"
    );

    let e = config(&serde_json::json!({"views": [
        {"select": {"set": "test.views", "metric": "ops"}, "rename": "errors"}
    ]}))
    .unwrap_err();
    assert!(e.contains("collides"), "{e}");

    let e = config(&serde_json::json!({"views": [{"rename": "x"}]})).unwrap_err();
    assert!(e.contains("needs `select.set` and `select.metric`"), "{e}");

    let e = config(&serde_json::json!({"views": [
        {"select": {"set": "test.views", "metric": "nope"}, "rename": "x"}
    ]}))
    .unwrap_err();
    assert!(e.contains("has no metric `nope`"), "{e}");
}
