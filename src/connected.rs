//! The CLI's link to the governance server: opening the enrolled device, and running the agent
//! with the sync loop beside it so approvals and new policy reach enforcement at once.

use anyhow::{Context, Result};
use std::path::Path;
use std::sync::Arc;
use warden_agent::{AgentConfig, AgentHandle, AgentStatus};
use warden_api::LaunchEvent;
use warden_client::{Device, Enforcement, StateDir, SyncOptions};
use warden_policy::{Exception, Mode, Policy};
use warden_store::Store;

/// The state directory the device and the agent share: `--state-dir`, else the default.
pub fn state_dir(explicit: Option<&Path>) -> StateDir {
    match explicit {
        Some(dir) => StateDir::new(dir),
        None => StateDir::from_env(),
    }
}

static POLICY_OVERRIDDEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Records that `--policy FILE` was given: then the server's policy does not replace it.
pub fn set_policy_overridden(overridden: bool) {
    POLICY_OVERRIDDEN.store(overridden, std::sync::atomic::Ordering::Relaxed);
}

pub fn policy_overridden() -> bool {
    POLICY_OVERRIDDEN.load(std::sync::atomic::Ordering::Relaxed)
}

/// A runtime for one command's HTTP calls.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")
}

/// Opens the enrolled device (token from the keyring) and its outbox.
pub fn open_device(state: &StateDir) -> Result<Device> {
    let store =
        Arc::new(Store::open(state.events_db()).with_context(|| format!("opening {}", state.events_db().display()))?);
    Ok(Device::open(state.clone(), store)?)
}

/// The agent seen as the sync loop's enforcement side.
struct AgentEnforcement(Arc<AgentHandle>);

impl Enforcement for AgentEnforcement {
    fn set_policy(&self, policy: Policy, version: Option<String>) {
        self.0.set_policy(policy, version);
    }

    fn set_exceptions(&self, exceptions: Vec<Exception>) {
        self.0.set_exceptions(exceptions);
    }
}

/// Runs the agent in the foreground until SIGINT/SIGTERM, like
/// `warden_agent::run_foreground`; when this device is enrolled (and no `--policy` file was
/// given), it starts from the cached signed policy and keeps it and the exceptions in sync.
pub fn run_foreground(
    mut config: AgentConfig,
    policy_overridden: bool,
    on_start: impl FnOnce(&AgentStatus),
    mut on_event: impl FnMut(&LaunchEvent),
) -> Result<()> {
    let state = StateDir::new(&config.state_dir);
    let enrollment = state.load_enrollment().ok().flatten();
    // The local users bound to the device's owner account at enrollment: their launches are
    // that account's (attribution, exceptions), with or without a server policy in force.
    if let Some(enrollment) = &enrollment {
        config.accounts = enrollment.accounts();
    }
    let enrolled = !policy_overridden && enrollment.is_some();
    let status_file = state.root().join(AGENT_STATUS_FILE);
    let on_start = move |status: &AgentStatus| {
        write_agent_status(&status_file, status);
        on_start(status);
    };
    if !enrolled {
        return warden_agent::run_foreground(config, on_start, on_event).context("running the agent");
    }
    let monitor_forced = config.policy.mode == Mode::Monitor;
    // Enforce the last good policy from the first instant, even offline.
    if let Ok((Some((mut policy, version)), exceptions)) = warden_client::cached_rules(&state) {
        if monitor_forced {
            policy.mode = Mode::Monitor;
        }
        config.policy = policy;
        config.policy_version = Some(version.to_string());
        config.exceptions = exceptions;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let agent = Arc::new(warden_agent::start(config).await.context("starting the agent")?);
        let mut events = agent.subscribe();
        on_start(&agent.status());
        let sync = match open_device(&state) {
            Ok(device) => {
                eprintln!(
                    "warden: enrolled with {} as device {}; syncing policy and exceptions",
                    device.enrollment().server,
                    device.enrollment().device_id
                );
                let enforcement: Arc<dyn Enforcement> =
                    Arc::new(MonitorAware { agent: AgentEnforcement(agent.clone()), monitor_forced });
                let sync = warden_client::sync::spawn(Arc::new(device), enforcement, SyncOptions::default());
                tokio::spawn(report_sync(sync.status.clone()));
                Some(sync)
            }
            Err(error) => {
                eprintln!("warden: warning: not syncing with the server: {error:#}");
                None
            }
        };
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("listening for SIGTERM")?;
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(event) => {
                        on_event(&event);
                        // A block or warning should reach the server soon, not at the next tick.
                        if let Some(sync) = &sync {
                            sync.trigger.sync_now();
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
                _ = tokio::signal::ctrl_c() => break,
                _ = terminate.recv() => break,
            }
        }
        if let Some(sync) = sync {
            sync.stop();
        }
        if let Ok(agent) = Arc::try_unwrap(agent) {
            agent.shutdown().await;
        }
        Ok(())
    })
}

/// Where a running agent says which source and mode it runs with (for `warden status`).
pub const AGENT_STATUS_FILE: &str = "agent.json";

/// What `warden status` reads about the running agent.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AgentNote {
    pub pid: u32,
    pub source: String,
    pub mode: String,
    pub started_at: i64,
}

fn write_agent_status(path: &Path, status: &AgentStatus) {
    let note = AgentNote {
        pid: std::process::id(),
        source: status.source.clone(),
        mode: match status.mode {
            Mode::Enforce => "enforce".into(),
            Mode::Monitor => "monitor".into(),
        },
        started_at: crate::now(),
    };
    if let Ok(text) = serde_json::to_string(&note) {
        // Best effort: status display only; enforcement does not depend on it.
        let temporary = path.with_extension("json.tmp");
        if std::fs::write(&temporary, text).is_ok() {
            let _ = std::fs::rename(&temporary, path);
        }
    }
}

/// Tells the terminal when the sync state changes: a new policy, a new set of exceptions,
/// the server becoming unreachable or reachable again.
async fn report_sync(mut status: tokio::sync::watch::Receiver<warden_client::SyncStatus>) {
    let mut last = warden_client::SyncStatus::default();
    while status.changed().await.is_ok() {
        let now = status.borrow_and_update().clone();
        if now.policy_version != last.policy_version || now.active_exceptions != last.active_exceptions {
            eprintln!(
                "warden: sync: policy version {}, {} active exception(s)",
                now.policy_version.map_or("?".into(), |v| v.to_string()),
                now.active_exceptions
            );
        }
        match (&now.last_error, &last.last_error) {
            (Some(error), None) => eprintln!("warden: sync failing (will retry): {error}"),
            (None, Some(_)) => eprintln!("warden: sync: server reachable again"),
            _ => {}
        }
        last = now;
    }
}

/// Keeps `--monitor` in force over policies that arrive from the server.
struct MonitorAware {
    agent: AgentEnforcement,
    monitor_forced: bool,
}

impl Enforcement for MonitorAware {
    fn set_policy(&self, mut policy: Policy, version: Option<String>) {
        if self.monitor_forced {
            policy.mode = Mode::Monitor;
        }
        self.agent.set_policy(policy, version);
    }

    fn set_exceptions(&self, exceptions: Vec<Exception>) {
        self.agent.set_exceptions(exceptions);
    }
}
