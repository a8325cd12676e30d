//! The sync loop: syncs on start, every `interval` (or the server's shorter one), on demand ("Sync now"), and at once when
//! the server's long-poll says something changed; hands new policy and exceptions to the
//! enforcement side so an approval takes effect immediately. With an inventory scanner it also
//! reports what is installed: on the first sync, then whenever a scan (at most every
//! [`INVENTORY_RESCAN`]) finds something else, and at least once a day.

use crate::device::{Device, PolicySync};
use crate::error::ClientError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use warden_api::{ChangeKind, InventoryReport};
use warden_policy::{Exception, Policy};

/// Where synced rules go: the agent (its `Decider`) implements this.
pub trait Enforcement: Send + Sync {
    fn set_policy(&self, policy: Policy, version: Option<String>);
    fn set_exceptions(&self, exceptions: Vec<Exception>);
}

/// Scans the device for installed AI tools and MCP servers (blocking; run off the async threads).
pub type InventoryScanner = Arc<dyn Fn() -> InventoryReport + Send + Sync>;

/// How often the inventory is scanned again to look for a change.
pub const INVENTORY_RESCAN: Duration = Duration::from_secs(3600);
/// An unchanged inventory is still reported this often (the server shows when it last heard).
pub const INVENTORY_REPORT_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Loop settings.
#[derive(Clone)]
pub struct SyncOptions {
    /// Full sync period (Santa's default is 600 s; ours is shorter because it is cheap: a 304).
    pub interval: Duration,
    /// Long-poll hold time asked of the server (1–60 s).
    pub wait_seconds: u64,
    /// Bound of pending events kept for upload.
    pub outbox_limit: u64,
    /// What reports the inventory; `None`: none is reported.
    pub inventory: Option<InventoryScanner>,
}

impl std::fmt::Debug for SyncOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncOptions")
            .field("interval", &self.interval)
            .field("wait_seconds", &self.wait_seconds)
            .field("outbox_limit", &self.outbox_limit)
            .field("inventory", &self.inventory.is_some())
            .finish()
    }
}

impl Default for SyncOptions {
    fn default() -> SyncOptions {
        SyncOptions {
            interval: Duration::from_secs(60),
            wait_seconds: 30,
            outbox_limit: crate::DEFAULT_OUTBOX_LIMIT,
            inventory: None,
        }
    }
}

/// When the inventory was last scanned and reported, and what was reported.
#[derive(Debug, Default)]
struct InventoryState {
    scanned: Option<std::time::Instant>,
    reported: Option<(String, std::time::Instant)>,
}

impl InventoryState {
    fn scan_due(&self) -> bool {
        self.scanned.is_none_or(|at| at.elapsed() >= INVENTORY_RESCAN)
    }

    /// Whether a report with `digest` should go to the server.
    fn report_due(&self, digest: &str) -> bool {
        self.reported.as_ref().is_none_or(|(sent, at)| sent != digest || at.elapsed() >= INVENTORY_REPORT_EVERY)
    }
}

/// The inventory phase of one sync: scan when due, report when changed or a day old. A failed
/// report is tried again at the next sync (the scan is kept).
async fn sync_inventory(
    device: &Device,
    scanner: &InventoryScanner,
    state: &mut InventoryState,
    pending: &mut Option<InventoryReport>,
) -> Result<(), String> {
    if state.scan_due() {
        let scan = scanner.clone();
        let report = tokio::task::spawn_blocking(move || scan()).await.map_err(|e| format!("scanning: {e}"))?;
        state.scanned = Some(std::time::Instant::now());
        *pending = Some(report);
    }
    let Some(report) = pending.as_ref() else { return Ok(()) };
    let digest = report.digest();
    if !state.report_due(&digest) {
        return Ok(());
    }
    device.upload_inventory(report).await.map_err(|e| format!("reporting the inventory: {e}"))?;
    state.reported = Some((digest, std::time::Instant::now()));
    Ok(())
}

/// What the loop last saw, for status displays (tray tooltip, `warden status`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStatus {
    /// Seconds since the epoch of the last sync with no failed phase.
    pub last_success: Option<i64>,
    pub last_error: Option<String>,
    pub policy_version: Option<i64>,
    pub active_exceptions: usize,
    pub syncs: u64,
}

/// Asks a running loop to sync now; cheap to clone.
#[derive(Debug, Clone)]
pub struct SyncTrigger(mpsc::Sender<()>);

impl SyncTrigger {
    /// Requests a sync; several requests before it runs coalesce into one.
    pub fn sync_now(&self) {
        let _ = self.0.try_send(());
    }
}

