//! Configuration errors: the file, the path in the document, the line where known.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// Where in the document, e.g. `groups.default.pipelines.main.nodes.gen.type`.
    pub path: String,
    /// Line and column (1-based), where the parser or the document gives them.
    pub position: Option<(usize, usize)>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in one configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    /// One error about the whole file.
    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        ConfigErrors(vec![ConfigError {
            file: file.to_path_buf(),
            path: String::new(),
            position: None,
            message: message.into(),
        }])
    }
}

/// Finds the line of a path such as `groups.default.pipelines.main.nodes.gen` or
/// `...connections[2].to` in block-style YAML: each segment is looked up below the
/// previous one, at a deeper indentation. `None` when the document is laid out in a way
/// this does not follow (flow style); the error then has no position.
pub fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut start = 0usize;
    let mut parent_indent: Option<usize> = None;
    let mut found = None;
    for segment in split_path(path) {
        let (key, index) = segment;
        let (line, indent) = find_key(&lines, start, parent_indent, key)?;
        found = Some((line + 1, indent + 1));
        start = line + 1;
        parent_indent = Some(indent);
        if let Some(index) = index {
            let (item_line, item_indent) = find_item(&lines, start, indent, index)?;
            found = Some((item_line + 1, item_indent + 1));
            // Keys of the item sit two columns right of its dash, on its own line too.
            start = item_line;
            parent_indent = Some(item_indent);
        }
    }
    found
}

fn split_path(path: &str) -> Vec<(&str, Option<usize>)> {
    path.split('.')
        .filter(|s| !s.is_empty())
        .map(|s| match s.split_once('[') {
            Some((key, rest)) => (key, rest.trim_end_matches(']').parse().ok()),
            None => (s, None),
        })
        .collect()
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn find_key(
    lines: &[&str],
    start: usize,
    parent: Option<usize>,
    key: &str,
) -> Option<(usize, usize)> {
    for (i, line) in lines.iter().enumerate().skip(start) {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let content = trimmed.strip_prefix("- ").unwrap_or(trimmed);
        let indent = line.len() - content.len();
        if parent.is_some_and(|p| indent_of(line) <= p && !trimmed.starts_with("- ")) {
            // Left the parent's block.
            if i > start {
                return None;
            }
        }
        let unquoted = content.trim_start_matches(['"', '\'']);
        if let Some(rest) = unquoted.strip_prefix(key) {
            let rest = rest.trim_start_matches(['"', '\'']);
            if rest.starts_with(':') && parent.is_none_or(|p| indent > p) {
                return Some((i, indent));
            }
        }
    }
    None
}

fn find_item(
    lines: &[&str],
    start: usize,
    key_indent: usize,
    index: usize,
) -> Option<(usize, usize)> {
    let mut seen = 0;
    for (i, line) in lines.iter().enumerate().skip(start) {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = indent_of(line);
        if indent < key_indent || (indent == key_indent && !trimmed.starts_with('-')) {
            return None;
        }
        if trimmed.starts_with('-') {
            if seen == index {
                return Some((i, indent));
            }
            seen += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "version: otel_dataflow/v1
groups:
  default:
    pipelines:
      main:
        nodes:
          gen:
            type: receiver:traffic_generator
          out:
            type: exporter:noop
        connections:
          - from: gen
            to: out
          - from: out
            to: gen
";

    #[test]
    fn paths_are_located_in_block_yaml() {
        assert_eq!(locate(DOC, "version"), Some((1, 1)));
        assert_eq!(
            locate(DOC, "groups.default.pipelines.main.nodes.out"),
            Some((9, 11))
        );
        assert_eq!(
            locate(DOC, "groups.default.pipelines.main.nodes.out.type"),
            Some((10, 13))
        );
        assert_eq!(
            locate(DOC, "groups.default.pipelines.main.connections[1]"),
            Some((14, 11))
        );
        assert_eq!(
            locate(DOC, "groups.default.pipelines.main.connections[1].to"),
            Some((15, 13))
        );
        assert_eq!(locate(DOC, "groups.default.pipelines.other"), None);
    }
}
