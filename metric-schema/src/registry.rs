//! The static registry: every metric set and attribute set linked into the binary.
//!
//! `#[metric_set]` and `#[attribute_set]` put a reference to their descriptor in a
//! `linkme` distributed slice; [`Registry::linked`] collects them, sorts them by name and
//! checks that two declarations with the same name have the same shape (the same crate
//! linked twice at two versions is fine; two different sets sharing a name are not).
//!
//! A crate whose only use of metric sets is through another crate must still be linked:
//! name it in the binary (`use that_crate as _;`) so its descriptors are not dropped.

use std::fmt::{self, Write as _};

use crate::descriptor::{AttributeType, AttributesDescriptor, MetricsDescriptor};

/// Two declarations share a name but not a shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryError {
    /// Two metric sets named alike differ in their fields.
    ConflictingMetricSets {
        /// The shared name.
        name: &'static str,
        /// Rust type of one declaration.
        first: &'static str,
        /// Rust type of the other.
        second: &'static str,
    },
    /// Two attribute sets named alike differ in their keys.
    ConflictingAttributeSets {
        /// The shared name.
        name: &'static str,
        /// Rust type of one declaration.
        first: &'static str,
        /// Rust type of the other.
        second: &'static str,
    },
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, name, first, second) = match self {
            RegistryError::ConflictingMetricSets {
                name,
                first,
                second,
            } => ("metric set", name, first, second),
            RegistryError::ConflictingAttributeSets {
                name,
                first,
                second,
            } => ("attribute set", name, first, second),
        };
        write!(
            f,
            "two {what}s are named `{name}` but differ in shape: `{first}` and `{second}`; rename one of them"
        )
    }
}

impl std::error::Error for RegistryError {}

/// Every descriptor known to the process, sorted by name, checked for conflicts.
#[derive(Debug, Clone)]
pub struct Registry {
    metric_sets: Vec<&'static MetricsDescriptor>,
    attribute_sets: Vec<&'static AttributesDescriptor>,
}

impl Registry {
    /// The descriptors linked into this binary.
    pub fn linked() -> Result<Registry, RegistryError> {
        Registry::from_descriptors(
            &crate::__private::METRIC_SETS,
            &crate::__private::ATTRIBUTE_SETS,
        )
    }

    /// A registry of the given descriptors (a scoped alternative to [`Registry::linked`]).
    pub fn from_descriptors(
        metric_sets: &[&'static MetricsDescriptor],
        attribute_sets: &[&'static AttributesDescriptor],
    ) -> Result<Registry, RegistryError> {
        let mut metric_sets = metric_sets.to_vec();
        metric_sets.sort_by_key(|d| (d.name, d.rust_type));
        dedup(
            &mut metric_sets,
            |d| d.name,
            |a, b| a.same_shape(b),
            |a, b| RegistryError::ConflictingMetricSets {
                name: a.name,
                first: a.rust_type,
                second: b.rust_type,
            },
        )?;
        let mut attribute_sets = attribute_sets.to_vec();
        attribute_sets.sort_by_key(|d| (d.name, d.rust_type));
        dedup(
            &mut attribute_sets,
            |d| d.name,
            |a, b| a.same_shape(b),
            |a, b| RegistryError::ConflictingAttributeSets {
                name: a.name,
                first: a.rust_type,
                second: b.rust_type,
            },
        )?;
        Ok(Registry {
            metric_sets,
            attribute_sets,
        })
    }

    /// Metric sets, sorted by name.
    pub fn metric_sets(&self) -> &[&'static MetricsDescriptor] {
        &self.metric_sets
    }

    /// Attribute sets, sorted by name.
    pub fn attribute_sets(&self) -> &[&'static AttributesDescriptor] {
        &self.attribute_sets
    }

    /// The metric set with this name.
    pub fn metric_set(&self, name: &str) -> Option<&'static MetricsDescriptor> {
        self.metric_sets
            .binary_search_by_key(&name, |d| d.name)
            .ok()
            .map(|i| self.metric_sets[i])
    }

    /// An OpenTelemetry semantic-convention registry (the YAML Weaver reads): one
    /// `attribute_group` per attribute set, one `metric` group per metric.
    pub fn to_semconv_yaml(&self) -> String {
        let mut out = String::from("groups:\n");
        for set in &self.attribute_sets {
            let _ = writeln!(out, "  - id: registry.{}", set.name);
            out.push_str("    type: attribute_group\n");
            let _ = writeln!(out, "    brief: {}", quote(set.brief));
            out.push_str("    attributes:\n");
            for field in set.keys() {
                let _ = writeln!(out, "      - id: {}", field.key);
                match field.ty {
                    AttributeType::Enum(values) => {
                        out.push_str("        type:\n          members:\n");
                        for value in values {
                            let _ = writeln!(
                                out,
                                "            - id: {value}\n              value: {}\n              stability: development",
                                quote(value)
                            );
                        }
                    }
                    ty => {
                        let name = match ty {
                            AttributeType::Int => "int",
                            AttributeType::Double => "double",
                            AttributeType::Bool => "boolean",
                            _ => "string",
                        };
                        let _ = writeln!(out, "        type: {name}");
                    }
                }
                let _ = writeln!(out, "        brief: {}", quote(field.brief));
                out.push_str("        stability: development\n");
            }
        }
        for set in &self.metric_sets {
            for field in set.fields {
                let _ = writeln!(out, "  - id: metric.{}.{}", set.name, field.name);
                out.push_str("    type: metric\n");
                let _ = writeln!(out, "    metric_name: {}.{}", set.name, field.name);
                let _ = writeln!(out, "    brief: {}", quote(field.brief));
                let _ = writeln!(
                    out,
                    "    instrument: {}",
                    field.instrument.semconv_instrument()
                );
                let _ = writeln!(out, "    unit: {}", quote(field.unit));
                let _ = writeln!(out, "    stability: {}", semconv_stability(field.stability));
            }
        }
        out
    }
}

fn semconv_stability(s: crate::Stability) -> &'static str {
    match s {
        crate::Stability::Stable => "stable",
        crate::Stability::Experimental | crate::Stability::Deprecated => "development",
    }
}

/// A YAML double-quoted scalar.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Removes exact duplicates (same name, same shape) from a sorted list; errors on a
/// name shared by two shapes.
fn dedup<T: Copy>(
    items: &mut Vec<T>,
    name: impl Fn(T) -> &'static str,
    same: impl Fn(&T, &T) -> bool,
    conflict: impl Fn(T, T) -> RegistryError,
) -> Result<(), RegistryError> {
    let mut kept: Vec<T> = Vec::with_capacity(items.len());
    for &item in items.iter() {
        match kept.last() {
            Some(&last) if name(last) == name(item) => {
                if !same(&last, &item) {
                    return Err(conflict(last, item));
                }
            }
            _ => kept.push(item),
        }
    }
    *items = kept;
    Ok(())
}
