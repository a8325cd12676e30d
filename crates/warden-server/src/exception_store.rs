//! The data layer of exception requests: every SQL statement on `exception_requests` and
//! `exception_audit`, and the one function that changes a request's state ([`transition`]).
//!
//! A transition is allowed only if `ExceptionState::can_become` says so for the state stored
//! *now*, read inside the writing transaction; the update is conditional on that state, so two
//! approvers (or two replicas) racing on one request cannot both win, and the audit row and the
//! device's change-feed row are written in the same transaction, so the log always matches.

use crate::feed::{self, Wake};
use crate::store::Store;
use warden_api::{AuditEntry, ChangeKind, ExceptionRecord, ExceptionState};
use warden_policy::Guardrails;

/// Who the expiry sweep acts as in the audit log.
pub const SYSTEM_ACTOR: &str = "system";
/// Pending requests one device may have open at once.
pub const MAX_PENDING_PER_DEVICE: i64 = 10;
/// Pending requests one person may have open at once, over all their devices.
pub const MAX_PENDING_PER_USER: i64 = 20;

/// What the data layer refuses, besides the database failing.
#[derive(Debug, thiserror::Error)]
pub enum ExceptionStoreError {
    #[error("no exception request {0}")]
    NotFound(String),
    #[error("request {id} is {state}; it cannot become {to}")]
    InvalidTransition { id: String, state: ExceptionState, to: ExceptionState },
    #[error(
        "{whose} already {verb} {pending} pending exception requests (at most {limit}): withdraw one or wait for a decision"
    )]
    TooManyPending { whose: &'static str, verb: &'static str, pending: i64, limit: i64 },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

const COLUMNS: &str = "id, device_id, username, tool, scope, justification, requested_seconds, state, created_at, \
                       decided_at, decided_by, comment, granted_seconds, starts_at, expires_at, guardrails";

