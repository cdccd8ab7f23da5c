//! One compile-fail case per macro mistake, each with its committed `.stderr`: the
//! message names the problem and points at the offending token.
//!
//! Regenerate the expectations after an intended change with `TRYBUILD=overwrite`.

#[test]
fn each_macro_mistake_gets_a_spanned_error() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
