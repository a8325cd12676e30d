//! The masking gateway's accounting in the local event log: per request, how many findings of each
//! rule were masked, how many placeholders stayed masked in tool calls — counts only, never values.

use crate::{Store, StoreError};
use rusqlite::params;
use std::collections::BTreeMap;

const MASKING_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS masking_reports (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms        INTEGER NOT NULL,
    path         TEXT    NOT NULL,
    status       INTEGER NOT NULL,
    masked       INTEGER NOT NULL,
    by_rule      TEXT    NOT NULL,
    kept_masked  INTEGER NOT NULL
);
";

/// One request through the masking gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskingRecord {
    /// Milliseconds since the epoch.
    pub at_ms: i64,
    /// The API path (`/v1/chat/completions`).
    pub path: String,
    /// The upstream's status code (0: never reached).
    pub status: u16,
    /// Findings masked, per rule id.
    pub by_rule: BTreeMap<String, u32>,
    /// Placeholders kept masked in tool calls that do not write files.
    pub kept_masked: u32,
}

/// Requests and findings since a moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaskingSummary {
    pub requests: u64,
    pub masked: u64,
    pub kept_masked: u64,
}

impl Store {
    fn ensure_masking_schema(&self) -> Result<(), StoreError> {
        self.lock().execute_batch(MASKING_SCHEMA)?;
        Ok(())
    }

    /// Appends one request's counts (kept: the last 100,000 requests).
    pub fn record_masking(&self, record: &MaskingRecord) -> Result<(), StoreError> {
        self.ensure_masking_schema()?;
        let by_rule = serde_json::to_string(&record.by_rule).expect("a map of counts serializes");
        let masked: u32 = record.by_rule.values().sum();
        let connection = self.lock();
        connection.execute(
            "INSERT INTO masking_reports (at_ms, path, status, masked, by_rule, kept_masked)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![record.at_ms, record.path, record.status, masked, by_rule, record.kept_masked],
        )?;
        connection
            .execute("DELETE FROM masking_reports WHERE seq <= (SELECT MAX(seq) - 100000 FROM masking_reports)", [])?;
        Ok(())
    }

    /// Totals of the requests recorded at or after `since_ms`.
    pub fn masking_since(&self, since_ms: i64) -> Result<MaskingSummary, StoreError> {
        self.ensure_masking_schema()?;
        let (requests, masked, kept): (i64, Option<i64>, Option<i64>) = self.lock().query_row(
            "SELECT COUNT(*), SUM(masked), SUM(kept_masked) FROM masking_reports WHERE at_ms >= ?1",
            params![since_ms],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )?;
        Ok(MaskingSummary {
            requests: requests as u64,
            masked: masked.unwrap_or(0) as u64,
            kept_masked: kept.unwrap_or(0) as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_sums_counts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("events.db")).unwrap();
        assert_eq!(store.masking_since(0).unwrap(), MaskingSummary::default());
        let record = |at_ms, n| MaskingRecord {
            at_ms,
            path: "/v1/chat/completions".into(),
            status: 200,
            by_rule: BTreeMap::from([("aws-access-key-id".to_owned(), n), ("private-key".to_owned(), 1)]),
            kept_masked: 1,
        };
        store.record_masking(&record(1_000, 2)).unwrap();
        store.record_masking(&record(2_000, 3)).unwrap();
        assert_eq!(store.masking_since(0).unwrap(), MaskingSummary { requests: 2, masked: 7, kept_masked: 2 });
        assert_eq!(store.masking_since(1_500).unwrap(), MaskingSummary { requests: 1, masked: 4, kept_masked: 1 });
    }
}
