//! The runtime, built once: the agent (process events → verdict → enforcement → event log)
//! and, when the device is enrolled, the server sync feeding it policy and exceptions. The
//! system service (`wardend`, root) and the personal mode (`warden watch`, the tray without a
//! service) run this same code; only [`RuntimeMode`] and where the token lives differ.
//!
//! Who asks is always a uid the caller cannot choose (the local API takes it from the socket):
//! [`Runtime::caller`] turns it into a login and the account the enrollment binds it to.

use crate::gateway::{GatewaySettings, HostedGateway};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::broadcast;
use warden_agent::{AgentConfig, AgentHandle, AgentNotice};
use warden_api::local::{
    Caller, EnrolledDevice, FiledRequest, GatewayAccess, GatewayState, LiveEvent, LocalEnroll, LocalError,
    LocalErrorCode, MyRequests, NetworkStatus, PolicyInForce, QueuedRequest, RuntimeMode, RuntimeStatus, SyncState,
};
use warden_api::{
    Event, EventKind, ExceptionRequestCreate, LaunchEvent, MaskingEvent, Outcome, ServiceStartEvent, ServiceStopEvent,
    UncleanEnd,
};
use warden_client::{
    Device, Enforcement, EnrollCredential, EnrollOptions, LocalUser, StateDir, SyncLoop, SyncOptions, TokenStorage,
};
use warden_monitor::facts::UserNames;
use warden_policy::{Exception, Mode, Policy};

use crate::controls::Keeper;

/// How a runtime starts.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub mode: RuntimeMode,
    /// The agent's configuration; its `state_dir` is the runtime's state directory.
    pub agent: AgentConfig,
    pub token_storage: TokenStorage,
    pub sync: SyncOptions,
    /// A local policy was given on purpose (personal mode's `--policy`, or the service's
    /// `[policy] file` before enrollment): the server's policy does not replace it.
    pub policy_overridden: bool,
    /// Monitor mode forced over whatever policy arrives.
    pub monitor_forced: bool,
    /// Write and keep the vendors' managed files (the system service only: they are system
    /// files); `None` writes none.
    pub controls: Option<crate::controls::ControlsOptions>,
    /// Host the masking gateway for every local user (`wardend`); `None`: no gateway (the personal
    /// mode, where a developer runs `warden gateway` themselves).
    pub gateway: Option<GatewaySettings>,
}

/// The sync side, present while the device is enrolled.
struct ServerLink {
    device: Arc<Device>,
    sync: SyncLoop,
}

/// A running runtime. Share it as `Arc<Runtime>`.
pub struct Runtime {
    mode: RuntimeMode,
    state: StateDir,
    agent: Arc<AgentHandle>,
    link: Mutex<Option<ServerLink>>,
    live: broadcast::Sender<LiveEvent>,
    started_at_ms: i64,
    token_storage: TokenStorage,
    sync_options: SyncOptions,
    monitor_forced: bool,
    policy_overridden: bool,
    users: Mutex<UserNames>,
    enroll_lock: tokio::sync::Mutex<()>,
    keeper: Option<Arc<Keeper>>,
    hosted_gateway: Option<String>,
    gateway: Option<HostedGateway>,
    /// The network layer, once `start_network` ran (else the status says launch only).
    network: std::sync::OnceLock<crate::network::NetworkHandle>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("mode", &self.mode).field("state", &self.state).finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Starting the runtime failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("starting the agent: {0}")]
    Agent(#[from] warden_agent::AgentError),
}

/// The agent seen as the sync loop's enforcement side; keeps a forced monitor mode over
/// policies that arrive, and rewrites the vendors' managed files for each new policy.
struct AgentEnforcement {
    agent: Arc<AgentHandle>,
    monitor_forced: bool,
    keeper: Option<Arc<Keeper>>,
    hosted_gateway: Option<String>,
}

/// The gateway this runtime hosts is a sanctioned destination (the policy's `gateway_url`) when
/// the policy names none: the sanctioned client is pinned to it and may be pointed at it.
fn with_hosted_gateway(policy: &mut Policy, hosted: Option<&String>) {
    if let (Some(assistant), Some(url)) = (policy.assistant.as_mut(), hosted)
        && assistant.gateway_url.is_none()
        && assistant.api_url.is_some()
    {
        assistant.gateway_url = Some(url.clone());
    }
}

