//! API tokens: service accounts for scripts and integrations (a SIEM export, a CI job that
//! uploads policy, fleet tooling that makes enrollment codes). A signed-in person makes one with a
//! role no higher than their own — `admin` or `auditor`, never `approver`: a token reads and
//! administers but never decides an exception request, which stays with a person who signed in.
//! Tokens (`wapi_` + 256 random bits) are shown once and stored as their SHA-256; one stops when it
//! expires (1–365 days, 90 by default), when it is revoked, or when its owner is disabled, and it
//! never acts above its owner's current role. Every admin action it takes is recorded as
//! `owner (API token NAME)`.

use crate::AppState;
use crate::accounts::Role;
use crate::auth::{AdminCaller, random_hex, token_hash};
use crate::extract::JsonBody;
use crate::failure::{Answer, Failure};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

/// Prefix of API tokens, so a misplaced one is recognisable.
pub const API_TOKEN_PREFIX: &str = "wapi_";
/// How long a token works unless its maker says otherwise, and at most (days).
pub const DEFAULT_TOKEN_DAYS: u32 = 90;
pub const MAX_TOKEN_DAYS: u32 = 365;
/// `last_used_at` is written at most this often per token (seconds), so reads stay reads.
const LAST_USED_RESOLUTION: i64 = 60;

/// `POST /api/v1/admin/api-tokens`' body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiTokenCreate {
    /// What it is for (`siem-export`): 1–100 printable characters.
    pub name: String,
    /// `auditor` (default: reads every view and export) or `admin`; at most the maker's role.
    #[serde(default)]
    pub role: Option<Role>,
    /// How long it works, 1–365 days; default 90.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 365)]
    pub valid_days: Option<u32>,
}

/// An API token as lists show it (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiTokenView {
    pub id: String,
    pub name: String,
    /// The account that made it; the token stops when that account is disabled.
    pub owner: String,
    pub role: Role,
    /// Seconds since the epoch.
    pub created_at: i64,
    pub expires_at: i64,
    /// Within a minute.
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// `POST /api/v1/admin/api-tokens`' answer: the token, shown this once.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiTokenIssued {
    /// Send as `Authorization: Bearer TOKEN` on admin routes.
    pub token: String,
    #[serde(flatten)]
    pub view: ApiTokenView,
}

/// `GET /api/v1/admin/api-tokens`' answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiTokenList {
    pub tokens: Vec<ApiTokenView>,
}

/// The holder of a live API token: the caller of an admin route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHolder {
    pub id: String,
    pub name: String,
    pub owner: String,
    /// The token's role, capped at the owner's role now.
    pub role: Role,
}

impl TokenHolder {
    /// How its actions are recorded: `alice@corp.example (API token siem-export)`.
    pub fn actor(&self) -> String {
        format!("{} (API token {})", self.owner, self.name)
    }
}

/// The holder of `token` if it is live: known, not revoked, not expired, its owner enabled.
pub(crate) async fn holder(state: &AppState, token: &str, now: i64) -> Result<Option<TokenHolder>, sqlx::Error> {
    let row: Option<(String, String, String, String, String, Option<i64>)> = sqlx::query_as(
        "SELECT t.id, t.name, t.owner, t.role, a.role, t.last_used_at FROM api_tokens t \
         JOIN accounts a ON a.name = t.owner \
         WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > $2 AND a.disabled_at IS NULL",
    )
    .bind(token_hash(token))
    .bind(now)
    .fetch_optional(&state.store.pool)
    .await?;
    let Some((id, name, owner, token_role, owner_role, last_used)) = row else { return Ok(None) };
    let (Some(token_role), Some(owner_role)) = (Role::parse(&token_role), Role::parse(&owner_role)) else {
        return Ok(None);
    };
    if last_used.is_none_or(|at| at <= now - LAST_USED_RESOLUTION) {
        let _writer = state.store.write_guard().await;
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(&id)
            .execute(&state.store.pool)
            .await?;
    }
    let role = if owner_role.rank() < token_role.rank() { owner_role } else { token_role };
    Ok(Some(TokenHolder { id, name, owner, role }))
}

/// A row of [`COLUMNS`].
type TokenRow = (String, String, String, String, i64, i64, Option<i64>, Option<i64>);

fn view_of(row: TokenRow) -> ApiTokenView {
    let (id, name, owner, role, created_at, expires_at, last_used_at, revoked_at) = row;
    let role = Role::parse(&role).unwrap_or(Role::Auditor);
    ApiTokenView { id, name, owner, role, created_at, expires_at, last_used_at, revoked_at }
}

const COLUMNS: &str = "id, name, owner, role, created_at, expires_at, last_used_at, revoked_at";

/// The signed-in person behind a request, who alone may make API tokens.
fn person(caller: &AdminCaller) -> Answer<&crate::accounts::Account> {
    match (&caller.account, &caller.api_token) {
        (Some(account), None) => Ok(account),
        _ => Err(Failure::new(
            StatusCode::FORBIDDEN,
            "person_required",
            "API tokens are made and managed by a person signed in to the console (not the admin token, not another API token)",
        )),
    }
}

