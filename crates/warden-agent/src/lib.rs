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
//! Gaps are evidence and are closed: a ticker thread notices when the agent's threads did
//! not run (SIGSTOP, starvation), the source counts exec notices the kernel dropped, and
//! after either (and at start) every running process is decided again ([`Rescan`], in
//! [`AgentStatus`] and as an [`AgentNotice`]). Launches an exception allowed are re-decided
//! at least every second; when the exception has ended they get an [`AgentNotice`] (the
//! pop-up) and, after the policy's grace period, their session is stopped. A blocked launch
//! started from a terminal is told there why, and what to use instead.
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

use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;
use warden_api::{LaunchEvent, Outcome};
use warden_monitor::{Decider, EventSource, Launch, SessionNotice, Watcher};
use warden_policy::{Accounts, Action, Exception, Mode, Policy};
use warden_store::Store;

pub use warden_monitor::gate::{GateMark, GateScope, MarkKind};
pub use warden_monitor::{EndReason, ExceptionEnd, GapReason, Rescan, SessionStop, SourceChoice};

/// How often the ticker thread checks that the agent's threads run.
const TICK: Duration = Duration::from_millis(100);

/// A tick this much later than due means the agent was stopped or starved: rescan.
pub const PAUSE_THRESHOLD: Duration = Duration::from_secs(1);

/// How long the watcher waits for exec notices before it looks at gaps and sessions.
const WAIT: Duration = Duration::from_millis(100);

/// How often running exception sessions are re-decided (exceptions expire with the clock).
const SESSION_CHECK: Duration = Duration::from_millis(250);

/// What the agent reports besides launches, each with an `id` (UUID) and `at_ms`: shaped
/// to become the `incident` (a gap and its rescan) and `exception-ended` events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum AgentNotice {
    /// After a gap, every running process was decided again.
    Rescan {
        id: String,
        #[serde(flatten)]
        rescan: Rescan,
    },
    /// A running launch's exception expired or was revoked: the pop-up with its grace period.
    ExceptionEnded {
        id: String,
        #[serde(flatten)]
        end: ExceptionEnd,
    },
    /// A session whose exception ended was stopped when its grace period was over.
    SessionStopped {
        id: String,
        #[serde(flatten)]
        stop: SessionStop,
    },
}

impl AgentNotice {
    /// The notice's id (UUID text).
    pub fn id(&self) -> &str {
        match self {
            AgentNotice::Rescan { id, .. }
            | AgentNotice::ExceptionEnded { id, .. }
            | AgentNotice::SessionStopped { id, .. } => id,
        }
    }

    /// The record the store keeps and the server receives: a rescan is an `incident`
    /// (`gap-rescan`), an exception's end and the session's stop are `exception-ended` events.
    pub fn to_event(&self) -> warden_api::Event {
        use warden_api::{ExceptionEndedEvent, IncidentEvent, SessionOutcome};
        let id = self.id().to_owned();
        match self {
            AgentNotice::Rescan { rescan, .. } => {
                let reasons: Vec<String> = rescan.reasons.iter().map(ToString::to_string).collect();
                warden_api::Event::Incident(IncidentEvent {
                    id,
                    at_ms: rescan.at_ms,
                    code: "gap-rescan".into(),
                    detail: format!(
                        "every running process decided again after a gap ({}): {} looked at, {} launches found, in {} ms",
                        reasons.join("; "),
                        rescan.processes,
                        rescan.launches,
                        rescan.duration_us / 1000
                    ),
                })
            }
            AgentNotice::ExceptionEnded { end, .. } => warden_api::Event::ExceptionEnded(ExceptionEndedEvent {
                id,
                at_ms: end.at_ms,
                exception: end.exception.clone(),
                tool: end.tool.clone(),
                user: end.user.clone(),
                pid: end.pid,
                ended: end.reason,
                grace_seconds: end.grace_secs,
                outcome: SessionOutcome::GracePeriod,
            }),
            AgentNotice::SessionStopped { stop, .. } => warden_api::Event::ExceptionEnded(ExceptionEndedEvent {
                id,
                at_ms: stop.at_ms,
                exception: stop.exception.clone(),
                tool: stop.tool.clone(),
                user: stop.user.clone(),
                pid: stop.pid,
                ended: stop.reason,
                grace_seconds: stop.grace_secs,
                outcome: match stop.outcome {
                    Outcome::Exited => SessionOutcome::Exited,
                    Outcome::NotPermitted => SessionOutcome::NotPermitted,
                    _ => SessionOutcome::Stopped,
                },
            }),
        }
    }

