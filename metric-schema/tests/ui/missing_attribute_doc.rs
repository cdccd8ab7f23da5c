use metric_schema::attribute_set;

/// A set.
#[attribute_set(name = "node.attrs")]
pub struct Attrs {
    #[attribute(key = "node.id")]
    pub node_id: String,
}

fn main() {}
