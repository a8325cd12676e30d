//! Exception requests over HTTP: filing, the decisions, the device's signed list, the admin lists
//! and the expiry sweep. Every state change is one `exception_store::transition` (the state machine
//! checked by `ExceptionState::can_become` against the stored state), and all SQL lives in
//! `exception_store`.

use crate::auth::{AdminCaller, DeviceCaller, random_hex};
use crate::events::blocked_count;
use crate::exception_store::{self as data, ExceptionStoreError, NewRequest, StoredRequest, Transition};
use crate::extract::{JsonBody, QueryParams};
use crate::failure::{Answer, Failure};
use crate::feed::Wake;
use crate::policies::active_policy;
use crate::{AppState, now};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use warden_api::{
    AuditEntry, Decision, EXCEPTION_LIST_VALIDITY_SECONDS, ExceptionList, ExceptionRecord, ExceptionRequestCreate,
    ExceptionState, PendingView, SignedExceptions, check_justification,
};
use warden_policy::check_guardrails;

pub use crate::exception_store::SYSTEM_ACTOR;

const BLOCK_WINDOW_MS: i64 = 7 * 24 * 3600 * 1000;

impl From<ExceptionStoreError> for Failure {
    fn from(error: ExceptionStoreError) -> Failure {
        match error {
            ExceptionStoreError::NotFound(_) => Failure::not_found("exception request"),
            ExceptionStoreError::InvalidTransition { .. } => {
                Failure::new(StatusCode::CONFLICT, "invalid_transition", error.to_string()).field("state")
            }
            ExceptionStoreError::TooManyPending { .. } => {
                Failure::new(StatusCode::TOO_MANY_REQUESTS, "too_many_pending", error.to_string())
            }
            ExceptionStoreError::Database(error) => error.into(),
        }
    }
}

/// Applies a transition and wakes the device it concerns (its long-poll, on every replica) and
/// the stream.
async fn change(state: &AppState, id: &str, transition: Transition) -> Answer<()> {
    let device = data::transition(&state.store, state.stream.is_some(), id, &transition, now()).await?;
    state.feed.wake(Wake::Device(device));
    state.stream_wake.notify_one();
    Ok(())
}

/// A scope must be a canonical absolute directory path (the policy core's rule, the one the
/// device applies before filing): a relative or non-normal one (`src/app`, `../x`, `/a/../b`,
/// `/a/`) could never match the canonical working directory a device reports, so the approver
/// would grant something that does nothing. Blank means everywhere.
fn check_scope(scope: Option<&str>) -> Answer<Option<String>> {
    let Some(scope) = scope.filter(|s| !s.trim().is_empty()) else { return Ok(None) };
    warden_policy::check_scope(scope).map_err(|reason| Failure::invalid("scope", reason.to_string()))?;
    Ok(Some(scope.to_owned()))
}

