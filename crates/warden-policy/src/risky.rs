//! Risky modes read by each tool's own option grammar: one parser for every spelling of
//! "safety off" (`-y`, `--approval-mode=yolo`, `-s danger-full-access -a never`,
//! `--settings '{"permissions":{"defaultMode":"bypassPermissions"}}'`, `AIDER_YES_ALWAYS=1`).
//!
//! The catalog describes, per tool, how its command line is read (`[tool.options]`), the
//! settings that matter (`[[tool.setting]]`: which options, switches, settings-JSON keys,
//! `key=value` overrides, environment variables and subcommands set each one) and the
//! risky modes (`[[tool.risky]]`: settings values that, together, switch the safety off).
//! Reading argv the way the tool does is what keeps option *values* from being taken for
//! options: `claude --append-system-prompt --dangerously-skip-permissions` is a prompt, and
//! `gemini -p "explain --yolo"` is one argument, not the flag.
//!
//! Pure: a settings file named on the command line is read by the OS edge and handed in as
//! [`SettingsFile`] facts; a file the edge could not read counts as risky (fail closed).

use crate::facts::{ENV_MARKERS, ProcessFacts, SettingsFile};
use crate::launch::{ScriptArgument, interpreter_script};
use crate::path::file_name;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The largest settings file the OS edge reads (bytes); a larger one counts as unreadable.
pub const MAX_SETTINGS_FILE_BYTES: u64 = 64 * 1024;

/// The argument parser a tool is built with: it decides how option values, bundled short
/// options and "off" spellings are read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArgParser {
    /// commander.js (Claude Code, Copilot CLI): an option's required value is the next
    /// argument even when it starts with `-`; `-abc` bundles until an option takes the rest.
    #[default]
    Commander,
    /// yargs (Gemini CLI, Qwen Code): a value never starts with `-`; every letter of `-abc`
    /// is its own switch; `--flag=false` and `--no-flag` switch a flag off; `--fooBar` is `--foo-bar`.
    Yargs,
    /// clap (Codex): a value never starts with `-`; `-sVALUE` and `-s=VALUE` attach a value.
    Clap,
    /// Python argparse / configargparse (Aider): like clap, and any unambiguous prefix of a
    /// long option is that option (`--yes` is `--yes-always`).
    Argparse,
}

/// How a repeated setting is resolved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Repeat {
    /// The last occurrence wins (commander, argparse).
    #[default]
    Last,
    /// Any occurrence counts: the parser collects repeats into a list (yargs) or refuses
    /// them (clap), so "risky if any occurrence is risky" never under-reports.
    Any,
}

/// How a tool reads its command line (`[tool.options]` in the catalog).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionGrammar {
    pub parser: ArgParser,
    #[serde(default)]
    pub repeat: Repeat,
    /// Options that take a value (besides those named below), so the value is never read
    /// as an option. Only matters for parsers whose values may start with `-` (commander).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub takes_value: Vec<String>,
    /// Options whose value is settings JSON, inline (`{…}`) or a file path the edge reads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settings_json: Vec<String>,
    /// Options whose value is a `key=value` configuration override (`codex -c k=v`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_override: Vec<String>,
    /// Options whose value is an MCP configuration (`{"mcpServers": …}`), inline or a file path
    /// the edge reads (`claude --mcp-config FILE`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mcp_config: Vec<String>,
    /// Subcommands that manage the tool rather than run its agent: as the first positional
    /// word, the rest of the command line is not read (`gemini mcp add gh npx -y …`: that
    /// `-y` is npx's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub management_commands: Vec<String>,
    /// File names of the tool's own program (the executable, or the script an interpreter
    /// runs) this grammar applies to; empty means every launch of the tool. Keeps helpers a
    /// tool bundles (cursor-agent's `rg -f FILE`) from being read as the tool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entry_points: Vec<String>,
}

