//! Device events of every kind: idempotent batch upload from devices (each upload also the
//! device's heartbeat), filtered queries for admins.

use crate::auth::{AdminCaller, DeviceCaller};
use crate::export::{self, Format};
use crate::extract::{JsonBody, QueryParams};
use crate::failure::{Answer, Failure};
use crate::{AppState, now};
use crate::{alerts, stream};
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashSet;
use warden_api::{
    Event, EventBatchReceipt, EventKind, EventPage, EventQuery, Heartbeat, MAX_EVENTS_PER_BATCH, StoredEvent, Verdict,
};
use warden_policy::Action;

/// Rows per INSERT statement (10 parameters each; well under both backends' limits).
const ROWS_PER_STATEMENT: usize = 100;

/// How far ahead of the server's clock a device's event time may be before it is filed under its
/// arrival time instead (clocks drift; an event dated 2100 must not sit on top of every list).
const CLOCK_AHEAD_TOLERANCE_MS: i64 = 5 * 60 * 1000;

/// The person an event is filed under: the device's owner when the event names them; any other
/// name the device sends stays visibly that device's local account, so a device can never add to
/// another person's counts ("alice was blocked" sent by dev's laptop is not alice's block).
fn attributed(user: Option<&str>, device: &DeviceCaller) -> Option<String> {
    let user = user?;
    if user == device.user {
        Some(user.to_owned())
    } else {
        Some(format!("{user} (local account on device {})", device.id))
    }
}

/// The time an event is filed under: its own, unless that is beyond the tolerance ahead of now.
fn filed_at(at_ms: i64, now_ms: i64) -> i64 {
    if at_ms > now_ms + CLOCK_AHEAD_TOLERANCE_MS { now_ms } else { at_ms }
}

/// `warden_api::EventBatch` as it arrives: the events stay JSON until each is read by its kind,
/// so an unknown kind is answered 422 naming `events[i].kind` and a bad field 400 naming its
/// path (`events[3].outcome`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upload {
    events: Vec<Value>,
    #[serde(default)]
    heartbeat: Option<Heartbeat>,
}

fn read_event(index: usize, value: Value) -> Answer<Event> {
    let Value::Object(mut object) = value else {
        return Err(Failure::malformed(&format!("events[{index}]"), "an event must be a JSON object"));
    };
    let kind = EventKind::take_from(&mut object)
        .map_err(|error| Failure::invalid(&format!("events[{index}].kind"), error.to_string()))?;
    let mut track = serde_path_to_error::Track::new();
    let payload = serde_path_to_error::Deserializer::new(Value::Object(object), &mut track);
    Event::deserialize_payload(kind, payload).map_err(|error| {
        let path = track.path().to_string();
        let field =
            if path == "." || path.is_empty() { format!("events[{index}]") } else { format!("events[{index}].{path}") };
        Failure::malformed(&field, format!("invalid {kind} event at {field}: {error}"))
    })
}

fn check_event(index: usize, event: &Event) -> Answer<()> {
    let id = event.id();
    if id.is_empty() || id.len() > 100 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(Failure::invalid(
            &format!("events[{index}].id"),
            "event ids must be 1–100 characters of letters, digits, '-' and '_' (a UUID)",
        ));
    }
    if event.at_ms() <= 0 {
        return Err(Failure::invalid(&format!("events[{index}].at_ms"), "at_ms must be milliseconds since the epoch"));
    }
    Ok(())
}

/// The newest service start or stop among `events`: (status, at_ms, version, reason).
fn newest_service_state(events: &[&Event]) -> Option<(&'static str, i64, String, Option<String>)> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::ServiceStart(start) => Some(("running", start.at_ms, start.version.clone(), None)),
            Event::ServiceStop(stop) => Some(("stopped", stop.at_ms, stop.version.clone(), Some(stop.reason.clone()))),
            _ => None,
        })
        .max_by_key(|(_, at_ms, _, _)| *at_ms)
}

