//! The policy an organisation writes: what happens to each AI tool, the sanctioned
//! assistant, risky flags and the limits of exceptions.
//!
//! Admins write TOML; the wire carries the same structure as JSON. Both are checked
//! the same way, and every error names the file, line and column.

use crate::catalog::{Catalog, CompileProblem, ToolSpec};
use crate::masking::Masking;
use crate::mcp::McpPolicy;
use crate::network::NetworkPolicy;
use crate::origin::Origin;
use crate::source::SourceError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The policy Warden uses until an admin's policy arrives.
pub const EMBEDDED_POLICY: &str = include_str!("default-policy.toml");

/// Policy errors name the file, line and column.
pub type PolicyError = SourceError;

/// What happens to a launch. Ordered: `Allow < Warn < Block`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Warn,
    Block,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Warn => "warn",
            Action::Block => "block",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `enforce` acts on verdicts; `monitor` only reports what enforce would have done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Enforce,
    Monitor,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Enforce => "enforce",
            Mode::Monitor => "monitor",
        })
    }
}

/// The internal assistant every warning and block offers instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assistant {
    /// Shown on buttons: "Open ‹name›".
    pub name: String,
    /// Opened in the browser.
    pub url: String,
    /// Optionally run instead of opening the URL, in the blocked tool's working directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// The catalog id of the assistant's own client, which is always allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The assistant's model API (OpenAI- or Anthropic-compatible base URL ending in `/v1`), which
    /// `warden gateway` forwards masked requests to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// The model the assistant's client is pinned to (Qwen Code's `model.name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The local masking gateway in front of `api_url` (`warden gateway`, e.g.
    /// `http://127.0.0.1:8788/v1`). When set, the sanctioned client is pinned to it instead of
    /// `api_url`; both are sanctioned destinations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_url: Option<String>,
}

/// What happens to one tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolRule {
    pub action: Action,
    /// One sentence shown to the developer: why.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Where to read more (the policy page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// Risky launch modes that raise the action (never lower it), even under an exception and
/// for the sanctioned assistant.
///
/// A launch is read with its tool's own option grammar (see the catalog's `[tool.options]`),
/// so an option's value (`-p "explain --yolo"`) is never taken for an option and an
/// explicit off (`--yolo=false`) is off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagRule {
    /// Options, each matched when the tool's command line switches it on (`--yolo`,
    /// `--yolo=true`). A flag that is one spelling of a catalog risky mode stands for the
    /// whole mode: `--yolo` also catches `-y` and `--approval-mode=yolo`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    /// Every risky mode the catalog describes for the tool, in every spelling.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub catalog_modes: bool,
    pub action: Action,
    /// Tools the rule covers; empty means every recognised tool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// An admin's rule for one program file, known by the SHA-256 of its content (Santa's binary
/// rules): `allow` for a false positive or an in-house program, `block` (or `warn`) for a file
/// wherever it sits and whatever it is called. Admins write them as `[[binaries]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinaryRule {
    /// SHA-256 of the whole file: 64 lowercase hex digits (what `sha256sum` prints).
    pub sha256: String,
    pub action: Action,
    /// The catalog tool the file is (an in-house tool the policy's `[[catalog]]` adds, or a
    /// build of a known tool without a fingerprint): what events and messages name. Required
    /// for `warn` and `block`; an `allow` rule without one makes the file no AI tool at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// One sentence shown to the developer: why.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Limits on the exceptions developers may request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExceptionLimits {
    /// Longest exception an approver may grant, in seconds (TOML also takes "30d").
    #[serde(with = "duration_seconds")]
    pub max_duration: u64,
    /// Tools no exception may be requested for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub never: Vec<String>,
    /// When an exception expires or is revoked, how long the sessions it allowed may go on
    /// (after a pop-up) before they are stopped, in seconds (TOML also takes "5m"); 0 stops
    /// them at once. Default [`DEFAULT_EXCEPTION_GRACE`]; left out of the wire form when it
    /// is the default, so policies that do not set it are signed exactly as before.
    #[serde(default = "default_grace", skip_serializing_if = "is_default_grace", with = "duration_seconds")]
    pub grace: u64,
}

/// The grace period of a running session whose exception ended: 5 minutes.
pub const DEFAULT_EXCEPTION_GRACE: u64 = 5 * 60;

fn default_grace() -> u64 {
    DEFAULT_EXCEPTION_GRACE
}

