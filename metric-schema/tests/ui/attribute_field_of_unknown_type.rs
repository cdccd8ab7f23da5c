use metric_schema::attribute_set;

pub struct NotAnEnum;

/// A field type that is neither a scalar nor an AttributeEnum.
#[attribute_set(name = "node.attrs")]
pub struct Attrs {
    /// Something.
    pub thing: NotAnEnum,
}

fn main() {}
