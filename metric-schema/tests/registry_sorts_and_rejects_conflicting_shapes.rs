//! The link-time registry: sorted, deduplicated, conflicts named, semconv export.

use metric_schema::{
    AttributeSet, Counter, Gauge, InstrumentKind, MetricSet, MetricsDescriptor, MetricsField,
    Registry, RegistryError, Stability, Temporality, ValueType, attribute_set, metric_set,
};

/// Zeta comes last.
#[metric_set(name = "zeta.work")]
pub struct Zeta {
    /// Items "quoted".
    #[metric(unit = "{item}")]
    pub items: Counter<u64>,
}

/// Alpha comes first.
#[metric_set(name = "alpha.work", stability = "stable")]
pub struct Alpha {
    /// Depth.
    #[metric(unit = "{item}", stability = "stable")]
    pub depth: Gauge<u64>,
}

#[derive(metric_schema::AttributeEnum)]
/// Worker mode.
pub enum Mode {
    /// Fast.
    Fast,
    /// Safe.
    Safe,
}

/// Worker identity.
#[attribute_set(name = "worker.attrs")]
pub struct WorkerAttrs {
    /// Worker index.
    #[attribute(key = "worker.index")]
    pub index: u32,
    /// Mode.
    #[attribute(key = "worker.mode")]
    pub mode: Mode,
}

#[test]
fn the_linked_registry_is_sorted_by_name() {
    let registry = Registry::linked().unwrap();
    let names: Vec<_> = registry.metric_sets().iter().map(|d| d.name).collect();
    // The SDK's own reporter set is linked into every binary.
    assert_eq!(names, ["alpha.work", "metric_schema.reporter", "zeta.work"]);
    assert_eq!(registry.metric_set("zeta.work"), Some(Zeta::DESCRIPTOR));
    assert_eq!(registry.metric_set("nope"), None);
    assert!(Zeta::DESCRIPTOR.rust_type.ends_with("::Zeta"));
}

const OTHER_FIELDS: &[MetricsField] = &[MetricsField {
    name: "items",
    unit: "By",
    instrument: InstrumentKind::Counter,
    value_type: ValueType::U64,
    temporality: Temporality::Delta,
    brief: "Same name, other unit.",
    stability: Stability::Experimental,
}];

static OTHER_ZETA: MetricsDescriptor = MetricsDescriptor {
    name: "zeta.work",
    brief: "An impostor.",
    stability: Stability::Experimental,
    fields: OTHER_FIELDS,
    rust_type: "elsewhere::Zeta",
};

#[test]
fn the_same_set_twice_is_fine_but_two_shapes_under_one_name_are_not() {
    let twice = Registry::from_descriptors(&[Zeta::DESCRIPTOR, Zeta::DESCRIPTOR], &[]).unwrap();
    assert_eq!(twice.metric_sets().len(), 1);

    let err = Registry::from_descriptors(&[Zeta::DESCRIPTOR, &OTHER_ZETA], &[]).unwrap_err();
    let RegistryError::ConflictingMetricSets {
        name,
        first,
        second,
    } = &err
    else {
        panic!("unexpected {err:?}");
    };
    assert_eq!(*name, "zeta.work");
    let both = [*first, *second];
    assert!(both.contains(&"elsewhere::Zeta"));
    assert!(
        both.iter()
            .any(|t| t.ends_with("registry_sorts_and_rejects_conflicting_shapes::Zeta"))
    );
    let message = err.to_string();
    assert!(
        message.contains("zeta.work") && message.contains("elsewhere::Zeta"),
        "{message}"
    );
}

#[test]
fn the_semconv_export_lists_every_metric_and_attribute() {
    let registry = Registry::linked().unwrap();
    let yaml = registry.to_semconv_yaml();
    assert!(yaml.starts_with("groups:\n"));
    assert!(yaml.contains("  - id: metric.zeta.work.items\n    type: metric\n"));
    assert!(yaml.contains("    brief: \"Items \\\"quoted\\\".\"\n"));
    assert!(yaml.contains("    instrument: counter\n    unit: \"{item}\"\n"));
    assert!(yaml.contains("metric_name: alpha.work.depth\n"));
    assert!(yaml.contains("    instrument: gauge\n"));
    assert!(yaml.contains("    stability: stable\n"));
    assert!(yaml.contains("  - id: registry.worker.attrs\n"));
    assert!(yaml.contains("      - id: worker.index\n        type: int\n"));
    assert!(yaml.contains("            - id: fast\n"));
    assert_eq!(WorkerAttrs::DESCRIPTOR.keys().len(), 2);
}
