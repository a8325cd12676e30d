//! The catalog of AI coding tools and how to recognise each one from a launch.
//!
//! The catalog is data (`catalog.toml`, compiled in; policies may add tools). Compiling it
//! turns every pattern into one [`GlobSet`] per kind of evidence, so identifying a launch
//! costs a few set lookups however many tools there are.

use crate::content::ContentMatcher;
use crate::facts::ProcessFacts;
use crate::launch::{ScriptArgument, interpreter_script};
use crate::path::{join, normalize_path};
use crate::risky::{OptionGrammar, RiskySpec, SettingSpec, ToolOptions, tool_arguments_start};
use crate::source::SourceError;
use crate::step_around::ToolControls;
use globset::{Glob, GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The catalog compiled into every Warden binary.
pub const EMBEDDED_CATALOG: &str = include_str!("catalog.toml");

/// Catalog errors name the file, line and column of the offending entry.
pub type CatalogError = SourceError;

/// What sort of software a tool is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ToolKind {
    Cli,
    DesktopApp,
    IdeExtension,
    ModelServer,
}

/// Where a tool sends the code it reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hosting {
    /// To a vendor's service outside the company network.
    #[default]
    Cloud,
    /// Nowhere: the model runs on this machine.
    Local,
    /// To a service the company runs itself.
    Internal,
}

/// An executable path pattern, optionally only when followed by one of `first_arg`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExecutableRule {
    Path(String),
    Guarded { path: String, first_arg: Vec<String> },
}

impl ExecutableRule {
    fn path(&self) -> &str {
        match self {
            ExecutableRule::Path(path) | ExecutableRule::Guarded { path, .. } => path,
        }
    }
}

/// An executable followed by exact arguments, such as `gh copilot`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandRule {
    pub exe: String,
    pub args: Vec<String>,
}

/// One tool as written in the catalog file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolSpec {
    pub id: String,
    pub name: String,
    pub vendor: String,
    pub kind: ToolKind,
    #[serde(default)]
    pub hosting: Hosting,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub executables: Vec<ExecutableRule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scripts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modules: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<CommandRule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub npm_packages: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pip_packages: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jetbrains_plugins: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub install_paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_dirs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Those of `hosts` served from front ends shared with unrelated names (Google's, for
    /// `*.googleapis.com`): their addresses are decided by the name each process resolved, never
    /// blocked for everyone (`warden_policy::Destinations::ranges`). Each must be in `hosts`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_hosts: Vec<String>,
    /// Content fingerprints of the tool's native program files: each a list of byte
    /// markers that must all occur in the file (see [`crate::content`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fingerprints: Vec<Vec<String>>,
    /// Homebrew cask tokens (`claude-code`), as under `<prefix>/Caskroom/<token>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub brew_casks: Vec<String>,
    /// Homebrew formula names (`gemini-cli`), as under `<prefix>/Cellar/<name>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub brew_formulae: Vec<String>,
    /// The application's own name (`LM Studio`): the start of its AppImage file name
    /// and the `Name=` of the `.desktop` file inside an extracted AppImage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app_names: Vec<String>,
    /// The tool's web app (`claude.ai`), in Chromium's URL filter format: when the policy
    /// blocks the tool, its web app goes into the browsers' `URLBlocklist`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub web_apps: Vec<String>,
    // Risky modes (see `risky.rs`): how the tool reads its command line, its settings,
    // and which settings values switch its safety off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<OptionGrammar>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub setting: Vec<SettingSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub risky: Vec<RiskySpec>,
    /// How a launch can step around the vendor controls Warden writes (see `step_around.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controls: Option<ToolControls>,
}

/// A tool of the compiled catalog.
pub type Tool = ToolSpec;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    tool: Vec<ToolSpec>,
}

/// Which tool a launch is, and the evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identification<'c> {
    pub tool: &'c Tool,
    /// A human sentence: `executable matches **/.local/share/claude/versions/*`.
    pub evidence: String,
}

#[derive(Debug, Clone)]
struct ExecutableOwner {
    tool: usize,
    first_arg: Vec<String>,
    specificity: usize,
}

/// The compiled catalog: every tool, and matchers over all their patterns.
#[derive(Debug, Clone)]
pub struct Catalog {
    tools: Vec<Tool>,
    by_id: HashMap<String, usize>,
    executables: GlobSet,
    executable_owners: Vec<ExecutableOwner>,
    executable_patterns: Vec<String>,
    scripts: GlobSet,
    script_owners: Vec<(usize, usize)>,
    script_patterns: Vec<String>,
    never: Vec<Option<GlobSet>>,
    modules: HashMap<String, usize>,
    packages: HashMap<String, usize>,
    /// Python distributions (`pip_packages`, by their normalized name) → tool.
    distributions: HashMap<String, usize>,
    commands: Vec<(GlobMatcher, Vec<String>, usize)>,
    content: ContentMatcher,
    options: Vec<ToolOptions>,
}

