use metric_schema::{metric_set, Counter};

/// A counter cannot go down.
#[metric_set(name = "node.processor")]
pub struct Signed {
    /// Items.
    #[metric(unit = "{item}")]
    pub items: Counter<i64>,
}

fn main() {}
