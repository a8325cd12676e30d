//! The policy written into every vendor's own controls: from a [`Policy`] to the content of
//! each managed file the vendors read (pure; `warden-service`'s `controls` module writes,
//! keeps and restores them). Formats follow each vendor's documentation, cited per file in
//! [`ManagedFile::documentation`] (read late 2026):
//!
//! | Vendor | File (Linux) | Warden writes |
//! |---|---|---|
//! | Claude Code | `/etc/claude-code/managed-settings.d/90-warden.json` (drop-in, merged over `managed-settings.json`) | `permissions.disableBypassPermissionsMode`, `permissions.deny` (secret paths), `allowedMcpServers`/`deniedMcpServers`, `env` |
//! | Claude Code | `/etc/claude-code/managed-mcp.json` (owned) | the company's fixed MCP set (`[mcp.servers]`) |
//! | Codex | `/etc/codex/requirements.toml` (owned) | `allowed_sandbox_modes` without `danger-full-access`, `[mcp_servers.<id>.identity]` |
//! | Gemini CLI | `/etc/gemini-cli/settings.json` (owned) | `security.disableYoloMode`, `mcp.allowed`/`mcp.excluded` |
//! | Qwen Code | `/etc/qwen-code/settings.json` (owned) | `mcp.allowed`/`mcp.excluded`, and for the sanctioned client: `modelProviders.openai`, `model.name`, `security.auth.selectedType`/`enforcedType` |
//! | VS Code | `/etc/vscode/policy.json` (owned) | `AllowedExtensions` (blocked tools' extensions off) |
//! | Chromium, Chrome, Edge | `…/policies/managed/warden.json` (drop-in) | `URLBlocklist`, `URLAllowlist` (the assistant), `ExtensionInstallBlocklist` |
//!
//! A *drop-in* is Warden's own file in a folder the vendor merges: the admin's files beside it
//! are never touched. An *owned* file is the one file the vendor reads at that path: the writer
//! keeps what was there and puts it back when the policy no longer needs the file.
//!
//! Deliberately absent: VS Code forks (Cursor, Windsurf, VSCodium) document no Linux policy
//! file; Copilot's content exclusion is not honoured by its CLI; Cursor's MDM keys are macOS and
//! Windows only.

use crate::Timestamp;
use crate::catalog::Catalog;
use crate::evaluate::tool_status;
use crate::exception::Exception;
use crate::mcp::{McpPolicy, McpServerMatch};
use crate::policy::{Action, Policy};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// Whose file it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Vendor {
    ClaudeCode,
    Codex,
    GeminiCli,
    QwenCode,
    VsCode,
    Chromium,
    GoogleChrome,
    MicrosoftEdge,
}

impl Vendor {
    pub fn name(self) -> &'static str {
        match self {
            Vendor::ClaudeCode => "Claude Code",
            Vendor::Codex => "Codex",
            Vendor::GeminiCli => "Gemini CLI",
            Vendor::QwenCode => "Qwen Code",
            Vendor::VsCode => "VS Code",
            Vendor::Chromium => "Chromium",
            Vendor::GoogleChrome => "Google Chrome",
            Vendor::MicrosoftEdge => "Microsoft Edge",
        }
    }
}

/// How Warden holds a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ownership {
    /// Warden's own file in a drop-in folder the vendor merges; removed when not needed.
    DropIn,
    /// The vendor's one file at that path: what was there is kept aside and put back when the
    /// policy no longer needs the file.
    Owned,
}

/// One control a file applies to one tool, for people ("bypass mode disabled").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// Catalog id of the tool the control governs.
    pub tool: String,
    pub control: String,
}

/// A managed file: where, whose, and its whole content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManagedFile {
    pub vendor: Vendor,
    /// The absolute system path (Linux); the writer may put it under a scratch root.
    pub path: &'static str,
    pub ownership: Ownership,
    pub content: String,
    pub applies: Vec<Applied>,
    /// The vendor page (and version) the format follows.
    pub documentation: &'static str,
}

