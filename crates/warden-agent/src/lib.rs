//! Warden's agent: runs an exec event source (and, as root, the pre-exec gate), decides
//! every AI-tool launch against the current policy and exceptions, enforces the verdict,
//! appends the event to the durable store and broadcasts it. Headless (`warden watch`)
//! or embedded in the tray app.
//!
//! Threads, not tasks, carry the hot path: the source thread goes from the kernel's exec
//! event to the kill without touching the async runtime, so a busy runtime never delays
//! enforcement. A recorder thread then stores each event (durably, before anyone hears
//! of it) and broadcasts it on a tokio channel.
//!
//! ```no_run
//! # async fn demo() -> Result<(), warden_agent::AgentError> {
//! let config = warden_agent::AgentConfig::new("/tmp/warden-state".into(), warden_policy::Policy::embedded());
//! let agent = warden_agent::start(config).await?;
//! let mut events = agent.subscribe();
//! while let Ok(event) = events.recv().await {
//!     println!("{} {:?}", event.pid, event.outcome);
//! }
//! agent.shutdown().await;
//! # Ok(()) }
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;
use warden_api::{LaunchEvent, Outcome};
use warden_monitor::{Decider, EventSource, Launch, Watcher};
use warden_policy::{Accounts, Exception, Mode, Policy};
use warden_store::Store;

pub use warden_monitor::SourceChoice;
pub use warden_monitor::gate::{GateMark, GateScope, MarkKind};

/// How the agent starts.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Where the event store lives (`events.db`).
    pub state_dir: PathBuf,
    pub source: SourceChoice,
    pub policy: Policy,
    /// The policy's version when it came from a server.
    pub policy_version: Option<String>,
    pub exceptions: Vec<Exception>,
    /// Which account each local uid is bound to (from the enrollment): launches are
    /// attributed to, and exceptions matched against, these accounts.
    pub accounts: Accounts,
    /// What the pre-exec gate covers (root only); `None`: no gate. The default is every local
    /// filesystem, and each one mounted later ([`GateScope::all_local`]); an explicit list
    /// ([`GateScope::listed`]) covers the filesystems holding those paths.
    pub gate: Option<GateScope>,
    /// Decide the AI tools already running when the agent starts (they may have been
    /// started while it was not running).
    pub sweep_running: bool,
}

impl AgentConfig {
    /// The usual configuration: the best source, every local filesystem gated when running
    /// as root, running tools swept at start.
    pub fn new(state_dir: PathBuf, policy: Policy) -> AgentConfig {
        AgentConfig {
            state_dir,
            source: SourceChoice::Auto,
            policy,
            policy_version: None,
            exceptions: Vec::new(),
            accounts: Accounts::default(),
            gate: Some(GateScope::all_local()),
            sweep_running: true,
        }
    }
}

/// Starting the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Store(#[from] warden_store::StoreError),
    #[error(transparent)]
    Source(#[from] warden_monitor::SourceError),
    #[error("the fanotify pre-exec gate needs root (or CAP_SYS_ADMIN)")]
    GateNeedsRoot,
    #[error("starting an agent thread: {0}")]
    Thread(std::io::Error),
}

/// What the agent is doing, for the tray and `warden watch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStatus {
    /// The exec event source (`proc-connector`, `poll`).
    pub source: String,
    /// Where the fanotify pre-exec gate runs: the mount points of [`AgentStatus::gate_marks`]
    /// (empty: no gate).
    pub gate_mounts: Vec<PathBuf>,
    /// What the gate covers now, one entry per filesystem: how each is marked (a whole
    /// filesystem, or that mount alone where the kernel refused the filesystem mark, and why).
    pub gate_marks: Vec<GateMark>,
    /// Local filesystems the kernel refused to let the gate mark at all.
    pub gate_refusals: Vec<String>,
    /// Why a better source was not used, when it was not.
    pub fallback_reason: Option<String>,
    pub mode: Mode,
    pub policy_name: String,
    pub policy_version: Option<String>,
    /// Counts since midnight UTC.
    pub events_today: u64,
    pub blocked_today: u64,
    pub warned_today: u64,
    /// Exec notices the kernel dropped because the agent was too slow.
    pub lost_notices: u64,
    /// Events that could not be written to the store.
    pub unrecorded_events: u64,
    /// Set when the store was corrupt at start and moved aside.
    pub store_recovery: Option<String>,
}

