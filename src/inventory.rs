//! `warden inventory`: which AI tools are installed (IDE extensions, JetBrains plugins, npm
//! and Python packages, Homebrew, AppImages, install and config folders); with `--mcp`, the MCP
//! servers every client configures and what the policy's `[mcp]` says of each. Reads folders and
//! the tools' own records only; a record it cannot use is reported on stderr.

use anyhow::{Context, Result};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use warden_monitor::inventory::{Installed, Locations, McpFound, inventory, mcp_servers, npm_global_root};
use warden_policy::{McpServer, Policy};

#[derive(Debug, Args)]
pub struct InventoryArgs {
    /// One JSON document instead of a table.
    #[arg(long)]
    json: bool,
    /// Scan this home folder only (no system-wide folders; Homebrew only in DIR/.linuxbrew);
    /// default: $HOME plus the system's npm, Python and Homebrew folders and /opt.
    #[arg(long, value_name = "DIR")]
    home: Option<PathBuf>,
    /// List the MCP servers every client configures (user scope, and each `--project`) instead,
    /// each with what the policy's `[mcp]` says of it.
    #[arg(long)]
    mcp: bool,
    /// A project folder whose MCP configuration is read too (repeatable; with `--mcp`).
    #[arg(long, value_name = "DIR", requires = "mcp")]
    project: Vec<PathBuf>,
}

/// `warden inventory --mcp`: the configured MCP servers and the policy's word on each.
fn run_mcp(policy: &Policy, home: &std::path::Path, args: &InventoryArgs) -> Result<()> {
    let (found, notes) = mcp_servers(home, &args.project);
    for note in &notes {
        eprintln!("warning: {}: {}", note.path.display(), note.message);
    }
    let verdict = |server: &McpFound| -> Option<String> {
        let mcp = policy.mcp.as_ref()?;
        let as_policy =
            McpServer { name: server.name.clone(), command: server.command.clone(), url: server.url.clone() };
        mcp.permits(&as_policy).err()
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let rows: Vec<serde_json::Value> = found
            .iter()
            .map(|f| {
                let mut row = serde_json::to_value(f).expect("plain data");
                row["denied"] = serde_json::json!(verdict(f));
                row
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
        return Ok(());
    }
    if found.is_empty() {
        writeln!(out, "no MCP servers configured under {}", home.display())?;
    }
    for server in &found {
        let target =
            if server.command.is_empty() { server.url.clone().unwrap_or_default() } else { server.command.join(" ") };
        let word = verdict(server).map(|reason| format!("  DENIED: {reason}")).unwrap_or_default();
        writeln!(
            out,
            "{:<12} {:<8} {:<20} {:<6} {target}  ({}){word}",
            server.client,
            server.scope,
            server.name,
            server.transport,
            server.file.display()
        )?;
    }
    Ok(())
}

pub fn run(policy: &Policy, args: InventoryArgs) -> Result<()> {
    if args.mcp {
        let home = match &args.home {
            Some(home) => home.clone(),
            None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set; pass --home")?),
        };
        return run_mcp(policy, &home, &args);
    }
    let locations = match args.home {
        Some(home) => Locations::under_home(home),
        None => {
            let home = std::env::var_os("HOME").context("HOME is not set; pass --home")?;
            Locations::standard(home, npm_global_root())
        }
    };
    let scanned = inventory(&policy.catalog(), &locations);
    // Notes go to stderr so that `--json` output stays one document of installations.
    for note in &scanned.notes {
        eprintln!("warning: {}: {}", note.path.display(), note.message);
    }
    let found = scanned.installed;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &found)?;
        writeln!(out)?;
        return Ok(());
    }
    if found.is_empty() {
        writeln!(out, "no AI tools found under {}", locations.home.display())?;
        return Ok(());
    }
    for item in &found {
        writeln!(out, "{}", text_line(item))?;
    }
    Ok(())
}

fn text_line(item: &Installed) -> String {
    let kind = serde_json::to_value(item.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let place = item.place.as_deref().map(|p| format!(" ({p})")).unwrap_or_default();
    let version = item.version.as_deref().map(|v| format!(" {v}")).unwrap_or_default();
    format!("{:<14} {:<17}{version}{place}  {}", item.tool, kind, item.path.display())
}