    /// When it happened, ms since the epoch.
    pub fn at_ms(&self) -> i64 {
        match self {
            AgentNotice::Rescan { rescan, .. } => rescan.at_ms,
            AgentNotice::ExceptionEnded { end, .. } => end.at_ms,
            AgentNotice::SessionStopped { stop, .. } => stop.at_ms,
        }
    }

    fn from_session(notice: SessionNotice) -> AgentNotice {
        let id = uuid::Uuid::new_v4().to_string();
        match notice {
            SessionNotice::ExceptionEnded(end) => AgentNotice::ExceptionEnded { id, end },
            SessionNotice::SessionStopped(stop) => AgentNotice::SessionStopped { id, stop },
        }
    }
}

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
    /// Rescans of every running process since the agent started (the start sweep counts).
    pub rescans: u64,
    /// The latest rescan: why, when, how many processes, how long.
    pub last_rescan: Option<Rescan>,
}

struct Shared {
    decider: Arc<Decider>,
    store: Store,
    stop: AtomicBool,
    lost: AtomicU64,
    unrecorded: AtomicU64,
    /// Set by the ticker when the agent's threads did not run for a while (ms late).
    paused_ms: AtomicU64,
    rescans: AtomicU64,
    last_rescan: Mutex<Option<Rescan>>,
    /// Launches an exception allowed, announced from the hot path (see [`Opening`]).
    openings: broadcast::Sender<Opening>,
}

/// A launch an approved exception allowed, announced the moment it is decided — before it is
/// stored — so the network layer can open its destinations before the tool's first connect
/// (through the recorder that would wait for the disk: milliseconds a native tool does not wait).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opening {
    pub pid: u32,
    /// The exception's id.
    pub exception: String,
}

impl Shared {
    /// Hands `launch` to the recorder, announcing it first when an exception allowed it.
    fn hand_over(&self, launch: Launch, records: &Sender<Record>) {
        if let (Some(exception), Some(pid)) = (&launch.verdict.exception, launch.facts.pid)
            && launch.verdict.action == Action::Allow
        {
            let _ = self.openings.send(Opening { pid, exception: exception.clone() });
        }
        let _ = records.send(Record::Launch(Box::new(launch)));
    }
}

/// What the watcher hands the recorder.
enum Record {
    Launch(Box<Launch>),
    Notice(AgentNotice),
}

/// A running agent. Dropping it without [`AgentHandle::shutdown`] leaves its threads to
/// stop on their own within a fraction of a second.
pub struct AgentHandle {
    shared: Arc<Shared>,
    events: broadcast::Sender<LaunchEvent>,
    notices: broadcast::Sender<AgentNotice>,
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

/// A new event id (UUID v4 text), unique across devices: the server deduplicates by it.
pub fn new_event_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The event record of a launch.
pub fn event_of(launch: &Launch) -> LaunchEvent {
    LaunchEvent {
        id: new_event_id(),
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
        paused_ms: AtomicU64::new(0),
        rescans: AtomicU64::new(0),
        last_rescan: Mutex::new(None),
        openings: broadcast::channel(256).0,
    });
    let (launch_tx, launch_rx) = std::sync::mpsc::channel::<Launch>();
    let (record_tx, record_rx) = std::sync::mpsc::channel::<Record>();
    let (events, _) = broadcast::channel(256);
    let (notices, _) = broadcast::channel(256);

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

