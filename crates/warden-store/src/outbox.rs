//! The upload outbox's bound and the device's sync incidents (added for the server sync).
//!
//! The event log grows while the server is unreachable; [`Store::bound_outbox`] keeps the
//! pending part under a limit by dropping the least useful events first (allowed launches,
//! then warnings and would-blocks, then blocks, and only then the other kinds: service start
//! and stop, incidents, ended exceptions, the tamper evidence), oldest first within each tier. Drops
//! are counted in the same database so `warden status` can report them. Exception requests
//! live in their own table and are never dropped.
//!
//! Sync incidents (a policy whose signature failed, a malformed policy, a dropped batch) are
//! recorded here too: they are what an admin or `warden status` needs to see after the fact.

use crate::{Store, StoreError, now_ms};
use rusqlite::{OptionalExtension, params};

const OUTBOX_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS outbox_drops (
    tier    TEXT    PRIMARY KEY,
    dropped INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sync_incidents (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms  INTEGER NOT NULL,
    kind   TEXT    NOT NULL,
    detail TEXT    NOT NULL
);
";

/// Drop tiers, least valuable first: which rows each may drop (launches by outcome; every other
/// kind has no outcome).
const TIERS: [(&str, &str); 4] = [
    ("allowed", "outcome IN ('allowed')"),
    ("warned", "outcome IN ('warned', 'would-block', 'exited', 'not-permitted')"),
    ("blocked", "outcome IN ('killed', 'denied')"),
    ("other", "outcome IS NULL"),
];

/// What [`Store::bound_outbox`] dropped, per tier.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxDrops {
    pub allowed: u64,
    pub warned: u64,
    pub blocked: u64,
    /// Events of the other kinds (service start/stop, incidents, ended exceptions).
    pub other: u64,
}

impl OutboxDrops {
    pub fn total(&self) -> u64 {
        self.allowed + self.warned + self.blocked + self.other
    }

    fn add(&mut self, tier: &str, count: u64) {
        match tier {
            "allowed" => self.allowed += count,
            "warned" => self.warned += count,
            "blocked" => self.blocked += count,
            _ => self.other += count,
        }
    }
}

/// One recorded sync incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncIncident {
    pub at_ms: i64,
    /// Stable kind, e.g. `policy-signature`, `policy-malformed`.
    pub kind: String,
    pub detail: String,
}

impl Store {
    fn ensure_outbox_schema(&self) -> Result<(), StoreError> {
        self.lock().execute_batch(OUTBOX_SCHEMA)?;
        Ok(())
    }