/// `POST /api/v1/device/events`
#[utoipa::path(
    post,
    path = "/api/v1/device/events",
    tag = "device",
    summary = "Upload events of every kind (idempotent by event id); every upload is also the device's heartbeat",
    request_body(content = warden_api::EventBatch, content_type = "application/json"),
    responses(
        (status = 200, description = "Stored and duplicate counts", body = warden_api::EventBatchReceipt),
        (status = 422, description = "Invalid event (an unknown `kind` names `events[i].kind`); field names it", body = warden_api::ApiError),
        crate::openapi::DeviceAuthErrors,
        (status = 400, description = "Malformed JSON; `field` names the JSON path", body = warden_api::ApiError),
        (status = 413, description = "Body too large", body = warden_api::ApiError),
        (status = 429, description = "The device uploads too often or sent too many events this minute (`too_many_uploads`, `too_many_events`); nothing was stored", body = warden_api::ApiError, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    ),
    security(("device" = [])),
)]
pub async fn upload(
    State(state): State<AppState>,
    device: DeviceCaller,
    JsonBody(upload): JsonBody<Upload>,
) -> Answer<Json<EventBatchReceipt>> {
    if upload.events.len() > MAX_EVENTS_PER_BATCH {
        return Err(Failure::invalid("events", format!("at most {MAX_EVENTS_PER_BATCH} events per batch")));
    }
    let received = upload.events.len();
    state.limits.upload(&device.id, received)?;
    // Every event is read and checked before anything is stored: one bad event rejects the
    // batch whole, and the device keeps all of it queued.
    let mut events = Vec::with_capacity(received);
    for (index, value) in upload.events.into_iter().enumerate() {
        let event = read_event(index, value)?;
        check_event(index, &event)?;
        events.push(event);
    }
    let version = match &upload.heartbeat {
        Some(heartbeat) => {
            let version = heartbeat.version.trim();
            if version.chars().count() > 255 || version.chars().any(char::is_control) {
                return Err(Failure::invalid("heartbeat.version", "version must be at most 255 printable characters"));
            }
            Some(version.to_owned()).filter(|v| !v.is_empty())
        }
        None => None,
    };
    let mut seen = HashSet::new();
    let unique: Vec<&Event> = events.iter().filter(|event| seen.insert(event.id())).collect();
    let now = now();
    let now_ms = now * 1000;
    let bodies: Vec<String> = unique.iter().map(|event| event.payload_json()).collect();
    let mut stored = 0u64;
    let mut new_events = Vec::new();
    let raised;
    {
        let _writer = state.store.write_guard().await;
        let mut transaction = state.store.pool.begin().await?;
        for (events, bodies) in unique.chunks(ROWS_PER_STATEMENT).zip(bodies.chunks(ROWS_PER_STATEMENT)) {
            let mut sql = String::from(
                "INSERT INTO events (id, device_id, kind, username, tool, action, at_ms, received_at, body, verdict) \
                 VALUES ",
            );
            for row in 0..events.len() {
                let base = row * 10;
                if row > 0 {
                    sql.push_str(", ");
                }
                let placeholders: Vec<String> = (1..=10).map(|n| format!("${}", base + n)).collect();
                sql.push_str(&format!("({})", placeholders.join(", ")));
            }
            // RETURNING names the rows this call stored (not those a retry already had): exactly
            // the ones the webhook stream has not seen.
            sql.push_str(" ON CONFLICT (id) DO NOTHING RETURNING id");
            let mut query = sqlx::query(&sql);
            for (event, body) in events.iter().zip(bodies) {
                query = query
                    .bind(event.id())
                    .bind(&device.id)
                    .bind(event.kind().as_str())
                    .bind(attributed(event.user(), &device))
                    .bind(event.tool())
                    .bind(event.as_launch().map(|launch| launch.action.as_str()))
                    .bind(filed_at(event.at_ms(), now_ms))
                    .bind(now)
                    .bind(body.as_str())
                    .bind(event.as_launch().map(|launch| launch.verdict().as_str()));
            }
            let inserted = query.fetch_all(&mut *transaction).await?;
            stored += inserted.len() as u64;
            use sqlx::Row as _;
            for row in &inserted {
                let id: String = row.try_get("id")?;
                if let Some(event) = events.iter().find(|e| e.id() == id) {
                    if state.stream.is_some() {
                        let record = serde_json::json!({ "device_id": &device.id, "event": event });
                        stream::enqueue(&mut transaction, &id, "event", record, now).await?;
                    }
                    new_events.push((*event, attributed(event.user(), &device), filed_at(event.at_ms(), now_ms)));
                }
            }
        }
        // The console's tallies and the stream's rules see exactly the events this call stored.
        let launches: Vec<_> =
            new_events.iter().filter_map(|(event, _, at_ms)| event.as_launch().map(|l| (l, *at_ms))).collect();
        crate::fleet::count_launches(&mut transaction, &device.id, &launches).await?;
        raised = alerts::after_upload(&state, &mut transaction, &device.id, &new_events, now).await?;
        // The heartbeat: every upload, even an empty one, is the device being heard from.
        sqlx::query("UPDATE devices SET last_seen_at = $1, agent_version = COALESCE($2, agent_version) WHERE id = $3")
            .bind(now)
            .bind(version)
            .bind(&device.id)
            .execute(&mut *transaction)
            .await?;
        // Events arrive late and out of order (an outbox drained after an outage): only a newer
        // start or stop than the one recorded changes the service state.
        if let Some((status, at_ms, version, reason)) = newest_service_state(&unique) {
            sqlx::query(
                "UPDATE devices SET service_status = $1, service_at_ms = $2, service_version = $3, service_reason = $4 \
                 WHERE id = $5 AND (service_at_ms IS NULL OR service_at_ms <= $6)",
            )
            .bind(status)
            .bind(at_ms)
            .bind(version)
            .bind(reason)
            .bind(&device.id)
            .bind(at_ms)
            .execute(&mut *transaction)
            .await?;
        }
        transaction.commit().await?;
    }
    if (stored > 0 || raised > 0) && state.stream.is_some() {
        state.stream_wake.notify_one();
    }
    let stored = stored as usize;
    Ok(Json(EventBatchReceipt {
        stored,
        duplicates: received - stored,
        sync_interval_seconds: state.sync_interval.as_secs(),
    }))
}

