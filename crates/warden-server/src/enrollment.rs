//! Enrollment and device credentials: one-time enrollment codes bound to a person, enrollment
//! with a code (or, before any account exists, the shared enroll secret), and device-token
//! rotation.
//!
//! Devices belong to people: once the server has accounts, the shared secret no longer enrolls
//! (anyone holding it could otherwise enroll a "device" as any colleague and file requests in
//! their name); a device enrolls with a code a signed-in person made for themselves, or an admin
//! made for them, and the device's owner is the code's person whatever the device claims.

use crate::accounts::{self, Role};
use crate::auth::{AdminCaller, DEVICE_TOKEN_PREFIX, DeviceCaller, random_hex, token_hash};
use crate::extract::JsonBody;
use crate::failure::{Answer, Failure};
use crate::policies::active_version;
use crate::{AppState, now};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use warden_api::{
    EnrollRequest, EnrollResponse, EnrollmentCode, EnrollmentCodeCreate, EnrollmentCodeIssued, TokenRotation,
};

/// Prefix of an enrollment code's one-time secret.
pub const ENROLLMENT_SECRET_PREFIX: &str = "wenr_";
/// How long a code works unless the maker says otherwise, and at most (hours).
pub const DEFAULT_CODE_HOURS: u32 = 24;
pub const MAX_CODE_HOURS: u32 = 7 * 24;

fn text_field(field: &str, value: &str, required: bool) -> Answer<String> {
    let value = value.trim();
    if required && value.is_empty() {
        return Err(Failure::invalid(field, format!("{field} is required")));
    }
    if value.chars().count() > 255 || value.chars().any(char::is_control) {
        return Err(Failure::invalid(field, format!("{field} must be at most 255 printable characters")));
    }
    Ok(value.to_owned())
}

/// The base URL devices reach this server at: `--public-url`, else the scheme this server speaks
/// and the `Host` the console was reached at (the admin and the devices use the same name).
pub(crate) fn public_url(state: &AppState, headers: &HeaderMap) -> Answer<String> {
    if let Some(url) = &state.public_url {
        return Ok(url.clone());
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c)))
        .ok_or_else(|| Failure::invalid("host", "no usable Host header: start the server with --public-url"))?;
    Ok(format!("{}://{host}", if state.tls.is_some() { "https" } else { "http" }))
}

