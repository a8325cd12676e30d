//! Warden's local, durable event log: every event (of every kind: launches, service start and
//! stop, incidents, ended exceptions) is appended here first, and the same table is the outbox a
//! later upload drains (`pending` → send → `mark_uploaded`). One table for every kind: a row is
//! the kind, the payload JSON and a few columns to filter on, so a new kind needs no migration.
//!
//! SQLite in WAL mode with `synchronous = FULL`: an event whose `append` returned survives
//! a crash or `kill -9` of the agent (and a power cut, as far as the disk keeps its word).
//! A file that is not a readable database is moved aside (`<file>.corrupt-<ms>`) and a
//! fresh one started, so a damaged log never stops enforcement; the move is reported.

mod masking;
mod outbox;

pub use masking::MaskingSummary;
pub use outbox::{OutboxDrops, SyncIncident};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};
use warden_api::{Event, EventKind, LaunchEvent, Outcome};

/// What can go wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the event store {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("cannot move the corrupt event store {path} aside: {source}")]
    MoveAside { path: PathBuf, source: std::io::Error },
    #[error("cannot create the folder of the event store {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("event store query failed: {0}")]
    Query(#[from] rusqlite::Error),
    #[error("stored event {id} is unreadable: {source}")]
    Decode { id: String, source: warden_api::EventDecodeError },
}

/// A corrupt database that was moved aside when the store was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Where the damaged file now is.
    pub moved_to: PathBuf,
    /// What SQLite said about it.
    pub reason: String,
}

impl std::fmt::Display for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the event store was unreadable ({}) and was moved to {}", self.reason, self.moved_to.display())
    }
}

/// Which events `recent` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// At most this many, newest first.
    pub limit: usize,
    /// Only this kind.
    pub kind: Option<EventKind>,
    /// Only this tool (catalog id; launches and ended exceptions name one).
    pub tool: Option<String>,
    /// Only this person ([`Event::user`]).
    pub user: Option<String>,
    /// Only this outcome (launches only).
    pub outcome: Option<Outcome>,
    /// Only events at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
}

/// An exception request waiting to be sent to the governance server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRequest {
    pub id: String,
    pub created_ms: i64,
    /// The request as the wire format's JSON; the store does not interpret it.
    pub body: String,
}

/// The store. Safe to share between threads (one connection behind a lock: appends are
/// rare, a few per minute at most, so there is nothing to gain from a pool).
#[derive(Debug)]
pub struct Store {
    connection: Mutex<Connection>,
    path: PathBuf,
    recovery: Option<Recovery>,
}

/// The schema version this code writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 2;

/// Version 2: one `events` table for every kind. `outcome` is set for launches only, `tool` and
/// `user` where the kind has them; `body` is the payload JSON (`Event::payload_json`).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT    NOT NULL UNIQUE,
    kind           TEXT    NOT NULL,
    at_ms          INTEGER NOT NULL,
    tool           TEXT,
    user           TEXT,
    outcome        TEXT,
    body           TEXT    NOT NULL,
    uploaded_at_ms INTEGER
);
CREATE INDEX IF NOT EXISTS events_at ON events(at_ms);
CREATE INDEX IF NOT EXISTS events_kind_at ON events(kind, at_ms);
CREATE INDEX IF NOT EXISTS events_pending ON events(seq) WHERE uploaded_at_ms IS NULL;
CREATE TABLE IF NOT EXISTS exception_requests (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT    NOT NULL UNIQUE,
    created_ms     INTEGER NOT NULL,
    body           TEXT    NOT NULL,
    uploaded_at_ms INTEGER
);
";

/// From version 1 (`launch_events`, launches only, body = the launch JSON): every row moves to
/// `events` as a `launch`, in its order (the outbox's order) and with its upload mark. Also run
/// when an older binary re-created `launch_events` after a downgrade: rows already moved are
/// skipped by id, new ones follow.
const FROM_LAUNCH_EVENTS: &str = "
INSERT OR IGNORE INTO events (id, kind, at_ms, tool, user, outcome, body, uploaded_at_ms)
    SELECT id, 'launch', at_ms, tool, json_extract(body, '$.user'), outcome, body, uploaded_at_ms
    FROM launch_events ORDER BY seq;
