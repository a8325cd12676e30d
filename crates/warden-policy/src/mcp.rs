//! MCP servers in the policy: which servers a client may use (`[mcp] allow`/`deny`, by name,
//! command or URL) and the company's fixed set (`[mcp.servers]`), and the one matching rule
//! every consumer applies (the vendor files rendered in `controls`, the launch check of
//! `--mcp-config` in `step_around`, the inventory).

use crate::catalog::CompileProblem;
use crate::policy::Action;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `[mcp]`: the MCP servers clients may use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpPolicy {
    /// When not empty, only servers matching one entry may be used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<McpServerMatch>,
    /// Servers never used (checked before `allow`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<McpServerMatch>,
    /// The company's own servers, by name: deployed as the fixed set where a vendor has one
    /// (Claude Code's `managed-mcp.json`, after which users can add no other server there).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub servers: BTreeMap<String, McpServerDefinition>,
    /// What happens when an AI tool starts a denied local server as a process (a `deny` entry
    /// with a `command`): `block` (the default) or `warn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
}

/// One allow or deny entry: a server name, the exact command line of a local (stdio) server,
/// or the URL of a remote one (`*` matches any characters). Several fields must all match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Program and arguments, compared exactly (`["npx", "-y", "@modelcontextprotocol/server-github"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A server of the company's fixed set, in the shape clients write (`command` + `args` for
/// stdio, `url` for HTTP/SSE).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerDefinition {
    /// `stdio`, `http` or `sse`; left out: stdio with a command, http with a URL.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// An MCP server as a client configures it (from a settings file, `--mcp-config`, the inventory).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpServer {
    pub name: String,
    /// Program then arguments, for a local (stdio) server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl McpServer {
    /// Reads one entry of an `mcpServers` object (`{"command": "npx", "args": [...]}`,
    /// `{"url": "…"}`, `{"httpUrl": "…"}`, `{"serverUrl": "…"}`).
    pub fn from_json(name: &str, definition: &serde_json::Value) -> McpServer {
        let text = |key: &str| definition.get(key).and_then(serde_json::Value::as_str).map(str::to_owned);
        let mut command: Vec<String> = text("command").into_iter().collect();
        if let Some(args) = definition.get("args").and_then(serde_json::Value::as_array) {
            command.extend(args.iter().map(|a| a.as_str().map_or_else(|| a.to_string(), str::to_owned)));
        }
        let url = text("url").or_else(|| text("httpUrl")).or_else(|| text("serverUrl"));
        McpServer { name: name.to_owned(), command, url }
    }

    /// Every server of a document with an `mcpServers` object (Claude Code's `--mcp-config`,
    /// `.mcp.json`, Gemini/Qwen settings, Cursor's `mcp.json`), in name order.
    pub fn all_in(document: &serde_json::Value) -> Vec<McpServer> {
        let Some(servers) = document.get("mcpServers").and_then(serde_json::Value::as_object) else {
            return Vec::new();
        };
        let mut found: Vec<McpServer> = servers.iter().map(|(name, d)| McpServer::from_json(name, d)).collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found
    }
}

impl McpServerMatch {
    /// Whether `server` is this entry: every field given matches.
    pub fn matches(&self, server: &McpServer) -> bool {
        let any = self.name.is_some() || self.command.is_some() || self.url.is_some();
        any && self.name.as_ref().is_none_or(|n| *n == server.name)
            && self.command.as_ref().is_none_or(|c| *c == server.command)
            && self.url.as_ref().is_none_or(|pattern| server.url.as_deref().is_some_and(|u| wildcard(pattern, u)))
    }

    /// How the entry reads for people: `github`, `npx -y pkg`, `https://mcp.example/*`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(name) = &self.name {
            parts.push(name.clone());
        }
        if let Some(command) = &self.command {
            parts.push(command.join(" "));
        }
        if let Some(url) = &self.url {
            parts.push(url.clone());
        }
        parts.join(" ")
    }
}

impl McpPolicy {
    /// `Err(reason)` when the policy forbids `server`: a deny entry matches, or an allow list
    /// exists and none of its entries (nor the company's fixed set) matches.
    pub fn permits(&self, server: &McpServer) -> Result<(), String> {
        if let Some(entry) = self.deny.iter().find(|e| e.matches(server)) {
            return Err(format!("MCP server {:?} is denied by policy ({})", server.name, entry.describe()));
        }
        let fixed = self.servers.get(&server.name).is_some_and(|d| d.same_server(server));
        if !self.allow.is_empty() && !fixed && !self.allow.iter().any(|e| e.matches(server)) {
            return Err(format!("MCP server {:?} is not on the policy's allow list", server.name));
        }
        Ok(())
    }

