//! `exporter:otap` configuration: what it takes, and a clear message for what it does not.

use its_exporter_otap::OtapConfig;
use serde_json::json;

fn parse(v: &serde_json::Value) -> Result<OtapConfig, String> {
    nodes::parse_config::<OtapConfig>(v)
}

#[track_caller]
fn refused(v: &serde_json::Value, needles: &[&str]) {
    let e = parse(v).expect_err(&format!("{v} should be refused"));
    for needle in needles {
        assert!(e.contains(needle), "{v}: `{e}` should mention `{needle}`");
    }
}

#[test]
fn a_file_or_an_endpoint_is_taken_with_defaults() {
    let c = parse(&json!({"file": "out.bin"})).unwrap();
    assert_eq!(c.max_in_flight, 16);
    assert_eq!(c.max_batch_points, 16_384);
    assert_eq!(c.max_batch_bytes, 3 << 20);
    let c = parse(&json!({
        "endpoint": "https://collector.example:4317",
        "grpc_compression": "gzip",
        "max_in_flight": 4,
        "ack_timeout": "2s",
    }))
    .unwrap();
    assert_eq!(c.max_in_flight, 4);
    assert_eq!(c.ack_timeout, std::time::Duration::from_secs(2));
    assert_eq!(c.grpc_compression, its_exporter_otap::GrpcCompression::Gzip);
}

#[test]
fn bad_values_name_the_field_and_the_way_out() {
    refused(&json!(null), &["missing `endpoint", "file"]);
    refused(
        &json!({"file": "a", "endpoint": "http://h:1"}),
        &["not both"],
    );
    refused(
        &json!({"endpoint": "localhost:4317"}),
        &["http://HOST:PORT"],
    );
    refused(&json!({"endpoint": "http://bad host:1"}), &["endpoint"]);
    refused(&json!({"file": "a", "compression": "lz4"}), &["lz4"]);
    refused(
        &json!({"endpoint": "http://h:1", "grpc_compression": "snappy"}),
        &["snappy"],
    );
    refused(
        &json!({"endpoint": "http://h:1", "max_in_flight": 0}),
        &["max_in_flight", "1 to 1024"],
    );
    refused(
        &json!({"endpoint": "http://h:1", "queue_capacity": 0}),
        &["queue_capacity"],
    );
    for bytes in [0, 65_535, (1 << 30) + 1] {
        refused(
            &json!({"endpoint": "http://h:1", "max_batch_bytes": bytes}),
            &[
                "max_batch_bytes",
                "65536 (64 KiB) to 1073741824 (1 GiB)",
                "4 MiB",
            ],
        );
    }
    refused(
        &json!({"file": "a", "max_batch_points": 65_537}),
        &["max_batch_points: 65537", "1 to 65536"],
    );
    refused(
        &json!({"file": "a", "max_batch_points": 0}),
        &["max_batch_points"],
    );
    refused(
        &json!({"endpoint": "http://h:1", "max_stream_lifetime": "0s"}),
        &["max_stream_lifetime"],
    );
    refused(
        &json!({"endpoint": "http://h:1", "ack_timeout": "0s"}),
        &["ack_timeout"],
    );
    refused(
        &json!({"endpoint": "http://h:1", "ack_timeout": "10"}),
        &["add a unit"],
    );
    refused(
        &json!({"endpoint": "http://h:1", "initial_backoff": "10s", "max_backoff": "1s"}),
        &["max_backoff", "initial_backoff"],
    );
    refused(
        &json!({"endpoint": "http://h:1", "ca_file": "ca.pem"}),
        &["ca_file", "https"],
    );
    refused(
        &json!({"endpoint": "http://h:1", "retries": 3}),
        &["retries"],
    );
}

#[test]
fn client_certificates_come_in_pairs_and_only_for_https() {
    parse(&json!({
        "endpoint": "https://h:1", "cert_file": "c.pem", "key_file": "k.pem", "ca_file": "ca.pem",
    }))
    .unwrap();
    refused(
        &json!({"endpoint": "https://h:1", "cert_file": "c.pem"}),
        &["`cert_file` and `key_file` together"],
    );
    refused(
        &json!({"endpoint": "http://h:1", "cert_file": "c.pem", "key_file": "k.pem"}),
        &["`cert_file` is for `https`"],
    );
    refused(
        &json!({"file": "out.bin", "ca_file": "ca.pem"}),
        &["not a `file`"],
    );
}

#[test]
fn headers_take_environment_values_and_refuse_what_grpc_cannot_send() {
    // Cargo sets CARGO_PKG_NAME for the tests it runs.
    parse(&json!({
        "endpoint": "http://h:1",
        "headers": {"Authorization": "Bearer ${env:CARGO_PKG_NAME}", "x-tenant": "a"},
    }))
    .unwrap();
    refused(
        &json!({"endpoint": "http://h:1", "headers": {"authorization": "${env:ITS_OTAP_TEST_UNSET}"}}),
        &["header `authorization`", "`ITS_OTAP_TEST_UNSET` is not set"],
    );
    refused(
        &json!({"endpoint": "http://h:1", "headers": {"a": "${env:NAME"}}),
        &["header `a`", "closing `}`"],
    );
    refused(
        &json!({"endpoint": "http://h:1", "headers": {"bad name": "x"}}),
        &["header `bad name`", "not a valid header name"],
    );
    refused(
        &json!({"endpoint": "http://h:1", "headers": {"a": "line\nbreak"}}),
        &["header `a`", "visible ASCII"],
    );
    refused(
        &json!({"endpoint": "http://h:1", "headers": {"grpc-timeout": "1S"}}),
        &["header `grpc-timeout`", "gRPC sets it"],
    );
    refused(
        &json!({"endpoint": "http://h:1", "headers": {"trace-bin": "x"}}),
        &["header `trace-bin`", "binary"],
    );
    refused(
        &json!({"file": "out.bin", "headers": {"a": "b"}}),
        &["`headers` are for a gRPC `endpoint`"],
    );
    refused(
        &json!({"endpoint": "http://h:1", "headers": {"Connection": "authorization"}}),
        &["header `Connection`", "connection header"],
    );
    refused(
        &json!({"endpoint": "http://h:1", "headers": {"Authorization": "a", "authorization": "b"}}),
        &["given twice"],
    );
    // Debug shows header names, never values.
    let c =
        parse(&json!({"endpoint": "http://h:1", "headers": {"authorization": "Bearer s3cret"}}))
            .unwrap();
    let shown = format!("{c:?}");
    assert!(
        shown.contains("authorization") && !shown.contains("s3cret"),
        "{shown}"
    );
}