fn is_default_grace(seconds: &u64) -> bool {
    *seconds == DEFAULT_EXCEPTION_GRACE
}

impl Default for ExceptionLimits {
    fn default() -> Self {
        ExceptionLimits { max_duration: 7 * 24 * 3600, never: Vec::new(), grace: DEFAULT_EXCEPTION_GRACE }
    }
}

/// What the tray app lets a developer do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrayPolicy {
    /// Whether the tray menu offers Quit.
    #[serde(default)]
    pub allow_quit: bool,
}

/// How enforcement behaves when it cannot decide in time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enforcement {
    /// With the pre-exec gate: deny (true) or allow (false) a launch whose decision misses its deadline.
    #[serde(default)]
    pub fail_closed: bool,
}

/// `[controls]`: what the vendor files Warden writes carry besides what the rest of the policy
/// implies (see `controls.rs` for every file and key).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Controls {
    /// Paths AI agents must not read or edit (Claude Code `permissions.deny` rules, written as
    /// `Read(PATH)` and `Edit(PATH)`; gitignore-style, `~/` for the home folder).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_paths: Vec<String>,
    /// Environment for every Claude Code session (its managed `env`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claude_env: BTreeMap<String, String>,
    /// Browser extensions (Chrome Web Store ids) that belong to a catalog tool, by tool id: when
    /// the tool is blocked, its extensions go into the browsers' `ExtensionInstallBlocklist`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub browser_extensions: BTreeMap<String, Vec<String>>,
    /// Write no vendor files at all (the policy still decides launches).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub off: bool,
}

/// A whole policy, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// A human name for this policy.
    pub name: String,
    #[serde(default)]
    pub mode: Mode,
    /// For recognised tools the policy does not list.
    pub default_action: Action,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub default_message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assistant: Option<Assistant>,
    #[serde(default)]
    pub tools: BTreeMap<String, ToolRule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub risky_flags: Vec<FlagRule>,
    #[serde(default)]
    pub exceptions: ExceptionLimits,
    #[serde(default)]
    pub tray: TrayPolicy,
    #[serde(default)]
    pub enforcement: Enforcement,
    /// Admin rules for single program files by their SHA-256 (see [`BinaryRule`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub binaries: Vec<BinaryRule>,
    /// Tools the organisation adds to (or replaces in) the embedded catalog.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub catalog: Vec<ToolSpec>,
    /// Company identifiers and extra rules for the masking gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masking: Option<Masking>,
    /// Network destinations beyond the catalog's hosts, and the proxies in use (see
    /// [`crate::Destinations`]). Left out of the wire form when empty, so policies without it
    /// are signed exactly as before.
    #[serde(default, skip_serializing_if = "NetworkPolicy::is_empty")]
    pub network: NetworkPolicy,
    /// Which MCP servers clients may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpPolicy>,
    /// Extras for the vendors' own managed files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controls: Option<Controls>,
    /// `[privacy]`: what of a launch leaves the device (see `crate::shareable_argv`).
    #[serde(default, skip_serializing_if = "Privacy::is_default")]
    pub privacy: Privacy,
}

/// `[privacy]` in the policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Privacy {
    /// Keep whole command lines in events (prompts, file names, tokens included). Off by default:
    /// a device keeps the program, the options the catalog knows and their setting values, and
    /// replaces the rest with `‹redacted›`.
    #[serde(default)]
    pub full_command_lines: bool,
}

impl Privacy {
    fn is_default(&self) -> bool {
        *self == Privacy::default()
    }
}

impl Policy {
    /// The policy compiled into Warden (see `default-policy.toml`).
    pub fn embedded() -> Policy {
        // Checked by this crate's tests, so this cannot fail at run time.
        Policy::from_toml("default-policy.toml (embedded)", EMBEDDED_POLICY).expect("the embedded policy is valid")
    }

    /// Parses and checks an admin's TOML file.
    pub fn from_toml(file: &str, text: &str) -> Result<Policy, PolicyError> {
        let policy: Policy = toml::from_str(text).map_err(|e| SourceError::from_toml(file, text, &e))?;
        policy.check().map_err(|problem| problem.locate(file, text))?;
        Ok(policy)
    }

    /// Parses and checks the wire form.
    pub fn from_json(file: &str, text: &str) -> Result<Policy, PolicyError> {
        let policy: Policy = serde_json::from_str(text).map_err(|e| SourceError::from_json(file, &e))?;
        policy.check().map_err(|problem| problem.locate(file, text))?;
        Ok(policy)
    }

