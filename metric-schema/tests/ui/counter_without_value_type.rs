use metric_schema::metric_set;

/// The value type is required.
#[metric_set(name = "node.processor")]
pub struct Bare {
    /// Items.
    #[metric(unit = "{item}")]
    pub items: metric_schema::Counter,
}

fn main() {}
