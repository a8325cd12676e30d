//! The admin audit log: device revocations, policy uploads and activations, enrollment codes made
//! and used, each with its actor, written in the transaction that does it and queued on the
//! stream (`"kind": "audit"`, id `admin:SEQ`). Exception decisions have their own audit
//! (`exceptions`).
//!
//! The actor is the signed-in account; with the break-glass admin token, the name an API client
//! gives in `{"actor": …}`, or a row saying the shared admin token acted.

use crate::auth::AdminCaller;
use crate::export::Format;
use crate::extract::{QueryParams, parse_json};
use crate::failure::{Answer, Failure};
use crate::{AppState, stream};
use axum::body::Bytes;
use axum::extract::State;
use serde::{Deserialize, Serialize};

/// Recorded when the caller named no actor.
pub const UNNAMED_ACTOR: &str = "admin token (no name given)";

/// `{"actor": "alice@corp.example"}`, the optional body of an admin action.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActorBody {
    #[serde(default)]
    actor: Option<String>,
}

/// Who did an admin action: the signed-in account; with the admin token, the actor the optional
/// body names (an empty body names none; a name is 1–255 printable characters).
pub(crate) fn actor_of(caller: &AdminCaller, body: &Bytes) -> Answer<String> {
    if let Some(actor) = caller.actor() {
        return Ok(actor);
    }
    let named: ActorBody =
        if body.iter().all(u8::is_ascii_whitespace) { ActorBody::default() } else { parse_json(body)? };
    match named.actor.as_deref().map(str::trim) {
        None | Some("") => Ok(UNNAMED_ACTOR.to_owned()),
        Some(actor) if actor.chars().count() > 255 || actor.chars().any(char::is_control) => {
            Err(Failure::invalid("actor", "actor must be at most 255 printable characters"))
        }
        Some(actor) => Ok(actor.to_owned()),
    }
}

/// One admin action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AdminAuditEntry {
    pub seq: i64,
    /// Seconds since the epoch.
    pub at: i64,
    pub actor: String,
    /// `device-revoked`, `policy-uploaded`, `policy-activated`, `enrollment-code-created`,
    /// `device-enrolled`, `api-token-created` or `api-token-revoked`.
    pub action: String,
    /// The device id or policy version.
    pub subject: String,
    pub detail: String,
}

/// Writes one row (and its stream record) inside the acting transaction.
pub(crate) async fn record(
    stream_on: bool,
    transaction: &mut sqlx::Transaction<'_, sqlx::Any>,
    entry: (&str, &str, &str, &str),
    at: i64,
) -> Result<(), sqlx::Error> {
    let (actor, action, subject, detail) = entry;
    let (seq,): (i64,) = sqlx::query_as(
        "INSERT INTO admin_audit (at, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5) RETURNING seq",
    )
    .bind(at)
    .bind(actor)
    .bind(action)
    .bind(subject)
    .bind(detail)
    .fetch_one(&mut **transaction)
    .await?;
    if stream_on {
        let record =
            serde_json::json!({ "actor": actor, "action": action, "subject": subject, "detail": detail, "at": at });
        stream::enqueue(transaction, &format!("admin:{seq}"), "audit", record, at).await?;
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminAuditQuery {
    /// At most this many, newest first (default 200, at most 1000).
    #[serde(default)]
    limit: Option<u32>,
}

/// `GET /api/v1/admin/admin-audit?limit=&format=`: newest first.
#[utoipa::path(
    get,
    path = "/api/v1/admin/admin-audit",
    tag = "admin",
    summary = "Admin actions (device revocations, policy uploads and activations) with their actors, newest first",
    params(
        ("limit" = Option<i64>, Query, description = "1–1000, default 200"),
        ("format" = Option<crate::export::Format>, Query, description = "json (default) or csv"),
    ),
    responses(
        (status = 200, description = "Entries", content((Vec<crate::admin_audit::AdminAuditEntry> = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Unknown or malformed query parameter", body = warden_api::ApiError),
        crate::openapi::AdminAuthErrors,
        (status = 422, description = "limit out of range", body = warden_api::ApiError),
    ),
    security(("admin" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    _admin: AdminCaller,
    format: Format,
    QueryParams(query): QueryParams<AdminAuditQuery>,
) -> Answer<axum::response::Response> {
    let limit = crate::extract::page_limit(query.limit, 200)?;
    let rows: Vec<(i64, i64, String, String, String, String)> =
        sqlx::query_as("SELECT seq, at, actor, action, subject, detail FROM admin_audit ORDER BY seq DESC LIMIT $1")
            .bind(limit)
            .fetch_all(&state.store.pool)
            .await?;
    let entries: Vec<AdminAuditEntry> = rows
        .into_iter()
        .map(|(seq, at, actor, action, subject, detail)| AdminAuditEntry { seq, at, actor, action, subject, detail })
        .collect();
    crate::export::answer(format, entries, |entries| crate::export::csv(entries, "admin-audit.csv"))
}
