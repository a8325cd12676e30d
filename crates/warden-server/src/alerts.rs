//! Alerts: rules on the event stream that raise a record for the security team — the console's
//! badge and a line on the webhook stream (`"kind": "alert"`).
//!
//! | rule | raised when | id (one alert per occurrence) |
//! |---|---|---|
//! | `repeated-blocks` | one person's blocked launches within one UTC clock hour reach `--alert-blocks-per-hour` | `blocks:<person>:<hour since the epoch>` |
//! | `silent-device` | an enrolled device has not been heard from for `--alert-silent-hours` | `silent:<device>:<last seen>` |
//! | `control-drift` | a device reports a managed vendor file changed behind its back | `drift:<event id>` |
//!
//! Upload rules run in the transaction that stores the events, so a retried upload (its events
//! already stored) raises nothing twice; blocked launches are tallied per person and hour in
//! `blocks_per_hour` there (one row read, never a count over events); the silent rule runs on the
//! server's sweep. Clock hours rather than a sliding window keep the id stable whichever replica
//! or retry raises it.

use crate::auth::AdminCaller;
use crate::extract::QueryParams;
use crate::failure::{Answer, Failure};
use crate::{AppState, now, stream};
use axum::extract::State;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use warden_api::{Alert, AlertList, DriftChange, Event, Verdict};

/// The thresholds of the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertRules {
    /// Blocked launches by one person within one clock hour that raise `repeated-blocks` (default 5).
    pub blocks_per_hour: u32,
    /// Silence after which an enrolled device raises `silent-device` (default one day).
    pub silent_after: Duration,
}

impl Default for AlertRules {
    fn default() -> AlertRules {
        AlertRules { blocks_per_hour: 5, silent_after: Duration::from_secs(24 * 3600) }
    }
}

const HOUR_MS: i64 = 3600 * 1000;

/// Stores `alert` unless it was raised before, and queues it for the stream; true when new.
async fn raise(
    state: &AppState,
    transaction: &mut sqlx::Transaction<'_, sqlx::Any>,
    alert: &Alert,
) -> Result<bool, sqlx::Error> {
    let inserted: Option<(String,)> = sqlx::query_as(
        "INSERT INTO alerts (id, rule, subject, raised_at, detail) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (id) DO NOTHING RETURNING id",
    )
    .bind(&alert.id)
    .bind(&alert.rule)
    .bind(&alert.subject)
    .bind(alert.raised_at)
    .bind(&alert.detail)
    .fetch_optional(&mut **transaction)
    .await?;
    if inserted.is_some() && state.stream.is_some() {
        let record = serde_json::to_value(alert).unwrap_or_default();
        stream::enqueue(transaction, &format!("alert:{}", alert.id), "alert", record, alert.raised_at).await?;
    }
    Ok(inserted.is_some())
}

/// The upload rules over the events one upload stored: (event, person it is filed under, filed
/// time in ms). Returns how many alerts were raised.
pub(crate) async fn after_upload(
    state: &AppState,
    transaction: &mut sqlx::Transaction<'_, sqlx::Any>,
    device_id: &str,
    stored: &[(&Event, Option<String>, i64)],
    now: i64,
) -> Result<usize, sqlx::Error> {
    let mut raised = 0;
    // New blocked launches per (person, hour).
    let mut hours: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for (event, person, at_ms) in stored {
        match event {
            Event::Launch(launch) if launch.verdict() == Verdict::Blocked => {
                if let Some(person) = person {
                    *hours.entry((person.clone(), at_ms.div_euclid(HOUR_MS))).or_default() += 1;
                }
            }
            Event::ControlDrift(drift) => {
                let alert = Alert {
                    id: format!("drift:{}", drift.id),
                    rule: "control-drift".into(),
                    subject: device_id.to_owned(),
                    raised_at: now,
                    detail: format!(
                        "{} on device {device_id} was {}{}",
                        drift.path,
                        match drift.change {
                            DriftChange::Changed => "changed",
                            DriftChange::Removed => "removed",
                        },
                        if drift.restored { " (put back)" } else { " and could not be put back" }
                    ),
                };
                raised += usize::from(raise(state, transaction, &alert).await?);
            }
            _ => {}
        }
    }
    let threshold = i64::from(state.alert_rules.blocks_per_hour.max(1));
    for ((person, hour), added) in hours {
        let (count,): (i64,) = sqlx::query_as(
            "INSERT INTO blocks_per_hour (person, hour, count) VALUES ($1, $2, $3) \
             ON CONFLICT (person, hour) DO UPDATE SET count = blocks_per_hour.count + $3 RETURNING count",
        )
        .bind(&person)
        .bind(hour)
        .bind(added)
        .fetch_one(&mut **transaction)
        .await?;
        if count >= threshold {
            let alert = Alert {
                id: format!("blocks:{person}:{hour}"),
                rule: "repeated-blocks".into(),
                subject: person.clone(),
                raised_at: now,
                detail: format!("{person} was blocked {count} times within one hour"),
            };
            raised += usize::from(raise(state, transaction, &alert).await?);
        }
    }
    Ok(raised)
}

