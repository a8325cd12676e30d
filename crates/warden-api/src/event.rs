//! A launch event: one AI-tool start on a device and what Warden did about it.

use serde::{Deserialize, Serialize};
use warden_policy::Action;

/// What enforcement actually did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Allowed to run.
    Allowed,
    /// Allowed to run, and the developer was warned.
    Warned,
    /// Stopped before its first instruction (pre-exec gate).
    Denied,
    /// Killed, with its process tree, right after it started.
    Killed,
    /// Monitor mode: enforce would have blocked it; it kept running.
    WouldBlock,
    /// Should have been blocked but Warden may not signal it (another user's process).
    NotPermitted,
    /// Should have been blocked but it had already exited.
    Exited,
}

/// One launch of an AI tool on a device. `id` is unique per event, so an upload that is
/// retried never creates a duplicate on the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchEvent {
    /// Globally unique id (UUID v4 text).
    pub id: String,
    /// When the launch happened, milliseconds since the Unix epoch.
    pub at_ms: i64,
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub exe: String,
    #[serde(default)]
    pub argv: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Catalog id of the tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The policy's decision.
    pub action: Action,
    /// What was actually done.
    pub outcome: Outcome,
    /// The rule that decided (`tool:claude-code`, `exception:…`).
    pub rule: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<String>,
    /// Version of the policy in force, when it came from a server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
    /// Which event source saw the launch (`proc-connector`, `fanotify`, `poll`).
    pub source: String,
}
