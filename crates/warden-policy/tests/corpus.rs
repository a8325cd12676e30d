//! The launch corpus (`tests/data/launches.jsonl`): every launch must be recognised as the
//! expected tool (or as no tool) and get the expected action under the embedded policy,
//! with the launch's own `exceptions` (if any) in force; `risky` says whether a risky mode
//! must (true) or must not (false) be what decided.

use serde::Deserialize;
use warden_policy::{Action, Catalog, Exception, Policy, ProcessFacts, Rule, evaluate};

#[derive(Deserialize)]
struct Case {
    name: String,
    os: String,
    facts: ProcessFacts,
    #[serde(default)]
    exceptions: Vec<Exception>,
    expect: Expect,
}

#[derive(Deserialize)]
struct Expect {
    tool: Option<String>,
    action: Action,
    #[serde(default)]
    risky: Option<bool>,
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
        let verdict = evaluate(&policy, &catalog, &case.exceptions, &case.facts, 1_800_000_000);
        let risky = matches!(verdict.rule, Rule::RiskyFlag { .. });
        if verdict.tool != case.expect.tool
            || verdict.action != case.expect.action
            || case.expect.risky.is_some_and(|want| want != risky)
        {
            failures.push(format!(
                "{} [{}]: expected {:?}/{} (risky {:?}), got {:?}/{} by {} ({:?})",
                case.name,
                case.os,
                case.expect.tool,
                case.expect.action,
                case.expect.risky,
                verdict.tool,
                verdict.action,
                verdict.rule,
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
    // Risky modes: every spelling, and look-alikes that must not count as one.
    let risky = cases.iter().filter(|c| c.expect.risky == Some(true)).count();
    let not_risky = cases.iter().filter(|c| c.expect.risky == Some(false)).count();
    assert!(risky >= 25 && not_risky >= 15, "{risky} risky launches, {not_risky} risky look-alikes");
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