fn glob(pattern: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(pattern).case_insensitive(true).literal_separator(true).backslash_escape(false).build()
}

/// Literal characters in a pattern: the longer, the more specific.
fn specificity(pattern: &str) -> usize {
    pattern.chars().filter(|c| !matches!(c, '*' | '?' | '[' | ']' | '{' | '}')).count()
}

impl Catalog {
    /// The catalog compiled into Warden.
    pub fn embedded() -> Catalog {
        // The embedded file is checked by this crate's tests, so this cannot fail at run time.
        Catalog::from_toml("catalog.toml (embedded)", EMBEDDED_CATALOG).expect("the embedded catalog is valid")
    }

    /// Parses a catalog file: `[[tool]]` entries.
    pub fn from_toml(file: &str, text: &str) -> Result<Catalog, CatalogError> {
        let parsed: CatalogFile = toml::from_str(text).map_err(|e| SourceError::from_toml(file, text, &e))?;
        Catalog::compile(parsed.tool).map_err(|problem| problem.locate(file, text))
    }

    /// A new catalog with `extra` tools added (a policy's own entries). An extra tool
    /// with an existing id replaces that tool.
    pub fn extended(&self, extra: &[ToolSpec]) -> Result<Catalog, CompileProblem> {
        if extra.is_empty() {
            return Ok(self.clone());
        }
        let mut tools = self.tools.clone();
        for spec in extra {
            match tools.iter_mut().find(|t| t.id == spec.id) {
                Some(existing) => *existing = spec.clone(),
                None => tools.push(spec.clone()),
            }
        }
        Catalog::compile(tools)
    }

    fn compile(tools: Vec<ToolSpec>) -> Result<Catalog, CompileProblem> {
        let mut by_id = HashMap::new();
        let mut executables = GlobSetBuilder::new();
        let mut executable_owners = Vec::new();
        let mut executable_patterns = Vec::new();
        let mut scripts = GlobSetBuilder::new();
        let mut script_owners = Vec::new();
        let mut script_patterns = Vec::new();
        let mut never = Vec::new();
        let mut modules = HashMap::new();
        let mut packages = HashMap::new();
        let mut distributions = HashMap::new();
        let mut commands = Vec::new();
        let mut fingerprints = Vec::new();
        let mut options = Vec::new();
        for (index, tool) in tools.iter().enumerate() {
            let compiled = ToolOptions::compile(tool.options.as_ref(), &tool.setting, &tool.risky)
                .map_err(|message| CompileProblem::new(&tool.id, message))?;
            if let Some(controls) = &tool.controls {
                controls.check(&compiled).map_err(|message| CompileProblem::new(&tool.id, message))?;
            }
            options.push(compiled);
            if !valid_id(&tool.id) {
                return Err(CompileProblem::new(
                    &tool.id,
                    format!("tool id {:?} must be lowercase letters, digits and '-'", tool.id),
                ));
            }
            if by_id.insert(tool.id.clone(), index).is_some() {
                return Err(CompileProblem::new(&tool.id, format!("tool id {:?} appears twice", tool.id)));
            }
            if let Some(stray) = tool.shared_hosts.iter().find(|h| !tool.hosts.contains(h)) {
                return Err(CompileProblem::new(
                    stray,
                    format!("shared host {stray:?} of tool {:?} is not one of its `hosts`", tool.id),
                ));
            }
            for rule in &tool.executables {
                executables.add(compile_glob(rule.path())?);
                let first_arg = match rule {
                    ExecutableRule::Guarded { first_arg, .. } => first_arg.clone(),
                    ExecutableRule::Path(_) => Vec::new(),
                };
                executable_owners.push(ExecutableOwner {
                    tool: index,
                    first_arg,
                    specificity: specificity(rule.path()),
                });
                executable_patterns.push(rule.path().to_owned());
            }
            for pattern in &tool.scripts {
                scripts.add(compile_glob(pattern)?);
                script_owners.push((index, specificity(pattern)));
                script_patterns.push(pattern.clone());
            }
            never.push(if tool.not.is_empty() {
                let mut set = GlobSetBuilder::new();
                for pattern in &tool.not {
                    set.add(compile_glob(pattern)?);
                }
                Some(set.build().map_err(|e| CompileProblem::new(&tool.id, e.to_string()))?)
            } else {
                None
            });
            for module in &tool.modules {
                modules.insert(module.clone(), index);
            }
            for package in &tool.npm_packages {
                packages.insert(package.clone(), index);
            }
            for distribution in &tool.pip_packages {
                distributions.insert(normalize_distribution(distribution), index);
            }
            for markers in &tool.fingerprints {
                // A short marker would match unrelated files: every marker is a distinctive string.
                if let Some(short) = markers.iter().find(|m| m.len() < 8) {
                    return Err(CompileProblem::new(
                        short,
                        format!("fingerprint marker {short:?} is too short to be distinctive (8 bytes at least)"),
                    ));
                }
                if markers.is_empty() {
                    return Err(CompileProblem::new(&tool.id, "a fingerprint needs at least one marker"));
                }
                fingerprints.push((tool.id.clone(), markers.clone()));
            }
            for command in &tool.commands {
                if command.args.is_empty() {
                    return Err(CompileProblem::new(
                        &command.exe,
                        "a command rule needs at least one argument; a bare executable name is not evidence",
                    ));
                }
                commands.push((compile_glob(&command.exe)?.compile_matcher(), command.args.clone(), index));
            }
        }
        let build = |set: GlobSetBuilder| set.build().map_err(|e| CompileProblem::new("", e.to_string()));
        Ok(Catalog {
            executables: build(executables)?,
            scripts: build(scripts)?,
            tools,
            by_id,
            executable_owners,
            executable_patterns,
            script_owners,
            script_patterns,
            never,
            modules,
            packages,
            distributions,
            commands,
            content: ContentMatcher::new(&fingerprints).map_err(|e| CompileProblem::new("", e))?,
            options,
        })
    }

