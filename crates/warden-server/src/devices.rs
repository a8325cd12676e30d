//! Devices: the device's own view, the admin list and revocation (enrollment: `enrollment`).

use crate::auth::{AdminCaller, DeviceCaller};
use crate::failure::{Answer, Failure};
use crate::feed::{self, Wake};
use crate::{AppState, now};
use axum::Json;
use axum::extract::{Path, State};
use warden_api::{ChangeKind, DeviceInfo, DeviceList, ServiceState, ServiceStatus};

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
#[utoipa::path(
    get,
    path = "/api/v1/device/me",
    tag = "device",
    summary = "This device as the server knows it",
    responses(
        (status = 200, description = "The device", body = warden_api::DeviceInfo),
        crate::openapi::DeviceAuthErrors,
    ),
    security(("device" = [])),
)]
pub async fn me(State(state): State<AppState>, device: DeviceCaller) -> Answer<Json<DeviceInfo>> {
    device_by_id(&state, &device.id).await.map(Json)
}

/// `GET /api/v1/admin/devices[?format=csv]`: every device, most recently seen first, with the sync
/// interval that decides which are silent.
#[utoipa::path(
    get,
    path = "/api/v1/admin/devices",
    tag = "admin",
    summary = "Every device, most recently seen first, each flagged silent after two sync intervals without a heartbeat",
    params(
        ("format" = Option<crate::export::Format>, Query, description = "json (default) or csv"),
    ),
    responses(
        (status = 200, description = "Devices", content((warden_api::DeviceList = "application/json"), (String = "text/csv"))),
        crate::openapi::AdminAuthErrors,
        (status = 400, description = "Unknown format", body = warden_api::ApiError),
        (status = 422, description = "format is not json or csv", body = warden_api::ApiError),
    ),
    security(("admin" = [])),
)]
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
#[utoipa::path(
    post,
    path = "/api/v1/admin/devices/{id}/revoke",
    tag = "admin",
    summary = "Revoke a device's token",
    params(
        ("id" = String, Path, description = "Device id"),
    ),
    request_body(content = crate::admin_audit::ActorBody, description = "Optional: who acts", content_type = "application/json"),
    responses(
        (status = 200, description = "Revoked", body = warden_api::DeviceInfo),
        (status = 404, description = "No such device", body = warden_api::ApiError),
        crate::openapi::AdminAuthErrors,
        (status = 400, description = "The body is not {\"actor\": …}", body = warden_api::ApiError),
        (status = 422, description = "actor too long or not printable", body = warden_api::ApiError),
    ),
    security(("admin" = [])),
)]
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