/// Every path Warden may write, whatever the policy: the writer removes (or restores) any of
/// them the current policy does not render.
pub const MANAGED_PATHS: &[(Vendor, &str, Ownership)] = &[
    (Vendor::ClaudeCode, CLAUDE_FRAGMENT, Ownership::DropIn),
    (Vendor::ClaudeCode, CLAUDE_MCP, Ownership::Owned),
    (Vendor::Codex, CODEX_REQUIREMENTS, Ownership::Owned),
    (Vendor::GeminiCli, GEMINI_SETTINGS, Ownership::Owned),
    (Vendor::QwenCode, QWEN_SETTINGS, Ownership::Owned),
    (Vendor::VsCode, VSCODE_POLICY, Ownership::Owned),
    (Vendor::Chromium, CHROMIUM_POLICY, Ownership::DropIn),
    (Vendor::GoogleChrome, CHROME_POLICY, Ownership::DropIn),
    (Vendor::MicrosoftEdge, EDGE_POLICY, Ownership::DropIn),
];

const CLAUDE_FRAGMENT: &str = "/etc/claude-code/managed-settings.d/90-warden.json";
const CLAUDE_MCP: &str = "/etc/claude-code/managed-mcp.json";
const CODEX_REQUIREMENTS: &str = "/etc/codex/requirements.toml";
const GEMINI_SETTINGS: &str = "/etc/gemini-cli/settings.json";
const QWEN_SETTINGS: &str = "/etc/qwen-code/settings.json";
const VSCODE_POLICY: &str = "/etc/vscode/policy.json";
const CHROMIUM_POLICY: &str = "/etc/chromium/policies/managed/warden.json";
const CHROME_POLICY: &str = "/etc/opt/chrome/policies/managed/warden.json";
const EDGE_POLICY: &str = "/etc/opt/edge/policies/managed/warden.json";

const DOC_CLAUDE_SETTINGS: &str = "https://code.claude.com/docs/en/settings (settings files, managed-settings.d; \
     permissions.disableBypassPermissionsMode, permissions.deny, env) and https://code.claude.com/docs/en/managed-mcp \
     (allowedMcpServers/deniedMcpServers: serverName, serverCommand, serverUrl), read 2026-12 for Claude Code 2.1.3xx";
const DOC_CLAUDE_MCP: &str = "https://code.claude.com/docs/en/managed-mcp (managed-mcp.json: mcpServers, exclusive \
     control), read 2026-12 for Claude Code 2.1.3xx";
const DOC_CODEX: &str = "https://developers.openai.com/codex/enterprise/managed-configuration and \
     https://developers.openai.com/codex/config-reference#requirementstoml (allowed_sandbox_modes, \
     mcp_servers.<id>.identity), read 2026-12 for Codex 0.17x";
const DOC_GEMINI: &str = "https://geminicli.com/docs/reference/configuration (system settings file \
     /etc/gemini-cli/settings.json, GEMINI_CLI_SYSTEM_SETTINGS_PATH; security.disableYoloMode; mcp.allowed, \
     mcp.excluded), read 2026-12";
const DOC_QWEN: &str = "https://github.com/QwenLM/qwen-code docs/users/configuration/settings.md and \
     model-providers.md (system settings /etc/qwen-code/settings.json, QWEN_CODE_SYSTEM_SETTINGS_PATH; \
     modelProviders.openai[].baseUrl/envKey, model.name, security.auth.selectedType/enforcedType; the \
     Gemini CLI keys it inherits), read 2026-12";
const DOC_VSCODE: &str = "https://code.visualstudio.com/docs/enterprise/policies (Linux: /etc/vscode/policy.json \
     since VS Code 1.106; AllowedExtensions takes the extensions.allowed object as a JSON string), read 2026-12";
const DOC_CHROMIUM: &str = "https://chromeenterprise.google/policies/ (URLBlocklist, URLAllowlist, \
     ExtensionInstallBlocklist) and https://www.chromium.org/administrators/linux-quick-start/ (JSON files in \
     /etc/chromium/policies/managed, /etc/opt/chrome/policies/managed; Edge: /etc/opt/edge/policies/managed), \
     read 2026-12";

