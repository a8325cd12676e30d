//! Credentials: random tokens, their hashes, and the extractors that guard device and admin routes
//! (admin routes: the admin token, a signed-in account's session — see `accounts` —, or an API
//! token — see `api_tokens`).
//!
//! The server stores only SHA-256 hashes of tokens and secrets. Tokens carry 256 random bits,
//! so a plain hash is enough (no password stretching needed) and lookups stay one index probe.

use crate::AppState;
use crate::accounts::{self, Account, Role};
use crate::api_tokens::{self, API_TOKEN_PREFIX, TokenHolder};
use crate::failure::Failure;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

/// Prefix of device tokens, so a misplaced one is recognisable (and refused on admin routes).
pub const DEVICE_TOKEN_PREFIX: &str = "wdev_";
/// Prefix of admin tokens.
pub const ADMIN_TOKEN_PREFIX: &str = "wadm_";

/// `bytes` random bytes from the OS, as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).expect("the OS random source is available");
    hex(&buffer)
}

/// 32 random bytes from the OS.
pub fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).expect("the OS random source is available");
    key
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a token, hex.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// Whether `token` hashes to `stored` (a [`token_hash`]), compared in constant time: how long the
/// answer takes says nothing about how much of a guess was right.
pub fn token_matches(token: &str, stored: &str) -> bool {
    let given = token_hash(token);
    given.len() == stored.len() && given.bytes().zip(stored.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// The bearer token of a request, if it has one.
fn bearer(parts: &Parts) -> Result<&str, Failure> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| Failure::unauthorized("missing_token", "send Authorization: Bearer TOKEN"))?;
    let text =
        header.to_str().map_err(|_| Failure::unauthorized("malformed_token", "unreadable Authorization header"))?;
    text.strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| Failure::unauthorized("malformed_token", "Authorization must be `Bearer TOKEN`"))
}

/// An enrolled, not revoked device: the caller of a `/device/…` route.
#[derive(Debug, Clone)]
pub struct DeviceCaller {
    pub id: String,
    pub user: String,
}

impl FromRequestParts<AppState> for DeviceCaller {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Failure> {
        let token = bearer(parts)?;
        let hash = token_hash(token);
        let row: Option<(String, String, Option<i64>, Option<String>)> = sqlx::query_as(
            "SELECT id, username, revoked_at, next_token_hash FROM devices WHERE token_hash = $1 OR next_token_hash = $1",
        )
        .bind(&hash)
        .fetch_optional(&state.store.pool)
        .await?;
        match row {
            None => Err(Failure::unauthorized("unknown_token", "unknown device token; enroll again")),
            Some((_, _, Some(_), _)) => {
                Err(Failure::unauthorized("revoked_token", "this device was revoked by an admin; enroll again"))
            }
            Some((id, user, None, next)) => {
                if next.as_deref() == Some(hash.as_str()) {
                    // The rotated token's first use: from now on it is the only one.
                    let _writer = state.store.write_guard().await;
                    sqlx::query(
                        "UPDATE devices SET token_hash = next_token_hash, next_token_hash = NULL, token_rotated_at = $1 \
                         WHERE id = $2 AND next_token_hash = $3",
                    )
                    .bind(crate::now())
                    .bind(&id)
                    .bind(&hash)
                    .execute(&state.store.pool)
                    .await?;
                }
                Ok(DeviceCaller { id, user })
            }
        }
    }
}

/// The caller of an admin route: a signed-in account (session cookie), the holder of an API token
/// (`api_token`), or the holder of the shared admin token (neither: the break-glass credential).
/// Only a session is a person: `account` is `None` for both tokens, so nothing that needs a
/// verified person (deciding an exception request) can be done with a token.
#[derive(Debug, Clone)]
pub struct AdminCaller {
    pub account: Option<Account>,
    pub api_token: Option<TokenHolder>,
}

impl AdminCaller {
    /// Whom the audit log names: the account, or `owner (API token NAME)`; `None` for the admin
    /// token, which is nobody.
    pub fn actor(&self) -> Option<String> {
        match (&self.account, &self.api_token) {
            (Some(account), _) => Some(account.name.clone()),
            (None, Some(holder)) => Some(holder.actor()),
            (None, None) => None,
        }
    }

    /// The role the caller acts in (the admin token: admin).
    pub fn role(&self) -> Role {
        match (&self.account, &self.api_token) {
            (Some(account), _) => account.role,
            (None, Some(holder)) => holder.role,
            (None, None) => Role::Admin,
        }
    }
}

fn forbidden_for_role(role: Role) -> Failure {
    Failure::new(StatusCode::FORBIDDEN, "role_forbids", format!("the {} role cannot do this", role.as_str()))
}