/// The silent-device rule, run on the sweep: one alert per silence (keyed by the last time the
/// device was heard from). Returns how many were raised. Also drops hourly block tallies older
/// than a day (late uploads older than that are not counted towards an alert).
pub(crate) async fn sweep_silent(state: &AppState) -> Answer<usize> {
    let now = now();
    {
        let _writer = state.store.write_guard().await;
        sqlx::query("DELETE FROM blocks_per_hour WHERE hour < $1")
            .bind((now * 1000 - 24 * HOUR_MS).div_euclid(HOUR_MS))
            .execute(&state.store.pool)
            .await?;
    }
    let cutoff = now - state.alert_rules.silent_after.as_secs() as i64;
    let silent: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT d.id, d.hostname, d.username, d.last_seen_at FROM devices d \
         WHERE d.revoked_at IS NULL AND d.last_seen_at < $1 \
         AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.id = 'silent:' || d.id || ':' || CAST(d.last_seen_at AS TEXT)) \
         LIMIT 1000",
    )
    .bind(cutoff)
    .fetch_all(&state.store.pool)
    .await?;
    if silent.is_empty() {
        return Ok(0);
    }
    let mut raised = 0;
    {
        let _writer = state.store.write_guard().await;
        let mut transaction = state.store.pool.begin().await?;
        for (id, hostname, user, last_seen_at) in silent {
            let hours = (now - last_seen_at) / 3600;
            let alert = Alert {
                id: format!("silent:{id}:{last_seen_at}"),
                rule: "silent-device".into(),
                subject: id.clone(),
                raised_at: now,
                detail: format!("{hostname} ({user}, {id}) has not been heard from for {hours} hours"),
            };
            raised += usize::from(raise(state, &mut transaction, &alert).await?);
        }
        transaction.commit().await?;
    }
    if raised > 0 && state.stream.is_some() {
        state.stream_wake.notify_one();
    }
    Ok(raised)
}

/// Alerts raised since `since` (seconds since the epoch).
pub(crate) async fn count_since(state: &AppState, since: i64) -> Result<i64, sqlx::Error> {
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM alerts WHERE raised_at >= $1")
        .bind(since)
        .fetch_one(&state.store.pool)
        .await?;
    Ok(count)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    /// Seconds since the epoch, inclusive.
    #[serde(default)]
    since: Option<i64>,
    /// `repeated-blocks`, `silent-device` or `control-drift`.
    #[serde(default)]
    rule: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    #[serde(default)]
    limit: Option<u32>,
}

pub(crate) const RULES: [&str; 3] = ["repeated-blocks", "silent-device", "control-drift"];

/// `GET /api/v1/admin/alerts?since=&rule=&limit=&format=`
#[utoipa::path(
    get,
    path = "/api/v1/admin/alerts",
    tag = "admin",
    summary = "Alerts the stream's rules raised (repeated-blocks, silent-device, control-drift), newest first",
    params(
        ("since" = Option<i64>, Query, description = "Seconds since the epoch"),
        ("rule" = Option<String>, Query, description = "repeated-blocks, silent-device or control-drift"),
        ("limit" = Option<i64>, Query, description = "1–1000, default 100"),
        ("format" = Option<crate::export::Format>, Query, description = "json (default) or csv"),
    ),
    responses(
        (status = 200, description = "Alerts", content((warden_api::AlertList = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Unknown or malformed query parameter", body = warden_api::ApiError),
        crate::openapi::AdminAuthErrors,
        (status = 422, description = "Unknown rule or limit out of range", body = warden_api::ApiError),
    ),
    security(("admin" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    _admin: AdminCaller,
    format: crate::export::Format,
    QueryParams(query): QueryParams<AlertQuery>,
) -> Answer<axum::response::Response> {
    if let Some(rule) = &query.rule
        && !RULES.contains(&rule.as_str())
    {
        return Err(Failure::invalid("rule", "rule must be repeated-blocks, silent-device or control-drift"));
    }
    let limit = crate::extract::page_limit(query.limit, 100)?;
    let rows: Vec<(String, String, String, i64, String)> = sqlx::query_as(
        "SELECT id, rule, subject, raised_at, detail FROM alerts WHERE raised_at >= $1 AND ($2 = '' OR rule = $2) \
         ORDER BY raised_at DESC, id LIMIT $3",
    )
    .bind(query.since.unwrap_or(0))
    .bind(query.rule.unwrap_or_default())
    .bind(limit)
    .fetch_all(&state.store.pool)
    .await?;
    let alerts: Vec<Alert> = rows
        .into_iter()
        .map(|(id, rule, subject, raised_at, detail)| Alert { id, rule, subject, raised_at, detail })
        .collect();
    crate::export::answer(format, AlertList { alerts }, |list| crate::export::csv(&list.alerts, "alerts.csv"))
}
