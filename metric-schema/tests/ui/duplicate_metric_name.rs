use metric_schema::{metric_set, Counter};

/// Two fields, one name.
#[metric_set(name = "node.processor")]
pub struct Twice {
    /// Items.
    #[metric(unit = "{item}")]
    pub items: Counter<u64>,
    /// Items again.
    #[metric(unit = "{item}", name = "items")]
    pub other: Counter<u64>,
}

fn main() {}
