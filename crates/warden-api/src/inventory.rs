//! What a device reports as installed: AI tools (packages, editor extensions, install folders)
//! and the MCP servers each client configures, per local user. `PUT /api/v1/device/inventory`
//! replaces the device's last report; the server keeps the current one and a history entry
//! whenever it changes ([`InventoryReport::digest`]).

use crate::signing::sha256_hex;
use serde::{Deserialize, Serialize};

/// The most tools plus MCP servers one report may list.
pub const MAX_INVENTORY_ITEMS: usize = 5_000;

/// `PUT /api/v1/device/inventory`: everything the device found, whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InventoryReport {
    /// When the scan ran, milliseconds since the epoch on the device's clock.
    pub scanned_at_ms: i64,
    /// Sorted by tool, user, path.
    #[serde(default)]
    pub tools: Vec<InstalledTool>,
    /// Sorted by client, user, name.
    #[serde(default)]
    pub mcp_servers: Vec<ConfiguredMcpServer>,
}

/// One installation of a catalog tool.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InstalledTool {
    /// Catalog id (`claude-code`).
    pub tool: String,
    /// The local user whose home holds it; empty for a system-wide installation (`/usr/lib/…`).
    #[serde(default)]
    pub user: String,
    /// `npm-package`, `editor-extension`, `python-package`, `homebrew-package`, `app-image`,
    /// `install-folder`, `config-folder`, `jetbrains-plugin`.
    pub kind: String,
    /// The editor or package manager (`vscode`, `npm`, `pipx`, `cask`), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// One MCP server a client's configuration names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConfiguredMcpServer {
    /// The client whose file defines it (`claude-code`, `cursor`, `vscode`, …).
    pub client: String,
    /// The local user whose configuration it is.
    #[serde(default)]
    pub user: String,
    /// `user`, `project` or `local` (Claude Code's per-project entries).
    pub scope: String,
    pub name: String,
    /// `stdio`, `http` or `sse`.
    pub transport: String,
    /// Program and arguments of a local server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The configuration file.
    pub file: String,
    /// SHA-256 of the definition as configured: changes when anything in it does.
    pub sha256: String,
    /// What the device's policy says of it: `Some(reason)` when `[mcp]` forbids it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denied: Option<String>,
}

impl InventoryReport {
    /// What was found, independent of when: equal for two scans that found the same things, so
    /// a device uploads (and the server records history) only on change.
    pub fn digest(&self) -> String {
        let found = (&self.tools, &self.mcp_servers);
        sha256_hex(&serde_json::to_vec(&found).expect("reports serialize"))
    }

    /// Puts both lists in their documented order (the digest depends on it).
    pub fn sort(&mut self) {
        self.tools.sort();
        self.tools.dedup();
        self.mcp_servers.sort();
        self.mcp_servers.dedup();
    }

    /// Checks a report before it is stored: at most [`MAX_INVENTORY_ITEMS`] entries, and no empty
    /// tool, client or name. `Err((field, message))`.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let count = self.tools.len() + self.mcp_servers.len();
        if count > MAX_INVENTORY_ITEMS {
            return Err(("tools", format!("a report lists at most {MAX_INVENTORY_ITEMS} items (got {count})")));
        }
        if self.tools.iter().any(|t| t.tool.is_empty() || t.path.is_empty()) {
            return Err(("tools", "every installed tool needs its catalog id and path".into()));
        }
        if self.mcp_servers.iter().any(|s| s.client.is_empty() || s.name.is_empty()) {
            return Err(("mcp_servers", "every MCP server needs its client and name".into()));
        }
        Ok(())
    }
}

/// `GET /api/v1/admin/inventory`: each device's current report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InventoryList {
    /// Devices that reported, most recently reported first.
    pub devices: Vec<DeviceInventory>,
}

/// One device's current report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceInventory {
    pub device_id: String,
    pub hostname: String,
    /// The device's owner account.
    pub user: String,
    /// Server time (seconds since the epoch) of the report that last changed anything.
    pub changed_at: i64,
    /// Server time of the latest report (changed or not).
    pub reported_at: i64,
    pub report: InventoryReport,
}

/// `GET /api/v1/admin/devices/{id}/inventory`: the reports that changed something, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InventoryHistory {
    pub device_id: String,
    pub changes: Vec<InventoryChange>,
}

/// One report that differed from the one before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InventoryChange {
    /// Server time, seconds since the epoch.
    pub reported_at: i64,
    pub report: InventoryReport,
}

/// What the server did with a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InventoryReceipt {
    /// Whether it differed from the device's previous report (a history entry was written).
    pub changed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(tool: &str, path: &str) -> InstalledTool {
        InstalledTool {
            tool: tool.into(),
            user: "dev".into(),
            kind: "npm-package".into(),
            place: Some("npm".into()),
            path: path.into(),
            version: Some("1.0.0".into()),
        }
    }

    #[test]
    fn the_digest_ignores_when_and_order_but_not_what() {
        let mut a = InventoryReport {
            scanned_at_ms: 1,
            tools: vec![tool("codex", "/b"), tool("claude-code", "/a")],
            mcp_servers: vec![],
        };
        let mut b = InventoryReport {
            scanned_at_ms: 2,
            tools: vec![tool("claude-code", "/a"), tool("codex", "/b")],
            ..a.clone()
        };
        a.sort();
        b.sort();
        assert_eq!(a.digest(), b.digest());
        b.tools[0].version = Some("1.0.1".into());
        assert_ne!(a.digest(), b.digest(), "an upgrade is a change");
    }

    #[test]
    fn reports_are_bounded_and_complete() {
        let ok = InventoryReport { scanned_at_ms: 1, tools: vec![tool("codex", "/b")], mcp_servers: vec![] };
        assert_eq!(ok.check(), Ok(()));
        let too_many = InventoryReport { tools: vec![tool("codex", "/b"); MAX_INVENTORY_ITEMS + 1], ..ok.clone() };
        assert_eq!(too_many.check().unwrap_err().0, "tools");
        let nameless = InventoryReport { tools: vec![tool("", "/b")], ..ok };
        assert!(nameless.check().unwrap_err().1.contains("catalog id"));
    }
}