    /// Reads a policy file by its extension: `.json` is the wire form, anything else TOML.
    pub fn parse(file: &str, text: &str) -> Result<Policy, PolicyError> {
        if file.ends_with(".json") { Policy::from_json(file, text) } else { Policy::from_toml(file, text) }
    }

    /// The wire form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a policy always serializes")
    }

    /// The admin's TOML form (what `warden policy show` prints).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a policy always serializes")
    }

    /// The catalog this policy decides over: the embedded one plus the policy's own tools.
    pub fn catalog(&self) -> Catalog {
        self.catalog_over(&Catalog::embedded())
    }

    /// [`Policy::catalog`] over a given base catalog.
    pub fn catalog_over(&self, base: &Catalog) -> Catalog {
        // `check` compiled the same extension, so this cannot fail for a parsed policy.
        base.extended(&self.catalog).expect("a checked policy's catalog compiles")
    }

    /// Every rule that names a tool must name one the catalog knows.
    fn check(&self) -> Result<(), CompileProblem> {
        let catalog = Catalog::embedded().extended(&self.catalog)?;
        let known = |id: &str| -> Result<(), CompileProblem> {
            match catalog.tool(id) {
                Some(_) => Ok(()),
                None => Err(CompileProblem {
                    needle: id.to_owned(),
                    message: format!("unknown tool id {id:?} (see `warden catalog`)"),
                }),
            }
        };
        for id in self.tools.keys() {
            known(id)?;
        }
        for rule in &self.risky_flags {
            rule.tools.iter().try_for_each(|id| known(id))?;
            let bad = rule.flags.iter().find(|f| !f.starts_with('-'));
            if (rule.flags.is_empty() && !rule.catalog_modes) || bad.is_some() {
                return Err(CompileProblem {
                    // The offending flag, else the (empty) list.
                    needle: bad.cloned().unwrap_or_else(|| "flags =".into()),
                    message:
                        "risky flags must be options starting with '-' (a non-empty list, unless catalog_modes = true)"
                            .into(),
                });
            }
        }
        self.exceptions.never.iter().try_for_each(|id| known(id))?;
        for (i, rule) in self.binaries.iter().enumerate() {
            if rule.sha256.len() != 64 || !rule.sha256.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                return Err(CompileProblem {
                    needle: rule.sha256.clone(),
                    message: format!(
                        "binaries: {:?} is not a SHA-256 (64 lowercase hex digits, as sha256sum prints it)",
                        rule.sha256
                    ),
                });
            }
            if self.binaries[..i].iter().any(|earlier| earlier.sha256 == rule.sha256) {
                return Err(CompileProblem {
                    needle: rule.sha256.clone(),
                    message: format!("binaries: {} is listed twice (one rule per file)", rule.sha256),
                });
            }
            match &rule.tool {
                Some(id) => known(id)?,
                None if rule.action > Action::Allow => {
                    return Err(CompileProblem {
                        needle: rule.sha256.clone(),
                        message: format!(
                            "binaries: the {} rule for {} must name the tool the file is (tool = \"…\", see `warden catalog`)",
                            rule.action, rule.sha256
                        ),
                    });
                }
                None => {}
            }
        }
        if let Some(assistant) = &self.assistant {
            if let Some(id) = &assistant.tool {
                known(id)?;
            }
            if !(assistant.url.starts_with("https://") || assistant.url.starts_with("http://")) {
                return Err(CompileProblem {
                    needle: assistant.url.clone(),
                    message: format!("assistant url {:?} must start with https:// or http://", assistant.url),
                });
            }
            for (key, url) in [("api_url", &assistant.api_url), ("gateway_url", &assistant.gateway_url)] {
                if let Some(url) = url
                    .as_ref()
                    .filter(|u| !(u.starts_with("https://") || u.starts_with("http://")) || Origin::of(u).is_none())
                {
                    return Err(CompileProblem {
                        needle: url.clone(),
                        message: format!("assistant {key} {url:?} must be an http:// or https:// URL with a host"),
                    });
                }
            }
        }
        if let Some(masking) = &self.masking {
            masking.check()?;
        }
        crate::network::check(&self.network, &catalog)?;
        if let Some(mcp) = &self.mcp {
            mcp.check()?;
        }
        if let Some(controls) = &self.controls {
            for (id, extensions) in &controls.browser_extensions {
                known(id)?;
                // Chrome Web Store ids: 32 letters a–p.
                if let Some(bad) =
                    extensions.iter().find(|e| e.len() != 32 || !e.bytes().all(|b| (b'a'..=b'p').contains(&b)))
                {
                    return Err(CompileProblem {
                        needle: bad.clone(),
                        message: format!("browser extension id {bad:?} must be 32 letters a-p (a Chrome Web Store id)"),
                    });
                }
            }
        }
        if self.exceptions.max_duration == 0 {
            return Err(CompileProblem {
                needle: "max_duration".into(),
                message: "exceptions.max_duration must be longer than zero".into(),
            });
        }
        Ok(())
    }

    /// The rule for a tool, if the policy lists it.
    pub fn tool_rule(&self, id: &str) -> Option<&ToolRule> {
        self.tools.get(id)
    }

    /// The admin's rule for a file with this SHA-256, if there is one.
    pub fn binary_rule(&self, sha256: &str) -> Option<&BinaryRule> {
        self.binaries.iter().find(|rule| rule.sha256 == sha256)
    }

    /// The sanctioned destinations, defined once: the assistant's model API and the local
    /// masking gateway in front of it. The sanctioned client must talk only to these.
    pub fn sanctioned_destinations(&self) -> Vec<&str> {
        let Some(assistant) = &self.assistant else { return Vec::new() };
        assistant.api_url.iter().chain(&assistant.gateway_url).map(String::as_str).collect()
    }

    /// Whether `url` is one of [`Policy::sanctioned_destinations`] (same scheme, host and port).
    pub fn is_sanctioned_url(&self, url: &str) -> bool {
        let Some(origin) = Origin::of(url) else { return false };
        self.sanctioned_destinations().into_iter().any(|d| Origin::of(d).as_ref() == Some(&origin))
    }

    /// Whether `id` is the sanctioned assistant's own client.
    pub fn is_assistant(&self, id: &str) -> bool {
        self.assistant.as_ref().and_then(|a| a.tool.as_deref()) == Some(id)
    }
}

