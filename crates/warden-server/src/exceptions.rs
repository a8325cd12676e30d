//! Exception requests: filing, the decision state machine, the audit log, expiry.
//!
//! Every transition is one conditional `UPDATE … WHERE state = <from>` plus an audit row and a
//! change-feed row in the same transaction, so two approvers (or two replicas) racing on one
//! request cannot both win, and the log always matches the state.

use crate::auth::{AdminCaller, DeviceCaller, random_hex};
use crate::events::blocked_count;
use crate::extract::{JsonBody, QueryParams};
use crate::failure::{Answer, Failure};
use crate::feed::{self, Wake};
use crate::policies::active_policy;
use crate::{AppState, now};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use warden_api::{
    AuditEntry, ChangeKind, Decision, EXCEPTION_LIST_VALIDITY_SECONDS, ExceptionList, ExceptionRecord,
    ExceptionRequestCreate, ExceptionState, PendingView, SignedExceptions, check_justification,
};
use warden_policy::{Guardrails, check_guardrails};

/// Who the expiry sweep acts as in the audit log.
pub const SYSTEM_ACTOR: &str = "system";
const BLOCK_WINDOW_MS: i64 = 7 * 24 * 3600 * 1000;

const COLUMNS: &str = "id, device_id, username, tool, scope, justification, requested_seconds, state, created_at, \
                       decided_at, decided_by, comment, granted_seconds, starts_at, expires_at, guardrails";

struct Row {
    id: String,
    device_id: String,
    username: String,
    tool: String,
    scope: Option<String>,
    justification: String,
    requested_seconds: i64,
    state: String,
    created_at: i64,
    decided_at: Option<i64>,
    decided_by: Option<String>,
    comment: Option<String>,
    granted_seconds: Option<i64>,
    starts_at: Option<i64>,
    expires_at: Option<i64>,
    /// `warden_policy::Guardrails` as JSON; empty for none.
    guardrails: String,
}

impl<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> for Row {
    fn from_row(row: &'r sqlx::any::AnyRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row as _;
        Ok(Row {
            id: row.try_get("id")?,
            device_id: row.try_get("device_id")?,
            username: row.try_get("username")?,
            tool: row.try_get("tool")?,
            scope: row.try_get("scope")?,
            justification: row.try_get("justification")?,
            requested_seconds: row.try_get("requested_seconds")?,
            state: row.try_get("state")?,
            created_at: row.try_get("created_at")?,
            decided_at: row.try_get("decided_at")?,
            decided_by: row.try_get("decided_by")?,
            comment: row.try_get("comment")?,
            granted_seconds: row.try_get("granted_seconds")?,
            starts_at: row.try_get("starts_at")?,
            expires_at: row.try_get("expires_at")?,
            guardrails: row.try_get("guardrails")?,
        })
    }
}

/// A value bound to a transition's extra SQL.
enum Param {
    Int(i64),
    Text(String),
}

impl Row {
    /// The wire record; an approval past its expiry reads as `expired` even before the sweep.
    fn record(self, now: i64) -> ExceptionRecord {
        let mut state = ExceptionState::parse(&self.state).unwrap_or(ExceptionState::Pending);
        if state == ExceptionState::Approved && self.expires_at.is_some_and(|at| at <= now) {
            state = ExceptionState::Expired;
        }
        let guardrails = read_guardrails(&self.id, &self.guardrails);
        ExceptionRecord {
            id: self.id,
            device_id: self.device_id,
            user: self.username,
            tool: self.tool,
            scope: self.scope,
            justification: self.justification,
            requested_seconds: self.requested_seconds.max(0) as u64,
            state,
            created_at: self.created_at,
            decided_at: self.decided_at,
            decided_by: self.decided_by,
            comment: self.comment,
            granted_seconds: self.granted_seconds.map(|s| s.max(0) as u64),
            starts_at: self.starts_at,
            expires_at: self.expires_at,
            conditions: guardrails.describe(),
            guardrails,
        }
    }
}

