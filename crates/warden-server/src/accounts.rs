//! People who sign in to the console: local accounts (`warden-server user add NAME --role ROLE`,
//! passwords stretched with Argon2id), sessions (a random token in an `HttpOnly`, `SameSite=Strict`
//! cookie, `Secure` under TLS, stored hashed; every changing request echoes the session's CSRF
//! token in `X-CSRF-Token`), and roles.
//!
//! | role | may |
//! |---|---|
//! | `developer` | make enrollment codes for their own devices |
//! | `auditor` | read every admin view and export; their own API tokens |
//! | `approver` | that, and decide exception requests (approve, deny, revoke) |
//! | `admin` | everything: policies, devices, decisions, everyone's API tokens |
//!
//! Once any enabled account exists the shared admin token becomes break-glass only: it still reads
//! and administers, but it can no longer decide an exception — decisions carry a verified account,
//! and "nobody approves their own request" compares that account with the requester.

use crate::auth::{random_hex, random_key, token_hash, token_matches};
use crate::extract::JsonBody;
use crate::failure::{Answer, Failure};
use crate::store::Store;
use crate::{AppState, now};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "warden_session";
/// The header a changing request carries the session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Shortest password accepted (NIST SP 800-63B asks at least 8; a console that approves access to
/// banned tools asks more).
pub const MIN_PASSWORD_CHARS: usize = 12;
/// How long a session lasts (a working day), in seconds.
pub const SESSION_SECONDS: i64 = 8 * 3600;

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Admin,
    Approver,
    Auditor,
    /// Someone governed by Warden: signs in only to make enrollment codes for their own devices.
    Developer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Approver => "approver",
            Role::Auditor => "auditor",
            Role::Developer => "developer",
        }
    }

    /// How much the role may do: developer < auditor < approver < admin.
    pub fn rank(self) -> u8 {
        match self {
            Role::Developer => 0,
            Role::Auditor => 1,
            Role::Approver => 2,
            Role::Admin => 3,
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        [Role::Admin, Role::Approver, Role::Auditor, Role::Developer].into_iter().find(|r| r.as_str() == text)
    }
}

/// A signed-in person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    pub name: String,
    pub role: Role,
}

/// Why an account could not be added or changed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("an account name is 1–200 printable characters without spaces (a name or an e-mail address)")]
    InvalidName,
    #[error("a password must be at least {MIN_PASSWORD_CHARS} characters")]
    ShortPassword,
    #[error("there is already an account named {0:?}")]
    Exists(String),
    #[error("there is no account named {0:?}")]
    Unknown(String),
    #[error("hashing the password: {0}")]
    Hash(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The name as stored and compared: trimmed, lowercase.
pub(crate) fn normalized_name(name: &str) -> Result<String, AccountError> {
    let name = name.trim().to_lowercase();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(AccountError::InvalidName);
    }
    Ok(name)
}

/// Whether two account names are the same person (compared as stored: trimmed, lowercase).
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

