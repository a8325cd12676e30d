//! What a pop-up says and when one is shown: the words and actions of a block or warn
//! notification, and the gate that keeps one launch tree from raising a dozen pop-ups.
//!
//! Pure: no D-Bus here (see `desktop_notification.rs`), so every wording and every
//! rate-limit decision is tested directly.

use crate::tray_status::{was_blocked, was_warned};
use std::collections::HashMap;
use warden_api::{ConnectEvent, ConnectOutcome, LaunchEvent};
use warden_policy::Policy;

/// Action keys sent to the notification service. `default` is what a click on the
/// pop-up itself does (freedesktop convention).
pub mod action_key {
    pub const OPEN_ASSISTANT: &str = "default";
    pub const REQUEST_EXCEPTION: &str = "request-exception";
    pub const DETAILS: &str = "details";
    pub const SILENCE_FOR_A_DAY: &str = "silence-day";
}

/// What the developer chose on a pop-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PopupChoice {
    OpenAssistant,
    RequestException,
    Details,
    SilenceForADay,
}

impl PopupChoice {
    pub fn from_key(key: &str) -> Option<PopupChoice> {
        match key {
            action_key::OPEN_ASSISTANT => Some(PopupChoice::OpenAssistant),
            action_key::REQUEST_EXCEPTION => Some(PopupChoice::RequestException),
            action_key::DETAILS => Some(PopupChoice::Details),
            action_key::SILENCE_FOR_A_DAY => Some(PopupChoice::SilenceForADay),
            _ => None,
        }
    }
}

/// Whether a pop-up reports a block or a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PopupKind {
    Block,
    Warn,
}

/// The text and actions of one pop-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Popup {
    pub kind: PopupKind,
    pub title: String,
    pub body: String,
    /// `(key, label)` in the order shown; the first is the default.
    pub actions: Vec<(&'static str, String)>,
}

/// The pop-up for an event, or `None` when the event needs none (allowed launches).
pub fn popup_for(event: &LaunchEvent, tool_name: &str, policy: &Policy) -> Option<Popup> {
    let kind = if was_blocked(event) {
        PopupKind::Block
    } else if was_warned(event) {
        PopupKind::Warn
    } else {
        return None;
    };
    let assistant = policy.assistant.as_ref().map(|a| a.name.as_str());
    let title = match kind {
        PopupKind::Block => format!("{tool_name} was blocked: company policy requires it"),
        PopupKind::Warn => format!("{tool_name} is not approved: it keeps running"),
    };
    let mut body = one_sentence(&event.reason);
    if let Some(name) = assistant {
        body.push_str(&format!(" Use {name} instead."));
    }
    let mut actions = Vec::new();
    if let Some(name) = assistant {
        actions.push((action_key::OPEN_ASSISTANT, format!("Open {name}")));
    }
    actions.push((action_key::REQUEST_EXCEPTION, "Request exception".to_owned()));
    actions.push((action_key::DETAILS, "Details".to_owned()));
    if kind == PopupKind::Warn {
        actions.push((action_key::SILENCE_FOR_A_DAY, "Silence for a day".to_owned()));
    }
    Some(Popup { kind, title, body, actions })
}

/// Who a connection is attributed to, in words: the catalog tool's name, else the program's file
/// name (a renamed tool, a script using a vendor SDK), else its pid.
pub fn connector_name(event: &ConnectEvent, tool_name: Option<&str>) -> String {
    match (tool_name, event.exe.as_deref()) {
        (Some(name), _) => name.to_owned(),
        (None, Some(exe)) => exe.rsplit('/').next().unwrap_or(exe).to_owned(),
        (None, None) => format!("Process {}", event.pid),
    }
}

/// The pop-up for a connection the network layer refused or warned about ("Claude Code's
/// connection to api.anthropic.com was blocked"), with the sanctioned assistant as the main
/// action; `None` for connections that need none (allowed, or monitor mode's would-block).
pub fn connect_popup_for(event: &ConnectEvent, tool_name: Option<&str>, policy: &Policy) -> Option<Popup> {
    let kind = match event.outcome {
        ConnectOutcome::Blocked => PopupKind::Block,
        ConnectOutcome::Warned => PopupKind::Warn,
        ConnectOutcome::Allowed | ConnectOutcome::WouldBlock => return None,
    };
    let who = connector_name(event, tool_name);
    let title = match kind {
        PopupKind::Block => format!("{who}'s connection to {} was blocked", event.host),
        PopupKind::Warn => format!("{who} is connecting to {}, which is not approved", event.host),
    };
    let assistant = policy.assistant.as_ref().map(|a| a.name.as_str());
    let mut body = if event.reason.is_empty() { String::new() } else { one_sentence(&event.reason) };
    if let Some(name) = assistant {
        if !body.is_empty() {
            body.push(' ');
        }
        body.push_str(&format!("Use {name} instead."));
    }
    let mut actions = Vec::new();
    if let Some(name) = assistant {
        actions.push((action_key::OPEN_ASSISTANT, format!("Open {name}")));
    }
    if event.tool.is_some() {
        actions.push((action_key::REQUEST_EXCEPTION, "Request exception".to_owned()));
    }
    actions.push((action_key::DETAILS, "Details".to_owned()));
    Some(Popup { kind, title, body, actions })
}