/// One setting of a tool and every way it can be given (`[[tool.setting]]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingSpec {
    pub name: String,
    /// Options whose value is the setting (`--approval-mode yolo`, `--approval-mode=yolo`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// Switches and the value each gives the setting (`"-y" = "yolo"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub flags: BTreeMap<String, String>,
    /// Dotted key paths inside settings JSON (`permissions.defaultMode`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub json: Vec<String>,
    /// Keys of `key=value` overrides (`sandbox_mode`; `profiles.x.sandbox_mode` counts too).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<String>,
    /// Environment variables and the value a true-ish setting (`1`, `true`, `yes`, `on`) gives.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Environment variables whose value is the setting's value (`OPENAI_BASE_URL=…`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_values: Vec<String>,
    /// Subcommands (any positional word) and the value they imply (`exec` never asks).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subcommands: BTreeMap<String, String>,
}

/// A risky mode (`[[tool.risky]]`): every listed setting holds one of its values. Entries
/// sharing a `mode` name are spellings of one mode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskySpec {
    pub mode: String,
    /// Setting name → values that are risky (compared without regard to case).
    pub when: BTreeMap<String, Vec<String>>,
}

/// A risky mode a launch is in, and the spelling that put it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskyFinding<'c> {
    pub mode: &'c str,
    /// As written: `--approval-mode=yolo`, `-s danger-full-access + -a never`.
    pub spelling: String,
}

/// A tool's compiled option grammar, settings and modes.
#[derive(Debug, Clone, Default)]
pub(crate) struct ToolOptions {
    grammar: OptionGrammar,
    settings: Vec<SettingSpec>,
    modes: Vec<RiskySpec>,
}

/// Where a value came from; a higher tier beats a lower one under "last wins"
/// (a command-line option beats a settings file, which beats the environment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Tier {
    Environment,
    SettingsFile,
    CommandLine,
}

#[derive(Debug, Clone)]
struct Assignment {
    setting: usize,
    /// `None`: unknown (a settings file that could not be read) — matches any risky value.
    value: Option<String>,
    tier: Tier,
    spelling: String,
}

/// A literal option found on the command line (for `[[risky_flags]] flags`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SeenOption {
    pub name: String,
    /// `false` for an explicit off spelling (`--yolo=false`, `--no-yolo`).
    pub on: bool,
}

/// An MCP configuration a launch names (`--mcp-config`), as read.
#[derive(Debug, Clone)]
pub(crate) struct McpConfig {
    /// As written: `--mcp-config ./servers.json`.
    pub spelling: String,
    /// The document, or `None` when the edge could not read it or it is not JSON.
    pub document: Option<serde_json::Value>,
}

/// Everything read from one launch's command line and environment.
#[derive(Debug, Default)]
pub(crate) struct Reading {
    assignments: Vec<Assignment>,
    pub seen: Vec<SeenOption>,
    pub mcp_configs: Vec<McpConfig>,
}

/// The value that decides a setting and how it was written (`None`: unknown, an unreadable file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SettingValue {
    pub value: Option<String>,
    pub spelling: String,
}

const TRUE_WORDS: &[&str] = &["1", "true", "yes", "on"];

impl ToolOptions {
    pub(crate) fn compile(
        grammar: Option<&OptionGrammar>,
        settings: &[SettingSpec],
        modes: &[RiskySpec],
    ) -> Result<ToolOptions, String> {
        let grammar = grammar.cloned().unwrap_or_default();
        let options = grammar
            .takes_value
            .iter()
            .chain(&grammar.settings_json)
            .chain(&grammar.config_override)
            .chain(&grammar.mcp_config);
        let setting_options = settings.iter().flat_map(|s| s.options.iter().chain(s.flags.keys()));
        for option in options.chain(setting_options) {
            if !option.starts_with('-') || option.len() < 2 {
                return Err(format!("option {option:?} must start with '-'"));
            }
        }
        for setting in settings {
            if let Some(name) =
                setting.env.keys().chain(&setting.env_values).find(|name| !ENV_MARKERS.contains(&name.as_str()))
            {
                return Err(format!("environment variable {name:?} is not collected from processes (see ENV_MARKERS)"));
            }
        }
        for mode in modes {
            if mode.when.is_empty() {
                return Err(format!("risky mode {:?} needs at least one setting in `when`", mode.mode));
            }
            if let Some(name) = mode.when.keys().find(|name| !settings.iter().any(|s| &s.name == *name)) {
                return Err(format!("risky mode {:?} names an unknown setting {name:?}", mode.mode));
            }
        }
        Ok(ToolOptions { grammar, settings: settings.to_vec(), modes: modes.to_vec() })
    }