    /// The `deny` entry a process's command line is, when it is one: the entry's program matches
    /// `argv[k]` by file name (`npx`, `/usr/bin/npx`) for k = 0, or 1 or 2 behind an interpreter
    /// or `env` (a `#!/usr/bin/env node` script runs as `node /usr/bin/npx -y pkg`), and the
    /// entry's arguments are exactly the rest. Only `command` entries can name a process (names
    /// and URLs are not on a command line); an allow list says nothing about processes, since a
    /// client's other children (shells, `git`) are not MCP servers.
    pub fn denied_process(&self, argv: &[String]) -> Option<&McpServerMatch> {
        // Called on the watcher's first look at every exec: compare borrowed names, allocate nothing.
        self.deny.iter().find(|entry| {
            let Some((program, arguments)) = entry.command.as_deref().and_then(<[String]>::split_first) else {
                return false;
            };
            let program = file_name(program);
            (0..argv.len().min(3)).any(|k| file_name(&argv[k]) == program && argv[k + 1..] == *arguments)
        })
    }

    /// What a denied server started as a process gets ([`McpPolicy::action`], default block).
    pub fn process_action(&self) -> Action {
        self.action.unwrap_or(Action::Block)
    }

    /// Whether the policy says anything about MCP servers.
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty() && self.servers.is_empty()
    }

    pub(crate) fn check(&self) -> Result<(), CompileProblem> {
        for entry in self.allow.iter().chain(&self.deny) {
            if entry.name.is_none() && entry.command.is_none() && entry.url.is_none() {
                return Err(CompileProblem {
                    needle: "[mcp]".into(),
                    message: "an MCP server entry needs a name, a command or a url".into(),
                });
            }
            if entry.command.as_ref().is_some_and(Vec::is_empty) {
                return Err(CompileProblem {
                    needle: "command".into(),
                    message: "an MCP command must not be empty".into(),
                });
            }
        }
        if self.action == Some(Action::Allow) {
            return Err(CompileProblem {
                needle: "action".into(),
                message: "[mcp] action is what a denied server started as a process gets: `warn` or `block`".into(),
            });
        }
        for (name, definition) in &self.servers {
            if definition.command.is_some() == definition.url.is_some() {
                return Err(CompileProblem {
                    needle: name.clone(),
                    message: format!("MCP server {name:?} needs exactly one of `command` or `url`"),
                });
            }
        }
        Ok(())
    }
}

impl McpServerDefinition {
    fn same_server(&self, server: &McpServer) -> bool {
        match (&self.command, &self.url) {
            (Some(program), _) => {
                server.command.first() == Some(program) && server.command.get(1..) == Some(&self.args[..])
            }
            (None, Some(url)) => server.url.as_ref() == Some(url),
            (None, None) => false,
        }
    }
}

