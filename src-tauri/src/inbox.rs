//! The tray's one inbox: a single task that subscribes to the runtime's live stream
//! (`GET /v1/events/live`) and brings the tray's state (`Shell`) up to date from it — launch
//! events (icon, activity window, pop-ups), sync changes (policy, status, my requests,
//! exception-expiry notices) — and that re-subscribes when the runtime goes away and comes back.
//! Nothing else writes what the runtime says into the state.
//!
//! At the first connection it also shows the blocks that happened while no tray was running
//! (the developer's own recent events, read through the socket; the last one shown is
//! remembered in the user's config folder, `missed_blocks.rs`).

use crate::expiry_notice::GrantedUntil;
use crate::missed_blocks;
use crate::shell::{PolicyInForce, Shell, local_clock, lock, now_ms};
use std::collections::HashMap;
use std::time::Duration;
use tauri::{AppHandle, Emitter, Manager};
use warden_api::local::LiveEvent;
use warden_api::{ExceptionState, LaunchEvent};

/// How many of the caller's stored events the tray loads at start.
const HISTORY: usize = 500;

/// How often the status (policy freshness) and the expiry notices are checked between events.
const CHECK_EVERY: Duration = Duration::from_secs(30);

/// How long to wait before subscribing again after the runtime went away.
const RETRY_AFTER: Duration = Duration::from_secs(3);

/// Reads the runtime's policy and status into a new state before the tray is drawn (so the
/// menu names the policy's assistant from the start).
pub async fn prime(shell: &Shell) {
    if let Ok(policy) = shell.link.client.policy().await {
        shell.set_policy(PolicyInForce::from_runtime(policy, shell.mode()));
    }
    if let Ok(status) = shell.link.client.status().await {
        shell.set_status(status);
    }
}

/// Starts the inbox task.
pub fn start(app: AppHandle) {
    tauri::async_runtime::spawn(run(app));
}

async fn run(app: AppHandle) {
    let client = app.state::<Shell>().link.client.clone();
    let mut first = true;
    loop {
        // Subscribe before reading history, so nothing falls between the two (ids dedupe).
        match client.live().await {
            Ok(mut live) => {
                refresh(&app, true).await;
                load_history(&app, first).await;
                if first {
                    let scan = app.clone();
                    tauri::async_runtime::spawn_blocking(move || scan_inventory(&scan));
                }
                first = false;
                let mut check = tokio::time::interval(CHECK_EVERY);
                check.tick().await;
                loop {
                    tokio::select! {
                        event = live.recv() => match event {
                            Some(LiveEvent::Launch { event }) => on_launch(&app, event),
                            Some(LiveEvent::Sync { .. }) => refresh(&app, true).await,
                            Some(LiveEvent::ExceptionEnded { ended }) => {
                                let name = ended.tool_name.clone().unwrap_or_else(|| ended.tool.clone());
                                inform(&format!("Exception ended: {name}"), &ended.message);
                                refresh(&app, true).await;
                            }
                            Some(LiveEvent::SessionStopped { stopped }) => inform(
                                &format!("{} was stopped", stopped.tool),
                                "Its exception ended and the grace period is over.",
                            ),
                            Some(LiveEvent::Rescan { .. }) => refresh(&app, false).await,
                            Some(LiveEvent::Masking { .. }) => {
                                // The activity window's masking line reads the status.
                                refresh(&app, false).await;
                                let _ = app.emit(crate::commands::ACTIVITY_EVENT, ());
                            }
                            Some(LiveEvent::Connect { event }) => crate::show_connect_popup(&app, &event),
                            Some(LiveEvent::KeepAlive) => {}
                            None => break,
                        },
                        _ = check.tick() => refresh(&app, false).await,
                    }
                }
                eprintln!("warden-tray: the Warden runtime closed the live stream; reconnecting");
            }
            Err(error) => {
                let shell = app.state::<Shell>();
                shell.set_unreachable(format!("the Warden runtime does not answer ({error})"));
                redraw(&app);
            }
        }
        tokio::time::sleep(RETRY_AFTER).await;
    }
}

/// Re-reads status (and with `everything`, the policy and the request list) and redraws.
async fn refresh(app: &AppHandle, everything: bool) {
    let shell = app.state::<Shell>();
    let client = shell.link.client.clone();
    match client.status().await {
        Ok(status) => {
            let enrolled = status.enrolled.is_some();
            // The assistant opens through the masking gateway when one serves: ask for this
            // developer's way in when it comes up, forget it when it goes down.
            let hosted = status.gateway.as_ref().map(|g| g.error.is_none());
            shell.set_status(status);
            match hosted {
                Some(false) => shell.set_gateway(None),
                Some(true) if everything || shell.gateway().is_none() => shell.set_gateway(client.gateway().await.ok()),
                Some(true) => {}
                // The runtime hosts none (personal mode): a `warden gateway` the developer runs.
                None => {
                    let personal = shell.link.personal_state.as_ref().and_then(warden_client::personal_gateway::access);
                    shell.set_gateway(personal);
                }
            }
            if everything {
                match client.policy().await {
                    Ok(policy) => shell.set_policy(PolicyInForce::from_runtime(policy, shell.mode())),
                    Err(error) => eprintln!("warden-tray: reading the policy: {error}"),
                }
                if enrolled {
                    refresh_granted(&shell).await;
                }
                let _ = app.emit(crate::commands::REQUESTS_EVENT, ());
            }
        }
        Err(error) => shell.set_unreachable(format!("the Warden runtime does not answer ({error})")),
    }
    redraw(app);
    show_expiry_notices(&shell);
}