/// One stored request, as the table holds it.
pub(crate) struct StoredRequest {
    id: String,
    pub device_id: String,
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

impl<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> for StoredRequest {
    fn from_row(row: &'r sqlx::any::AnyRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row as _;
        Ok(StoredRequest {
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

impl StoredRequest {
    /// The state as stored (the sweep may not have recorded an expiry yet).
    fn stored_state(&self) -> ExceptionState {
        ExceptionState::parse(&self.state).unwrap_or(ExceptionState::Pending)
    }

    /// The wire record; an approval past its expiry reads as `expired` even before the sweep.
    pub fn record(self, now: i64) -> ExceptionRecord {
        let mut state = self.stored_state();
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

/// One request by id.
pub(crate) async fn load(store: &Store, id: &str) -> Result<Option<StoredRequest>, ExceptionStoreError> {
    Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM exception_requests WHERE id = $1"))
        .bind(id)
        .fetch_optional(&store.pool)
        .await?)
}

/// The request a device filed under its own `client_id` (a retried filing).
pub(crate) async fn by_client_id(
    store: &Store,
    device_id: &str,
    client_id: &str,
) -> Result<Option<StoredRequest>, ExceptionStoreError> {
    Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM exception_requests WHERE device_id = $1 AND client_id = $2"))
        .bind(device_id)
        .bind(client_id)
        .fetch_optional(&store.pool)
        .await?)
}

/// A request to file, already checked against the policy.
pub(crate) struct NewRequest<'a> {
    pub id: &'a str,
    pub device_id: &'a str,
    pub client_id: Option<&'a str>,
    pub user: &'a str,
    pub tool: &'a str,
    pub scope: Option<&'a str>,
    pub justification: &'a str,
    pub requested_seconds: i64,
}

/// Files a pending request with its audit row, unless the device or the person already has as
/// many pending as they may (counted inside the writing transaction: a device, or a person
/// across devices, cannot bury a colleague's genuine request under hundreds of its own).
pub(crate) async fn insert(
    store: &Store,
    stream_on: bool,
    request: NewRequest<'_>,
    now: i64,
) -> Result<(), ExceptionStoreError> {
    let _writer = store.write_guard().await;
    let mut transaction = store.pool.begin().await?;
    for (column, value, limit, whose, verb) in [
        ("device_id", request.device_id, MAX_PENDING_PER_DEVICE, "this device", "has"),
        ("username", request.user, MAX_PENDING_PER_USER, "you", "have"),
    ] {
        let (pending,): (i64,) = sqlx::query_as(&format!(
            "SELECT COUNT(*) FROM exception_requests WHERE {column} = $1 AND state = 'pending'"
        ))
        .bind(value)
        .fetch_one(&mut *transaction)
        .await?;
        if pending >= limit {
            return Err(ExceptionStoreError::TooManyPending { whose, verb, pending, limit });
        }
    }
    sqlx::query(
        "INSERT INTO exception_requests (id, device_id, client_id, username, tool, scope, justification, \
         requested_seconds, state, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9)",
    )
    .bind(request.id)
    .bind(request.device_id)
    .bind(request.client_id)
    .bind(request.user)
    .bind(request.tool)
    .bind(request.scope)
    .bind(request.justification)
    .bind(request.requested_seconds)
    .bind(now)
    .execute(&mut *transaction)
    .await?;
    audit(stream_on, &mut transaction, request.id, None, ExceptionState::Pending, request.user, now, "").await?;
    transaction.commit().await?;
    Ok(())
}

/// A change of one request's state, with what it records.
#[derive(Debug, Clone)]
pub(crate) enum Transition {
    /// `pending → approved`: granted for `granted_seconds` from now, with its conditions.
    Approve { approver: String, comment: String, granted_seconds: i64, guardrails: Guardrails },
    /// `pending → denied`.
    Deny { approver: String, comment: String },
    /// `pending → withdrawn`, by the requester.
    Withdraw { by: String },
    /// `approved → revoked` before its expiry.
    Revoke { approver: String, comment: String },
    /// `approved → expired` once its expiry has passed (the sweep).
    Expire,
}

impl Transition {
    pub fn target(&self) -> ExceptionState {
        match self {
            Transition::Approve { .. } => ExceptionState::Approved,
            Transition::Deny { .. } => ExceptionState::Denied,
            Transition::Withdraw { .. } => ExceptionState::Withdrawn,
            Transition::Revoke { .. } => ExceptionState::Revoked,
            Transition::Expire => ExceptionState::Expired,
        }
    }

    fn actor(&self) -> &str {
        match self {
            Transition::Approve { approver, .. }
            | Transition::Deny { approver, .. }
            | Transition::Revoke { approver, .. } => approver,
            Transition::Withdraw { by } => by,
            Transition::Expire => SYSTEM_ACTOR,
        }
    }

    fn comment(&self) -> &str {
        match self {
            Transition::Approve { comment, .. }
            | Transition::Deny { comment, .. }
            | Transition::Revoke { comment, .. } => comment,
            Transition::Withdraw { .. } => "",
            Transition::Expire => "reached its expiry",
        }
    }

    /// Whether the clock allows it for a request expiring at `expires_at`: an approval past its
    /// expiry is expired, not revocable; one before it is not yet expired.
    fn timely(&self, expires_at: Option<i64>, now: i64) -> bool {
        match self {
            Transition::Revoke { .. } => expires_at.is_some_and(|at| at > now),
            Transition::Expire => expires_at.is_some_and(|at| at <= now),
            _ => true,
        }
    }
}

/// Applies `change` to request `id` as of `now`: allowed only when
/// `stored_state.can_become(change.target())` and the clock agrees; the conditional update, its
/// audit row and the device's change-feed row in one transaction. Returns the device to wake.
pub(crate) async fn transition(
    store: &Store,
    stream_on: bool,
    id: &str,
    change: &Transition,
    now: i64,
) -> Result<String, ExceptionStoreError> {
    let to = change.target();
    let _writer = store.write_guard().await;
    let mut transaction = store.pool.begin().await?;
    let current: Option<(String, String, Option<i64>)> =
        sqlx::query_as("SELECT state, device_id, expires_at FROM exception_requests WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *transaction)
            .await?;
    let Some((stored, device_id, expires_at)) = current else {
        return Err(ExceptionStoreError::NotFound(id.to_owned()));
    };
    let from = ExceptionState::parse(&stored).unwrap_or(ExceptionState::Pending);
    let effective = if from == ExceptionState::Approved && expires_at.is_some_and(|at| at <= now) {
        ExceptionState::Expired
    } else {
        from
    };
    let refused = || ExceptionStoreError::InvalidTransition { id: id.to_owned(), state: effective, to };
    if !from.can_become(to) || !change.timely(expires_at, now) {
        return Err(refused());
    }
    let (set, params): (&str, Vec<Param>) = match change {
        Transition::Approve { approver, comment, granted_seconds, guardrails } => (
            ", decided_at = $3, decided_by = $4, comment = $5, granted_seconds = $6, starts_at = $7, \
             expires_at = $8, guardrails = $9",
            vec![
                Param::Int(now),
                Param::Text(approver.clone()),
                Param::Text(comment.clone()),
                Param::Int(*granted_seconds),
                Param::Int(now),
                Param::Int(now.saturating_add(*granted_seconds)),
                Param::Text(if guardrails.is_empty() {
                    String::new()
                } else {
                    serde_json::to_string(guardrails).expect("guardrails serialize")
                }),
            ],
        ),
        Transition::Deny { approver, comment } => (
            ", decided_at = $3, decided_by = $4, comment = $5",
            vec![Param::Int(now), Param::Text(approver.clone()), Param::Text(comment.clone())],
        ),
        Transition::Revoke { .. } => (", expires_at = $3", vec![Param::Int(now)]),
        Transition::Withdraw { .. } | Transition::Expire => ("", Vec::new()),
    };
    // Conditional on the state just read: a concurrent change in between makes this a no-op.
    let sql = format!("UPDATE exception_requests SET state = $1{set} WHERE id = $2 AND state = '{}'", from.as_str());
    let mut query = sqlx::query(&sql).bind(to.as_str()).bind(id);
    for param in params {
        query = match param {
            Param::Int(value) => query.bind(value),
            Param::Text(value) => query.bind(value),
        };
    }
    if query.execute(&mut *transaction).await?.rows_affected() != 1 {
        return Err(refused());
    }
    audit(stream_on, &mut transaction, id, Some(from), to, change.actor(), now, change.comment()).await?;
    let wake = Wake::Device(device_id.clone());
    feed::record(store, &mut transaction, &wake, ChangeKind::Exception, id, now).await?;
    transaction.commit().await?;
    Ok(device_id)
}

/// A value bound to a transition's extra assignments.
enum Param {
    Int(i64),
    Text(String),
}

/// Writes one audit row (and, when the server streams, its outbox record: id
/// `audit:REQUEST:STATE`, unique since a request reaches each state at most once).
#[allow(clippy::too_many_arguments)]
async fn audit(
    stream_on: bool,
    transaction: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    from: Option<ExceptionState>,
    to: ExceptionState,
    actor: &str,
    now: i64,
    comment: &str,
) -> Result<(), sqlx::Error> {
    if stream_on {
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

/// Raises the device's exception-list sequence and reads its newest 500 requests in one
/// transaction: the raise locks the device's row (PostgreSQL) or holds the writer lock (SQLite),
/// so of two fetches the one with the higher sequence also read the newer state.
pub(crate) async fn device_requests(
    store: &Store,
    device_id: &str,
) -> Result<(i64, Vec<StoredRequest>), ExceptionStoreError> {
    let _writer = store.write_guard().await;
    let mut transaction = store.pool.begin().await?;
    let (sequence,): (i64,) = sqlx::query_as(
        "UPDATE devices SET exception_list_sequence = exception_list_sequence + 1 WHERE id = $1 \
         RETURNING exception_list_sequence",
    )
    .bind(device_id)
    .fetch_one(&mut *transaction)
    .await?;
    let rows: Vec<StoredRequest> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM exception_requests WHERE device_id = $1 ORDER BY created_at DESC, id LIMIT 500"
    ))
    .bind(device_id)
    .fetch_all(&mut *transaction)
    .await?;
    transaction.commit().await?;
    Ok((sequence, rows))
}

/// Up to `limit` requests, pending first, then newest.
pub(crate) async fn newest(store: &Store, limit: i64) -> Result<Vec<StoredRequest>, ExceptionStoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM exception_requests \
         ORDER BY CASE WHEN state = 'pending' THEN 0 ELSE 1 END, created_at DESC, id LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(&store.pool)
    .await?)
}

/// Every request filed in `[since, until)` (seconds), optionally for one tool (at most 100,000,
/// newest first).
pub(crate) async fn filed_between(
    store: &Store,
    tool: Option<&str>,
    since: i64,
    until: i64,
) -> Result<Vec<StoredRequest>, ExceptionStoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM exception_requests WHERE created_at >= $1 AND created_at < $2 \
         AND ($3 = '' OR tool = $3) ORDER BY created_at DESC, id LIMIT 100000"
    ))
    .bind(since)
    .bind(until)
    .bind(tool.unwrap_or_default())
    .fetch_all(&store.pool)
    .await?)
}

