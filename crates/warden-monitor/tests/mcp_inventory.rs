//! MCP discovery over a fixture home and project (`tests/data/mcp/`): every client's format, user,
//! project and Claude Code's local scope, transport, command or URL; damaged files (truncated JSON,
//! the wrong shape, not UTF-8, broken TOML, YAML) are notes, never a crash. `expected.txt` lists
//! what must be found.

use std::path::Path;
use warden_monitor::inventory::mcp_servers;

#[test]
fn every_clients_mcp_servers_are_found_and_damaged_files_reported() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mcp");
    let (found, notes) = mcp_servers(&data.join("home"), &[data.join("project")]);
    let mut have: Vec<String> = found
        .iter()
        .map(|f| {
            let target = if f.command.is_empty() { f.url.clone().unwrap_or_default() } else { f.command.join(" ") };
            format!("{}\t{}\t{}\t{}\t{target}", f.client, f.scope, f.name, f.transport)
        })
        .collect();
    have.extend(notes.iter().map(|n| format!("note\t{}", n.path.strip_prefix(&data).unwrap().display())));
    let expected = std::fs::read_to_string(data.join("expected.txt")).unwrap();
    let mut want: Vec<String> =
        expected.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).map(str::to_owned).collect();
    have.sort();
    want.sort();
    assert_eq!(have, want);
    // Local scope names its project; every definition has a stable hash of its own.
    let sentry = found.iter().find(|f| f.name == "sentry").unwrap();
    assert_eq!(sentry.project.as_deref(), Some("/home/dev/src/app"));
    let mut hashes: Vec<&str> = found.iter().map(|f| f.sha256.as_str()).collect();
    assert!(hashes.iter().all(|h| h.len() == 64));
    hashes.sort();
    hashes.dedup();
    assert_eq!(hashes.len(), found.len(), "distinct definitions, distinct hashes");
    let (again, _) = mcp_servers(&data.join("home"), &[data.join("project")]);
    assert_eq!(again, found, "the same files give the same answer");
}