/// The stored guardrails. Only this server writes them; should a row ever not parse, the
/// strictest conditions stand in (an exception must never grow by losing its conditions).
fn read_guardrails(id: &str, text: &str) -> Guardrails {
    if text.is_empty() {
        return Guardrails::default();
    }
    serde_json::from_str(text).unwrap_or_else(|error| {
        eprintln!(
            "warden-server: error: exception {id}: stored guardrails do not parse ({error}); applying the strictest"
        );
        Guardrails { no_risky_modes: true, through_gateway: true, mcp_servers: Some(Vec::new()) }
    })
}

async fn load(state: &AppState, id: &str) -> Answer<Option<Row>> {
    Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM exception_requests WHERE id = $1"))
        .bind(id)
        .fetch_optional(&state.store.pool)
        .await?)
}

/// A scope must be a canonical absolute directory path (the policy core's rule, the one the
/// device applies before filing): a relative or non-normal one (`src/app`, `../x`, `/a/../b`,
/// `/a/`) could never match the canonical working directory a device reports, so the approver
/// would grant something that does nothing. Blank means everywhere.
fn check_scope(scope: Option<&str>) -> Answer<Option<String>> {
    let Some(scope) = scope.filter(|s| !s.trim().is_empty()) else { return Ok(None) };
    warden_policy::check_scope(scope).map_err(|reason| Failure::invalid("scope", reason.to_string()))?;
    Ok(Some(scope.to_owned()))
}

/// `POST /api/v1/device/exceptions`: filed as the device's user.
/// Pending requests one device may have open at once.
pub const MAX_PENDING_PER_DEVICE: i64 = 10;
/// Pending requests one person may have open at once, over all their devices.
pub const MAX_PENDING_PER_USER: i64 = 20;

pub async fn create(
    State(state): State<AppState>,
    device: DeviceCaller,
    JsonBody(request): JsonBody<ExceptionRequestCreate>,
) -> Answer<(StatusCode, Json<ExceptionRecord>)> {
    let now = now();
    if let Some(client_id) = &request.client_id {
        if client_id.is_empty() || client_id.len() > 100 {
            return Err(Failure::invalid("client_id", "client_id must be 1–100 characters"));
        }
        let existing: Option<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM exception_requests WHERE device_id = $1 AND client_id = $2"
        ))
        .bind(&device.id)
        .bind(client_id)
        .fetch_optional(&state.store.pool)
        .await?;
        if let Some(existing) = existing {
            return Ok((StatusCode::OK, Json(existing.record(now))));
        }
    }
    let policy = active_policy(&state).await?;
    let tool = request.tool.trim();
    if policy.catalog().tool(tool).is_none() {
        return Err(Failure::invalid("tool", format!("unknown tool id {tool:?}")));
    }
    if policy.exceptions.never.iter().any(|never| never == tool) {
        return Err(Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "exception_not_allowed",
            format!("the policy allows no exceptions for {tool}"),
        )
        .field("tool"));
    }
    check_justification(&request.justification).map_err(|message| Failure::invalid("justification", message))?;
    if request.justification.len() > 4000 {
        return Err(Failure::invalid("justification", "justification is limited to 4000 bytes"));
    }
    let max = policy.exceptions.max_duration;
    if request.duration_seconds == 0 || request.duration_seconds > max {
        return Err(Failure::invalid(
            "duration_seconds",
            format!("duration_seconds must be between 1 and the policy's limit of {max} seconds"),
        ));
    }
    let scope = check_scope(request.scope.as_deref())?;
    let id = format!("exr_{}", random_hex(12));
    {
        let _writer = state.store.write_guard().await;
        let mut transaction = state.store.pool.begin().await?;
        // Quotas, counted inside the writing transaction: a device (or a person across devices)
        // cannot bury a colleague's genuine request under hundreds of its own.
        for (column, value, limit, whose) in [
            ("device_id", device.id.as_str(), MAX_PENDING_PER_DEVICE, "this device"),
            ("username", device.user.as_str(), MAX_PENDING_PER_USER, "you"),
        ] {
            let (pending,): (i64,) = sqlx::query_as(&format!(
                "SELECT COUNT(*) FROM exception_requests WHERE {column} = $1 AND state = 'pending'"
            ))
            .bind(value)
            .fetch_one(&mut *transaction)
            .await?;
            if pending >= limit {
                return Err(Failure::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_pending",
                    format!(
                        "{whose} already {} {pending} pending exception requests (at most {limit}): \
                         withdraw one or wait for a decision",
                        if whose == "you" { "have" } else { "has" }
                    ),
                ));
            }
        }
        sqlx::query(
            "INSERT INTO exception_requests (id, device_id, client_id, username, tool, scope, justification, \
             requested_seconds, state, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9)",
        )
        .bind(&id)
        .bind(&device.id)
        .bind(request.client_id.as_deref())
        .bind(&device.user)
        .bind(tool)
        .bind(scope.as_deref())
        .bind(request.justification.trim())
        .bind(request.duration_seconds as i64)
        .bind(now)
        .execute(&mut *transaction)
        .await?;
        audit(&state, &mut transaction, &id, None, ExceptionState::Pending, &device.user, now, "").await?;
        transaction.commit().await?;
        state.stream_wake.notify_one();
    }
    let row = load(&state, &id).await?.ok_or_else(|| Failure::internal("request vanished after insert"))?;
    Ok((StatusCode::CREATED, Json(row.record(now))))
}

