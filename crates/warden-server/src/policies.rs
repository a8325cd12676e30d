//! Policy versions: admins upload TOML (checked by the policy core), the server signs the
//! canonical JSON and serves the active version with an ETag.

use crate::auth::{AdminCaller, DeviceCaller};
use crate::extract::JsonBody;
use crate::failure::{Answer, Failure};
use crate::feed::{self, Wake};
use crate::store::Store;
use crate::{AppState, now};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use warden_api::{ChangeKind, PolicyEnvelope, PolicySigningKey, PolicyUpload, PolicyVersion, SigningKeys, policy_etag};
use warden_policy::Policy;

const ACTIVE: &str = "active_policy_version";
/// When the active policy was activated: the "since the policy changed" of the tools view.
const ACTIVATED_AT: &str = "active_policy_activated_at";
/// Largest policy file accepted.
const MAX_POLICY_BYTES: usize = 256 * 1024;

pub async fn active_version(store: &Store) -> Result<Option<i64>, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as("SELECT value FROM server_settings WHERE name = $1")
        .bind(ACTIVE)
        .fetch_optional(&store.pool)
        .await?;
    Ok(row.and_then(|(value,)| value.parse().ok()))
}

/// Who stores a policy version, and how the admin audit log records it.
#[derive(Debug)]
pub struct Storing<'a> {
    /// Shown as the version's `uploaded_by`.
    pub uploaded_by: &'a str,
    /// The admin audit row's actor, action (`policy-uploaded`, `policy-activated`) and detail.
    pub actor: &'a str,
    pub action: &'a str,
    pub detail: String,
    /// Whether the stream is on (the audit row is queued for it).
    pub stream_on: bool,
}

/// Signs and stores a checked policy as the next version; optionally makes it active. The admin
/// audit row is written in the same transaction (its subject: the new version).
pub async fn store_version(
    store: &Store,
    key: &PolicySigningKey,
    policy: &Policy,
    source: &str,
    storing: &Storing<'_>,
    activate: bool,
    now: i64,
) -> Result<i64, sqlx::Error> {
    let uploaded_by = storing.uploaded_by;
    let _writer = store.write_guard().await;
    let mut transaction = store.pool.begin().await?;
    let (version,): (i64,) =
        sqlx::query_as("SELECT COALESCE(MAX(version), 0) + 1 FROM policies").fetch_one(&mut *transaction).await?;
    let policy_json = policy.to_json();
    sqlx::query(
        "INSERT INTO policies (version, name, source, policy_json, signature, etag, uploaded_by, uploaded_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(version)
    .bind(&policy.name)
    .bind(source)
    .bind(&policy_json)
    .bind(key.sign(version, &policy_json))
    .bind(policy_etag(version, &policy_json))
    .bind(uploaded_by)
    .bind(now)
    .execute(&mut *transaction)
    .await?;
    if activate {
        set_active(store, &mut transaction, version, now).await?;
    }
    let entry = (storing.actor, storing.action, version.to_string(), storing.detail.as_str());
    crate::admin_audit::record(storing.stream_on, &mut transaction, (entry.0, entry.1, &entry.2, entry.3), now).await?;
    transaction.commit().await?;
    Ok(version)
}

async fn set_active(
    store: &Store,
    transaction: &mut sqlx::Transaction<'_, sqlx::Any>,
    version: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO server_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind(ACTIVE)
    .bind(version.to_string())
    .execute(&mut **transaction)
    .await?;
    sqlx::query(
        "INSERT INTO server_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind(ACTIVATED_AT)
    .bind(now.to_string())
    .execute(&mut **transaction)
    .await?;
    feed::record(store, transaction, &Wake::Everyone, ChangeKind::Policy, &version.to_string(), now).await
}

/// When a policy was last activated (seconds since the epoch); `None` before any activation
/// recorded it (servers older than the fleet views).
pub async fn activated_at(state: &AppState) -> Answer<Option<i64>> {
    let row: Option<(String,)> = sqlx::query_as("SELECT value FROM server_settings WHERE name = $1")
        .bind(ACTIVATED_AT)
        .fetch_optional(&state.store.pool)
        .await?;
    Ok(row.and_then(|(text,)| text.parse().ok()))
}

/// The active policy, parsed (for checking exception requests against it).
pub async fn active_policy(state: &AppState) -> Answer<Policy> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT policy_json FROM policies WHERE version = \
         (SELECT CAST(value AS BIGINT) FROM server_settings WHERE name = $1)",
    )
    .bind(ACTIVE)
    .fetch_optional(&state.store.pool)
    .await?;
    let (json,) = row.ok_or_else(|| Failure::internal("no active policy"))?;
    Policy::from_json("active policy", &json).map_err(Failure::internal)
}

