//! Incidents the device reports: kept in the local store for `warden status`, and queued as
//! `incident` events in the outbox, so the next sync tells the server.

use crate::error::ClientError;
use std::sync::Mutex;
use warden_api::{Event, IncidentEvent};
use warden_store::Store;

/// Where incidents go: the store ([`report_incident`]), or [`HeldIncidents`] until it is open.
pub trait IncidentSink {
    /// `code` is a stable kebab-case word (`policy-cache-unverified`, …); `detail` is for people.
    fn report(&self, code: &str, detail: &str) -> Result<(), ClientError>;
}

impl IncidentSink for Store {
    fn report(&self, code: &str, detail: &str) -> Result<(), ClientError> {
        report_incident(self, code, detail)
    }
}

/// Records an incident locally and queues it for the server.
pub fn report_incident(store: &Store, code: &str, detail: &str) -> Result<(), ClientError> {
    store.record_incident(code, detail)?;
    let at_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    store.append(&Event::Incident(IncidentEvent {
        id: uuid::Uuid::new_v4().to_string(),
        at_ms,
        code: code.to_owned(),
        detail: detail.to_owned(),
    }))?;
    Ok(())
}

/// Incidents held until the store is open: the runtime verifies the caches before the agent
/// (which opens the store, and reports its recovery) starts, then hands them over.
#[derive(Debug, Default)]
pub struct HeldIncidents(Mutex<Vec<(String, String)>>);

impl IncidentSink for HeldIncidents {
    fn report(&self, code: &str, detail: &str) -> Result<(), ClientError> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push((code.to_owned(), detail.to_owned()));
        Ok(())
    }
}

impl HeldIncidents {
    /// Reports every held incident to `store`, oldest first.
    pub fn report_to(self, store: &Store) -> Result<(), ClientError> {
        for (code, detail) in self.0.into_inner().unwrap_or_else(|p| p.into_inner()) {
            report_incident(store, &code, &detail)?;
        }
        Ok(())
    }
}
