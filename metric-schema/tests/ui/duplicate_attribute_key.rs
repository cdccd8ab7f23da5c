use metric_schema::attribute_set;

/// Same key twice.
#[attribute_set(name = "node.attrs")]
pub struct Attrs {
    /// Node id.
    #[attribute(key = "node.id")]
    pub node_id: String,
    /// Also node id.
    #[attribute(key = "node.id")]
    pub other: String,
}

fn main() {}