type EnvelopeRow = (i64, String, String, String, i64);

/// `GET /api/v1/device/policy`
#[utoipa::path(
    get,
    path = "/api/v1/device/policy",
    tag = "device",
    summary = "The active policy, signed; send If-None-Match with the last ETag",
    params(
        ("If-None-Match" = Option<String>, Header),
    ),
    responses(
        (status = 200, description = "Signed policy (ETag header set)", body = warden_api::PolicyEnvelope),
        (status = 304, description = "Unchanged"),
        crate::openapi::DeviceAuthErrors,
    ),
    security(("device" = [])),
)]
pub async fn fetch(State(state): State<AppState>, _device: DeviceCaller, headers: HeaderMap) -> Answer<Response> {
    let row: Option<EnvelopeRow> = sqlx::query_as(
        "SELECT version, etag, policy_json, signature, uploaded_at FROM policies WHERE version = \
         (SELECT CAST(value AS BIGINT) FROM server_settings WHERE name = $1)",
    )
    .bind(ACTIVE)
    .fetch_optional(&state.store.pool)
    .await?;
    let (version, etag, policy, signature, created_at) = row.ok_or_else(|| Failure::internal("no active policy"))?;
    let etag_header = HeaderValue::from_str(&etag).map_err(Failure::internal)?;
    if let Some(wanted) = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok())
        && etag_matches(wanted, &etag)
    {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag_header)]).into_response());
    }
    let envelope =
        PolicyEnvelope { version, etag, policy, signature, public_key: state.signing_key.public_key(), created_at };
    Ok(([(header::ETAG, etag_header), (header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))], Json(envelope))
        .into_response())
}

/// `If-None-Match` semantics: a list of (possibly weak) tags, or `*`.
fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match.split(',').map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

/// `GET /api/v1/device/signing-keys`: the key the server signs with and the rotations that led
/// to it, for a device to follow from the key it pinned.
#[utoipa::path(
    get,
    path = "/api/v1/device/signing-keys",
    tag = "device",
    summary = "The signing key and the rotations that led to it (devices follow them from their pinned key)",
    responses(
        (status = 200, description = "Keys", body = warden_api::SigningKeys),
        crate::openapi::DeviceAuthErrors,
    ),
    security(("device" = [])),
)]
pub async fn signing_keys(State(state): State<AppState>, _device: DeviceCaller) -> Answer<Json<SigningKeys>> {
    let rotations = crate::bootstrap::key_rotations(&state.store).await?;
    Ok(Json(SigningKeys { current: state.signing_key.public_key(), rotations }))
}

