//! The tray app's one state, created once and owned by Tauri (`app.manage`): the link to the
//! runtime, what the runtime last said (status, policy, the caller's launch events), the pop-up
//! gate and what each window was opened for. One task writes what comes from the runtime (the
//! inbox, `inbox.rs`); the tray, the pop-ups and the window commands read it.

use crate::expiry_notice::{GrantedUntil, NoticeKind};
use crate::popup::PopupGate;
use crate::runtime_link::Link;
use crate::tray_status::{PolicyFreshness, ServerSyncFacts, TrayLook, server_freshness, tray_look};
use crate::views::WindowContext;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use warden_api::LaunchEvent;
use warden_api::local::{GatewayAccess, RuntimeMode, RuntimeStatus};
use warden_policy::{Catalog, Policy};

/// How many recent events the tray keeps in memory (the runtime's store keeps all of them).
const RECENT_EVENTS: usize = 1000;

/// How the tray app was started.
#[derive(Debug, Clone)]
pub struct ShellConfig {
    /// Pop-ups for the same tool and kind closer together than this are not shown.
    pub popup_window_ms: i64,
    /// The view to open at start (`--open`), used by a second launch and by tests.
    pub open_at_start: Option<String>,
}

/// The policy the runtime enforces, with its catalog compiled once for the windows.
#[derive(Debug, Clone)]
pub struct PolicyInForce {
    pub policy: Arc<Policy>,
    pub catalog: Arc<Catalog>,
    /// The server's version, or `local` for a policy that came from no server.
    pub version: String,
    /// Who enforces it, in words (About window).
    pub source: String,
}

impl PolicyInForce {
    /// The runtime's answer to `GET /v1/policy`.
    pub fn from_runtime(answer: warden_api::local::PolicyInForce, mode: RuntimeMode) -> PolicyInForce {
        PolicyInForce {
            catalog: Arc::new(answer.policy.catalog()),
            policy: Arc::new(answer.policy),
            version: answer.version.unwrap_or_else(|| "local".into()),
            source: match mode {
                RuntimeMode::Service => "enforced by the Warden service (wardend)".into(),
                RuntimeMode::Personal => "enforced by the personal runtime in this tray".into(),
            },
        }
    }

    /// What the tray shows before the runtime's first answer.
    pub fn embedded() -> PolicyInForce {
        let policy = Policy::embedded();
        PolicyInForce {
            catalog: Arc::new(policy.catalog()),
            policy: Arc::new(policy),
            version: "embedded".into(),
            source: "embedded default".into(),
        }
    }
}

/// The tray's state. See the module documentation for who writes what.
pub struct Shell {
    pub config: ShellConfig,
    /// The runtime this tray is a client of (and, in personal mode, runs).
    pub link: Link,
    policy: RwLock<PolicyInForce>,
    status: RwLock<Option<RuntimeStatus>>,
    /// Why the runtime does not answer, while it does not.
    unreachable: RwLock<Option<String>>,
    events: Mutex<VecDeque<LaunchEvent>>,
    pub gate: Mutex<PopupGate>,
    contexts: Mutex<HashMap<String, WindowContext>>,
    installed: RwLock<Option<HashMap<String, bool>>>,
    gateway: RwLock<Option<GatewayAccess>>,
    /// Approved exceptions' ends (from the last request list) and the expiry notices shown.
    granted: Mutex<Vec<GrantedUntil>>,
    pub noticed: Mutex<HashSet<(String, NoticeKind)>>,
}

impl std::fmt::Debug for Shell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shell").field("config", &self.config).field("link", &self.link).finish_non_exhaustive()
    }
}

/// Locks a mutex even if a panicking thread poisoned it: the data are plain values
/// that stay consistent between statements.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    lock.read().unwrap_or_else(|p| p.into_inner()).clone()
}

fn write<T>(lock: &RwLock<T>, value: T) {
    *lock.write().unwrap_or_else(|p| p.into_inner()) = value;
}

impl Shell {
    pub fn new(config: ShellConfig, link: Link) -> Shell {
        Shell {
            gate: Mutex::new(PopupGate::new(config.popup_window_ms)),
            config,
            link,
            policy: RwLock::new(PolicyInForce::embedded()),
            status: RwLock::new(None),
            unreachable: RwLock::new(None),
            events: Mutex::new(VecDeque::new()),
            contexts: Mutex::new(HashMap::new()),
            installed: RwLock::new(None),
            gateway: RwLock::new(None),
            granted: Mutex::new(Vec::new()),
            noticed: Mutex::new(HashSet::new()),
        }
    }

    /// Which runtime answers: the system service or the personal one.
    pub fn mode(&self) -> RuntimeMode {
        self.link.hello.mode
    }