impl Enforcement for AgentEnforcement {
    fn set_policy(&self, mut policy: Policy, version: Option<String>) {
        if self.monitor_forced {
            policy.mode = Mode::Monitor;
        }
        with_hosted_gateway(&mut policy, self.hosted_gateway.as_ref());
        if let Some(keeper) = &self.keeper {
            keeper.apply(&policy);
        }
        self.agent.set_policy(policy, version);
    }

    fn set_exceptions(&self, exceptions: Vec<Exception>) {
        if let Some(keeper) = &self.keeper {
            keeper.set_exceptions(exceptions.clone());
        }
        self.agent.set_exceptions(exceptions);
    }
}

impl Runtime {
    /// Starts the agent from the last verified rules (enforcing from the first instant, even
    /// offline) and, when enrolled, the server sync.
    pub async fn start(mut config: RuntimeConfig) -> Result<Arc<Runtime>, RuntimeError> {
        let state = StateDir::new(&config.agent.state_dir);
        let enrollment = state.load_enrollment().ok().flatten();
        let held = warden_client::HeldIncidents::default();
        if let Some(enrollment) = &enrollment {
            config.agent.accounts = enrollment.accounts();
            // Verified against the pinned key before the agent enforces them: a rewritten cache
            // is kept aside, and the last verified copy is what starts. Its incidents wait for
            // the agent's store (the agent opens it, and reports a recovery of it).
            let rules = warden_client::cached_rules(&state, &held);
            if !config.policy_overridden
                && let Ok((Some((mut policy, version)), exceptions)) = rules
            {
                if config.monitor_forced {
                    policy.mode = Mode::Monitor;
                }
                config.agent.policy = policy;
                config.agent.policy_version = Some(version.to_string());
                config.agent.exceptions = exceptions;
            }
        }
        let hosted_gateway = config.gateway.as_ref().map(|settings| format!("http://{}/v1", settings.listen));
        with_hosted_gateway(&mut config.agent.policy, hosted_gateway.as_ref());
        // Read before the agent starts: its first launches must not pass for the last run's.
        let (unclean_end, recovery) = previous_unclean_end(&state);
        let state_root = config.agent.state_dir.clone();
        let agent = Arc::new(warden_agent::start(config.agent).await?);
        if let Err(error) = held.report_to(agent.store()) {
            eprintln!("warden: warning: cannot record a cache incident: {error}");
        }
        // That read opened the event log first, so a damaged one was moved aside there: say so
        // as the agent would have, and leave the incident for the server.
        if let Some(recovery) = recovery {
            eprintln!("warden: warning: {recovery}");
            let incident = Event::Incident(warden_api::IncidentEvent {
                id: warden_agent::new_event_id(),
                at_ms: now_ms(),
                code: "store-recovered".into(),
                detail: recovery.to_string(),
            });
            if let Err(error) = agent.store().append(&incident) {
                eprintln!("warden: warning: recording the store's recovery: {error}");
            }
        }
        let start = ServiceStartEvent {
            id: warden_agent::new_event_id(),
            at_ms: now_ms(),
            mode: config.mode,
            version: VERSION.to_owned(),
            pid: std::process::id(),
            source: Some(agent.status().source),
            unclean_end,
        };
        if let Err(error) = agent.store().append(&Event::ServiceStart(start)) {
            eprintln!("warden: warning: recording the start: {error}");
        }
        let keeper = match config.controls.clone() {
            Some(options) => {
                let recorder = agent.clone();
                let report: crate::controls::DriftReport = Box::new(move |drift| {
                    eprintln!(
                        "wardend: {} was {} and is {}: {}",
                        drift.path,
                        if drift.change == warden_api::DriftChange::Removed { "removed" } else { "changed" },
                        if drift.restored { "restored" } else { "NOT restored" },
                        drift.detail
                    );
                    if let Err(error) = recorder.store().append(&Event::ControlDrift(drift)) {
                        eprintln!("warden: warning: recording a control drift: {error}");
                    }
                });
                let rules = agent.rules();
                match Keeper::start(options, &rules.policy, &rules.exceptions, report) {
                    Ok(keeper) => Some(Arc::new(keeper)),
                    Err(error) => {
                        eprintln!("warden: warning: not keeping the vendors' managed files: {error}");
                        None
                    }
                }
            }
            None => None,
        };
        let (live, _) = broadcast::channel(512);
        let runtime = Arc::new(Runtime {
            mode: config.mode,
            state,
            agent,
            link: Mutex::new(None),
            live,
            started_at_ms: now_ms(),
            token_storage: config.token_storage,
            sync_options: config.sync,
            monitor_forced: config.monitor_forced,
            policy_overridden: config.policy_overridden,
            users: Mutex::new(UserNames::default()),
            enroll_lock: tokio::sync::Mutex::new(()),
            keeper,
            hosted_gateway,
            gateway: config.gateway.map(|settings| HostedGateway::new(settings, &state_root)),
            network: std::sync::OnceLock::new(),
        });
        runtime.refresh_gateway().await;
        tokio::spawn(forward_launches(runtime.clone(), runtime.agent.subscribe()));
        tokio::spawn(forward_notices(runtime.clone(), runtime.agent.subscribe_notices()));
        if enrollment.is_some()
            && !runtime.policy_overridden
            && let Err(error) = runtime.link_server()
        {
            eprintln!("warden: warning: not syncing with the server: {error}");
        }
        Ok(runtime)
    }