    /// Every option that spells part of mode `mode` (for policies that name one flag of it).
    pub(crate) fn mode_spellings(&self, mode: &str) -> impl Iterator<Item = &str> {
        self.modes.iter().filter(move |m| m.mode == mode).flat_map(move |m| {
            m.when
                .keys()
                .filter_map(|name| self.settings.iter().find(|s| &s.name == name))
                .flat_map(|s| s.options.iter().map(String::as_str).chain(s.flags.keys().map(String::as_str)))
        })
    }

    /// The settings-file paths a launch names (`--settings ./s.json`), for the edge to read.
    pub(crate) fn settings_files<'a>(&self, argv: &'a [String], start: usize) -> Vec<&'a str> {
        let mut paths = Vec::new();
        self.walk(argv, start, |_, event| {
            if let Event::Valued { option, value, .. } = event
                && (self.grammar.settings_json.contains(&option) || self.grammar.mcp_config.contains(&option))
                && !looks_like_json(value)
            {
                paths.push(value);
            }
        });
        paths
    }

    /// Whether a launch runs the tool's own program (see [`OptionGrammar::entry_points`]).
    fn is_entry_point(&self, facts: &ProcessFacts) -> bool {
        if self.grammar.entry_points.is_empty() {
            return true;
        }
        let program = match interpreter_script(facts.interpreter_name(), &facts.argv) {
            Some(ScriptArgument::Script { path, .. }) => path,
            _ => facts.exe.as_str(),
        };
        let name = file_name(program);
        let name = name.strip_suffix(".exe").unwrap_or(name);
        self.grammar.entry_points.iter().any(|entry| entry.eq_ignore_ascii_case(name))
    }

    /// Reads the launch: every setting assignment and every option seen, in order.
    pub(crate) fn read(&self, facts: &ProcessFacts, start: usize) -> Reading {
        let mut reading = Reading::default();
        if !self.is_entry_point(facts) {
            return reading;
        }
        for (index, setting) in self.settings.iter().enumerate() {
            for (name, value) in &setting.env {
                if facts.env.get(name).is_some_and(|v| TRUE_WORDS.contains(&v.trim().to_ascii_lowercase().as_str())) {
                    reading.assignments.push(Assignment {
                        setting: index,
                        value: Some(value.clone()),
                        tier: Tier::Environment,
                        spelling: format!("{name}={}", facts.env[name]),
                    });
                }
            }
            for name in &setting.env_values {
                if let Some(value) = facts.env.get(name).filter(|v| !v.trim().is_empty()) {
                    reading.push(index, Some(value.trim().to_owned()), Tier::Environment, format!("{name}={value}"));
                }
            }
        }
        self.walk(&facts.argv, start, |_, event| match event {
            Event::Switch { option, on, spelling } => {
                reading.seen.push(SeenOption { name: option.to_owned(), on });
                for (index, setting) in self.settings.iter().enumerate() {
                    if let Some(value) = setting.flags.get(&option) {
                        let value = if on { value.clone() } else { "false".to_owned() };
                        reading.push(index, Some(value), Tier::CommandLine, spelling.clone());
                    }
                }
            }
            Event::Valued { option, value, spelling } => {
                reading.seen.push(SeenOption { name: option.to_owned(), on: true });
                if self.grammar.settings_json.contains(&option) {
                    self.read_settings_json(&mut reading, facts, value, &spelling);
                }
                if self.grammar.config_override.contains(&option) {
                    self.read_override(&mut reading, value, &spelling);
                }
                if self.grammar.mcp_config.contains(&option) {
                    let document = if looks_like_json(value) {
                        serde_json::from_str(value).ok()
                    } else {
                        let file = facts.settings_files.iter().find(|f| f.path == value);
                        file.and_then(SettingsFile::text).and_then(|text| serde_json::from_str(text).ok())
                    };
                    reading.mcp_configs.push(McpConfig { spelling: spelling.clone(), document });
                }
                for (index, setting) in self.settings.iter().enumerate() {
                    if setting.options.contains(&option) {
                        reading.push(index, Some(value.to_owned()), Tier::CommandLine, spelling.clone());
                    }
                }
            }
            Event::Positional(word) => {
                for (index, setting) in self.settings.iter().enumerate() {
                    if let Some(value) = setting.subcommands.get(word) {
                        reading.push(index, Some(value.clone()), Tier::Environment, format!("{word} (subcommand)"));
                    }
                }
            }
        });
        reading
    }

    /// The first risky mode the reading puts the launch in, if `wanted` accepts its name.
    pub(crate) fn risky_mode<'s>(
        &'s self,
        reading: &Reading,
        wanted: impl Fn(&str) -> bool,
    ) -> Option<RiskyFinding<'s>> {
        self.modes.iter().filter(|mode| wanted(&mode.mode)).find_map(|mode| {
            let mut spellings = Vec::new();
            for (name, risky) in &mode.when {
                let setting = self.settings.iter().position(|s| &s.name == name)?;
                let matching = self.effective(reading, setting).into_iter().find(|a| match &a.value {
                    None => true,
                    Some(value) => risky.iter().any(|r| r.eq_ignore_ascii_case(value.trim())),
                })?;
                spellings.push(matching.spelling.clone());
            }
            spellings.dedup();
            Some(RiskyFinding { mode: &mode.mode, spelling: spellings.join(" + ") })
        })
    }

    /// The values that decide setting `name` in this reading (one under "last wins", every
    /// occurrence under "any"); empty when the launch does not set it.
    pub(crate) fn setting_values(&self, reading: &Reading, name: &str) -> Vec<SettingValue> {
        let Some(setting) = self.settings.iter().position(|s| s.name == name) else { return Vec::new() };
        self.effective(reading, setting)
            .into_iter()
            .map(|a| SettingValue { value: a.value.clone(), spelling: a.spelling.clone() })
            .collect()
    }

    /// Whether the tool has a setting called `name`.
    pub(crate) fn has_setting(&self, name: &str) -> bool {
        self.settings.iter().any(|s| s.name == name)
    }

    /// The assignments that decide a setting: the last of the highest tier, or every one.
    fn effective<'r>(&self, reading: &'r Reading, setting: usize) -> Vec<&'r Assignment> {
        let all = reading.assignments.iter().filter(|a| a.setting == setting);
        match self.grammar.repeat {
            Repeat::Any => all.collect(),
            Repeat::Last => {
                let top = all.clone().map(|a| a.tier).max();
                let mut all = all;
                all.rfind(|a| Some(a.tier) == top).into_iter().collect()
            }
        }
    }

    fn read_settings_json(&self, reading: &mut Reading, facts: &ProcessFacts, value: &str, spelling: &str) {
        let keyed: Vec<usize> = (0..self.settings.len()).filter(|&i| !self.settings[i].json.is_empty()).collect();
        if keyed.is_empty() {
            return;
        }
        let (document, source) = if looks_like_json(value) {
            (serde_json::from_str::<serde_json::Value>(value).ok(), "inline".to_owned())
        } else {
            let file = facts.settings_files.iter().find(|f| f.path == value);
            let parsed = file.and_then(SettingsFile::text).and_then(|text| serde_json::from_str(text).ok());
            (parsed, value.to_owned())
        };
        for index in keyed {
            match &document {
                // Unreadable, too large or not JSON: unknown, so it counts as risky (fail closed).
                None => reading.push(index, None, Tier::SettingsFile, format!("{spelling} (unreadable: {source})")),
                Some(document) => {
                    for path in &self.settings[index].json {
                        let found = path.split('.').try_fold(document, |node, key| node.get(key));
                        let text = match found {
                            Some(serde_json::Value::String(s)) => Some(s.clone()),
                            Some(serde_json::Value::Bool(b)) => Some(b.to_string()),
                            Some(serde_json::Value::Null) | None => None,
                            Some(other) => Some(other.to_string()),
                        };
                        if let Some(text) = text {
                            let spelling = format!("{spelling} ({path}={text})");
                            reading.push(index, Some(text), Tier::SettingsFile, spelling);
                        }
                    }
                }
            }
        }
    }

    fn read_override(&self, reading: &mut Reading, value: &str, spelling: &str) {
        let Some((key, raw)) = value.split_once('=') else { return };
        let key = key.trim();
        let text = unquote(raw.trim());
        for (index, setting) in self.settings.iter().enumerate() {
            for config in &setting.config {
                let direct = key == config || key.ends_with(&format!(".{config}"));
                if direct {
                    reading.push(index, Some(text.to_owned()), Tier::SettingsFile, format!("{spelling} {value}"));
                } else if raw.contains(config.as_str()) {
                    // An inline table (`-c 'profiles={p={sandbox_mode="danger-full-access"}}'`):
                    // too many shapes to parse; any risky value named in it counts.
                    for risky in self.modes.iter().flat_map(|m| m.when.get(&setting.name)).flatten() {
                        if raw.contains(risky.as_str()) {
                            reading.push(index, Some(risky.clone()), Tier::SettingsFile, format!("{spelling} {value}"));
                        }
                    }
                }
            }
        }
    }

    fn is_switch(&self, option: &str) -> bool {
        self.settings.iter().any(|s| s.flags.contains_key(option))
    }

    fn takes_value(&self, option: &str) -> bool {
        let g = &self.grammar;
        g.takes_value
            .iter()
            .chain(&g.settings_json)
            .chain(&g.config_override)
            .chain(&g.mcp_config)
            .any(|o| *o == option)
            || self.settings.iter().any(|s| s.options.iter().any(|o| *o == option))
    }

    /// The catalog option a long option written on the command line stands for.
    fn long_name(&self, written: &str) -> String {
        let written = match self.grammar.parser {
            ArgParser::Yargs => kebab(written),
            _ => written.to_owned(),
        };
        if self.grammar.parser == ArgParser::Argparse && !self.is_switch(&written) && !self.takes_value(&written) {
            // argparse accepts any unambiguous prefix; a prefix of a risky option is read as it.
            let known = self.settings.iter().flat_map(|s| s.options.iter().chain(s.flags.keys()));
            if written.len() >= 5
                && let Some(full) = known.filter(|o| o.starts_with("--")).find(|o| o.starts_with(&written))
            {
                return full.clone();
            }
        }
        written
    }

    /// Walks argv from `start` the way the tool's parser does, reporting options and positionals.
    /// `argv` with every word after `start` that is not an option the grammar reads, or a setting's
    /// value, or a known subcommand, replaced by [`crate::REDACTED`] (see `crate::shareable_argv`).
    pub(crate) fn redact(&self, argv: &[String], start: usize) -> Vec<Option<String>> {
        let mut shown: Vec<Option<String>> = argv.iter().take(start).cloned().map(Some).collect();
        shown.resize(argv.len(), None);
        let g = &self.grammar;
        let keeps_value = |option: &str| {
            self.settings.iter().any(|s| s.options.iter().any(|o| o == option))
                && ![&g.settings_json, &g.mcp_config, &g.config_override]
                    .iter()
                    .any(|list| list.iter().any(|o| o == option))
        };
        self.walk(argv, start, |at, event| match event {
            Event::Switch { option, .. } => {
                let word = &argv[at];
                shown[at] =
                    Some(if self.is_switch(&option) { word.clone() } else { crate::privacy::option_name_only(word) });
            }
            Event::Valued { option, value, .. } => {
                let word = &argv[at];
                let separate = argv.get(at + 1).is_some_and(|next| next == value) && !word.ends_with(value);
                if separate {
                    shown[at] = Some(word.clone());
                    if keeps_value(&option) {
                        shown[at + 1] = Some(value.to_owned());
                    }
                } else if keeps_value(&option) {
                    shown[at] = Some(word.clone());
                } else if word.starts_with("--") {
                    shown[at] = Some(crate::privacy::option_name_only(word));
                }
            }
            Event::Positional(word) => {
                let known = g.management_commands.iter().any(|c| c == word)
                    || self.settings.iter().any(|s| s.subcommands.contains_key(word));
                if known {
                    shown[at] = Some(word.to_owned());
                }
            }
        });
        shown
    }

    /// `visit` gets each event with the index in argv of the word it starts at (a value given as
    /// the next word is at that index + 1).
    fn walk<'a>(&self, argv: &'a [String], start: usize, mut visit: impl FnMut(usize, Event<'a>)) {
        let greedy = self.grammar.parser == ArgParser::Commander;
        let value_at = |i: usize| -> Option<&'a str> {
            let next = argv.get(i)?;
            (greedy || !next.starts_with('-') || next == "-").then_some(next.as_str())
        };
        let mut i = start;
        let mut first_positional = true;
        while let Some(arg) = argv.get(i) {
            let at = i;
            i += 1;
            if arg == "--" {
                return; // everything after is positional (a prompt, another program's argv)
            }
            if !arg.starts_with('-') || arg == "-" {
                visit(at, Event::Positional(arg));
                if std::mem::take(&mut first_positional) && self.grammar.management_commands.contains(arg) {
                    return;
                }
                continue;
            }
            if let Some(body) = arg.strip_prefix("--") {
                let (written, inline) = match body.split_once('=') {
                    Some((name, value)) => (format!("--{name}"), Some(value)),
                    None => (arg.clone(), None),
                };
                let name = self.long_name(&written);
                if self.is_switch(&name) {
                    let on = !(self.grammar.parser == ArgParser::Yargs && inline == Some("false"));
                    visit(at, Event::Switch { option: name.clone(), on, spelling: arg.clone() });
                } else if self.grammar.parser == ArgParser::Yargs
                    && let Some(negated) = name.strip_prefix("--no-").map(|rest| format!("--{rest}"))
                    && self.is_switch(&negated)
                {
                    visit(at, Event::Switch { option: negated.clone(), on: false, spelling: arg.clone() });
                } else if self.takes_value(&name) {
                    let value = match inline {
                        Some(value) => Some(value),
                        None => value_at(i).inspect(|_| i += 1),
                    };
                    if let Some(value) = value {
                        let spelling = if inline.is_some() { arg.clone() } else { format!("{arg} {value}") };
                        visit(at, Event::Valued { option: name.clone(), value, spelling });
                    }
                } else {
                    // An option the catalog does not describe: kept for literal flag rules
                    // (`--flag=false` is the usual explicit off).
                    let on = inline != Some("false");
                    visit(at, Event::Switch { option: written.clone(), on, spelling: arg.clone() });
                }
                continue;
            }
            // Short options, possibly bundled: `-y`, `-sy`, `-sdanger-full-access`, `-s=x`.
            let letters = &arg[1..];
            for (offset, letter) in letters.char_indices() {
                let option = format!("-{letter}");
                let rest = &letters[offset + letter.len_utf8()..];
                if self.grammar.parser == ArgParser::Yargs {
                    // yargs: every letter is a switch; `-y=false` gives a value, the last
                    // letter may take the next argument.
                    if let Some(value) = rest.strip_prefix('=') {
                        self.short(at, &option, Some(value), arg, &mut visit);
                        break;
                    }
                    if rest.is_empty() && self.takes_value(&option) {
                        if let Some(value) = value_at(i) {
                            i += 1;
                            self.short(at, &option, Some(value), &format!("{arg} {value}"), &mut visit);
                        }
                        break;
                    }
                    self.short(at, &option, None, arg, &mut visit);
                    continue;
                }
                if self.takes_value(&option) {
                    let attached = rest.strip_prefix('=').unwrap_or(rest);
                    if !attached.is_empty() {
                        self.short(at, &option, Some(attached), arg, &mut visit);
                    } else if let Some(value) = value_at(i) {
                        i += 1;
                        self.short(at, &option, Some(value), &format!("{arg} {value}"), &mut visit);
                    }
                    break;
                }
                self.short(at, &option, None, arg, &mut visit);
            }
        }
    }

    fn short<'a>(
        &self,
        at: usize,
        option: &str,
        value: Option<&'a str>,
        spelling: &str,
        visit: &mut impl FnMut(usize, Event<'a>),
    ) {
        let name = option.to_owned();
        if self.is_switch(option) {
            let on = !(self.grammar.parser == ArgParser::Yargs && value == Some("false"));
            visit(at, Event::Switch { option: name, on, spelling: spelling.to_owned() });
        } else if let Some(value) = value.filter(|_| self.takes_value(option)) {
            visit(at, Event::Valued { option: name, value, spelling: spelling.to_owned() });
        } else {
            visit(at, Event::Switch { option: name, on: true, spelling: spelling.to_owned() });
        }
    }
}

