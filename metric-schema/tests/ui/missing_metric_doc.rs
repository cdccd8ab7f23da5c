use metric_schema::{metric_set, Counter};

/// A set.
#[metric_set(name = "node.processor")]
pub struct NoDoc {
    #[metric(unit = "{item}")]
    pub items: Counter<u64>,
}

fn main() {}