    /// Opens the enrolled device and starts its sync loop (replacing a running one).
    fn link_server(self: &Arc<Runtime>) -> Result<(), warden_client::ClientError> {
        let store = Arc::new(warden_store::Store::open(self.state.events_db())?);
        let device = Arc::new(Device::open_from(self.state.clone(), store, &self.token_storage)?);
        let enforcement: Arc<dyn Enforcement> = Arc::new(AgentEnforcement {
            agent: self.agent.clone(),
            monitor_forced: self.monitor_forced,
            keeper: self.keeper.clone(),
            hosted_gateway: self.hosted_gateway.clone(),
        });
        let mut options = self.sync_options.clone();
        options.inventory.get_or_insert_with(|| self.inventory_scanner());
        let sync = warden_client::sync::spawn(device.clone(), enforcement, options);
        tokio::spawn(forward_sync(self.clone(), sync.status.clone()));
        if let Some(old) = lock(&self.link).replace(ServerLink { device, sync }) {
            old.sync.stop();
        }
        Ok(())
    }

    pub fn mode(&self) -> RuntimeMode {
        self.mode
    }

    /// What the sync loop reports as installed: the system service scans every local person's
    /// home and the system-wide folders; the personal mode, its own user's home and the same
    /// system folders. Read with the policy in force at each scan (its catalog and `[mcp]`).
    fn inventory_scanner(&self) -> warden_client::InventoryScanner {
        let agent = self.agent.clone();
        let mode = self.mode;
        Arc::new(move || {
            use warden_monitor::inventory::{LocalHome, device_report, local_homes, npm_global_root};
            let homes = match mode {
                RuntimeMode::Service => local_homes(),
                RuntimeMode::Personal => {
                    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
                    let user = std::env::var("USER").unwrap_or_default();
                    home.map(|home| vec![LocalHome { user, home }]).unwrap_or_default()
                }
            };
            device_report(&agent.rules().policy, &homes, npm_global_root(), true, now_ms())
        })
    }

    /// Starts the network layer (the system service, as root): the eBPF hooks on
    /// `config.cgroup` (default: the cgroup v2 root, the whole machine). A failure to load them
    /// never stops the runtime: the status says which layer is active and why. Once per runtime.
    pub fn start_network(self: &Arc<Runtime>, config: &crate::network::NetworkConfig) -> NetworkStatus {
        let handle = crate::network::start(self, config);
        let status = handle.status();
        let _ = self.network.set(handle);
        status
    }

    /// Sends a live event to every subscriber (stored first by whoever made it).
    pub(crate) fn broadcast(&self, live: LiveEvent) {
        let _ = self.live.send(live);
    }

    fn network_status(&self) -> NetworkStatus {
        match self.network.get() {
            Some(handle) => handle.status(),
            None => crate::network::NetworkHandle::launch_only(match self.mode {
                RuntimeMode::Personal => {
                    "the personal mode runs as you and loads no kernel hooks; connections are governed by the system service (wardend)"
                }
                RuntimeMode::Service => "the network layer is switched off in the configuration",
            })
            .status(),
        }
    }

    pub fn agent(&self) -> &Arc<AgentHandle> {
        &self.agent
    }

    pub fn state(&self) -> &StateDir {
        &self.state
    }

