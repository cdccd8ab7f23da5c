use metric_schema::{metric_set, Counter};

/// Not a stability level.
#[metric_set(name = "node.processor", stability = "beta")]
pub struct Beta {
    /// Items.
    #[metric(unit = "{item}")]
    pub items: Counter<u64>,
}

fn main() {}
