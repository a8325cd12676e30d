//! The governance console's fleet views (`GET /api/v1/admin/overview`, `/tools`, `/tools/{id}`,
//! `/exceptions/report`, `/alerts`): the shapes the server answers and the one rule that sorts a
//! launch into the console's outcome classes.

use crate::event::{LaunchEvent, Outcome};
use serde::{Deserialize, Serialize};

/// How the console counts a launch: the four outcomes of the overview, with the
/// sanctioned assistant's own launches apart (the adoption curve sets them against blocked
/// attempts). Stored per event by the server (`events.verdict`), so every view groups by one
/// column instead of reading event bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The sanctioned assistant's own client (rule `sanctioned-assistant`).
    Sanctioned,
    /// Allowed by a tool rule or the default.
    Allowed,
    /// Allowed, with a warning.
    Warned,
    /// Stopped: denied at the gate, killed, or (monitor mode) would have been; also a block that
    /// could not be carried out (`not-permitted`, `exited`) — the attempt is what counts.
    Blocked,
    /// Let through by an approved exception.
    Exception,
}

impl Verdict {
    pub const ALL: [Verdict; 5] =
        [Verdict::Sanctioned, Verdict::Allowed, Verdict::Warned, Verdict::Blocked, Verdict::Exception];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Sanctioned => "sanctioned",
            Verdict::Allowed => "allowed",
            Verdict::Warned => "warned",
            Verdict::Blocked => "blocked",
            Verdict::Exception => "exception",
        }
    }

    pub fn parse(text: &str) -> Option<Verdict> {
        Verdict::ALL.into_iter().find(|v| v.as_str() == text)
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl LaunchEvent {
    /// The console's class of this launch: the rule decides sanctioned and exception launches,
    /// the outcome the rest.
    pub fn verdict(&self) -> Verdict {
        if self.rule == "sanctioned-assistant" {
            return Verdict::Sanctioned;
        }
        match self.outcome {
            Outcome::Allowed | Outcome::Warned if self.exception.is_some() || self.rule.starts_with("exception:") => {
                Verdict::Exception
            }
            Outcome::Allowed => Verdict::Allowed,
            Outcome::Warned => Verdict::Warned,
            Outcome::Denied | Outcome::Killed | Outcome::WouldBlock | Outcome::NotPermitted | Outcome::Exited => {
                Verdict::Blocked
            }
        }
    }
}

/// Launches of one tool with one verdict on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DailyLaunches {
    /// Days since the epoch (UTC).
    pub day: i64,
    /// Catalog id; empty for a launch without one.
    pub tool: String,
    pub verdict: Verdict,
    pub count: i64,
}

/// One day of the adoption curve: the sanctioned assistant against banned-tool attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdoptionPoint {
    /// Days since the epoch (UTC).
    pub day: i64,
    /// Launches of the sanctioned assistant's client.
    pub sanctioned: i64,
    /// Launches that were blocked (or would have been, in monitor mode).
    pub blocked: i64,
    /// Launches that were let through with a warning.
    pub warned: i64,
}

/// The fleet's devices by state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FleetDevices {
    /// Enrolled and not revoked.
    pub enrolled: i64,
    /// Of those, not heard from for more than two sync intervals.
    pub silent: i64,
    pub revoked: i64,
}

/// `GET /api/v1/admin/overview?days=N`: the last `days` days, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Overview {
    /// First day shown (days since the epoch, UTC), inclusive.
    pub since_day: i64,
    /// Last day shown, inclusive (today).
    pub until_day: i64,
    /// Non-zero (day, tool, verdict) counts.
    pub launches: Vec<DailyLaunches>,
    /// One point per day from `since_day` to `until_day`, zero days included.
    pub adoption: Vec<AdoptionPoint>,
    /// Launches in the window per verdict, in [`Verdict::ALL`] order.
    pub totals: Vec<VerdictTotal>,
    pub devices: FleetDevices,
    pub pending_requests: i64,
    /// Alerts raised in the last 24 hours (the badge).
    pub recent_alerts: i64,
}

/// Launches with one verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerdictTotal {
    pub verdict: Verdict,
    pub count: i64,
}

/// `GET /api/v1/admin/tools`: one row per tool installed or launched anywhere in the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ToolSummaries {
    /// When the active policy was activated (seconds since the epoch), the "since" of the trend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_activated_at: Option<i64>,
    pub tools: Vec<ToolSummary>,
}

/// One tool across the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ToolSummary {
    /// Catalog id.
    pub tool: String,
    /// Devices (not revoked) whose current inventory has it.
    pub installed_devices: i64,
    /// Devices that launched it in the last 7, 30 and 90 days (rolling, from now).
    pub used_7d: i64,
    pub used_30d: i64,
    pub used_90d: i64,
    /// Blocked launches on the last 30 days (UTC calendar days, today included).
    pub blocked_30d: i64,
    /// Launches per day on the 30 days before the day the active policy was activated, and on the
    /// whole days since then (at most the last 30, today included); both 0.0 without an
    /// activation time.
    pub launches_per_day_before: f64,
    pub launches_per_day_since: f64,
    /// Installed versions with the number of devices on each, most common first.
    pub versions: Vec<VersionCount>,
}