/// Writes one audit row (and, when the server streams, its outbox record: id
/// `audit:REQUEST:STATE`, unique since a request reaches each state at most once).
#[allow(clippy::too_many_arguments)]
async fn audit(
    state: &AppState,
    transaction: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    from: Option<ExceptionState>,
    to: ExceptionState,
    actor: &str,
    now: i64,
    comment: &str,
) -> Result<(), sqlx::Error> {
    if state.stream.is_some() {
        let record = serde_json::json!({
            "request_id": id,
            "from_state": from.map(ExceptionState::as_str),
            "to_state": to.as_str(),
            "actor": actor,
            "at": now,
            "comment": comment,
        });
        crate::stream::enqueue(transaction, &format!("audit:{id}:{}", to.as_str()), "audit", record, now).await?;
    }
    sqlx::query(
        "INSERT INTO exception_audit (request_id, from_state, to_state, actor, at, comment) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(from.map(ExceptionState::as_str))
    .bind(to.as_str())
    .bind(actor)
    .bind(now)
    .bind(comment)
    .execute(&mut **transaction)
    .await?;
    Ok(())
}

/// One state change of one request.
struct Transition<'a> {
    id: &'a str,
    from: ExceptionState,
    to: ExceptionState,
    actor: &'a str,
    comment: &'a str,
    extra_condition: &'a str,
}

/// Applies a transition: the conditional update, its audit row and the device's wake-up.
/// `set` adds assignments and `extra_condition` conditions, with parameters from `$3` on
/// (`params`). Returns whether the request was in the `from` state (and so changed).
async fn apply(
    state: &AppState,
    transition: Transition<'_>,
    set: &str,
    params: Vec<Param>,
    device_id: &str,
    now: i64,
) -> Answer<bool> {
    let _writer = state.store.write_guard().await;
    let mut transaction = state.store.pool.begin().await?;
    let sql = format!(
        "UPDATE exception_requests SET state = $1{set} WHERE id = $2 AND state = '{}'{}",
        transition.from.as_str(),
        transition.extra_condition
    );
    let mut query = sqlx::query(&sql).bind(transition.to.as_str()).bind(transition.id);
    for param in params {
        query = match param {
            Param::Int(value) => query.bind(value),
            Param::Text(value) => query.bind(value),
        };
    }
    let changed = query.execute(&mut *transaction).await?.rows_affected() == 1;
    if changed {
        audit(
            state,
            &mut transaction,
            transition.id,
            Some(transition.from),
            transition.to,
            transition.actor,
            now,
            transition.comment,
        )
        .await?;
        let wake = Wake::Device(device_id.to_owned());
        feed::record(&state.store, &mut transaction, &wake, ChangeKind::Exception, transition.id, now).await?;
    }
    transaction.commit().await?;
    drop(_writer);
    if changed {
        state.feed.wake(Wake::Device(device_id.to_owned()));
        state.stream_wake.notify_one();
    }
    Ok(changed)
}

