//! The step-around corpus (`tests/data/step-arounds.jsonl`): launches that step around the
//! vendor controls Warden writes (a redirected system settings file, an API base URL outside
//! the sanctioned destinations, the sanctioned client signed in to a public cloud, an
//! `--mcp-config` naming a forbidden server) get the risky-flag action with a reason naming
//! the control; their look-alikes do not. Exceptions with guardrails cover only the launches
//! that meet them; a local MCP server the policy denies, started by an AI tool, is decided as a
//! launch of that tool. `policy` names a file in `tests/data/policies/`, or `embedded`.

use serde::Deserialize;
use std::path::Path;
use warden_policy::{Action, Exception, Policy, ProcessFacts, Rule, evaluate};

#[derive(Deserialize)]
struct Case {
    name: String,
    policy: String,
    facts: ProcessFacts,
    #[serde(default)]
    exceptions: Vec<Exception>,
    expect: Expect,
}

#[derive(Deserialize)]
struct Expect {
    /// `null`: not an AI tool.
    tool: Option<String>,
    action: Action,
    stepped: bool,
    /// Words the reason must contain (what was stepped around, how it was written).
    #[serde(default)]
    says: Option<String>,
    /// The guardrail of a covering exception the launch breaks (`through-gateway`, …).
    #[serde(default)]
    guardrail: Option<String>,
    /// The kind of the deciding rule (`mcp-server`, `not-an-ai-tool`), when the case names one.
    #[serde(default)]
    rule: Option<String>,
}

fn policy(name: &str) -> Policy {
    if name == "embedded" {
        return Policy::embedded();
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/policies").join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    Policy::parse(name, &text).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_step_around_is_caught_and_named_and_look_alikes_are_not() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/step-arounds.jsonl");
    let text = std::fs::read_to_string(path).unwrap();
    let mut failures = Vec::new();
    let (mut stepped, mut clean) = (0, 0);
    for (line, json) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let case: Case = serde_json::from_str(json).unwrap_or_else(|e| panic!("step-arounds.jsonl:{}: {e}", line + 1));
        let policy = policy(&case.policy);
        let verdict = evaluate(&policy, &policy.catalog(), &case.exceptions, &case.facts, 1_800_000_000);
        let is_step = matches!(verdict.rule, Rule::RiskyFlag { .. }) && verdict.reason.contains(" steps around ");
        let says = case.expect.says.as_deref().is_none_or(|words| verdict.reason.contains(words));
        let guardrail = match &verdict.rule {
            Rule::Guardrail { condition, .. } => Some(condition.as_str()),
            _ => None,
        };
        let kind = serde_json::to_value(&verdict.rule).unwrap()["kind"].as_str().unwrap().to_owned();
        if verdict.tool != case.expect.tool
            || case.expect.rule.as_ref().is_some_and(|r| *r != kind)
            || verdict.action != case.expect.action
            || is_step != case.expect.stepped
            || guardrail != case.expect.guardrail.as_deref()
            || !says
        {
            failures.push(format!(
                "{}: expected {:?}/{} stepped {} saying {:?}; got {:?}/{} by {}: {}",
                case.name,
                case.expect.tool,
                case.expect.action,
                case.expect.stepped,
                case.expect.says,
                verdict.tool,
                verdict.action,
                verdict.rule,
                verdict.reason
            ));
        }
        if case.expect.stepped { stepped += 1 } else { clean += 1 }
    }
    assert!(failures.is_empty(), "{} failed:\n{}", failures.len(), failures.join("\n"));
    assert!(stepped >= 20 && clean >= 12, "{stepped} step-arounds, {clean} look-alikes");
}