/// `POST /api/v1/device/exceptions`: filed as the device's user.
#[utoipa::path(
    post,
    path = "/api/v1/device/exceptions",
    tag = "device",
    summary = "File an exception request as the device's user",
    request_body(content = warden_api::ExceptionRequestCreate, content_type = "application/json"),
    responses(
        (status = 201, description = "Filed, pending", body = warden_api::ExceptionRecord),
        (status = 200, description = "Already filed with this client_id", body = warden_api::ExceptionRecord),
        (status = 422, description = "Invalid field (tool, justification, scope, duration_seconds)", body = warden_api::ApiError),
        crate::openapi::DeviceAuthErrors,
        (status = 400, description = "Malformed JSON; `field` names the JSON path", body = warden_api::ApiError),
        (status = 413, description = "Body too large", body = warden_api::ApiError),
        (status = 429, description = "Too many pending requests for this device or person (`too_many_pending`)", body = warden_api::ApiError, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    ),
    security(("device" = [])),
)]
pub async fn create(
    State(state): State<AppState>,
    device: DeviceCaller,
    JsonBody(request): JsonBody<ExceptionRequestCreate>,
) -> Answer<(StatusCode, Json<ExceptionRecord>)> {
    let now = now();
    if let Some(client_id) = &request.client_id {
        if client_id.is_empty() || client_id.len() > 100 {
            return Err(Failure::invalid("client_id", "client_id must be 1–100 characters"));
        }
        if let Some(existing) = data::by_client_id(&state.store, &device.id, client_id).await? {
            return Ok((StatusCode::OK, Json(existing.record(now))));
        }
    }
    let policy = active_policy(&state).await?;
    let tool = request.tool.trim();
    if policy.catalog().tool(tool).is_none() {
        return Err(Failure::invalid("tool", format!("unknown tool id {tool:?}")));
    }
    if policy.exceptions.never.iter().any(|never| never == tool) {
        return Err(Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "exception_not_allowed",
            format!("the policy allows no exceptions for {tool}"),
        )
        .field("tool"));
    }
    check_justification(&request.justification).map_err(|message| Failure::invalid("justification", message))?;
    if request.justification.len() > 4000 {
        return Err(Failure::invalid("justification", "justification is limited to 4000 bytes"));
    }
    let max = policy.exceptions.max_duration;
    if request.duration_seconds == 0 || request.duration_seconds > max {
        return Err(Failure::invalid(
            "duration_seconds",
            format!("duration_seconds must be between 1 and the policy's limit of {max} seconds"),
        ));
    }
    let scope = check_scope(request.scope.as_deref())?;
    let id = format!("exr_{}", random_hex(12));
    let new = NewRequest {
        id: &id,
        device_id: &device.id,
        client_id: request.client_id.as_deref(),
        user: &device.user,
        tool,
        scope: scope.as_deref(),
        justification: request.justification.trim(),
        requested_seconds: request.duration_seconds as i64,
    };
    data::insert(&state.store, state.stream.is_some(), new, now).await?;
    state.stream_wake.notify_one();
    Ok((StatusCode::CREATED, Json(admin_request(&state, &id).await?)))
}

/// The request if this device filed it; another device's request is "not found".
async fn own_request(state: &AppState, device: &DeviceCaller, id: &str) -> Answer<StoredRequest> {
    match data::load(&state.store, id).await? {
        Some(row) if row.device_id == device.id => Ok(row),
        _ => Err(Failure::not_found("exception request")),
    }
}

/// `GET /api/v1/device/exceptions`: the device's requests, and the exceptions in force signed
/// for it with the next sequence number.
///
/// Raising the sequence and reading the requests share one transaction: the raise locks the
/// device's row (PostgreSQL) or holds the writer lock (SQLite), so of two fetches the one with
/// the higher sequence also read the newer state, and a device that keeps the highest
/// sequence never goes back to an older decision.
#[utoipa::path(
    get,
    path = "/api/v1/device/exceptions",
    tag = "device",
    summary = "This device's requests and the exceptions in force, signed for this device",
    description = "Every call issues a new signed list: the server raises this device's sequence number, signs the exceptions in force (approved, not expired) with its policy-signing key in the exceptions domain (`warden-exceptions\\n` + body), and sets `valid_until` 24 hours ahead. A device enforces only a list that verifies against the key it pinned at enrollment, names it, is not older than the highest sequence it accepted, and has not expired. `requests` is for display and is not signed.",
    responses(
        (status = 200, description = "Requests, and the signed list of exceptions in force", body = warden_api::ExceptionList),
        crate::openapi::DeviceAuthErrors,
    ),
    security(("device" = [])),
)]
pub async fn list_own(State(state): State<AppState>, device: DeviceCaller) -> Answer<Json<ExceptionList>> {
    let now = now();
    let (sequence, rows) = data::device_requests(&state.store, &device.id).await?;
    let requests: Vec<ExceptionRecord> = rows.into_iter().map(|row| row.record(now)).collect();
    let exceptions = requests.iter().filter_map(ExceptionRecord::exception).collect();
    let signed = state.signing_key.sign_exceptions(&SignedExceptions {
        device_id: device.id,
        sequence,
        issued_at: now,
        valid_until: now + EXCEPTION_LIST_VALIDITY_SECONDS,
        exceptions,
    });
    Ok(Json(ExceptionList { requests, signed }))
}

