//! What the tray icon says: all clear, warned recently, blocked recently, or out of date.
//!
//! Pure: the caller passes the recent events, what it knows about the policy's freshness
//! and the current time, so every state can be tested without a tray.

use serde::Serialize;
use warden_api::local::RuntimeMode;
use warden_api::{LaunchEvent, Outcome};

/// What protects this machine, in the menu's words: the system service (the developer cannot
/// switch it off; quitting the tray changes nothing) or the personal runtime inside this tray.
pub fn protection(mode: RuntimeMode) -> &'static str {
    match mode {
        RuntimeMode::Service => "Protected by the Warden service",
        RuntimeMode::Personal => "Personal mode: Warden runs as you in this tray and is not tamper-proof",
    }
}

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

/// What the sync loop knows about the server link (enrolled devices only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSyncFacts {
    /// Why the last sync attempt failed; `None` after a good one (or before the first).
    pub last_error: Option<String>,
    /// When the server last confirmed the cached policy (fetched it or answered 304).
    pub policy_confirmed_ms: Option<i64>,
    pub enrolled_at_ms: i64,
}

/// How many sync intervals may pass without the server confirming the policy.
pub const STALE_AFTER_INTERVALS: i64 = 2;

/// Whether the server link makes the policy out of date: the last sync attempt failed, or the
/// server has not confirmed the policy for more than [`STALE_AFTER_INTERVALS`] intervals.
pub fn server_freshness(facts: &ServerSyncFacts, interval_ms: i64, now_ms: i64) -> PolicyFreshness {
    if let Some(error) = &facts.last_error {
        // The loop joins every failed phase with "; "; the first says enough for a tooltip.
        let first = error.split("; ").next().unwrap_or_default();
        let short: String = first.chars().take(120).collect();
        let more = if short.len() < error.len() { "…" } else { "" };
        return PolicyFreshness::OutOfDate { problem: format!("cannot sync with the server: {short}{more}") };
    }
    let limit = STALE_AFTER_INTERVALS * interval_ms;
    match facts.policy_confirmed_ms {
        Some(confirmed) if now_ms - confirmed > limit => PolicyFreshness::OutOfDate {
            problem: format!("the server last confirmed it {} minutes ago", (now_ms - confirmed) / 60_000),
        },
        None if now_ms - facts.enrolled_at_ms > limit => {
            PolicyFreshness::OutOfDate { problem: "no policy received from the server yet".into() }
        }
        _ => PolicyFreshness::Current,
    }
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
    fn server_link_freshness() {
        let minute = 60_000;
        let now = 1_000 * minute;
        let interval = minute;
        let facts = |last_error: Option<&str>, confirmed: Option<i64>, enrolled: i64| ServerSyncFacts {
            last_error: last_error.map(str::to_owned),
            policy_confirmed_ms: confirmed,
            enrolled_at_ms: enrolled,
        };
        let cases: Vec<(ServerSyncFacts, Option<&str>)> = vec![
            (facts(None, Some(now - 30_000), 0), None),
            (facts(None, Some(now - 2 * minute), 0), None),
            (facts(None, Some(now - 2 * minute - 1), 0), Some("last confirmed it 2 minutes ago")),
            (facts(None, Some(now - 45 * minute), 0), Some("45 minutes ago")),
            (
                facts(Some("server unreachable"), Some(now - 1000), 0),
                Some("cannot sync with the server: server unreachable"),
            ),
            (facts(None, None, now - minute), None),
            (facts(None, None, now - 3 * minute), Some("no policy received")),
        ];
        for (facts, problem) in cases {
            match (server_freshness(&facts, interval, now), problem) {
                (PolicyFreshness::Current, None) => {}
                (PolicyFreshness::OutOfDate { problem: got }, Some(want)) => {
                    assert!(got.contains(want), "{got:?} should contain {want:?}")
                }
                (got, want) => panic!("{facts:?}: got {got:?}, wanted {want:?}"),
            }
        }
        let long = format!("fetching exceptions: {}; fetching the policy: down", "x".repeat(200));
        match server_freshness(&facts(Some(&long), None, now), interval, now) {
            PolicyFreshness::OutOfDate { problem } => {
                assert!(problem.ends_with("xxx…") && !problem.contains("policy: down"), "{problem}");
                assert_eq!(problem.chars().count(), "cannot sync with the server: ".len() + 121);
            }
            other => panic!("{other:?}"),
        }
        let stale = server_freshness(&facts(Some("connection refused"), None, now), interval, now);
        let look = tray_look(&[], &stale, now, str::to_owned);
        assert_eq!(look.status, TrayStatus::Stale);
        assert_eq!(look.words, "Warden: policy out of date (cannot sync with the server: connection refused).");
    }

    #[test]
    fn the_menu_says_what_protects_the_machine() {
        assert_eq!(protection(RuntimeMode::Service), "Protected by the Warden service");
        let personal = protection(RuntimeMode::Personal);
        assert!(personal.starts_with("Personal mode") && personal.contains("not tamper-proof"), "{personal}");
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
