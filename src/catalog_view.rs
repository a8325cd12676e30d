//! `warden catalog`: every known AI tool and what the policy says about it.

use anyhow::Result;
use serde::Serialize;
use std::io::{BufWriter, Write};
use warden_policy::{Action, Policy, Tool, tool_status};

#[derive(Serialize)]
struct Entry<'a> {
    id: &'a str,
    name: &'a str,
    vendor: &'a str,
    kind: warden_policy::ToolKind,
    hosting: warden_policy::Hosting,
    action: Action,
    sanctioned: bool,
    reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<String>,
}

pub fn run(policy: &Policy, json: bool) -> Result<()> {
    let catalog = policy.catalog();
    let mut entries: Vec<Entry<'_>> = catalog.tools().iter().map(|tool| entry(policy, tool)).collect();
    // The sanctioned assistant first, then the most restricted: what a developer asks first.
    entries.sort_by(|a, b| b.sanctioned.cmp(&a.sanctioned).then(b.action.cmp(&a.action)).then(a.name.cmp(b.name)));
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if json {
        let document = serde_json::json!({
            "policy": policy.name,
            "mode": policy.mode,
            "assistant": policy.assistant,
            "tools": entries,
        });
        serde_json::to_writer_pretty(&mut out, &document)?;
        writeln!(out)?;
    } else {
        writeln!(out, "Policy: {} ({} mode)", policy.name, policy.mode)?;
        if let Some(assistant) = &policy.assistant {
            writeln!(out, "Sanctioned assistant: {} <{}>", assistant.name, assistant.url)?;
        }
        writeln!(out)?;
        for entry in &entries {
            let status = match (entry.sanctioned, entry.action) {
                (true, _) => "approved*",
                (false, Action::Allow) => "approved",
                (false, Action::Warn) => "warn",
                (false, Action::Block) => "blocked",
            };
            writeln!(out, "{status:<10} {:<16} {:<26} {}", entry.id, entry.name, entry.reason)?;
        }
        writeln!(out, "\n* the sanctioned assistant")?;
    }
    out.flush()?;
    Ok(())
}

fn entry<'a>(policy: &Policy, tool: &'a Tool) -> Entry<'a> {
    let status = tool_status(policy, tool);
    Entry {
        id: &tool.id,
        name: &tool.name,
        vendor: &tool.vendor,
        kind: tool.kind,
        hosting: tool.hosting,
        action: status.action,
        sanctioned: policy.is_assistant(&tool.id),
        reason: status.reason,
        link: status.link,
    }
}
