//! Reading a file into a [`Config`], with the YAML path and position of every error.

use std::path::Path;

use crate::config::Config;
use crate::error::{ConfigError, ConfigErrors};

/// A configuration and the text it came from (for positions of later errors).
#[derive(Debug)]
pub struct Loaded {
    /// The parsed configuration.
    pub config: Config,
    /// The file's text.
    pub text: String,
}

/// Reads and parses `file`.
pub fn load(file: &Path) -> Result<Loaded, ConfigErrors> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            std::io::ErrorKind::InvalidData => "the file is not UTF-8 text".to_string(),
            _ => e.to_string(),
        };
        ConfigErrors::file(file, format!("cannot read the configuration: {why}"))
    })?;
    parse(file, &text).map(|config| Loaded { config, text })
}

/// Parses configuration text; `file` names it in errors.
pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigErrors> {
    if text.trim().is_empty() {
        return Err(ConfigErrors::file(
            file,
            "the file is empty; expected a YAML document starting with `version: otel_dataflow/v1`",
        ));
    }
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize::<_, Config>(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let position = inner.location().map(|l| (l.line(), l.column()));
        let mut message = inner.to_string();
        // serde_yaml_ng appends " at line L column C" and may prefix its own path; both
        // are printed already.
        if let Some(cut) = message.find(" at line ") {
            message.truncate(cut);
        }
        if let Some((prefix, rest)) = message.split_once(": ")
            && !prefix.contains(' ') && path.starts_with(prefix) {
                message = rest.to_string();
            }
        if message.starts_with("invalid type: ") && path == "." {
            message = format!(
                "{message}; the file must be a YAML mapping starting with `version: otel_dataflow/v1`"
            );
        }
        ConfigErrors(vec![ConfigError {
            file: file.to_path_buf(),
            path: if path == "." { String::new() } else { path },
            position,
            message,
        }])
    })
}