/// `POST /api/v1/admin/policies`
#[utoipa::path(
    post,
    path = "/api/v1/admin/policies",
    tag = "admin",
    summary = "Upload a policy file (checked; errors carry line and column)",
    request_body(content = warden_api::PolicyUpload, content_type = "application/json"),
    responses(
        (status = 201, description = "Stored (and active unless activate=false)", body = warden_api::PolicyVersion),
        (status = 409, description = "Concurrent upload; retry", body = warden_api::ApiError),
        (status = 422, description = "Policy does not check: location gives line and column", body = warden_api::ApiError),
        crate::openapi::AdminAuthErrors,
        (status = 400, description = "Malformed JSON; `field` names the JSON path", body = warden_api::ApiError),
        (status = 413, description = "Body too large", body = warden_api::ApiError),
    ),
    security(("admin" = [])),
)]
pub async fn upload(
    State(state): State<AppState>,
    caller: AdminCaller,
    JsonBody(upload): JsonBody<PolicyUpload>,
) -> Answer<(StatusCode, Json<PolicyVersion>)> {
    if upload.source.len() > MAX_POLICY_BYTES {
        return Err(Failure::invalid("source", format!("policy files are limited to {MAX_POLICY_BYTES} bytes")));
    }
    let file = upload.file_name.as_deref().map(str::trim).filter(|f| !f.is_empty()).unwrap_or("policy.toml");
    if file.len() > 200 {
        return Err(Failure::invalid("file_name", "file_name is limited to 200 characters"));
    }
    let policy = Policy::parse(file, &upload.source).map_err(|error| Failure::policy(&error))?;
    // A signed-in account uploads as itself; the admin token under the name it gives.
    let actor = caller.actor();
    let uploaded_by = match &actor {
        Some(actor) => actor.as_str(),
        None => upload.uploaded_by.as_deref().map(str::trim).filter(|u| !u.is_empty()).unwrap_or("admin"),
    };
    let activate = upload.activate.unwrap_or(true);
    let now = now();
    let storing = Storing {
        uploaded_by,
        actor: uploaded_by,
        action: "policy-uploaded",
        detail: format!("“{}” from {file}{}", policy.name, if activate { ", activated" } else { ", not activated" }),
        stream_on: state.stream.is_some(),
    };
    let version = store_version(&state.store, &state.signing_key, &policy, &upload.source, &storing, activate, now)
        .await
        .map_err(|error| match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                Failure::new(StatusCode::CONFLICT, "conflict", "another upload took this version number; retry")
            }
            _ => Failure::from(error),
        })?;
    state.stream_wake.notify_one();
    if activate {
        state.feed.wake(Wake::Everyone);
    }
    let stored = version_row(&state, version, false).await?;
    Ok((StatusCode::CREATED, Json(stored)))
}

async fn version_row(state: &AppState, version: i64, with_source: bool) -> Answer<PolicyVersion> {
    let active = active_version(&state.store).await?;
    let row: Option<(i64, String, String, String, i64, String)> =
        sqlx::query_as("SELECT version, name, etag, uploaded_by, uploaded_at, source FROM policies WHERE version = $1")
            .bind(version)
            .fetch_optional(&state.store.pool)
            .await?;
    let (version, name, etag, uploaded_by, uploaded_at, source) =
        row.ok_or_else(|| Failure::not_found("policy version"))?;
    Ok(PolicyVersion {
        version,
        name,
        etag,
        active: active == Some(version),
        uploaded_by,
        uploaded_at,
        source: with_source.then_some(source),
        republished_from: None,
    })
}

/// `GET /api/v1/admin/policies`: every version, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/admin/policies",
    tag = "admin",
    summary = "Every policy version, newest first",
    responses(
        (status = 200, description = "Versions", body = Vec<warden_api::PolicyVersion>),
        crate::openapi::AdminAuthErrors,
    ),
    security(("admin" = [])),
)]
pub async fn list(State(state): State<AppState>, _admin: AdminCaller) -> Answer<Json<Vec<PolicyVersion>>> {
    let active = active_version(&state.store).await?;
    let rows: Vec<(i64, String, String, String, i64)> = sqlx::query_as(
        "SELECT version, name, etag, uploaded_by, uploaded_at FROM policies ORDER BY version DESC LIMIT 500",
    )
    .fetch_all(&state.store.pool)
    .await?;
    Ok(Json(
        rows.into_iter()
            .map(|(version, name, etag, uploaded_by, uploaded_at)| PolicyVersion {
                version,
                name,
                etag,
                active: active == Some(version),
                uploaded_by,
                uploaded_at,
                source: None,
                republished_from: None,
            })
            .collect(),
    ))
}

/// `GET /api/v1/admin/policies/active`: the active version with its source text.
#[utoipa::path(
    get,
    path = "/api/v1/admin/policies/active",
    tag = "admin",
    summary = "The active version with its source",
    responses(
        (status = 200, description = "Active version", body = warden_api::PolicyVersion),
        crate::openapi::AdminAuthErrors,
    ),
    security(("admin" = [])),
)]
pub async fn active(State(state): State<AppState>, _admin: AdminCaller) -> Answer<Json<PolicyVersion>> {
    let version = active_version(&state.store).await?.ok_or_else(|| Failure::not_found("active policy"))?;
    version_row(&state, version, true).await.map(Json)
}