impl Reading {
    fn push(&mut self, setting: usize, value: Option<String>, tier: Tier, spelling: String) {
        self.assignments.push(Assignment { setting, value, tier, spelling });
    }
}

/// One step of reading argv.
enum Event<'a> {
    Switch { option: OptionName, on: bool, spelling: String },
    Valued { option: OptionName, value: &'a str, spelling: String },
    Positional(&'a str),
}

/// An option's canonical name (owned: the walk normalises spellings such as `--approvalMode`).
type OptionName = String;

fn looks_like_json(value: &str) -> bool {
    value.trim_start().starts_with('{')
}

/// `"x"` or `'x'` → `x` (codex parses override values as TOML; a bare word is a string).
fn unquote(text: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = text.strip_prefix(quote).and_then(|t| t.strip_suffix(quote)) {
            return inner;
        }
    }
    text
}

/// `--approvalMode` → `--approval-mode` (yargs' camel-case expansion).
fn kebab(option: &str) -> String {
    let mut out = String::with_capacity(option.len() + 4);
    for c in option.chars() {
        if c.is_ascii_uppercase() {
            out.push('-');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Where a tool's own arguments begin in argv: after the script or module an interpreter
/// runs (or the program the loader runs), else after argv\[0\].
pub(crate) fn tool_arguments_start(exe: &str, argv: &[String]) -> usize {
    match interpreter_script(exe, argv) {
        Some(ScriptArgument::Script { index, .. }) => index + 1,
        // The loader's program may itself be an interpreter (`ld.so /usr/bin/node cli.js`).
        Some(ScriptArgument::Program { index, path }) => index + tool_arguments_start(path, &argv[index..]),
        Some(ScriptArgument::Module(module)) => {
            argv.iter().position(|a| a == module || a.ends_with(module)).map_or(1, |i| i + 1)
        }
        None => 1,
    }
}
