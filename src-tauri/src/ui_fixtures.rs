//! The JSON the windows' tests feed to the mocked IPC (`ui/tests/fixtures/`), generated
//! from the real view builders over the embedded policy, so the mocks cannot drift from
//! what the commands return. `WARDEN_UPDATE_FIXTURES=1 cargo test -p warden-tray` rewrites them.

use crate::my_requests::{ExceptionRequest, RequestStatus};
use crate::request_form::ScopeChoice;
use crate::views::{activity_rows, catalog_view, form_rules, masking_line};
use std::collections::HashMap;
use std::path::PathBuf;
use warden_api::{LaunchEvent, Outcome};
use warden_policy::{Action, Policy};

const DAY_MS: i64 = 86_400_000;
/// A fixed moment (2026-11-20T09:00:00Z) so fixtures do not change from run to run.
const AT: i64 = 1_795_251_600_000;

fn event(
    id: &str,
    minutes_before: i64,
    tool: &str,
    action: Action,
    outcome: Outcome,
    reason: &str,
    cwd: &str,
) -> LaunchEvent {
    LaunchEvent {
        id: id.into(),
        at_ms: AT - minutes_before * 60_000,
        pid: 4000 + minutes_before as u32,
        user: Some("dev".into()),
        exe: match tool {
            "claude-code" => "/home/dev/.local/share/claude/versions/2.1.37".into(),
            "cursor" => "/opt/Cursor/cursor".into(),
            _ => "/usr/local/bin/qwen".into(),
        },
        argv: vec![],
        cwd: Some(cwd.into()),
        tool: Some(tool.into()),
        action,
        outcome,
        rule: format!("tool:{tool}"),
        reason: reason.into(),
        exception: None,
        policy_version: None,
        source: "proc-connector".into(),
    }
}

fn fixtures() -> Vec<(&'static str, serde_json::Value)> {
    let policy = Policy::embedded();
    let catalog = policy.catalog();
    let installed = HashMap::from([("claude-code".to_owned(), true), ("qwen-code".to_owned(), true)]);
    let claude_reason = &policy.tools["claude-code"].message;
    let events = [
        event("ev-claude-1", 3, "claude-code", Action::Block, Outcome::Killed, claude_reason, "/home/dev/src/payments"),
        event("ev-cursor-1", 40, "cursor", Action::Warn, Outcome::Warned, &policy.default_message, "/home/dev/src/web"),
        event(
            "ev-qwen-1",
            90,
            "qwen-code",
            Action::Allow,
            Outcome::Allowed,
            "Qwen Code is the client of the sanctioned assistant",
            "/home/dev/src/payments",
        ),
        event("ev-claude-0", 300, "claude-code", Action::Block, Outcome::Denied, claude_reason, "/home/dev/src/web"),
    ];
    let request = |id: &str, tool: &str, name: &str, days_ago: i64, status: RequestStatus| ExceptionRequest {
        id: id.into(),
        tool: tool.into(),
        tool_name: name.into(),
        justification: "Reproducing a customer bug that only shows up with this tool's output.".into(),
        scope: if tool == "cursor" { ScopeChoice::Everywhere } else { ScopeChoice::Repository },
        repository: (tool != "cursor").then(|| "/home/dev/src/payments".into()),
        duration_seconds: 7 * 86_400,
        created_at_ms: AT - days_ago * DAY_MS,
        status,
    };
    let requests = [
        request("req-5", "claude-code", "Claude Code", 0, RequestStatus::WaitingToBeSent),
        request("req-4", "cursor", "Cursor", 1, RequestStatus::Pending),
        request(
            "req-3",
            "claude-code",
            "Claude Code",
            2,
            RequestStatus::Approved {
                until_ms: AT + 5 * DAY_MS,
                conditions: "only through the company gateway; no risky modes".into(),
            },
        ),
        request(
            "req-2",
            "claude-code",
            "Claude Code",
            3,
            RequestStatus::Denied {
                comment: "Please use the Internal Assistant for this repository.".into(),
                by: Some("lead@example.com".into()),
            },
        ),
        request("req-1", "cursor", "Cursor", 20, RequestStatus::Expired),
        request("req-0b", "claude-code", "Claude Code", 25, RequestStatus::Withdrawn),
        request(
            "req-0a",
            "cursor",
            "Cursor",
            30,
            RequestStatus::Revoked { comment: "Security incident: all Cursor exceptions ended.".into(), by: None },
        ),
    ];
    let about = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "policyName": policy.name,
        "policyVersion": "embedded",
        "policySource": "embedded default",
        "policyProblem": null,
        "server": "none configured: exception requests wait on this device",
        "device": "dev-laptop",
        "status": "Warden: blocked claude-code 3 minutes ago.",
        "eventSource": "proc-connector",
    });
    let gateway = warden_api::local::GatewayState {
        url: "http://127.0.0.1:8788/v1".into(),
        upstream: "https://assistant.internal.example/v1".into(),
        assistant: Some("Internal Assistant".into()),
        error: None,
        requests_24h: 7,
        masked_24h: 5,
        kept_masked_24h: 1,
        last: Some(warden_api::MaskingEvent {
            id: "mask-1".into(),
            at_ms: AT - 2 * 60_000,
            user: Some("dev".into()),
            path: "/v1/chat/completions".into(),
            status: 200,
            destination: "Internal Assistant".into(),
            masked: [
                ("aws-access-key-id".to_owned(), 1),
                ("private-key".to_owned(), 1),
                ("internal-host".to_owned(), 1),
            ]
            .into(),
            restored: 3,
            kept_masked_in: vec![],
        }),
    };
    // What `wardend` would report writing for this policy (the tray shows it per tool).
    let managed: Vec<_> = warden_policy::render_controls(&policy, &catalog, &[], 0)
        .iter()
        .map(|f| warden_service::controls::file_state(f, std::path::Path::new(f.path), true))
        .collect();
    let json = |v: &dyn erased::Json| v.to_json();
    vec![
        ("catalog_view", json(&catalog_view(&policy, &catalog, Some(&installed), &managed))),
        ("recent_activity", json(&activity_rows(&events, &catalog))),
        ("masking_line", json(&masking_line(Some(&gateway)))),
        ("exception_form", json(&form_rules(&policy, &catalog))),
        ("exception_requests", json(&requests.to_vec())),
        ("about", about),
    ]
}

mod erased {
    pub trait Json {
        fn to_json(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> serde_json::Value {
            serde_json::to_value(self).expect("view models serialize")
        }
    }
}

#[test]
fn ui_fixtures_match_the_view_builders() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
        .join("../ui/tests/fixtures");
    let update = std::env::var_os("WARDEN_UPDATE_FIXTURES").is_some();
    for (name, value) in fixtures() {
        let path = dir.join(format!("{name}.json"));
        let text = serde_json::to_string_pretty(&value).unwrap() + "\n";
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
        } else {
            let stored = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                stored == text,
                "{} is out of date; run WARDEN_UPDATE_FIXTURES=1 cargo test -p warden-tray",
                path.display()
            );
        }
    }
}
