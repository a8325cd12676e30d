//! The facts about one process launch that a decision is made from.

use crate::content::ContentFacts;
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
    // Launches that step around the vendor controls Warden writes (see `[tool.controls]` and
    // `env_values` in the catalog): API base URLs and redirected system settings files. None of
    // them holds a secret (API keys are never collected).
    "OPENAI_BASE_URL",
    "ANTHROPIC_BASE_URL",
    "GOOGLE_GEMINI_BASE_URL",
    "GEMINI_CLI_SYSTEM_SETTINGS_PATH",
    "QWEN_CODE_SYSTEM_SETTINGS_PATH",
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
    /// The account that user is bound to on this device (the device's owner account, for
    /// the local users bound to it at enrollment), when the OS edge knows one. Exceptions
    /// are granted to accounts; see [`ProcessFacts::person`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The interpreter's script with symlinks resolved, when the OS edge could resolve it
    /// (npm installs run `node /usr/local/bin/claude`, a symlink into the package).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// npm packages the interpreter's code belongs to: the `name` of the nearest
    /// `package.json` above the script and above each file it preloads (`node -r`,
    /// `--import`), read by the OS edge. A copied package folder keeps its name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    /// Python distributions the interpreter's script belongs to: the distribution whose
    /// `*.dist-info/RECORD` lists the (resolved) script, an installed entry point or a module
    /// file, read by the OS edge. A copied virtualenv or a renamed entry point keeps it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distributions: Vec<String>,
    /// What the program file's content says (fingerprint, SHA-256), when the OS edge read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<ContentFacts>,
    /// The executable is the dynamic loader by its content ([`ContentFacts::loader`]), found by
    /// the OS edge: a renamed copy runs its first non-option argument like `ld.so` does.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exe_is_loader: bool,
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

/// Which account each local user of a device is bound to, by uid: the device's owner account
/// for the local users bound to it at enrollment (the enrollment record keeps the binding;
/// the OS edge looks a launch's uid up here and puts the answer in [`ProcessFacts::account`]).
/// A uid bound to nothing has no account, and its launches match no account's exception.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accounts {
    by_uid: BTreeMap<u32, String>,
}

impl Accounts {
    /// Binds local user `uid` to `account` (a later binding of the same uid replaces it).
    pub fn bind(&mut self, uid: u32, account: impl Into<String>) {
        self.by_uid.insert(uid, account.into());
    }

    /// The account `uid` is bound to, if any.
    pub fn account_of(&self, uid: u32) -> Option<&str> {
        self.by_uid.get(&uid).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.by_uid.is_empty()
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

    /// The name the launch is read by: `ld.so` for a loader known by its content (so a
    /// renamed copy runs its program as the loader does), else the executable.
    pub fn interpreter_name(&self) -> &str {
        if self.exe_is_loader { "ld.so" } else { &self.exe }
    }

    /// Who launched the process, as exceptions and events name people: the bound account
    /// when there is one, else the login name (a device enrolled before accounts were bound,
    /// or a local user no account is bound to, who then matches no account's exception).
    pub fn person(&self) -> Option<&str> {
        self.account.as_deref().or(self.user.as_deref())
    }
}