/// `POST /api/v1/admin/enrollment-codes`: a one-time code enrolling one device for one person.
#[utoipa::path(
    post,
    path = "/api/v1/admin/enrollment-codes",
    tag = "admin",
    summary = "Make a one-time enrollment code for one person's device",
    request_body(content = warden_api::EnrollmentCodeCreate, content_type = "application/json"),
    responses(
        (status = 201, description = "The code (shown once)", body = warden_api::EnrollmentCodeIssued),
        (status = 400, description = "Malformed JSON", body = warden_api::ApiError),
        (status = 401, description = "Not signed in, or wrong admin token", body = warden_api::ApiError),
        (status = 403, description = "Naming someone else without the admin role (`role_forbids`), a device token, or a missing CSRF token", body = warden_api::ApiError),
        (status = 422, description = "Invalid user or valid_hours; the admin token without a user", body = warden_api::ApiError),
    ),
    security(("admin" = [])),
)]
pub async fn create_code(
    State(state): State<AppState>,
    caller: AdminCaller,
    headers: HeaderMap,
    JsonBody(request): JsonBody<EnrollmentCodeCreate>,
) -> Answer<(StatusCode, Json<EnrollmentCodeIssued>)> {
    let named = request.user.as_deref().map(str::trim).filter(|u| !u.is_empty());
    // Whose own devices the caller enrolls without naming anyone: the account's, or an API
    // token's owner's; the admin token is nobody.
    let own =
        caller.account.as_ref().map(|a| a.name.clone()).or_else(|| caller.api_token.as_ref().map(|t| t.owner.clone()));
    let actor = caller.actor().unwrap_or_else(|| crate::admin_audit::UNNAMED_ACTOR.to_owned());
    let (actor, user) = match (own, named) {
        (Some(own), None) => (actor, own),
        (Some(own), Some(user)) if caller.role() == Role::Admin || accounts::same_name(user, &own) => {
            (actor, user.to_owned())
        }
        (Some(_), Some(_)) => {
            return Err(Failure::new(
                StatusCode::FORBIDDEN,
                "role_forbids",
                "only an admin makes enrollment codes for someone else",
            )
            .field("user"));
        }
        (None, Some(user)) => (actor, user.to_owned()),
        (None, None) => {
            return Err(Failure::invalid("user", "the admin token is nobody: name whose device the code enrolls"));
        }
    };
    let user = accounts::normalized_name(&user)
        .map_err(|_| Failure::invalid("user", "a user is one word of 1–200 characters: a name or an e-mail address"))?;
    let hours = request.valid_hours.unwrap_or(DEFAULT_CODE_HOURS);
    if !(1..=MAX_CODE_HOURS).contains(&hours) {
        return Err(Failure::invalid("valid_hours", format!("valid_hours must be 1–{MAX_CODE_HOURS}")));
    }
    let server = public_url(&state, &headers)?;
    let secret = format!("{ENROLLMENT_SECRET_PREFIX}{}", random_hex(32));
    let now = now();
    let expires_at = now + i64::from(hours) * 3600;
    {
        let _writer = state.store.write_guard().await;
        let mut transaction = state.store.pool.begin().await?;
        sqlx::query(
            "INSERT INTO enrollment_codes (code_hash, username, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash(&secret))
        .bind(&user)
        .bind(&actor)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *transaction)
        .await?;
        let detail = format!("for {user}, valid {hours} h");
        let entry = (actor.as_str(), "enrollment-code-created", user.as_str(), detail.as_str());
        crate::admin_audit::record(state.stream.is_some(), &mut transaction, entry, now).await?;
        transaction.commit().await?;
    }
    state.stream_wake.notify_one();
    let code =
        EnrollmentCode { server, code: secret, user: user.clone(), expires_at, server_ca: state.enrollment_ca.clone() };
    Ok((StatusCode::CREATED, Json(EnrollmentCodeIssued { enrollment_code: code.encode(), user, expires_at })))
}

