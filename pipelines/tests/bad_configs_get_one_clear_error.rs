//! Each kind of bad configuration gets a message naming the file, the YAML path (and
//! the line where known) and what was expected; none panics.

use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The whole error text for `name`, which must fail.
fn error_of(name: &str) -> String {
    match pipelines::load_plan(&fixture(name), None) {
        Ok(_) => panic!("{name} should not validate"),
        Err(errors) => errors.to_string(),
    }
}

fn assert_mentions(name: &str, needles: &[&str]) {
    let text = error_of(name);
    assert!(
        text.contains(name),
        "{name}: the message names the file: {text}"
    );
    for needle in needles {
        assert!(
            text.contains(needle),
            "{name}: expected `{needle}` in: {text}"
        );
    }
}

const MAIN: &str = "groups.default.pipelines.main";

#[test]
fn unknown_node_type_lists_the_known_ones() {
    assert_mentions(
        "unknown_node_type.yaml",
        &[
            &format!("{MAIN}.nodes.gen.type"),
            "unknown node type `receiver:trafic_generator`",
            "receiver:traffic_generator",
            ":8:",
        ],
    );
}

#[test]
fn unknown_field_names_the_field_and_the_expected_ones() {
    assert_mentions(
        "unknown_field.yaml",
        &[
            &format!("{MAIN}.nodes.gen"),
            "unknown field `confg`",
            "config",
            ":9:",
        ],
    );
}

#[test]
fn wrong_value_type_says_what_was_expected() {
    assert_mentions(
        "wrong_value_type.yaml",
        &[&format!("{MAIN}.channel_capacity"), "invalid type", ":6:"],
    );
}

#[test]
fn invalid_duration_suggests_the_units() {
    assert_mentions(
        "invalid_duration.yaml",
        &[
            "engine.telemetry.reporting_interval",
            "unknown unit `parsecs`",
            ":4:",
        ],
    );
}

#[test]
fn connection_to_a_missing_node_lists_the_nodes() {
    assert_mentions(
        "connection_to_missing_node.yaml",
        &[
            &format!("{MAIN}.connections[0].to"),
            "no node named `ou`",
            "gen, out",
            ":13:",
        ],
    );
}

#[test]
fn a_cycle_is_shown_along_its_nodes() {
    assert_mentions(
        "cycle.yaml",
        &[&format!("{MAIN}.connections"), "cycle", "a -> b -> a"],
    );
}

#[test]
fn a_receiver_cannot_have_an_input() {
    assert_mentions(
        "receiver_with_input.yaml",
        &[&format!("{MAIN}.connections[0].to"), "`gen2` is a receiver"],
    );
}

#[test]
fn an_exporter_cannot_have_an_output() {
    assert_mentions(
        "exporter_with_output.yaml",
        &[
            &format!("{MAIN}.connections[1].from"),
            "`out` is an exporter",
        ],
    );
}

#[test]
fn a_pipeline_needs_a_receiver() {
    assert_mentions(
        "pipeline_without_receiver.yaml",
        &[&format!("{MAIN}.nodes"), "no receiver"],
    );
}

#[test]
fn duplicate_node_ids_are_refused_by_the_parser() {
    assert_mentions(
        "duplicate_node_ids.yaml",
        &[&format!("{MAIN}.nodes"), "id `gen` is used twice"],
    );
}

#[test]
fn a_core_beyond_the_machine_names_the_cores_there_are() {
    assert_mentions(
        "core_list_beyond_machine.yaml",
        &[
            &format!("{MAIN}.cores"),
            "core 4095 is not on this machine",
            ":6:",
        ],
    );
}

#[test]
fn a_missing_file_says_so() {
    assert_mentions(
        "no_such_file.yaml",
        &["cannot read the configuration: no such file"],
    );
}

#[test]
fn an_unreadable_file_says_why() {
    assert_mentions("a_directory.yaml", &["cannot read the configuration"]);
    assert_mentions("not_utf8.yaml", &["not UTF-8"]);
}

#[test]
fn a_file_that_is_not_yaml_gets_the_parser_position() {
    let text = error_of("not_yaml.yaml");
    assert!(text.contains("not_yaml.yaml:"), "{text}");
    assert!(text.contains(":3:") || text.contains(":2:"), "{text}");
    let text = error_of("a_list_not_a_mapping.yaml");
    assert!(text.contains("YAML mapping"), "{text}");
}

#[test]
fn a_node_config_error_points_into_its_config_block() {
    assert_mentions(
        "invalid_node_config.yaml",
        &[
            &format!("{MAIN}.nodes.batch.config"),
            "`max_items` must be at least 1",
        ],
    );
}

#[test]
fn an_unsupported_version_names_the_supported_one() {
    assert_mentions(
        "unsupported_version.yaml",
        &[
            "version",
            "unsupported version `otel_dataflow/v2`",
            "otel_dataflow/v1",
            ":1:",
        ],
    );
}

const INTERNAL: &str = "engine.observability.pipeline";

#[test]
fn two_internal_receivers_are_refused() {
    assert_mentions(
        "two_internal_receivers.yaml",
        &[
            &format!("{INTERNAL}.nodes.second"),
            "a second `receiver:internal_telemetry`",
        ],
    );
}

#[test]
fn a_connection_into_the_internal_receiver_is_refused() {
    assert_mentions(
        "connection_into_internal_receiver.yaml",
        &[
            &format!("{INTERNAL}.connections[2].to"),
            "`telemetry` is a receiver",
        ],
    );
}

#[test]
fn keep_of_an_unknown_attribute_names_the_known_ones() {
    assert_mentions(
        "keep_unknown_attribute.yaml",
        &[
            &format!("{INTERNAL}.nodes.aggregate.config"),
            "`host.name`",
            "core.id, numa.node",
        ],
    );
}

#[test]
fn the_internal_receiver_runs_only_in_the_internal_pipeline() {
    assert_mentions(
        "internal_receiver_in_engine_pipeline.yaml",
        &[
            &format!("{MAIN}.nodes.telemetry.type"),
            "runs only in `engine.observability.pipeline`",
        ],
    );
}

#[test]
fn a_view_renaming_two_metrics_to_one_name_is_refused() {
    assert_mentions(
        "view_renames_two_metrics_to_one.yaml",
        &[
            &format!("{INTERNAL}.nodes.views.config"),
            "`engine.node.produced_items` is renamed to `items`",
            "views[0]",
        ],
    );
}