fn refused(record: &ExceptionRecord, to: ExceptionState) -> Failure {
    Failure::new(
        StatusCode::CONFLICT,
        "invalid_transition",
        format!("request {} is {}; it cannot become {to}", record.id, record.state),
    )
    .field("state")
}

/// The request if this device filed it; another device's request is "not found".
async fn own_request(state: &AppState, device: &DeviceCaller, id: &str) -> Answer<Row> {
    match load(state, id).await? {
        Some(row) if row.device_id == device.id => Ok(row),
        _ => Err(Failure::not_found("exception request")),
    }
}

/// `GET /api/v1/device/exceptions`: the device's requests, and the exceptions in force signed
/// for it with the next sequence number.
///
/// Raising the sequence and reading the requests share one transaction: the raise locks the
/// device's row (PostgreSQL) or holds the writer lock (SQLite), so of two fetches the one with
/// the higher sequence also read the newer state, and a device that keeps the highest
/// sequence never goes back to an older decision.
pub async fn list_own(State(state): State<AppState>, device: DeviceCaller) -> Answer<Json<ExceptionList>> {
    let now = now();
    let _writer = state.store.write_guard().await;
    let mut transaction = state.store.pool.begin().await?;
    let (sequence,): (i64,) = sqlx::query_as(
        "UPDATE devices SET exception_list_sequence = exception_list_sequence + 1 WHERE id = $1 \
         RETURNING exception_list_sequence",
    )
    .bind(&device.id)
    .fetch_one(&mut *transaction)
    .await?;
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM exception_requests WHERE device_id = $1 ORDER BY created_at DESC, id LIMIT 500"
    ))
    .bind(&device.id)
    .fetch_all(&mut *transaction)
    .await?;
    transaction.commit().await?;
    let requests: Vec<ExceptionRecord> = rows.into_iter().map(|row| row.record(now)).collect();
    let exceptions = requests.iter().filter_map(ExceptionRecord::exception).collect();
    let signed = state.signing_key.sign_exceptions(&SignedExceptions {
        device_id: device.id,
        sequence,
        issued_at: now,
        valid_until: now + EXCEPTION_LIST_VALIDITY_SECONDS,
        exceptions,
    });
    Ok(Json(ExceptionList { requests, signed }))
}

/// `GET /api/v1/device/exceptions/{id}`
pub async fn get_own(
    State(state): State<AppState>,
    device: DeviceCaller,
    Path(id): Path<String>,
) -> Answer<Json<ExceptionRecord>> {
    Ok(Json(own_request(&state, &device, &id).await?.record(now())))
}

/// `POST /api/v1/device/exceptions/{id}/withdraw`
pub async fn withdraw(
    State(state): State<AppState>,
    device: DeviceCaller,
    Path(id): Path<String>,
) -> Answer<Json<ExceptionRecord>> {
    let now = now();
    let record = own_request(&state, &device, &id).await?.record(now);
    let transition = Transition {
        id: &id,
        from: ExceptionState::Pending,
        to: ExceptionState::Withdrawn,
        actor: &device.user,
        comment: "",
        extra_condition: "",
    };
    if !apply(&state, transition, "", Vec::new(), &device.id, now).await? {
        return Err(refused(&record, ExceptionState::Withdrawn));
    }
    Ok(Json(own_request(&state, &device, &id).await?.record(now)))
}

/// Whether `approver` is the requesting user (also as `user@domain`).
fn same_person(approver: &str, user: &str) -> bool {
    let approver = approver.trim().to_lowercase();
    let user = user.trim().to_lowercase();
    approver == user || approver.split('@').next() == Some(user.as_str()) || user.split('@').next() == Some(&approver)
}