/// The audit rows of one request (oldest first), or the newest of all (newest first).
pub(crate) async fn audit_rows(
    store: &Store,
    id: Option<&str>,
    limit: i64,
) -> Result<Vec<AuditEntry>, ExceptionStoreError> {
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
    .fetch_all(&store.pool)
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

/// Approvals past their expiry not yet recorded as expired (at most 500 at a time).
pub(crate) async fn due_for_expiry(store: &Store, now: i64) -> Result<Vec<String>, ExceptionStoreError> {
    let due: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM exception_requests WHERE state = 'approved' AND expires_at <= $1 LIMIT 500")
            .bind(now)
            .fetch_all(&store.pool)
            .await?;
    Ok(due.into_iter().map(|(id,)| id).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every transition from every state, on a real SQLite file: it happens exactly when the
    /// state machine (`can_become`) and the clock allow it, and leaves one audit row; otherwise
    /// nothing changes.
    #[tokio::test]
    async fn a_transition_happens_exactly_when_the_state_machine_allows_it() {
        let scratch = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}?mode=rwc", scratch.path().join("t.db").display())).await.unwrap();
        let now = 1_800_000_000;
        sqlx::query(
            "INSERT INTO devices (id, token_hash, hostname, username, platform, agent_version, enrolled_at, last_seen_at) \
             VALUES ('dev_1', 'h', 'laptop', 'dev', 'linux', '0', 0, 0)",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        let decided = |approver: &str| (approver.to_owned(), "because".to_owned());
        let changes = || {
            let (approver, comment) = decided("ana");
            vec![
                Transition::Approve {
                    approver: approver.clone(),
                    comment: comment.clone(),
                    granted_seconds: 600,
                    guardrails: Guardrails::default(),
                },
                Transition::Deny { approver: approver.clone(), comment: comment.clone() },
                Transition::Withdraw { by: "dev".into() },
                Transition::Revoke { approver, comment },
                Transition::Expire,
            ]
        };
        // (stored state, expires_at): an approval both before and after its expiry.
        let starts = [
            (ExceptionState::Pending, None),
            (ExceptionState::Approved, Some(now + 600)),
            (ExceptionState::Approved, Some(now - 1)),
            (ExceptionState::Denied, None),
            (ExceptionState::Withdrawn, None),
            (ExceptionState::Expired, Some(now - 1)),
            (ExceptionState::Revoked, Some(now - 1)),
        ];
        let mut case = 0;
        for (from, expires_at) in starts {
            for change in changes() {
                case += 1;
                let id = format!("exr_{case}");
                sqlx::query(
                    "INSERT INTO exception_requests (id, device_id, username, tool, justification, requested_seconds, \
                     state, created_at, expires_at) VALUES ($1, 'dev_1', 'dev', 'claude-code', 'j', 600, $2, 0, $3)",
                )
                .bind(&id)
                .bind(from.as_str())
                .bind(expires_at)
                .execute(&store.pool)
                .await
                .unwrap();
                let to = change.target();
                let expected = from.can_become(to)
                    && match to {
                        ExceptionState::Revoked => expires_at.is_some_and(|at| at > now),
                        ExceptionState::Expired => expires_at.is_some_and(|at| at <= now),
                        _ => true,
                    };
                let result = transition(&store, false, &id, &change, now).await;
                let stored = load(&store, &id).await.unwrap().unwrap().stored_state();
                let audit = audit_rows(&store, Some(&id), 10).await.unwrap();
                if expected {
                    assert_eq!(result.unwrap(), "dev_1", "{from} → {to}");
                    assert_eq!(stored, to, "{from} → {to}");
                    assert_eq!(audit.len(), 1, "{from} → {to}");
                    assert_eq!((audit[0].from_state, audit[0].to_state), (Some(from), to));
                } else {
                    assert!(
                        matches!(result, Err(ExceptionStoreError::InvalidTransition { .. })),
                        "{from} (expires {expires_at:?}) → {to}: {result:?}"
                    );
                    assert_eq!(stored, from, "{from} → {to} changed it");
                    assert!(audit.is_empty(), "{from} → {to} was audited");
                }
            }
        }
        let missing = transition(&store, false, "exr_none", &Transition::Expire, now).await;
        assert!(matches!(missing, Err(ExceptionStoreError::NotFound(_))));
    }
}