fn hash_password(password: &str) -> Result<String, AccountError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AccountError::ShortPassword);
    }
    let salt = SaltString::encode_b64(&random_key()[..16]).map_err(|e| AccountError::Hash(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

fn password_matches(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .is_ok_and(|hash| argon2::Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
}

/// Adds an account (`warden-server user add`).
pub async fn add(store: &Store, name: &str, role: Role, password: &str, now: i64) -> Result<String, AccountError> {
    let name = normalized_name(name)?;
    let hash = hash_password(password)?;
    let _writer = store.write_guard().await;
    let inserted = sqlx::query(
        "INSERT INTO accounts (name, role, password_hash, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
    )
    .bind(&name)
    .bind(role.as_str())
    .bind(hash)
    .bind(now)
    .execute(&store.pool)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(AccountError::Exists(name));
    }
    Ok(name)
}

/// The account the identity provider vouched for, made or updated with the role its groups give
/// now (the provider is the source of truth; a password an admin set stays as it was). A disabled
/// account stays disabled: refused.
pub(crate) async fn sign_in_from_provider(store: &Store, name: &str, role: Role, now: i64) -> Answer<Role> {
    let _writer = store.write_guard().await;
    let disabled: Option<(Option<i64>,)> = sqlx::query_as("SELECT disabled_at FROM accounts WHERE name = $1")
        .bind(name)
        .fetch_optional(&store.pool)
        .await?;
    if let Some((Some(_),)) = disabled {
        return Err(Failure::new(StatusCode::FORBIDDEN, "account_disabled", format!("the account {name} is disabled")));
    }
    // No password matches this marker: the account signs in through the provider only.
    sqlx::query(
        "INSERT INTO accounts (name, role, password_hash, created_at) VALUES ($1, $2, '!identity-provider', $3) \
         ON CONFLICT (name) DO UPDATE SET role = excluded.role",
    )
    .bind(name)
    .bind(role.as_str())
    .bind(now)
    .execute(&store.pool)
    .await?;
    Ok(role)
}

/// Disables an account and ends its sessions (`warden-server user disable`).
pub async fn disable(store: &Store, name: &str, now: i64) -> Result<(), AccountError> {
    let name = normalized_name(name)?;
    let _writer = store.write_guard().await;
    let mut transaction = store.pool.begin().await?;
    let changed = sqlx::query("UPDATE accounts SET disabled_at = $1 WHERE name = $2 AND disabled_at IS NULL")
        .bind(now)
        .bind(&name)
        .execute(&mut *transaction)
        .await?;
    if changed.rows_affected() == 0 {
        return Err(AccountError::Unknown(name));
    }
    sqlx::query("DELETE FROM sessions WHERE account = $1").bind(&name).execute(&mut *transaction).await?;
    transaction.commit().await?;
    Ok(())
}

/// Every account: (name, role, disabled).
pub async fn list(store: &Store) -> Result<Vec<(String, String, bool)>, AccountError> {
    let rows: Vec<(String, String, Option<i64>)> =
        sqlx::query_as("SELECT name, role, disabled_at FROM accounts ORDER BY name").fetch_all(&store.pool).await?;
    Ok(rows.into_iter().map(|(name, role, disabled)| (name, role, disabled.is_some())).collect())
}

/// Whether anyone can sign in: then the admin token no longer decides exceptions.
pub(crate) async fn in_use(state: &AppState) -> Result<bool, sqlx::Error> {
    let (count,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM accounts WHERE disabled_at IS NULL").fetch_one(&state.store.pool).await?;
    Ok(count > 0)
}

/// A live session of an enabled account.
#[derive(Debug, Clone)]
pub(crate) struct LiveSession {
    pub account: Account,
    pub csrf: String,
    /// Seconds since the epoch.
    pub expires_at: i64,
}

/// The session behind a session token, if it is live and its account enabled.
pub(crate) async fn live_session(state: &AppState, token: &str) -> Result<Option<LiveSession>, sqlx::Error> {
    let row: Option<(String, String, String, i64)> = sqlx::query_as(
        "SELECT a.name, a.role, s.csrf, s.expires_at FROM sessions s JOIN accounts a ON a.name = s.account \
         WHERE s.token_hash = $1 AND s.expires_at > $2 AND a.disabled_at IS NULL",
    )
    .bind(token_hash(token))
    .bind(now())
    .fetch_optional(&state.store.pool)
    .await?;
    Ok(row.and_then(|(name, role, csrf, expires_at)| {
        Role::parse(&role).map(|role| LiveSession { account: Account { name, role }, csrf, expires_at })
    }))
}

/// Whether `given` is the session's CSRF token (compared in constant time).
pub(crate) fn csrf_matches(given: &str, csrf: &str) -> bool {
    token_matches(given, &token_hash(csrf))
}

/// The session cookie's value in a `Cookie` header, if any.
pub(crate) fn session_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == SESSION_COOKIE && !value.is_empty()).then(|| value.to_owned())
    })
}

/// `POST /api/v1/session`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    name: String,
    password: String,
}

/// A signed-in session, as the console sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    pub account: String,
    pub role: Role,
    /// Echo in `X-CSRF-Token` on every changing request.
    pub csrf_token: String,
    /// Seconds since the epoch.
    pub expires_at: i64,
}

fn cookie(state: &AppState, value: &str, max_age: i64) -> Answer<HeaderValue> {
    let secure = if state.tls.is_some() { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"
    ))
    .map_err(Failure::internal)
}

/// A PHC string no password matches, verified when the name is unknown so that a wrong name
/// takes as long as a wrong password.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$x4dO3qK0pHnGj6H3oVxQ4q8l5cQm1h9Hq3vVZfFJq3c";

/// `POST /api/v1/session`: signs in with a local account.
#[utoipa::path(
    post,
    path = "/api/v1/session",
    tag = "session",
    summary = "Sign in with a local account: sets the warden_session cookie (HttpOnly, SameSite=Strict, Secure under TLS) and answers the CSRF token",
    request_body(content = crate::accounts::SignIn, content_type = "application/json"),
    responses(
        (status = 201, description = "Signed in", body = crate::accounts::SessionView),
        (status = 400, description = "Malformed body", body = warden_api::ApiError),
        (status = 401, description = "Wrong name or password (the same answer for both)", body = warden_api::ApiError),
        (status = 429, description = "Too many attempts from this address; Retry-After", body = warden_api::ApiError),
    ),
)]
pub async fn sign_in(
    State(state): State<AppState>,
    client: Option<axum::Extension<crate::ClientAddr>>,
    JsonBody(request): JsonBody<SignIn>,
) -> Answer<Response> {
    // Counted with enrollment attempts, before anything is checked: guesses cost the same.
    if let Some(axum::Extension(client)) = client {
        state.limits.enrollment(client.0)?;
    }
    let wrong = || Failure::unauthorized("wrong_credentials", "wrong name or password");
    let name = normalized_name(&request.name).map_err(|_| wrong())?;
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT role, password_hash FROM accounts WHERE name = $1 AND disabled_at IS NULL")
            .bind(&name)
            .fetch_optional(&state.store.pool)
            .await?;
    let password = request.password;
    let (role, hash) = row.unwrap_or_else(|| (String::new(), DUMMY_HASH.to_owned()));
    let matched = tokio::task::spawn_blocking(move || password_matches(&password, &hash)).await.unwrap_or(false);
    let role = match (matched, Role::parse(&role)) {
        (true, Some(role)) => role,
        _ => return Err(wrong()),
    };
    let (cookie, view) = start_session(&state, name, role).await?;
    Ok((StatusCode::CREATED, [(header::SET_COOKIE, cookie)], Json(view)).into_response())
}

