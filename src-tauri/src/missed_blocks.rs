//! Blocks that happened while no tray was running (the service enforces without one): which
//! of the developer's own recent launch events to show when the tray starts, the words of that
//! pop-up, and the marker in the user's config folder that remembers the last block shown.
//!
//! Pure except for the marker file: the caller passes the events (read through the local
//! socket) and the clock.

use crate::tray_status::was_blocked;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use warden_api::LaunchEvent;

/// Without a marker (first start), blocks of the last day count as missed.
pub const FIRST_START_WINDOW_MS: i64 = 24 * 3600 * 1000;
/// However old the marker, blocks older than this are not brought up again.
pub const OLDEST_MS: i64 = 7 * 24 * 3600 * 1000;

/// The file that remembers the newest block the tray has shown: `$XDG_CONFIG_HOME/warden/
/// tray-shown.json`, else `~/.config/warden/tray-shown.json`. `None` without a home.
pub fn marker_path() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(config.join("warden/tray-shown.json"))
}

#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    /// `at_ms` of the newest block shown, milliseconds since the epoch.
    last_block_ms: i64,
}

/// The newest block shown, as the marker says; `None` when there is no readable marker.
pub fn read_marker(path: &Path) -> Option<i64> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str::<Marker>(&text).ok().map(|m| m.last_block_ms)
}

/// Remembers `at_ms` as the newest block shown (written to a temporary file, then renamed).
pub fn write_marker(path: &Path, at_ms: i64) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let temporary = path.with_extension("json.tmp");
    std::fs::write(&temporary, serde_json::json!({ "last_block_ms": at_ms }).to_string())?;
    std::fs::rename(&temporary, path)
}

/// The blocks among `events` the developer has not been shown: newer than `last_shown_ms`
/// (without a marker: of the last [`FIRST_START_WINDOW_MS`]), never older than [`OLDEST_MS`],
/// oldest first.
pub fn missed(events: &[LaunchEvent], last_shown_ms: Option<i64>, now_ms: i64) -> Vec<&LaunchEvent> {
    let since = last_shown_ms.unwrap_or(now_ms - FIRST_START_WINDOW_MS).max(now_ms - OLDEST_MS);
    let mut found: Vec<&LaunchEvent> = events.iter().filter(|e| was_blocked(e) && e.at_ms > since).collect();
    found.sort_by_key(|e| e.at_ms);
    found
}

/// The pop-up that sums up several missed blocks: per tool, how often and when last.
/// `name_of` turns a catalog id into a display name, `clock` a time into "14:30".
pub fn summary(
    missed: &[&LaunchEvent],
    name_of: impl Fn(Option<&str>) -> String,
    clock: impl Fn(i64) -> String,
) -> (String, String) {
    let mut tools: Vec<(String, usize, i64)> = Vec::new();
    for event in missed {
        let name = name_of(event.tool.as_deref());
        match tools.iter_mut().find(|(n, _, _)| *n == name) {
            Some(entry) => {
                entry.1 += 1;
                entry.2 = entry.2.max(event.at_ms);
            }
            None => tools.push((name, 1, event.at_ms)),
        }
    }
    let parts: Vec<String> = tools
        .iter()
        .map(|(name, count, last)| match count {
            1 => format!("{name} at {}", clock(*last)),
            n => format!("{name} {n} times (last at {})", clock(*last)),
        })
        .collect();
    (
        format!("Warden blocked {} launch(es) while the tray was not running", missed.len()),
        format!("Blocked: {}.", parts.join("; ")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_api::Outcome;
    use warden_policy::Action;

    const HOUR: i64 = 3600 * 1000;

    fn event(id: &str, at_ms: i64, outcome: Outcome, tool: &str) -> LaunchEvent {
        LaunchEvent {
            id: id.into(),
            at_ms,
            pid: 1,
            user: Some("dev".into()),
            exe: "/x".into(),
            argv: vec![],
            cwd: None,
            tool: Some(tool.into()),
            action: Action::Block,
            outcome,
            rule: "r".into(),
            reason: "r".into(),
            exception: None,
            policy_version: None,
            source: "test".into(),
        }
    }

    #[test]
    fn only_blocks_after_the_marker_and_never_too_old() {
        let now = 1000 * HOUR;
        let events = [
            event("old", now - 8 * 24 * HOUR, Outcome::Killed, "claude-code"),
            event("day-ago", now - 23 * HOUR, Outcome::Denied, "claude-code"),
            event("warned", now - 2 * HOUR, Outcome::Warned, "cursor"),
            event("shown", now - 3 * HOUR, Outcome::Killed, "claude-code"),
            event("new", now - HOUR, Outcome::Killed, "aider"),
            event("newer", now - HOUR / 2, Outcome::Denied, "claude-code"),
        ];
        let ids = |found: Vec<&LaunchEvent>| found.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
        // (marker, expected missed ids, oldest first)
        let cases: [(Option<i64>, &[&str]); 4] = [
            (Some(now - 3 * HOUR), &["new", "newer"]),
            (Some(now), &[]),
            (None, &["day-ago", "shown", "new", "newer"]),
            (Some(0), &["day-ago", "shown", "new", "newer"]),
        ];
        for (marker, expected) in cases {
            assert_eq!(ids(missed(&events, marker, now)), expected, "marker {marker:?}");
        }
    }

    #[test]
    fn summary_counts_per_tool() {
        let events = [
            event("a", 10, Outcome::Killed, "claude-code"),
            event("b", 20, Outcome::Denied, "aider"),
            event("c", 30, Outcome::Killed, "claude-code"),
        ];
        let refs: Vec<&LaunchEvent> = events.iter().collect();
        let (title, body) = summary(&refs, |id| id.unwrap_or("?").to_uppercase(), |ms| format!("t{ms}"));
        assert_eq!(title, "Warden blocked 3 launch(es) while the tray was not running");
        assert_eq!(body, "Blocked: CLAUDE-CODE 2 times (last at t30); AIDER at t20.");
    }

    #[test]
    fn the_marker_round_trips_and_a_broken_one_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("warden/tray-shown.json");
        assert_eq!(read_marker(&path), None);
        write_marker(&path, 1234).unwrap();
        assert_eq!(read_marker(&path), Some(1234));
        std::fs::write(&path, "{broken").unwrap();
        assert_eq!(read_marker(&path), None);
    }
}
