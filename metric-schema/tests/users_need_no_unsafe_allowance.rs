//! A crate that forbids `unsafe` and does not depend on `linkme` can still declare
//! metric sets that land in the link-time registry.
#![forbid(unsafe_code)]

use metric_schema::{Counter, MetricSet, Registry, attribute_set, metric_set};

/// Identity of a listener.
#[attribute_set(name = "listener.attrs")]
pub struct ListenerAttrs {
    /// Port number.
    #[attribute(key = "listener.port")]
    pub port: u16,
}

/// Accepted connections.
#[metric_set(name = "listener")]
pub struct ListenerMetrics {
    /// Connections accepted.
    #[metric(unit = "{connection}")]
    pub accepted: Counter<u64>,
}

#[test]
fn safe_crates_register_their_sets() {
    let registry = Registry::linked().expect("no conflicting sets in this test binary");
    let found = registry
        .metric_set("listener")
        .expect("the set is in the linked registry");
    assert_eq!(found, ListenerMetrics::DESCRIPTOR);
    assert!(
        registry
            .attribute_sets()
            .iter()
            .any(|a| a.name == "listener.attrs")
    );
}
