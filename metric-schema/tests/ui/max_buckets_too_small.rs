use metric_schema::{metric_set, Histogram};

/// Too few buckets.
#[metric_set(name = "node.processor")]
pub struct Small {
    /// Duration.
    #[metric(unit = "s", max_buckets = 2)]
    pub duration: Histogram,
}

fn main() {}