/// The last component of a path (`/usr/bin/npx` → `npx`), borrowed.
fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// `*` matches any run of characters (also `/`); everything else literally.
fn wildcard(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, command: &[&str], url: Option<&str>) -> McpServer {
        McpServer {
            name: name.into(),
            command: command.iter().map(|s| s.to_string()).collect(),
            url: url.map(str::to_owned),
        }
    }

    #[test]
    fn entries_match_by_name_command_or_url_pattern() {
        let by_url = McpServerMatch { url: Some("https://mcp.corp.example/*".into()), ..Default::default() };
        assert!(by_url.matches(&server("x", &[], Some("https://mcp.corp.example/github"))));
        assert!(!by_url.matches(&server("x", &[], Some("https://mcp.evil.example/?https://mcp.corp.example/"))));
        assert!(!by_url.matches(&server("x", &["npx"], None)));
        let by_command =
            McpServerMatch { command: Some(vec!["npx".into(), "-y".into(), "pkg".into()]), ..Default::default() };
        assert!(by_command.matches(&server("any", &["npx", "-y", "pkg"], None)));
        assert!(!by_command.matches(&server("any", &["npx", "pkg"], None)), "exact, as Claude Code compares");
        assert!(!McpServerMatch::default().matches(&server("x", &[], None)), "an empty entry matches nothing");
        assert!(wildcard("a*b*c", "a-b-c") && !wildcard("a*b*c", "a-c") && wildcard("*", ""));
    }

    #[test]
    fn deny_beats_allow_and_the_fixed_set_is_allowed() {
        let text = r#"
            allow = [{ name = "github" }]
            deny = [{ command = ["npx", "-y", "evil"] }]
            [servers.docs]
            url = "https://mcp.corp.example/docs"
        "#;
        let policy: McpPolicy = toml::from_str(text).unwrap();
        policy.check().unwrap();
        assert!(policy.permits(&server("github", &["npx", "-y", "gh"], None)).is_ok());
        let denied = policy.permits(&server("github", &["npx", "-y", "evil"], None)).unwrap_err();
        assert!(denied.contains("denied by policy (npx -y evil)"), "{denied}");
        assert!(policy.permits(&server("docs", &[], Some("https://mcp.corp.example/docs"))).is_ok());
        assert!(policy.permits(&server("docs", &[], Some("https://elsewhere.example/"))).is_err());
        assert!(policy.permits(&server("other", &["x"], None)).unwrap_err().contains("not on the policy's allow list"));
    }

    #[test]
    fn a_denied_command_is_known_as_a_process_however_it_was_started() {
        let policy: McpPolicy = toml::from_str(
            r#"deny = [{ command = ["npx", "-y", "@evil/mcp"] }, { name = "shell" }, { url = "https://x.example/*" }]"#,
        )
        .unwrap();
        let argv = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        for (spawned, denied) in [
            (argv(&["npx", "-y", "@evil/mcp"]), true),
            (argv(&["/usr/bin/npx", "-y", "@evil/mcp"]), true),
            (argv(&["node", "/usr/bin/npx", "-y", "@evil/mcp"]), true),
            (argv(&["/usr/bin/env", "node", "/usr/bin/npx", "-y", "@evil/mcp"]), true),
            (argv(&["npx", "-y", "@evil/mcp", "--extra"]), false),
            (argv(&["npx", "@evil/mcp"]), false),
            (argv(&["npx", "-y", "@good/mcp"]), false),
            (argv(&["sh", "-c", "npx -y @evil/mcp"]), false),
            (argv(&["shell"]), false),
            (argv(&[]), false),
        ] {
            assert_eq!(policy.denied_process(&spawned).is_some(), denied, "{spawned:?}");
        }
        assert_eq!(policy.process_action(), Action::Block);
        let allow: McpPolicy = toml::from_str(r#"action = "allow""#).unwrap();
        assert!(allow.check().is_err(), "a denied server cannot be allowed");
    }
}

/// How a client's MCP configuration file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum McpConfigFormat {
    /// `{"mcpServers": {NAME: {command, args, url | httpUrl | serverUrl, type}}}`: Claude Code's
    /// `.mcp.json`, Cursor, Windsurf, Gemini CLI, Qwen Code, Cline, Continue's `mcpServers/*.json`.
    McpServers,
    /// Claude Code's `~/.claude.json`: `mcpServers` (user scope) and `projects.<dir>.mcpServers`
    /// (local scope, one project each).
    ClaudeUser,
    /// VS Code's `mcp.json` (JSON with comments): `{"servers": {NAME: {type, command, args, url}}}`.
    VsCode,
    /// Codex's `config.toml`: `[mcp_servers.NAME]` with `command`, `args`, `url`.
    CodexToml,
    /// Continue's `config.json`: `mcpServers` as a list of `{name, command, args, url}`, or the older
    /// `experimental.modelContextProtocolServers[].transport`.
    ContinueJson,
}

/// One server found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FoundMcpServer {
    pub server: McpServer,
    /// `stdio`, `http` or `sse`, as configured (else inferred: a command is stdio, a URL http).
    pub transport: String,
    /// For Claude Code's local scope: the project folder the entry belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The definition as written (canonical JSON: sorted keys), for hashing.
    #[serde(skip)]
    pub definition: String,
}

/// Every MCP server a client's configuration file defines, in file order of names; `Err` says
/// why the file cannot be read (not JSON/TOML, wrong shape) — a caller reports it, never panics.
pub fn parse_mcp_config(format: McpConfigFormat, text: &str) -> Result<Vec<FoundMcpServer>, String> {
    use serde_json::Value;
    let json = || -> Result<Value, String> {
        serde_json::from_str(&strip_json_comments(text)).map_err(|e| format!("not valid JSON ({e})"))
    };
    let servers_in = |object: Option<&Value>, project: Option<&str>| -> Result<Vec<FoundMcpServer>, String> {
        let Some(object) = object else { return Ok(Vec::new()) };
        let map = object.as_object().ok_or("the server list is not an object")?;
        Ok(map.iter().map(|(name, definition)| found(name, definition, project)).collect())
    };
    match format {
        McpConfigFormat::McpServers => servers_in(json()?.get("mcpServers"), None),
        McpConfigFormat::VsCode => servers_in(json()?.get("servers"), None),
        McpConfigFormat::ClaudeUser => {
            let document = json()?;
            let mut all = servers_in(document.get("mcpServers"), None)?;
            if let Some(projects) = document.get("projects").and_then(Value::as_object) {
                for (dir, project) in projects {
                    all.extend(servers_in(project.get("mcpServers"), Some(dir))?);
                }
            }
            Ok(all)
        }
        McpConfigFormat::CodexToml => {
            let table: toml::Table = toml::from_str(text).map_err(|e| format!("not valid TOML ({})", e.message()))?;
            let Some(servers) = table.get("mcp_servers") else { return Ok(Vec::new()) };
            let servers = servers.as_table().ok_or("mcp_servers is not a table")?;
            let value = serde_json::to_value(servers).map_err(|e| e.to_string())?;
            servers_in(Some(&value), None)
        }
        McpConfigFormat::ContinueJson => {
            let document = json()?;
            let list = document
                .get("mcpServers")
                .or_else(|| document.pointer("/experimental/modelContextProtocolServers"))
                .cloned()
                .unwrap_or(Value::Array(Vec::new()));
            let list = list.as_array().ok_or("mcpServers is not a list")?;
            Ok(list
                .iter()
                .enumerate()
                .map(|(i, entry)| {
                    let body = entry.get("transport").unwrap_or(entry);
                    let name =
                        entry.get("name").and_then(Value::as_str).map_or_else(|| format!("server-{i}"), str::to_owned);
                    found(&name, body, None)
                })
                .collect())
        }
    }
}