/// Every managed file the policy needs, in [`MANAGED_PATHS`] order. A file the policy gives
/// nothing to say is left out (and so removed or restored by the writer).
///
/// `exceptions` are the device's approved exceptions; those in force at `now` (seconds since
/// the epoch) that carry guardrails add them to the tool's machine-wide files while they last
/// (no risky modes: the vendor's safety switch; only these MCP servers: the vendor's allow
/// list names them; through the gateway: Claude Code's `env` pins `ANTHROPIC_BASE_URL`). The
/// files are machine-wide, so they carry what every such exception asks (MCP: the union of
/// their servers); the launch check ([`crate::evaluate`]) holds each exception to its own.
pub fn render(policy: &Policy, catalog: &Catalog, exceptions: &[Exception], now: Timestamp) -> Vec<ManagedFile> {
    if policy.controls.as_ref().is_some_and(|c| c.off) {
        return Vec::new();
    }
    let during = |tool: &str| ExceptionControls::of(exceptions, tool, now);
    let mut files = Vec::new();
    files.extend(claude_settings(policy, catalog, &during("claude-code")));
    files.extend(claude_mcp(policy));
    files.extend(codex_requirements(policy, catalog, &during("codex")));
    let gemini = during("gemini-cli");
    files.extend(gemini_like(policy, catalog, &gemini, Vendor::GeminiCli, "gemini-cli", GEMINI_SETTINGS, DOC_GEMINI));
    let qwen = during("qwen-code");
    files.extend(gemini_like(policy, catalog, &qwen, Vendor::QwenCode, "qwen-code", QWEN_SETTINGS, DOC_QWEN));
    files.extend(vscode_policy(policy, catalog));
    files.extend(browser_policies(policy, catalog));
    files
}

/// The base URL Warden's managed file pins tool `id` to while an exception with the
/// `through_gateway` guardrail is in force (`None`: the vendor's file cannot pin it, so the
/// launch itself must name a sanctioned destination). Claude Code: `ANTHROPIC_BASE_URL` in the
/// managed `env`, the gateway's (else the endpoint's) origin, as the Anthropic SDK appends
/// `/v1/messages` itself.
pub(crate) fn pinned_endpoint(policy: &Policy, id: &str) -> Option<String> {
    if id != "claude-code" || policy.controls.as_ref().is_some_and(|c| c.off) {
        return None;
    }
    let assistant = policy.assistant.as_ref()?;
    let base = assistant.gateway_url.as_ref().or(assistant.api_url.as_ref())?;
    let base = base.trim_end_matches('/');
    Some(base.strip_suffix("/v1").unwrap_or(base).to_owned())
}

/// What the exceptions in force for one tool ask of its machine-wide files: per guardrail, the
/// exceptions asking for it.
#[derive(Debug, Default)]
struct ExceptionControls<'e> {
    no_risky_modes: Vec<&'e str>,
    through_gateway: Vec<&'e str>,
    mcp: Vec<&'e str>,
    /// The union of the MCP servers the `mcp` exceptions name.
    mcp_servers: Vec<&'e str>,
}

