//! What the windows show, as plain serializable data built from the core crates' types.
//!
//! Pure: the Tauri commands fetch the inputs and hand them here, so what each window
//! receives is tested without a window.

use crate::request_form::{MIN_DURATION_SECONDS, MIN_JUSTIFICATION, requestable};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use warden_api::LaunchEvent;
use warden_api::local::{ManagedFileState, controls_of_tool};
use warden_policy::{Action, Catalog, Policy, tool_status};

/// The windows Warden has. Each window's label is its view name, which is also what
/// its capability file grants commands to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum View {
    Catalog,
    Activity,
    Exceptions,
    About,
}

impl View {
    pub fn label(self) -> &'static str {
        match self {
            View::Catalog => "catalog",
            View::Activity => "activity",
            View::Exceptions => "exceptions",
            View::About => "about",
        }
    }

    pub fn parse(name: &str) -> Option<View> {
        [View::Catalog, View::Activity, View::Exceptions, View::About].into_iter().find(|v| v.label() == name)
    }

    pub fn title(self) -> &'static str {
        match self {
            View::Catalog => "Warden: approved AI tools",
            View::Activity => "Warden: recent activity",
            View::Exceptions => "Warden: exception requests",
            View::About => "About Warden",
        }
    }

    pub fn size(self) -> (f64, f64) {
        match self {
            View::About => (520.0, 420.0),
            _ => (960.0, 680.0),
        }
    }
}

/// What a window should show first: the event a pop-up's Details is about, or the
/// tool and repository a Request exception is pre-filled with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
}

/// The sanctioned assistant, as the catalog's first card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssistantCard {
    pub name: String,
    pub url: String,
    /// Whether "Open" runs a command rather than opening the URL.
    pub runs_command: bool,
}

/// One tool row of the catalog window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolRow {
    pub id: String,
    pub name: String,
    pub vendor: String,
    pub kind: String,
    pub hosting: String,
    /// `approved`, `warn` or `blocked`.
    pub status: &'static str,
    pub reason: String,
    /// What to use instead (the sanctioned assistant) for tools that are not approved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alternative: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Found on this machine by the inventory scan; `None` when no scan has run.
    pub installed: Option<bool>,
    pub requestable: bool,
    pub is_assistant: bool,
    /// What the system service writes into the tool's own managed settings, in words ("bypass
    /// mode disabled"); empty in personal mode (it writes none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub controls: Vec<String>,
}

/// The catalog window's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogView {
    pub policy_name: String,
    pub assistant: Option<AssistantCard>,
    pub tools: Vec<ToolRow>,
}

/// Words for an action in the catalog.
pub fn status_word(action: Action) -> &'static str {
    match action {
        Action::Allow => "approved",
        Action::Warn => "warn",
        Action::Block => "blocked",
    }
}

fn kebab<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// Builds the catalog: the sanctioned assistant's client first, then every other tool
/// in catalog order. `installed` maps tool ids to what the inventory found; `managed` is the
/// service's managed files (`RuntimeStatus::managed_files`), whose controls show per tool.
pub fn catalog_view(
    policy: &Policy,
    catalog: &Catalog,
    installed: Option<&HashMap<String, bool>>,
    managed: &[ManagedFileState],
) -> CatalogView {
    let alternative = policy.assistant.as_ref().map(|a| a.name.clone());
    let mut tools: Vec<ToolRow> = catalog
        .tools()
        .iter()
        .map(|tool| {
            let status = tool_status(policy, tool);
            ToolRow {
                id: tool.id.clone(),
                name: tool.name.clone(),
                vendor: tool.vendor.clone(),
                kind: kebab(&tool.kind),
                hosting: kebab(&tool.hosting),
                status: status_word(status.action),
                reason: status.reason,
                alternative: if status.action > Action::Allow { alternative.clone() } else { None },
                link: status.link,
                installed: installed.map(|found| found.get(&tool.id).copied().unwrap_or(false)),
                requestable: requestable(policy, catalog, &tool.id),
                is_assistant: policy.is_assistant(&tool.id),
                controls: controls_of_tool(managed, &tool.id),
            }
        })
        .collect();
    // Stable sort: only the assistant moves.
    tools.sort_by_key(|row| !row.is_assistant);
    CatalogView {
        policy_name: policy.name.clone(),
        assistant: policy.assistant.as_ref().map(|a| AssistantCard {
            name: a.name.clone(),
            url: a.url.clone(),
            runs_command: !a.command.is_empty(),
        }),
        tools,
    }
}

/// One row of the activity window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityRow {
    pub id: String,
    pub at_ms: i64,
    pub tool: Option<String>,
    pub tool_name: String,
    pub action: Action,
    pub outcome: String,
    pub reason: String,
    pub cwd: Option<String>,
    pub exe: String,
    pub pid: u32,
}

/// The masking gateway's line at the top of the activity window: "3 secrets masked in a request
/// to Internal Assistant", and the day's totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MaskingLine {
    /// The latest request through the gateway, in words (never a value).
    pub summary: String,
    pub at_ms: i64,
    /// The developer's requests through it in the last 24 hours, and findings masked in them.
    pub requests_24h: u64,
    pub masked_24h: u64,
}

/// The line for `gateway` (the runtime's status), when it has carried a request of this developer's
/// in the last 24 hours.
pub fn masking_line(gateway: Option<&warden_api::local::GatewayState>) -> Option<MaskingLine> {
    let gateway = gateway?;
    let last = gateway.last.as_ref()?;
    Some(MaskingLine {
        summary: last.summary(),
        at_ms: last.at_ms,
        requests_24h: gateway.requests_24h,
        masked_24h: gateway.masked_24h,
    })
}