/// Starts a session for an account that proved who it is (a password here, the identity
/// provider in `oidc`): its `Set-Cookie` value and what the console is told.
pub(crate) async fn start_session(state: &AppState, name: String, role: Role) -> Answer<(HeaderValue, SessionView)> {
    let token = random_hex(32);
    let csrf = random_hex(16);
    let now = now();
    let expires_at = now + SESSION_SECONDS;
    {
        let _writer = state.store.write_guard().await;
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1").bind(now).execute(&state.store.pool).await?;
        sqlx::query(
            "INSERT INTO sessions (token_hash, account, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash(&token))
        .bind(&name)
        .bind(&csrf)
        .bind(now)
        .bind(expires_at)
        .execute(&state.store.pool)
        .await?;
    }
    let view = SessionView { account: name, role, csrf_token: csrf, expires_at };
    Ok((cookie(state, &token, SESSION_SECONDS)?, view))
}

/// `GET /api/v1/session`: who is signed in (a session only; the admin token is nobody).
#[utoipa::path(
    get,
    path = "/api/v1/session",
    tag = "session",
    summary = "Who is signed in (by the session cookie)",
    responses(
        (status = 200, description = "The session", body = crate::accounts::SessionView),
        (status = 401, description = "Not signed in, or the session ended", body = warden_api::ApiError),
    ),
)]
pub async fn current(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Answer<Json<SessionView>> {
    let token = session_cookie(&headers).ok_or_else(|| Failure::unauthorized("not_signed_in", "not signed in"))?;
    let session = live_session(&state, &token)
        .await?
        .ok_or_else(|| Failure::unauthorized("not_signed_in", "the session ended; sign in again"))?;
    let LiveSession { account, csrf: csrf_token, expires_at } = session;
    let (account, role) = (account.name, account.role);
    Ok(Json(SessionView { account, role, csrf_token, expires_at }))
}

/// `DELETE /api/v1/session`: signs out (the session ends at once, on every replica).
#[utoipa::path(
    delete,
    path = "/api/v1/session",
    tag = "session",
    summary = "Sign out: the session ends at once (X-CSRF-Token required)",
    responses(
        (status = 204, description = "Signed out; the cookie is cleared"),
        (status = 401, description = "Not signed in", body = warden_api::ApiError),
        (status = 403, description = "Missing or wrong X-CSRF-Token", body = warden_api::ApiError),
    ),
)]
pub async fn sign_out(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Answer<Response> {
    let token = session_cookie(&headers).ok_or_else(|| Failure::unauthorized("not_signed_in", "not signed in"))?;
    let LiveSession { csrf, .. } =
        live_session(&state, &token).await?.ok_or_else(|| Failure::unauthorized("not_signed_in", "not signed in"))?;
    let given = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !csrf_matches(given, &csrf) {
        return Err(Failure::new(StatusCode::FORBIDDEN, "csrf", "send the session's X-CSRF-Token").field(CSRF_HEADER));
    }
    {
        let _writer = state.store.write_guard().await;
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash(&token))
            .execute(&state.store.pool)
            .await?;
    }
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie(&state, "", 0)?)]).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_stretched_and_checked() {
        assert!(matches!(hash_password("short"), Err(AccountError::ShortPassword)));
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(password_matches("correct horse battery", &hash));
        assert!(!password_matches("correct horse batterY", &hash));
        assert_ne!(hash, hash_password("correct horse battery").unwrap(), "a new salt each time");
        assert!(PasswordHash::new(DUMMY_HASH).is_ok(), "the dummy hash is verified, so it must parse");
        assert!(!password_matches("anything at all here", DUMMY_HASH));
    }

    #[test]
    fn names_are_compared_lowercase_and_must_be_one_word() {
        assert_eq!(normalized_name("  Ana@Corp.Example ").unwrap(), "ana@corp.example");
        for bad in ["", "two words", "tab\tname", &"x".repeat(201)] {
            assert!(matches!(normalized_name(bad), Err(AccountError::InvalidName)), "{bad:?}");
        }
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("theme=dark; warden_session=abc123; x=1"));
        assert_eq!(session_cookie(&headers).as_deref(), Some("abc123"));
        headers.insert(header::COOKIE, HeaderValue::from_static("warden_session=; other=1"));
        assert_eq!(session_cookie(&headers), None);
    }
}