/// `GET /api/v1/device/exceptions/{id}`
#[utoipa::path(
    get,
    path = "/api/v1/device/exceptions/{id}",
    tag = "device",
    summary = "One of this device's requests",
    params(
        ("id" = String, Path, description = "Request id"),
    ),
    responses(
        (status = 200, description = "The request", body = warden_api::ExceptionRecord),
        (status = 404, description = "No such request on this device", body = warden_api::ApiError),
        crate::openapi::DeviceAuthErrors,
    ),
    security(("device" = [])),
)]
pub async fn get_own(
    State(state): State<AppState>,
    device: DeviceCaller,
    Path(id): Path<String>,
) -> Answer<Json<ExceptionRecord>> {
    Ok(Json(own_request(&state, &device, &id).await?.record(now())))
}

/// `POST /api/v1/device/exceptions/{id}/withdraw`
#[utoipa::path(
    post,
    path = "/api/v1/device/exceptions/{id}/withdraw",
    tag = "device",
    summary = "Withdraw a pending request",
    params(
        ("id" = String, Path, description = "Request id"),
    ),
    responses(
        (status = 200, description = "Withdrawn", body = warden_api::ExceptionRecord),
        (status = 404, description = "No such request on this device", body = warden_api::ApiError),
        (status = 409, description = "Not pending", body = warden_api::ApiError),
        crate::openapi::DeviceAuthErrors,
    ),
    security(("device" = [])),
)]
pub async fn withdraw(
    State(state): State<AppState>,
    device: DeviceCaller,
    Path(id): Path<String>,
) -> Answer<Json<ExceptionRecord>> {
    own_request(&state, &device, &id).await?;
    change(&state, &id, Transition::Withdraw { by: device.user.clone() }).await?;
    Ok(Json(own_request(&state, &device, &id).await?.record(now())))
}

/// Whether `approver` is the requesting user (also as `user@domain`).
fn same_person(approver: &str, user: &str) -> bool {
    let approver = approver.trim().to_lowercase();
    let user = user.trim().to_lowercase();
    approver == user || approver.split('@').next() == Some(user.as_str()) || user.split('@').next() == Some(&approver)
}

/// Who decides and the comment: a signed-in account decides as itself; the admin token decides
/// under the typed `approver` only while no account exists (then it is break-glass and may not).
async fn check_decision(
    state: &AppState,
    caller: &AdminCaller,
    decision: &Decision,
    comment_required: bool,
) -> Answer<(String, String)> {
    if comment_required && !decision.guardrails.is_empty() {
        return Err(Failure::invalid(
            "guardrails",
            "guardrails are attached to an approval, not to a denial or revocation",
        ));
    }
    if caller.api_token.is_some() {
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            "person_required",
            "exception requests are decided by a person signed in as themselves, never by an API token",
        ));
    }
    let approver = match &caller.account {
        Some(account) => account.name.clone(),
        None if crate::accounts::in_use(state).await? => {
            return Err(Failure::new(
                StatusCode::FORBIDDEN,
                "sign_in_required",
                "approvers sign in as themselves: the admin token cannot decide requests once accounts exist",
            ));
        }
        None => decision.approver.trim().to_owned(),
    };
    if approver.is_empty() || approver.chars().count() > 200 {
        return Err(Failure::invalid("approver", "approver (your name or e-mail) is required, at most 200 characters"));
    }
    let comment = decision.comment.trim();
    if comment_required && comment.is_empty() {
        return Err(Failure::invalid("comment", "a comment is required: tell the developer why"));
    }
    if comment.len() > 4000 {
        return Err(Failure::invalid("comment", "comment is limited to 4000 bytes"));
    }
    Ok((approver, comment.to_owned()))
}

async fn admin_request(state: &AppState, id: &str) -> Answer<ExceptionRecord> {
    Ok(data::load(&state.store, id).await?.ok_or_else(|| Failure::not_found("exception request"))?.record(now()))
}

