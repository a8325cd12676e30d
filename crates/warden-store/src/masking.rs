//! The masking gateway's accounting, read back from the event log: each request through the gateway
//! is a `masking` event (counts per rule, never values), summed here for `warden status` and the tray.

use crate::{EventFilter, Store, StoreError};
use warden_api::{Event, EventKind, MaskingEvent};

/// Requests and findings in a window, and the newest request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaskingSummary {
    pub requests: u64,
    /// Findings masked, all rules together.
    pub masked: u64,
    /// Placeholders kept masked in shell or network tool calls.
    pub kept_masked: u64,
    /// The newest request in the window.
    pub last: Option<MaskingEvent>,
}

/// The most requests a summary reads (a window holding more is summed over its newest this many).
const SUMMARY_LIMIT: usize = 100_000;

impl Store {
    /// Totals of the masking events at or after `since_ms` (ms since the epoch), of `user` alone
    /// when given (the person the requests were for).
    pub fn masking_since(&self, since_ms: i64, user: Option<&str>) -> Result<MaskingSummary, StoreError> {
        let filter = EventFilter {
            limit: SUMMARY_LIMIT,
            kind: Some(EventKind::Masking),
            user: user.map(str::to_owned),
            since_ms: Some(since_ms),
            ..EventFilter::default()
        };
        let mut summary = MaskingSummary::default();
        for event in self.recent(&filter)? {
            let Event::Masking(masking) = event else { continue };
            summary.requests += 1;
            summary.masked += u64::from(masking.masked_total());
            summary.kept_masked += masking.kept_masked_in.len() as u64;
            if summary.last.is_none() {
                summary.last = Some(masking);
            }
        }
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn masking(id: &str, at_ms: i64, user: &str, n: u32) -> Event {
        Event::Masking(MaskingEvent {
            id: id.into(),
            at_ms,
            user: Some(user.into()),
            path: "/v1/chat/completions".into(),
            status: 200,
            destination: "Internal Assistant".into(),
            masked: BTreeMap::from([("aws-access-key-id".to_owned(), n), ("private-key".to_owned(), 1)]),
            restored: 2,
            kept_masked_in: vec!["run_shell_command".into()],
        })
    }

    #[test]
    fn sums_the_window_per_person_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("events.db")).unwrap();
        assert_eq!(store.masking_since(0, None).unwrap(), MaskingSummary::default());
        store.append(&masking("a", 1_000, "dev", 2)).unwrap();
        store.append(&masking("b", 2_000, "dev", 3)).unwrap();
        store.append(&masking("c", 3_000, "ops", 5)).unwrap();
        let all = store.masking_since(0, None).unwrap();
        assert_eq!((all.requests, all.masked, all.kept_masked), (3, 13, 3));
        assert_eq!(all.last.map(|m| m.id).as_deref(), Some("c"));
        let dev = store.masking_since(1_500, Some("dev")).unwrap();
        assert_eq!((dev.requests, dev.masked, dev.kept_masked), (1, 4, 1));
        assert_eq!(dev.last.map(|m| m.id).as_deref(), Some("b"));
    }
}