    /// Keeps at most `max_pending` events waiting for upload, dropping the least useful
    /// (oldest first within a tier). Returns what this call dropped; the running totals are in
    /// [`Store::outbox_drops`].
    pub fn bound_outbox(&self, max_pending: u64) -> Result<OutboxDrops, StoreError> {
        self.ensure_outbox_schema()?;
        let mut connection = self.lock();
        let transaction = connection.transaction()?;
        let mut dropped = OutboxDrops::default();
        let pending: i64 =
            transaction.query_row("SELECT COUNT(*) FROM events WHERE uploaded_at_ms IS NULL", [], |r| r.get(0))?;
        let mut excess = (pending as u64).saturating_sub(max_pending);
        for (tier, condition) in TIERS {
            if excess == 0 {
                break;
            }
            // The conditions are constants of this file, never input: formatting them in is safe.
            let removed = transaction.execute(
                &format!(
                    "DELETE FROM events WHERE seq IN (SELECT seq FROM events
                     WHERE uploaded_at_ms IS NULL AND {condition} ORDER BY seq LIMIT ?1)"
                ),
                params![excess as i64],
            )? as u64;
            if removed > 0 {
                transaction.execute(
                    "INSERT INTO outbox_drops (tier, dropped) VALUES (?1, ?2)
                     ON CONFLICT(tier) DO UPDATE SET dropped = dropped + excluded.dropped",
                    params![tier, removed as i64],
                )?;
                dropped.add(tier, removed);
            }
            excess -= removed.min(excess);
        }
        transaction.commit()?;
        Ok(dropped)
    }

    /// Every event the outbox bound has dropped since the store was created.
    pub fn outbox_drops(&self) -> Result<OutboxDrops, StoreError> {
        self.ensure_outbox_schema()?;
        let connection = self.lock();
        let mut statement = connection.prepare_cached("SELECT tier, dropped FROM outbox_drops")?;
        let mut drops = OutboxDrops::default();
        for row in statement.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))? {
            let (tier, count) = row?;
            drops.add(&tier, count as u64);
        }
        Ok(drops)
    }

    /// How many exception requests wait to be sent.
    pub fn pending_exception_request_count(&self) -> Result<u64, StoreError> {
        let count: i64 = self.lock().query_row(
            "SELECT COUNT(*) FROM exception_requests WHERE uploaded_at_ms IS NULL",
            [],
            |row| row.get(0),
        )?;
        Ok(count as u64)
    }

    /// Records a sync incident (kept: the last 1,000).
    pub fn record_incident(&self, kind: &str, detail: &str) -> Result<(), StoreError> {
        self.ensure_outbox_schema()?;
        let connection = self.lock();
        connection.execute(
            "INSERT INTO sync_incidents (at_ms, kind, detail) VALUES (?1, ?2, ?3)",
            params![now_ms(), kind, detail],
        )?;
        connection
            .execute("DELETE FROM sync_incidents WHERE seq <= (SELECT MAX(seq) - 1000 FROM sync_incidents)", [])?;
        Ok(())
    }

    /// The newest incidents, newest first.
    pub fn incidents(&self, limit: usize) -> Result<Vec<SyncIncident>, StoreError> {
        self.ensure_outbox_schema()?;
        let connection = self.lock();
        let mut statement =
            connection.prepare_cached("SELECT at_ms, kind, detail FROM sync_incidents ORDER BY seq DESC LIMIT ?1")?;
        let rows = statement.query_map(params![limit as i64], |row| {
            Ok(SyncIncident { at_ms: row.get(0)?, kind: row.get(1)?, detail: row.get(2)? })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// When the newest event was uploaded (ms since the epoch), if ever.
    pub fn last_upload_ms(&self) -> Result<Option<i64>, StoreError> {
        let last: Option<Option<i64>> =
            self.lock().query_row("SELECT MAX(uploaded_at_ms) FROM events", [], |row| row.get(0)).optional()?;
        Ok(last.flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_api::{Event, IncidentEvent, LaunchEvent, Outcome};
    use warden_policy::Action;

    fn event(id: usize, outcome: Outcome) -> Event {
        Event::Launch(LaunchEvent {
            id: format!("e{id}"),
            at_ms: id as i64,
            pid: 1,
            user: None,
            exe: "/bin/x".into(),
            argv: vec![],
            cwd: None,
            tool: Some("codex".into()),
            action: Action::Allow,
            outcome,
            rule: "tool:codex".into(),
            reason: String::new(),
            exception: None,
            policy_version: None,
            source: "poll".into(),
        })
    }

    fn incident(id: usize) -> Event {
        Event::Incident(IncidentEvent {
            id: format!("e{id}"),
            at_ms: id as i64,
            code: "gap-rescan".into(),
            detail: "rescanned".into(),
        })
    }

    #[test]
    fn the_bound_drops_allowed_then_warned_then_blocked_then_other_kinds_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("events.db")).unwrap();
        let outcomes = [Outcome::Killed, Outcome::Allowed, Outcome::Warned, Outcome::Allowed, Outcome::Killed];
        store.append(&incident(9)).unwrap();
        for (i, outcome) in outcomes.into_iter().enumerate() {
            store.append(&event(i, outcome)).unwrap();
        }
        store.append(&incident(10)).unwrap();
        store.queue_exception_request("r1", "{}").unwrap();
        let ids =
            |store: &Store| -> Vec<String> { store.pending(10).unwrap().iter().map(|e| e.id().to_owned()).collect() };

        let dropped = store.bound_outbox(5).unwrap();
        assert_eq!(dropped, OutboxDrops { allowed: 2, ..OutboxDrops::default() });
        assert_eq!(ids(&store), ["e9", "e0", "e2", "e4", "e10"]);

        let dropped = store.bound_outbox(3).unwrap();
        assert_eq!(dropped, OutboxDrops { warned: 1, blocked: 1, ..OutboxDrops::default() });
        assert_eq!(ids(&store), ["e9", "e4", "e10"], "the newest block survives");

        let dropped = store.bound_outbox(1).unwrap();
        assert_eq!(dropped, OutboxDrops { blocked: 1, other: 1, ..OutboxDrops::default() });
        assert_eq!(ids(&store), ["e10"], "the other kinds go last, the newest survives");
        assert_eq!(store.outbox_drops().unwrap().total(), 6);
        assert_eq!(store.pending_exception_request_count().unwrap(), 1, "requests are never dropped");
    }

    #[test]
    fn incidents_come_back_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("events.db")).unwrap();
        store.record_incident("policy-signature", "bad v3").unwrap();
        store.record_incident("policy-malformed", "bad v4").unwrap();
        let kinds: Vec<String> = store.incidents(5).unwrap().into_iter().map(|i| i.kind).collect();
        assert_eq!(kinds, ["policy-malformed", "policy-signature"]);
    }
}
