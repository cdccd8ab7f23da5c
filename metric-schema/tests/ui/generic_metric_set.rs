use metric_schema::{metric_set, Counter};

/// Generic sets have no single descriptor.
#[metric_set(name = "node.processor")]
pub struct Generic<const N: usize> {
    /// Items.
    #[metric(unit = "{item}")]
    pub items: Counter<u64>,
}

fn main() {}
