use metric_schema::{metric_set, Counter};

/// Trailing dot.
#[metric_set(name = "node.processor")]
pub struct Trailing {
    /// Items.
    #[metric(unit = "{item}", name = "consumed.")]
    pub items: Counter<u64>,
}

fn main() {}
