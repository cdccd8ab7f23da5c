use metric_schema::{metric_set, Histogram};

/// Not UCUM.
#[metric_set(name = "node.processor")]
pub struct BadUnit {
    /// Duration.
    #[metric(unit = "seconds")]
    pub duration: Histogram,
}

fn main() {}