/// `POST /api/v1/admin/exceptions/{id}/approve`
#[utoipa::path(
    post,
    path = "/api/v1/admin/exceptions/{id}/approve",
    tag = "admin",
    summary = "Approve a pending request (optionally shorter)",
    params(
        ("id" = String, Path, description = "Request id"),
    ),
    request_body(content = warden_api::Decision, content_type = "application/json"),
    responses(
        (status = 200, description = "Approved", body = warden_api::ExceptionRecord),
        (status = 403, description = "Self-approval (`self_approval`), a token where a signed-in person must decide (`person_required`, `sign_in_required`), a role that may not decide, a device token, or a missing CSRF token", body = warden_api::ApiError),
        (status = 404, description = "No such request", body = warden_api::ApiError),
        (status = 409, description = "Not pending", body = warden_api::ApiError),
        (status = 422, description = "Invalid field", body = warden_api::ApiError),
        (status = 401, description = "Not signed in, or a missing, unknown, expired or revoked token", body = warden_api::ApiError),
        (status = 400, description = "Malformed JSON; `field` names the JSON path", body = warden_api::ApiError),
        (status = 413, description = "Body too large", body = warden_api::ApiError),
    ),
    security(("admin" = [])),
)]
pub async fn approve(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(id): Path<String>,
    JsonBody(decision): JsonBody<Decision>,
) -> Answer<Json<ExceptionRecord>> {
    let (approver, comment) = check_decision(&state, &caller, &decision, false).await?;
    let record = admin_request(&state, &id).await?;
    if same_person(&approver, &record.user) {
        return Err(Failure::new(StatusCode::FORBIDDEN, "self_approval", "nobody may approve their own request")
            .field("approver"));
    }
    let granted = decision.duration_seconds.unwrap_or(record.requested_seconds);
    if granted == 0 || granted > record.requested_seconds {
        return Err(Failure::invalid(
            "duration_seconds",
            format!("an approver may shorten the request, not lengthen it: 1 to {} seconds", record.requested_seconds),
        ));
    }
    check_guardrails(&decision.guardrails).map_err(|reason| Failure::invalid("guardrails", reason.to_string()))?;
    if decision.guardrails.through_gateway && active_policy(&state).await?.sanctioned_destinations().is_empty() {
        return Err(Failure::invalid(
            "guardrails",
            "\"only through the company gateway\" needs a policy that names the assistant's api_url or gateway_url",
        ));
    }
    let transition = Transition::Approve {
        approver,
        comment,
        granted_seconds: granted as i64,
        guardrails: decision.guardrails.clone(),
    };
    change(&state, &id, transition).await?;
    admin_request(&state, &id).await.map(Json)
}

/// `POST /api/v1/admin/exceptions/{id}/deny`
#[utoipa::path(
    post,
    path = "/api/v1/admin/exceptions/{id}/deny",
    tag = "admin",
    summary = "Deny a pending request (comment required)",
    params(
        ("id" = String, Path, description = "Request id"),
    ),
    request_body(content = warden_api::Decision, content_type = "application/json"),
    responses(
        (status = 200, description = "Denied", body = warden_api::ExceptionRecord),
        (status = 404, description = "No such request", body = warden_api::ApiError),
        (status = 409, description = "Not pending", body = warden_api::ApiError),
        (status = 422, description = "Invalid field", body = warden_api::ApiError),
        crate::openapi::AdminAuthErrors,
        (status = 400, description = "Malformed JSON; `field` names the JSON path", body = warden_api::ApiError),
        (status = 413, description = "Body too large", body = warden_api::ApiError),
    ),
    security(("admin" = [])),
)]
pub async fn deny(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(id): Path<String>,
    JsonBody(decision): JsonBody<Decision>,
) -> Answer<Json<ExceptionRecord>> {
    let (approver, comment) = check_decision(&state, &caller, &decision, true).await?;
    change(&state, &id, Transition::Deny { approver, comment }).await?;
    admin_request(&state, &id).await.map(Json)
}

