use metric_schema::{metric_set, Counter};

/// Buckets are for histograms.
#[metric_set(name = "node.processor")]
pub struct Buckets {
    /// Items.
    #[metric(unit = "{item}", max_buckets = 64)]
    pub items: Counter<u64>,
}

fn main() {}
