//! The facts about one process launch that a decision is made from.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Environment variables worth collecting from a process: markers that AI tools set in
/// the shells and children they spawn. The OS edge reads only these (never the whole
/// environment, which may hold secrets).
pub const ENV_MARKERS: &[&str] = &[
    "CLAUDECODE",
    "CLAUDE_CODE_ENTRYPOINT",
    "GEMINI_CLI",
    "GEMINI_CLI_NO_RELAUNCH",
    "QWEN_CODE",
    "CODEX_SANDBOX",
    "CODEX_HOME",
    "CURSOR_TRACE_ID",
    "ELECTRON_RUN_AS_NODE",
    "TERM_PROGRAM",
    // Environment equivalents of risky modes (see `[[tool.setting]] env` in the catalog).
    "AIDER_YES_ALWAYS",
    "COPILOT_ALLOW_ALL",
];

/// What is known about a process at the moment it started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessFacts {
    /// Process id, when the launch is a live process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The resolved executable (`/proc/PID/exe`, not argv\[0\]), in the OS's own spelling.
    pub exe: String,
    /// The full argument vector, argv\[0\] included.
    #[serde(default)]
    pub argv: Vec<String>,
    /// Selected environment markers (see [`ENV_MARKERS`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory of the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Login name of the user the process runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The interpreter's script with symlinks resolved, when the OS edge could resolve it
    /// (npm installs run `node /usr/local/bin/claude`, a symlink into the package).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// Ancestors, nearest (the parent) first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ancestors: Vec<AncestorFacts>,
    /// Settings files the launch names on its command line (`claude --settings ./s.json`),
    /// as the OS edge read them (see [`Catalog::settings_files`](crate::Catalog::settings_files)).
    /// A named file missing here counts as unreadable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settings_files: Vec<SettingsFile>,
}

/// A settings file named on a launch's command line, as read by the OS edge.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsFile {
    /// The path exactly as written on the command line (relative to the launch's cwd).
    pub path: String,
    /// The whole file, when it was a regular UTF-8 file of at most
    /// [`MAX_SETTINGS_FILE_BYTES`](crate::MAX_SETTINGS_FILE_BYTES).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Why there is no content ("not found", "larger than 65536 bytes", "not a regular file").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

impl SettingsFile {
    /// The file's text, if it was read.
    pub fn text(&self) -> Option<&str> {
        self.content.as_deref()
    }
}

/// An ancestor of a launch: enough to recognise that it already is the same tool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AncestorFacts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    pub exe: String,
    #[serde(default)]
    pub argv: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
}

impl ProcessFacts {
    /// Facts for an executable and its argv, with nothing else known.
    pub fn new(exe: impl Into<String>, argv: Vec<String>) -> Self {
        ProcessFacts { exe: exe.into(), argv, ..ProcessFacts::default() }
    }
}