/// `POST /api/v1/admin/exceptions/{id}/revoke`: ends an approved exception early.
#[utoipa::path(
    post,
    path = "/api/v1/admin/exceptions/{id}/revoke",
    tag = "admin",
    summary = "End an approved exception early (comment required)",
    params(
        ("id" = String, Path, description = "Request id"),
    ),
    request_body(content = warden_api::Decision, content_type = "application/json"),
    responses(
        (status = 200, description = "Revoked", body = warden_api::ExceptionRecord),
        (status = 404, description = "No such request", body = warden_api::ApiError),
        (status = 409, description = "Not approved, or already expired", body = warden_api::ApiError),
        (status = 422, description = "Invalid field", body = warden_api::ApiError),
        crate::openapi::AdminAuthErrors,
        (status = 400, description = "Malformed JSON; `field` names the JSON path", body = warden_api::ApiError),
        (status = 413, description = "Body too large", body = warden_api::ApiError),
    ),
    security(("admin" = [])),
)]
pub async fn revoke(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(id): Path<String>,
    JsonBody(decision): JsonBody<Decision>,
) -> Answer<Json<ExceptionRecord>> {
    let (approver, comment) = check_decision(&state, &caller, &decision, true).await?;
    change(&state, &id, Transition::Revoke { approver, comment }).await?;
    admin_request(&state, &id).await.map(Json)
}

/// Query of `GET /api/v1/admin/exceptions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminFilter {
    /// One state, or absent for all (pending first).
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}

/// `GET /api/v1/admin/exceptions?state=pending&format=`: pending first, then newest (CSV: one row
/// per request, the record's fields with the device's host name and the recent block count).
#[utoipa::path(
    get,
    path = "/api/v1/admin/exceptions",
    tag = "admin",
    summary = "Exception requests, pending first, with recent block counts",
    params(
        ("state" = Option<String>, Query, description = "pending, approved, denied, withdrawn, expired, revoked or all"),
        ("limit" = Option<i64>, Query, description = "1–1000, default 200"),
        ("format" = Option<crate::export::Format>, Query, description = "json (default) or csv"),
    ),
    responses(
        (status = 200, description = "Requests", content((Vec<warden_api::PendingView> = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Malformed query", body = warden_api::ApiError),
        (status = 422, description = "Invalid filter", body = warden_api::ApiError),
        crate::openapi::AdminAuthErrors,
    ),
    security(("admin" = [])),
)]
pub async fn list_all(
    State(state): State<AppState>,
    _admin: AdminCaller,
    format: crate::export::Format,
    QueryParams(filter): QueryParams<AdminFilter>,
) -> Answer<axum::response::Response> {
    let wanted = match filter.state.as_deref() {
        None | Some("") | Some("all") => None,
        Some(text) => Some(ExceptionState::parse(text).ok_or_else(|| {
            Failure::invalid("state", "state must be pending, approved, denied, withdrawn, expired, revoked or all")
        })?),
    };
    let limit = crate::extract::page_limit(filter.limit, 200)?;
    let now = now();
    let rows = data::newest(&state.store, if wanted.is_some() { 5000 } else { limit }).await?;
    let mut views = Vec::new();
    for row in rows {
        let record = row.record(now);
        if wanted.is_some_and(|w| w != record.state) {
            continue;
        }
        if views.len() as i64 >= limit {
            break;
        }
        let hostname: Option<(String,)> = sqlx::query_as("SELECT hostname FROM devices WHERE id = $1")
            .bind(&record.device_id)
            .fetch_optional(&state.store.pool)
            .await?;
        let blocked = blocked_count(&state, &record.user, &record.tool, now * 1000 - BLOCK_WINDOW_MS).await?;
        views.push(PendingView {
            hostname: hostname.map(|(h,)| h).unwrap_or_default(),
            blocked_last_7_days: blocked,
            request: record,
        });
    }
    crate::export::answer(format, views, |views| {
        let rows: Vec<serde_json::Value> = views
            .iter()
            .map(|view| {
                let mut row = serde_json::to_value(&view.request).unwrap_or_default();
                row["hostname"] = view.hostname.clone().into();
                row["blocked_last_7_days"] = view.blocked_last_7_days.into();
                row
            })
            .collect();
        crate::export::csv(&rows, "exception-requests.csv")
    })
}

/// Every request filed in `[since, until)` (seconds), optionally for one tool, as records at
/// `now` (at most 100,000, newest first): the exception report's input.
pub(crate) async fn records_filed(
    state: &AppState,
    tool: Option<&str>,
    since: i64,
    until: i64,
    now: i64,
) -> Answer<Vec<ExceptionRecord>> {
    let rows = data::filed_between(&state.store, tool, since, until).await?;
    Ok(rows.into_iter().map(|row| row.record(now)).collect())
}

/// `GET /api/v1/admin/exceptions/{id}/audit`
#[utoipa::path(
    get,
    path = "/api/v1/admin/exceptions/{id}/audit",
    tag = "admin",
    summary = "The audit trail of one request",
    params(
        ("id" = String, Path, description = "Request id"),
    ),
    responses(
        (status = 200, description = "Transitions, oldest first", body = Vec<warden_api::AuditEntry>),
        (status = 404, description = "No such request", body = warden_api::ApiError),
        crate::openapi::AdminAuthErrors,
    ),
    security(("admin" = [])),
)]
pub async fn audit_of(
    State(state): State<AppState>,
    _admin: AdminCaller,
    Path(id): Path<String>,
) -> Answer<Json<Vec<AuditEntry>>> {
    admin_request(&state, &id).await?;
    audit_rows(&state, Some(&id), 1000).await.map(Json)
}