/// `POST /api/v1/admin/policies/{version}/activate`: puts a stored version's content in force. Devices
/// never accept a lower version number than the one they hold (a replayed old policy must not pass),
/// so activating any version but the newest rolls *forward*: its content is signed again as a new,
/// higher version, which becomes active; the answer's `republished_from` names the original.
///
/// The optional body `{"actor": NAME}` names who did it, for the admin audit log.
#[utoipa::path(
    post,
    path = "/api/v1/admin/policies/{version}/activate",
    tag = "admin",
    summary = "Make a stored version active (roll back or forward)",
    params(
        ("version" = String, Path, description = "Policy version"),
    ),
    request_body(content = crate::admin_audit::ActorBody, description = "Optional: who acts", content_type = "application/json"),
    responses(
        (status = 200, description = "Now active", body = warden_api::PolicyVersion),
        (status = 400, description = "Version is not a number", body = warden_api::ApiError),
        (status = 404, description = "No such version", body = warden_api::ApiError),
        crate::openapi::AdminAuthErrors,
        (status = 422, description = "actor too long or not printable", body = warden_api::ApiError),
    ),
    security(("admin" = [])),
)]
pub async fn activate(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(version): Path<String>,
    body: axum::body::Bytes,
) -> Answer<Json<PolicyVersion>> {
    let version: i64 = version.parse().map_err(|_| Failure::malformed("version", "version must be a whole number"))?;
    let actor = crate::admin_audit::actor_of(&caller, &body)?;
    let stored = version_row(&state, version, true).await?;
    let (newest,): (i64,) = sqlx::query_as("SELECT MAX(version) FROM policies").fetch_one(&state.store.pool).await?;
    if version == newest {
        {
            let _writer = state.store.write_guard().await;
            let mut transaction = state.store.pool.begin().await?;
            set_active(&state.store, &mut transaction, version, now()).await?;
            let entry =
                (actor.as_str(), "policy-activated", version.to_string(), "the newest version, activated in place");
            crate::admin_audit::record(
                state.stream.is_some(),
                &mut transaction,
                (entry.0, entry.1, &entry.2, entry.3),
                now(),
            )
            .await?;
            transaction.commit().await?;
        }
        state.stream_wake.notify_one();
        state.feed.wake(Wake::Everyone);
        return version_row(&state, version, false).await.map(Json);
    }
    let (policy_json,): (String,) = sqlx::query_as("SELECT policy_json FROM policies WHERE version = $1")
        .bind(version)
        .fetch_one(&state.store.pool)
        .await?;
    let policy = Policy::from_json(&format!("policy version {version}"), &policy_json).map_err(Failure::internal)?;
    let source = stored.source.unwrap_or_default();
    let by = format!("{} (version {version} activated again by {actor})", stored.uploaded_by);
    let storing = Storing {
        uploaded_by: &by,
        actor: &actor,
        action: "policy-activated",
        detail: format!("version {version} activated again, signed as a new version"),
        stream_on: state.stream.is_some(),
    };
    let republished = store_version(&state.store, &state.signing_key, &policy, &source, &storing, true, now()).await?;
    state.stream_wake.notify_one();
    state.feed.wake(Wake::Everyone);
    let mut answer = version_row(&state, republished, false).await?;
    answer.republished_from = Some(version);
    Ok(Json(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_follows_http() {
        let tag = policy_etag(3, "{}");
        assert!(etag_matches(&tag, &tag));
        assert!(etag_matches(&format!("W/{tag}"), &tag));
        assert!(etag_matches(&format!("\"x\", {tag}"), &tag));
        assert!(etag_matches("*", &tag));
        assert!(!etag_matches(&policy_etag(4, "{}"), &tag));
        assert!(!etag_matches(&policy_etag(3, "{ }"), &tag));
    }
}
