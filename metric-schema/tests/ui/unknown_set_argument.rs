use metric_schema::{metric_set, Counter};

/// A typo in the arguments.
#[metric_set(name = "node.processor", stabilty = "stable")]
pub struct Typo {
    /// Items.
    #[metric(unit = "{item}")]
    pub items: Counter<u64>,
}

fn main() {}
