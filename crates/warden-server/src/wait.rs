//! The long-poll: a device waits here and hears of its decisions and new policy at once.

use crate::AppState;
use crate::auth::DeviceCaller;
use crate::extract::QueryParams;
use crate::failure::{Answer, Failure};
use crate::feed::{changes_since, latest_seq};
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use warden_api::WaitResponse;

/// The longest a wait may last, seconds (stays under common proxy idle timeouts).
pub const MAX_WAIT_SECONDS: u64 = 60;
/// Long-polls one device may hold at once (its sync loop holds one; a second covers a restart
/// whose old connection has not closed yet). More is a device, or a stolen token, tying up the
/// server's connections: answered 429 at once.
pub const MAX_WAITS_PER_DEVICE: usize = 2;

/// One of a device's long-poll slots, given back when the wait ends (however it ends).
struct WaitSlot<'a> {
    state: &'a AppState,
    device: String,
}

impl<'a> WaitSlot<'a> {
    fn take(state: &'a AppState, device: &str) -> Answer<WaitSlot<'a>> {
        let mut waiting = state.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let held = waiting.entry(device.to_owned()).or_insert(0);
        if *held >= MAX_WAITS_PER_DEVICE {
            return Err(Failure::too_many(
                "too_many_waits",
                format!("this device already holds {MAX_WAITS_PER_DEVICE} long-polls"),
                1,
            ));
        }
        *held += 1;
        Ok(WaitSlot { state, device: device.to_owned() })
    }
}

impl Drop for WaitSlot<'_> {
    fn drop(&mut self) {
        let mut waiting = self.state.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(held) = waiting.get_mut(&self.device) {
            *held -= 1;
            if *held == 0 {
                waiting.remove(&self.device);
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    /// The cursor of the previous answer; 0 to start.
    since: i64,
    /// Seconds to wait at most (default 30, at most 60).
    #[serde(default)]
    timeout: Option<u64>,
}

/// `GET /api/v1/device/wait?since=CURSOR&timeout=SECONDS`
#[utoipa::path(
    get,
    path = "/api/v1/device/wait",
    tag = "device",
    summary = "Long-poll: returns as soon as something changes for this device",
    params(
        ("since" = i64, Query, description = "Cursor of the previous answer; 0 returns the current cursor at once"),
        ("timeout" = Option<i64>, Query, description = "Seconds, 1–60 (default 30)"),
    ),
    responses(
        (status = 200, description = "Changes after `since` (empty at the timeout); pass `cursor` back", body = warden_api::WaitResponse),
        (status = 400, description = "Malformed query", body = warden_api::ApiError),
        (status = 422, description = "Invalid since or timeout", body = warden_api::ApiError),
        crate::openapi::DeviceAuthErrors,
        (status = 429, description = "The device already holds 2 long-polls (`too_many_waits`)", body = warden_api::ApiError, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    ),
    security(("device" = [])),
)]
pub async fn wait(
    State(state): State<AppState>,
    device: DeviceCaller,
    QueryParams(query): QueryParams<WaitQuery>,
) -> Answer<Json<WaitResponse>> {
    let timeout = query.timeout.unwrap_or(30);
    if !(1..=MAX_WAIT_SECONDS).contains(&timeout) {
        return Err(Failure::invalid("timeout", format!("timeout must be 1 to {MAX_WAIT_SECONDS} seconds")));
    }
    if query.since < 0 {
        return Err(Failure::invalid("since", "since must be a cursor from an earlier answer, or 0"));
    }
    if query.since == 0 {
        // First call: the device syncs in full, then waits from here.
        return Ok(Json(WaitResponse { cursor: latest_seq(&state.store).await?, changes: Vec::new() }));
    }
    let _slot = WaitSlot::take(&state, &device.id)?;
    // Subscribe before looking, so a change committed in between still wakes us.
    let mut wakes = state.feed.subscribe();
    let mut closing = state.closing.clone();
    let deadline = Instant::now() + Duration::from_secs(timeout);
    loop {
        let changes = changes_since(&state.store, &device.id, query.since).await?;
        if let Some(last) = changes.last() {
            return Ok(Json(WaitResponse { cursor: last.seq, changes }));
        }
        // Sleep until a wake-up that concerns this device, the deadline, or shutdown.
        loop {
            tokio::select! {
                wake = wakes.recv() => match wake {
                    Ok(wake) if wake.concerns(&device.id) => break,
                    Ok(_) => continue,
                    // Missed some: look again.
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return Ok(Json(WaitResponse { cursor: query.since, changes: Vec::new() })),
                },
                _ = tokio::time::sleep_until(deadline) => {
                    return Ok(Json(WaitResponse { cursor: query.since, changes: Vec::new() }));
                }
                _ = closing.changed() => {
                    return Ok(Json(WaitResponse { cursor: query.since, changes: Vec::new() }));
                }
            }
        }
    }
}