/// Who decides and the comment: a signed-in account decides as itself; the admin token decides
/// under the typed `approver` only while no account exists (then it is break-glass and may not).
async fn check_decision(
    state: &AppState,
    caller: &AdminCaller,
    decision: &Decision,
    comment_required: bool,
) -> Answer<(String, String)> {
    if comment_required && !decision.guardrails.is_empty() {
        return Err(Failure::invalid(
            "guardrails",
            "guardrails are attached to an approval, not to a denial or revocation",
        ));
    }
    let approver = match &caller.account {
        Some(account) => account.name.clone(),
        None if crate::accounts::in_use(state).await? => {
            return Err(Failure::new(
                StatusCode::FORBIDDEN,
                "sign_in_required",
                "approvers sign in as themselves: the admin token cannot decide requests once accounts exist",
            ));
        }
        None => decision.approver.trim().to_owned(),
    };
    if approver.is_empty() || approver.chars().count() > 200 {
        return Err(Failure::invalid("approver", "approver (your name or e-mail) is required, at most 200 characters"));
    }
    let comment = decision.comment.trim();
    if comment_required && comment.is_empty() {
        return Err(Failure::invalid("comment", "a comment is required: tell the developer why"));
    }
    if comment.len() > 4000 {
        return Err(Failure::invalid("comment", "comment is limited to 4000 bytes"));
    }
    Ok((approver, comment.to_owned()))
}

async fn admin_request(state: &AppState, id: &str) -> Answer<ExceptionRecord> {
    Ok(load(state, id).await?.ok_or_else(|| Failure::not_found("exception request"))?.record(now()))
}

/// `POST /api/v1/admin/exceptions/{id}/approve`
pub async fn approve(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(id): Path<String>,
    JsonBody(decision): JsonBody<Decision>,
) -> Answer<Json<ExceptionRecord>> {
    let (approver, comment) = check_decision(&state, &caller, &decision, false).await?;
    let record = admin_request(&state, &id).await?;
    if same_person(&approver, &record.user) {
        return Err(Failure::new(StatusCode::FORBIDDEN, "self_approval", "nobody may approve their own request")
            .field("approver"));
    }
    if record.state != ExceptionState::Pending {
        return Err(refused(&record, ExceptionState::Approved));
    }
    let granted = decision.duration_seconds.unwrap_or(record.requested_seconds);
    if granted == 0 || granted > record.requested_seconds {
        return Err(Failure::invalid(
            "duration_seconds",
            format!("an approver may shorten the request, not lengthen it: 1 to {} seconds", record.requested_seconds),
        ));
    }
    check_guardrails(&decision.guardrails).map_err(|reason| Failure::invalid("guardrails", reason.to_string()))?;
    if decision.guardrails.through_gateway && active_policy(&state).await?.sanctioned_destinations().is_empty() {
        return Err(Failure::invalid(
            "guardrails",
            "\"only through the company gateway\" needs a policy that names the assistant's api_url or gateway_url",
        ));
    }
    let guardrails = if decision.guardrails.is_empty() {
        String::new()
    } else {
        serde_json::to_string(&decision.guardrails).map_err(Failure::internal)?
    };
    let now = now();
    let expires_at = now.saturating_add(granted as i64);
    let transition = Transition {
        id: &id,
        from: ExceptionState::Pending,
        to: ExceptionState::Approved,
        actor: &approver,
        comment: &comment,
        extra_condition: "",
    };
    let set = ", decided_at = $3, decided_by = $4, comment = $5, granted_seconds = $6, starts_at = $7, expires_at = $8, \
               guardrails = $9";
    let params = vec![
        Param::Int(now),
        Param::Text(approver.clone()),
        Param::Text(comment.clone()),
        Param::Int(granted as i64),
        Param::Int(now),
        Param::Int(expires_at),
        Param::Text(guardrails),
    ];
    if !apply(&state, transition, set, params, &record.device_id, now).await? {
        return Err(refused(&admin_request(&state, &id).await?, ExceptionState::Approved));
    }
    admin_request(&state, &id).await.map(Json)
}

/// `POST /api/v1/admin/exceptions/{id}/deny`
pub async fn deny(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(id): Path<String>,
    JsonBody(decision): JsonBody<Decision>,
) -> Answer<Json<ExceptionRecord>> {
    let (approver, comment) = check_decision(&state, &caller, &decision, true).await?;
    let record = admin_request(&state, &id).await?;
    let now = now();
    let transition = Transition {
        id: &id,
        from: ExceptionState::Pending,
        to: ExceptionState::Denied,
        actor: &approver,
        comment: &comment,
        extra_condition: "",
    };
    let set = ", decided_at = $3, decided_by = $4, comment = $5";
    let params = vec![Param::Int(now), Param::Text(approver.clone()), Param::Text(comment.clone())];
    if !apply(&state, transition, set, params, &record.device_id, now).await? {
        return Err(refused(&admin_request(&state, &id).await?, ExceptionState::Denied));
    }
    admin_request(&state, &id).await.map(Json)
}