struct Shared {
    decider: Arc<Decider>,
    store: Store,
    stop: AtomicBool,
    lost: AtomicU64,
    unrecorded: AtomicU64,
}

/// A running agent. Dropping it without [`AgentHandle::shutdown`] leaves its threads to
/// stop on their own within a fraction of a second.
pub struct AgentHandle {
    shared: Arc<Shared>,
    events: broadcast::Sender<LaunchEvent>,
    source_name: String,
    fallback_reason: Option<String>,
    #[cfg(target_os = "linux")]
    gate: Mutex<Option<warden_monitor::gate::ExecGate>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for AgentHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentHandle").field("source", &self.source_name).finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The event record of a launch.
pub fn event_of(launch: &Launch) -> LaunchEvent {
    LaunchEvent {
        id: uuid::Uuid::new_v4().to_string(),
        at_ms: launch.at_ms(),
        pid: launch.facts.pid.unwrap_or(0),
        // The person: the bound account, else the login name (ProcessFacts::person).
        user: launch.facts.person().map(str::to_owned),
        exe: launch.facts.exe.clone(),
        argv: launch.facts.argv.clone(),
        cwd: launch.facts.cwd.clone(),
        tool: launch.verdict.tool.clone(),
        action: launch.verdict.action,
        outcome: launch.outcome,
        rule: launch.verdict.rule.to_string(),
        reason: launch.verdict.reason.clone(),
        exception: launch.verdict.exception.clone(),
        policy_version: launch.policy_version.clone(),
        source: launch.source.to_owned(),
    }
}

/// Starts the agent: opens the store, picks and starts the sources, and begins deciding.
pub async fn start(config: AgentConfig) -> Result<AgentHandle, AgentError> {
    let store_path = config.state_dir.join("events.db");
    let store = tokio::task::spawn_blocking(move || Store::open(store_path))
        .await
        .map_err(|e| AgentError::Thread(std::io::Error::other(e)))??;
    let decider = Arc::new(Decider::new(config.policy.clone(), config.policy_version.clone(), config.exceptions));
    if !config.accounts.is_empty() {
        decider.set_accounts(config.accounts);
    }
    let shared = Arc::new(Shared {
        decider: decider.clone(),
        store,
        stop: AtomicBool::new(false),
        lost: AtomicU64::new(0),
        unrecorded: AtomicU64::new(0),
    });
    let (launch_tx, launch_rx) = std::sync::mpsc::channel::<Launch>();
    let (events, _) = broadcast::channel(256);

    let choice = config.source.clone();
    let gate_scope = config.gate.clone();
    let opened = tokio::task::spawn_blocking(move || {
        open_sources(&choice, gate_scope.as_ref(), decider, launch_tx.clone()).map(|o| (o, launch_tx))
    })
    .await
    .map_err(|e| AgentError::Thread(std::io::Error::other(e)))??;
    let (Opened { source, fallback_reason, gate }, launch_tx) = opened;
    let source_name = source.name().to_owned();
    #[cfg(not(target_os = "linux"))]
    let _ = gate;

    let recorder = {
        let (shared, events) = (shared.clone(), events.clone());
        std::thread::Builder::new()
            .name("warden-recorder".into())
            .spawn(move || record(&shared, &launch_rx, &events))
            .map_err(AgentError::Thread)?
    };
    let watcher = {
        let shared = shared.clone();
        let sweep = config.sweep_running;
        std::thread::Builder::new()
            .name("warden-watcher".into())
            .spawn(move || watch(&shared, source, &launch_tx, sweep))
            .map_err(AgentError::Thread)?
    };
    Ok(AgentHandle {
        shared,
        events,
        source_name,
        fallback_reason,
        #[cfg(target_os = "linux")]
        gate: Mutex::new(gate),
        threads: Mutex::new(vec![watcher, recorder]),
    })
}

struct Opened {
    source: Box<dyn EventSource>,
    fallback_reason: Option<String>,
    #[cfg(target_os = "linux")]
    gate: Option<warden_monitor::gate::ExecGate>,
    #[cfg(not(target_os = "linux"))]
    gate: Option<()>,
}

#[cfg(target_os = "linux")]
fn open_sources(
    choice: &SourceChoice,
    gate: Option<&GateScope>,
    decider: Arc<Decider>,
    launches: Sender<Launch>,
) -> Result<Opened, AgentError> {
    use warden_monitor::gate::{DEFAULT_DEADLINE, ExecGate};
    let root = warden_monitor::running_as_root();
    let mut notes = Vec::new();
    let gate = match (choice, gate) {
        (SourceChoice::Fanotify, _) if !root => return Err(AgentError::GateNeedsRoot),
        (SourceChoice::Fanotify, scope) => {
            let scope = scope.cloned().unwrap_or_else(GateScope::all_local);
            Some(ExecGate::start(&scope, decider, launches, DEFAULT_DEADLINE)?)
        }
        (SourceChoice::Auto, Some(scope)) if root => {
            match ExecGate::start(scope, decider, launches, DEFAULT_DEADLINE) {
                Ok(gate) => Some(gate),
                Err(error) => {
                    notes.push(format!("no pre-exec gate: {error}"));
                    None
                }
            }
        }
        (SourceChoice::Auto, Some(_)) => {
            notes.push("no pre-exec gate: not running as root".to_owned());
            None
        }
        _ => None,
    };
    let (source, fallback) = warden_monitor::source::open(choice)?;
    notes.extend(fallback.map(|reason| format!("polling instead of the process connector: {reason}")));
    Ok(Opened { source, fallback_reason: (!notes.is_empty()).then(|| notes.join("; ")), gate })
}

#[cfg(not(target_os = "linux"))]
fn open_sources(
    choice: &SourceChoice,
    _gate: Option<&GateScope>,
    _decider: Arc<Decider>,
    _launches: Sender<Launch>,
) -> Result<Opened, AgentError> {
    let (source, fallback_reason) = warden_monitor::source::open(choice)?;
    Ok(Opened { source, fallback_reason, gate: None })
}

fn watch(shared: &Shared, mut source: Box<dyn EventSource>, launches: &Sender<Launch>, sweep: bool) {
    let mut watcher = Watcher::new(shared.decider.clone());
    if sweep {
        for launch in watcher.sweep_running() {
            let _ = launches.send(launch);
        }
    }
    let name = source.name();
    let mut notices = Vec::new();
    while !shared.stop.load(Ordering::Relaxed) {
        if let Err(_error) = source.wait(Duration::from_millis(200), &mut notices) {
            // A failing source must not spin: wait a little and try again.
            std::thread::sleep(Duration::from_millis(200));
        }
        for notice in notices.drain(..) {
            if let Some(launch) = watcher.handle(notice, name) {
                let _ = launches.send(launch);
            }
        }
        shared.lost.store(source.lost(), Ordering::Relaxed);
    }
}

fn record(shared: &Shared, launches: &Receiver<Launch>, events: &broadcast::Sender<LaunchEvent>) {
    loop {
        match launches.recv_timeout(Duration::from_millis(200)) {
            Ok(launch) => {
                let event = event_of(&launch);
                // Durable first: an event nobody stored must not be shown or uploaded.
                if shared.store.append(&event).is_err() {
                    shared.unrecorded.fetch_add(1, Ordering::Relaxed);
                }
                let _ = events.send(event);
            }
            Err(RecvTimeoutError::Timeout) if shared.stop.load(Ordering::Relaxed) => return,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

impl AgentHandle {
    /// Every launch event from now on (lagging receivers skip the oldest).
    pub fn subscribe(&self) -> broadcast::Receiver<LaunchEvent> {
        self.events.subscribe()
    }

    /// Replaces the policy; the next launch is decided by it (the gate's cache is dropped).
    pub fn set_policy(&self, policy: Policy, version: Option<String>) {
        self.shared.decider.set_policy(policy, version);
    }

    /// Replaces the approved exceptions.
    pub fn set_exceptions(&self, exceptions: Vec<Exception>) {
        self.shared.decider.set_exceptions(exceptions);
    }

    /// Replaces the uid → account bindings (after an enrollment).
    pub fn set_accounts(&self, accounts: Accounts) {
        self.shared.decider.set_accounts(accounts);
    }

    /// The rules in force now (policy, catalog, exceptions, accounts, version).
    pub fn rules(&self) -> Arc<warden_monitor::Rules> {
        self.shared.decider.rules()
    }

    /// Stops a shared agent (one behind an `Arc`, which cannot be moved into
    /// [`AgentHandle::shutdown`]): the gate is closed (pending execs go through) and the
    /// threads end on their own within a fraction of a second.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        #[cfg(target_os = "linux")]
        if let Some(gate) = self.gate.lock().unwrap_or_else(|p| p.into_inner()).take() {
            gate.stop();
        }
    }

    /// The durable event store (the upload outbox).
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// The newest events, newest first.
    pub fn recent_events(&self, limit: usize) -> Vec<LaunchEvent> {
        let filter = warden_store::EventFilter { limit, ..Default::default() };
        self.shared.store.recent(&filter).unwrap_or_default()
    }

    /// What the agent is doing now.
    pub fn status(&self) -> AgentStatus {
        let rules = self.shared.decider.rules();
        let midnight = now_ms() - now_ms().rem_euclid(86_400_000);
        let count = |outcome| self.shared.store.count_since(midnight, outcome).unwrap_or(0);
        let blocked = [Outcome::Killed, Outcome::Denied, Outcome::NotPermitted, Outcome::Exited]
            .into_iter()
            .map(|o| count(Some(o)))
            .sum();
        #[cfg(target_os = "linux")]
        let (gate_marks, gate_refusals) = match &*self.gate.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(gate) => (gate.marks(), gate.refusals()),
            None => (Vec::new(), Vec::new()),
        };
        #[cfg(not(target_os = "linux"))]
        let (gate_marks, gate_refusals) = (Vec::new(), Vec::new());
        AgentStatus {
            source: self.source_name.clone(),
            gate_mounts: gate_marks.iter().map(|m| m.mount_point.clone()).collect(),
            gate_marks,
            gate_refusals,
            fallback_reason: self.fallback_reason.clone(),
            mode: rules.policy.mode,
            policy_name: rules.policy.name.clone(),
            policy_version: rules.version.clone(),
            events_today: count(None),
            blocked_today: blocked,
            warned_today: count(Some(Outcome::Warned)),
            lost_notices: self.shared.lost.load(Ordering::Relaxed),
            unrecorded_events: self.shared.unrecorded.load(Ordering::Relaxed),
            store_recovery: self.shared.store.recovery().map(|r| {
                format!("the event store was unreadable ({}) and was moved to {}", r.reason, r.moved_to.display())
            }),
        }
    }

    /// Stops the sources and waits for the threads; events already decided are stored.
    pub async fn shutdown(self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        #[cfg(target_os = "linux")]
        let gate = self.gate.lock().unwrap_or_else(|p| p.into_inner()).take();
        let threads: Vec<_> = self.threads.lock().unwrap_or_else(|p| p.into_inner()).drain(..).collect();
        let _ = tokio::task::spawn_blocking(move || {
            #[cfg(target_os = "linux")]
            if let Some(gate) = gate {
                gate.stop();
            }
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }
}

impl Drop for AgentHandle {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}
