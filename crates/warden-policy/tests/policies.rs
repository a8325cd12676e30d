//! Policy files: precedence cases (`tests/data/precedence.toml`) and malformed policies
//! (`tests/data/bad-policies/`), whose first line says where the error must point.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use warden_policy::{Action, AncestorFacts, ContentFacts, Exception, Policy, ProcessFacts, evaluate};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data")
}

#[derive(Deserialize)]
struct Cases {
    case: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    policy: String,
    #[serde(default)]
    exceptions: Vec<Exception>,
    exe: String,
    argv: Vec<String>,
    cwd: Option<String>,
    /// The launch's login name (default `dev`) and the account it is bound to, if any.
    user: Option<String>,
    account: Option<String>,
    #[serde(default)]
    ancestors: Vec<AncestorFacts>,
    /// What the edge found in the program file (fingerprint, SHA-256).
    content: Option<ContentFacts>,
    now: i64,
    expect: Expected,
}

#[derive(Deserialize)]
struct Expected {
    action: Action,
    rule: String,
    exception: Option<String>,
    #[serde(default)]
    monitor: bool,
    #[serde(default)]
    continues_launch: bool,
}

#[test]
fn precedence_cases() {
    let text = std::fs::read_to_string(data().join("precedence.toml")).unwrap();
    let cases: Cases = toml::from_str(&text).unwrap();
    let mut failures = Vec::new();
    for case in &cases.case {
        let file = data().join("policies").join(&case.policy);
        let policy = Policy::from_toml(&case.policy, &std::fs::read_to_string(file).unwrap()).unwrap();
        let facts = ProcessFacts {
            exe: case.exe.clone(),
            argv: case.argv.clone(),
            cwd: case.cwd.clone(),
            user: Some(case.user.clone().unwrap_or_else(|| "dev".into())),
            account: case.account.clone(),
            ancestors: case.ancestors.clone(),
            content: case.content.clone(),
            ..ProcessFacts::default()
        };
        let verdict = evaluate(&policy, &policy.catalog(), &case.exceptions, &facts, case.now);
        let got = (
            verdict.action,
            verdict.rule.to_string(),
            verdict.exception.clone(),
            verdict.monitor,
            verdict.continues_launch,
        );
        let want = (
            case.expect.action,
            case.expect.rule.clone(),
            case.expect.exception.clone(),
            case.expect.monitor,
            case.expect.continues_launch,
        );
        if got != want {
            failures.push(format!("{}: expected {want:?}, got {got:?} ({})", case.name, verdict.reason));
        }
        // Every warning and block offers the sanctioned assistant, when the policy has one.
        if verdict.action > Action::Allow && policy.assistant.is_some() && verdict.assistant.is_none() {
            failures.push(format!("{}: no assistant offered", case.name));
        }
    }
    assert!(cases.case.len() >= 20);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn malformed_policies_name_file_line_and_column() {
    let dir = data().join("bad-policies");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".expect") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let expectation = match std::fs::read_to_string(dir.join(format!("{name}.expect"))) {
            Ok(sidecar) => sidecar.trim().to_owned(),
            Err(_) => text.lines().next().unwrap().trim_start_matches("# expect: ").to_owned(),
        };
        let (position, message) = expectation.split_at(expectation.find(": ").unwrap());
        let message = message.trim_start_matches(": ").trim();
        let error = Policy::parse(&name, &text).expect_err(&name);
        assert_eq!(error.location.file, name);
        assert_eq!(format!("{}:{}", error.location.line, error.location.column), position, "{name}: {error}");
        assert!(error.message.contains(message), "{name}: {error:?} does not say {message:?}");
        assert!(error.to_string().starts_with(&format!("{name}:{position}: ")), "{error}");
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} malformed policies");
}

/// No input makes the parser panic: every prefix of every policy fixture, and the same
/// text with each character replaced, either parses or is refused with a location.
#[test]
fn truncated_and_damaged_policies_never_panic() {
    let mut texts = vec![("default-policy.toml".to_owned(), warden_policy::EMBEDDED_POLICY.to_owned())];
    for entry in std::fs::read_dir(data().join("policies")).unwrap() {
        let path = entry.unwrap().path();
        texts.push((path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&path).unwrap()));
    }
    let json = Policy::embedded().to_json();
    texts.push(("wire.json".to_owned(), json));
    let mut refused = 0;
    for (name, text) in &texts {
        let cuts = text.char_indices().map(|(i, _)| i).step_by(3);
        for cut in cuts {
            if let Err(error) = Policy::parse(name, &text[..cut]) {
                assert!(error.location.line >= 1 && error.location.column >= 1, "{error}");
                refused += 1;
            }
        }
        for (i, c) in text.char_indices().step_by(29) {
            for replacement in ['"', '[', '=', '\n', 'é'] {
                let damaged = format!("{}{replacement}{}", &text[..i], &text[i + c.len_utf8()..]);
                let _ = Policy::parse(name, &damaged);
            }
        }
    }
    assert!(refused > 500, "only {refused} refusals");
}
