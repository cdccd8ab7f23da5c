use metric_schema::{metric_set, Counter};

/// Digit first.
#[metric_set(name = "node.processor")]
pub struct Digit {
    /// Items.
    #[metric(unit = "{item}", name = "2xx.responses")]
    pub items: Counter<u64>,
}

fn main() {}