/// `POST /api/v1/admin/exceptions/{id}/revoke`: ends an approved exception early.
pub async fn revoke(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(id): Path<String>,
    JsonBody(decision): JsonBody<Decision>,
) -> Answer<Json<ExceptionRecord>> {
    let (approver, comment) = check_decision(&state, &caller, &decision, true).await?;
    let record = admin_request(&state, &id).await?;
    let now = now();
    let transition = Transition {
        id: &id,
        from: ExceptionState::Approved,
        to: ExceptionState::Revoked,
        actor: &approver,
        comment: &comment,
        // Past its expiry it is expired, not revocable.
        extra_condition: " AND expires_at > $3",
    };
    let set = ", expires_at = $3";
    if !apply(&state, transition, set, vec![Param::Int(now)], &record.device_id, now).await? {
        return Err(refused(&admin_request(&state, &id).await?, ExceptionState::Revoked));
    }
    admin_request(&state, &id).await.map(Json)
}

/// Query of `GET /api/v1/admin/exceptions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminFilter {
    /// One state, or absent for all (pending first).
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}

/// `GET /api/v1/admin/exceptions?state=pending&format=`: pending first, then newest (CSV: one row
/// per request, the record's fields with the device's host name and the recent block count).
pub async fn list_all(
    State(state): State<AppState>,
    _admin: AdminCaller,
    format: crate::export::Format,
    QueryParams(filter): QueryParams<AdminFilter>,
) -> Answer<axum::response::Response> {
    let wanted = match filter.state.as_deref() {
        None | Some("") | Some("all") => None,
        Some(text) => Some(ExceptionState::parse(text).ok_or_else(|| {
            Failure::invalid("state", "state must be pending, approved, denied, withdrawn, expired, revoked or all")
        })?),
    };
    let limit = crate::extract::page_limit(filter.limit, 200)?;
    let now = now();
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM exception_requests \
         ORDER BY CASE WHEN state = 'pending' THEN 0 ELSE 1 END, created_at DESC, id LIMIT $1"
    ))
    .bind(if wanted.is_some() { 5000 } else { limit })
    .fetch_all(&state.store.pool)
    .await?;
    let mut views = Vec::new();
    for row in rows {
        let record = row.record(now);
        if wanted.is_some_and(|w| w != record.state) {
            continue;
        }
        if views.len() as i64 >= limit {
            break;
        }
        let hostname: Option<(String,)> = sqlx::query_as("SELECT hostname FROM devices WHERE id = $1")
            .bind(&record.device_id)
            .fetch_optional(&state.store.pool)
            .await?;
        let blocked = blocked_count(&state, &record.user, &record.tool, now * 1000 - BLOCK_WINDOW_MS).await?;
        views.push(PendingView {
            hostname: hostname.map(|(h,)| h).unwrap_or_default(),
            blocked_last_7_days: blocked,
            request: record,
        });
    }
    crate::export::answer(format, views, |views| {
        let rows: Vec<serde_json::Value> = views
            .iter()
            .map(|view| {
                let mut row = serde_json::to_value(&view.request).unwrap_or_default();
                row["hostname"] = view.hostname.clone().into();
                row["blocked_last_7_days"] = view.blocked_last_7_days.into();
                row
            })
            .collect();
        crate::export::csv(&rows, "exception-requests.csv")
    })
}

/// Every request filed in `[since, until)` (seconds), optionally for one tool, as records at
/// `now` (at most 100,000, newest first): the exception report's input.
pub(crate) async fn records_filed(
    state: &AppState,
    tool: Option<&str>,
    since: i64,
    until: i64,
    now: i64,
) -> Answer<Vec<ExceptionRecord>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM exception_requests WHERE created_at >= $1 AND created_at < $2 \
         AND ($3 = '' OR tool = $3) ORDER BY created_at DESC, id LIMIT 100000"
    ))
    .bind(since)
    .bind(until)
    .bind(tool.unwrap_or_default())
    .fetch_all(&state.store.pool)
    .await?;
    Ok(rows.into_iter().map(|row| row.record(now)).collect())
}

