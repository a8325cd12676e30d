//! The launch corpus (`tests/data/launches.jsonl`): every launch must be recognised as the
//! expected tool (or as no tool) and get the expected action under the embedded policy.

use serde::Deserialize;
use warden_policy::{Action, Catalog, Policy, ProcessFacts, evaluate};

#[derive(Deserialize)]
struct Case {
    name: String,
    os: String,
    facts: ProcessFacts,
    expect: Expect,
}

#[derive(Deserialize)]
struct Expect {
    tool: Option<String>,
    action: Action,
}

fn corpus() -> Vec<Case> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/launches.jsonl");
    let text = std::fs::read_to_string(path).expect("corpus readable");
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("launches.jsonl:{}: {e}", i + 1)))
        .collect()
}

#[test]
fn every_launch_in_the_corpus_gets_the_expected_tool_and_action() {
    let policy = Policy::embedded();
    let catalog: Catalog = policy.catalog();
    let cases = corpus();
    let mut failures = Vec::new();
    for case in &cases {
        let verdict = evaluate(&policy, &catalog, &[], &case.facts, 1_800_000_000);
        if verdict.tool != case.expect.tool || verdict.action != case.expect.action {
            failures.push(format!(
                "{} [{}]: expected {:?}/{}, got {:?}/{} ({:?})",
                case.name,
                case.os,
                case.expect.tool,
                case.expect.action,
                verdict.tool,
                verdict.action,
                verdict.evidence
            ));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn corpus_is_broad_enough() {
    let cases = corpus();
    let negatives = cases.iter().filter(|c| c.expect.tool.is_none()).count();
    assert!(cases.len() >= 120, "only {} cases", cases.len());
    assert!(negatives >= 40, "only {negatives} must-not-match cases");
    for os in ["linux", "macos", "windows"] {
        let positives = cases.iter().filter(|c| c.os == os && c.expect.tool.is_some()).count();
        let negatives = cases.iter().filter(|c| c.os == os && c.expect.tool.is_none()).count();
        assert!(positives >= 10 && negatives >= 3, "{os}: {positives} matches, {negatives} non-matches");
    }
    // Every catalog tool that runs as a process of its own appears in the corpus.
    let catalog = Catalog::embedded();
    for tool in catalog.tools().iter().filter(|t| !t.executables.is_empty() || !t.scripts.is_empty()) {
        assert!(
            cases.iter().any(|c| c.expect.tool.as_deref() == Some(&tool.id)),
            "no launch of {} in the corpus",
            tool.id
        );
    }
}
