//! What the tray icon says: all clear, warned recently, blocked recently, or out of date.
//!
//! Pure: the caller passes the recent events, what it knows about the policy's freshness
//! and the current time, so every state can be tested without a tray.

use serde::Serialize;
use warden_api::{LaunchEvent, Outcome};

/// How long after a warning or block the icon keeps showing it.
pub const RECENT_MS: i64 = 15 * 60 * 1000;

/// The four looks of the tray icon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrayStatus {
    Clear,
    Warned,
    Blocked,
    Stale,
}

impl TrayStatus {
    /// The icon file for this state (see `icons/generate.sh`).
    pub fn icon_png(self) -> &'static [u8] {
        match self {
            TrayStatus::Clear => include_bytes!("../../icons/warden-clear.png"),
            TrayStatus::Warned => include_bytes!("../../icons/warden-warned.png"),
            TrayStatus::Blocked => include_bytes!("../../icons/warden-blocked.png"),
            TrayStatus::Stale => include_bytes!("../../icons/warden-stale.png"),
        }
    }
}

/// Whether an event was a block (stopped, or would have been in monitor mode it counts as a warning).
pub fn was_blocked(event: &LaunchEvent) -> bool {
    matches!(event.outcome, Outcome::Denied | Outcome::Killed | Outcome::NotPermitted | Outcome::Exited)
}

/// Whether an event warned the developer (monitor-mode blocks included: the tool kept running).
pub fn was_warned(event: &LaunchEvent) -> bool {
    matches!(event.outcome, Outcome::Warned | Outcome::WouldBlock)
}

/// What Warden knows about its policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyFreshness {
    /// The policy in force is the latest one Warden could get.
    Current,
    /// The newest policy could not be loaded or fetched; the last good one stays in force.
    OutOfDate { problem: String },
}

/// The icon state and its tooltip in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrayLook {
    pub status: TrayStatus,
    pub words: String,
}

/// Decides the tray's look. A recent block outranks a recent warning, which outranks an
/// out-of-date policy: the developer needs to know first what just happened to their tool.
/// `name_of` turns a catalog id into the tool's display name.
pub fn tray_look<'e>(
    events: impl IntoIterator<Item = &'e LaunchEvent>,
    freshness: &PolicyFreshness,
    now_ms: i64,
    name_of: impl Fn(&str) -> String,
) -> TrayLook {
    let mut last_block: Option<&LaunchEvent> = None;
    let mut last_warn: Option<&LaunchEvent> = None;
    for event in events {
        if now_ms - event.at_ms > RECENT_MS || event.at_ms > now_ms + 60_000 {
            continue;
        }
        let slot = if was_blocked(event) {
            &mut last_block
        } else if was_warned(event) {
            &mut last_warn
        } else {
            continue;
        };
        if slot.is_none_or(|seen| seen.at_ms < event.at_ms) {
            *slot = Some(event);
        }
    }
    let tool = |event: &LaunchEvent| event.tool.as_deref().map_or_else(|| "an AI tool".to_owned(), &name_of);
    let stale_note = match freshness {
        PolicyFreshness::Current => String::new(),
        PolicyFreshness::OutOfDate { problem } => format!(" Policy out of date: {problem}"),
    };
    if let Some(event) = last_block {
        let minutes = (now_ms - event.at_ms).max(0) / 60_000;
        return TrayLook {
            status: TrayStatus::Blocked,
            words: format!("Warden: blocked {} {}.{stale_note}", tool(event), ago(minutes)),
        };
    }
    if let Some(event) = last_warn {
        let minutes = (now_ms - event.at_ms).max(0) / 60_000;
        return TrayLook {
            status: TrayStatus::Warned,
            words: format!("Warden: warned about {} {}.{stale_note}", tool(event), ago(minutes)),
        };
    }
    match freshness {
        PolicyFreshness::OutOfDate { problem } => {
            TrayLook { status: TrayStatus::Stale, words: format!("Warden: policy out of date ({problem}).") }
        }
        PolicyFreshness::Current => TrayLook {
            status: TrayStatus::Clear,
            words: "Warden: all clear, no AI tool warned or blocked recently.".into(),
        },
    }
}

