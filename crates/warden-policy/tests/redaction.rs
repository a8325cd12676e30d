//! What of a command line an event keeps (`tests/data/redaction.jsonl`): the program, the options
//! the catalog knows and their setting values; prompts, settings JSON, MCP documents, overrides and
//! unknown options' values become `‹redacted›`, unless `[privacy] full_command_lines` is set.

use serde::Deserialize;
use warden_policy::{Policy, ProcessFacts, shareable_argv};

#[derive(Deserialize)]
struct Case {
    name: String,
    tool: Option<String>,
    #[serde(default)]
    full: bool,
    facts: ProcessFacts,
    expect: Vec<String>,
}

#[test]
fn command_lines_keep_what_governs_and_nothing_a_developer_typed() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/redaction.jsonl")).unwrap();
    let mut failures = Vec::new();
    let mut count = 0;
    for (line, json) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let case: Case = serde_json::from_str(json).unwrap_or_else(|e| panic!("redaction.jsonl:{}: {e}", line + 1));
        let mut policy = Policy::embedded();
        policy.privacy.full_command_lines = case.full;
        let kept = shareable_argv(&policy, &policy.catalog(), &case.facts, case.tool.as_deref());
        if kept != case.expect {
            failures.push(format!("{}: expected {:?}, got {:?}", case.name, case.expect, kept));
        }
        count += 1;
    }
    assert!(failures.is_empty(), "{} failed:\n{}", failures.len(), failures.join("\n"));
    assert!(count >= 12, "{count} cases");
}

#[test]
fn the_privacy_section_parses_and_refuses_unknown_keys() {
    let on = Policy::parse("p.toml", "name = \"p\"\ndefault_action = \"warn\"\n[privacy]\nfull_command_lines = true\n")
        .unwrap();
    assert!(on.privacy.full_command_lines);
    let error =
        Policy::parse("p.toml", "name = \"p\"\ndefault_action = \"warn\"\n[privacy]\nfull = true\n").unwrap_err();
    assert!(error.to_string().contains("p.toml:4"), "{error}");
}