    /// The keeper of the vendors' managed files, when this runtime writes them.
    pub fn controls(&self) -> Option<&Arc<Keeper>> {
        self.keeper.as_ref()
    }

    /// Live events for every subscriber (the local API filters them per caller).
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.live.subscribe()
    }

    /// Who `uid` is: its login and the account the enrollment binds it to.
    pub fn caller(&self, uid: u32) -> Caller {
        let login = lock(&self.users).name(uid);
        let account = self
            .state
            .load_enrollment()
            .ok()
            .flatten()
            .and_then(|enrollment| enrollment.accounts().account_of(uid).map(str::to_owned));
        Caller { uid, login, account }
    }

    /// Whether `caller` may see `event`: root sees every launch, a user their own (the event's
    /// person is the bound account, else the login — `ProcessFacts::person`).
    pub fn may_see(caller: &Caller, event: &LaunchEvent) -> bool {
        Runtime::is_theirs(caller, event.user.as_deref())
    }

    /// Whether `caller` may see a live event: launches and ends of exceptions their own (root:
    /// all), rescans root alone.
    pub fn may_see_live(caller: &Caller, live: &LiveEvent) -> bool {
        match live {
            LiveEvent::Launch { event } => Runtime::may_see(caller, event),
            LiveEvent::ExceptionEnded { ended } => Runtime::is_theirs(caller, ended.user.as_deref()),
            LiveEvent::SessionStopped { stopped } => Runtime::is_theirs(caller, stopped.user.as_deref()),
            LiveEvent::Masking { masking } => Runtime::is_theirs(caller, masking.user.as_deref()),
            LiveEvent::Rescan { .. } => caller.uid == 0,
            LiveEvent::Connect { event } => Runtime::is_theirs(caller, event.user.as_deref()),
            LiveEvent::Sync { .. } | LiveEvent::KeepAlive => true,
        }
    }

    fn is_theirs(caller: &Caller, person: Option<&str>) -> bool {
        if caller.uid == 0 {
            return true;
        }
        let mine = Runtime::person(caller);
        mine.is_some() && person == mine
    }

    fn sync_state(&self) -> Option<SyncState> {
        let link = lock(&self.link);
        let link = link.as_ref()?;
        let status = link.sync.status.borrow().clone();
        Some(SyncState {
            last_success: status.last_success,
            last_error: status.last_error,
            policy_version: status.policy_version,
            active_exceptions: status.active_exceptions,
            syncs: status.syncs,
            interval_seconds: self.sync_options.interval.as_secs(),
        })
    }

    /// The runtime's status as `caller` may see it (counts of their own launches today).
    pub fn status(&self, caller: &Caller) -> RuntimeStatus {
        let agent = self.agent.status();
        let midnight = now_ms() - now_ms().rem_euclid(86_400_000);
        let today: Vec<LaunchEvent> =
            self.own_events(caller, 100_000).into_iter().filter(|e| e.at_ms >= midnight).collect();
        let blocked = today
            .iter()
            .filter(|e| {
                matches!(e.outcome, Outcome::Killed | Outcome::Denied | Outcome::NotPermitted | Outcome::Exited)
            })
            .count();
        let warned = today.iter().filter(|e| e.outcome == Outcome::Warned).count();
        RuntimeStatus {
            mode: self.mode,
            pid: std::process::id(),
            started_at_ms: self.started_at_ms,
            source: agent.source,
            gate_mounts: agent.gate_mounts.iter().map(|p| p.display().to_string()).collect(),
            fallback_reason: agent.fallback_reason,
            enforcement: agent.mode,
            policy_name: agent.policy_name,
            policy_version: agent.policy_version,
            enrolled: self.enrolled_device(),
            sync: self.sync_state(),
            events_today: today.len() as u64,
            blocked_today: blocked as u64,
            warned_today: warned as u64,
            lost_notices: agent.lost_notices,
            unrecorded_events: agent.unrecorded_events,
            rescans: agent.rescans,
            last_rescan: agent.last_rescan,
            managed_files: self.keeper.as_ref().map(|k| k.status()).unwrap_or_default(),
            gateway: self.gateway_state(caller),
            network: Some(self.network_status()),
        }
    }

    /// The hosted gateway as `caller` may see it: its address and their own requests of the last
    /// 24 hours (root: everyone's).
    fn gateway_state(&self, caller: &Caller) -> Option<GatewayState> {
        let serving = self.gateway.as_ref()?.serving();
        let since = now_ms() - 86_400_000;
        let summary = match (caller.uid, Runtime::person(caller)) {
            (0, _) => self.agent.store().masking_since(since, None),
            (_, Some(person)) => self.agent.store().masking_since(since, Some(person)),
            // A uid without a name has no events of its own.
            (_, None) => Ok(warden_store::MaskingSummary::default()),
        };
        let summary = summary.unwrap_or_else(|error| {
            eprintln!("warden: warning: reading the gateway's counts: {error}");
            warden_store::MaskingSummary::default()
        });
        Some(GatewayState {
            url: serving.listen.map(|a| format!("http://{a}/v1")).unwrap_or_default(),
            upstream: serving.upstream.unwrap_or_default(),
            assistant: self.agent.rules().policy.assistant.as_ref().map(|a| a.name.clone()),
            error: serving.error,
            requests_24h: summary.requests,
            masked_24h: summary.masked,
            kept_masked_24h: summary.kept_masked,
            last: summary.last,
        })
    }

    /// The person a caller is in events: the bound account, else the login.
    fn person(caller: &Caller) -> Option<&str> {
        caller.account.as_deref().or(caller.login.as_deref())
    }

    /// How `caller`'s own client reaches the hosted gateway: its address and their token (made on
    /// first ask, kept across restarts).
    pub fn gateway_access(&self, caller: &Caller) -> Result<GatewayAccess, LocalError> {
        let gateway = self.gateway.as_ref().ok_or_else(|| {
            LocalError::new(
                LocalErrorCode::NoGateway,
                "this runtime hosts no masking gateway (personal mode: run `warden gateway`)",
            )
        })?;
        let serving = gateway.serving();
        let listen = serving.listen.ok_or_else(|| {
            LocalError::new(
                LocalErrorCode::NoGateway,
                format!("the masking gateway is down: {}", serving.error.as_deref().unwrap_or("not started")),
            )
        })?;
        let token = gateway
            .token_for(caller.uid)
            .map_err(|e| LocalError::new(LocalErrorCode::Internal, format!("making your gateway token: {e}")))?;
        Ok(GatewayAccess {
            openai_base_url: format!("http://{listen}/v1"),
            anthropic_base_url: format!("http://{listen}"),
            token,
        })
    }

    /// Starts, restarts or keeps the hosted gateway for the policy in force.
    async fn refresh_gateway(self: &Arc<Runtime>) {
        let Some(gateway) = &self.gateway else { return };
        let policy = self.agent.rules().policy.clone();
        let runtime = Arc::downgrade(self);
        let on_report: warden_gateway::ReportSink = Arc::new(move |report: &warden_gateway::RequestReport| {
            if let Some(runtime) = Weak::upgrade(&runtime) {
                runtime.record_masking(report);
            }
        });
        gateway.apply(&policy, on_report).await;
    }

    /// One request through the gateway: a `masking` event of the person it was for, in the event
    /// log (and so on its way to the server) and to live subscribers.
    fn record_masking(self: &Arc<Runtime>, report: &warden_gateway::RequestReport) {
        let user =
            report.client.parse::<u32>().ok().and_then(|uid| Runtime::person(&self.caller(uid)).map(str::to_owned));
        let policy = &self.agent.rules().policy;
        let destination = policy
            .assistant
            .as_ref()
            .map(|a| a.name.clone())
            .unwrap_or_else(|| self.gateway.as_ref().and_then(|g| g.serving().upstream).unwrap_or_default());
        let masking = MaskingEvent {
            id: warden_agent::new_event_id(),
            at_ms: now_ms(),
            user,
            path: report.path.clone(),
            status: report.status,
            destination,
            masked: report.masked.by_rule.clone(),
            restored: report.restored,
            kept_masked_in: report.kept_masked.iter().map(|(tool, _)| tool.clone()).collect(),
        };
        let runtime = self.clone();
        // The report arrives on the proxy's task: the fsynced write goes to a blocking thread.
        tokio::task::spawn_blocking(move || {
            if let Err(error) = runtime.agent.store().append(&Event::Masking(masking.clone())) {
                eprintln!("warden: warning: recording the gateway's counts: {error}");
            }
            let _ = runtime.live.send(LiveEvent::Masking { masking });
            if let Some(link) = lock(&runtime.link).as_ref() {
                link.sync.trigger.sync_now();
            }
        });
    }

    fn enrolled_device(&self) -> Option<EnrolledDevice> {
        let enrollment = self.state.load_enrollment().ok().flatten()?;
        Some(EnrolledDevice {
            server: enrollment.server,
            device_id: enrollment.device_id,
            owner: enrollment.user,
            local_users: enrollment.local_users.into_iter().map(|u| u.login).collect(),
        })
    }

    /// The policy in force.
    pub fn policy(&self) -> PolicyInForce {
        let rules = self.agent.rules();
        PolicyInForce { policy: rules.policy.clone(), version: rules.version.clone() }
    }

    /// `caller`'s own launch events, newest first.
    pub fn own_events(&self, caller: &Caller, limit: usize) -> Vec<LaunchEvent> {
        // Read a wider window than asked: other people's launches are filtered out.
        let window = if caller.uid == 0 { limit } else { limit.saturating_mul(4).max(1000) };
        self.agent.recent_events(window).into_iter().filter(|e| Runtime::may_see(caller, e)).take(limit).collect()
    }

    /// Asks the sync loop for a sync now.
    pub fn sync_now(&self) -> Result<SyncState, LocalError> {
        let trigger = lock(&self.link).as_ref().map(|link| link.sync.trigger.clone()).ok_or_else(not_enrolled)?;
        trigger.sync_now();
        self.sync_state().ok_or_else(not_enrolled)
    }

    fn device(&self) -> Result<Arc<Device>, LocalError> {
        lock(&self.link).as_ref().map(|l| l.device.clone()).ok_or_else(not_enrolled)
    }

    /// The account `caller` files requests as: the device's owner, for a uid bound to it.
    fn requester(&self, caller: &Caller) -> Result<String, LocalError> {
        if let Some(account) = &caller.account {
            return Ok(account.clone());
        }
        let owner = self.enrolled_device().map(|d| d.owner);
        Err(LocalError::new(
            LocalErrorCode::Forbidden,
            match owner {
                Some(owner) => format!(
                    "this device is enrolled for {owner}, and your login ({}) is not bound to that account: \
                     its exception requests are that person's",
                    caller.login.as_deref().unwrap_or("uid without a name")
                ),
                None => "this device is not enrolled with a server".into(),
            },
        ))
    }

    /// Files an exception request as `caller` (checked against the policy in force, queued
    /// durably, then sent at once; a server that cannot be reached leaves it queued).
    pub async fn file_request(
        &self,
        caller: &Caller,
        request: ExceptionRequestCreate,
    ) -> Result<FiledRequest, LocalError> {
        // An enrollment in flight has written its files before its sync link exists: wait for it.
        drop(self.enroll_lock.lock().await);
        let device = self.device()?;
        self.requester(caller)?;
        let policy = self.agent.rules().policy.clone();
        if policy.catalog().tool(&request.tool).is_none() {
            return Err(LocalError::new(
                LocalErrorCode::BadRequest,
                format!("unknown tool id {:?}: see `warden catalog` for the ids", request.tool),
            ));
        }
        if request.duration_seconds > policy.exceptions.max_duration {
            return Err(LocalError::new(
                LocalErrorCode::BadRequest,
                format!(
                    "duration_seconds: {} is longer than the policy allows ({} s)",
                    request.duration_seconds, policy.exceptions.max_duration
                ),
            ));
        }
        let id =
            device.queue_request(&request).map_err(|e| LocalError::new(LocalErrorCode::BadRequest, e.to_string()))?;
        let (sent, detail) = match device.send_requests().await {
            Ok((_, 0)) => {
                (device.store().pending_exception_requests(1000).is_ok_and(|q| q.iter().all(|r| r.id != id)), None)
            }
            Ok((_, _refused)) => {
                let reason = device.store().incidents(1).ok().and_then(|i| i.into_iter().next()).map(|i| i.detail);
                return Err(LocalError::new(
                    LocalErrorCode::Server,
                    format!("the server refused the request: {}", reason.unwrap_or_default()),
                ));
            }
            Err(error) => {
                (false, Some(format!("not sent yet ({error}); it stays queued and goes out at the next sync")))
            }
        };
        Ok(FiledRequest { id, sent, detail })
    }

    /// `caller`'s exception requests: the server's records (live, else as last fetched) and the
    /// outbox.
    pub async fn requests(&self, caller: &Caller) -> Result<MyRequests, LocalError> {
        let device = self.device()?;
        self.requester(caller)?;
        let queued = device
            .store()
            .pending_exception_requests(1000)
            .map_err(|e| LocalError::new(LocalErrorCode::Internal, e.to_string()))?
            .into_iter()
            .filter_map(|q| {
                serde_json::from_str::<ExceptionRequestCreate>(&q.body).ok().map(|request| QueuedRequest {
                    id: q.id,
                    created_ms: q.created_ms,
                    request,
                })
            })
            .collect();
        let (requests, live) = match device.sync_exceptions().await {
            Ok(list) => (list.requests, true),
            Err(_) => {
                (warden_client::cached_requests(&self.state).ok().flatten().map(|(_, r)| r).unwrap_or_default(), false)
            }
        };
        Ok(MyRequests { live, requests, queued })
    }

    /// Enrolls the device (root only, checked by the caller of this function) and starts
    /// syncing. The token goes where this runtime keeps it.
    pub async fn enroll(
        self: &Arc<Runtime>,
        enroll: LocalEnroll,
        hostname: String,
    ) -> Result<EnrolledDevice, LocalError> {
        let _one_at_a_time = self.enroll_lock.lock().await;
        let mut local_users = Vec::new();
        for login in &enroll.local_users {
            let Some(uid) = warden_monitor::facts::uid_of(login) else {
                return Err(LocalError::new(
                    LocalErrorCode::BadRequest,
                    format!("local_users: no local user named {login:?}"),
                ));
            };
            local_users.push(LocalUser { uid, login: login.clone() });
        }
        let bad = |message: String| LocalError::new(LocalErrorCode::BadRequest, message);
        let (server, credential, owner) = match enroll.code.as_deref() {
            Some(text) => {
                let code = warden_api::EnrollmentCode::decode(text).map_err(|e| bad(format!("code: {e}")))?;
                let server = if enroll.server.trim().is_empty() { code.server.clone() } else { enroll.server };
                let owner = if enroll.owner.trim().is_empty() { code.user.clone() } else { enroll.owner };
                (server, EnrollCredential::Code(code), owner)
            }
            None => (enroll.server, EnrollCredential::Secret(enroll.secret), enroll.owner),
        };
        let options = EnrollOptions {
            server,
            credential,
            user: owner,
            local_users,
            hostname,
            allow_token_without_keyring: false,
            token_storage: self.token_storage.clone(),
        };
        let enrolled = warden_client::enroll(&self.state, &options)
            .await
            .map_err(|e| LocalError::new(LocalErrorCode::Server, format!("enrolling with {}: {e}", options.server)))?;
        self.agent.set_accounts(enrolled.enrollment.accounts());
        self.link_server().map_err(|e| LocalError::new(LocalErrorCode::Internal, e.to_string()))?;
        self.enrolled_device().ok_or_else(not_enrolled)
    }

    /// A clean stop: stops the sync and the agent (events already decided are stored), records
    /// a `service-stop` saying `reason` (`signal SIGTERM`), and, when enrolled, uploads it at
    /// once (waiting at most [`FINAL_UPLOAD`]; what is not sent goes with the next start's sync).
    pub async fn shutdown(self: Arc<Runtime>, reason: &str) {
        let device = lock(&self.link).take().map(|link| {
            link.sync.stop();
            link.device
        });
        // Tasks forwarding events hold clones of the agent, so it is stopped, not dropped;
        // closing the gate joins its threads, which must not hold up an async worker.
        if let Some(gateway) = &self.gateway {
            gateway.stop().await;
        }
        let agent = self.agent.clone();
        let _ = tokio::task::spawn_blocking(move || agent.stop()).await;
        let stop = ServiceStopEvent {
            id: warden_agent::new_event_id(),
            at_ms: now_ms(),
            mode: self.mode,
            version: VERSION.to_owned(),
            pid: std::process::id(),
            reason: reason.to_owned(),
        };
        if let Err(error) = self.agent.store().append(&Event::ServiceStop(stop)) {
            eprintln!("warden: warning: recording the stop: {error}");
            return;
        }
        if let Some(device) = device {
            match tokio::time::timeout(FINAL_UPLOAD, device.upload_events()).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => eprintln!("warden: the stop goes out with the next sync ({error})"),
                Err(_) => eprintln!("warden: the stop goes out with the next sync (the server did not answer in time)"),
            }
        }
    }
}

