//! Exceptions: a time-boxed, optionally directory-scoped permission for one person and tool,
//! and the one definition of a valid scope (a canonical absolute directory path).

use crate::Timestamp;
use crate::path::path_has_prefix;
use serde::{Deserialize, Serialize};

/// The longest scope accepted, in bytes (Linux's `PATH_MAX`).
pub const MAX_SCOPE_BYTES: usize = 4096;

/// An approved exception, as delivered to a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Exception {
    pub id: String,
    /// The person it was granted to: the account the requesting device is bound to
    /// (`dev@corp.example`), matched against [`crate::ProcessFacts::person`].
    pub user: String,
    /// Catalog id of the tool.
    pub tool: String,
    /// A directory (a repository) the exception is limited to, as a canonical absolute path
    /// (see [`check_scope`]); `None` means everywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Seconds since the epoch; the window is `starts_at <= now < expires_at`.
    pub starts_at: Timestamp,
    pub expires_at: Timestamp,
    /// Conditions the approver attached: a launch that does not meet them is not covered.
    #[serde(default, skip_serializing_if = "Guardrails::is_empty")]
    pub guardrails: Guardrails,
}

/// The most MCP servers one exception's [`Guardrails::mcp_servers`] may name.
pub const MAX_GUARDRAIL_MCP_SERVERS: usize = 32;

/// Conditions an approver attaches to an exception (`"guardrails"` in the signed list and the
/// approval): enforced at launch by [`crate::evaluate`] (a launch that breaks one is decided as
/// if there were no exception, with a `guardrail` rule naming it), and, where the vendor's
/// managed file is machine-wide, written into it while such an exception is in force
/// ([`crate::render_controls`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Guardrails {
    /// No risky mode (bypass permissions, YOLO, no sandbox, …) under this exception, whatever
    /// the policy's `[[risky_flags]]` say.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_risky_modes: bool,
    /// Only through the company's endpoint or masking gateway: the tool's API base URL
    /// (`ANTHROPIC_BASE_URL`, `OPENAI_BASE_URL`, … as the catalog names them) must be one of the
    /// policy's sanctioned destinations (`[assistant] api_url`, `gateway_url`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub through_gateway: bool,
    /// Only these MCP servers, by name (an `--mcp-config` naming another is not covered, and the
    /// vendor's allow-list names just these while the exception is in force); `None`: as the
    /// policy's `[mcp]` says. At most [`MAX_GUARDRAIL_MCP_SERVERS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_servers: Option<Vec<String>>,
}

impl Guardrails {
    pub fn is_empty(&self) -> bool {
        *self == Guardrails::default()
    }

    /// The conditions in words, for pop-ups and the approver's page: `only through the company
    /// gateway; no risky modes; MCP servers: docs, jira`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.through_gateway {
            parts.push("only through the company gateway".to_owned());
        }
        if self.no_risky_modes {
            parts.push("no risky modes".to_owned());
        }
        match self.mcp_servers.as_deref() {
            Some([]) => parts.push("no MCP servers".to_owned()),
            Some(names) => parts.push(format!("MCP servers: {}", names.join(", "))),
            None => {}
        }
        parts.join("; ")
    }
}

/// Why guardrails cannot be attached as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardrailError {
    #[error("at most {MAX_GUARDRAIL_MCP_SERVERS} MCP servers may be named (got {0})")]
    TooManyMcpServers(usize),
    #[error("MCP server names are 1 to 128 characters without control characters, not {0:?}")]
    BadMcpServerName(String),
    #[error("{0:?} is named twice")]
    DuplicateMcpServer(String),
}

/// Checks guardrails before they are stored: the one rule for the server (on approval) and the
/// approver's page.
pub fn check_guardrails(guardrails: &Guardrails) -> Result<(), GuardrailError> {
    let Some(names) = &guardrails.mcp_servers else { return Ok(()) };
    if names.len() > MAX_GUARDRAIL_MCP_SERVERS {
        return Err(GuardrailError::TooManyMcpServers(names.len()));
    }
    for (i, name) in names.iter().enumerate() {
        if name.is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
            return Err(GuardrailError::BadMcpServerName(name.clone()));
        }
        if names[..i].contains(name) {
            return Err(GuardrailError::DuplicateMcpServer(name.clone()));
        }
    }
    Ok(())
}

impl Exception {
    /// Whether this exception covers a launch of `tool` by `person` (the account, see
    /// [`crate::ProcessFacts::person`]) in `cwd` at `now`. Without a known person or (for
    /// scoped exceptions) a known directory, it does not. `cwd` is compared as given: the
    /// OS edge reports it canonical (the kernel resolves `/proc/PID/cwd`), and scopes are
    /// canonical by [`check_scope`], so a symlink or `..` cannot make the two differ.
    pub fn covers(&self, tool: &str, person: Option<&str>, cwd: Option<&str>, now: Timestamp) -> bool {
        self.tool == tool
            && person == Some(self.user.as_str())
            && self.starts_at <= now
            && now < self.expires_at
            && match &self.scope {
                None => true,
                Some(scope) => cwd.is_some_and(|cwd| path_has_prefix(cwd, scope)),
            }
    }
}

/// Why a scope is not a canonical absolute path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("scope is empty; give a directory, or no scope for everywhere")]
    Empty,
    #[error("scope must be at most {MAX_SCOPE_BYTES} bytes (has {0})")]
    TooLong(usize),
    #[error("scope must not contain control characters")]
    ControlCharacter,
    #[error("scope must be an absolute path (`/home/dev/src/app` or `C:\\src\\app`), not {0:?}")]
    NotAbsolute(String),
    #[error("scope must be canonical: no `.` or `..` components (resolve {0:?} first)")]
    DotComponent(String),
    #[error("scope must be canonical: no empty components (`//`) in {0:?}")]
    EmptyComponent(String),
    #[error("scope must be canonical: no trailing separator in {0:?}")]
    TrailingSeparator(String),
}

