//! The commands the windows call. Each is a thin hand-off to the core crates and the
//! shell state; errors carry a stable `code` the UI matches on (never the message).

use crate::exception_queue::ExceptionRequest;
use crate::request_form::{ExceptionDraft, FieldProblem, check_draft, resolve_repository};
use crate::shell::{Shell, lock, now_ms};
use crate::views::{self, ActivityRow, CatalogView, FormRules, activity_rows, form_rules, tool_name};
use crate::windows::{View, WindowContext};
use serde::Serialize;
use tauri::{AppHandle, Emitter, State, WebviewWindow};

/// Every command error. Serialized as `{ "code": "...", "message": "...", ... }`.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("the request has {} problem(s)", .0.len())]
    InvalidRequest(Vec<FieldProblem>),
    #[error("no such view: {0}")]
    UnknownView(String),
    #[error("{0}")]
    OpenFailed(String),
    #[error("{0}")]
    StorageFailed(String),
    #[error("{0}")]
    WindowFailed(String),
}

impl CommandError {
    /// The stable code the UI matches on.
    pub fn code(&self) -> &'static str {
        match self {
            CommandError::InvalidRequest(_) => "invalid-request",
            CommandError::UnknownView(_) => "unknown-view",
            CommandError::OpenFailed(_) => "open-failed",
            CommandError::StorageFailed(_) => "storage-failed",
            CommandError::WindowFailed(_) => "window-failed",
        }
    }
}

impl Serialize for CommandError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            code: &'static str,
            message: String,
            #[serde(skip_serializing_if = "<[FieldProblem]>::is_empty")]
            problems: &'a [FieldProblem],
        }
        let problems = match self {
            CommandError::InvalidRequest(problems) => problems.as_slice(),
            _ => &[],
        };
        Wire { code: self.code(), message: self.to_string(), problems }.serialize(serializer)
    }
}

type Answer<T> = Result<T, CommandError>;

/// Event the windows listen to when the activity or the requests changed.
pub const ACTIVITY_EVENT: &str = "warden://activity";
pub const REQUESTS_EVENT: &str = "warden://requests";

#[tauri::command]
pub fn catalog_view(shell: State<'_, Shell>) -> CatalogView {
    let policy = shell.policy();
    catalog_view_for(&shell, &policy)
}

fn catalog_view_for(shell: &Shell, policy: &crate::shell::PolicyInForce) -> CatalogView {
    views::catalog_view(&policy.policy, &policy.catalog, shell.installed().as_ref())
}

#[tauri::command]
pub fn recent_activity(shell: State<'_, Shell>) -> Vec<ActivityRow> {
    activity_rows(shell.events().iter(), &shell.policy().catalog)
}

/// What the calling window was opened for.
#[tauri::command]
pub fn window_context(window: WebviewWindow, shell: State<'_, Shell>) -> WindowContext {
    shell.context(window.label())
}

#[tauri::command]
pub fn exception_form(shell: State<'_, Shell>) -> FormRules {
    let policy = shell.policy();
    form_rules(&policy.policy, &policy.catalog)
}

#[tauri::command]
pub fn exception_requests(app: AppHandle, shell: State<'_, Shell>) -> Answer<Vec<ExceptionRequest>> {
    let local = {
        let mut queue = lock(&shell.queue);
        queue.expire(now_ms()).map_err(|e| CommandError::StorageFailed(e.to_string()))?;
        queue.requests()
    };
    // Enrolled: the server's live status, merged with what waits in the outbox.
    let merged = crate::server_link::my_requests(&app, &local, now_ms()).map_err(CommandError::StorageFailed)?;
    Ok(merged.unwrap_or(local))
}