fn found(name: &str, definition: &serde_json::Value, project: Option<&str>) -> FoundMcpServer {
    let server = McpServer::from_json(name, definition);
    let written = definition.get("type").or_else(|| definition.get("transport")).and_then(|t| t.as_str());
    let transport = match written {
        Some(kind) => kind.to_ascii_lowercase(),
        None if !server.command.is_empty() => "stdio".to_owned(),
        None if definition.get("httpUrl").is_some() => "http".to_owned(),
        None if server.url.as_deref().is_some_and(|u| u.ends_with("/sse")) => "sse".to_owned(),
        None => "http".to_owned(),
    };
    // serde_json's map is ordered by key: the text is canonical.
    let definition = serde_json::to_string(definition).unwrap_or_default();
    FoundMcpServer { server, transport, project: project.map(str::to_owned), definition }
}

/// JSON with comments (`//`, `/* */`) and trailing commas, as VS Code writes, made plain JSON.
fn strip_json_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if c == '\\' {
                out.extend(chars.next());
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_string = true;
                out.push(c);
            }
            ('/', Some('/')) => {
                for skipped in chars.by_ref() {
                    if skipped == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                chars.next();
                let mut last = ' ';
                for skipped in chars.by_ref() {
                    if last == '*' && skipped == '/' {
                        break;
                    }
                    last = skipped;
                }
            }
            (',', _) => {
                // A comma before a closing bracket (after whitespace) is dropped.
                let rest: String = chars.clone().take_while(|c| c.is_whitespace()).collect();
                let after = chars.clone().nth(rest.chars().count());
                if !matches!(after, Some('}') | Some(']')) {
                    out.push(c);
                }
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod discovery_tests {
    use super::*;

    #[test]
    fn every_format_is_read_and_damage_is_an_error_not_a_panic() {
        let vscode = "{\n // comment\n \"servers\": {\"gh\": {\"type\": \"http\", \"url\": \"https://x/mcp\",},},\n}";
        let found = parse_mcp_config(McpConfigFormat::VsCode, vscode).unwrap();
        assert_eq!((found[0].server.name.as_str(), found[0].transport.as_str()), ("gh", "http"));
        let codex = "[mcp_servers.fs]\ncommand = \"npx\"\nargs = [\"-y\", \"fs\"]\n";
        let found = parse_mcp_config(McpConfigFormat::CodexToml, codex).unwrap();
        assert_eq!(found[0].server.command, ["npx", "-y", "fs"]);
        let claude = r#"{"mcpServers": {"a": {"command": "x"}}, "projects": {"/p": {"mcpServers": {"b": {"url": "https://b/sse"}}}}}"#;
        let found = parse_mcp_config(McpConfigFormat::ClaudeUser, claude).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!((found[1].project.as_deref(), found[1].transport.as_str()), (Some("/p"), "sse"));
        for (format, text) in [
            (McpConfigFormat::McpServers, "{\"mcpServers\": "),
            (McpConfigFormat::McpServers, "{\"mcpServers\": []}"),
            (McpConfigFormat::CodexToml, "[mcp_servers\n"),
            (McpConfigFormat::ContinueJson, "{\"mcpServers\": {}}"),
        ] {
            assert!(parse_mcp_config(format, text).is_err(), "{text}");
        }
        assert_eq!(strip_json_comments("{\"a\": \"// not a comment\",}"), "{\"a\": \"// not a comment\"}");
    }
}