fn ago(minutes: i64) -> String {
    match minutes {
        0 => "just now".to_owned(),
        1 => "1 minute ago".to_owned(),
        m => format!("{m} minutes ago"),
    }
}

/// How many events of today (local midnight passed in by the caller) warned or blocked.
pub fn count_since<'e>(events: impl IntoIterator<Item = &'e LaunchEvent>, since_ms: i64) -> usize {
    events.into_iter().filter(|e| e.at_ms >= since_ms).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_policy::Action;

    fn event(at_ms: i64, outcome: Outcome, tool: &str) -> LaunchEvent {
        LaunchEvent {
            id: format!("e{at_ms}"),
            at_ms,
            pid: 1,
            user: None,
            exe: "/x".into(),
            argv: vec![],
            cwd: None,
            tool: Some(tool.into()),
            action: Action::Warn,
            outcome,
            rule: "default".into(),
            reason: "r".into(),
            exception: None,
            policy_version: None,
            source: "test".into(),
        }
    }

    #[test]
    fn each_state_and_its_precedence() {
        let now = 100 * 60_000;
        let stale = PolicyFreshness::OutOfDate { problem: "policy.toml:3:1: bad".into() };
        let cases: Vec<(Vec<LaunchEvent>, &PolicyFreshness, TrayStatus, &str)> = vec![
            (vec![], &PolicyFreshness::Current, TrayStatus::Clear, "all clear"),
            (
                vec![event(now - 1000, Outcome::Allowed, "qwen-code")],
                &PolicyFreshness::Current,
                TrayStatus::Clear,
                "all clear",
            ),
            (
                vec![event(now - 60_000, Outcome::Warned, "cursor")],
                &PolicyFreshness::Current,
                TrayStatus::Warned,
                "warned about Cursor 1 minute ago",
            ),
            (
                vec![event(now - 1000, Outcome::WouldBlock, "aider")],
                &PolicyFreshness::Current,
                TrayStatus::Warned,
                "just now",
            ),
            (
                vec![
                    event(now - 1000, Outcome::Warned, "cursor"),
                    event(now - 5 * 60_000, Outcome::Killed, "claude-code"),
                ],
                &PolicyFreshness::Current,
                TrayStatus::Blocked,
                "blocked Claude Code 5 minutes ago",
            ),
            (
                vec![event(now - RECENT_MS - 1, Outcome::Denied, "claude-code")],
                &PolicyFreshness::Current,
                TrayStatus::Clear,
                "all clear",
            ),
            (vec![], &stale, TrayStatus::Stale, "policy out of date (policy.toml:3:1: bad)"),
            (vec![event(now, Outcome::Denied, "claude-code")], &stale, TrayStatus::Blocked, "Policy out of date"),
        ];
        for (events, freshness, status, words) in cases {
            let look = tray_look(&events, freshness, now, |id| match id {
                "cursor" => "Cursor".to_owned(),
                "claude-code" => "Claude Code".to_owned(),
                other => other.to_owned(),
            });
            assert_eq!(look.status, status, "{events:?}");
            assert!(look.words.contains(words), "{:?} should contain {words:?}", look.words);
        }
    }

    #[test]
    fn counts_events_since_a_moment() {
        let events =
            [event(10, Outcome::Warned, "a"), event(20, Outcome::Killed, "b"), event(30, Outcome::Allowed, "c")];
        assert_eq!(count_since(&events, 15), 2);
        assert_eq!(count_since(&events, 31), 0);
    }

    #[test]
    fn every_state_has_a_decodable_rgba_icon() {
        for status in [TrayStatus::Clear, TrayStatus::Warned, TrayStatus::Blocked, TrayStatus::Stale] {
            let png = status.icon_png();
            assert_eq!(&png[1..4], b"PNG");
            // IHDR: width, height, bit depth, colour type 6 = RGBA.
            assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 64);
            assert_eq!(png[25], 6, "{status:?} must be RGBA");
        }
    }
}
