//! The agent in the foreground with JSON lines out, for tests and benchmarks that need it
//! as a process of its own (to stop it with SIGSTOP, to overflow its notice queue): one
//! line `{"kind":"ready","pid":…}` once it watches, then one per launch event
//! (`{"kind":"launch",…}`, the `LaunchEvent` fields) and per notice (`rescan`,
//! `exception-ended`, `session-stopped`). SIGTERM or SIGINT ends it.
//!
//! `agent-run --state-dir DIR [--source proc-connector|poll|auto|fanotify] [--policy FILE] [--no-sweep]`

use anyhow::{Context, bail};
use std::io::Write;
use std::path::PathBuf;
use warden_agent::{AgentConfig, SourceChoice};
use warden_policy::Policy;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1); // argv[0] is the program itself
    let mut state_dir = None;
    let mut source = SourceChoice::ProcConnector;
    let mut policy = Policy::embedded();
    let mut sweep = true;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--state-dir" => state_dir = Some(PathBuf::from(args.next().context("--state-dir DIR")?)),
            "--source" => {
                let text = args.next().context("--source NAME")?;
                source = SourceChoice::parse(&text).with_context(|| format!("unknown source {text:?}"))?;
            }
            "--policy" => {
                let file = args.next().context("--policy FILE")?;
                let text = std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?;
                policy = Policy::parse(&file, &text)?;
            }
            "--no-sweep" => sweep = false,
            other => bail!("unknown argument {other:?}"),
        }
    }
    let mut config = AgentConfig::new(state_dir.context("--state-dir DIR is required")?, policy);
    config.source = source;
    config.sweep_running = sweep;
    // No pre-exec gate unless asked for: the tests and benchmarks decide by exec events.
    if config.source != SourceChoice::Fanotify {
        config.gate = None;
    }
    let print = |line: serde_json::Value| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    warden_agent::run_foreground_with_notices(
        config,
        |status| print(serde_json::json!({"kind": "ready", "pid": std::process::id(), "source": status.source})),
        |event| {
            let mut line = serde_json::to_value(event).unwrap_or_default();
            line["kind"] = "launch".into();
            print(line);
        },
        |notice| print(serde_json::to_value(notice).unwrap_or_default()),
    )?;
    Ok(())
}
