//! When to tell the developer that an approved exception is about to expire, and that it
//! has: once each per exception. Pure: the caller passes the exceptions, what was already
//! shown and the time; the inbox (`inbox.rs`) shows the pop-ups.

use std::collections::HashSet;

/// How long before the end the "expires at" notice comes.
pub const LEAD_MS: i64 = 10 * 60 * 1000;

/// How long after the end an "has expired" notice is still worth showing (so starting the
/// tray does not replay notices for exceptions that ended long ago).
pub const LATE_MS: i64 = 60 * 60 * 1000;

/// The two notices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoticeKind {
    ExpiresSoon,
    Expired,
}

/// An approved exception's end, as the server granted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantedUntil {
    pub request_id: String,
    pub tool_name: String,
    pub expires_at_ms: i64,
    /// The conditions its approver attached, in words (`Guardrails::describe`); empty for none.
    pub conditions: String,
}

/// The notice for a launch an exception with conditions allowed: the developer is told on what
/// terms the tool runs ("Claude Code runs under your exception: only through the company
/// gateway; no risky modes"). `None` for other launches and for exceptions without conditions.
pub fn conditions_notice(event: &warden_api::LaunchEvent, granted: &[GrantedUntil]) -> Option<(String, String)> {
    let id = event.exception.as_deref()?;
    let grant = granted.iter().find(|g| g.request_id == id && !g.conditions.is_empty())?;
    Some((
        format!("{} runs under your exception", grant.tool_name),
        format!("Approved on these terms: {}. A launch outside them is blocked.", grant.conditions),
    ))
}

/// One notice to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub request_id: String,
    pub kind: NoticeKind,
    pub tool_name: String,
    pub expires_at_ms: i64,
}

impl Notice {
    /// The pop-up's title and body; `clock` formats the end time in local time ("14:30").
    pub fn text(&self, clock: impl Fn(i64) -> String) -> (String, String) {
        match self.kind {
            NoticeKind::ExpiresSoon => (
                "Exception expiring soon".into(),
                format!("Your exception for {} expires at {}", self.tool_name, clock(self.expires_at_ms)),
            ),
            NoticeKind::Expired => (
                "Exception expired".into(),
                format!("Your exception for {} has expired; {} is blocked again", self.tool_name, self.tool_name),
            ),
        }
    }
}

/// The notices due at `now_ms` that were not shown yet. Only one per exception per call: an
/// exception already past its end gets "has expired", not a late "expires soon" as well.
pub fn due(granted: &[GrantedUntil], shown: &HashSet<(String, NoticeKind)>, now_ms: i64) -> Vec<Notice> {
    let mut notices = Vec::new();
    for grant in granted {
        let until = grant.expires_at_ms - now_ms;
        let kind = if until <= 0 && -until <= LATE_MS {
            NoticeKind::Expired
        } else if until > 0 && until <= LEAD_MS {
            NoticeKind::ExpiresSoon
        } else {
            continue;
        };
        if shown.contains(&(grant.request_id.clone(), kind)) {
            continue;
        }
        notices.push(Notice {
            request_id: grant.request_id.clone(),
            kind,
            tool_name: grant.tool_name.clone(),
            expires_at_ms: grant.expires_at_ms,
        });
    }
    notices
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;

    /// (time, notices already shown, the notice due).
    type Case = (i64, Vec<(String, NoticeKind)>, Option<NoticeKind>);

    #[test]
    fn each_notice_once_at_its_time() {
        let end = 1_000 * MINUTE;
        let grant = GrantedUntil {
            request_id: "r1".into(),
            tool_name: "Claude Code".into(),
            expires_at_ms: end,
            conditions: String::new(),
        };
        let soon = ("r1".to_owned(), NoticeKind::ExpiresSoon);
        let gone = ("r1".to_owned(), NoticeKind::Expired);
        let cases: Vec<Case> = vec![
            (end - 11 * MINUTE, vec![], None),
            (end - 10 * MINUTE - 1, vec![], None),
            (end - 10 * MINUTE, vec![], Some(NoticeKind::ExpiresSoon)),
            (end - MINUTE, vec![], Some(NoticeKind::ExpiresSoon)),
            (end - MINUTE, vec![soon.clone()], None),
            (end, vec![soon.clone()], Some(NoticeKind::Expired)),
            (end, vec![], Some(NoticeKind::Expired)),
            (end + 5 * MINUTE, vec![soon.clone()], Some(NoticeKind::Expired)),
            (end + 5 * MINUTE, vec![soon.clone(), gone.clone()], None),
            (end + LATE_MS, vec![], Some(NoticeKind::Expired)),
            (end + LATE_MS + 1, vec![], None),
        ];
        for (now, shown, want) in cases {
            let shown: HashSet<_> = shown.into_iter().collect();
            let got: Vec<NoticeKind> = due(std::slice::from_ref(&grant), &shown, now).iter().map(|n| n.kind).collect();
            assert_eq!(got, want.into_iter().collect::<Vec<_>>(), "at end{:+} min", (now - end) / MINUTE);
        }
    }

    #[test]
    fn notice_words() {
        let notice = Notice {
            request_id: "r".into(),
            kind: NoticeKind::ExpiresSoon,
            tool_name: "Claude Code".into(),
            expires_at_ms: 7,
        };
        let clock = |ms: i64| if ms == 7 { "14:30".to_owned() } else { "?".to_owned() };
        assert_eq!(notice.text(clock).1, "Your exception for Claude Code expires at 14:30");
        let expired = Notice { kind: NoticeKind::Expired, ..notice };
        assert_eq!(expired.text(clock).1, "Your exception for Claude Code has expired; Claude Code is blocked again");
    }

    #[test]
    fn a_launch_under_an_exception_with_conditions_is_told_the_terms() {
        let grant = |conditions: &str| GrantedUntil {
            request_id: "exr_1".into(),
            tool_name: "Claude Code".into(),
            expires_at_ms: 1,
            conditions: conditions.into(),
        };
        let mut event: warden_api::LaunchEvent = serde_json::from_value(serde_json::json!({
            "id": "e1", "at_ms": 0, "pid": 7, "exe": "/x/claude", "argv": [], "tool": "claude-code",
            "action": "allow", "outcome": "allowed", "rule": "exception:exr_1",
            "reason": "allowed by exception exr_1", "exception": "exr_1", "source": "test"
        }))
        .unwrap();
        let (title, body) = conditions_notice(&event, &[grant("only through the company gateway")]).unwrap();
        assert_eq!(title, "Claude Code runs under your exception");
        assert_eq!(
            body,
            "Approved on these terms: only through the company gateway. A launch outside them is blocked."
        );
        assert_eq!(conditions_notice(&event, &[grant("")]), None, "no conditions: nothing to say");
        event.exception = None;
        assert_eq!(conditions_notice(&event, &[grant("no risky modes")]), None);
    }
}