/// The gate key of a connection's pop-up: one per process and destination, so a client retrying
/// its connection raises one pop-up, not one per attempt.
pub fn connect_gate_key(event: &ConnectEvent) -> String {
    format!("connect:{}:{}", event.pid, event.host)
}

/// The first sentence of a reason, ending in a full stop.
fn one_sentence(reason: &str) -> String {
    let reason = reason.trim();
    let end = reason.find(". ").map(|i| i + 1).unwrap_or(reason.len());
    let mut sentence = reason[..end].to_owned();
    if !sentence.ends_with(['.', '!', '?']) {
        sentence.push('.');
    }
    sentence
}

/// One pop-up per tool and kind within a short window (a launch tree: the wrapper, its
/// relaunch, its helpers), and none at all for a tool whose warnings were silenced.
#[derive(Debug, Clone)]
pub struct PopupGate {
    window_ms: i64,
    last_shown: HashMap<(String, PopupKind), i64>,
    silenced_until: HashMap<String, i64>,
}

/// How long a silenced tool stays silent.
pub const SILENCE_MS: i64 = 24 * 3600 * 1000;

impl PopupGate {
    pub fn new(window_ms: i64) -> PopupGate {
        PopupGate { window_ms, last_shown: HashMap::new(), silenced_until: HashMap::new() }
    }

    /// Whether this pop-up should be shown now; records it if so.
    pub fn admit(&mut self, tool: &str, kind: PopupKind, now_ms: i64) -> bool {
        if kind == PopupKind::Warn && self.silenced_until.get(tool).is_some_and(|&until| now_ms < until) {
            return false;
        }
        let key = (tool.to_owned(), kind);
        if let Some(&last) = self.last_shown.get(&key)
            && now_ms - last < self.window_ms
        {
            return false;
        }
        self.last_shown.insert(key, now_ms);
        true
    }

