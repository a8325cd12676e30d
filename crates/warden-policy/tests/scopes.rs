//! What a valid exception scope is, from the shared list in `tests/data/scopes.json` (the
//! tray form's inline check runs the same list in ui/tests/unit/validation.test.ts).

use serde::Deserialize;
use std::path::Path;
use warden_policy::{MAX_SCOPE_BYTES, ScopeError, check_scope};

#[derive(Deserialize)]
struct Cases {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    scope: String,
    problem: Option<String>,
}

fn kind(error: &ScopeError) -> &'static str {
    match error {
        ScopeError::Empty => "empty",
        ScopeError::TooLong(_) => "too-long",
        ScopeError::ControlCharacter => "control-character",
        ScopeError::NotAbsolute(_) => "not-absolute",
        ScopeError::DotComponent(_) => "dot-component",
        ScopeError::EmptyComponent(_) => "empty-component",
        ScopeError::TrailingSeparator(_) => "trailing-separator",
    }
}

#[test]
fn the_shared_scope_cases() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/scopes.json");
    let cases: Cases = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(cases.cases.len() >= 30, "only {} cases", cases.cases.len());
    let failures: Vec<String> = cases
        .cases
        .iter()
        .filter_map(|case| {
            let got = check_scope(&case.scope).err();
            let got_kind = got.as_ref().map(kind);
            (got_kind != case.problem.as_deref())
                .then(|| format!("{:?}: expected {:?}, got {got:?}", case.scope, case.problem))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn refusals_say_what_to_fix() {
    let relative = check_scope("../vendor-sdk").unwrap_err().to_string();
    assert!(relative.contains("absolute") && relative.contains("../vendor-sdk"), "{relative}");
    let dotted = check_scope("/src/../x").unwrap_err().to_string();
    assert!(dotted.contains("..") && dotted.contains("canonical"), "{dotted}");
}

#[test]
fn scopes_are_bounded_in_length() {
    let longest = format!("/{}", "a".repeat(MAX_SCOPE_BYTES - 1));
    assert_eq!(check_scope(&longest), Ok(()));
    let longer = format!("{longest}a");
    assert_eq!(check_scope(&longer), Err(ScopeError::TooLong(MAX_SCOPE_BYTES + 1)));
}
