//! The device's inventory report for the server (`warden_api::InventoryReport`): every local
//! user's home scanned (tools and MCP servers), the system-wide folders once, each entry
//! attributed to the user whose home holds it.

use super::{Installed, Locations, McpFound, inventory, mcp_servers};
use std::path::{Path, PathBuf};
use warden_api::{ConfiguredMcpServer, InstalledTool, InventoryReport};
use warden_policy::{McpServer, Policy};

/// A local account with a home folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalHome {
    pub user: String,
    pub home: PathBuf,
}

/// The people's accounts in `/etc/passwd` (uid 0, and 1000 and up but `nobody`) whose home
/// folder exists. Malformed lines are skipped.
pub fn local_homes() -> Vec<LocalHome> {
    std::fs::read_to_string("/etc/passwd").map(|text| homes_in_passwd(&text)).unwrap_or_default()
}

/// [`local_homes`] over the text of a passwd(5) file.
pub fn homes_in_passwd(text: &str) -> Vec<LocalHome> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let [user, _, uid, _, _, home, ..] = fields[..] else { return None };
            let uid: u32 = uid.parse().ok()?;
            let person = uid == 0 || (1000..65534).contains(&uid);
            (person && !home.is_empty() && Path::new(home).is_dir())
                .then(|| LocalHome { user: user.to_owned(), home: PathBuf::from(home) })
        })
        .collect()
}

/// `npm root -g`, when npm is installed (it knows custom prefixes).
pub fn npm_global_root() -> Option<PathBuf> {
    let output = std::process::Command::new("npm").args(["root", "-g"]).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    output.status.success().then(|| PathBuf::from(text.trim())).filter(|p| p.is_dir())
}

/// Scans every home (and, with `system`, the system-wide folders: `npm_global_root`, /usr/lib,
/// Homebrew, /opt) for `policy`'s catalog and MCP configurations; `scanned_at_ms` is the clock.
pub fn device_report(
    policy: &Policy,
    homes: &[LocalHome],
    npm_global_root: Option<PathBuf>,
    system: bool,
    scanned_at_ms: i64,
) -> InventoryReport {
    let catalog = policy.catalog();
    let mut report = InventoryReport { scanned_at_ms, ..InventoryReport::default() };
    for (index, home) in homes.iter().enumerate() {
        // The system-wide folders are the same for every home: scanned with the first only.
        let locations = if system && index == 0 {
            Locations::standard(&home.home, npm_global_root.clone())
        } else {
            Locations::under_home(&home.home)
        };
        for found in inventory(&catalog, &locations).installed {
            report.tools.push(installed_tool(&found, homes));
        }
        let (servers, _notes) = mcp_servers(&home.home, &[]);
        for server in servers {
            report.mcp_servers.push(configured_server(&server, &home.user, policy));
        }
    }
    report.sort();
    report
}

/// The user whose home holds `path` (the longest matching home), else system-wide.
fn owner(path: &Path, homes: &[LocalHome]) -> String {
    homes
        .iter()
        .filter(|h| path.starts_with(&h.home))
        .max_by_key(|h| h.home.as_os_str().len())
        .map(|h| h.user.clone())
        .unwrap_or_default()
}

fn installed_tool(found: &Installed, homes: &[LocalHome]) -> InstalledTool {
    let kind = serde_json::to_value(found.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    InstalledTool {
        tool: found.tool.clone(),
        user: owner(&found.path, homes),
        kind,
        place: found.place.clone(),
        path: found.path.display().to_string(),
        version: found.version.clone(),
    }
}

fn configured_server(found: &McpFound, user: &str, policy: &Policy) -> ConfiguredMcpServer {
    let as_policy = McpServer { name: found.name.clone(), command: found.command.clone(), url: found.url.clone() };
    ConfiguredMcpServer {
        client: found.client.clone(),
        user: user.to_owned(),
        scope: found.scope.clone(),
        name: found.name.clone(),
        transport: found.transport.clone(),
        command: found.command.clone(),
        url: found.url.clone(),
        file: found.file.display().to_string(),
        sha256: found.sha256.clone(),
        denied: policy.mcp.as_ref().and_then(|mcp| mcp.permits(&as_policy).err()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_with_homes_are_read_from_passwd() {
        let home = tempfile::tempdir().unwrap();
        let dev = home.path().join("dev");
        std::fs::create_dir(&dev).unwrap();
        let text = format!(
            "root:x:0:0:root:{root}:/bin/bash\n\
             daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
             dev:x:1000:1000:Dev,,,:{dev}:/bin/bash\n\
             gone:x:1001:1001::/nonexistent/gone:/bin/bash\n\
             nobody:x:65534:65534:nobody:/:/usr/sbin/nologin\n\
             broken line\n\
             odd:x:notanumber:1::/:/bin/sh\n",
            root = home.path().display(),
            dev = dev.display()
        );
        let homes = homes_in_passwd(&text);
        assert_eq!(homes.iter().map(|h| h.user.as_str()).collect::<Vec<_>>(), ["root", "dev"]);
        assert_eq!(owner(&dev.join(".vscode/extensions/x"), &homes), "dev", "the longest home wins");
        assert_eq!(owner(Path::new("/usr/lib/node_modules/x"), &homes), "");
    }
}
