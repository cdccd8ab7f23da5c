use metric_schema::attribute_set;

/// Bad key.
#[attribute_set(name = "node.attrs")]
pub struct Attrs {
    /// Node id.
    #[attribute(key = "Node ID")]
    pub node_id: String,
}

fn main() {}