/// `GET /api/v1/admin/audit`: the newest transitions of every request.
#[utoipa::path(
    get,
    path = "/api/v1/admin/audit",
    tag = "admin",
    summary = "The newest transitions of all requests",
    responses(
        (status = 200, description = "Transitions, newest first", body = Vec<warden_api::AuditEntry>),
        crate::openapi::AdminAuthErrors,
    ),
    security(("admin" = [])),
)]
pub async fn audit_recent(State(state): State<AppState>, _admin: AdminCaller) -> Answer<Json<Vec<AuditEntry>>> {
    audit_rows(&state, None, 200).await.map(Json)
}

async fn audit_rows(state: &AppState, id: Option<&str>, limit: i64) -> Answer<Vec<AuditEntry>> {
    Ok(data::audit_rows(&state.store, id, limit).await?)
}

/// Records `approved → expired` for every approval past its expiry. Safe to run on every
/// replica at once: each row's update is conditional, so each expiry is logged exactly once.
pub async fn sweep_expired(state: &AppState) -> Answer<usize> {
    let mut expired = 0;
    for id in data::due_for_expiry(&state.store, now()).await? {
        match change(state, &id, Transition::Expire).await {
            Ok(()) => expired += 1,
            // Another replica (or a revocation) got there first.
            Err(failure) if failure.status == StatusCode::CONFLICT => {}
            Err(failure) => return Err(failure),
        }
    }
    Ok(expired)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_approval_is_recognised_by_name_or_mail() {
        assert!(same_person("dev", "dev"));
        assert!(same_person(" Dev@Example.com ", "dev"));
        assert!(same_person("dev", "dev@example.com"));
        assert!(!same_person("alice@example.com", "dev"));
        assert!(!same_person("developer", "dev"));
    }

    #[test]
    fn scopes_must_be_absolute() {
        assert_eq!(check_scope(None).unwrap(), None);
        assert_eq!(check_scope(Some("  ")).unwrap(), None);
        assert_eq!(check_scope(Some("/home/dev/src/app")).unwrap().as_deref(), Some("/home/dev/src/app"));
        assert_eq!(check_scope(Some(r"C:\src\app")).unwrap().as_deref(), Some(r"C:\src\app"));
        for relative in ["src/app", "../vendor-sdk", "/home/dev/src/../x", "/home/dev/src/app/", " /home/dev/x"] {
            let failure = check_scope(Some(relative)).unwrap_err();
            assert_eq!(failure.body.field.as_deref(), Some("scope"), "{relative}");
            assert!(failure.body.message.starts_with("scope must be"), "{relative}: {}", failure.body.message);
        }
    }
}
