//! What the agent reports besides launches: a rescan after a gap, the end of an exception that
//! allowed a running launch, and the stop of that session after its grace period. The agent
//! makes them (`warden-monitor`'s watcher), the runtime hands them to local clients
//! ([`crate::local::LiveEvent`]); shaped as the payloads of the `incident` and
//! `exception-ended` event kinds.

use crate::event::Outcome;
use serde::{Deserialize, Serialize};

/// Why a rescan of every running process was needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum GapReason {
    /// The agent started: tools may have started while nothing watched.
    Start,
    /// The kernel dropped exec notices (`ENOBUFS`: the agent read too slowly); `lost`
    /// counts overruns, each of which may hide any number of execs.
    LostNotices { lost: u64 },
    /// The agent's own threads did not run for this long (SIGSTOP, starvation, a debugger).
    Paused { late_ms: u64 },
}

impl std::fmt::Display for GapReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GapReason::Start => f.write_str("the agent started"),
            GapReason::LostNotices { lost } => write!(f, "the kernel dropped exec notices ({lost} overruns)"),
            GapReason::Paused { late_ms } => write!(f, "the agent was stopped or starved for {late_ms} ms"),
        }
    }
}

/// A rescan after a gap: why, when, and what it found. Shaped as an `incident` event's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rescan {
    pub reasons: Vec<GapReason>,
    /// When it started, ms since the epoch.
    pub at_ms: i64,
    /// Running processes looked at (already decided ones are skipped without a look).
    pub processes: usize,
    /// Launches decided by it (tools that started unseen).
    pub launches: usize,
    /// From the start of the rescan to the last decision, in microseconds.
    pub duration_us: u64,
}

/// Why an exception no longer covers a running launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum EndReason {
    /// Its window passed.
    Expired,
    /// It was withdrawn or changed so that it no longer covers the launch.
    Revoked,
}

/// A running launch whose exception ended: the pop-up ("exception ended: Claude Code will be
/// stopped in 5 minutes"). Shaped as an `exception-ended` event's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionEnd {
    pub at_ms: i64,
    /// The launch's root process.
    pub pid: u32,
    pub tool: String,
    pub tool_name: Option<String>,
    pub exception: String,
    pub reason: EndReason,
    /// The launch's person (its bound account, else its login).
    pub user: Option<String>,
    pub cwd: Option<String>,
    /// The policy's grace period, in seconds.
    pub grace_secs: u64,
    /// When the session will be stopped, ms since the epoch; `None` in monitor mode.
    pub stops_at_ms: Option<i64>,
    /// One sentence for the developer.
    pub message: String,
}

/// A session stopped at the end of its grace period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStop {
    pub at_ms: i64,
    pub pid: u32,
    pub tool: String,
    pub exception: String,
    /// The launch's person (its bound account, else its login).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Why its exception ended.
    pub reason: EndReason,
    /// The grace period it had, in seconds.
    pub grace_secs: u64,
    /// `killed`, or `exited` when it had ended by itself, or `not-permitted`.
    pub outcome: Outcome,
    pub killed: Vec<u32>,
    pub not_permitted: Vec<u32>,
}

/// What the watcher's session check reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SessionNotice {
    ExceptionEnded(ExceptionEnd),
    SessionStopped(SessionStop),
}
