//! The tray's link to the governance server (`warden-client`): when this device is enrolled,
//! a sync loop feeds the embedded agent the signed policy and approved exceptions (an
//! approval takes effect at once via the long-poll), *Sync now* triggers it, and the
//! exception form's requests go into the durable outbox and on to the server.

use crate::request_form::{ExceptionDraft, ScopeChoice};
use std::sync::{Arc, Mutex};
use tauri::{AppHandle, Manager};
use warden_agent::AgentHandle;
use warden_api::ExceptionRequestCreate;
use warden_client::{Device, Enforcement, StateDir, SyncLoop, SyncOptions};
use warden_policy::{Exception, Policy};
use warden_store::Store;

/// The running sync loop, when the device is enrolled.
#[derive(Debug, Default)]
pub struct ServerSlot {
    running: Mutex<Option<(Arc<Device>, SyncLoop)>>,
}

struct AgentEnforcement(Arc<AgentHandle>);

impl Enforcement for AgentEnforcement {
    fn set_policy(&self, policy: Policy, version: Option<String>) {
        self.0.set_policy(policy, version);
    }

    fn set_exceptions(&self, exceptions: Vec<Exception>) {
        self.0.set_exceptions(exceptions);
    }
}

/// Starts syncing if `state_dir` holds an enrollment; otherwise does nothing (the tray then
/// keeps requests in its local queue, as before).
pub fn start(app: &AppHandle, state_dir: &std::path::Path, agent: Arc<AgentHandle>) {
    app.manage(ServerSlot::default());
    let state = StateDir::new(state_dir);
    if !matches!(state.load_enrollment(), Ok(Some(_))) {
        return;
    }
    let device = match Store::open(state.events_db())
        .map_err(warden_client::ClientError::from)
        .and_then(|store| Device::open(state, Arc::new(store)))
    {
        Ok(device) => Arc::new(device),
        Err(error) => {
            eprintln!("warden-tray: not syncing with the server: {error}");
            return;
        }
    };
    eprintln!("warden-tray: enrolled with {} as {}", device.enrollment().server, device.enrollment().device_id);
    let sync = warden_client::sync::spawn(device.clone(), Arc::new(AgentEnforcement(agent)), SyncOptions::default());
    *crate::shell::lock(&app.state::<ServerSlot>().running) = Some((device, sync));
}

/// The server this device is enrolled with, for the About window.
pub fn server(app: &AppHandle) -> Option<String> {
    let slot = app.try_state::<ServerSlot>()?;
    let running = crate::shell::lock(&slot.running);
    running
        .as_ref()
        .map(|(device, _)| format!("{} (device {})", device.enrollment().server, device.enrollment().device_id))
}

/// *Sync now*: `Some(server)` when a sync was triggered.
pub fn sync_now(app: &AppHandle) -> Option<String> {
    let slot = app.try_state::<ServerSlot>()?;
    let running = crate::shell::lock(&slot.running);
    let (device, sync) = running.as_ref()?;
    sync.trigger.sync_now();
    Some(device.enrollment().server.clone())
}

/// Puts a request from the form into the durable outbox and triggers a sync. `Ok(false)`
/// when the device is not enrolled (the local queue keeps it).
pub fn submit(app: &AppHandle, draft: &ExceptionDraft) -> Result<bool, String> {
    let Some(slot) = app.try_state::<ServerSlot>() else { return Ok(false) };
    let running = crate::shell::lock(&slot.running);
    let Some((device, sync)) = running.as_ref() else { return Ok(false) };
    let request = ExceptionRequestCreate {
        tool: draft.tool.clone(),
        justification: draft.justification.trim().to_owned(),
        scope: match draft.scope {
            ScopeChoice::Repository => draft.repository.clone(),
            ScopeChoice::Everywhere => None,
        },
        duration_seconds: draft.duration_seconds,
        client_id: None,
    };
    device.queue_request(&request).map_err(|e| e.to_string())?;
    sync.trigger.sync_now();
    Ok(true)
}