#[tauri::command]
pub fn submit_exception(
    app: AppHandle,
    shell: State<'_, Shell>,
    mut draft: ExceptionDraft,
) -> Answer<ExceptionRequest> {
    let policy = shell.policy();
    // The scope is filed as the canonical folder (`..` and symlinks resolved here).
    if let Some(problem) = resolve_repository(&mut draft) {
        return Err(CommandError::InvalidRequest(vec![problem]));
    }
    let problems = check_draft(&draft, &policy.policy, &policy.catalog);
    if !problems.is_empty() {
        return Err(CommandError::InvalidRequest(problems));
    }
    let name = tool_name(&policy.catalog, Some(&draft.tool));
    // Enrolled: also into the durable outbox, on its way to the server (src/server_link.rs).
    crate::server_link::submit(&app, &draft).map_err(CommandError::StorageFailed)?;
    let request =
        lock(&shell.queue).add(draft, name, now_ms()).map_err(|e| CommandError::StorageFailed(e.to_string()))?;
    let _ = app.emit(REQUESTS_EVENT, &request.id);
    Ok(request)
}

/// Opens another window (the catalog's and activity's "Request exception" buttons).
#[tauri::command]
pub async fn open_view(
    app: AppHandle,
    shell: State<'_, Shell>,
    view: String,
    context: Option<WindowContext>,
) -> Answer<()> {
    let view = View::parse(&view).ok_or(CommandError::UnknownView(view))?;
    let mut context = context.unwrap_or_default();
    // A request made from an event is scoped to the repository that event ran in.
    if context.repository.is_none() {
        context.repository = context
            .event
            .as_deref()
            .and_then(|id| shell.event(id))
            .and_then(|event| event.cwd)
            .and_then(|cwd| crate::repository::repository_root(std::path::Path::new(&cwd)))
            .map(|root| root.display().to_string());
    }
    crate::windows::open(&app, view, context).map_err(|e| CommandError::WindowFailed(e.to_string()))
}

#[tauri::command]
pub async fn open_assistant(app: AppHandle, shell: State<'_, Shell>, cwd: Option<String>) -> Answer<()> {
    let policy = shell.policy();
    crate::assistant::open(&app, policy.policy.assistant.as_ref(), cwd.as_deref())
        .map_err(|e| CommandError::OpenFailed(e.to_string()))
}

/// The About window's facts.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AboutView {
    pub version: &'static str,
    pub policy_name: String,
    pub policy_version: String,
    pub policy_source: String,
    pub policy_problem: Option<String>,
    pub server: String,
    pub device: String,
    pub status: String,
    pub event_source: String,
}

#[tauri::command]
pub fn about(app: AppHandle, shell: State<'_, Shell>) -> AboutView {
    let policy = shell.policy();
    AboutView {
        version: env!("CARGO_PKG_VERSION"),
        policy_name: policy.policy.name.clone(),
        policy_version: policy.version.clone(),
        policy_source: policy.source.clone(),
        policy_problem: match &policy.freshness {
            crate::tray_status::PolicyFreshness::OutOfDate { problem } => Some(problem.clone()),
            crate::tray_status::PolicyFreshness::Current => None,
        },
        server: crate::server_link::server(&app)
            .unwrap_or_else(|| "none configured: exception requests wait on this device".into()),
        device: device_name(),
        status: shell.look(now_ms()).words,
        event_source: crate::agent_link::describe(),
    }
}

/// This machine's host name.
pub fn device_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_else(|| "this device".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_serialize_with_a_stable_code() {
        let invalid = CommandError::InvalidRequest(vec![FieldProblem { field: "tool", message: "Choose".into() }]);
        assert_eq!(
            serde_json::to_value(&invalid).unwrap(),
            serde_json::json!({"code": "invalid-request", "message": "the request has 1 problem(s)",
                "problems": [{"field": "tool", "message": "Choose"}]})
        );
        let cases = [
            (CommandError::UnknownView("x".into()), "unknown-view", "no such view: x"),
            (CommandError::OpenFailed("x".into()), "open-failed", "x"),
            (CommandError::StorageFailed("x".into()), "storage-failed", "x"),
            (CommandError::WindowFailed("x".into()), "window-failed", "x"),
        ];
        for (error, code, message) in cases {
            let wire = serde_json::to_value(&error).unwrap();
            assert_eq!(wire["code"], code);
            assert_eq!(wire["message"], message);
            assert!(wire.get("problems").is_none());
        }
    }
}
