use metric_schema::{metric_set, Counter, Gauge};

/// Three mistakes, three errors, one build.
#[metric_set(name = "node.processor")]
pub struct Many {
    /// Items.
    #[metric(unit = "items")]
    pub items: Counter<u64>,
    /// Queue.
    #[metric(unit = "{item}", name = "Queue")]
    pub queue: Gauge<u64>,
    /// Latency.
    #[metric(unit = "s")]
    pub latency: f64,
}

fn main() {
    // The struct still exists, so code using it does not pile up more errors.
    let _ = std::mem::size_of::<Many>();
}