    // The gate's launches join the watcher's on the way to the recorder.
    let forwarder = {
        let (record_tx, shared) = (record_tx.clone(), shared.clone());
        std::thread::Builder::new()
            .name("warden-gate-out".into())
            .spawn(move || {
                for launch in launch_rx {
                    shared.hand_over(launch, &record_tx);
                }
            })
            .map_err(AgentError::Thread)?
    };
    let recorder = {
        let (shared, events, notices) = (shared.clone(), events.clone(), notices.clone());
        std::thread::Builder::new()
            .name("warden-recorder".into())
            .spawn(move || record(&shared, &record_rx, &events, &notices))
            .map_err(AgentError::Thread)?
    };
    let ticker = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("warden-ticker".into())
            .spawn(move || tick(&shared))
            .map_err(AgentError::Thread)?
    };
    let watcher = {
        let shared = shared.clone();
        let sweep = config.sweep_running;
        std::thread::Builder::new()
            .name("warden-watcher".into())
            .spawn(move || watch(&shared, source, &record_tx, sweep))
            .map_err(AgentError::Thread)?
    };
    drop(launch_tx);
    Ok(AgentHandle {
        shared,
        events,
        source_name,
        fallback_reason,
        #[cfg(target_os = "linux")]
        gate: Mutex::new(gate),
        notices,
        threads: Mutex::new(vec![watcher, ticker, recorder, forwarder]),
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
        (SourceChoice::Auto, _) if !root => {
            notes.push("no pre-exec gate: not running as root".to_owned());
            None
        }
        // Root with the gate turned off (`wardend --no-gate`, `gate = []`): say that, not "root".
        (SourceChoice::Auto, None) => {
            notes.push("no pre-exec gate: the gate is not configured".to_owned());
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

fn watch(shared: &Shared, mut source: Box<dyn EventSource>, records: &Sender<Record>, sweep: bool) {
    let mut watcher = Watcher::new(shared.decider.clone());
    let rescan = |watcher: &mut Watcher, reasons: Vec<warden_monitor::GapReason>| {
        let (launches, rescan) = watcher.rescan(reasons);
        for launch in launches {
            shared.hand_over(launch, records);
        }
        shared.rescans.fetch_add(1, Ordering::Relaxed);
        *shared.last_rescan.lock().unwrap_or_else(|p| p.into_inner()) = Some(rescan.clone());
        let _ = records.send(Record::Notice(AgentNotice::Rescan { id: uuid::Uuid::new_v4().to_string(), rescan }));
    };
    if sweep {
        rescan(&mut watcher, vec![warden_monitor::GapReason::Start]);
    }
    let name = source.name();
    let mut notices = Vec::new();
    let mut lost_seen = source.lost();
    let mut sessions_checked = Instant::now();
    let mut generation = shared.decider.rules().generation;
    while !shared.stop.load(Ordering::Relaxed) {
        if let Err(_error) = source.wait(WAIT, &mut notices) {
            // A failing source must not spin: wait a little and try again.
            std::thread::sleep(Duration::from_millis(200));
        }
        for notice in notices.drain(..) {
            if let Some(launch) = watcher.handle(notice, name) {
                shared.hand_over(launch, records);
            }
        }
        // Large program files read off the hot path since: tools among them are decided now.
        for launch in watcher.late_launches() {
            shared.hand_over(launch, records);
        }
        let lost = source.lost();
        shared.lost.store(lost, Ordering::Relaxed);
        let mut gaps = Vec::new();
        if lost > lost_seen {
            gaps.push(warden_monitor::GapReason::LostNotices { lost: lost - lost_seen });
            lost_seen = lost;
        }
        let late_ms = shared.paused_ms.swap(0, Ordering::Relaxed);
        if late_ms > 0 {
            gaps.push(warden_monitor::GapReason::Paused { late_ms });
        }
        if !gaps.is_empty() {
            rescan(&mut watcher, gaps);
        }
        let rules_now = shared.decider.rules().generation;
        if rules_now != generation || sessions_checked.elapsed() >= SESSION_CHECK {
            generation = rules_now;
            sessions_checked = Instant::now();
            for notice in watcher.check_sessions() {
                let _ = records.send(Record::Notice(AgentNotice::from_session(notice)));
            }
        }
    }
}

/// Notices when the agent's threads did not run: a tick that comes [`PAUSE_THRESHOLD`]
/// later than due (CLOCK_MONOTONIC runs on while the process is stopped).
fn tick(shared: &Shared) {
    let mut last = Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        std::thread::sleep(TICK);
        let now = Instant::now();
        let late = now.duration_since(last).saturating_sub(TICK);
        if late >= PAUSE_THRESHOLD {
            shared.paused_ms.fetch_max(late.as_millis() as u64, Ordering::Relaxed);
        }
        last = now;
    }
}

fn record(
    shared: &Shared,
    records: &Receiver<Record>,
    events: &broadcast::Sender<LaunchEvent>,
    notices: &broadcast::Sender<AgentNotice>,
) {
    loop {
        match records.recv_timeout(Duration::from_millis(200)) {
            Ok(Record::Launch(launch)) => {
                let mut event = event_of(&launch);
                // What leaves the process (store, upload, live stream) keeps the program and the
                // options the catalog knows, not prompts or file names (`[privacy]`).
                let rules = shared.decider.rules();
                event.argv = warden_policy::shareable_argv(
                    &rules.policy,
                    &rules.catalog,
                    &launch.facts,
                    launch.verdict.tool.as_deref(),
                );
                // Durable first: an event nobody stored must not be shown or uploaded.
                if shared.store.append_launch(&event).is_err() {
                    shared.unrecorded.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(terminal) = &launch.terminal
                    && matches!(event.outcome, Outcome::Killed | Outcome::Denied)
                {
                    // Non-blocking: a terminal that would block misses the message.
                    let _ = terminal.tell(&warden_monitor::terminal::blocked_message(&launch.verdict));
                }
                let _ = events.send(event);
            }
            Ok(Record::Notice(notice)) => {
                // Durable first, as launches: the server hears of gaps and stopped sessions (the
                // sweep at every start is routine, not an incident).
                let routine = matches!(&notice, AgentNotice::Rescan { rescan, .. }
                    if rescan.reasons.iter().all(|r| matches!(r, warden_monitor::GapReason::Start)));
                if !routine && shared.store.append(&notice.to_event()).is_err() {
                    shared.unrecorded.fetch_add(1, Ordering::Relaxed);
                }
                let _ = notices.send(notice);
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

    /// Sets the hook that opens a launch's destinations when an exception allows it, called on
    /// the hot path while the launch is still frozen for its decision (see
    /// [`warden_monitor::Opener`]); `None` removes it.
    pub fn set_opener(&self, opener: Option<warden_monitor::Opener>) {
        self.shared.decider.set_opener(opener);
    }

    /// Launches an exception allowed, from now on, announced before they are stored (the
    /// network layer opens their destinations with them; lagging receivers skip the oldest, and
    /// the stored launch event follows anyway).
    pub fn subscribe_openings(&self) -> broadcast::Receiver<Opening> {
        self.shared.openings.subscribe()
    }

    /// Rescans, exception ends and stopped sessions from now on (lagging receivers skip the
    /// oldest).
    pub fn subscribe_notices(&self) -> broadcast::Receiver<AgentNotice> {
        self.notices.subscribe()
    }

    /// Replaces the policy; the next launch is decided by it (the gate's cache is dropped).
    pub fn set_policy(&self, policy: Policy, version: Option<String>) {
        self.shared.decider.set_policy(policy, version);
    }

    /// Replaces the approved exceptions. Running launches an exception allowed are decided
    /// again within a fraction of a second: those no longer covered get an
    /// [`AgentNotice::ExceptionEnded`] and are stopped after the policy's grace period.
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

    /// The newest launch events, newest first.
    pub fn recent_events(&self, limit: usize) -> Vec<LaunchEvent> {
        let filter = warden_store::EventFilter { limit, ..Default::default() };
        self.shared.store.recent_launches(&filter).unwrap_or_default()
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
            store_recovery: self.shared.store.recovery().map(ToString::to_string),
            rescans: self.shared.rescans.load(Ordering::Relaxed),
            last_rescan: self.shared.last_rescan.lock().unwrap_or_else(|p| p.into_inner()).clone(),
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

/// Runs the agent in the foreground until SIGINT or SIGTERM: `on_start` once it watches,
/// `on_event` for every launch event, `on_notice` for every [`AgentNotice`] (rescans, exception
/// ends). For `agent-run`, the agent as a process of its own (gap tests, `rescan-bench`).
pub fn run_foreground_with_notices(
    config: AgentConfig,
    on_start: impl FnOnce(&AgentStatus),
    mut on_event: impl FnMut(&LaunchEvent),
    mut on_notice: impl FnMut(&AgentNotice),
) -> Result<(), AgentError> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(AgentError::Thread)?;
    runtime.block_on(async move {
        let agent = start(config).await?;
        let mut events = agent.subscribe();
        let mut notices = agent.subscribe_notices();
        on_start(&agent.status());
        let terminate = terminated();
        tokio::pin!(terminate);
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(event) => on_event(&event),
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                notice = notices.recv() => match notice {
                    Ok(notice) => on_notice(&notice),
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = tokio::signal::ctrl_c() => break,
                _ = &mut terminate => break,
            }
        }
        agent.shutdown().await;
        Ok(())
    })
}

/// Resolves on SIGTERM (how services and test harnesses stop the agent).
#[cfg(unix)]
async fn terminated() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut signal) => {
            signal.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn terminated() {
    std::future::pending().await
}
