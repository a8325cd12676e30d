//! MCP servers every client configures, user and project scope, read from the clients' own files
//! (Claude Code, Cursor, VS Code, Windsurf, Codex, Gemini CLI, Qwen Code, Cline, Continue).
//! The formats are parsed by the policy core (`warden_policy::parse_mcp_config`); a file that
//! cannot be read becomes a [`Note`], never a failed scan.

use super::Note;
use serde::Serialize;
use std::path::{Path, PathBuf};
use warden_policy::{McpConfigFormat, parse_mcp_config};

/// Files larger than this are not read (a note says so).
const MAX_CONFIG_BYTES: u64 = 8 * 1024 * 1024;

/// One configured MCP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct McpFound {
    /// The client whose file defines it: a catalog id (`claude-code`, `cursor`, …) or `vscode`.
    pub client: String,
    /// `user` (the home folder's file), `project` (a project's file), or `local` (Claude Code's
    /// per-project entries in `~/.claude.json`).
    pub scope: String,
    pub file: PathBuf,
    pub name: String,
    /// `stdio`, `http` or `sse`.
    pub transport: String,
    /// Program and arguments of a local server.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// For `local` scope: the project folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// SHA-256 of the definition as configured (canonical JSON): changes when anything in it does.
    pub sha256: String,
}

/// (client, path relative to the home folder, format).
const USER_FILES: &[(&str, &str, McpConfigFormat)] = &[
    ("claude-code", ".claude.json", McpConfigFormat::ClaudeUser),
    ("cursor", ".cursor/mcp.json", McpConfigFormat::McpServers),
    ("vscode", ".config/Code/User/mcp.json", McpConfigFormat::VsCode),
    ("vscode", "Library/Application Support/Code/User/mcp.json", McpConfigFormat::VsCode),
    ("windsurf", ".codeium/windsurf/mcp_config.json", McpConfigFormat::McpServers),
    ("codex", ".codex/config.toml", McpConfigFormat::CodexToml),
    ("gemini-cli", ".gemini/settings.json", McpConfigFormat::McpServers),
    ("qwen-code", ".qwen/settings.json", McpConfigFormat::McpServers),
    (
        "cline",
        ".config/Code/User/globalStorage/saoudrizwan.claude-dev/settings/cline_mcp_settings.json",
        McpConfigFormat::McpServers,
    ),
    ("cline", ".cline/data/settings/cline_mcp_settings.json", McpConfigFormat::McpServers),
    ("continue", ".continue/config.json", McpConfigFormat::ContinueJson),
];

/// (client, path relative to a project folder, format).
const PROJECT_FILES: &[(&str, &str, McpConfigFormat)] = &[
    ("claude-code", ".mcp.json", McpConfigFormat::McpServers),
    ("cursor", ".cursor/mcp.json", McpConfigFormat::McpServers),
    ("vscode", ".vscode/mcp.json", McpConfigFormat::VsCode),
    ("codex", ".codex/config.toml", McpConfigFormat::CodexToml),
    ("gemini-cli", ".gemini/settings.json", McpConfigFormat::McpServers),
    ("qwen-code", ".qwen/settings.json", McpConfigFormat::McpServers),
];

/// Folders of one-server-per-file JSON (Continue's `mcpServers/`), relative to home or project.
const SERVER_FOLDERS: &[(&str, &str)] = &[("continue", ".continue/mcpServers")];

/// Every MCP server configured under `home` (user scope) and in each of `projects`, and notes on
/// files that could not be read.
pub fn mcp_servers(home: &Path, projects: &[PathBuf]) -> (Vec<McpFound>, Vec<Note>) {
    let mut found = Vec::new();
    let mut notes = Vec::new();
    for (client, relative, format) in USER_FILES {
        read(&mut found, &mut notes, client, "user", home.join(relative), *format);
    }
    for project in projects {
        for (client, relative, format) in PROJECT_FILES {
            read(&mut found, &mut notes, client, "project", project.join(relative), *format);
        }
    }
    for (base, scope) in std::iter::once((home, "user")).chain(projects.iter().map(|p| (p.as_path(), "project"))) {
        for (client, folder) in SERVER_FOLDERS {
            let mut files: Vec<PathBuf> =
                std::fs::read_dir(base.join(folder)).into_iter().flatten().flatten().map(|e| e.path()).collect();
            files.sort();
            for file in files {
                match file.extension().and_then(|e| e.to_str()) {
                    Some("json") => read(&mut found, &mut notes, client, scope, file, McpConfigFormat::McpServers),
                    Some("yaml" | "yml") => notes.push(Note::new(file, "YAML MCP definitions are not read yet".into())),
                    _ => {}
                }
            }
        }
        if base.join(".continue/config.yaml").is_file() {
            notes.push(Note::new(base.join(".continue/config.yaml"), "YAML MCP definitions are not read yet".into()));
        }
    }
    (found, notes)
}

/// Reads one configuration file into `found`, or a note into `notes`.
fn read(
    found: &mut Vec<McpFound>,
    notes: &mut Vec<Note>,
    client: &str,
    scope: &str,
    file: PathBuf,
    format: McpConfigFormat,
) {
    {
        let Ok(meta) = std::fs::metadata(&file) else { return };
        if !meta.is_file() {
            return;
        }
        if meta.len() > MAX_CONFIG_BYTES {
            notes.push(Note::new(file, format!("larger than {MAX_CONFIG_BYTES} bytes; its MCP servers not read")));
            return;
        }
        let text = match std::fs::read(&file).map(String::from_utf8) {
            Ok(Ok(text)) => text,
            Ok(Err(_)) => return notes.push(Note::new(file, "not UTF-8; its MCP servers not read".into())),
            Err(error) => return notes.push(Note::new(file, format!("unreadable ({error})"))),
        };
        match parse_mcp_config(format, &text) {
            Ok(servers) => found.extend(servers.into_iter().map(|s| McpFound {
                client: client.to_owned(),
                scope: if s.project.is_some() { "local".into() } else { scope.to_owned() },
                file: file.clone(),
                name: s.server.name,
                transport: s.transport,
                command: s.server.command,
                url: s.server.url,
                project: s.project,
                sha256: warden_api::sha256_hex(s.definition.as_bytes()),
            })),
            Err(reason) => notes.push(Note::new(file, format!("{reason}; its MCP servers not read"))),
        }
    }
}