/// Events newest first, with the catalog's tool names.
pub fn activity_rows<'e>(events: impl IntoIterator<Item = &'e LaunchEvent>, catalog: &Catalog) -> Vec<ActivityRow> {
    let mut rows: Vec<ActivityRow> = events
        .into_iter()
        .map(|event| ActivityRow {
            id: event.id.clone(),
            at_ms: event.at_ms,
            tool_name: tool_name(catalog, event.tool.as_deref()),
            tool: event.tool.clone(),
            action: event.action,
            outcome: kebab(&event.outcome),
            reason: event.reason.clone(),
            cwd: event.cwd.clone(),
            exe: event.exe.clone(),
            pid: event.pid,
        })
        .collect();
    rows.sort_by_key(|row| std::cmp::Reverse(row.at_ms));
    rows
}

/// The display name of a catalog id ("Claude Code"), or the id, or "Unknown tool".
pub fn tool_name(catalog: &Catalog, id: Option<&str>) -> String {
    match id {
        Some(id) => catalog.tool(id).map_or_else(|| id.to_owned(), |t| t.name.clone()),
        None => "Unknown tool".to_owned(),
    }
}

/// A tool the form offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FormTool {
    pub id: String,
    pub name: String,
    pub status: &'static str,
}

/// The rules and choices of the exception form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FormRules {
    pub tools: Vec<FormTool>,
    pub min_justification: usize,
    pub min_duration_seconds: u64,
    pub max_duration_seconds: u64,
}

pub fn form_rules(policy: &Policy, catalog: &Catalog) -> FormRules {
    let mut tools: Vec<FormTool> = catalog
        .tools()
        .iter()
        .filter(|tool| requestable(policy, catalog, &tool.id))
        .map(|tool| FormTool {
            id: tool.id.clone(),
            name: tool.name.clone(),
            status: status_word(tool_status(policy, tool).action),
        })
        .collect();
    tools.sort_by_key(|tool| tool.name.to_lowercase());
    FormRules {
        tools,
        min_justification: MIN_JUSTIFICATION,
        min_duration_seconds: MIN_DURATION_SECONDS,
        max_duration_seconds: policy.exceptions.max_duration,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_api::Outcome;

    #[test]
    fn catalog_puts_the_assistant_first_with_statuses_and_alternatives() {
        let policy = Policy::embedded();
        let catalog = policy.catalog();
        let installed = HashMap::from([("claude-code".to_owned(), true)]);
        let files = warden_policy::render_controls(&policy, &catalog, &[], 0);
        let managed: Vec<ManagedFileState> =
            files.iter().map(|f| warden_service::controls::file_state(f, std::path::Path::new(f.path), true)).collect();
        let view = catalog_view(&policy, &catalog, Some(&installed), &managed);
        assert_eq!(view.tools.len(), catalog.tools().len());
        let first = &view.tools[0];
        assert_eq!((first.id.as_str(), first.status, first.is_assistant), ("qwen-code", "approved", true));
        let claude = view.tools.iter().find(|t| t.id == "claude-code").unwrap();
        assert_eq!(claude.status, "blocked");
        assert_eq!(claude.alternative.as_deref(), Some("Internal Assistant"));
        assert_eq!(claude.installed, Some(true));
        assert!(claude.requestable);
        let cursor = view.tools.iter().find(|t| t.id == "cursor").unwrap();
        assert_eq!((cursor.status, cursor.installed, cursor.kind.as_str()), ("warn", Some(false), "desktop-app"));
        assert!(!first.requestable, "approved tools need no exception");
        assert_eq!(view.assistant.as_ref().map(|a| a.runs_command), Some(true));
        assert_eq!(catalog_view(&policy, &catalog, None, &[]).tools[1].installed, None);
        // The service's controls show beside each tool; personal mode writes none.
        assert!(claude.controls.iter().any(|c| c == "bypass mode disabled"), "{:?}", claude.controls);
        assert!(first.controls.iter().any(|c| c.starts_with("pinned to Internal Assistant")), "{:?}", first.controls);
        assert!(catalog_view(&policy, &catalog, None, &[]).tools.iter().all(|t| t.controls.is_empty()));
    }

    #[test]
    fn form_offers_only_tools_that_need_an_exception() {
        let policy = Policy::embedded();
        let rules = form_rules(&policy, &policy.catalog());
        assert!(rules.tools.iter().any(|t| t.id == "claude-code" && t.status == "blocked"));
        assert!(rules.tools.iter().all(|t| t.status != "approved"));
        assert_eq!(rules.max_duration_seconds, 30 * 86_400);
    }

    #[test]
    fn activity_is_newest_first_with_names() {
        let policy = Policy::embedded();
        let catalog = policy.catalog();
        let event = |id: &str, at_ms, tool: Option<&str>| LaunchEvent {
            id: id.into(),
            at_ms,
            pid: 9,
            user: None,
            exe: "/bin/x".into(),
            argv: vec![],
            cwd: Some("/src".into()),
            tool: tool.map(Into::into),
            action: Action::Block,
            outcome: Outcome::Killed,
            rule: "r".into(),
            reason: "why".into(),
            exception: None,
            policy_version: None,
            source: "t".into(),
        };
        let events = [event("a", 1, Some("claude-code")), event("b", 2, None), event("c", 3, Some("made-up"))];
        let rows = activity_rows(&events, &catalog);
        let got: Vec<_> = rows.iter().map(|r| (r.id.as_str(), r.tool_name.as_str(), r.outcome.as_str())).collect();
        assert_eq!(got, [("c", "made-up", "killed"), ("b", "Unknown tool", "killed"), ("a", "Claude Code", "killed")]);
    }
}
