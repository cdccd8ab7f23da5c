use metric_schema::AttributeEnum;

#[derive(AttributeEnum)]
pub enum Kind {
    Receiver,
    Other(String),
}

fn main() {}