/// This runtime's version, as its start and stop events report it.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How long a clean stop waits for its final upload.
pub const FINAL_UPLOAD: std::time::Duration = std::time::Duration::from_secs(5);

/// The run before this one, when it recorded a start and no stop after it: it ended uncleanly
/// (crash, `kill -9`, power cut, or silenced). `None` also when the event log cannot be read:
/// that is reported, and the start is recorded without the evidence. Second: the damaged event
/// log this open moved aside, if it did.
fn previous_unclean_end(state: &StateDir) -> (Option<UncleanEnd>, Option<warden_store::Recovery>) {
    let newest = |store: &warden_store::Store, kind: Option<EventKind>| {
        store.recent(&warden_store::EventFilter { limit: 1, kind, ..Default::default() }).map(|e| e.into_iter().next())
    };
    let store = match warden_store::Store::open(state.events_db()) {
        Ok(store) => store,
        Err(error) => {
            eprintln!("warden: warning: reading how the last run ended: {error}");
            return (None, None);
        }
    };
    let read = || -> Result<Option<UncleanEnd>, warden_store::StoreError> {
        let Some(Event::ServiceStart(start)) = newest(&store, Some(EventKind::ServiceStart))? else {
            return Ok(None);
        };
        // A stop is recorded after its run's start, so one as new as the start ended that run.
        if newest(&store, Some(EventKind::ServiceStop))?.is_some_and(|stop| stop.at_ms() >= start.at_ms) {
            return Ok(None);
        }
        let last_event_at_ms = newest(&store, None)?.map_or(start.at_ms, |event| event.at_ms());
        Ok(Some(UncleanEnd {
            start_id: start.id,
            started_at_ms: start.at_ms,
            pid: start.pid,
            version: start.version,
            last_event_at_ms,
        }))
    };
    let unclean = read().unwrap_or_else(|error| {
        eprintln!("warden: warning: reading how the last run ended: {error}");
        None
    });
    (unclean, store.recovery().cloned())
}