/// The approved exceptions' ends, from the caller's request list.
async fn refresh_granted(shell: &Shell) {
    let Ok(mine) = shell.link.client.requests().await else { return };
    let policy = shell.policy();
    let granted = mine
        .requests
        .iter()
        .filter(|r| matches!(r.state, ExceptionState::Approved | ExceptionState::Expired))
        .filter_map(|r| {
            Some(GrantedUntil {
                request_id: r.id.clone(),
                tool_name: crate::views::tool_name(&policy.catalog, Some(&r.tool)),
                expires_at_ms: r.expires_at? * 1000,
                conditions: r.guardrails.describe(),
            })
        })
        .collect();
    shell.set_granted(granted);
}

/// A pop-up that only informs (no actions); a missing notification service is logged.
pub(crate) fn inform(title: &str, body: &str) {
    if let Err(e) = crate::desktop_notification::inform(title, body) {
        eprintln!("warden-tray: {title}: {body} ({e})");
    }
}

fn show_expiry_notices(shell: &Shell) {
    let mut noticed = lock(&shell.noticed);
    for notice in crate::expiry_notice::due(&shell.granted(), &noticed, now_ms()) {
        let (title, body) = notice.text(local_clock);
        if let Err(e) = crate::desktop_notification::inform(&title, &body) {
            eprintln!("warden-tray: {body} ({e})");
        }
        noticed.insert((notice.request_id, notice.kind));
    }
}

fn redraw(app: &AppHandle) {
    if let Err(e) = crate::tray::refresh(app) {
        eprintln!("warden-tray: tray refresh: {e}");
    }
}

/// The caller's recent events fill the activity window (no pop-ups for them); at the first
/// connection the blocks not yet shown get one.
async fn load_history(app: &AppHandle, first: bool) {
    let shell = app.state::<Shell>();
    let history = match shell.link.client.events(HISTORY).await {
        Ok(events) => events,
        Err(error) => {
            eprintln!("warden-tray: reading recent events: {error}");
            return;
        }
    };
    for event in history.iter().cloned() {
        shell.record(event);
    }
    redraw(app);
    let _ = app.emit(crate::commands::ACTIVITY_EVENT, ());
    if first {
        show_missed_blocks(app, &history);
    }
}

fn show_missed_blocks(app: &AppHandle, history: &[LaunchEvent]) {
    let Some(marker) = missed_blocks::marker_path() else { return };
    let missed = missed_blocks::missed(history, missed_blocks::read_marker(&marker), now_ms());
    let Some(newest) = missed.last().copied() else { return };
    eprintln!("warden-tray: {} block(s) happened while no tray was running", missed.len());
    if missed.len() > 1 {
        let policy = app.state::<Shell>().policy();
        let (title, body) =
            missed_blocks::summary(&missed, |id| crate::views::tool_name(&policy.catalog, id), local_clock);
        if let Err(e) = crate::desktop_notification::inform(&title, &body) {
            eprintln!("warden-tray: {title}: {body} ({e})");
        }
    }
    // The newest gets the usual pop-up, with the sanctioned assistant as its main action.
    crate::show_popup(app, newest);
    remember_shown(newest.at_ms);
}

/// Remembers the newest block shown, so a restarted tray does not show it again.
fn remember_shown(at_ms: i64) {
    let Some(marker) = missed_blocks::marker_path() else { return };
    if missed_blocks::read_marker(&marker).is_some_and(|shown| shown >= at_ms) {
        return;
    }
    if let Err(e) = missed_blocks::write_marker(&marker, at_ms) {
        eprintln!("warden-tray: cannot write {}: {e}", marker.display());
    }
}

/// A launch event from the runtime: record it, update the tray, tell open windows, and show a
/// pop-up if the gate lets one through.
fn on_launch(app: &AppHandle, event: LaunchEvent) {
    let shell = app.state::<Shell>();
    if !shell.record(event.clone()) {
        return;
    }
    redraw(app);
    let _ = app.emit(crate::commands::ACTIVITY_EVENT, &event.id);
    // Seen while the tray runs: not "missed" at the next start.
    if crate::tray_status::was_blocked(&event) {
        remember_shown(event.at_ms);
    }
    crate::show_popup(app, &event);
}

fn scan_inventory(app: &AppHandle) {
    let Some(home) = std::env::var_os("HOME") else { return };
    let catalog = app.state::<Shell>().policy().catalog;
    let locations = warden_monitor::inventory::Locations::standard(home, None);
    let found = warden_monitor::inventory::scan(&catalog, &locations);
    let installed: HashMap<String, bool> = found.into_iter().map(|i| (i.tool, true)).collect();
    app.state::<Shell>().set_installed(installed);
}
