use metric_schema::{metric_set, Counter};

/// A typo in a field argument.
#[metric_set(name = "node.processor")]
pub struct Typo {
    /// Items.
    #[metric(units = "{item}")]
    pub items: Counter<u64>,
}

fn main() {}
