use metric_schema::metric_set;

/// A plain integer is not an instrument.
#[metric_set(name = "node.processor")]
pub struct PlainField {
    /// Items.
    #[metric(unit = "{item}")]
    pub items: u64,
}

fn main() {}