/// `GET /api/v1/admin/events?kind=&device=&user=&tool=&action=&verdict=&since_ms=&until_ms=&limit=&cursor=&format=`:
/// newest first, one page; `next` continues it. `format=csv` answers the page as CSV.
#[utoipa::path(
    get,
    path = "/api/v1/admin/events",
    tag = "admin",
    summary = "Query events of every kind, newest first",
    params(
        ("kind" = Option<warden_api::EventKind>, Query, description = "Event kind"),
        ("device" = Option<String>, Query, description = "Device id"),
        ("user" = Option<String>, Query, description = "User"),
        ("tool" = Option<String>, Query, description = "Catalog tool id"),
        ("action" = Option<warden_policy::Action>, Query, description = "allow, warn or block (launches only)"),
        ("verdict" = Option<String>, Query, description = "sanctioned, allowed, warned, blocked or exception (launches only)"),
        ("since_ms" = Option<i64>, Query, description = "From (ms since epoch, inclusive)"),
        ("until_ms" = Option<i64>, Query, description = "To (ms since epoch, exclusive)"),
        ("limit" = Option<i64>, Query, description = "1–1000, default 100"),
        ("cursor" = Option<String>, Query, description = "The `next` of the previous page"),
        ("format" = Option<crate::export::Format>, Query, description = "json (default) or csv"),
    ),
    responses(
        (status = 200, description = "Events", content((warden_api::EventPage = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Malformed query", body = warden_api::ApiError),
        (status = 422, description = "Invalid filter", body = warden_api::ApiError),
        crate::openapi::AdminAuthErrors,
    ),
    security(("admin" = [])),
)]
pub async fn query(
    State(state): State<AppState>,
    _admin: AdminCaller,
    format: Format,
    QueryParams(filter): QueryParams<EventQuery>,
) -> Answer<Response> {
    let page = page_of_events(&state, filter).await?;
    match format {
        Format::Json => Ok(Json(page).into_response()),
        Format::Csv => {
            let rows: Vec<EventRow> = page.events.iter().map(EventRow::of).collect();
            export::csv(&rows, "events.csv")
        }
    }
}

/// One event as a CSV row: the columns every kind has, and the launch's decision.
#[derive(Debug, Serialize)]
struct EventRow<'a> {
    at_ms: i64,
    device_id: &'a str,
    kind: &'static str,
    person: &'a str,
    tool: &'a str,
    action: &'static str,
    verdict: &'static str,
    id: &'a str,
}

