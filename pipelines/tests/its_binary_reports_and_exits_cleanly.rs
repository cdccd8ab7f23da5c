//! The `its` binary: exit codes, messages, and a graceful stop on SIGINT.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn its() -> Command {
    Command::new(env!("CARGO_BIN_EXE_its"))
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

#[test]
fn check_of_a_bad_config_exits_1_with_the_path_and_no_panic() {
    let out = its()
        .args(["check", "--config"])
        .arg(repo("pipelines/tests/fixtures/cycle.yaml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cycle.yaml"), "{stderr}");
    assert!(
        stderr.contains("groups.default.pipelines.main.connections"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn check_prints_the_graph_and_the_placement() {
    let out = its()
        .args(["check", "--config"])
        .arg(repo("configs/synthetic-numa.yaml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("synthetic 2 NUMA node(s)"), "{stdout}");
    assert!(stdout.contains("(numa 1, os core"), "{stdout}");
    assert!(stdout.contains("generator [default] -> noop"), "{stdout}");
}

#[test]
fn usage_mistakes_exit_2() {
    for args in [
        vec!["frobnicate"],
        vec!["run"],
        vec!["check", "--config"],
        vec![],
    ] {
        let out = its().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage:"));
    }
}

#[test]
fn nodes_lists_every_registered_type() {
    let out = its().arg("nodes").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    for t in [
        "receiver:traffic_generator",
        "processor:debug",
        "processor:batch",
        "exporter:noop",
    ] {
        assert!(stdout.contains(t), "{t} missing from: {stdout}");
    }
}

#[test]
fn a_finite_pipeline_runs_to_its_end_and_exits_0() {
    let out = its()
        .args(["run", "--config"])
        .arg(repo("configs/finite-rate-limited.yaml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("1000 messages, 10000 items"), "{stderr}");
    // The built-in internal pipeline prints the engine's metrics as tables.
    assert!(stdout.contains("node.id=noop"), "{stdout}");
    assert!(stdout.contains("consumed_items"), "{stdout}");
}

/// Kills the child if the test fails before it is waited for: a failed assertion must
/// not leave an `its run` spinning on the machine.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn sigint_drains_the_pipelines_and_exits_0() {
    let child = its()
        .args(["run", "--config"])
        .arg(repo("configs/default.yaml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = KillOnDrop(Some(child));
    let child = guard.0.as_mut().expect("just spawned");
    // The first line says signals are handled.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.contains("SIGINT or SIGTERM stops them"), "{line}");
    // Then intervals showing the engine's exporter at work and the ITS observing
    // itself (its receiver's and its console exporter's own sets).
    let (mut engine, mut receiver, mut exporter) = (false, false, false);
    while !(engine && receiver && exporter) {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "stdout ended early"
        );
        engine |= line.contains("node.id=noop");
        receiver |= line.starts_with("its.receiver ");
        exporter |= line.starts_with("its.exporter ");
    }
    // SAFETY: sending a signal to our own child process, whose pid is valid until waited.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(rc, 0);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let out = guard
        .0
        .take()
        .expect("not waited yet")
        .wait_with_output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("failed"), "{stderr}");
    // The last interval after the stop still reports the exporter's work.
    assert!(rest.contains("consumed_items"), "{rest}");
}

#[test]
fn the_internal_pipeline_runs_beside_and_stops_after_the_engine() {
    let out = its()
        .args(["run", "--config"])
        .arg(repo("configs/internal-pipeline.yaml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("default/main: 10000000 items reached the exporters"),
        "{stderr}"
    );
}

/// Sums the JSON lines of `exporter:console` per (node id, core, metric).
fn json_totals(stdout: &str) -> std::collections::HashMap<(String, String, String), u64> {
    let mut totals = std::collections::HashMap::new();
    for line in stdout.lines().filter(|l| l.starts_with('{')) {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        // The engine pipeline's nodes only (the ITS reports on its own nodes too).
        if v["set"] != "engine.node" || v["attributes"]["pipeline.group"] != "demo" {
            continue;
        }
        let key = (
            v["attributes"]["node.id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            v["attributes"]["core.id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            v["metric"].as_str().unwrap_or_default().to_string(),
        );
        *totals.entry(key).or_insert(0) += v["value"].as_u64().unwrap_or(0);
    }
    totals
}

#[test]
fn the_its_exports_every_increment_of_a_finite_run() {
    its_exports_every_increment(&[]);
}

#[test]
fn the_numa_first_stage_loses_nothing_either() {
    its_exports_every_increment(&["--topology", "numa:2 core:1"]);
}

fn its_exports_every_increment(extra: &[&str]) {
    let out = its()
        .args(["run", "--config"])
        .arg(repo("configs/internal-telemetry.yaml"))
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let totals = json_totals(&stdout);
    let cores: std::collections::BTreeSet<&String> =
        totals.keys().map(|(_, core, _)| core).collect();
    assert!(!cores.is_empty(), "no per-core series in: {stdout}");
    for core in cores {
        let get = |node: &str, metric: &str| {
            totals
                .get(&(node.to_string(), core.clone(), metric.to_string()))
                .copied()
                .unwrap_or(0)
        };
        // 20000 batches of 7 items per core, every one of them accounted for.
        assert_eq!(get("generator", "produced_items"), 140_000, "core {core}");
        assert_eq!(get("batch", "consumed_items"), 140_000, "core {core}");
        assert_eq!(get("noop", "consumed_items"), 140_000, "core {core}");
    }
    assert!(
        stderr.contains("cumulative"),
        "the totals table goes to stderr: {stderr}"
    );
}

#[test]
fn an_unreachable_otap_endpoint_never_holds_the_engine_up() {
    // A port nothing listens on: bind, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = std::fs::read_to_string(repo("configs/otap-export.yaml"))
        .unwrap()
        .replace("http://127.0.0.1:4317", &format!("http://127.0.0.1:{port}"))
        .replace("engine:\n", "engine:\n  shutdown_grace: 1500ms\n");
    let dir = std::env::temp_dir().join(format!("its-unreachable-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("otap-unreachable.yaml");
    std::fs::write(&path, config).unwrap();
    let started = std::time::Instant::now();
    let out = its().args(["run", "--config"]).arg(&path).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The engine pipelines ran to their end (a second at their rate); only the 1.5 s
    // shutdown grace was spent on the endpoint.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stderr.matches("cannot connect").count(), 1, "{stderr}");
    assert!(stderr.contains("counted as dropped"), "{stderr}");
}