fn not_enrolled() -> LocalError {
    LocalError::new(
        LocalErrorCode::NotEnrolled,
        "this device is not enrolled with a governance server (root: `warden enroll --server URL …`)",
    )
}

/// Hands every launch to live subscribers and asks for a sync (a block or warning should reach
/// the server soon, not at the next tick).
async fn forward_launches(runtime: Arc<Runtime>, mut events: broadcast::Receiver<LaunchEvent>) {
    loop {
        match events.recv().await {
            Ok(event) => {
                let _ = runtime.live.send(LiveEvent::Launch { event });
                if let Some(link) = lock(&runtime.link).as_ref() {
                    link.sync.trigger.sync_now();
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Hands the agent's notices to live subscribers: the pop-up when an exception that allowed a
/// running launch ends, the stop after its grace period (the policy's `[exceptions] grace`, read
/// by the agent from the rules in force), and rescans after gaps.
async fn forward_notices(runtime: Arc<Runtime>, mut notices: broadcast::Receiver<AgentNotice>) {
    loop {
        let live = match notices.recv().await {
            Ok(AgentNotice::ExceptionEnded { end, .. }) => LiveEvent::ExceptionEnded { ended: end },
            Ok(AgentNotice::SessionStopped { stop, .. }) => LiveEvent::SessionStopped { stopped: stop },
            Ok(AgentNotice::Rescan { rescan, .. }) => LiveEvent::Rescan { rescan },
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let _ = runtime.live.send(live);
    }
}

/// Tells live subscribers when the sync state changes.
async fn forward_sync(runtime: Arc<Runtime>, mut status: tokio::sync::watch::Receiver<warden_client::SyncStatus>) {
    let mut last: BTreeMap<&'static str, String> = BTreeMap::new();
    while status.changed().await.is_ok() {
        let now = status.borrow_and_update().clone();
        let mut seen = BTreeMap::new();
        seen.insert("policy", format!("{:?}", now.policy_version));
        seen.insert("exceptions", now.active_exceptions.to_string());
        seen.insert("error", format!("{:?}", now.last_error));
        if seen != last {
            if seen.get("policy") != last.get("policy") {
                // The assistant's endpoint or the company's identifiers may have changed.
                runtime.refresh_gateway().await;
            }
            if let Some(sync) = runtime.sync_state() {
                let _ = runtime.live.send(LiveEvent::Sync { sync });
            }
            last = seen;
        }
    }
}
