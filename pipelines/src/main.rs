//! `its`: run, check or list the pipelines of an `otel_dataflow/v1` configuration.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage:
  its run --config FILE [--topology SPEC]    run the pipelines until SIGINT/SIGTERM
  its check --config FILE [--topology SPEC]  validate, print the graph and core placement
  its nodes                                  list the node types this binary knows
  its --help | --version

SPEC is a synthetic topology such as 'numa:2 core:1' (default: the machine's).";

struct Args {
    command: String,
    config: Option<PathBuf>,
    topology: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let command = args.next().ok_or("missing command")?;
    let mut parsed = Args {
        command,
        config: None,
        topology: None,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" | "-c" => {
                parsed.config = Some(args.next().ok_or("`--config` needs a file")?.into());
            }
            "--topology" => parsed.topology = Some(args.next().ok_or("`--topology` needs a spec")?),
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    Ok(parsed)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("its: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match args.command.as_str() {
        "--help" | "-h" | "help" => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        "--version" | "-V" => {
            println!("its {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        "nodes" => list_nodes(),
        "check" | "run" => {
            let Some(config) = args.config else {
                eprintln!("its: `{}` needs `--config FILE`\n{USAGE}", args.command);
                return ExitCode::from(2);
            };
            let plan = match pipelines::load_plan(&config, args.topology.as_deref()) {
                Ok(plan) => plan,
                Err(errors) => {
                    eprintln!("{errors}");
                    return ExitCode::FAILURE;
                }
            };
            if args.command == "check" {
                print_plan(&plan);
                return ExitCode::SUCCESS;
            }
            run(&plan)
        }
        other => {
            eprintln!("its: unknown command `{other}`\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn list_nodes() -> ExitCode {
    match nodes::factories() {
        Ok(factories) => {
            for f in factories {
                println!("{:<32} {}", f.type_name, f.description);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("its: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_plan(plan: &pipelines::Plan) {
    println!("topology: {}", plan.topology);
    println!(
        "telemetry: every {:?}, engine metrics {}",
        plan.settings.reporting_interval,
        if plan.settings.telemetry { "on" } else { "off" }
    );
    let mut all = plan
        .pipelines
        .iter()
        .map(|(s, p)| (s, Some(p)))
        .collect::<Vec<_>>();
    if let Some(internal) = &plan.internal {
        all.push((internal, None));
    }
    for (spec, placements) in all {
        match placements {
            Some(p) => {
                let cores: Vec<String> = p
                    .iter()
                    .map(|c| format!("{} (numa {}, os core {})", c.core, c.numa_node, c.os_core))
                    .collect();
                println!(
                    "pipeline {}/{} on cores {}",
                    spec.group,
                    spec.name,
                    cores.join(", ")
                );
            }
            None => println!("internal telemetry pipeline (its own thread)"),
        }
        for node in &spec.nodes {
            println!("  node {} ({})", node.id, node.type_name);
        }
        for e in &spec.edges {
            println!(
                "  {} [{}] -> {}",
                spec.nodes[e.from].id, e.port, spec.nodes[e.to].id
            );
        }
    }
}

fn run(plan: &pipelines::Plan) -> ExitCode {
    match pipelines::run(plan, Box::new(std::io::stdout())) {
        Ok(outcome) => {
            for (pipeline, items) in &outcome.exported_items {
                eprintln!("its: {pipeline}: {items} items reached the exporters");
            }
            for instance in &outcome.instances {
                for (node, why) in &instance.node_failures {
                    eprintln!(
                        "its: {}/{} core {}: node `{node}` failed: {why}",
                        instance.pipeline.0, instance.pipeline.1, instance.core
                    );
                }
            }
            if outcome.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("its: {e}");
            ExitCode::FAILURE
        }
    }
}