    /// The compiled content fingerprints, for the OS edge to scan program files with.
    pub fn content(&self) -> &ContentMatcher {
        &self.content
    }

    /// Every tool, in catalog order.
    pub fn tools(&self) -> &[Tool] {
        &self.tools
    }

    /// The tool with this id.
    pub fn tool(&self, id: &str) -> Option<&Tool> {
        self.by_id.get(id).map(|&i| &self.tools[i])
    }

    /// Which tool, if any, this launch is. Evidence is checked in order of strength:
    /// what the program file *is* (its content fingerprint, [`ProcessFacts::content`]),
    /// then the resolved executable (or the loader's program), then the script an
    /// interpreter runs (or the Python module), the npm package that script belongs to
    /// ([`ProcessFacts::packages`]), the Python distribution whose `RECORD` lists it
    /// ([`ProcessFacts::distributions`]), and an executable with exact subcommand arguments
    /// (`gh copilot`). When several patterns match, the most specific (most literal
    /// characters) wins.
    pub fn identify(&self, facts: &ProcessFacts) -> Option<Identification<'_>> {
        if let Some(content) = &facts.content
            && let Some(tool) = content.tool.as_deref().and_then(|id| self.tool(id))
        {
            let evidence = content.evidence.clone().unwrap_or_else(|| "program file content".to_owned());
            return Some(Identification { tool, evidence });
        }
        if let Some(found) =
            self.identify_program(facts.interpreter_name(), &facts.argv, facts.script.as_deref(), facts.cwd.as_deref())
        {
            return Some(found);
        }
        let npm = facts.packages.iter().find_map(|package| {
            let &tool = self.packages.get(package)?;
            Some(Identification {
                tool: &self.tools[tool],
                evidence: format!("interpreter runs code of the npm package {package}"),
            })
        });
        npm.or_else(|| {
            facts.distributions.iter().find_map(|distribution| {
                let &tool = self.distributions.get(&normalize_distribution(distribution))?;
                Some(Identification {
                    tool: &self.tools[tool],
                    evidence: format!("interpreter runs a file of the Python distribution {distribution}"),
                })
            })
        })
    }

    /// [`Catalog::identify`] for a program given as its parts (used for ancestors too).
    pub fn identify_program(
        &self,
        exe: &str,
        argv: &[String],
        script: Option<&str>,
        cwd: Option<&str>,
    ) -> Option<Identification<'_>> {
        let exe_path = normalize_path(exe);
        if let Some(found) = self.by_executable(&exe_path, argv) {
            return Some(found);
        }
        match interpreter_script(exe, argv) {
            Some(ScriptArgument::Script { path, .. }) => {
                // The resolved script (symlinks followed by the OS edge) first, then the
                // argument as written, relative to the working directory.
                if let Some(found) = script.and_then(|resolved| self.by_script(&normalize_path(resolved))) {
                    return Some(found);
                }
                if let Some(found) = self.by_script(&normalize_path(&join(cwd, path))) {
                    return Some(found);
                }
            }
            Some(ScriptArgument::Program { index, path }) => {
                // The loader runs a native program: judge that program as if executed directly.
                if let Some(found) = self.identify_program(&join(cwd, path), &argv[index..], script, cwd) {
                    return Some(found);
                }
            }
            Some(ScriptArgument::Module(module)) => {
                if let Some(&tool) = self.modules.get(module) {
                    return Some(Identification {
                        tool: &self.tools[tool],
                        evidence: format!("python runs module {module}"),
                    });
                }
            }
            None => {}
        }
        self.by_command(&exe_path, argv)
    }

    /// The option grammar, settings and risky modes of tool `id` (empty if it has none).
    pub(crate) fn tool_options(&self, id: &str) -> Option<&ToolOptions> {
        self.by_id.get(id).map(|&i| &self.options[i])
    }

    /// The settings files a launch names on its command line (`claude --settings ./s.json`),
    /// as written, for the OS edge to read into [`ProcessFacts::settings_files`]. Empty
    /// for launches that are no tool, or whose tool reads no settings file from argv.
    pub fn settings_files<'f>(&self, facts: &'f ProcessFacts) -> Vec<&'f str> {
        let Some(found) = self.identify(facts) else { return Vec::new() };
        let Some(options) = self.tool_options(&found.tool.id) else { return Vec::new() };
        options.settings_files(&facts.argv, tool_arguments_start(facts.interpreter_name(), &facts.argv))
    }

    fn excluded(&self, tool: usize, path: &str) -> bool {
        self.never[tool].as_ref().is_some_and(|set| set.is_match(path))
    }

    fn by_executable(&self, exe: &str, argv: &[String]) -> Option<Identification<'_>> {
        let first_arg = argv.get(1).map(String::as_str);
        let best = self
            .executables
            .matches(exe)
            .into_iter()
            .filter(|&m| {
                let owner = &self.executable_owners[m];
                (owner.first_arg.is_empty() || first_arg.is_some_and(|a| owner.first_arg.iter().any(|f| f == a)))
                    && !self.excluded(owner.tool, exe)
            })
            .max_by_key(|&m| self.executable_owners[m].specificity)?;
        Some(Identification {
            tool: &self.tools[self.executable_owners[best].tool],
            evidence: format!("executable matches {}", self.executable_patterns[best]),
        })
    }

    fn by_script(&self, script: &str) -> Option<Identification<'_>> {
        let best = self
            .scripts
            .matches(script)
            .into_iter()
            .filter(|&m| !self.excluded(self.script_owners[m].0, script))
            .max_by_key(|&m| self.script_owners[m].1)?;
        Some(Identification {
            tool: &self.tools[self.script_owners[best].0],
            evidence: format!("interpreter runs {script} (matches {})", self.script_patterns[best]),
        })
    }

    fn by_command(&self, exe: &str, argv: &[String]) -> Option<Identification<'_>> {
        let (_, args, tool) = self.commands.iter().find(|(matcher, args, _)| {
            matcher.is_match(exe)
                && argv.len() > args.len()
                && argv[1..=args.len()].iter().zip(args).all(|(a, b)| a == b)
        })?;
        Some(Identification {
            tool: &self.tools[*tool],
            evidence: format!("command {} {}", crate::path::file_name(exe), args.join(" ")),
        })
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn compile_glob(pattern: &str) -> Result<Glob, CompileProblem> {
    if pattern.contains('\\') {
        return Err(CompileProblem::new(
            pattern,
            format!("pattern {pattern:?} must use '/' as separator (it matches Windows paths too)"),
        ));
    }
    glob(pattern).map_err(|e| CompileProblem::new(pattern, format!("invalid pattern {pattern:?}: {}", e.kind())))
}