/// `POST /api/v1/admin/api-tokens`
#[utoipa::path(
    post,
    path = "/api/v1/admin/api-tokens",
    tag = "admin",
    summary = "Make an API token (a service account) with at most your role: auditor or admin; it never decides exception requests",
    request_body(content = ApiTokenCreate, content_type = "application/json"),
    responses(
        (status = 201, description = "The token (shown once)", body = ApiTokenIssued),
        (status = 400, description = "Malformed JSON", body = warden_api::ApiError),
        (status = 401, description = "Not signed in, or a wrong token", body = warden_api::ApiError),
        (status = 403, description = "Not a signed-in person (`person_required`), a role above your own (`role_forbids`), a device token, or a missing CSRF token", body = warden_api::ApiError),
        (status = 422, description = "Invalid name, role (approver and developer are not token roles) or valid_days", body = warden_api::ApiError),
    ),
    security(("admin" = [])),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: AdminCaller,
    JsonBody(request): JsonBody<ApiTokenCreate>,
) -> Answer<(StatusCode, Json<ApiTokenIssued>)> {
    let account = person(&caller)?;
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Failure::invalid("name", "name is 1–100 printable characters (what the token is for)"));
    }
    let role = request.role.unwrap_or(Role::Auditor);
    if !matches!(role, Role::Admin | Role::Auditor) {
        return Err(Failure::invalid(
            "role",
            "an API token is an auditor or an admin: tokens never decide exception requests",
        ));
    }
    if role.rank() > account.role.rank() {
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            "role_forbids",
            format!("the {} role cannot make a token with the {} role", account.role.as_str(), role.as_str()),
        )
        .field("role"));
    }
    let days = request.valid_days.unwrap_or(DEFAULT_TOKEN_DAYS);
    if !(1..=MAX_TOKEN_DAYS).contains(&days) {
        return Err(Failure::invalid("valid_days", format!("valid_days must be 1–{MAX_TOKEN_DAYS}")));
    }
    let token = format!("{API_TOKEN_PREFIX}{}", random_hex(32));
    let now = crate::now();
    let view = ApiTokenView {
        id: format!("tok_{}", random_hex(8)),
        name: name.to_owned(),
        owner: account.name.clone(),
        role,
        created_at: now,
        expires_at: now + i64::from(days) * 86_400,
        last_used_at: None,
        revoked_at: None,
    };
    {
        let _writer = state.store.write_guard().await;
        let mut transaction = state.store.pool.begin().await?;
        sqlx::query(
            "INSERT INTO api_tokens (id, name, owner, role, token_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&view.id)
        .bind(&view.name)
        .bind(&view.owner)
        .bind(role.as_str())
        .bind(token_hash(&token))
        .bind(now)
        .bind(view.expires_at)
        .execute(&mut *transaction)
        .await?;
        let detail = format!("{} “{}”, {}, valid {days} days", view.id, view.name, role.as_str());
        let entry = (account.name.as_str(), "api-token-created", view.id.as_str(), detail.as_str());
        crate::admin_audit::record(state.stream.is_some(), &mut transaction, entry, now).await?;
        transaction.commit().await?;
    }
    state.stream_wake.notify_one();
    Ok((StatusCode::CREATED, Json(ApiTokenIssued { token, view })))
}

/// `GET /api/v1/admin/api-tokens`
#[utoipa::path(
    get,
    path = "/api/v1/admin/api-tokens",
    tag = "admin",
    summary = "API tokens: your own, or every one for an admin (never the tokens themselves)",
    responses(
        (status = 200, description = "Newest first", body = ApiTokenList),
        (status = 401, description = "Not signed in, or a wrong token", body = warden_api::ApiError),
        (status = 403, description = "Not a signed-in person, or a device token", body = warden_api::ApiError),
    ),
    security(("admin" = [])),
)]
pub async fn list(State(state): State<AppState>, caller: AdminCaller) -> Answer<Json<ApiTokenList>> {
    let account = person(&caller)?;
    let rows: Vec<TokenRow> = if account.role == Role::Admin {
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM api_tokens ORDER BY created_at DESC, id"))
            .fetch_all(&state.store.pool)
            .await?
    } else {
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM api_tokens WHERE owner = $1 ORDER BY created_at DESC, id"))
            .bind(&account.name)
            .fetch_all(&state.store.pool)
            .await?
    };
    Ok(Json(ApiTokenList { tokens: rows.into_iter().map(view_of).collect() }))
}

/// `POST /api/v1/admin/api-tokens/{id}/revoke`
#[utoipa::path(
    post,
    path = "/api/v1/admin/api-tokens/{id}/revoke",
    tag = "admin",
    summary = "Revoke an API token (its owner, or an admin): it stops at once, on every replica",
    params(("id" = String, Path, description = "Token id (`tok_…`)")),
    responses(
        (status = 200, description = "Revoked (again: unchanged)", body = ApiTokenView),
        (status = 401, description = "Not signed in, or a wrong token", body = warden_api::ApiError),
        (status = 403, description = "Not a signed-in person, a device token, or a missing CSRF token", body = warden_api::ApiError),
        (status = 404, description = "No such token (or not yours)", body = warden_api::ApiError),
    ),
    security(("admin" = [])),
)]
pub async fn revoke(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(id): Path<String>,
) -> Answer<Json<ApiTokenView>> {
    let account = person(&caller)?;
    let now = crate::now();
    let _writer = state.store.write_guard().await;
    let mut transaction = state.store.pool.begin().await?;
    let row: Option<TokenRow> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM api_tokens WHERE id = $1"))
        .bind(&id)
        .fetch_optional(&mut *transaction)
        .await?;
    let mut view = match row.map(view_of) {
        Some(view) if account.role == Role::Admin || view.owner == account.name => view,
        _ => return Err(Failure::not_found("api token")),
    };
    if view.revoked_at.is_none() {
        sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(&id)
            .execute(&mut *transaction)
            .await?;
        let detail = format!("{} “{}” of {}", view.id, view.name, view.owner);
        let entry = (account.name.as_str(), "api-token-revoked", view.id.as_str(), detail.as_str());
        crate::admin_audit::record(state.stream.is_some(), &mut transaction, entry, now).await?;
        view.revoked_at = Some(now);
    }
    transaction.commit().await?;
    state.stream_wake.notify_one();
    Ok(Json(view))
}
