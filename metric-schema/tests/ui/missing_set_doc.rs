use metric_schema::{metric_set, Counter};

#[metric_set(name = "node.processor")]
pub struct NoSetDoc {
    /// Items.
    #[metric(unit = "{item}")]
    pub items: Counter<u64>,
}

fn main() {}
