//! Launch events in batches: upload from devices, queries from admins.

use crate::event::LaunchEvent;
use serde::{Deserialize, Serialize};

/// The most events one upload may carry.
pub const MAX_EVENTS_PER_BATCH: usize = 1000;

/// `POST /api/v1/device/events`. Idempotent by event id: a retried batch never duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    pub events: Vec<LaunchEvent>,
}

/// What the server did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventBatchReceipt {
    /// Events stored by this call.
    pub stored: usize,
    /// Events the server already had (from an earlier try of the same batch).
    pub duplicates: usize,
}

/// Filters of `GET /api/v1/admin/events`; every one is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// `allow`, `warn` or `block`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Milliseconds since the epoch, inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<i64>,
    /// Milliseconds since the epoch, exclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<i64>,
    /// At most this many, newest first (default 100, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// One stored event with the device that sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub device_id: String,
    /// Seconds since the epoch when the server stored it.
    pub received_at: i64,
    pub event: LaunchEvent,
}

/// The answer to an event query, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventPage {
    pub events: Vec<StoredEvent>,
}
