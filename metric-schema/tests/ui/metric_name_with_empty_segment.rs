use metric_schema::{metric_set, Counter};

/// Double dot.
#[metric_set(name = "node.processor")]
pub struct DoubleDot {
    /// Items.
    #[metric(unit = "{item}", name = "consumed..items")]
    pub items: Counter<u64>,
}

fn main() {}
