//! The commands the windows call. Each is a thin hand-off to the tray's state and to the
//! runtime's local API; errors carry a stable `code` the UI matches on (never the message):
//! the tray's own, or the runtime's `LocalErrorCode` passed through.

use crate::my_requests::{ExceptionRequest, RequestStatus};
use crate::request_form::{ExceptionDraft, FieldProblem, ScopeChoice, check_draft, resolve_repository};
use crate::shell::{Shell, now_ms};
use crate::views::{
    self, ActivityRow, CatalogView, FormRules, View, WindowContext, activity_rows, form_rules, tool_name,
};
use serde::Serialize;
use tauri::{AppHandle, Emitter, State, WebviewWindow};
use warden_api::ExceptionRequestCreate;
use warden_api::local::LocalErrorCode;
use warden_client::LocalClientError;

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
    WindowFailed(String),
    /// The runtime refused the call or could not be reached.
    #[error("{0}")]
    Runtime(#[from] LocalClientError),
}

impl CommandError {
    /// The stable code the UI matches on.
    pub fn code(&self) -> &'static str {
        match self {
            CommandError::InvalidRequest(_) => "invalid-request",
            CommandError::UnknownView(_) => "unknown-view",
            CommandError::OpenFailed(_) => "open-failed",
            CommandError::WindowFailed(_) => "window-failed",
            CommandError::Runtime(error) => match error {
                LocalClientError::Unreachable { .. } => "runtime-unreachable",
                LocalClientError::Protocol { .. } => "runtime-protocol",
                LocalClientError::Refused(refused) => local_code(refused.code),
            },
        }
    }
}

/// The runtime's code, as the local API spells it.
fn local_code(code: LocalErrorCode) -> &'static str {
    match code {
        LocalErrorCode::BadRequest => "bad-request",
        LocalErrorCode::TooLarge => "too-large",
        LocalErrorCode::Forbidden => "forbidden",
        LocalErrorCode::NotFound => "not-found",
        LocalErrorCode::NotEnrolled => "not-enrolled",
        LocalErrorCode::Server => "server",
        LocalErrorCode::Internal => "internal",
        LocalErrorCode::NoGateway => "no-gateway",
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
    let managed = shell.status().map(|s| s.managed_files).unwrap_or_default();
    views::catalog_view(&policy.policy, &policy.catalog, shell.installed().as_ref(), &managed)
}

#[tauri::command]
pub fn recent_activity(shell: State<'_, Shell>) -> Vec<ActivityRow> {
    activity_rows(shell.events().iter(), &shell.policy().catalog)
}

/// The masking gateway's latest request, for the activity window (none: no request in 24 hours).
#[tauri::command]
pub fn masking_line(shell: State<'_, Shell>) -> Option<views::MaskingLine> {
    views::masking_line(shell.status().as_ref().and_then(|s| s.gateway.as_ref()))
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

/// The caller's requests, as the runtime has them (the server's records and the outbox). A
/// device not enrolled with a server has none.
#[tauri::command]
pub async fn exception_requests(shell: State<'_, Shell>) -> Answer<Vec<ExceptionRequest>> {
    let mine = match shell.link.client.requests().await {
        Ok(mine) => mine,
        Err(error) if error.code() == Some(LocalErrorCode::NotEnrolled) => return Ok(Vec::new()),
        Err(error) => return Err(error.into()),
    };
    let policy = shell.policy();
    Ok(crate::my_requests::merge(&mine.queued, &mine.requests, now_ms(), |id| tool_name(&policy.catalog, Some(id))))
}

/// Checks the form and files the request through the runtime, which files it as the person
/// the socket says is calling.
#[tauri::command]
pub async fn submit_exception(
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
    let repository = match draft.scope {
        ScopeChoice::Repository => draft.repository.clone(),
        ScopeChoice::Everywhere => None,
    };
    let request = ExceptionRequestCreate {
        tool: draft.tool.clone(),
        justification: draft.justification.trim().to_owned(),
        scope: repository.clone(),
        duration_seconds: draft.duration_seconds,
        client_id: None,
    };
    let filed = shell.link.client.file_request(&request).await?;
    let _ = app.emit(REQUESTS_EVENT, &filed.id);
    Ok(ExceptionRequest {
        id: filed.id,
        tool_name: tool_name(&policy.catalog, Some(&draft.tool)),
        tool: draft.tool,
        justification: request.justification,
        scope: draft.scope,
        repository,
        duration_seconds: draft.duration_seconds,
        created_at_ms: now_ms(),
        status: if filed.sent { RequestStatus::Pending } else { RequestStatus::WaitingToBeSent },
    })
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
    shell.open_assistant(&app, cwd.as_deref()).map_err(|e| CommandError::OpenFailed(e.to_string()))
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
pub fn about(shell: State<'_, Shell>) -> AboutView {
    let policy = shell.policy();
    let status = shell.status();
    let now = now_ms();
    AboutView {
        version: env!("CARGO_PKG_VERSION"),
        policy_name: policy.policy.name.clone(),
        policy_version: policy.version.clone(),
        policy_source: policy.source.clone(),
        policy_problem: match shell.freshness(now) {
            crate::tray_status::PolicyFreshness::OutOfDate { problem } => Some(problem),
            crate::tray_status::PolicyFreshness::Current => None,
        },
        server: status
            .as_ref()
            .and_then(|s| s.enrolled.as_ref())
            .map(|d| format!("{} (device {})", d.server, d.device_id))
            .unwrap_or_else(|| "none configured: this device is not enrolled with a governance server".into()),
        device: device_name(),
        status: format!("{}. {}", crate::tray_status::protection(shell.mode()), shell.look(now).words),
        event_source: match &status {
            Some(s) => match &s.fallback_reason {
                Some(why) => format!("{} ({why})", s.source),
                None => s.source.clone(),
            },
            None => "the Warden runtime has not answered yet".into(),
        },
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
    fn runtime_codes_are_the_local_api_words() {
        use LocalErrorCode::*;
        for code in [BadRequest, TooLarge, Forbidden, NotFound, NotEnrolled, Server, Internal] {
            assert_eq!(serde_json::to_value(code).unwrap(), local_code(code), "{code:?}");
        }
    }

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
            (CommandError::WindowFailed("x".into()), "window-failed", "x"),
            (
                CommandError::Runtime(LocalClientError::Refused(warden_api::local::LocalError::new(
                    LocalErrorCode::NotEnrolled,
                    "x",
                ))),
                "not-enrolled",
                "x",
            ),
            (
                CommandError::Runtime(LocalClientError::Refused(warden_api::local::LocalError::new(
                    LocalErrorCode::Forbidden,
                    "x",
                ))),
                "forbidden",
                "x",
            ),
            (
                CommandError::Runtime(LocalClientError::Unreachable {
                    socket: "/run/warden/warden.sock".into(),
                    detail: "x".into(),
                }),
                "runtime-unreachable",
                "no Warden runtime answers on /run/warden/warden.sock: x",
            ),
        ];
        for (error, code, message) in cases {
            let wire = serde_json::to_value(&error).unwrap();
            assert_eq!(wire["code"], code);
            assert_eq!(wire["message"], message);
            assert!(wire.get("problems").is_none());
        }
    }
}
