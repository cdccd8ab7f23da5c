//! Generated code names everything by absolute path: it compiles in a crate without the
//! prelude and with common names shadowed.
#![no_implicit_prelude]

extern crate metric_schema;
extern crate std;

#[allow(dead_code)]
struct Vec;
#[allow(dead_code)]
struct Option;
#[allow(dead_code)]
struct Default;
#[allow(dead_code)]
mod core {}

use metric_schema::{
    AttributeEnum, Counter, Gauge, Histogram, Mmsc, ObserveCounter, ObserveUpDownCounter,
    UpDownCounter, attribute_set, metric_set,
};

#[derive(AttributeEnum, Clone, Copy)]
/// Role in a replication group.
pub enum Role {
    /// Leads.
    Leader,
    /// Follows.
    FollowerReplica,
}

/// Inner identity.
#[attribute_set(name = "shard.attrs")]
pub struct ShardAttrs {
    /// Shard number.
    #[attribute(key = "shard.id")]
    pub shard: u32,
}

/// Outer identity.
#[attribute_set(name = "replica.attrs")]
pub struct ReplicaAttrs {
    /// Replica name.
    #[attribute(key = "replica.name")]
    pub name: ::std::string::String,
    /// Role in the group.
    pub role: Role,
    /// Healthy or not.
    pub healthy: bool,
    /// Load factor.
    pub load: f64,
    /// The shard it serves.
    #[attribute(include)]
    pub shard: ShardAttrs,
}

/// Every instrument kind at once.
#[metric_set(name = "replica.work", stability = "stable")]
pub struct ReplicaMetrics {
    /// Requests served.
    #[metric(unit = "{request}", stability = "stable")]
    pub requests: Counter<u64>,
    /// CPU seconds.
    #[metric(unit = "s")]
    pub cpu: Counter<f64>,
    /// Open sessions.
    #[metric(unit = "{session}")]
    pub sessions: UpDownCounter<i64>,
    /// Queue depth.
    #[metric(unit = "{item}")]
    pub depth: Gauge<u64>,
    /// Bytes the OS says were sent.
    #[metric(unit = "By", name = "os.sent")]
    pub os_sent: ObserveCounter<u64>,
    /// Memory in use.
    #[metric(unit = "By")]
    pub memory: ObserveUpDownCounter<i64>,
    /// Latency.
    #[metric(unit = "s", max_buckets = 32)]
    pub latency: Histogram,
    /// Payload sizes.
    #[metric(unit = "By")]
    pub payload: Mmsc,
}

#[test]
fn generated_code_needs_no_prelude() {
    use ::metric_schema::{AttributeSet, MetricSet};
    let d = <ReplicaMetrics as MetricSet>::DESCRIPTOR;
    ::std::assert_eq!(d.name, "replica.work");
    ::std::assert_eq!(d.fields.len(), 8);
    ::std::assert_eq!(d.fields[4].name, "os.sent");
    ::std::assert_eq!(::std::mem::align_of::<ReplicaMetrics>(), 64);

    let attrs = ReplicaAttrs {
        name: ::std::string::ToString::to_string("r1"),
        role: Role::FollowerReplica,
        healthy: true,
        load: 0.5,
        shard: ShardAttrs { shard: 7 },
    };
    let values = attrs.values();
    ::std::assert_eq!(values.len(), 5);
    ::std::assert_eq!(
        values[1],
        ::metric_schema::AttributeValue::Str(::std::borrow::Cow::Borrowed("follower_replica"))
    );
    let keys = <ReplicaAttrs as AttributeSet>::DESCRIPTOR.keys();
    ::std::assert_eq!(keys[4].key, "shard.id");
    // `has_key` looks through included sets, and an include's field name is no key.
    let d = <ReplicaAttrs as AttributeSet>::DESCRIPTOR;
    ::std::assert!(d.has_key("replica.name") && d.has_key("shard.id"));
    ::std::assert!(!d.has_key("shard") && !d.has_key("core.id"));
}
