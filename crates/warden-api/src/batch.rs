//! Events in batches: upload from devices (each upload also the device's heartbeat), queries
//! from admins.

use crate::event::Event;
use serde::{Deserialize, Serialize};

/// The most events one upload may carry.
pub const MAX_EVENTS_PER_BATCH: usize = 1000;

/// `POST /api/v1/device/events`. Idempotent by event id: a retried batch never duplicates.
/// Events of every kind travel together; one of a kind the server does not know rejects the
/// whole batch (422 naming `events[i].kind`), so nothing is lost: the device keeps it queued.
///
/// Every upload is also the device's heartbeat: a device sends one each sync, with no events if
/// it has none, and the server records when it last heard from it (its own clock) and flags it
/// *silent* after two sync intervals without one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    pub events: Vec<Event>,
    /// The sender's side of the heartbeat (absent from devices older than heartbeats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<Heartbeat>,
}

/// What a device says about itself with each sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// When it was sent, milliseconds since the epoch on the device's clock (the server keeps its
    /// own receive time as `last_seen_at`; this one only shows clock skew).
    pub at_ms: i64,
    /// The sending program's version; replaces the device's `agent_version` on the server.
    #[serde(default)]
    pub version: String,
}

/// What the server did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventBatchReceipt {
    /// Events stored by this call.
    pub stored: usize,
    /// Events the server already had (from an earlier try of the same batch).
    pub duplicates: usize,
    /// The server's sync interval: a device not heard from for two of these is flagged silent,
    /// so a device should sync at least this often. 0 from servers older than the setting.
    #[serde(default)]
    pub sync_interval_seconds: u64,
}

/// Filters of `GET /api/v1/admin/events`; every one is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// An event kind (`launch`, `service-stop`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// `allow`, `warn` or `block` (launches only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Milliseconds since the epoch, inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<i64>,
    /// Milliseconds since the epoch, exclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<i64>,
    /// `sanctioned`, `allowed`, `warned`, `blocked` or `exception` (launches only; see
    /// [`crate::Verdict`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The page after the one whose `next` this is (opaque; keyset pagination, so a page costs the
    /// same at the millionth event as at the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// One stored event with the device that sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoredEvent {
    pub device_id: String,
    /// Seconds since the epoch when the server stored it.
    pub received_at: i64,
    /// The time the server files it under (ms since the epoch): the device's time, unless that
    /// lay in the future when it arrived — then the arrival time (see `clock_ahead`).
    #[serde(default)]
    pub at_ms: i64,
    /// The person the server attributes it to: the device's owner when the event names them, else
    /// the name the device sent marked as a local account of that device (`dev (local account on
    /// device dev_…)`) — a device can never file events as another person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    /// The device's clock was ahead: the event claimed a time after it arrived.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clock_ahead: bool,
    pub event: Event,
}

/// The answer to an event query, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventPage {
    pub events: Vec<StoredEvent>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `GET /api/v1/admin/event-counts`: events past the server's retention age, counted per day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventCounts {
    pub counts: Vec<EventCount>,
}

/// How many events of one kind, tool and outcome one device filed on one day (rolled up).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventCount {
    /// Days since the epoch (UTC) of the events' filed time.
    pub day: i64,
    pub device_id: String,
    pub kind: String,
    /// Catalog id; empty for events without one.
    pub tool: String,
    /// `killed`, `allowed`, `blocked`, …; empty for kinds without an outcome.
    pub outcome: String,
    pub count: i64,
}
