use metric_schema::{metric_set, Counter};

/// Prometheus habits.
#[metric_set(name = "node.processor")]
pub struct Suffix {
    /// Items.
    #[metric(unit = "{item}")]
    pub consumed_items_total: Counter<u64>,
}

fn main() {}
