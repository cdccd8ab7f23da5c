use metric_schema::{metric_set, Counter};

/// No unit.
#[metric_set(name = "node.processor")]
pub struct NoUnit {
    /// Items.
    pub items: Counter<u64>,
}

fn main() {}
