//! `warden watch`: prints one line per launch event (JSON lines with `--json`), plus the
//! developer-facing sentence for a warning or block. With the system service running it follows
//! the service's live stream (the caller's own launches); otherwise — or with `--personal` — it
//! runs the personal runtime (`warden_service::Runtime`, the same runtime as `wardend`) as the
//! developer, serving the local API on `<state dir>/warden.sock`.

use anyhow::{Context, Result, bail};
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};
use warden_agent::{AgentConfig, AgentStatus, SourceChoice};
use warden_api::local::{LiveEvent, RuntimeMode, SyncState};
use warden_api::{ConnectEvent, ConnectOutcome, LaunchEvent, Outcome};
use warden_policy::{Mode, Policy};
use warden_service::{Runtime, RuntimeConfig};

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
    /// Run a personal runtime even when the system service runs (it enforces as you and is not
    /// tamper-proof).
    #[arg(long)]
    personal: bool,
}

/// `$XDG_STATE_HOME/warden`, or `~/.local/state/warden`.
pub fn default_state_dir() -> Result<PathBuf> {
    if let Some(state) = std::env::var_os("XDG_STATE_HOME").filter(|s| !s.is_empty()) {
        return Ok(PathBuf::from(state).join("warden"));
    }
    let home = std::env::var_os("HOME").context("neither XDG_STATE_HOME nor HOME is set; pass --state-dir")?;
    Ok(PathBuf::from(home).join(".local/state/warden"))
}

pub fn run(mut policy: Policy, policy_overridden: bool, socket: Option<&Path>, args: WatchArgs) -> Result<()> {
    let Some(source) = SourceChoice::parse(&args.source) else {
        bail!("unknown --source {:?}: use auto, proc-connector, fanotify, poll or poll:<N>ms", args.source);
    };
    let json = args.json;
    let print = move |event: &LaunchEvent| {
        let mut out = std::io::stdout().lock();
        let line = if json { json_line(event) } else { text_line(event) };
        // A closed stdout (`warden watch | head`) must not stop enforcement.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    if !args.personal
        && args.state_dir.is_none()
        && !policy_overridden
        && let Some(service) = crate::service::system_service(socket)?
    {
        let print_connect = move |event: &ConnectEvent| {
            let mut out = std::io::stdout().lock();
            let line = if json { connect_json_line(event) } else { connect_text_line(event) };
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        };
        return follow(service, print, print_connect);
    }
    if args.monitor {
        policy.mode = Mode::Monitor;
    }
    let state_dir = match args.state_dir {
        Some(dir) => dir,
        None => default_state_dir()?,
    };
    let mut agent = AgentConfig::new(state_dir.clone(), policy);
    agent.source = source;
    agent.sweep_running = !args.no_sweep;
    if !args.gate_mounts.is_empty() {
        agent.gate = warden_agent::GateScope::listed(args.gate_mounts);
    }
    let config = RuntimeConfig {
        mode: RuntimeMode::Personal,
        agent,
        token_storage: warden_client::TokenStorage::Keyring,
        sync: warden_client::SyncOptions::default(),
        policy_overridden,
        monitor_forced: args.monitor,
        controls: None,
        gateway: None,
    };
    let socket = socket
        .map_or_else(|| warden_client::personal_socket(&warden_client::StateDir::new(&state_dir)), Path::to_path_buf);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run_personal(config, socket, print))
}

/// The personal runtime in the foreground until SIGINT/SIGTERM.
async fn run_personal(config: RuntimeConfig, socket: PathBuf, print: impl Fn(&LaunchEvent)) -> Result<()> {
    let enrolled = !config.policy_overridden
        && warden_client::StateDir::new(&config.agent.state_dir).load_enrollment().ok().flatten().is_some();
    let runtime = Runtime::start(config).await.context("starting the agent")?;
    let mut events = runtime.agent().subscribe();
    let mut live = runtime.subscribe();
    announce(&runtime.agent().status());
    eprintln!(
        "warden: personal mode: this runtime runs as you and is not tamper-proof (the system service, wardend, is); \
         local API on {}",
        socket.display()
    );
    if let Some(device) = runtime.status(&runtime.caller(0)).enrolled.filter(|_| enrolled) {
        eprintln!(
            "warden: enrolled with {} as device {}; syncing policy and exceptions",
            device.server, device.device_id
        );
    }
    let listener = warden_service::local_api::bind(&socket, false)
        .with_context(|| format!("listening on {}", socket.display()))?;
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let api = tokio::spawn(warden_service::local_api::serve(runtime.clone(), listener, async {
        let _ = api_stopped.await;
    }));
    let terminated = warden_service::termination_signal();
    tokio::pin!(terminated);
    let mut last_sync = None;
    let mut reason = "the agent stopped".to_owned();
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => print(&event),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            Ok(LiveEvent::Sync { sync }) = live.recv() => {
                report_sync(last_sync.as_ref(), &sync);
                last_sync = Some(sync);
            }
            signal = &mut terminated => {
                reason = format!("signal {signal}");
                break;
            }
        }
    }
    let _ = stop_api.send(());
    let _ = api.await;
    let _ = std::fs::remove_file(&socket);
    runtime.shutdown(&reason).await;
    Ok(())
}

