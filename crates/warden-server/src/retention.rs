//! Retention: events older than the configured age (`--retain-events-days`) are rolled up into
//! daily counts keyed by (day, device, kind, tool, outcome) and removed; exception requests and
//! their audit log are kept whatever their age. A roll-up is one transaction per chunk (counts
//! added, those events deleted), so a crash between chunks loses and double-counts nothing.

use crate::auth::AdminCaller;
use crate::extract::QueryParams;
use crate::failure::{Answer, Failure};
use crate::{AppState, now};
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use std::collections::BTreeMap;
use warden_api::{EventCount, EventCounts};

/// Events rolled up per transaction.
const CHUNK: i64 = 1000;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// Rolls up every event filed before `now - retain`; returns how many were rolled up.
pub async fn roll_up(state: &AppState, retain: std::time::Duration) -> Answer<usize> {
    let cutoff_ms = now() * 1000 - retain.as_millis() as i64;
    let mut total = 0;
    loop {
        let _writer = state.store.write_guard().await;
        let mut transaction = state.store.pool.begin().await?;
        let rows: Vec<(String, String, String, Option<String>, i64, String)> = sqlx::query_as(
            "SELECT id, device_id, kind, tool, at_ms, body FROM events WHERE at_ms < $1 ORDER BY at_ms LIMIT $2",
        )
        .bind(cutoff_ms)
        .bind(CHUNK)
        .fetch_all(&mut *transaction)
        .await?;
        if rows.is_empty() {
            return Ok(total);
        }
        let mut counts: BTreeMap<(i64, String, String, String, String), i64> = BTreeMap::new();
        for (_, device, kind, tool, at_ms, body) in &rows {
            let outcome = serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v.get("outcome").and_then(|o| o.as_str()).map(str::to_owned))
                .unwrap_or_default();
            let key =
                (at_ms.div_euclid(DAY_MS), device.clone(), kind.clone(), tool.clone().unwrap_or_default(), outcome);
            *counts.entry(key).or_insert(0) += 1;
        }
        for ((day, device, kind, tool, outcome), count) in counts {
            sqlx::query(
                "INSERT INTO event_counts (day, device_id, kind, tool, outcome, count) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (day, device_id, kind, tool, outcome) DO UPDATE SET count = event_counts.count + $6",
            )
            .bind(day)
            .bind(device)
            .bind(kind)
            .bind(tool)
            .bind(outcome)
            .bind(count)
            .execute(&mut *transaction)
            .await?;
        }
        for (id, ..) in &rows {
            sqlx::query("DELETE FROM events WHERE id = $1").bind(id).execute(&mut *transaction).await?;
        }
        transaction.commit().await?;
        total += rows.len();
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountQuery {
    /// First day (days since the epoch, UTC), inclusive.
    #[serde(default)]
    since_day: Option<i64>,
    /// Last day, exclusive.
    #[serde(default)]
    until_day: Option<i64>,
    #[serde(default)]
    tool: Option<String>,
}

/// `GET /api/v1/admin/event-counts?since_day=&until_day=&tool=`: the rolled-up counts, oldest day
/// first (at most 10,000 rows).
#[utoipa::path(
    get,
    path = "/api/v1/admin/event-counts",
    tag = "admin",
    summary = "Events past the retention age (--retain-events-days), rolled up per day, device, kind, tool and outcome; oldest day first",
    params(
        ("since_day" = Option<i64>, Query, description = "First day (days since the epoch, UTC), inclusive"),
        ("until_day" = Option<i64>, Query, description = "Last day, exclusive"),
        ("tool" = Option<String>, Query),
    ),
    responses(
        (status = 200, description = "Counts", body = warden_api::EventCounts),
        (status = 400, description = "Unknown or malformed query parameter", body = warden_api::ApiError),
        crate::openapi::AdminAuthErrors,
        (status = 422, description = "since_day after until_day", body = warden_api::ApiError),
    ),
    security(("admin" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    _admin: AdminCaller,
    QueryParams(query): QueryParams<CountQuery>,
) -> Answer<Json<EventCounts>> {
    if let (Some(since), Some(until)) = (query.since_day, query.until_day)
        && since > until
    {
        return Err(Failure::invalid("since_day", "since_day must not be after until_day"));
    }
    let rows: Vec<(i64, String, String, String, String, i64)> = sqlx::query_as(
        "SELECT day, device_id, kind, tool, outcome, count FROM event_counts \
         WHERE day >= $1 AND day < $2 AND ($3 = '' OR tool = $3) \
         ORDER BY day, device_id, kind, tool, outcome LIMIT 10000",
    )
    .bind(query.since_day.unwrap_or(i64::MIN))
    .bind(query.until_day.unwrap_or(i64::MAX))
    .bind(query.tool.unwrap_or_default())
    .fetch_all(&state.store.pool)
    .await?;
    let counts = rows
        .into_iter()
        .map(|(day, device_id, kind, tool, outcome, count)| EventCount { day, device_id, kind, tool, outcome, count })
        .collect();
    Ok(Json(EventCounts { counts }))
}
