//! `warden watch`: runs the agent in the foreground and prints one line per launch event
//! (JSON lines with `--json`), plus the developer-facing sentence for a warning or block.

use anyhow::{Context, Result, bail};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use warden_agent::{AgentConfig, AgentStatus, SourceChoice};
use warden_api::{LaunchEvent, Outcome};
use warden_policy::{Mode, Policy};

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
    /// Event source: auto, proc-connector, fanotify (root), poll, or poll:<N>ms.
    #[arg(long, default_value = "auto", value_name = "SOURCE")]
    source: String,
    /// Report only: nothing is killed, events say what enforce would have done.
    #[arg(long)]
    monitor: bool,
    /// Where the event log lives (default: $XDG_STATE_HOME/warden or ~/.local/state/warden).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// A path whose filesystem the fanotify pre-exec gate covers (repeatable; default: every
    /// local filesystem, and each one mounted later).
    #[arg(long = "gate-mount", value_name = "DIR")]
    gate_mounts: Vec<PathBuf>,
    /// Leave tools that are already running alone (decide only new launches).
    #[arg(long)]
    no_sweep: bool,
}

/// `$XDG_STATE_HOME/warden`, or `~/.local/state/warden`.
pub fn default_state_dir() -> Result<PathBuf> {
    if let Some(state) = std::env::var_os("XDG_STATE_HOME").filter(|s| !s.is_empty()) {
        return Ok(PathBuf::from(state).join("warden"));
    }
    let home = std::env::var_os("HOME").context("neither XDG_STATE_HOME nor HOME is set; pass --state-dir")?;
    Ok(PathBuf::from(home).join(".local/state/warden"))
}

pub fn run(mut policy: Policy, args: WatchArgs) -> Result<()> {
    let Some(source) = SourceChoice::parse(&args.source) else {
        bail!("unknown --source {:?}: use auto, proc-connector, fanotify, poll or poll:<N>ms", args.source);
    };
    if args.monitor {
        policy.mode = Mode::Monitor;
    }
    let state_dir = match args.state_dir {
        Some(dir) => dir,
        None => default_state_dir()?,
    };
    let mut config = AgentConfig::new(state_dir, policy);
    config.source = source;
    config.sweep_running = !args.no_sweep;
    if !args.gate_mounts.is_empty() {
        config.gate = warden_agent::GateScope::listed(args.gate_mounts);
    }
    let json = args.json;
    // Enrolled devices run the server sync beside the agent (src/connected.rs).
    crate::connected::run_foreground(config, crate::connected::policy_overridden(), announce, move |event| {
        let mut out = std::io::stdout().lock();
        let line = if json { json_line(event) } else { text_line(event) };
        // A closed stdout (`warden watch | head`) must not stop enforcement.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    })
}

/// The start-up line on stderr: which source, which mode, and why not a better one.
fn announce(status: &AgentStatus) {
    let gate = if status.gate_marks.is_empty() {
        String::new()
    } else {
        let marks: Vec<String> = status.gate_marks.iter().map(ToString::to_string).collect();
        format!(" + fanotify pre-exec gate on {}", marks.join(", "))
    };
    let mode = match status.mode {
        Mode::Enforce => "enforce",
        Mode::Monitor => "monitor (nothing is killed)",
    };
    eprintln!("warden: watching with {}{gate}; policy {:?}, mode {mode}", status.source, status.policy_name);
    if let Some(reason) = &status.fallback_reason {
        eprintln!("warden: note: {reason}");
    }
    for refusal in &status.gate_refusals {
        eprintln!("warden: note: not gated: {refusal}");
    }
    if let Some(recovery) = &status.store_recovery {
        eprintln!("warden: warning: {recovery}");
    }
}

fn outcome_word(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Allowed => "allowed",
        Outcome::Warned => "warned",
        Outcome::Denied => "denied",
        Outcome::Killed => "killed",
        Outcome::WouldBlock => "would-block",
        Outcome::NotPermitted => "not-permitted",
        Outcome::Exited => "exited",
    }
}

fn rfc3339_ms(at_ms: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(at_ms.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}

/// The JSON line: time, pid, tool, action, outcome, reason, exe, argv, cwd and the rest
/// of the event.
fn json_line(event: &LaunchEvent) -> String {
    let mut value = serde_json::to_value(event).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.insert("time".into(), rfc3339_ms(event.at_ms).into());
    }
    value.to_string()
}

/// The text line, and for a warning or block the sentence for the developer.
fn text_line(event: &LaunchEvent) -> String {
    let tool = event.tool.as_deref().unwrap_or("?");
    let mut line = format!(
        "{} pid {} {tool}: {} ({}) {} [{}]",
        rfc3339_ms(event.at_ms),
        event.pid,
        event.action,
        outcome_word(event.outcome),
        event.argv.join(" "),
        event.source
    );
    let message = match event.outcome {
        Outcome::Killed | Outcome::Denied => Some(format!("blocked {tool}: {}", event.reason)),
        Outcome::WouldBlock => Some(format!("{tool} would be blocked (monitor mode): {}", event.reason)),
        Outcome::NotPermitted => {
            Some(format!("{tool} should be blocked but belongs to another user: {}", event.reason))
        }
        Outcome::Warned => Some(format!("warning about {tool}: {}", event.reason)),
        Outcome::Exited | Outcome::Allowed => None,
    };
    if let Some(message) = message {
        line.push_str("\n  ");
        line.push_str(&message);
    }
    line
}
