//! Bad configuration gets an error, never a panic: every file in `configs/`, broken in
//! many seeded ways (lines dropped, repeated, swapped or re-indented, values replaced
//! by hostile ones, the text cut short; and, as often, one value only, so that the
//! nodes' own checks see it), is parsed and planned. Each outcome must be a
//! plan or errors that name the file; a panic fails the test with the mutated text,
//! which the seed reproduces.

use std::path::{Path, PathBuf};

/// Mutated variants of each configuration, of each kind (any edit; one value).
const CASES_PER_FILE: u64 = 400;

/// Values a careless or hostile edit puts where a scalar was.
const HOSTILE: &[&str] = &[
    "-1",
    "0",
    "1",
    "65536",
    "4294967296",
    "18446744073709551616",
    "-9223372036854775809",
    "1e308",
    "-1e308",
    ".nan",
    ".inf",
    "''",
    "\"\"",
    "[]",
    "{}",
    "~",
    "true",
    "\"\\u0000\"",
    "0s",
    "0ms",
    "-5ms",
    "999999999999h",
    "18446744073709551615s",
    "1.5ns",
    "all",
    "0-",
    "3-1",
    "1-18446744073709551615",
    "a:b:c",
    "http://",
    "https://[::1",
    "${env:ITS_CONFIG_FUZZ_NO_SUCH_VARIABLE}",
    "\"${env:\"",
    "*anchor",
    "&a [*a]",
    "!!binary aGk=",
    "- - -",
    "receiver:internal_telemetry",
    "exporter:otap",
];

/// xorshift64*: the same mutations on every run and machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to three edits of `text`.
fn mutate(text: &str, rng: &mut Rng) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for _ in 0..=rng.below(3) {
        if lines.is_empty() {
            break;
        }
        let i = rng.below(lines.len());
        match rng.below(7) {
            0 => {
                lines.remove(i);
            }
            1 => {
                let line = lines[i].clone();
                lines.insert(i, line);
            }
            2 => {
                let j = rng.below(lines.len());
                lines.swap(i, j);
            }
            3 => {
                if rng.below(2) == 0 {
                    lines[i].insert_str(0, "  ");
                } else if lines[i].starts_with("  ") {
                    lines[i].drain(..2);
                }
            }
            4 | 5 => {
                // A value replaced: after `key: `, a list item, or a block (`key:`)
                // turned into a scalar.
                let value = HOSTILE[rng.below(HOSTILE.len())];
                let line = lines[i].trim_end();
                if let Some(at) = line.find(": ") {
                    lines[i] = format!("{}: {value}", &line[..at]);
                } else if let Some(at) = line.find("- ") {
                    lines[i] = format!("{}- {value}", &line[..at]);
                } else if line.ends_with(':') {
                    lines[i] = format!("{line} {value}");
                } else {
                    lines[i] = format!("{line}: {value}");
                }
            }
            _ => {
                // Cut short, on a character boundary.
                let mut joined = lines.join("\n");
                let mut at = rng.below(joined.len() + 1);
                while !joined.is_char_boundary(at) {
                    at -= 1;
                }
                joined.truncate(at);
                lines = joined.lines().map(str::to_owned).collect();
            }
        }
    }
    lines.join("\n")
}

/// One scalar value (after `key: `) replaced by a hostile one, the structure kept:
/// what reaches the nodes' own configuration checks.
fn mutate_value(text: &str, rng: &mut Rng) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let scalars: Vec<usize> = (0..lines.len())
        .filter(|i| {
            let line = lines[*i].trim_start();
            !line.starts_with('#') && line.contains(": ")
        })
        .collect();
    if let Some(&i) = scalars.get(rng.below(scalars.len())) {
        let at = lines[i].find(": ").expect("a scalar line");
        let value = HOSTILE[rng.below(HOSTILE.len())];
        lines[i] = format!("{}: {value}", &lines[i][..at]);
    }
    lines.join("\n")
}

fn configs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn mutated_configurations_get_errors_not_panics() {
    let machine = nodes::Topology::detect().expect("the machine's topology");
    let files = configs();
    assert!(files.len() >= 5, "the configs directory: {files:?}");
    // Quiet the default hook: a panic is reported below, with its input.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let (mut planned, mut refused) = (0, 0);
    let mut panics = Vec::new();
    for (f, file) in files.iter().enumerate() {
        let text = std::fs::read_to_string(file).expect("a config file");
        for case in 0..2 * CASES_PER_FILE {
            let seed = ((f as u64) << 32 | case) + 1;
            // Half the cases break anything, half only a value.
            let mutated = if case < CASES_PER_FILE {
                mutate(&text, &mut Rng(seed))
            } else {
                mutate_value(&text, &mut Rng(seed))
            };
            let outcome = std::panic::catch_unwind(|| {
                let config = pipelines::parse(file, &mutated)?;
                pipelines::plan(file, &mutated, &config, machine.clone())
            });
            match outcome {
                Ok(Ok(_)) => planned += 1,
                Ok(Err(errors)) => {
                    let message = errors.to_string();
                    assert!(
                        message.contains(&file.display().to_string()),
                        "seed {seed}: the error names the file:\n{message}\n--- from:\n{mutated}"
                    );
                    refused += 1;
                }
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default();
                    panics.push(format!(
                        "seed {seed}, {}: {what}\n{mutated}",
                        file.display()
                    ));
                }
            }
        }
    }
    std::panic::set_hook(hook);
    assert!(
        panics.is_empty(),
        "{} of {} mutated configurations panicked; the first:\n{}",
        panics.len(),
        planned + refused + panics.len(),
        panics[0]
    );
    eprintln!("{planned} planned, {refused} refused");
    // The mutations must exercise both sides, or they test nothing.
    assert!(
        planned > 0 && refused > planned / 4,
        "{planned} planned, {refused} refused"
    );
}