/// Tells the terminal when the sync state changes: a new policy, a new set of exceptions, the
/// server becoming unreachable or reachable again.
fn report_sync(last: Option<&SyncState>, now: &SyncState) {
    if last.is_none_or(|l| l.policy_version != now.policy_version || l.active_exceptions != now.active_exceptions) {
        eprintln!(
            "warden: sync: policy version {}, {} active exception(s)",
            now.policy_version.map_or("?".into(), |v| v.to_string()),
            now.active_exceptions
        );
    }
    match (&now.last_error, last.and_then(|l| l.last_error.as_ref())) {
        (Some(error), None) => eprintln!("warden: sync failing (will retry): {error}"),
        (None, Some(_)) => eprintln!("warden: sync: server reachable again"),
        _ => {}
    }
}

/// Follows the system service's live stream: the caller's own launches.
fn follow(
    service: crate::service::Connected,
    print: impl Fn(&LaunchEvent),
    print_connect: impl Fn(&ConnectEvent),
) -> Result<()> {
    let status = service.call(service.client.status())?;
    eprintln!(
        "warden: protected by {}; watching with {} (policy {:?}, mode {})",
        crate::service::mode_words(service.hello.mode),
        status.source,
        status.policy_name,
        status.enforcement
    );
    if let Some(network) = &status.network {
        eprintln!("warden: network: {}", network.detail);
    }
    let mut live = service.call(service.client.live())?;
    service.runtime.block_on(async {
        let terminated = warden_service::terminated();
        tokio::pin!(terminated);
        loop {
            tokio::select! {
                event = live.recv() => match event {
                    Some(LiveEvent::Launch { event }) => print(&event),
                    Some(LiveEvent::Connect { event }) => print_connect(&event),
                    Some(_) => {}
                    None => {
                        eprintln!("warden: the service closed the stream");
                        break;
                    }
                },
                () = &mut terminated => break,
            }
        }
    });
    Ok(())
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

/// A connection as a JSON line: `kind` (`connect`), `time`, then the event's fields (pid, exe,
/// user, tool, host, address, port, protocol, action, outcome, rule, reason).
fn connect_json_line(event: &ConnectEvent) -> String {
    let mut value = serde_json::to_value(event).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.insert("kind".into(), "connect".into());
        object.insert("time".into(), rfc3339_ms(event.at_ms).into());
    }
    value.to_string()
}

/// A connection as text, with the developer's sentence when it was refused or warned about.
fn connect_text_line(event: &ConnectEvent) -> String {
    let who = event.tool.as_deref().unwrap_or("no catalog tool");
    let outcome = match event.outcome {
        ConnectOutcome::Blocked => "blocked",
        ConnectOutcome::Warned => "warned",
        ConnectOutcome::WouldBlock => "would-block",
        ConnectOutcome::Allowed => "allowed",
    };
    let mut line = format!(
        "{} pid {} {} ({who}): connect {}:{}/{} {} ({outcome}) [{}]",
        rfc3339_ms(event.at_ms),
        event.pid,
        event.exe.as_deref().unwrap_or("?"),
        event.host,
        event.port,
        event.protocol,
        event.action,
        event.rule
    );
    if matches!(event.outcome, ConnectOutcome::Blocked | ConnectOutcome::WouldBlock | ConnectOutcome::Warned)
        && !event.reason.is_empty()
    {
        line.push_str("\n  ");
        line.push_str(&event.reason);
    }
    line
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
