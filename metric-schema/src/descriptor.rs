//! `'static` descriptions of metric sets and attribute sets.
//!
//! `#[metric_set]` and `#[attribute_set]` generate one descriptor per struct at compile
//! time. Descriptors never change at run time: the consumer of snapshots learns them once,
//! with the registration of a set, and every later snapshot only carries field indexes.

use serde::Serialize;

/// How mature a metric set, a metric or an attribute is, as in OpenTelemetry semantic
/// conventions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stability {
    /// May change or disappear without notice (the default).
    Experimental,
    /// Covered by compatibility guarantees.
    Stable,
    /// Still emitted, but scheduled for removal.
    Deprecated,
}

impl Stability {
    /// The lowercase name used in semantic-convention registries.
    pub const fn as_str(self) -> &'static str {
        match self {
            Stability::Experimental => "experimental",
            Stability::Stable => "stable",
            Stability::Deprecated => "deprecated",
        }
    }
}

/// The kind of instrument behind a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InstrumentKind {
    /// Monotonic sum, recorded as increments.
    Counter,
    /// Non-monotonic sum, recorded as increments.
    UpDownCounter,
    /// Last value.
    Gauge,
    /// Monotonic sum observed as a running total (for example read from the OS).
    ObserveCounter,
    /// Non-monotonic sum observed as a running total.
    ObserveUpDownCounter,
    /// Minimum, maximum, sum and count of recorded values.
    Mmsc,
    /// Base-2 exponential histogram.
    Histogram,
}

impl InstrumentKind {
    /// The instrument name used in semantic-convention registries.
    pub const fn semconv_instrument(self) -> &'static str {
        match self {
            InstrumentKind::Counter | InstrumentKind::ObserveCounter => "counter",
            InstrumentKind::UpDownCounter | InstrumentKind::ObserveUpDownCounter => "updowncounter",
            InstrumentKind::Gauge => "gauge",
            InstrumentKind::Mmsc | InstrumentKind::Histogram => "histogram",
        }
    }

    /// Whether the instrument's sum can only grow.
    pub const fn is_monotonic(self) -> bool {
        matches!(
            self,
            InstrumentKind::Counter | InstrumentKind::ObserveCounter
        )
    }
}

/// The numeric type a field records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    /// Unsigned 64-bit integer.
    U64,
    /// Signed 64-bit integer.
    I64,
    /// 64-bit float.
    F64,
}

/// What a snapshot value of a field means over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Temporality {
    /// The change since the previous snapshot of the same set (reset on flush).
    Delta,
    /// A running total since the set was registered.
    Cumulative,
    /// A point-in-time value (gauges).
    Instantaneous,
}

/// One field of a metric set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct MetricsField {
    /// Metric name (the field name unless `#[metric(name = ...)]` says otherwise).
    pub name: &'static str,
    /// UCUM unit, e.g. `s`, `By`, `{item}`.
    pub unit: &'static str,
    /// Instrument kind.
    pub instrument: InstrumentKind,
    /// Numeric type recorded.
    pub value_type: ValueType,
    /// What a snapshot value means over time.
    pub temporality: Temporality,
    /// The field's doc comment.
    pub brief: &'static str,
    /// Maturity of this metric.
    pub stability: Stability,
}

/// The description of a metric set: its name and its fields, in declaration order.
///
/// The field index used by snapshots is the position in [`MetricsDescriptor::fields`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct MetricsDescriptor {
    /// Set name, e.g. `node.processor`.
    pub name: &'static str,
    /// The set's doc comment.
    pub brief: &'static str,
    /// Maturity of the set as a whole.
    pub stability: Stability,
    /// Fields in declaration order.
    pub fields: &'static [MetricsField],
    /// Rust path of the type that declared the set (`module::Type`), for error messages.
    #[serde(skip)]
    pub rust_type: &'static str,
}

impl MetricsDescriptor {
    /// Whether two descriptors describe the same shape: the same fields with the same
    /// names, units, kinds and value types, in the same order.
    pub fn same_shape(&self, other: &MetricsDescriptor) -> bool {
        self.fields.len() == other.fields.len()
            && self.fields.iter().zip(other.fields).all(|(a, b)| {
                a.name == b.name
                    && a.unit == b.unit
                    && a.instrument == b.instrument
                    && a.value_type == b.value_type
            })
    }

    /// The field with this index, if any.
    pub fn field(&self, index: usize) -> Option<&'static MetricsField> {
        self.fields.get(index)
    }
}

/// The type of an attribute value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttributeType {
    /// UTF-8 string.
    String,
    /// 64-bit signed integer.
    Int,
    /// 64-bit float.
    Double,
    /// Boolean.
    Bool,
    /// A closed enum exported as one of these lowercase strings.
    Enum(&'static [&'static str]),
    /// Another attribute set whose keys are included in place.
    Include(&'static AttributesDescriptor),
}

/// One key of an attribute set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct AttributeField {
    /// The attribute key, e.g. `node.id` (for [`AttributeType::Include`], the field name).
    pub key: &'static str,
    /// Value type.
    pub ty: AttributeType,
    /// The field's doc comment.
    pub brief: &'static str,
}

/// The description of an attribute set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct AttributesDescriptor {
    /// Set name, e.g. `node.attrs`.
    pub name: &'static str,
    /// The set's doc comment.
    pub brief: &'static str,
    /// Fields in declaration order; included sets appear where they were declared.
    pub fields: &'static [AttributeField],
    /// Rust path of the type that declared the set, for error messages.
    #[serde(skip)]
    pub rust_type: &'static str,
}

impl AttributesDescriptor {
    /// Every key in value order, with included sets expanded in place.
    ///
    /// The values written by [`AttributeSet::write_values`](crate::AttributeSet) follow
    /// exactly this order.
    pub fn keys(&self) -> Vec<&'static AttributeField> {
        let mut out = Vec::with_capacity(self.fields.len());
        self.for_each_key(|field| out.push(field));
        out
    }

    /// [`keys`](Self::keys) one at a time, without allocating.
    pub fn for_each_key(&self, mut f: impl FnMut(&'static AttributeField)) {
        fn visit(fields: &'static [AttributeField], f: &mut impl FnMut(&'static AttributeField)) {
            for field in fields {
                match field.ty {
                    AttributeType::Include(inner) => visit(inner.fields, f),
                    _ => f(field),
                }
            }
        }
        visit(self.fields, &mut f);
    }

    /// Whether one of the keys (included sets expanded) is `key`; allocates nothing.
    pub fn has_key(&self, key: &str) -> bool {
        fn any(fields: &[AttributeField], key: &str) -> bool {
            fields.iter().any(|field| match field.ty {
                AttributeType::Include(inner) => any(inner.fields, key),
                _ => field.key == key,
            })
        }
        any(self.fields, key)
    }

    /// Whether two descriptors have the same keys with the same types, in order.
    pub fn same_shape(&self, other: &AttributesDescriptor) -> bool {
        let (a, b) = (self.keys(), other.keys());
        a.len() == b.len()
            && a.iter()
                .zip(&b)
                .all(|(x, y)| x.key == y.key && x.ty == y.ty)
    }
}
