//! Exceptions: a time-boxed, optionally directory-scoped permission for one person and tool,
//! and the one definition of a valid scope (a canonical absolute directory path).

use crate::Timestamp;
use crate::path::path_has_prefix;
use serde::{Deserialize, Serialize};

/// The longest scope accepted, in bytes (Linux's `PATH_MAX`).
pub const MAX_SCOPE_BYTES: usize = 4096;

/// An approved exception, as delivered to a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
