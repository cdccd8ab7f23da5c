//! Procedural macros of `metric-schema`. Use them through `metric_schema`, which
//! re-exports them; the generated code only names `::metric_schema::__private`.

use proc_macro::TokenStream;

mod args;
mod attribute_set;
mod metric_set;
mod validate;

/// Turns a struct of instruments into a `MetricSet`. See the `metric_schema` crate.
///
/// - `#[metric_set(name = "...", stability = "stable")]` on the struct; its doc comment
///   is the set's brief.
/// - `#[metric(unit = "...", name = "...", stability = "...", max_buckets = N)]` on a
///   field; its doc comment is the metric's brief.
#[proc_macro_attribute]
pub fn metric_set(args: TokenStream, item: TokenStream) -> TokenStream {
    metric_set::expand(args.into(), item.into()).into()
}

/// Turns a struct of attribute values into an `AttributeSet`.
///
/// `#[attribute_set(name = "...")]` on the struct; `#[attribute(key = "...")]` or
/// `#[attribute(include)]` (another attribute set, expanded in place) on a field.
#[proc_macro_attribute]
pub fn attribute_set(args: TokenStream, item: TokenStream) -> TokenStream {
    attribute_set::expand(args.into(), item.into()).into()
}

/// Gives each unit variant of an enum a stable lowercase value (`snake_case` of its
/// name, or `#[attribute(value = "...")]`).
#[proc_macro_derive(AttributeEnum, attributes(attribute))]
pub fn derive_attribute_enum(input: TokenStream) -> TokenStream {
    attribute_set::derive_enum(input.into()).into()
}