/// Whether an account in `role` may call `method` on `path`: developers only make enrollment codes
/// for their own devices; auditors also read; approvers also decide exception requests; admins
/// do everything.
fn role_allows(role: Role, method: &axum::http::Method, path: &str) -> bool {
    let reading = method == axum::http::Method::GET || method == axum::http::Method::HEAD;
    // Everyone signed in may make an enrollment code (for their own device; the handler checks
    // that only admins name someone else).
    let own_code = method == axum::http::Method::POST && path == "/api/v1/admin/enrollment-codes";
    // Auditors and approvers manage their own API tokens (the handler caps the token's role at
    // theirs and lets only admins touch others' tokens).
    let own_tokens = path.starts_with("/api/v1/admin/api-tokens");
    match role {
        Role::Admin => true,
        Role::Approver => reading || own_code || own_tokens || path.starts_with("/api/v1/admin/exceptions/"),
        Role::Auditor => reading || own_code || own_tokens,
        Role::Developer => own_code,
    }
}

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Failure> {
        if parts.headers.contains_key(axum::http::header::AUTHORIZATION) {
            let token = bearer(parts)?;
            if token_matches(token, &state.admin_token_hash) {
                return Ok(AdminCaller { account: None, api_token: None });
            }
            if token.starts_with(API_TOKEN_PREFIX) {
                let holder = api_tokens::holder(state, token, crate::now())
                    .await?
                    .ok_or_else(|| Failure::unauthorized("unknown_token", "unknown, expired or revoked API token"))?;
                if !role_allows(holder.role, &parts.method, parts.uri.path()) {
                    return Err(forbidden_for_role(holder.role));
                }
                return Ok(AdminCaller { account: None, api_token: Some(holder) });
            }
            if token.starts_with(DEVICE_TOKEN_PREFIX) {
                return Err(Failure::new(
                    StatusCode::FORBIDDEN,
                    "device_token_on_admin_route",
                    "device tokens cannot use admin routes",
                )
                .field("authorization"));
            }
            return Err(Failure::unauthorized("unknown_token", "wrong admin token"));
        }
        let Some(token) = accounts::session_cookie(&parts.headers) else {
            return Err(Failure::unauthorized("missing_token", "sign in, or send Authorization: Bearer TOKEN"));
        };
        let accounts::LiveSession { account, csrf, .. } = accounts::live_session(state, &token)
            .await?
            .ok_or_else(|| Failure::unauthorized("not_signed_in", "the session ended; sign in again"))?;
        let reading = parts.method == axum::http::Method::GET || parts.method == axum::http::Method::HEAD;
        if !reading {
            // The cookie rides along on any request the browser makes; only this console's own
            // script can read the CSRF token to echo it.
            let given = parts.headers.get(accounts::CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
            if !accounts::csrf_matches(given, &csrf) {
                return Err(Failure::new(StatusCode::FORBIDDEN, "csrf", "send the session's X-CSRF-Token")
                    .field(accounts::CSRF_HEADER));
            }
        }
        if !role_allows(account.role, &parts.method, parts.uri.path()) {
            return Err(forbidden_for_role(account.role));
        }
        Ok(AdminCaller { account: Some(account), api_token: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashes_are_stable() {
        let a = random_hex(32);
        assert_eq!(a.len(), 64);
        assert_ne!(a, random_hex(32));
        assert_eq!(token_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(token_matches("abc", &token_hash("abc")));
        assert!(!token_matches("abd", &token_hash("abc")) && !token_matches("abc", "short"));
    }

    #[test]
    fn roles_allow_what_the_table_says() {
        use axum::http::Method;
        let cases = [
            (Role::Auditor, Method::GET, "/api/v1/admin/overview", true),
            (Role::Auditor, Method::POST, "/api/v1/admin/exceptions/x/approve", false),
            (Role::Approver, Method::POST, "/api/v1/admin/exceptions/x/approve", true),
            (Role::Approver, Method::POST, "/api/v1/admin/devices/d/revoke", false),
            (Role::Approver, Method::POST, "/api/v1/admin/policies", false),
            (Role::Admin, Method::POST, "/api/v1/admin/policies", true),
            (Role::Developer, Method::POST, "/api/v1/admin/enrollment-codes", true),
            (Role::Developer, Method::GET, "/api/v1/admin/overview", false),
            (Role::Developer, Method::POST, "/api/v1/admin/exceptions/x/approve", false),
            (Role::Auditor, Method::POST, "/api/v1/admin/enrollment-codes", true),
            (Role::Auditor, Method::POST, "/api/v1/admin/api-tokens", true),
            (Role::Developer, Method::POST, "/api/v1/admin/api-tokens", false),
            (Role::Developer, Method::GET, "/api/v1/admin/api-tokens", false),
        ];
        for (role, method, path, allowed) in cases {
            assert_eq!(role_allows(role, &method, path), allowed, "{role:?} {method} {path}");
        }
    }
}
