use metric_schema::AttributeEnum;

#[derive(AttributeEnum)]
pub enum Kind {
    Receiver,
    #[attribute(value = "receiver")]
    Source,
}

fn main() {}
