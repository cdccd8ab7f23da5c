use metric_schema::{metric_set, Counter};

/// Bad name.
#[metric_set(name = "Node-Processor")]
pub struct BadName {
    /// Items.
    #[metric(unit = "{item}")]
    pub items: Counter<u64>,
}

fn main() {}
