//! Network decisions: the cases of `tests/data/network.toml` through `decide_connect`, and the
//! kernel ranges a policy compiles to.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use warden_policy::{Action, ConnectFacts, ConnectRule, Destinations, Exception, Policy, decide_connect};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data")
}

fn policy(name: &str) -> Policy {
    let text = std::fs::read_to_string(data().join("policies").join(name)).unwrap();
    Policy::from_toml(name, &text).unwrap()
}

#[derive(Deserialize)]
struct Cases {
    case: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    policy: Option<String>,
    host: Option<String>,
    address: Option<IpAddr>,
    /// The process's tool; "none" (or absent) for a process the catalog does not know.
    tool: Option<String>,
    person: Option<String>,
    #[serde(default)]
    now: i64,
    #[serde(default)]
    exceptions: Vec<Exception>,
    expect: Expected,
}

#[derive(Deserialize)]
struct Expected {
    action: Action,
    rule: String,
    destination: Option<String>,
    exception: Option<String>,
    #[serde(default)]
    monitor: bool,
}

#[test]
fn network_cases() {
    let cases: Cases = toml::from_str(&std::fs::read_to_string(data().join("network.toml")).unwrap()).unwrap();
    let mut failures = Vec::new();
    for case in &cases.case {
        let policy = policy(case.policy.as_deref().unwrap_or("network.toml"));
        let destinations = Destinations::new(&policy, &policy.catalog());
        let facts = ConnectFacts {
            host: case.host.clone(),
            address: case.address,
            tool: case.tool.clone().filter(|t| t != "none"),
            person: case.person.clone(),
            cwd: None,
        };
        let decision = decide_connect(&policy, &destinations, &case.exceptions, &facts, case.now);
        let (rule, exception) = match &decision.rule {
            ConnectRule::Ungoverned => ("ungoverned", None),
            ConnectRule::Sanctioned => ("sanctioned", None),
            ConnectRule::Exception { id } => ("exception", Some(id.clone())),
            ConnectRule::Destination => ("destination", None),
        };
        let got = (decision.action, rule.to_owned(), decision.destination.clone(), exception, decision.monitor);
        let want = (
            case.expect.action,
            case.expect.rule.clone(),
            case.expect.destination.clone(),
            case.expect.exception.clone(),
            case.expect.monitor,
        );
        if got != want {
            failures.push(format!("{}: expected {want:?}, got {got:?}", case.name));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.case.len(), failures.join("\n"));
}

#[test]
fn kernel_ranges_leave_sanctioned_addresses_open_and_take_the_strictest_action() {
    let policy = policy("network.toml");
    let destinations = Destinations::new(&policy, &policy.catalog());
    let names = destinations.names();
    for name in ["api.anthropic.com", "llm.acme.example", "api.mistral.ai", "models.partner.example"] {
        assert!(names.iter().any(|n| n == name), "{name} must be resolved: {names:?}");
    }
    assert!(!names.iter().any(|n| n.starts_with('*')), "wildcards are never resolved: {names:?}");
    let resolved: BTreeMap<String, Vec<IpAddr>> = [
        ("api.anthropic.com", vec!["127.0.0.21", "::1"]),
        ("api.openai.com", vec!["127.0.0.22"]),
        // A governed name sharing the sanctioned endpoint's address stays open: the kernel sees
        // only the address, and allow wins.
        ("chatgpt.com", vec!["127.0.0.30"]),
        ("llm.acme.example", vec!["127.0.0.30"]),
    ]
    .into_iter()
    .map(|(n, a)| (n.to_owned(), a.into_iter().map(|a| a.parse().unwrap()).collect()))
    .collect();
    let ranges: Vec<(String, Action)> =
        destinations.ranges(&resolved).into_iter().map(|r| (r.cidr.to_string(), r.action)).collect();
    assert!(ranges.contains(&("127.0.0.21/32".into(), Action::Block)), "{ranges:?}");
    assert!(ranges.contains(&("::1/128".into(), Action::Block)), "{ranges:?}");
    assert!(ranges.contains(&("127.0.0.22/32".into(), Action::Warn)), "{ranges:?}");
    assert!(ranges.contains(&("203.0.113.0/24".into(), Action::Block)), "{ranges:?}");
    assert!(
        ranges.contains(&("127.0.0.30/32".into(), Action::Allow)),
        "the sanctioned address is held open, never governed: {ranges:?}"
    );
}

/// Shared front ends: an address is `shared` only while every name reaching it is a shared one;
/// a policy CIDR (holding it or around it) or one dedicated name makes it governed for everyone.
#[test]
fn shared_front_ends_are_marked_per_address() {
    let policy = policy("network.toml");
    let destinations = Destinations::new(&policy, &policy.catalog());
    let resolved: BTreeMap<String, Vec<IpAddr>> = [
        // The catalog marks Gemini's googleapis names shared; the policy marks its CDN name shared.
        ("generativelanguage.googleapis.com", vec!["127.0.0.41", "127.0.0.42"]),
        ("api.cdn-hosted-ai.example", vec!["127.0.0.43", "192.0.2.130"]),
        // A dedicated name on the same address as a shared one: governed for everyone.
        ("api.anthropic.com", vec!["127.0.0.42"]),
        // A name under a governed `*.` domain, learned from a DNS answer.
        ("chat.deepseek.com", vec!["127.0.0.44"]),
    ]
    .into_iter()
    .map(|(n, a)| (n.to_owned(), a.into_iter().map(|a| a.parse().unwrap()).collect()))
    .collect();
    let ranges: Vec<(String, Action, bool)> =
        destinations.ranges(&resolved).into_iter().map(|r| (r.cidr.to_string(), r.action, r.shared)).collect();
    for expected in [
        ("127.0.0.41/32", Action::Warn, true),
        ("127.0.0.42/32", Action::Block, false),
        ("127.0.0.43/32", Action::Block, true),
        ("192.0.2.128/25", Action::Block, false),
        // Inside the policy's CIDR: governed for everyone, whatever name reached it.
        ("192.0.2.130/32", Action::Block, false),
        ("127.0.0.44/32", Action::Block, false),
    ] {
        let expected = (expected.0.to_owned(), expected.1, expected.2);
        assert!(ranges.contains(&expected), "{expected:?} in {ranges:?}");
    }
    // The kernel's name table: first destination per pattern, allow names kept.
    let names = destinations.name_rules();
    let rule = |text: &str| names.iter().find(|r| r.pattern.to_string() == text).map(|r| (r.action, r.shared));
    assert_eq!(rule("generativelanguage.googleapis.com"), Some((Action::Warn, true)));
    assert_eq!(rule("api.cdn-hosted-ai.example"), Some((Action::Block, true)));
    assert_eq!(rule("*.deepseek.com"), Some((Action::Block, false)));
    assert_eq!(rule("llm.acme.example"), Some((Action::Allow, false)));
    assert_eq!(rule("models.partner.example"), Some((Action::Allow, false)));
    assert_eq!(names.iter().filter(|r| r.pattern.to_string() == "api.anthropic.com").count(), 1);
}

#[test]
fn a_shared_host_must_be_one_of_the_tools_hosts() {
    let text = std::fs::read_to_string(data().join("policies").join("network.toml")).unwrap()
        + "\n[[catalog]]\nid = \"cdn-tool\"\nname = \"CDN tool\"\nvendor = \"Example\"\nkind = \"cli\"\n\
           hosting = \"cloud\"\nexecutables = [\"**/cdn-tool\"]\nhosts = [\"api.cdn-tool.example\"]\n\
           shared_hosts = [\"www.cdn-tool.example\"]\n";
    let error = Policy::from_toml("shared.toml", &text).unwrap_err().to_string();
    assert!(error.contains("shared host \"www.cdn-tool.example\"") && error.contains("shared.toml:"), "{error}");
}

#[test]
fn every_catalog_host_is_a_name_and_the_wire_form_is_unchanged_without_network() {
    let embedded = Policy::embedded();
    assert!(!embedded.to_json().contains("\"network\":"), "a policy without [network] signs as before");
    let with = policy("network.toml");
    assert_eq!(Policy::from_json("wire.json", &with.to_json()).unwrap(), with);
    let destinations = Destinations::new(&embedded, &embedded.catalog());
    let anthropic = destinations.by_host("api.anthropic.com").unwrap();
    assert_eq!(anthropic.action, Action::Block);
    assert!(anthropic.tools.iter().any(|t| t == "claude-code"), "{:?}", anthropic.tools);
    assert!(destinations.by_host("registry.ollama.ai").is_none(), "local tools' hosts are not governed");
}
