//! Exceptions: a time-boxed, optionally directory-scoped permission for one user and tool.

use crate::Timestamp;
use crate::path::path_has_prefix;
use serde::{Deserialize, Serialize};

/// An approved exception, as delivered to a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exception {
    pub id: String,
    /// Login name of the developer it was granted to.
    pub user: String,
    /// Catalog id of the tool.
    pub tool: String,
    /// A directory (a repository) the exception is limited to; `None` means everywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Seconds since the epoch; the window is `starts_at <= now < expires_at`.
    pub starts_at: Timestamp,
    pub expires_at: Timestamp,
}

impl Exception {
    /// Whether this exception covers a launch of `tool` by `user` in `cwd` at `now`.
    /// Without a known user or (for scoped exceptions) a known directory, it does not.
    pub fn covers(&self, tool: &str, user: Option<&str>, cwd: Option<&str>, now: Timestamp) -> bool {
        self.tool == tool
            && user == Some(self.user.as_str())
            && self.starts_at <= now
            && now < self.expires_at
            && match &self.scope {
                None => true,
                Some(scope) => cwd.is_some_and(|cwd| path_has_prefix(cwd, scope)),
            }
    }
}
