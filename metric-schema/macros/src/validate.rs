//! Naming and unit rules, checked at compile time.

/// Unit words a metric name must not end with: the unit belongs in `unit = ...`, and
/// exporters that want suffixes (Prometheus) add them.
const UNIT_SUFFIXES: &[&str] = &[
    "total",
    "seconds",
    "second",
    "milliseconds",
    "microseconds",
    "nanoseconds",
    "bytes",
    "ratio",
    "percent",
];

/// Checks a metric name, set name or attribute key against the OpenTelemetry naming
/// rules. `what` names the thing in the message.
pub(crate) fn check_name(name: &str, what: &str, forbid_unit_suffix: bool) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    if name.len() > 255 {
        return Err(format!("{what} `{name}` is longer than 255 characters"));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(format!(
            "{what} `{name}` must start with a lowercase letter (a-z)"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '.' || *c == '_'))
    {
        return Err(format!(
            "{what} `{name}` contains `{c}`: use lowercase letters, digits, `_` within a word and `.` between namespaces"
        ));
    }
    if name.contains("..") || name.contains("._") || name.contains("_.") || name.contains("__") {
        return Err(format!(
            "{what} `{name}` has an empty segment: separators must stand between words"
        ));
    }
    if name.ends_with(['.', '_']) {
        return Err(format!("{what} `{name}` must not end with a separator"));
    }
    if forbid_unit_suffix {
        let last = name.rsplit(['.', '_']).next().unwrap_or(name);
        if name.len() > last.len() && UNIT_SUFFIXES.contains(&last) {
            return Err(format!(
                "{what} `{name}` ends with the unit word `{last}`: drop it and declare the unit with `unit = ...` (exporters add suffixes where their format wants them)"
            ));
        }
    }
    Ok(())
}

/// UCUM base units accepted after an optional prefix.
const ATOMS: &[&str] = &[
    "s", "min", "h", "d", "wk", "mo", "a", "m", "g", "t", "l", "L", "By", "bit", "Bd", "Hz", "Cel",
    "K", "A", "V", "W", "J", "N", "Pa", "bar", "rad", "deg", "sr", "mol", "cd", "C", "Ohm", "F",
    "T", "Wb", "lx", "lm", "%",
];
/// Units that take no prefix.
const UNPREFIXED: &[&str] = &["min", "h", "d", "wk", "mo", "a", "%", "deg", "Cel"];
/// SI and binary prefixes.
const PREFIXES: &[&str] = &[
    "da", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Y", "Z", "E", "P", "T", "G", "M", "k", "h", "d",
    "c", "m", "u", "n", "p", "f", "a", "z", "y",
];

/// Checks a unit against the subset of UCUM (case sensitive) that OpenTelemetry uses:
/// `1`, annotations `{item}`, prefixed atoms with integer exponents (`ms`, `KiBy`, `m2`),
/// products with `.` and quotients with `/` (`By/s`, `{packet}/s`).
pub(crate) fn check_unit(unit: &str) -> Result<(), String> {
    if unit.is_empty() {
        return Err(
            "the unit is empty: use `1` for a dimensionless value or an annotation like `{item}`"
                .into(),
        );
    }
    if unit.chars().any(char::is_whitespace) {
        return Err(format!("the unit `{unit}` contains white space"));
    }
    let mut rest = unit;
    let mut expect_term = true;
    while !rest.is_empty() {
        if expect_term {
            rest = term(rest).map_err(|e| format!("`{unit}` is not a UCUM unit: {e}"))?;
            expect_term = false;
        } else if let Some(r) = rest.strip_prefix(['/', '.']) {
            rest = r;
            expect_term = true;
        } else {
            return Err(format!(
                "`{unit}` is not a UCUM unit: expected `.` or `/` before `{rest}`"
            ));
        }
    }
    if expect_term {
        return Err(format!(
            "`{unit}` is not a UCUM unit: it ends with an operator"
        ));
    }
    Ok(())
}

/// One component: `1`, `10^3`-free integer factor, an annotation, or an atom with an
/// optional exponent and an optional trailing annotation. Returns what follows it.
fn term(s: &str) -> Result<&str, String> {
    if let Some(rest) = s.strip_prefix('{') {
        return annotation(rest);
    }
    let digits = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits > 0 {
        return Ok(&s[digits..]);
    }
    let end = s.find(['.', '/', '{']).unwrap_or(s.len());
    let word = &s[..end];
    let symbol = word.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-' || c == '+');
    if symbol.is_empty() {
        return Err(format!("`{word}` has no unit symbol"));
    }
    if !is_atom(symbol) {
        return Err(format!(
            "unknown unit symbol `{symbol}`; use a UCUM symbol such as `s`, `ms`, `By`, `KiBy`, `1`, or an annotation such as `{{item}}`"
        ));
    }
    let rest = &s[end..];
    match rest.strip_prefix('{') {
        Some(r) => annotation(r),
        None => Ok(rest),
    }
}

fn annotation(s: &str) -> Result<&str, String> {
    let close = s
        .find('}')
        .ok_or_else(|| "an annotation `{` is not closed".to_string())?;
    let body = &s[..close];
    if body.is_empty() {
        return Err("an annotation `{}` is empty".into());
    }
    if let Some(c) = body.chars().find(|c| !c.is_ascii_graphic() || *c == '{') {
        return Err(format!("an annotation contains `{c}`"));
    }
    Ok(&s[close + 1..])
}

fn is_atom(symbol: &str) -> bool {
    if ATOMS.contains(&symbol) {
        return true;
    }
    PREFIXES.iter().any(|p| {
        symbol
            .strip_prefix(p)
            .is_some_and(|atom| ATOMS.contains(&atom) && !UNPREFIXED.contains(&atom))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_units_opentelemetry_uses() {
        for u in [
            "s",
            "ms",
            "us",
            "ns",
            "By",
            "KiBy",
            "MiBy",
            "kBy",
            "bit",
            "1",
            "%",
            "{item}",
            "{packet}/s",
            "By/s",
            "m2",
            "s-1",
            "Cel",
            "Hz",
            "{request}",
            "1/s",
            "{cpu}.s",
            "ms{wall}",
        ] {
            assert_eq!(check_unit(u), Ok(()), "{u}");
        }
    }

    #[test]
    fn rejects_what_ucum_does_not_know() {
        for u in [
            "", "seconds", "sec", "bytes", "{item", "{}", "By/", "/s", "ms s", "kmin",
        ] {
            assert!(check_unit(u).is_err(), "{u} should be rejected");
        }
    }

    #[test]
    fn names_follow_the_opentelemetry_rules() {
        for ok in [
            "consumed_items",
            "node.processor",
            "a1.b_c",
            "http.server.duration",
        ] {
            assert_eq!(check_name(ok, "name", true), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "Consumed",
            "1abc",
            "a..b",
            "a.",
            "a_",
            "_a",
            "a-b",
            "items_total",
            "latency_seconds",
            "a__b",
            "size.bytes",
        ] {
            assert!(
                check_name(bad, "name", true).is_err(),
                "{bad} should be rejected"
            );
        }
    }
}
