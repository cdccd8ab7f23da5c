//! YAML pipeline configuration, graph assembly and the `its` binary.
//!
//! - [`load`] reads an `otel_dataflow/v1` file into a [`Config`] (unknown fields are
//!   errors; every error names the file, the YAML path and, where the parser gives it,
//!   the line).
//! - [`plan()`] checks what the parser cannot: node types and their `config` blocks,
//!   connections, graph shape (a receiver, no cycle, no receiver with an input, no
//!   exporter with an output), and places each pipeline on its cores.
//! - [`run()`] starts one pinned instance per pipeline and core and stops them on
//!   SIGINT/SIGTERM: receivers first, queues drain, every core reports its metric sets
//!   one last time.

// Every node crate this binary can run, named so the linker keeps their factories.
use its_exporter_console as _;
use its_exporter_otap as _;
use its_processors as _;
use its_receiver as _;
use nodes as _;

pub mod config;
pub mod error;
mod load;
pub mod plan;
pub mod run;

pub use config::Config;
pub use error::{ConfigError, ConfigErrors};
pub use load::{Loaded, load, parse};
pub use plan::{Plan, plan};
pub use run::{RunOutcome, run};

/// Loads and plans `file`, with `topology` overriding the file's and the machine's.
pub fn load_plan(file: &std::path::Path, topology: Option<&str>) -> Result<Plan, ConfigErrors> {
    let loaded = load(file)?;
    let machine = nodes::Topology::detect().map_err(|e| ConfigErrors::file(file, e.to_string()))?;
    let synthetic = topology
        .map(str::to_string)
        .or_else(|| loaded.config.engine.topology.clone());
    let topology = match synthetic {
        Some(spec) => nodes::Topology::synthetic(&spec, &machine).map_err(|e| {
            let mut errors = ConfigErrors::file(file, e.to_string());
            if topology.is_none() {
                errors.0[0].path = "engine.topology".into();
                errors.0[0].position = error::locate(&loaded.text, "engine.topology");
            }
            errors
        })?,
        None => machine,
    };
    plan(file, &loaded.text, &loaded.config, topology)
}
