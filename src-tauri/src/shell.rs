//! The tray app's state, shared by the tray, the pop-ups and the window commands: the
//! policy in force, recent launch events, the pop-up gate, the exception queue and what
//! each window was opened for.

use crate::exception_queue::ExceptionQueue;
use crate::popup::PopupGate;
use crate::tray_status::{PolicyFreshness, TrayLook, tray_look};
use crate::windows::WindowContext;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use warden_api::LaunchEvent;
use warden_policy::{Catalog, Policy};

/// How many recent events the tray keeps in memory (the store keeps all of them).
const RECENT_EVENTS: usize = 1000;

/// How the tray app was started.
#[derive(Debug, Clone)]
pub struct ShellConfig {
    /// Where Warden keeps its local files (event store, request queue).
    pub state_dir: PathBuf,
    /// An admin's policy file; `None` means the embedded default.
    pub policy_file: Option<PathBuf>,
    /// Pop-ups for the same tool and kind closer together than this are not shown.
    pub popup_window_ms: i64,
    /// The view to open at start (`--open`), used by a second launch and by tests.
    pub open_at_start: Option<String>,
}

/// The policy in force and where it came from.
#[derive(Debug, Clone)]
pub struct PolicyInForce {
    pub policy: Arc<Policy>,
    pub catalog: Arc<Catalog>,
    /// `embedded` or the file and its modification time.
    pub version: String,
    pub source: String,
    pub freshness: PolicyFreshness,
}

impl PolicyInForce {
    pub fn embedded() -> PolicyInForce {
        let policy = Policy::embedded();
        PolicyInForce {
            catalog: Arc::new(policy.catalog()),
            policy: Arc::new(policy),
            version: "embedded".into(),
            source: "embedded default".into(),
            freshness: PolicyFreshness::Current,
        }
    }

    /// Reads a policy file. On failure the previous policy stays in force, marked out of
    /// date with the file:line:column problem.
    pub fn load(file: &std::path::Path, previous: Option<&PolicyInForce>) -> PolicyInForce {
        let shown = file.display().to_string();
        let loaded = std::fs::read_to_string(file)
            .map_err(|e| format!("{shown}: {e}"))
            .and_then(|text| Policy::parse(&shown, &text).map_err(|e| e.to_string()));
        match loaded {
            Ok(policy) => {
                let modified = std::fs::metadata(file)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs());
                PolicyInForce {
                    catalog: Arc::new(policy.catalog()),
                    policy: Arc::new(policy),
                    version: format!("file@{modified}"),
                    source: shown,
                    freshness: PolicyFreshness::Current,
                }
            }
            Err(problem) => {
                let mut kept = previous.cloned().unwrap_or_else(PolicyInForce::embedded);
                kept.freshness = PolicyFreshness::OutOfDate { problem };
                kept
            }
        }
    }
}

/// Everything the tray app shares between threads.
#[derive(Debug)]
pub struct Shell {
    pub config: ShellConfig,
    policy: RwLock<PolicyInForce>,
    events: Mutex<VecDeque<LaunchEvent>>,
    pub gate: Mutex<PopupGate>,
    pub queue: Mutex<ExceptionQueue>,
    contexts: Mutex<HashMap<String, WindowContext>>,
    installed: RwLock<Option<HashMap<String, bool>>>,
    server_freshness: RwLock<PolicyFreshness>,
}

/// Locks a mutex even if a panicking thread poisoned it: the data are plain values
/// that stay consistent between statements.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shell {
    pub fn new(config: ShellConfig, policy: PolicyInForce, queue: ExceptionQueue) -> Shell {
        Shell {
            gate: Mutex::new(PopupGate::new(config.popup_window_ms)),
            config,
            policy: RwLock::new(policy),
            events: Mutex::new(VecDeque::new()),
            queue: Mutex::new(queue),
            contexts: Mutex::new(HashMap::new()),
            installed: RwLock::new(None),
            server_freshness: RwLock::new(PolicyFreshness::Current),
        }
    }

    pub fn policy(&self) -> PolicyInForce {
        self.policy.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_policy(&self, policy: PolicyInForce) {
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = policy;
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
        events.push_back(event);
        true
    }

    pub fn events(&self) -> Vec<LaunchEvent> {
        lock(&self.events).iter().cloned().collect()
    }

    pub fn event(&self, id: &str) -> Option<LaunchEvent> {
        lock(&self.events).iter().find(|e| e.id == id).cloned()
    }

    pub fn look(&self, now_ms: i64) -> TrayLook {
        let policy = self.policy();
        let name_of = |id: &str| crate::views::tool_name(&policy.catalog, Some(id));
        // A local problem (bad policy file) names the file; else the server link's state counts.
        let freshness = match &policy.freshness {
            PolicyFreshness::OutOfDate { .. } => policy.freshness.clone(),
            PolicyFreshness::Current => self.server_freshness.read().unwrap_or_else(|p| p.into_inner()).clone(),
        };
        tray_look(lock(&self.events).iter(), &freshness, now_ms, name_of)
    }

    /// What the server link says about the policy's freshness (`server_link.rs`).
    pub fn set_server_freshness(&self, freshness: PolicyFreshness) {
        *self.server_freshness.write().unwrap_or_else(|p| p.into_inner()) = freshness;
    }

    pub fn set_context(&self, label: &str, context: WindowContext) {
        lock(&self.contexts).insert(label.to_owned(), context);
    }

    pub fn context(&self, label: &str) -> WindowContext {
        lock(&self.contexts).get(label).cloned().unwrap_or_default()
    }

    pub fn set_installed(&self, installed: HashMap<String, bool>) {
        *self.installed.write().unwrap_or_else(|p| p.into_inner()) = Some(installed);
    }

    pub fn installed(&self) -> Option<HashMap<String, bool>> {
        self.installed.read().unwrap_or_else(|p| p.into_inner()).clone()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_policy_file_keeps_the_last_good_one_and_says_where() {
        let dir = std::env::temp_dir().join(format!("warden-tray-policy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("policy.toml");
        let good = warden_policy::EMBEDDED_POLICY.replace("Default policy: internal assistant only", "Team policy");
        std::fs::write(&file, &good).unwrap();
        let first = PolicyInForce::load(&file, None);
        assert_eq!((first.policy.name.as_str(), &first.freshness), ("Team policy", &PolicyFreshness::Current));
        std::fs::write(&file, "name = \"x\"\ndefault_action = \"explode\"\n").unwrap();
        let second = PolicyInForce::load(&file, Some(&first));
        assert_eq!(second.policy.name, "Team policy");
        match &second.freshness {
            PolicyFreshness::OutOfDate { problem } => assert!(problem.contains("policy.toml:2:"), "{problem}"),
            other => panic!("expected out of date, got {other:?}"),
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