impl<'a> EventRow<'a> {
    fn of(stored: &'a StoredEvent) -> EventRow<'a> {
        let launch = stored.event.as_launch();
        EventRow {
            at_ms: stored.at_ms,
            device_id: &stored.device_id,
            kind: stored.event.kind().as_str(),
            person: stored.person.as_deref().unwrap_or(""),
            tool: stored.event.tool().unwrap_or(""),
            action: launch.map_or("", |l| l.action.as_str()),
            verdict: launch.map_or("", |l| l.verdict().as_str()),
            id: stored.event.id(),
        }
    }
}

/// A position in the newest-first order: the last event of a page (`at_ms` then `id`).
fn cursor_of(at_ms: i64, id: &str) -> String {
    format!("{at_ms}.{id}")
}

fn parse_cursor(text: &str) -> Answer<(i64, String)> {
    text.split_once('.')
        .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_owned())))
        .filter(|(_, id)| !id.is_empty())
        .ok_or_else(|| Failure::invalid("cursor", "cursor must be a `next` value from an earlier page"))
}

async fn page_of_events(state: &AppState, filter: EventQuery) -> Answer<EventPage> {
    if let Some(kind) = &filter.kind {
        kind.parse::<EventKind>().map_err(|error| Failure::invalid("kind", error.to_string()))?;
    }
    if let Some(action) = &filter.action
        && ![Action::Allow, Action::Warn, Action::Block].iter().any(|a| a.as_str() == action)
    {
        return Err(Failure::invalid("action", "action must be allow, warn or block"));
    }
    if let Some(verdict) = &filter.verdict
        && Verdict::parse(verdict).is_none()
    {
        return Err(Failure::invalid("verdict", "verdict must be sanctioned, allowed, warned, blocked or exception"));
    }
    let limit = crate::extract::page_limit(filter.limit, 100)?;
    let cursor = filter.cursor.as_deref().map(parse_cursor).transpose()?;
    let mut conditions: Vec<String> = Vec::new();
    let mut texts: Vec<&str> = Vec::new();
    let mut numbers: Vec<i64> = Vec::new();
    for (column, value) in [
        ("kind", &filter.kind),
        ("device_id", &filter.device),
        ("username", &filter.user),
        ("tool", &filter.tool),
        ("action", &filter.action),
        ("verdict", &filter.verdict),
    ] {
        if let Some(value) = value {
            texts.push(value);
            conditions.push(format!("{column} = ${}", texts.len()));
        }
    }
    if let Some((_, id)) = &cursor {
        texts.push(id);
    }
    let id_param = texts.len();
    for (condition, value) in
        [("at_ms >=", filter.since_ms), ("at_ms <", filter.until_ms), ("at_ms <=", cursor.as_ref().map(|(at, _)| *at))]
    {
        if let Some(value) = value {
            numbers.push(value);
            conditions.push(format!("{condition} ${}", texts.len() + numbers.len()));
        }
    }
    if cursor.is_some() {
        // Strictly after the cursor in (at_ms DESC, id ASC) order.
        let at_param = texts.len() + numbers.len();
        conditions.push(format!("(at_ms < ${at_param} OR id > ${id_param})"));
    }
    let mut sql = String::from("SELECT device_id, received_at, at_ms, username, kind, body FROM events");
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(&format!(" ORDER BY at_ms DESC, id LIMIT ${}", texts.len() + numbers.len() + 1));
    let mut query = sqlx::query_as::<_, (String, i64, i64, Option<String>, String, String)>(&sql);
    for text in texts {
        query = query.bind(text);
    }
    for number in numbers {
        query = query.bind(number);
    }
    let rows = query.bind(limit).fetch_all(&state.store.pool).await?;
    let full = rows.len() as i64 == limit;
    let events: Vec<StoredEvent> = rows
        .into_iter()
        .map(|(device_id, received_at, at_ms, person, kind, body)| {
            Event::from_parts(&kind, &body).map(|event| StoredEvent {
                device_id,
                received_at,
                at_ms,
                person,
                clock_ahead: event.at_ms() > at_ms,
                event,
            })
        })
        .collect::<Result<_, _>>()
        .map_err(Failure::internal)?;
    let next = if full { events.last().map(|last| cursor_of(last.at_ms, last.event.id())) } else { None };
    Ok(EventPage { events, next })
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