/// A running loop.
#[derive(Debug)]
pub struct SyncLoop {
    pub trigger: SyncTrigger,
    pub status: watch::Receiver<SyncStatus>,
    task: tokio::task::JoinHandle<()>,
    waiter: tokio::task::JoinHandle<()>,
}

impl SyncLoop {
    /// Stops the loop.
    pub fn stop(self) {
        self.task.abort();
        self.waiter.abort();
    }
}

/// Hands the cached (last verified) rules to `enforcement`: what to enforce before the first
/// sync, and the only rules while offline. Returns whether a verified cached policy existed.
pub fn apply_cached(device: &Device, enforcement: &dyn Enforcement) -> Result<bool, ClientError> {
    let (policy, exceptions) = device.cached_rules()?;
    let had_policy = policy.is_some();
    if let Some((policy, version)) = policy {
        enforcement.set_policy(policy, Some(version.to_string()));
    }
    enforcement.set_exceptions(exceptions);
    Ok(had_policy)
}

/// Starts the loop on the current tokio runtime.
pub fn spawn(device: Arc<Device>, enforcement: Arc<dyn Enforcement>, options: SyncOptions) -> SyncLoop {
    let (sender, mut receiver) = mpsc::channel::<()>(1);
    let trigger = SyncTrigger(sender);
    let (status_sender, status) = watch::channel(SyncStatus::default());
    let _ = apply_cached(&device, enforcement.as_ref());

    let waiter = tokio::spawn(long_poll(device.clone(), trigger.clone(), options.wait_seconds));
    let task = tokio::spawn(async move {
        let mut backoff = Duration::from_secs(1);
        let mut applied_version: Option<i64> = None;
        let mut inventory = InventoryState::default();
        let mut scanned = None;
        loop {
            let mut report = device.sync_once(options.outbox_limit).await;
            if let Some(scanner) = &options.inventory
                && let Err(error) = sync_inventory(&device, scanner, &mut inventory, &mut scanned).await
            {
                report.errors.push(error);
            }
            if let Some(list) = &report.exceptions {
                enforcement.set_exceptions(list.exceptions.clone());
            }
            let wants_policy = match &report.policy {
                Some(PolicySync::Updated { version } | PolicySync::Unchanged { version }) => {
                    applied_version != Some(*version)
                }
                _ => false,
            };
            if wants_policy && let Ok((Some((policy, version)), _)) = device.cached_rules() {
                enforcement.set_policy(policy, Some(version.to_string()));
                applied_version = Some(version);
            }
            let ok = report.ok();
            status_sender.send_modify(|status| {
                status.syncs += 1;
                if ok {
                    status.last_success = Some(crate::device::now_seconds());
                    status.last_error = None;
                } else {
                    status.last_error = Some(report.errors.join("; "));
                }
                if let Some(version) = applied_version {
                    status.policy_version = Some(version);
                }
                if let Some(list) = &report.exceptions {
                    status.active_exceptions = list.exceptions.len();
                }
            });
            // Never less often than the server expects (each sync is the heartbeat it flags
            // silence by). After a failure, retry sooner, backing off to the interval.
            let interval = device.server_sync_interval().map_or(options.interval, |s| s.min(options.interval));
            let pause = if ok {
                backoff = Duration::from_secs(1);
                interval
            } else {
                let pause = backoff.min(interval);
                backoff = (backoff * 2).min(interval);
                pause
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                got = receiver.recv() => if got.is_none() { return },
            }
        }
    });
    SyncLoop { trigger, status, task, waiter }
}

/// Waits on the server's change feed and triggers a sync at each change for this device.
///
/// `since=0` is the server's "tell me the cursor" call and answers at once, so it cannot hold a
/// wait: while the feed is still empty (cursor 0) the loop asks again every second and treats a
/// cursor that moved as a change. After a failure (server down) the first good answer triggers
/// a sync too, so whatever waited in the outbox goes out as soon as the server is back.
async fn long_poll(device: Arc<Device>, trigger: SyncTrigger, wait_seconds: u64) {
    let mut cursor: Option<i64> = None;
    let mut failed = false;
    let mut backoff = Duration::from_millis(500);
    loop {
        let since = cursor.unwrap_or(0);
        match device.api().wait(since, wait_seconds.clamp(1, 60)).await {
            Ok(answer) => {
                backoff = Duration::from_millis(500);
                let changed = cursor.is_some_and(|previous| !answer.changes.is_empty() || answer.cursor != previous);
                if answer.changes.iter().any(|c| c.kind == ChangeKind::Revoked) {
                    let _ = device.store().record_incident("device-revoked", "the server revoked this device's token");
                }
                if changed || failed {
                    trigger.sync_now();
                }
                failed = false;
                cursor = Some(answer.cursor);
                if answer.cursor == 0 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            Err(_) => {
                failed = true;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}