/// A problem found while compiling catalog entries, before it is given a position.
/// `needle` is the text that caused it, used to find the line and column in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileProblem {
    pub needle: String,
    pub message: String,
}

impl CompileProblem {
    fn new(needle: &str, message: impl Into<String>) -> CompileProblem {
        CompileProblem { needle: needle.to_owned(), message: message.into() }
    }

    /// Places the problem in `text` at the first quoted occurrence of its needle.
    pub fn locate(self, file: &str, text: &str) -> SourceError {
        // Quoted first (a value), then bare (a table key such as `[tools.claud-code]`);
        // occurrences inside comments do not count.
        let find = |needle: &str| -> Option<usize> {
            text.match_indices(needle).map(|(i, _)| i).find(|&i| {
                let line_start = text[..i].rfind('\n').map_or(0, |n| n + 1);
                !text[line_start..i].trim_start().starts_with('#')
            })
        };
        let offset = if self.needle.is_empty() {
            0
        } else {
            find(&format!("\"{}\"", self.needle))
                .or_else(|| find(&format!("'{}'", self.needle)))
                .map(|i| i + 1)
                .or_else(|| find(&self.needle))
                .unwrap_or(0)
        };
        SourceError::at(file, text, offset, self.message)
    }
}

/// A Python distribution's name as PyPI compares them (PEP 503): lowercase, every run of
/// `-`, `_` and `.` one `-` (`Aider_Chat` and `aider.chat` are `aider-chat`).
pub(crate) fn normalize_distribution(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalog_compiles_with_every_required_tool() {
        let catalog = Catalog::embedded();
        for id in [
            "claude-code",
            "claude-desktop",
            "cursor",
            "cursor-agent",
            "windsurf",
            "copilot",
            "codex",
            "aider",
            "gemini-cli",
            "qwen-code",
            "continue",
            "cline",
            "roo-code",
            "amazon-q",
            "kiro",
            "tabnine",
            "cody",
            "ollama",
            "lm-studio",
            "opencode",
            "goose",
            "amp",
            "augment",
            "junie",
        ] {
            assert!(catalog.tool(id).is_some(), "missing {id}");
        }
    }

    #[test]
    fn bad_pattern_names_line_and_column() {
        let text = "[[tool]]\nid = \"x\"\nname = \"X\"\nvendor = \"V\"\nkind = \"cli\"\nexecutables = [\"**/a[\"]\n";
        let error = Catalog::from_toml("c.toml", text).unwrap_err();
        assert_eq!((error.location.line, error.location.column), (6, 17), "{error}");
        assert!(error.message.contains("invalid pattern"), "{error}");
    }

    #[test]
    fn bare_command_rules_are_refused() {
        let text = "[[tool]]\nid = \"x\"\nname = \"X\"\nvendor = \"V\"\nkind = \"cli\"\ncommands = [{ exe = \"**/gh\", args = [] }]\n";
        let error = Catalog::from_toml("c.toml", text).unwrap_err();
        assert_eq!(error.location.line, 6, "{error}");
    }

    #[test]
    fn risky_modes_must_name_known_settings_collected_variables_and_real_options() {
        let head = "[[tool]]\nid = \"x\"\nname = \"X\"\nvendor = \"V\"\nkind = \"cli\"\n";
        let cases = [
            ("[[tool.risky]]\nmode = \"m\"\nwhen = { nope = [\"1\"] }\n", "unknown setting \"nope\""),
            ("[[tool.setting]]\nname = \"s\"\nenv = { MY_SECRET = \"1\" }\n", "is not collected"),
            ("[[tool.setting]]\nname = \"s\"\noptions = [\"yolo\"]\n", "must start with '-'"),
            ("[[tool.setting]]\nname = \"s\"\n[[tool.risky]]\nmode = \"m\"\nwhen = {}\n", "at least one setting"),
        ];
        for (tail, message) in cases {
            let error = Catalog::from_toml("c.toml", &format!("{head}{tail}")).unwrap_err();
            assert!(error.message.contains(message), "{tail}: {error}");
            assert_eq!(error.location.line, 2, "{tail}: {error}");
        }
    }

    #[test]
    fn settings_files_are_listed_for_the_edge_only_when_given_as_paths() {
        let catalog = Catalog::embedded();
        let claude = |args: &[&str]| {
            let mut argv = vec!["claude".to_owned()];
            argv.extend(args.iter().map(|a| a.to_string()));
            ProcessFacts::new("/home/dev/.local/share/claude/versions/2.1.37", argv)
        };
        let facts = claude(&["--settings", "./s.json", "--settings={\"a\":1}", "--settings=/etc/t.json"]);
        assert_eq!(catalog.settings_files(&facts), ["./s.json", "/etc/t.json"]);
        // A value of another option (commander takes `--settings` as the prompt text here),
        // and words after `--`, name no file.
        let facts = claude(&["--append-system-prompt", "--settings", "--settings", "x.json", "--", "--settings", "y"]);
        assert_eq!(catalog.settings_files(&facts), ["x.json"]);
        let git = ProcessFacts::new("/usr/bin/git", vec!["git".into(), "--settings".into(), "x.json".into()]);
        assert!(catalog.settings_files(&git).is_empty());
    }
}
