//! Devices: enrollment with the organisation's secret, the device's own view, admin list and revocation.

use crate::auth::{AdminCaller, DEVICE_TOKEN_PREFIX, DeviceCaller, random_hex, token_hash};
use crate::extract::JsonBody;
use crate::failure::{Answer, Failure};
use crate::feed::{self, Wake};
use crate::policies::active_version;
use crate::{AppState, now};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use warden_api::{ChangeKind, DeviceInfo, DeviceList, EnrollRequest, EnrollResponse, ServiceState, ServiceStatus};

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

/// `POST /api/v1/enroll`
pub async fn enroll(
    State(state): State<AppState>,
    client: Option<axum::Extension<crate::ClientAddr>>,
    JsonBody(request): JsonBody<EnrollRequest>,
) -> Answer<(StatusCode, Json<EnrollResponse>)> {
    // Counted before the secret is looked at: guessing costs the same whether a guess is right.
    if let Some(axum::Extension(client)) = client {
        state.limits.enrollment(client.0)?;
    }
    if !crate::auth::token_matches(&request.secret, &state.enroll_secret_hash) {
        return Err(
            Failure::new(StatusCode::FORBIDDEN, "wrong_enroll_secret", "the enroll secret is wrong").field("secret")
        );
    }
    let hostname = text_field("hostname", &request.hostname, true)?;
    let user = text_field("user", &request.user, true)?;
    let platform = text_field("platform", &request.platform, false)?;
    let agent_version = text_field("agent_version", &request.agent_version, false)?;
    let device_id = format!("dev_{}", random_hex(12));
    let device_token = format!("{DEVICE_TOKEN_PREFIX}{}", random_hex(32));
    let now = now();
    {
        let _writer = state.store.write_guard().await;
        sqlx::query(
            "INSERT INTO devices (id, token_hash, hostname, username, platform, agent_version, enrolled_at, last_seen_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&device_id)
        .bind(token_hash(&device_token))
        .bind(&hostname)
        .bind(&user)
        .bind(&platform)
        .bind(&agent_version)
        .bind(now)
        .bind(now)
        .execute(&state.store.pool)
        .await?;
    }
    let policy_version = active_version(&state.store).await?.unwrap_or(0);
    Ok((
        StatusCode::CREATED,
        Json(EnrollResponse {
            device_id,
            device_token,
            policy_public_key: state.signing_key.public_key(),
            policy_version,
        }),
    ))
}

type DeviceRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// A device as stored, with `silent` judged at `now` (seconds) against `sync_interval`: not
/// revoked and not heard from for more than two intervals.
fn device_info(row: DeviceRow, now: i64, sync_interval: std::time::Duration) -> DeviceInfo {
    let (
        id,
        hostname,
        user,
        platform,
        agent_version,
        enrolled_at,
        last_seen_at,
        revoked_at,
        status,
        at_ms,
        version,
        reason,
        revoked_by,
    ) = row;
    let silent = revoked_at.is_none() && now - last_seen_at > 2 * sync_interval.as_secs() as i64;
    let status = match status.as_deref() {
        Some("running") => Some(ServiceStatus::Running),
        Some("stopped") => Some(ServiceStatus::Stopped),
        _ => None,
    };
    let service = status.zip(at_ms).map(|(status, at_ms)| ServiceState {
        status,
        at_ms,
        version: version.unwrap_or_default(),
        reason,
    });
    DeviceInfo {
        id,
        hostname,
        user,
        platform,
        agent_version,
        enrolled_at,
        last_seen_at,
        revoked_at,
        revoked_by,
        silent,
        service,
    }
}

const DEVICE_COLUMNS: &str = "id, hostname, username, platform, agent_version, enrolled_at, last_seen_at, revoked_at, \
     service_status, service_at_ms, service_version, service_reason, revoked_by";

async fn device_by_id(state: &AppState, id: &str) -> Answer<DeviceInfo> {
    let row: Option<DeviceRow> = sqlx::query_as(&format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = $1"))
        .bind(id)
        .fetch_optional(&state.store.pool)
        .await?;
    row.map(|row| device_info(row, now(), state.sync_interval)).ok_or_else(|| Failure::not_found("device"))
}

/// `GET /api/v1/device/me`
pub async fn me(State(state): State<AppState>, device: DeviceCaller) -> Answer<Json<DeviceInfo>> {
    device_by_id(&state, &device.id).await.map(Json)
}

/// `GET /api/v1/admin/devices[?format=csv]`: every device, most recently seen first, with the sync
/// interval that decides which are silent.
pub async fn list(
    State(state): State<AppState>,
    _admin: AdminCaller,
    format: crate::export::Format,
    _filters: crate::extract::QueryParams<crate::extract::NoFilters>,
) -> Answer<axum::response::Response> {
    let rows: Vec<DeviceRow> =
        sqlx::query_as(&format!("SELECT {DEVICE_COLUMNS} FROM devices ORDER BY last_seen_at DESC, id LIMIT 1000"))
            .fetch_all(&state.store.pool)
            .await?;
    let now = now();
    let list = DeviceList {
        sync_interval_seconds: state.sync_interval.as_secs(),
        devices: rows.into_iter().map(|row| device_info(row, now, state.sync_interval)).collect(),
    };
    crate::export::answer(format, list, |list| crate::export::csv(&list.devices, "devices.csv"))
}

/// `POST /api/v1/admin/devices/{id}/revoke`: its token stops working at once. The optional body
/// `{"actor": NAME}` names who revoked it (the device list and the admin audit log show it).
pub async fn revoke(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Answer<Json<DeviceInfo>> {
    let actor = crate::admin_audit::actor_of(&caller, &body)?;
    let now = now();
    let changed = {
        let _writer = state.store.write_guard().await;
        let mut transaction = state.store.pool.begin().await?;
        let result =
            sqlx::query("UPDATE devices SET revoked_at = $1, revoked_by = $2 WHERE id = $3 AND revoked_at IS NULL")
                .bind(now)
                .bind(&actor)
                .bind(&id)
                .execute(&mut *transaction)
                .await?;
        if result.rows_affected() == 1 {
            feed::record(&state.store, &mut transaction, &Wake::Device(id.clone()), ChangeKind::Revoked, &id, now)
                .await?;
            let entry = (actor.as_str(), "device-revoked", id.as_str(), "its token stopped working");
            crate::admin_audit::record(state.stream.is_some(), &mut transaction, entry, now).await?;
        }
        transaction.commit().await?;
        result.rows_affected() == 1
    };
    if changed {
        state.stream_wake.notify_one();
        state.feed.wake(Wake::Device(id.clone()));
    }
    device_by_id(&state, &id).await.map(Json)
}