    /// Silences warnings (never blocks) for a tool for a day.
    pub fn silence(&mut self, tool: &str, now_ms: i64) {
        self.silenced_until.insert(tool.to_owned(), now_ms + SILENCE_MS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_api::Outcome;
    use warden_policy::Action;

    fn event(outcome: Outcome, reason: &str) -> LaunchEvent {
        LaunchEvent {
            id: "e1".into(),
            at_ms: 0,
            pid: 7,
            user: None,
            exe: "/home/u/.local/share/claude/versions/2.1.37".into(),
            argv: vec![],
            cwd: Some("/home/u/src/app".into()),
            tool: Some("claude-code".into()),
            action: Action::Block,
            outcome,
            rule: "tool:claude-code".into(),
            reason: reason.into(),
            exception: None,
            policy_version: None,
            source: "test".into(),
        }
    }

    #[test]
    fn block_popup_names_tool_policy_reason_and_actions() {
        let policy = Policy::embedded();
        let popup = popup_for(&event(Outcome::Killed, "It sends code out. More text here."), "Claude Code", &policy)
            .expect("a block has a pop-up");
        assert_eq!(popup.kind, PopupKind::Block);
        assert_eq!(popup.title, "Claude Code was blocked: company policy requires it");
        assert_eq!(popup.body, "It sends code out. Use Internal Assistant instead.");
        let keys: Vec<_> = popup.actions.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["default", "request-exception", "details"]);
        assert_eq!(popup.actions[0].1, "Open Internal Assistant");
    }

    #[test]
    fn warn_popup_continues_and_offers_silence() {
        let policy = Policy::embedded();
        let popup = popup_for(&event(Outcome::Warned, "Not approved"), "Cursor", &policy).unwrap();
        assert_eq!(popup.kind, PopupKind::Warn);
        assert!(popup.title.contains("keeps running"));
        assert_eq!(popup.body, "Not approved. Use Internal Assistant instead.");
        assert_eq!(popup.actions.last().unwrap().0, "silence-day");
        assert_eq!(popup_for(&event(Outcome::Allowed, "ok"), "Cursor", &policy), None);
    }

    #[test]
    fn choices_round_trip_through_their_keys() {
        let policy = Policy::embedded();
        let popup = popup_for(&event(Outcome::Warned, "x"), "Cursor", &policy).unwrap();
        let choices: Vec<_> = popup.actions.iter().map(|(k, _)| PopupChoice::from_key(k)).collect();
        assert_eq!(
            choices,
            [
                Some(PopupChoice::OpenAssistant),
                Some(PopupChoice::RequestException),
                Some(PopupChoice::Details),
                Some(PopupChoice::SilenceForADay)
            ]
        );
        assert_eq!(PopupChoice::from_key("__closed"), None);
    }

    fn connect(outcome: ConnectOutcome, tool: Option<&str>, exe: &str, pid: u32) -> ConnectEvent {
        ConnectEvent {
            id: format!("c{pid}"),
            at_ms: 0,
            pid,
            uid: 1000,
            user: Some("dev".into()),
            exe: Some(exe.into()),
            tool: tool.map(str::to_owned),
            host: "api.anthropic.com".into(),
            address: "127.0.0.21".into(),
            port: 443,
            protocol: "tcp".into(),
            action: warden_policy::Action::Block,
            outcome,
            rule: "destination".into(),
            reason: "Claude Code sends source code outside the company network. More at the wiki.".into(),
            count: 1,
        }
    }

    #[test]
    fn a_blocked_connection_names_the_process_and_destination_and_offers_the_assistant_first() {
        let policy = Policy::embedded();
        let event = connect(ConnectOutcome::Blocked, Some("claude-code"), "/usr/bin/node", 10);
        let popup = connect_popup_for(&event, Some("Claude Code"), &policy).unwrap();
        assert_eq!(popup.title, "Claude Code's connection to api.anthropic.com was blocked");
        assert_eq!(
            popup.body,
            "Claude Code sends source code outside the company network. Use Internal Assistant instead."
        );
        let keys: Vec<&str> = popup.actions.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, [action_key::OPEN_ASSISTANT, action_key::REQUEST_EXCEPTION, action_key::DETAILS]);
        // A program the catalog does not know is named by its file; there is no tool to request.
        let renamed = connect(ConnectOutcome::Blocked, None, "/home/dev/bin/helper", 11);
        let popup = connect_popup_for(&renamed, None, &policy).unwrap();
        assert_eq!(popup.title, "helper's connection to api.anthropic.com was blocked");
        assert!(!popup.actions.iter().any(|(k, _)| *k == action_key::REQUEST_EXCEPTION));
        for quiet in [ConnectOutcome::Allowed, ConnectOutcome::WouldBlock] {
            assert!(connect_popup_for(&connect(quiet, None, "/x", 12), None, &policy).is_none());
        }
    }

    #[test]
    fn repeated_connections_of_one_process_raise_one_popup() {
        let mut gate = PopupGate::new(60_000);
        let first = connect(ConnectOutcome::Blocked, None, "/usr/bin/python3", 20);
        let again = connect(ConnectOutcome::Blocked, None, "/usr/bin/python3", 20);
        let other = connect(ConnectOutcome::Blocked, None, "/usr/bin/python3", 21);
        assert!(gate.admit(&connect_gate_key(&first), PopupKind::Block, 0));
        assert!(!gate.admit(&connect_gate_key(&again), PopupKind::Block, 500));
        assert!(gate.admit(&connect_gate_key(&other), PopupKind::Block, 600), "another process gets its own");
    }

    #[test]
    fn gate_shows_one_per_tool_and_kind_per_window_and_honours_silence() {
        let mut gate = PopupGate::new(10_000);
        // (tool, kind, at, expected)
        let steps = [
            ("claude-code", PopupKind::Block, 0, true),
            ("claude-code", PopupKind::Block, 500, false),
            ("cursor", PopupKind::Warn, 600, true),
            ("claude-code", PopupKind::Warn, 700, true),
            ("claude-code", PopupKind::Block, 10_001, true),
            ("cursor", PopupKind::Warn, 9_000, false),
        ];
        for (tool, kind, at, expected) in steps {
            assert_eq!(gate.admit(tool, kind, at), expected, "{tool} {kind:?} at {at}");
        }
        gate.silence("cursor", 20_000);
        assert!(!gate.admit("cursor", PopupKind::Warn, 40_000));
        assert!(gate.admit("cursor", PopupKind::Block, 40_000), "silence never hides a block");
        assert!(!gate.admit("cursor", PopupKind::Warn, 20_000 + SILENCE_MS - 1));
        assert!(gate.admit("cursor", PopupKind::Warn, 20_000 + SILENCE_MS));
    }
}