/// `GET /api/v1/admin/exceptions/{id}/audit`
pub async fn audit_of(
    State(state): State<AppState>,
    _admin: AdminCaller,
    Path(id): Path<String>,
) -> Answer<Json<Vec<AuditEntry>>> {
    admin_request(&state, &id).await?;
    audit_rows(&state, Some(&id), 1000).await.map(Json)
}

/// `GET /api/v1/admin/audit`: the newest transitions of every request.
pub async fn audit_recent(State(state): State<AppState>, _admin: AdminCaller) -> Answer<Json<Vec<AuditEntry>>> {
    audit_rows(&state, None, 200).await.map(Json)
}

async fn audit_rows(state: &AppState, id: Option<&str>, limit: i64) -> Answer<Vec<AuditEntry>> {
    type AuditRow = (i64, String, Option<String>, String, String, i64, String);
    let rows: Vec<AuditRow> = match id {
        Some(id) => sqlx::query_as(
            "SELECT seq, request_id, from_state, to_state, actor, at, comment FROM exception_audit \
             WHERE request_id = $1 ORDER BY seq LIMIT $2",
        )
        .bind(id)
        .bind(limit),
        None => sqlx::query_as(
            "SELECT seq, request_id, from_state, to_state, actor, at, comment FROM exception_audit \
             ORDER BY seq DESC LIMIT $1",
        )
        .bind(limit),
    }
    .fetch_all(&state.store.pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(seq, request_id, from, to, actor, at, comment)| AuditEntry {
            seq,
            request_id,
            from_state: from.as_deref().and_then(ExceptionState::parse),
            to_state: ExceptionState::parse(&to).unwrap_or(ExceptionState::Pending),
            actor,
            at,
            comment,
        })
        .collect())
}

/// Records `approved → expired` for every approval past its expiry. Safe to run on every
/// replica at once: each row's update is conditional, so each expiry is logged exactly once.
pub async fn sweep_expired(state: &AppState) -> Answer<usize> {
    let now = now();
    let due: Vec<(String, String)> = sqlx::query_as(
        "SELECT id, device_id FROM exception_requests WHERE state = 'approved' AND expires_at <= $1 LIMIT 500",
    )
    .bind(now)
    .fetch_all(&state.store.pool)
    .await?;
    let mut expired = 0;
    for (id, device_id) in due {
        let transition = Transition {
            id: &id,
            from: ExceptionState::Approved,
            to: ExceptionState::Expired,
            actor: SYSTEM_ACTOR,
            comment: "reached its expiry",
            extra_condition: " AND expires_at <= $3",
        };
        if apply(state, transition, "", vec![Param::Int(now)], &device_id, now).await? {
            expired += 1;
        }
    }
    Ok(expired)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_approval_is_recognised_by_name_or_mail() {
        assert!(same_person("dev", "dev"));
        assert!(same_person(" Dev@Example.com ", "dev"));
        assert!(same_person("dev", "dev@example.com"));
        assert!(!same_person("alice@example.com", "dev"));
        assert!(!same_person("developer", "dev"));
    }

    #[test]
    fn scopes_must_be_absolute() {
        assert_eq!(check_scope(None).unwrap(), None);
        assert_eq!(check_scope(Some("  ")).unwrap(), None);
        assert_eq!(check_scope(Some("/home/dev/src/app")).unwrap().as_deref(), Some("/home/dev/src/app"));
        assert_eq!(check_scope(Some(r"C:\src\app")).unwrap().as_deref(), Some(r"C:\src\app"));
        for relative in ["src/app", "../vendor-sdk", "/home/dev/src/../x", "/home/dev/src/app/", " /home/dev/x"] {
            let failure = check_scope(Some(relative)).unwrap_err();
            assert_eq!(failure.body.field.as_deref(), Some("scope"), "{relative}");
            assert!(failure.body.message.starts_with("scope must be"), "{relative}: {}", failure.body.message);
        }
    }
}
