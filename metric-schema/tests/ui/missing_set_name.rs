use metric_schema::{metric_set, Counter};

/// A set without a name.
#[metric_set]
pub struct Unnamed {
    /// Items.
    #[metric(unit = "{item}")]
    pub items: Counter<u64>,
}

fn main() {}
