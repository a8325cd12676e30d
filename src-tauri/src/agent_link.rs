//! Where launch events come from: the embedded agent (`warden-agent`), which watches
//! process starts, decides, enforces and records. This is the one module that knows the
//! agent's API; the rest of the shell only sees `LaunchEvent`s via `crate::on_launch`.
//! It also runs the inventory scan the catalog window shows ("installed here").

use crate::shell::{PolicyInForce, Shell};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tauri::{AppHandle, Manager};
use tokio::sync::broadcast::error::RecvError;
use warden_agent::{AgentConfig, AgentHandle};

/// How many stored events the tray loads at start.
const HISTORY: usize = 500;

/// The running agent, or why there is none.
#[derive(Debug, Default)]
pub struct AgentSlot {
    agent: Mutex<Option<Arc<AgentHandle>>>,
    problem: Mutex<Option<String>>,
}

static DESCRIPTION: Mutex<String> = Mutex::new(String::new());

/// Starts the agent and the inventory scan; forwards every launch event to the shell.
pub fn start(app: AppHandle) {
    app.manage(AgentSlot::default());
    let scan_app = app.clone();
    tauri::async_runtime::spawn_blocking(move || scan_inventory(&scan_app));
    tauri::async_runtime::spawn(async move {
        let (state_dir, policy) = {
            let shell = app.state::<Shell>();
            (shell.config.state_dir.clone(), shell.policy())
        };
        let mut config = AgentConfig::new(state_dir, (*policy.policy).clone());
        config.policy_version = Some(policy.version.clone());
        // The pre-exec gate marks whole filesystems and belongs to the system service run as
        // root, not to a developer's tray session.
        config.gate = None;
        let agent = match warden_agent::start(config).await {
            Ok(agent) => Arc::new(agent),
            Err(e) => {
                let problem = format!("not running: {e}");
                eprintln!("warden-tray: agent {problem}");
                *crate::shell::lock(&DESCRIPTION) = problem.clone();
                *crate::shell::lock(&app.state::<AgentSlot>().problem) = Some(problem);
                return;
            }
        };
        let mut events = agent.subscribe();
        let status = agent.status();
        *crate::shell::lock(&DESCRIPTION) = match &status.fallback_reason {
            Some(why) => format!("{} ({why})", status.source),
            None => status.source.clone(),
        };
        eprintln!("warden-tray: agent watching launches with {}", status.source);
        {
            let shell = app.state::<Shell>();
            // History fills the activity window; it raises no pop-ups.
            for event in agent.recent_events(HISTORY).into_iter().rev() {
                shell.record(event);
            }
        }
        let _ = crate::tray::refresh(&app);
        *crate::shell::lock(&app.state::<AgentSlot>().agent) = Some(agent.clone());
        // Enrolled devices sync policy and exceptions from the server into the agent.
        let state_dir = app.state::<Shell>().config.state_dir.clone();
        crate::server_link::start(&app, &state_dir, agent.clone());
        loop {
            match events.recv().await {
                Ok(event) => crate::on_launch(&app, event),
                Err(RecvError::Lagged(missed)) => eprintln!("warden-tray: skipped {missed} events (busy)"),
                Err(RecvError::Closed) => break,
            }
        }
    });
}

fn scan_inventory(app: &AppHandle) {
    let Some(home) = std::env::var_os("HOME") else { return };
    let catalog = app.state::<Shell>().policy().catalog;
    let locations = warden_monitor::inventory::Locations::standard(home, None);
    let found = warden_monitor::inventory::scan(&catalog, &locations);
    let installed: HashMap<String, bool> = found.into_iter().map(|i| (i.tool, true)).collect();
    app.state::<Shell>().set_installed(installed);
}

/// Hands a changed policy to the agent.
pub fn policy_changed(app: &AppHandle, policy: &PolicyInForce) {
    if let Some(slot) = app.try_state::<AgentSlot>()
        && let Some(agent) = crate::shell::lock(&slot.agent).as_ref()
    {
        agent.set_policy((*policy.policy).clone(), Some(policy.version.clone()));
    }
}

/// Which event source feeds the tray (About window).
pub fn describe() -> String {
    let description = crate::shell::lock(&DESCRIPTION).clone();
    if description.is_empty() { "starting".to_owned() } else { description }
}
