use metric_schema::{metric_set, Counter};

/// The same argument twice.
#[metric_set(name = "node.processor")]
pub struct Twice {
    /// Items.
    #[metric(unit = "{item}", unit = "1")]
    pub items: Counter<u64>,
}

fn main() {}
