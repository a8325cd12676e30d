//! MCP servers in the policy: which servers a client may use (`[mcp] allow`/`deny`, by name,
//! command or URL) and the company's fixed set (`[mcp.servers]`), and the one matching rule
//! every consumer applies (the vendor files rendered in `controls`, the launch check of
//! `--mcp-config` in `step_around`, the inventory).

use crate::catalog::CompileProblem;
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
}