/// `POST /api/v1/enroll`
#[utoipa::path(
    post,
    path = "/api/v1/enroll",
    tag = "device",
    summary = "Enroll a device with an enrollment code (or, before any account exists, the enroll secret)",
    request_body(content = warden_api::EnrollRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Enrolled", body = warden_api::EnrollResponse),
        (status = 403, description = "Wrong enroll secret (`wrong_enroll_secret`), the secret once accounts exist (`enrollment_code_required`), or an unknown, used or expired code (`invalid_enrollment_code`)", body = warden_api::ApiError),
        (status = 422, description = "Invalid field", body = warden_api::ApiError),
        (status = 400, description = "Malformed JSON; `field` names the JSON path", body = warden_api::ApiError),
        (status = 413, description = "Body too large", body = warden_api::ApiError),
        (status = 429, description = "Too many enrollment attempts from this address (`too_many_enrollments`)", body = warden_api::ApiError, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    ),
)]
pub async fn enroll(
    State(state): State<AppState>,
    client: Option<axum::Extension<crate::ClientAddr>>,
    JsonBody(request): JsonBody<EnrollRequest>,
) -> Answer<(StatusCode, Json<EnrollResponse>)> {
    // Counted before any credential is looked at: guessing costs the same whether a guess is right.
    if let Some(axum::Extension(client)) = client {
        state.limits.enrollment(client.0)?;
    }
    let hostname = text_field("hostname", &request.hostname, true)?;
    let platform = text_field("platform", &request.platform, false)?;
    let agent_version = text_field("agent_version", &request.agent_version, false)?;
    let code = request.code.as_deref().map(str::trim).filter(|c| !c.is_empty());
    if code.is_none() {
        if !crate::auth::token_matches(&request.secret, &state.enroll_secret_hash) {
            return Err(Failure::new(StatusCode::FORBIDDEN, "wrong_enroll_secret", "the enroll secret is wrong")
                .field("secret"));
        }
        if accounts::in_use(&state).await? {
            return Err(Failure::new(
                StatusCode::FORBIDDEN,
                "enrollment_code_required",
                "devices belong to people: enroll with a code made on the console (the shared enroll secret \
                 no longer enrolls once accounts exist)",
            )
            .field("code"));
        }
    }
    let claimed = text_field("user", &request.user, code.is_none())?;
    let device_id = format!("dev_{}", random_hex(12));
    let device_token = format!("{DEVICE_TOKEN_PREFIX}{}", random_hex(32));
    let now = now();
    let user = {
        let _writer = state.store.write_guard().await;
        let mut transaction = state.store.pool.begin().await?;
        let (user, enrolled_by) = match code {
            None => (claimed, None),
            Some(code) => {
                // One conditional update spends the code: of two devices racing with one code,
                // exactly one enrolls.
                let spent: Option<(String, String)> = sqlx::query_as(
                    "UPDATE enrollment_codes SET used_at = $1, device_id = $2 \
                     WHERE code_hash = $3 AND used_at IS NULL AND expires_at > $1 RETURNING username, created_by",
                )
                .bind(now)
                .bind(&device_id)
                .bind(token_hash(code))
                .fetch_optional(&mut *transaction)
                .await?;
                let Some((user, created_by)) = spent else {
                    return Err(Failure::new(
                        StatusCode::FORBIDDEN,
                        "invalid_enrollment_code",
                        "the enrollment code is unknown, used or expired: make a new one on the console",
                    )
                    .field("code"));
                };
                if !claimed.is_empty() && !accounts::same_name(&claimed, &user) {
                    return Err(Failure::invalid(
                        "user",
                        format!("this code enrolls a device of {user}, not {claimed}"),
                    ));
                }
                (user, Some(created_by))
            }
        };
        sqlx::query(
            "INSERT INTO devices (id, token_hash, hostname, username, platform, agent_version, enrolled_at, \
             last_seen_at, enrolled_by, token_rotated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&device_id)
        .bind(token_hash(&device_token))
        .bind(&hostname)
        .bind(&user)
        .bind(&platform)
        .bind(&agent_version)
        .bind(now)
        .bind(now)
        .bind(enrolled_by.as_deref())
        .bind(now)
        .execute(&mut *transaction)
        .await?;
        if let Some(maker) = &enrolled_by {
            let detail = format!("{hostname} for {user} with a code made by {maker}");
            let entry = (user.as_str(), "device-enrolled", device_id.as_str(), detail.as_str());
            crate::admin_audit::record(state.stream.is_some(), &mut transaction, entry, now).await?;
        }
        transaction.commit().await?;
        user
    };
    state.stream_wake.notify_one();
    let policy_version = active_version(&state.store).await?.unwrap_or(0);
    Ok((
        StatusCode::CREATED,
        Json(EnrollResponse {
            device_id,
            device_token,
            policy_public_key: state.signing_key.public_key(),
            policy_version,
            user,
        }),
    ))
}

/// `POST /api/v1/device/token`: a fresh token for the calling device. It becomes the device's
/// only token the first time it is used ([`crate::auth::DeviceCaller`] promotes it); until then
/// the current one keeps working, so a lost answer costs nothing, and asking again replaces the
/// unused one.
#[utoipa::path(
    post,
    path = "/api/v1/device/token",
    tag = "device",
    summary = "Rotate this device's token",
    responses(
        (status = 200, description = "The next token", body = warden_api::TokenRotation),
        crate::openapi::DeviceAuthErrors,
    ),
    security(("device" = [])),
)]
pub async fn rotate_token(State(state): State<AppState>, device: DeviceCaller) -> Answer<Json<TokenRotation>> {
    let device_token = format!("{DEVICE_TOKEN_PREFIX}{}", random_hex(32));
    {
        let _writer = state.store.write_guard().await;
        sqlx::query("UPDATE devices SET next_token_hash = $1 WHERE id = $2")
            .bind(token_hash(&device_token))
            .bind(&device.id)
            .execute(&state.store.pool)
            .await?;
    }
    Ok(Json(TokenRotation { device_token }))
}
