use metric_schema::{metric_set, Counter};

/// Upper case.
#[metric_set(name = "node.processor")]
pub struct Upper {
    /// Items.
    #[metric(unit = "{item}", name = "consumedItems")]
    pub items: Counter<u64>,
}

fn main() {}