    pub fn policy(&self) -> PolicyInForce {
        read(&self.policy)
    }

    pub fn set_policy(&self, policy: PolicyInForce) {
        write(&self.policy, policy);
    }

    pub fn status(&self) -> Option<RuntimeStatus> {
        read(&self.status)
    }

    /// The runtime answered with this status (it is reachable).
    pub fn set_status(&self, status: RuntimeStatus) {
        write(&self.status, Some(status));
        write(&self.unreachable, None);
    }

    /// How this developer's client reaches the masking gateway the runtime hosts (`None`: it
    /// hosts none, or it is down).
    pub fn gateway(&self) -> Option<GatewayAccess> {
        read(&self.gateway)
    }

    pub fn set_gateway(&self, gateway: Option<GatewayAccess>) {
        write(&self.gateway, gateway);
    }

    /// Opens the sanctioned assistant (through the gateway when there is one) in `cwd`.
    pub fn open_assistant(&self, app: &tauri::AppHandle, cwd: Option<&str>) -> Result<(), crate::assistant::OpenError> {
        let policy = self.policy();
        crate::assistant::open(app, policy.policy.assistant.as_ref(), cwd, self.gateway().as_ref())
    }

    /// The runtime stopped answering.
    pub fn set_unreachable(&self, problem: String) {
        write(&self.unreachable, Some(problem));
    }

    /// Records an event; returns false for an id already seen (a replay).
    pub fn record(&self, event: LaunchEvent) -> bool {
        let mut events = lock(&self.events);
        if events.iter().any(|e| e.id == event.id) {
            return false;
        }
        if events.len() == RECENT_EVENTS {
            events.pop_front();
        }
        // Kept oldest first: history arrives newest first and live events after it.
        let at = events.iter().rposition(|e| e.at_ms <= event.at_ms).map_or(0, |i| i + 1);
        events.insert(at, event);
        true
    }

    pub fn events(&self) -> Vec<LaunchEvent> {
        lock(&self.events).iter().cloned().collect()
    }

    pub fn event(&self, id: &str) -> Option<LaunchEvent> {
        lock(&self.events).iter().find(|e| e.id == id).cloned()
    }

    /// Whether the policy is current: a personal policy file that did not load, a runtime that
    /// does not answer, or a server that has not confirmed the policy make it out of date.
    pub fn freshness(&self, now_ms: i64) -> PolicyFreshness {
        if let Some(problem) = self.link.policy_problem() {
            return PolicyFreshness::OutOfDate { problem };
        }
        if let Some(problem) = read(&self.unreachable) {
            return PolicyFreshness::OutOfDate { problem };
        }
        let Some(status) = self.status() else { return PolicyFreshness::Current };
        let Some(sync) = status.sync else { return PolicyFreshness::Current };
        let facts = ServerSyncFacts {
            last_error: sync.last_error,
            policy_confirmed_ms: sync.last_success.map(|s| s * 1000),
            enrolled_at_ms: status.started_at_ms,
        };
        server_freshness(&facts, sync.interval_seconds as i64 * 1000, now_ms)
    }

    pub fn look(&self, now_ms: i64) -> TrayLook {
        let policy = self.policy();
        let name_of = |id: &str| crate::views::tool_name(&policy.catalog, Some(id));
        tray_look(lock(&self.events).iter(), &self.freshness(now_ms), now_ms, name_of)
    }

    pub fn set_context(&self, label: &str, context: WindowContext) {
        lock(&self.contexts).insert(label.to_owned(), context);
    }

    pub fn context(&self, label: &str) -> WindowContext {
        lock(&self.contexts).get(label).cloned().unwrap_or_default()
    }

    pub fn set_installed(&self, installed: HashMap<String, bool>) {
        write(&self.installed, Some(installed));
    }

    pub fn installed(&self) -> Option<HashMap<String, bool>> {
        read(&self.installed)
    }

    pub fn set_granted(&self, granted: Vec<GrantedUntil>) {
        *lock(&self.granted) = granted;
    }

    pub fn granted(&self) -> Vec<GrantedUntil> {
        lock(&self.granted).clone()
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Local midnight today, in milliseconds since the epoch ("count today" in the menu).
pub fn today_start_ms() -> i64 {
    use chrono::{Local, TimeZone};
    let today = Local::now().date_naive().and_hms_opt(0, 0, 0).expect("midnight exists");
    Local.from_local_datetime(&today).earliest().map_or(0, |t| t.timestamp_millis())
}

/// "14:30" in local time.
pub fn local_clock(ms: i64) -> String {
    use chrono::TimeZone;
    chrono::Local.timestamp_millis_opt(ms).single().map_or_else(|| "?".into(), |t| t.format("%H:%M").to_string())
}
