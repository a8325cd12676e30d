//! Device inventories: what each device reports as installed (AI tools, MCP servers), the
//! current report per device and a history row whenever it changes.

use crate::auth::{AdminCaller, DeviceCaller};
use crate::extract::{JsonBody, QueryParams};
use crate::failure::{Answer, Failure};
use crate::{AppState, now};
use axum::Json;
use axum::extract::Path;
use axum::extract::State;
use serde::Deserialize;
use warden_api::{
    DeviceInventory, InventoryChange, InventoryHistory, InventoryList, InventoryReceipt, InventoryReport,
};

/// `PUT /api/v1/device/inventory`: replaces the device's current report; writes a history row
/// when it differs from the previous one (by [`InventoryReport::digest`]).
#[utoipa::path(
    put,
    path = "/api/v1/device/inventory",
    tag = "device",
    summary = "Report what is installed on the device (AI tools, configured MCP servers), whole: it replaces the device's last report; a change is kept in the history",
    request_body(content = warden_api::InventoryReport, content_type = "application/json"),
    responses(
        (status = 200, description = "Whether the report differed from the previous one", body = warden_api::InventoryReceipt),
        (status = 422, description = "More than 5000 items, or an item without its tool, path, client or name; field names the list", body = warden_api::ApiError),
        crate::openapi::DeviceAuthErrors,
        (status = 400, description = "Malformed JSON; `field` names the JSON path", body = warden_api::ApiError),
        (status = 413, description = "Body too large", body = warden_api::ApiError),
    ),
    security(("device" = [])),
)]
pub async fn put(
    State(state): State<AppState>,
    device: DeviceCaller,
    JsonBody(mut report): JsonBody<InventoryReport>,
) -> Answer<Json<InventoryReceipt>> {
    report.check().map_err(|(field, message)| Failure::invalid(field, message))?;
    report.sort();
    let digest = report.digest();
    let text = serde_json::to_string(&report).map_err(Failure::internal)?;
    let now = now();
    let _writer = state.store.write_guard().await;
    let mut transaction = state.store.pool.begin().await?;
    let previous: Option<(String,)> = sqlx::query_as("SELECT digest FROM device_inventory WHERE device_id = $1")
        .bind(&device.id)
        .fetch_optional(&mut *transaction)
        .await?;
    let changed = previous.is_none_or(|(before,)| before != digest);
    if changed {
        record_change(&mut transaction, &device.id, &digest, &text, now).await?;
    } else {
        sqlx::query("UPDATE device_inventory SET reported_at = $1 WHERE device_id = $2")
            .bind(now)
            .bind(&device.id)
            .execute(&mut *transaction)
            .await?;
    }
    transaction.commit().await?;
    Ok(Json(InventoryReceipt { changed }))
}

/// A report that changed something: a history row, and the device's current report replaced
/// (the same four values in both).
pub(crate) async fn record_change(
    transaction: &mut sqlx::Transaction<'_, sqlx::Any>,
    device_id: &str,
    digest: &str,
    report: &str,
    at: i64,
) -> Result<(), sqlx::Error> {
    for sql in [
        "INSERT INTO inventory_history (device_id, digest, report, reported_at) VALUES ($1, $2, $3, $4)",
        "INSERT INTO device_inventory (device_id, digest, report, changed_at, reported_at) \
         VALUES ($1, $2, $3, $4, $4) \
         ON CONFLICT (device_id) DO UPDATE SET digest = $2, report = $3, changed_at = $4, reported_at = $4",
    ] {
        sqlx::query(sql).bind(device_id).bind(digest).bind(report).bind(at).execute(&mut **transaction).await?;
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryQuery {
    /// Only devices where this catalog tool is installed.
    #[serde(default)]
    tool: Option<String>,
}

/// `GET /api/v1/admin/inventory[?tool=ID&format=]`: every device's current report, latest first
/// (CSV: one row per installation).
#[utoipa::path(
    get,
    path = "/api/v1/admin/inventory",
    tag = "admin",
    summary = "Each device's current inventory report, latest first; `tool` keeps the devices where that catalog tool is installed",
    params(
        ("tool" = Option<String>, Query, description = "A catalog tool id (`claude-code`)"),
        ("format" = Option<crate::export::Format>, Query, description = "json (default) or csv"),
    ),
    responses(
        (status = 200, description = "Device inventories", content((warden_api::InventoryList = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Unknown query parameter", body = warden_api::ApiError),
        crate::openapi::AdminAuthErrors,
        (status = 422, description = "A filter or format out of range", body = warden_api::ApiError),
    ),
    security(("admin" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    _admin: AdminCaller,
    format: crate::export::Format,
    QueryParams(query): QueryParams<InventoryQuery>,
) -> Answer<axum::response::Response> {
    let rows: Vec<(String, String, String, String, i64, i64)> = sqlx::query_as(
        "SELECT d.id, d.hostname, d.username, i.report, i.changed_at, i.reported_at \
         FROM device_inventory i JOIN devices d ON d.id = i.device_id \
         ORDER BY i.reported_at DESC, d.id LIMIT 1000",
    )
    .fetch_all(&state.store.pool)
    .await?;
    let mut devices = Vec::new();
    for (device_id, hostname, user, text, changed_at, reported_at) in rows {
        let report: InventoryReport = serde_json::from_str(&text).map_err(Failure::internal)?;
        if query.tool.as_ref().is_some_and(|tool| !report.tools.iter().any(|t| &t.tool == tool)) {
            continue;
        }
        devices.push(DeviceInventory { device_id, hostname, user, changed_at, reported_at, report });
    }
    crate::export::answer(format, InventoryList { devices }, |list| {
        let rows: Vec<serde_json::Value> = list
            .devices
            .iter()
            .flat_map(|device| {
                device.report.tools.iter().map(move |install| {
                    let mut row = serde_json::to_value(install).unwrap_or_default();
                    row["device_id"] = device.device_id.clone().into();
                    row["hostname"] = device.hostname.clone().into();
                    row["reported_at"] = device.reported_at.into();
                    row
                })
            })
            .collect();
        crate::export::csv(&rows, "installed-tools.csv")
    })
}

/// `GET /api/v1/admin/devices/{id}/inventory`: the device's reports that changed something,
/// newest first (at most 100).
#[utoipa::path(
    get,
    path = "/api/v1/admin/devices/{id}/inventory",
    tag = "admin",
    summary = "The device's inventory reports that changed something, newest first (at most 100)",
    params(
        ("id" = String, Path),
    ),
    responses(
        (status = 200, description = "History", body = warden_api::InventoryHistory),
        crate::openapi::AdminAuthErrors,
    ),
    security(("admin" = [])),
)]
pub async fn history(
    State(state): State<AppState>,
    _admin: AdminCaller,
    Path(id): Path<String>,
) -> Answer<Json<InventoryHistory>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT report, reported_at FROM inventory_history WHERE device_id = $1 ORDER BY seq DESC LIMIT 100",
    )
    .bind(&id)
    .fetch_all(&state.store.pool)
    .await?;
    let mut changes = Vec::new();
    for (text, reported_at) in rows {
        let report = serde_json::from_str(&text).map_err(Failure::internal)?;
        changes.push(InventoryChange { reported_at, report });
    }
    Ok(Json(InventoryHistory { device_id: id, changes }))
}
