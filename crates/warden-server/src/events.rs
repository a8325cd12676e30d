//! Launch events: idempotent batch upload from devices, filtered queries for admins.

use crate::auth::{AdminCaller, DeviceCaller};
use crate::extract::{JsonBody, QueryParams};
use crate::failure::{Answer, Failure};
use crate::{AppState, now};
use axum::Json;
use axum::extract::State;
use std::collections::HashSet;
use warden_api::{
    EventBatch, EventBatchReceipt, EventPage, EventQuery, LaunchEvent, MAX_EVENTS_PER_BATCH, StoredEvent,
};
use warden_policy::Action;

/// Rows per INSERT statement (9 parameters each; well under both backends' limits).
const ROWS_PER_STATEMENT: usize = 100;

fn check_event(index: usize, event: &LaunchEvent) -> Answer<()> {
    let id = &event.id;
    if id.is_empty() || id.len() > 100 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(Failure::invalid(
            &format!("events[{index}].id"),
            "event ids must be 1–100 characters of letters, digits, '-' and '_' (a UUID)",
        ));
    }
    if event.at_ms <= 0 {
        return Err(Failure::invalid(&format!("events[{index}].at_ms"), "at_ms must be milliseconds since the epoch"));
    }
    Ok(())
}

/// `POST /api/v1/device/events`
pub async fn upload(
    State(state): State<AppState>,
    device: DeviceCaller,
    JsonBody(batch): JsonBody<EventBatch>,
) -> Answer<Json<EventBatchReceipt>> {
    if batch.events.len() > MAX_EVENTS_PER_BATCH {
        return Err(Failure::invalid("events", format!("at most {MAX_EVENTS_PER_BATCH} events per batch")));
    }
    for (index, event) in batch.events.iter().enumerate() {
        check_event(index, event)?;
    }
    let mut seen = HashSet::new();
    let unique: Vec<&LaunchEvent> = batch.events.iter().filter(|event| seen.insert(event.id.as_str())).collect();
    let now = now();
    let bodies: Vec<String> =
        unique.iter().map(serde_json::to_string).collect::<Result<_, _>>().map_err(Failure::internal)?;
    let mut stored = 0u64;
    {
        let _writer = state.store.write_guard().await;
        let mut transaction = state.store.pool.begin().await?;
        for (events, bodies) in unique.chunks(ROWS_PER_STATEMENT).zip(bodies.chunks(ROWS_PER_STATEMENT)) {
            let mut sql = String::from(
                "INSERT INTO events (id, device_id, username, tool, action, at_ms, received_at, body) VALUES ",
            );
            for row in 0..events.len() {
                let base = row * 8;
                if row > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    base + 1,
                    base + 2,
                    base + 3,
                    base + 4,
                    base + 5,
                    base + 6,
                    base + 7,
                    base + 8
                ));
            }
            sql.push_str(" ON CONFLICT (id) DO NOTHING");
            let mut query = sqlx::query(&sql);
            for (event, body) in events.iter().zip(bodies) {
                query = query
                    .bind(&event.id)
                    .bind(&device.id)
                    .bind(event.user.as_deref())
                    .bind(event.tool.as_deref())
                    .bind(event.action.as_str())
                    .bind(event.at_ms)
                    .bind(now)
                    .bind(body.as_str());
            }
            stored += query.execute(&mut *transaction).await?.rows_affected();
        }
        sqlx::query("UPDATE devices SET last_seen_at = $1 WHERE id = $2")
            .bind(now)
            .bind(&device.id)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
    }
    let stored = stored as usize;
    Ok(Json(EventBatchReceipt { stored, duplicates: batch.events.len() - stored }))
}

/// `GET /api/v1/admin/events?device=&user=&tool=&action=&since_ms=&until_ms=&limit=`
pub async fn query(
    State(state): State<AppState>,
    _admin: AdminCaller,
    QueryParams(filter): QueryParams<EventQuery>,
) -> Answer<Json<EventPage>> {
    if let Some(action) = &filter.action
        && ![Action::Allow, Action::Warn, Action::Block].iter().any(|a| a.as_str() == action)
    {
        return Err(Failure::invalid("action", "action must be allow, warn or block"));
    }
    let limit = i64::from(filter.limit.unwrap_or(100));
    if !(1..=1000).contains(&limit) {
        return Err(Failure::invalid("limit", "limit must be between 1 and 1000"));
    }
    let mut conditions: Vec<String> = Vec::new();
    let mut texts: Vec<&str> = Vec::new();
    let mut numbers: Vec<i64> = Vec::new();
    for (column, value) in
        [("device_id", &filter.device), ("username", &filter.user), ("tool", &filter.tool), ("action", &filter.action)]
    {
        if let Some(value) = value {
            texts.push(value);
            conditions.push(format!("{column} = ${}", texts.len()));
        }
    }
    for (condition, value) in [("at_ms >=", filter.since_ms), ("at_ms <", filter.until_ms)] {
        if let Some(value) = value {
            numbers.push(value);
            conditions.push(format!("{condition} ${}", texts.len() + numbers.len()));
        }
    }
    let mut sql = String::from("SELECT device_id, received_at, body FROM events");
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(&format!(" ORDER BY at_ms DESC, id LIMIT ${}", texts.len() + numbers.len() + 1));
    let mut query = sqlx::query_as::<_, (String, i64, String)>(&sql);
    for text in texts {
        query = query.bind(text);
    }
    for number in numbers {
        query = query.bind(number);
    }
    let rows = query.bind(limit).fetch_all(&state.store.pool).await?;
    let events = rows
        .into_iter()
        .map(|(device_id, received_at, body)| {
            serde_json::from_str(&body).map(|event| StoredEvent { device_id, received_at, event })
        })
        .collect::<Result<_, _>>()
        .map_err(Failure::internal)?;
    Ok(Json(EventPage { events }))
}

/// Blocked launches of `tool` by `user` since `since_ms`.
pub async fn blocked_count(state: &AppState, user: &str, tool: &str, since_ms: i64) -> Result<i64, sqlx::Error> {
    let (count,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM events WHERE username = $1 AND tool = $2 AND action = 'block' AND at_ms >= $3",
    )
    .bind(user)
    .bind(tool)
    .bind(since_ms)
    .fetch_one(&state.store.pool)
    .await?;
    Ok(count)
}
