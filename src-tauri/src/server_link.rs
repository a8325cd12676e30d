//! The tray's link to the governance server (`warden-client`): when this device is enrolled,
//! a sync loop feeds the embedded agent the signed policy and approved exceptions (an
//! approval takes effect at once via the long-poll), *Sync now* triggers it, and the
//! exception form's requests go into the durable outbox and on to the server. After each
//! sync (and every half minute) it refreshes "My requests", the tray's freshness state and
//! the exception-expiry pop-ups.

use crate::exception_queue::ExceptionRequest;
use crate::expiry_notice::{GrantedUntil, NoticeKind};
use crate::request_form::{ExceptionDraft, ScopeChoice};
use crate::shell::{Shell, lock, now_ms};
use crate::tray_status::{ServerSyncFacts, server_freshness};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tauri::{AppHandle, Emitter, Manager};
use warden_agent::AgentHandle;
use warden_api::{ExceptionRequestCreate, ExceptionState};
use warden_client::{Device, Enforcement, StateDir, SyncLoop, SyncOptions, SyncStatus};
use warden_policy::{Exception, Policy};
use warden_store::Store;

/// The running sync loop, when the device is enrolled.
#[derive(Debug, Default)]
pub struct ServerSlot {
    running: Mutex<Option<(Arc<Device>, SyncLoop)>>,
    /// Expiry pop-ups already shown (once each per run).
    noticed: Mutex<HashSet<(String, NoticeKind)>>,
}

/// How often the freshness and expiry checks run between syncs.
const CHECK_EVERY: Duration = Duration::from_secs(30);

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
    // The local users bound to the owner account at enrollment: their launches are its.
    agent.set_accounts(device.enrollment().accounts());
    let options = SyncOptions::default();
    let interval = options.interval;
    let sync = warden_client::sync::spawn(device.clone(), Arc::new(AgentEnforcement(agent)), options);
    let status = sync.status.clone();
    *crate::shell::lock(&app.state::<ServerSlot>().running) = Some((device.clone(), sync));
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let mut status = status;
        let mut seen_syncs = 0;
        loop {
            let now = status.borrow_and_update().clone();
            let synced = now.syncs != seen_syncs;
            seen_syncs = now.syncs;
            // File reads and the D-Bus pop-up block: keep them off the async workers.
            let (app, device) = (app.clone(), device.clone());
            let _ =
                tauri::async_runtime::spawn_blocking(move || after_sync(&app, &device, &now, interval, synced)).await;
            tokio::select! {
                changed = status.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(CHECK_EVERY) => {}
            }
        }
    });
}

/// Brings the tray's freshness state up to date, tells the windows when a sync brought a new
/// request list, and shows the expiry pop-ups that are due.
fn after_sync(app: &AppHandle, device: &Device, status: &SyncStatus, interval: Duration, synced: bool) {
    let now = now_ms();
    let facts = ServerSyncFacts {
        last_error: status.last_error.clone(),
        policy_confirmed_ms: device.cached_policy().ok().flatten().map(|cached| cached.confirmed_at * 1000),
        enrolled_at_ms: device.enrollment().enrolled_at * 1000,
    };
    let shell = app.state::<Shell>();
    shell.set_server_freshness(server_freshness(&facts, interval.as_millis() as i64, now));
    if let Err(e) = crate::tray::refresh(app) {
        eprintln!("warden-tray: tray refresh: {e}");
    }
    if synced {
        let _ = app.emit(crate::commands::REQUESTS_EVENT, ());
    }
    let Ok(Some((_, records))) = warden_client::cached_requests(device.state()) else { return };
    let policy = shell.policy();
    let granted: Vec<GrantedUntil> = records
        .iter()
        .filter(|r| matches!(r.state, ExceptionState::Approved | ExceptionState::Expired))
        .filter_map(|r| {
            Some(GrantedUntil {
                request_id: r.id.clone(),
                tool_name: crate::views::tool_name(&policy.catalog, Some(&r.tool)),
                expires_at_ms: r.expires_at? * 1000,
            })
        })
        .collect();
    let slot = app.state::<ServerSlot>();
    let mut noticed = lock(&slot.noticed);
    for notice in crate::expiry_notice::due(&granted, &noticed, now) {
        let (title, body) = notice.text(local_clock);
        if let Err(e) = crate::desktop_notification::inform(&title, &body) {
            eprintln!("warden-tray: {body} ({e})");
        }
        noticed.insert((notice.request_id, notice.kind));
    }
}

/// "14:30" in local time.
fn local_clock(ms: i64) -> String {
    use chrono::TimeZone;
    chrono::Local.timestamp_millis_opt(ms).single().map_or_else(|| "?".into(), |t| t.format("%H:%M").to_string())
}

/// "My requests" when enrolled: the server's live status of each (as the sync loop last
/// fetched it: every sync, and at once when the server pushes a decision), plus the outbox
/// and requests kept locally from before enrolling. `Ok(None)` when not enrolled.
pub fn my_requests(
    app: &AppHandle,
    local: &[ExceptionRequest],
    now_ms: i64,
) -> Result<Option<Vec<ExceptionRequest>>, String> {
    let Some(slot) = app.try_state::<ServerSlot>() else { return Ok(None) };
    let Some(device) = lock(&slot.running).as_ref().map(|(device, _)| device.clone()) else { return Ok(None) };
    let outbox = device.store().pending_exception_requests(100).map_err(|e| e.to_string())?;
    let server = warden_client::cached_requests(device.state()).map_err(|e| e.to_string())?;
    let policy = app.state::<Shell>().policy();
    Ok(Some(crate::my_requests::merge(
        local,
        device.enrollment().enrolled_at * 1000,
        &outbox,
        &server.map(|(_, records)| records).unwrap_or_default(),
        now_ms,
        |id| crate::views::tool_name(&policy.catalog, Some(id)),
    )))
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