/// Durations as whole seconds on the wire; TOML may also write "8h", "30d".
mod duration_seconds {
    use serde::{Deserialize, Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(seconds: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(*seconds)
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Seconds(u64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        match Written::deserialize(deserializer)? {
            Written::Seconds(seconds) => Ok(seconds),
            Written::Text(text) => humantime::parse_duration(&text).map(|d| d.as_secs()).map_err(|e| {
                de::Error::custom(format!("invalid duration {text:?} ({e}); write e.g. \"8h\" or \"30d\""))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_policy_mirrors_the_situation_warden_exists_for() {
        let policy = Policy::embedded();
        assert_eq!(policy.tool_rule("claude-code").map(|r| r.action), Some(Action::Block));
        assert!(policy.is_assistant("qwen-code"));
        assert_eq!(policy.default_action, Action::Warn);
    }

    #[test]
    fn exception_grace_defaults_to_five_minutes_and_takes_durations() {
        assert_eq!(Policy::embedded().exceptions.grace, 300);
        let with = |grace: &str| {
            Policy::from_toml(
                "p.toml",
                &format!(
                    "name = \"g\"\ndefault_action = \"warn\"\n[exceptions]\nmax_duration = \"1d\"\ngrace = {grace}\n"
                ),
            )
        };
        assert_eq!(with("\"1s\"").unwrap().exceptions.grace, 1);
        assert_eq!(with("\"2m\"").unwrap().exceptions.grace, 120);
        assert_eq!(with("0").unwrap().exceptions.grace, 0, "0 means at once");
        let error = with("\"soon\"").unwrap_err();
        assert_eq!(error.location.to_string(), "p.toml:5:9", "{error}");
        assert!(error.message.contains("invalid duration \"soon\""), "{error}");
        assert!(with("-1").is_err(), "negative durations are refused");
        // The default is not written out: a policy without `grace` signs as before.
        assert!(!Policy::embedded().to_json().contains("grace"));
        let short = with("\"1s\"").unwrap();
        assert_eq!(Policy::from_json("wire.json", &short.to_json()).unwrap(), short);
    }

    #[test]
    fn json_round_trip_keeps_everything() {
        let policy = Policy::embedded();
        let back = Policy::from_json("wire.json", &policy.to_json()).unwrap();
        assert_eq!(back, policy);
    }
}