/// Devices with one version of a tool installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VersionCount {
    /// Empty when the inventory could not tell.
    pub version: String,
    pub devices: i64,
}

/// `GET /api/v1/admin/tools/{id}`: "where was this tool installed or used, and is it gone now?"
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ToolFootprint {
    pub tool: String,
    /// Devices with it installed now.
    pub installed_now: i64,
    /// Devices where an earlier inventory had it and the current one does not.
    pub removed: i64,
    /// Devices that launched it (any outcome) in the last 30 days.
    pub used_30d: i64,
    /// The newest launch anywhere (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_launch_at_ms: Option<i64>,
    /// Every device where it was ever installed or launched, still-installed first.
    pub devices: Vec<ToolOnDevice>,
}

/// Where a tool is or was on a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ToolOnDevice {
    pub device_id: String,
    pub hostname: String,
    pub user: String,
    /// `installed` (the current inventory has it), `removed` (an earlier one had it), or `used`
    /// (launched, never seen installed: a copy, a portable run).
    pub status: String,
    /// Versions installed now (or last seen installed), comma-separated.
    pub versions: String,
    /// Install paths now (or last seen), comma-separated.
    pub paths: String,
    /// When an inventory first had it (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen_at: Option<i64>,
    /// When the inventory that no longer had it arrived (status `removed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_at: Option<i64>,
    /// Launches stored for this device (any outcome) and how many were blocked.
    pub launches: i64,
    pub blocked: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_launch_at_ms: Option<i64>,
}

/// `GET /api/v1/admin/exceptions/report`: the exception requests matching the filters, what they
/// are about, and how fast they are decided — the assistant team's feedback report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExceptionReport {
    /// Requests matching the filters.
    pub total: i64,
    pub by_state: Vec<Tally>,
    pub by_tool: Vec<Tally>,
    /// Decided requests per approver (the verified name recorded with the decision).
    pub by_approver: Vec<Tally>,
    /// Seconds from filing to decision: median and 90th percentile of decided requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_seconds_p50: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_seconds_p90: Option<i64>,
    /// The scopes (repositories, folders) asked for most, at most 20.
    pub top_scopes: Vec<Tally>,
    /// The justifications given most (compared case- and space-insensitively), at most 20.
    pub top_justifications: Vec<Tally>,
}

/// A value and how often it occurs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tally {
    pub value: String,
    pub count: i64,
}

/// An alert a rule on the event stream raised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Alert {
    /// Stable per occurrence (`blocks:alice:493112`, `silent:dev_…:1764000000`, `drift:<event id>`):
    /// raising the same one twice stores it once.
    pub id: String,
    /// `repeated-blocks`, `silent-device` or `control-drift`.
    pub rule: String,
    /// The user or device it is about.
    pub subject: String,
    /// Seconds since the epoch.
    pub raised_at: i64,
    /// One sentence for the console and the stream.
    pub detail: String,
}

/// `GET /api/v1/admin/alerts`: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertList {
    pub alerts: Vec<Alert>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_policy::Action;

    fn launch(rule: &str, outcome: Outcome, exception: Option<&str>) -> LaunchEvent {
        LaunchEvent {
            id: "e".into(),
            at_ms: 1,
            pid: 1,
            user: None,
            exe: "/x".into(),
            argv: vec![],
            cwd: None,
            tool: Some("claude-code".into()),
            action: Action::Block,
            outcome,
            rule: rule.into(),
            reason: String::new(),
            exception: exception.map(str::to_owned),
            policy_version: None,
            source: "poll".into(),
        }
    }

    #[test]
    fn each_launch_falls_in_one_class() {
        let cases = [
            ("sanctioned-assistant", Outcome::Allowed, None, Verdict::Sanctioned),
            ("tool:cursor", Outcome::Allowed, None, Verdict::Allowed),
            ("default", Outcome::Warned, None, Verdict::Warned),
            ("tool:claude-code", Outcome::Killed, None, Verdict::Blocked),
            ("tool:claude-code", Outcome::Denied, None, Verdict::Blocked),
            ("tool:claude-code", Outcome::WouldBlock, None, Verdict::Blocked),
            ("tool:claude-code", Outcome::NotPermitted, None, Verdict::Blocked),
            ("tool:claude-code", Outcome::Exited, None, Verdict::Blocked),
            ("exception:exc_1", Outcome::Allowed, Some("exc_1"), Verdict::Exception),
            ("exception:exc_1", Outcome::Warned, None, Verdict::Exception),
            // An exception whose guardrail broke: blocked, the exception named but not honoured.
            ("guardrail:exc_1:through-gateway", Outcome::Killed, Some("exc_1"), Verdict::Blocked),
        ];
        for (rule, outcome, exception, want) in cases {
            assert_eq!(launch(rule, outcome, exception).verdict(), want, "{rule} {outcome:?}");
        }
        for verdict in Verdict::ALL {
            assert_eq!(Verdict::parse(verdict.as_str()), Some(verdict));
        }
        assert_eq!(Verdict::parse("nope"), None);
    }
}