DROP TABLE launch_events;
";

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn outcome_text(outcome: Outcome) -> String {
    // Outcome serializes as a plain kebab-case string.
    serde_json::to_value(outcome).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

impl Store {
    /// Opens (or creates) the store at `path`. A file that SQLite cannot read as a
    /// database is moved aside and a new one created; see [`Store::recovery`].
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir { path: dir.to_path_buf(), source })?;
        }
        match Self::open_checked(&path) {
            Ok(connection) => Ok(Store { connection: Mutex::new(connection), path, recovery: None }),
            Err(error) if is_corruption(&error) => {
                let moved_to = move_aside(&path)?;
                let connection =
                    Self::open_checked(&path).map_err(|source| StoreError::Open { path: path.clone(), source })?;
                let recovery = Recovery { moved_to, reason: error.to_string() };
                Ok(Store { connection: Mutex::new(connection), path, recovery: Some(recovery) })
            }
            Err(source) => Err(StoreError::Open { path, source }),
        }
    }

    fn open_checked(path: &Path) -> Result<Connection, rusqlite::Error> {
        let mut connection = Connection::open(path)?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        // The first real read: SQLite only notices a foreign file here.
        let check: String = connection.query_row("PRAGMA quick_check", [], |row| row.get(0))?;
        if check != "ok" {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                Some(format!("quick_check: {check}")),
            ));
        }
        let mode: String = connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        debug_assert_eq!(mode.to_ascii_lowercase(), "wal");
        // FULL: every commit is fsynced, so an appended event survives a power cut too.
        connection.execute_batch("PRAGMA synchronous = FULL;")?;
        migrate(&mut connection)?;
        Ok(connection)
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Set when opening found a corrupt file and moved it aside.
    pub fn recovery(&self) -> Option<&Recovery> {
        self.recovery.as_ref()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (each call is
        // one statement or transaction), so a poisoned lock is still usable.
        self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends an event durably. Returns `false` if an event with the same id is
    /// already stored (appending is idempotent).
    pub fn append(&self, event: &Event) -> Result<bool, StoreError> {
        let outcome = event.as_launch().map(|launch| outcome_text(launch.outcome));
        let inserted = self.lock().execute(
            "INSERT OR IGNORE INTO events (id, kind, at_ms, tool, user, outcome, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                event.id(),
                event.kind().as_str(),
                event.at_ms(),
                event.tool(),
                event.user(),
                outcome,
                event.payload_json()
            ],
        )?;
        Ok(inserted == 1)
    }

    /// Appends a launch ([`Store::append`] of [`Event::Launch`]).
    pub fn append_launch(&self, launch: &LaunchEvent) -> Result<bool, StoreError> {
        self.append(&Event::Launch(launch.clone()))
    }

    /// The newest events matching `filter`, newest first.
    pub fn recent(&self, filter: &EventFilter) -> Result<Vec<Event>, StoreError> {
        let connection = self.lock();
        let mut statement = connection.prepare_cached(
            "SELECT id, kind, body FROM events
             WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR tool = ?2) AND (?3 IS NULL OR user = ?3)
               AND (?4 IS NULL OR outcome = ?4) AND (?5 IS NULL OR at_ms >= ?5)
             ORDER BY at_ms DESC, seq DESC LIMIT ?6",
        )?;
        let rows = statement.query_map(
            params![
                filter.kind.map(EventKind::as_str),
                filter.tool,
                filter.user,
                filter.outcome.map(outcome_text),
                filter.since_ms,
                filter.limit as i64
            ],
            stored_row,
        )?;
        rows.map(|row| decode(row?)).collect()
    }

    /// The newest launches matching `filter` (its `kind` is ignored), newest first.
    pub fn recent_launches(&self, filter: &EventFilter) -> Result<Vec<LaunchEvent>, StoreError> {
        let filter = EventFilter { kind: Some(EventKind::Launch), ..filter.clone() };
        Ok(self.recent(&filter)?.into_iter().filter_map(|event| event.as_launch().cloned()).collect())
    }

    /// How many launches happened at or after `since_ms`, optionally only with `outcome`.
    pub fn count_since(&self, since_ms: i64, outcome: Option<Outcome>) -> Result<u64, StoreError> {
        let count: i64 = self.lock().query_row(
            "SELECT COUNT(*) FROM events WHERE kind = 'launch' AND at_ms >= ?1 AND (?2 IS NULL OR outcome = ?2)",
            params![since_ms, outcome.map(outcome_text)],
            |row| row.get(0),
        )?;
        Ok(count as u64)
    }

    /// The oldest events of every kind not yet uploaded, oldest first (the outbox).
    pub fn pending(&self, limit: usize) -> Result<Vec<Event>, StoreError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare_cached("SELECT id, kind, body FROM events WHERE uploaded_at_ms IS NULL ORDER BY seq LIMIT ?1")?;
        let rows = statement.query_map(params![limit as i64], stored_row)?;
        rows.map(|row| decode(row?)).collect()
    }

    /// Marks events as uploaded (the server acknowledged them). Unknown ids are ignored.
    /// Returns how many were newly marked.
    pub fn mark_uploaded(&self, ids: &[String]) -> Result<usize, StoreError> {
        self.mark_delivered("events", ids)
    }

    /// How many events wait for upload.
    pub fn pending_count(&self) -> Result<u64, StoreError> {
        let count: i64 =
            self.lock().query_row("SELECT COUNT(*) FROM events WHERE uploaded_at_ms IS NULL", [], |row| row.get(0))?;
        Ok(count as u64)
    }

    /// Queues an exception request for the server (idempotent on `id`).
    pub fn queue_exception_request(&self, id: &str, body: &str) -> Result<bool, StoreError> {
        let inserted = self.lock().execute(
            "INSERT OR IGNORE INTO exception_requests (id, created_ms, body) VALUES (?1, ?2, ?3)",
            params![id, now_ms(), body],
        )?;
        Ok(inserted == 1)
    }

    /// Queued exception requests not yet sent, oldest first.
    pub fn pending_exception_requests(&self, limit: usize) -> Result<Vec<QueuedRequest>, StoreError> {
        let connection = self.lock();
        let mut statement = connection.prepare_cached(
            "SELECT id, created_ms, body FROM exception_requests WHERE uploaded_at_ms IS NULL ORDER BY seq LIMIT ?1",
        )?;
        let rows = statement.query_map(params![limit as i64], |row| {
            Ok(QueuedRequest { id: row.get(0)?, created_ms: row.get(1)?, body: row.get(2)? })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Marks exception requests as delivered.
    pub fn mark_exception_requests_uploaded(&self, ids: &[String]) -> Result<usize, StoreError> {
        self.mark_delivered("exception_requests", ids)
    }

    /// Marks rows of an outbox table as delivered, in one transaction. `table` is one of
    /// this crate's own table names, never input.
    fn mark_delivered(&self, table: &'static str, ids: &[String]) -> Result<usize, StoreError> {
        let mut connection = self.lock();
        let transaction = connection.transaction()?;
        let mut marked = 0;
        {
            let mut statement = transaction.prepare_cached(&format!(
                "UPDATE {table} SET uploaded_at_ms = ?2 WHERE id = ?1 AND uploaded_at_ms IS NULL"
            ))?;
            let now = now_ms();
            for id in ids {
                marked += statement.execute(params![id, now])?;
            }
        }
        transaction.commit()?;
        Ok(marked)
    }

    /// One event by id.
    pub fn get(&self, id: &str) -> Result<Option<Event>, StoreError> {
        let row = self
            .lock()
            .query_row("SELECT id, kind, body FROM events WHERE id = ?1", params![id], stored_row)
            .optional()?;
        row.map(decode).transpose()
    }
}

/// Brings the schema to [`SCHEMA_VERSION`] in one immediate transaction, so two processes
/// opening the same file at once migrate it once.
fn migrate(connection: &mut Connection) -> Result<(), rusqlite::Error> {
    let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    transaction.execute_batch(SCHEMA)?;
    let old_table: bool = transaction.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'launch_events')",
        [],
        |row| row.get(0),
    )?;
    if old_table {
        transaction.execute_batch(FROM_LAUNCH_EVENTS)?;
    }
    transaction.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    transaction.commit()
}

fn stored_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, String)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
}

fn decode((id, kind, body): (String, String, String)) -> Result<Event, StoreError> {
    Event::from_parts(&kind, &body).map_err(|source| StoreError::Decode { id, source })
}

fn is_corruption(error: &rusqlite::Error) -> bool {
    matches!(error.sqlite_error_code(), Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt))
}

/// Moves a damaged database (and its WAL and shared-memory files) aside.
fn move_aside(path: &Path) -> Result<PathBuf, StoreError> {
    let suffix = format!("corrupt-{}", now_ms());
    let with_suffix = |p: &Path| {
        let mut name = p.as_os_str().to_owned();
        name.push(".");
        name.push(&suffix);
        PathBuf::from(name)
    };
    let moved_to = with_suffix(path);
    std::fs::rename(path, &moved_to).map_err(|source| StoreError::MoveAside { path: path.to_path_buf(), source })?;
    for extra in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(extra);
        let extra_path = PathBuf::from(name);
        if extra_path.exists() {
            std::fs::rename(&extra_path, with_suffix(&extra_path))
                .map_err(|source| StoreError::MoveAside { path: extra_path.clone(), source })?;
        }
    }
    Ok(moved_to)
}