impl<'e> ExceptionControls<'e> {
    fn of(exceptions: &'e [Exception], tool: &str, now: Timestamp) -> ExceptionControls<'e> {
        let mut during = ExceptionControls::default();
        for e in exceptions.iter().filter(|e| e.tool == tool && e.starts_at <= now && now < e.expires_at) {
            let g = &e.guardrails;
            if g.no_risky_modes {
                during.no_risky_modes.push(&e.id);
            }
            if g.through_gateway {
                during.through_gateway.push(&e.id);
            }
            if let Some(names) = &g.mcp_servers {
                during.mcp.push(&e.id);
                for name in names {
                    if !during.mcp_servers.contains(&name.as_str()) {
                        during.mcp_servers.push(name);
                    }
                }
            }
        }
        during
    }
}

/// `bypass mode disabled while exception exr_1 is in force`.
fn while_in_force(control: &str, ids: &[&str]) -> String {
    match ids {
        [one] => format!("{control} while exception {one} is in force"),
        _ => format!("{control} while exceptions {} are in force", ids.join(", ")),
    }
}

/// Whether the policy blocks every risky mode of `tool` (a `catalog_modes` rule with `block`):
/// then the vendor's own switch for "safety off" is turned off too.
fn safety_enforced(policy: &Policy, tool: &str) -> bool {
    policy.risky_flags.iter().any(|r| {
        r.catalog_modes && r.action == Action::Block && (r.tools.is_empty() || r.tools.iter().any(|t| t == tool))
    })
}

fn blocked(policy: &Policy, catalog: &Catalog, tool: &str) -> bool {
    catalog.tool(tool).is_some_and(|t| tool_status(policy, t).action == Action::Block)
}

fn mcp(policy: &Policy) -> Option<&McpPolicy> {
    policy.mcp.as_ref().filter(|m| !m.is_empty())
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("JSON values always serialize");
    text.push('\n');
    text
}

/// `MCP limited to 3 MCP servers`, `no MCP servers allowed`.
fn mcp_limit(count: usize) -> String {
    if count == 0 { "no MCP servers allowed".to_owned() } else { format!("MCP limited to {}", mcp_count(count)) }
}

/// `1 MCP server`, `3 MCP servers`.
fn mcp_count(count: usize) -> String {
    format!("{count} MCP server{}", if count == 1 { "" } else { "s" })
}

fn applied(tool: &str, control: impl Into<String>) -> Applied {
    Applied { tool: tool.to_owned(), control: control.into() }
}

/// Claude Code's allow/deny entry: one of serverName, serverCommand, serverUrl (the docs allow
/// exactly one; the most specific the policy gives).
fn claude_entry(entry: &McpServerMatch) -> Value {
    match (&entry.command, &entry.url, &entry.name) {
        (Some(command), _, _) => json!({ "serverCommand": command }),
        (None, Some(url), _) => json!({ "serverUrl": url }),
        (None, None, Some(name)) => json!({ "serverName": name }),
        (None, None, None) => json!({}),
    }
}

fn claude_settings(policy: &Policy, catalog: &Catalog, during: &ExceptionControls<'_>) -> Option<ManagedFile> {
    const ID: &str = "claude-code";
    catalog.tool(ID)?;
    let mut settings = Map::new();
    let mut permissions = Map::new();
    let mut applies = Vec::new();
    if safety_enforced(policy, ID) {
        permissions.insert("disableBypassPermissionsMode".into(), json!("disable"));
        applies.push(applied(ID, "bypass mode disabled"));
    } else if !during.no_risky_modes.is_empty() {
        permissions.insert("disableBypassPermissionsMode".into(), json!("disable"));
        applies.push(applied(ID, while_in_force("bypass mode disabled", &during.no_risky_modes)));
    }
    let secret_paths = policy.controls.as_ref().map(|c| c.secret_paths.as_slice()).unwrap_or_default();
    if !secret_paths.is_empty() {
        let rules: Vec<String> =
            secret_paths.iter().flat_map(|p| [format!("Read({p})"), format!("Edit({p})")]).collect();
        permissions.insert("deny".into(), json!(rules));
        applies.push(applied(ID, format!("{} secret paths unreadable", secret_paths.len())));
    }
    if !permissions.is_empty() {
        settings.insert("permissions".into(), Value::Object(permissions));
    }
    let policy_mcp = mcp(policy);
    let mut allowed: Vec<Value> = policy_mcp.map(|m| m.allow.iter().map(claude_entry).collect()).unwrap_or_default();
    let limited_by_policy = !allowed.is_empty();
    allowed.extend(during.mcp_servers.iter().map(|name| json!({ "serverName": name })));
    if limited_by_policy || !during.mcp.is_empty() {
        // The fixed set is filtered by the allow list too: keep it allowed.
        if let Some(m) = policy_mcp {
            allowed.extend(m.servers.keys().map(|name| json!({ "serverName": name })));
        }
        let control = mcp_limit(allowed.len());
        applies.push(applied(ID, if limited_by_policy { control } else { while_in_force(&control, &during.mcp) }));
        settings.insert("allowedMcpServers".into(), json!(allowed));
    }
    if let Some(m) = policy_mcp.filter(|m| !m.deny.is_empty()) {
        settings.insert("deniedMcpServers".into(), json!(m.deny.iter().map(claude_entry).collect::<Vec<_>>()));
        applies.push(applied(ID, format!("{} denied", mcp_count(m.deny.len()))));
    }
    let mut env = policy.controls.as_ref().map(|c| c.claude_env.clone()).unwrap_or_default();
    if !env.is_empty() {
        applies.push(applied(ID, format!("environment set ({})", env.keys().cloned().collect::<Vec<_>>().join(", "))));
    }
    // The admin's own `claude_env` value wins: it names a sanctioned proxy already.
    if !during.through_gateway.is_empty()
        && !env.contains_key("ANTHROPIC_BASE_URL")
        && let Some(pin) = pinned_endpoint(policy, ID)
    {
        applies.push(applied(ID, while_in_force(&format!("API base URL pinned to {pin}"), &during.through_gateway)));
        env.insert("ANTHROPIC_BASE_URL".into(), pin);
    }
    if !env.is_empty() {
        settings.insert("env".into(), json!(env));
    }
    (!settings.is_empty()).then(|| ManagedFile {
        vendor: Vendor::ClaudeCode,
        path: CLAUDE_FRAGMENT,
        ownership: Ownership::DropIn,
        content: pretty(&Value::Object(settings)),
        applies,
        documentation: DOC_CLAUDE_SETTINGS,
    })
}

fn claude_mcp(policy: &Policy) -> Option<ManagedFile> {
    let servers = &mcp(policy)?.servers;
    if servers.is_empty() {
        return None;
    }
    let mut map = Map::new();
    for (name, definition) in servers {
        let mut server = serde_json::to_value(definition).expect("definitions serialize");
        if definition.transport.is_none() {
            let transport = if definition.url.is_some() { "http" } else { "stdio" };
            server["type"] = json!(transport);
        }
        map.insert(name.clone(), server);
    }
    let names = servers.keys().cloned().collect::<Vec<_>>().join(", ");
    Some(ManagedFile {
        vendor: Vendor::ClaudeCode,
        path: CLAUDE_MCP,
        ownership: Ownership::Owned,
        content: pretty(&json!({ "mcpServers": map })),
        applies: vec![applied("claude-code", format!("MCP fixed to the company's servers ({names})"))],
        documentation: DOC_CLAUDE_MCP,
    })
}

fn codex_requirements(policy: &Policy, catalog: &Catalog, during: &ExceptionControls<'_>) -> Option<ManagedFile> {
    const ID: &str = "codex";
    catalog.tool(ID)?;
    let mut table = toml::Table::new();
    let mut applies = Vec::new();
    let by_policy = safety_enforced(policy, ID);
    if by_policy || !during.no_risky_modes.is_empty() {
        // Warden's risky mode is no sandbox *and* no approvals; without danger-full-access the
        // mode cannot be reached whatever the approval policy.
        table.insert("allowed_sandbox_modes".into(), toml::Value::from(vec!["read-only", "workspace-write"]));
        let control = "sandbox cannot be switched off";
        applies.push(applied(
            ID,
            if by_policy { control.to_owned() } else { while_in_force(control, &during.no_risky_modes) },
        ));
    }
    if let Some(mcp) = mcp(policy) {
        // Codex allows a server only when its name *and* identity match: entries with both.
        let mut servers = toml::Table::new();
        let mut add = |name: &str, command: Option<&str>, url: Option<&str>| {
            let mut identity = toml::Table::new();
            if let Some(command) = command {
                identity.insert("command".into(), toml::Value::from(command));
            } else if let Some(url) = url {
                identity.insert("url".into(), toml::Value::from(url));
            } else {
                return;
            }
            let mut server = toml::Table::new();
            server.insert("identity".into(), toml::Value::Table(identity));
            servers.insert(name.to_owned(), toml::Value::Table(server));
        };
        for entry in &mcp.allow {
            if let Some(name) = &entry.name {
                let command = entry.command.as_ref().and_then(|c| c.first()).map(String::as_str);
                add(name, command, entry.url.as_deref().filter(|u| !u.contains('*')));
            }
        }
        for (name, definition) in &mcp.servers {
            add(name, definition.command.as_deref(), definition.url.as_deref());
        }
        if !servers.is_empty() {
            applies.push(applied(ID, format!("MCP limited to {}", mcp_count(servers.len()))));
            table.insert("mcp_servers".into(), toml::Value::Table(servers));
        }
    }
    if table.is_empty() {
        return None;
    }
    let header = format!(
        "# Written by the Warden service from the policy {:?}. Changes here are undone within a second;\n\
         # change the policy instead.\n",
        policy.name
    );
    Some(ManagedFile {
        vendor: Vendor::Codex,
        path: CODEX_REQUIREMENTS,
        ownership: Ownership::Owned,
        content: format!("{header}{}", toml::to_string(&table).expect("tables serialize")),
        applies,
        documentation: DOC_CODEX,
    })
}

/// Gemini CLI and its fork Qwen Code read the same system settings shape.
fn gemini_like(
    policy: &Policy,
    catalog: &Catalog,
    during: &ExceptionControls<'_>,
    vendor: Vendor,
    id: &str,
    path: &'static str,
    documentation: &'static str,
) -> Option<ManagedFile> {
    catalog.tool(id)?;
    let mut settings = json!({});
    let mut applies = Vec::new();
    // Qwen Code 0.24.4 ignores `security.disableYoloMode` (observed: `--yolo` still runs), so it
    // is written for Gemini CLI only; Warden's launch check catches Qwen Code's YOLO mode.
    let by_policy = safety_enforced(policy, id);
    if vendor == Vendor::GeminiCli && (by_policy || !during.no_risky_modes.is_empty()) {
        settings["security"]["disableYoloMode"] = json!(true);
        let control = "YOLO mode disabled";
        applies.push(applied(
            id,
            if by_policy { control.to_owned() } else { while_in_force(control, &during.no_risky_modes) },
        ));
    }
    let policy_mcp = mcp(policy);
    let mut allowed: Vec<&str> =
        policy_mcp.map(|m| m.allow.iter().filter_map(|e| e.name.as_deref()).collect()).unwrap_or_default();
    let limited_by_policy = !allowed.is_empty();
    allowed.extend(&during.mcp_servers);
    if limited_by_policy || !during.mcp.is_empty() {
        // An empty list allows none (Qwen Code 0.24.4 filters by `mcp.allowed` whenever it is set).
        allowed.extend(policy_mcp.iter().flat_map(|m| m.servers.keys().map(String::as_str)));
        let control = mcp_limit(allowed.len());
        applies.push(applied(id, if limited_by_policy { control } else { while_in_force(&control, &during.mcp) }));
        settings["mcp"]["allowed"] = json!(allowed);
    }
    if let Some(mcp) = policy_mcp {
        let excluded: Vec<&str> = mcp.deny.iter().filter_map(|e| e.name.as_deref()).collect();
        if !excluded.is_empty() {
            applies.push(applied(id, format!("{} denied", mcp_count(excluded.len()))));
            settings["mcp"]["excluded"] = json!(excluded);
        }
    }
    // The sanctioned client is pinned to the company's endpoint: through the local masking
    // gateway when the policy names one, else directly.
    if vendor == Vendor::QwenCode
        && policy.is_assistant(id)
        && let Some(assistant) = &policy.assistant
        && let Some(base) = assistant.gateway_url.as_ref().or(assistant.api_url.as_ref())
    {
        let model = assistant.model.clone().unwrap_or_else(|| "default".into());
        settings["modelProviders"]["openai"] = json!([{
            "id": model,
            "name": assistant.name,
            "baseUrl": base,
            "envKey": "OPENAI_API_KEY",
        }]);
        settings["model"]["name"] = json!(model);
        settings["security"]["auth"]["selectedType"] = json!("openai");
        settings["security"]["auth"]["enforcedType"] = json!("openai");
        let via = if assistant.gateway_url.is_some() { "through the masking gateway" } else { "directly" };
        applies.push(applied(id, format!("pinned to {} ({base}, {via}), model {model}", assistant.name)));
    }
    (settings.as_object().is_some_and(|m| !m.is_empty())).then(|| ManagedFile {
        vendor,
        path,
        ownership: Ownership::Owned,
        content: pretty(&settings),
        applies,
        documentation,
    })
}

fn vscode_policy(policy: &Policy, catalog: &Catalog) -> Option<ManagedFile> {
    let mut allowed = Map::new();
    let mut applies = Vec::new();
    for tool in catalog.tools().iter().filter(|t| !t.extensions.is_empty() && blocked(policy, catalog, &t.id)) {
        for extension in &tool.extensions {
            allowed.insert(extension.to_ascii_lowercase(), json!(false));
        }
        applies.push(applied(&tool.id, "VS Code extension not allowed"));
    }
    if allowed.is_empty() {
        return None;
    }
    // Listing any extension blocks every one not listed: everything else stays allowed.
    allowed.insert("*".into(), json!(true));
    let value = serde_json::to_string(&Value::Object(allowed)).expect("maps serialize");
    Some(ManagedFile {
        vendor: Vendor::VsCode,
        path: VSCODE_POLICY,
        ownership: Ownership::Owned,
        content: pretty(&json!({ "AllowedExtensions": value })),
        applies,
        documentation: DOC_VSCODE,
    })
}

fn browser_policies(policy: &Policy, catalog: &Catalog) -> Vec<ManagedFile> {
    let mut urls: Vec<String> = Vec::new();
    let mut extensions: Vec<String> = Vec::new();
    let mut applies = Vec::new();
    let listed = policy.controls.as_ref().map(|c| &c.browser_extensions);
    for tool in catalog.tools().iter().filter(|t| blocked(policy, catalog, &t.id)) {
        if !tool.web_apps.is_empty() {
            urls.extend(tool.web_apps.iter().cloned());
            applies.push(applied(&tool.id, format!("web app blocked in browsers ({})", tool.web_apps.join(", "))));
        }
        if let Some(ids) = listed.and_then(|l| l.get(&tool.id)).filter(|ids| !ids.is_empty()) {
            extensions.extend(ids.iter().cloned());
            applies.push(applied(&tool.id, "browser extension blocked"));
        }
    }
    urls.sort();
    urls.dedup();
    extensions.sort();
    extensions.dedup();
    if urls.is_empty() && extensions.is_empty() {
        return Vec::new();
    }
    let mut document = Map::new();
    if !urls.is_empty() {
        document.insert("URLBlocklist".into(), json!(urls));
        // The place to go instead stays reachable even under a broader admin block.
        if let Some(assistant) = &policy.assistant {
            document.insert("URLAllowlist".into(), json!([assistant.url]));
        }
    }
    if !extensions.is_empty() {
        document.insert("ExtensionInstallBlocklist".into(), json!(extensions));
    }
    let content = pretty(&Value::Object(document));
    [(Vendor::Chromium, CHROMIUM_POLICY), (Vendor::GoogleChrome, CHROME_POLICY), (Vendor::MicrosoftEdge, EDGE_POLICY)]
        .into_iter()
        .map(|(vendor, path)| ManagedFile {
            vendor,
            path,
            ownership: Ownership::DropIn,
            content: content.clone(),
            applies: applies.clone(),
            documentation: DOC_CHROMIUM,
        })
        .collect()
}