/// Checks that `scope` is a canonical absolute directory path: the one rule for the device
/// (before it files a request), the server (before it stores one) and the tray's form.
///
/// Accepted shapes: a POSIX path from the root (`/home/dev/src/app`, or `/` alone), a
/// Windows drive path (`C:\src\app`, `C:/src/app`, or `C:\` alone) and a UNC path
/// (`\\server\share\app`). Refused: relative paths (`src/app`, `../x`, `~/x`, `C:app`,
/// `\app`), `.` and `..` components, empty components (`/a//b`), a trailing separator
/// (`/a/`), control characters, and more than [`MAX_SCOPE_BYTES`] bytes. Both `/` and `\`
/// separate components, as in [`crate::normalize_path`]. The check is textual: whether the
/// directory exists, and what its symlinks resolve to, is for the device to settle (it
/// canonicalizes against the file system when the request is made).
pub fn check_scope(scope: &str) -> Result<(), ScopeError> {
    if scope.is_empty() {
        return Err(ScopeError::Empty);
    }
    if scope.len() > MAX_SCOPE_BYTES {
        return Err(ScopeError::TooLong(scope.len()));
    }
    if scope.chars().any(char::is_control) {
        return Err(ScopeError::ControlCharacter);
    }
    let is_separator = |b: u8| b == b'/' || b == b'\\';
    let bytes = scope.as_bytes();
    // The root, and what follows it.
    let rest = if bytes[0] == b'/' {
        &scope[1..]
    } else if bytes.len() >= 3 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' && is_separator(bytes[2]) {
        &scope[3..]
    } else if let Some(unc) = scope.strip_prefix(r"\\") {
        // `\\server\share` is the root of a UNC path; both parts must be there.
        let mut parts = unc.splitn(3, '\\');
        let (server, share) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if server.is_empty() || share.is_empty() {
            return Err(ScopeError::NotAbsolute(scope.to_owned()));
        }
        &unc[server.len() + 1..]
    } else {
        return Err(ScopeError::NotAbsolute(scope.to_owned()));
    };
    if rest.is_empty() {
        return Ok(());
    }
    if rest.ends_with(['/', '\\']) {
        return Err(ScopeError::TrailingSeparator(scope.to_owned()));
    }
    for component in rest.split(['/', '\\']) {
        match component {
            "" => return Err(ScopeError::EmptyComponent(scope.to_owned())),
            "." | ".." => return Err(ScopeError::DotComponent(scope.to_owned())),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guardrails_are_checked_before_they_are_stored() {
        let names = |list: &[&str]| Guardrails {
            mcp_servers: Some(list.iter().map(|s| s.to_string()).collect()),
            ..Guardrails::default()
        };
        assert_eq!(check_guardrails(&Guardrails::default()), Ok(()));
        assert_eq!(check_guardrails(&names(&[])), Ok(()), "an empty list: no MCP servers at all");
        assert_eq!(check_guardrails(&names(&["docs", "jira"])), Ok(()));
        assert_eq!(check_guardrails(&names(&[""])), Err(GuardrailError::BadMcpServerName(String::new())));
        assert_eq!(check_guardrails(&names(&["a\nb"])), Err(GuardrailError::BadMcpServerName("a\nb".into())));
        assert_eq!(check_guardrails(&names(&["docs", "docs"])), Err(GuardrailError::DuplicateMcpServer("docs".into())));
        let many: Vec<String> = (0..=MAX_GUARDRAIL_MCP_SERVERS).map(|i| format!("s{i}")).collect();
        let many = Guardrails { mcp_servers: Some(many), ..Guardrails::default() };
        assert_eq!(check_guardrails(&many), Err(GuardrailError::TooManyMcpServers(MAX_GUARDRAIL_MCP_SERVERS + 1)));
    }

    #[test]
    fn guardrails_read_as_words_and_stay_off_the_wire_when_empty() {
        let all = Guardrails { no_risky_modes: true, through_gateway: true, mcp_servers: Some(vec!["docs".into()]) };
        assert_eq!(all.describe(), "only through the company gateway; no risky modes; MCP servers: docs");
        let none = Guardrails { mcp_servers: Some(Vec::new()), ..Guardrails::default() };
        assert_eq!(none.describe(), "no MCP servers");
        let exception = Exception {
            id: "exr_1".into(),
            user: "dev".into(),
            tool: "claude-code".into(),
            scope: None,
            starts_at: 0,
            expires_at: 1,
            guardrails: Guardrails::default(),
        };
        let wire = serde_json::to_string(&exception).unwrap();
        assert!(!wire.contains("guardrails"), "{wire}");
        let back: Exception = serde_json::from_str(&wire).unwrap();
        assert_eq!(back, exception);
        let with: Exception = serde_json::from_str(
            r#"{"id":"exr_1","user":"dev","tool":"claude-code","starts_at":0,"expires_at":1,"guardrails":{"through_gateway":true}}"#,
        )
        .unwrap();
        assert!(with.guardrails.through_gateway);
        let unknown = r#"{"id":"e","user":"d","tool":"t","starts_at":0,"expires_at":1,"guardrails":{"via":"x"}}"#;
        assert!(serde_json::from_str::<Exception>(unknown).is_err(), "unknown conditions are refused, not dropped");
    }
}
