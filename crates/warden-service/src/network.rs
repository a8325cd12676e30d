//! The network layer of the runtime: keeps the kernel hooks (`warden_net::kernel::Firewall`)
//! in step with the policy, the exceptions and the resolver, and turns what the hooks report into
//! `connect` events attributed to their process.
//!
//! One task owns the firewall. Every [`TICK`] it reads the rules in force (policy, catalog,
//! exceptions), recompiles the destinations when the policy changed, resolves the names again
//! when the resolver's interval passed (or the names changed), and writes the differences to the
//! kernel: governed ranges (`block`, or `observe` for `warn` and for everything in monitor mode;
//! sanctioned addresses held as `allow`; shared front ends flagged), the governed names DNS
//! answers are matched against, and the open launch trees. The kernel reports the DNS answers of
//! governed names: an address it learned from one is kept here until its TTL passes (then the
//! kernel forgets it too), and the name each process resolved to an address names its
//! connections. A launch the agent allowed because of an
//! exception opens its pid under that exception's grant (the fork hook adds its children); when
//! the exception is no longer active (expired, revoked) the grant is closed on the next tick.
//! Kernel events are attributed (exe, user, the catalog tool of the process or its launch) and
//! decided by `warden_policy::decide_connect`, stored, then broadcast; repeats of one process to
//! one destination within [`FOLD`] are one event.

use crate::runtime::Runtime;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use warden_api::local::{LiveEvent, NetworkLayer, NetworkStatus};
use warden_api::{ConnectEvent, ConnectOutcome, Event};
#[cfg(target_os = "linux")]
use warden_net::kernel::KernelRule;
use warden_policy::{Action, Cidr, ConnectFacts, ConnectRule, Destinations, Mode, Policy, decide_connect};

/// How often the task reconciles the kernel with the rules (bounds approval → open, and expiry →
/// closed, to this plus the sync's own delay).
pub const TICK: Duration = Duration::from_millis(200);
/// Repeats of one process to one destination within this window are folded into one event.
pub const FOLD: Duration = Duration::from_secs(10);

/// `[network]` of the service's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The cgroup v2 folder to attach to; `None`: the cgroup2 mount (the whole machine).
    pub cgroup: Option<PathBuf>,
    /// How often governed names are resolved again.
    pub resolve_interval: Duration,
    pub layer: LayerChoice,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig { cgroup: None, resolve_interval: Duration::from_secs(30), layer: LayerChoice::Auto }
    }
}

/// Which network layer to run (`[network] layer`, `wardend --network-layer`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerChoice {
    /// eBPF; where it cannot load, the nftables fallback; where that fails too, launches only.
    #[default]
    Auto,
    /// The nftables fallback without trying eBPF.
    Nftables,
}

/// The cgroup v2 mount point (`/sys/fs/cgroup` on a unified system, `/sys/fs/cgroup/unified` on a
/// hybrid one), from `/proc/self/mounts`.
pub fn cgroup2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .find(|line| line.split(' ').nth(2) == Some("cgroup2"))
        .and_then(|line| line.split(' ').nth(1))
        .map(PathBuf::from)
}

/// The network layer's state as the runtime reports it.
#[derive(Debug)]
pub struct NetworkHandle {
    status: Arc<Mutex<NetworkStatus>>,
}

impl NetworkHandle {
    /// A runtime without network enforcement, and why.
    pub fn launch_only(reason: impl Into<String>) -> NetworkHandle {
        NetworkHandle { status: Arc::new(Mutex::new(launch_only_status(reason.into()))) }
    }

    pub fn status(&self) -> NetworkStatus {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn launch_only_status(detail: String) -> NetworkStatus {
    NetworkStatus {
        layer: NetworkLayer::LaunchOnly,
        detail,
        cgroup: None,
        names_resolved: 0,
        names: 0,
        ranges: 0,
        learned: 0,
        unresolved: Vec::new(),
        open_processes: 0,
        proxies: proxies(None),
    }
}

/// The proxies in use: the policy's, and the service's own proxy variables.
fn proxies(policy: Option<&Policy>) -> Vec<String> {
    let mut list: Vec<String> = policy.map(|p| p.network.proxies.clone()).unwrap_or_default();
    for name in ["https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"] {
        if let Ok(value) = std::env::var(name)
            && !value.is_empty()
            && !list.contains(&value)
        {
            list.push(value);
        }
    }
    list
}

/// Attaches the hooks and starts the task; on any failure returns a launch-only handle whose
/// detail says why (the runtime never fails to start because of the network layer).
#[cfg(target_os = "linux")]
pub fn start(runtime: &Arc<Runtime>, config: &NetworkConfig) -> NetworkHandle {
    let Some(cgroup) = config.cgroup.clone().or_else(cgroup2_root) else {
        return NetworkHandle::launch_only("no cgroup v2 hierarchy is mounted");
    };
    if config.layer == LayerChoice::Nftables {
        return start_fallback(runtime, config, &cgroup, "the configuration asks for nftables".into());
    }
    match warden_net::kernel::Firewall::attach(&cgroup) {
        Ok((firewall, events)) => {
            let mut detail = format!(
                "eBPF connect4/connect6/sendmsg4/sendmsg6 on {} (every process in it and below)",
                cgroup.display()
            );
            if let Err(why) = firewall.fork_hook() {
                detail.push_str(&format!(
                    "; exception launch trees: the launch's own process only (fork hook not loaded: {why})"
                ));
            }
            match firewall.dns_hook() {
                Ok(()) => detail.push_str(
                    "; DNS answers read in the kernel (shared front ends decided by the name each process resolved)",
                ),
                Err(why) => detail.push_str(&format!(
                    "; DNS answers not read (shared front ends are not governed, addresses come from the service's \
                     own lookups only: {why})"
                )),
            }
            let status = Arc::new(Mutex::new(NetworkStatus {
                layer: NetworkLayer::Ebpf,
                detail,
                cgroup: Some(cgroup.display().to_string()),
                ..launch_only_status(String::new())
            }));
            spawn_task(runtime, config, Enforcement::Ebpf(Box::new(firewall)), Some(events), status.clone());
            NetworkHandle { status }
        }
        Err(error) => {
            let why = format!("the eBPF hooks could not be attached to {} ({error})", cgroup.display());
            start_fallback(runtime, config, &cgroup, why)
        }
    }
}

/// Where eBPF cannot load: the nftables table, or, where that fails too, launches only. Either
/// way the status says which and why.
#[cfg(target_os = "linux")]
fn start_fallback(
    runtime: &Arc<Runtime>,
    config: &NetworkConfig,
    cgroup: &std::path::Path,
    why: String,
) -> NetworkHandle {
    let Some(root) = cgroup2_root() else {
        return NetworkHandle::launch_only(format!("{why}; no cgroup v2 hierarchy for the nftables fallback"));
    };
    let options = warden_net::nft::NftOptions {
        table: "warden".into(),
        open_cgroup: cgroup.join(EXCEPTION_CGROUP),
        cgroup_root: root,
        nft: vec!["nft".into()],
    };
    match warden_net::nft::NftFallback::install(options.clone()) {
        Ok(fallback) => {
            let detail = format!(
                "{why}; fallback: nftables table inet {} refuses governed destinations for every process in this \
                 network namespace (no per-connection events; warn destinations are not seen; DNS answers are not \
                 read, so shared front ends are not refused); an exception opens its launch tree by moving it \
                 into {}",
                options.table,
                options.open_cgroup.display()
            );
            let status = Arc::new(Mutex::new(NetworkStatus {
                layer: NetworkLayer::Fallback,
                detail,
                cgroup: Some(options.open_cgroup.display().to_string()),
                ..launch_only_status(String::new())
            }));
            spawn_task(runtime, config, Enforcement::Nftables(fallback), None, status.clone());
            NetworkHandle { status }
        }
        Err(error) => NetworkHandle::launch_only(format!(
            "{why}; the nftables fallback failed too ({error}): connections are not governed — launches still are"
        )),
    }
}

/// The folder (below the governed cgroup) the nftables fallback moves exception launch trees to.
pub const EXCEPTION_CGROUP: &str = "warden-exceptions";

#[cfg(target_os = "linux")]
fn spawn_task(
    runtime: &Arc<Runtime>,
    config: &NetworkConfig,
    firewall: Enforcement,
    events: Option<warden_net::kernel::Events>,
    status: Arc<Mutex<NetworkStatus>>,
) {
    let (names, names_seen) = tokio::sync::watch::channel(Vec::new());
    let (answers, resolved) = tokio::sync::watch::channel(Answers::default());
    tokio::spawn(resolve(warden_net::Resolver::new(config.resolve_interval), names_seen, answers));
    let firewall = Arc::new(Mutex::new(firewall));
    let grants = Arc::new(Mutex::new(Grants::default()));
    // Launches an exception allows are opened on the agent's hot path, before they resume.
    let opener: warden_monitor::Opener = {
        let (firewall, grants) = (Arc::downgrade(&firewall), Arc::downgrade(&grants));
        Arc::new(move |pid, exception| {
            if let (Some(firewall), Some(grants)) = (firewall.upgrade(), grants.upgrade()) {
                // The launch's own process only, while it is frozen: walking its tree reads /proc
                // (a whole scan where the kernel keeps no children lists) and would hold the
                // launch stopped for milliseconds. Its children come through the fork hook, and
                // the task opens the whole tree right after.
                open_processes(&firewall, &grants, &[pid], exception);
            }
        })
    };
    runtime.agent().set_opener(Some(opener));
    let task = Task {
        runtime: Arc::downgrade(runtime),
        firewall,
        status,
        names_to_resolve: names,
        resolved,
        generation: None,
        destinations: None,
        names: Vec::new(),
        grants,
        folded: HashMap::new(),
        learned: BTreeMap::new(),
        resolved_by: HashMap::new(),
    };
    tokio::spawn(task.run(events));
}

/// The layer that holds the governed ranges and the open launch trees.
#[cfg(target_os = "linux")]
enum Enforcement {
    Ebpf(Box<warden_net::kernel::Firewall>),
    Nftables(warden_net::nft::NftFallback),
}

#[cfg(target_os = "linux")]
impl Enforcement {
    fn set_ranges(&mut self, ranges: &BTreeMap<Cidr, KernelRule>) -> Result<(), String> {
        match self {
            Enforcement::Ebpf(firewall) => firewall.set_ranges(ranges).map_err(|e| e.to_string()),
            Enforcement::Nftables(fallback) => fallback.set_ranges(ranges).map_err(|e| e.to_string()),
        }
    }

    /// The governed names DNS answers are matched against (eBPF only: nftables reads no answers).
    fn set_names(&mut self, names: &BTreeMap<warden_policy::HostPattern, KernelRule>) -> Result<(), String> {
        match self {
            Enforcement::Ebpf(firewall) => firewall.set_names(names).map_err(|e| e.to_string()),
            Enforcement::Nftables(_) => Ok(()),
        }
    }

    fn open(&mut self, tgid: u32, grant: u32) -> Result<(), String> {
        match self {
            Enforcement::Ebpf(firewall) => firewall.open(tgid, grant).map_err(|e| e.to_string()),
            Enforcement::Nftables(fallback) => fallback.open(tgid, grant).map_err(|e| e.to_string()),
        }
    }

    fn close_grant(&mut self, grant: u32) -> Result<usize, String> {
        match self {
            Enforcement::Ebpf(firewall) => firewall.close_grant(grant).map_err(|e| e.to_string()),
            Enforcement::Nftables(fallback) => fallback.close_grant(grant).map_err(|e| e.to_string()),
        }
    }

    /// (governed ranges held, processes open).
    fn counts(&self) -> (usize, usize) {
        match self {
            Enforcement::Ebpf(firewall) => (firewall.ranges().len(), firewall.open_tgids().len()),
            Enforcement::Nftables(fallback) => (fallback.ranges().len(), fallback.open_tgids().len()),
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub fn start(_runtime: &Arc<Runtime>, _config: &NetworkConfig) -> NetworkHandle {
    NetworkHandle::launch_only("the network layer runs on Linux only")
}

/// Exception id → grant number in the kernel's open map.
#[derive(Debug, Default)]
struct Grants {
    by_exception: HashMap<String, u32>,
    last: u32,
}

/// Opens `pids` under `exception`'s grant (idempotent). Called from the agent's hot path (the
/// [`warden_monitor::Opener`], the launch's own pid) and from the task (its whole process tree).
#[cfg(target_os = "linux")]
fn open_processes(firewall: &Mutex<Enforcement>, grants: &Mutex<Grants>, pids: &[u32], exception: &str) {
    let grant = {
        let mut grants = grants.lock().unwrap_or_else(|p| p.into_inner());
        let next = grants.last + 1;
        let grant = *grants.by_exception.entry(exception.to_owned()).or_insert(next);
        grants.last = grants.last.max(grant);
        grant
    };
    let mut firewall = firewall.lock().unwrap_or_else(|p| p.into_inner());
    for &pid in pids {
        if let Err(error) = firewall.open(pid, grant) {
            eprintln!("warden: warning: opening pid {pid} for exception {exception}: {error}");
        }
    }
}

#[cfg(target_os = "linux")]
struct Task {
    runtime: std::sync::Weak<Runtime>,
    /// Shared with the agent's [`warden_monitor::Opener`].
    firewall: Arc<Mutex<Enforcement>>,
    status: Arc<Mutex<NetworkStatus>>,
    /// The names the resolver task resolves, and its latest answers.
    names_to_resolve: tokio::sync::watch::Sender<Vec<String>>,
    resolved: tokio::sync::watch::Receiver<Answers>,
    generation: Option<u64>,
    destinations: Option<Arc<Destinations>>,
    names: Vec<String>,
    grants: Arc<Mutex<Grants>>,
    /// (tgid, destination, outcome) → when its event was recorded.
    folded: HashMap<(u32, String, ConnectOutcome), Instant>,
    /// Addresses the kernel learned from governed names' DNS answers: name → address → until when
    /// (its TTL, at least [`LEARNED_MIN`]).
    learned: BTreeMap<String, BTreeMap<std::net::IpAddr, Instant>>,
    /// (tgid, address) → the governed name that process resolved to it, and when (names its
    /// connections; forgotten after [`LEARNED_MAX`]).
    resolved_by: HashMap<(u32, std::net::IpAddr), (String, Instant)>,
}

/// A learned address is kept at least this long (a TTL of 0 or 5 s must not make the kernel
/// forget an address the process is about to connect to) and at most [`LEARNED_MAX`].
pub const LEARNED_MIN: Duration = Duration::from_secs(60);
pub const LEARNED_MAX: Duration = Duration::from_secs(24 * 3600);
/// At most this many (process, address) names are remembered (a process asking for thousands of
/// names cannot grow the service without bound).
const RESOLVED_BY_MAX: usize = 65_536;

#[cfg(target_os = "linux")]
impl Task {
    /// `events`: the eBPF layer's kernel events (the nftables fallback reports none).
    async fn run(mut self, mut events: Option<warden_net::kernel::Events>) {
        let Some(runtime) = self.runtime.upgrade() else { return };
        let mut launches = runtime.agent().subscribe();
        let mut openings = runtime.agent().subscribe_openings();
        drop(runtime);
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let Some(runtime) = self.runtime.upgrade() else { return };
                    self.reconcile(&runtime);
                }
                // Announced before the launch is stored: opened before the tool's first connect.
                opening = openings.recv() => match opening {
                    Ok(opening) => self.open_launch(opening.pid, &opening.exception),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                // The stored event: opens again what an announcement a lagging receiver skipped missed.
                launch = launches.recv() => match launch {
                    Ok(launch) => self.on_launch(&launch),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                event = async {
                    match events.as_mut() {
                        Some(events) => events.next().await,
                        None => std::future::pending().await,
                    }
                } => match event {
                    Some(warden_net::kernel::KernelReport::Connect(event)) => {
                        let Some(runtime) = self.runtime.upgrade() else { return };
                        self.on_kernel_event(&runtime, event);
                    }
                    Some(warden_net::kernel::KernelReport::Answer(answer)) => self.on_answer(answer),
                    None => return,
                },
            }
        }
    }

    /// A launch allowed by an exception opens its process tree as it is now (helpers it started
    /// before this event arrived included) and, through the fork hook, what it starts later.
    fn on_launch(&mut self, launch: &warden_api::LaunchEvent) {
        let Some(exception) = &launch.exception else { return };
        if launch.action != Action::Allow {
            return;
        }
        self.open_launch(launch.pid, exception);
    }

    /// Opens the process tree of the launch `pid` as it is now (helpers it started before this
    /// included); what it starts later comes through the fork hook.
    fn open_launch(&self, pid: u32, exception: &str) {
        let tree = warden_monitor::enforce::process_tree(pid);
        open_processes(&self.firewall, &self.grants, &tree, exception);
    }

    /// A governed name's DNS answer the kernel read: its new addresses are kept until their TTL
    /// passes, and each address is remembered as that process's name for it.
    fn on_answer(&mut self, answer: warden_net::kernel::DnsAnswer) {
        let now = Instant::now();
        for record in &answer.records {
            let address = record.address.to_canonical();
            if record.learned || self.learned.get(&answer.name).is_some_and(|known| known.contains_key(&address)) {
                let ttl = Duration::from_secs(record.ttl.into()).clamp(LEARNED_MIN, LEARNED_MAX);
                self.learned.entry(answer.name.clone()).or_default().insert(address, now + ttl);
            }
            if self.resolved_by.len() >= RESOLVED_BY_MAX {
                self.resolved_by.retain(|_, (_, at)| at.elapsed() < LEARNED_MIN);
            }
            if self.resolved_by.len() < RESOLVED_BY_MAX {
                self.resolved_by.insert((answer.tgid, address), (answer.name.clone(), now));
            }
        }
    }

    fn reconcile(&mut self, runtime: &Arc<Runtime>) {
        let rules = runtime.agent().rules();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        // Close the grants of exceptions no longer active (expired, revoked, replaced).
        let mut grants = self.grants.lock().unwrap_or_else(|p| p.into_inner());
        let ended: Vec<(String, u32)> = grants
            .by_exception
            .iter()
            .filter(|(id, _)| {
                !rules.exceptions.iter().any(|e| &e.id == *id && e.starts_at <= now && now < e.expires_at)
            })
            .map(|(id, grant)| (id.clone(), *grant))
            .collect();
        let mut firewall = self.firewall.lock().unwrap_or_else(|p| p.into_inner());
        for (id, grant) in ended {
            if let Err(error) = firewall.close_grant(grant) {
                eprintln!("warden: warning: closing exception {id}'s processes: {error}");
            }
            grants.by_exception.remove(&id);
        }
        drop(grants);
        if self.generation != Some(rules.generation) || self.destinations.is_none() {
            self.generation = Some(rules.generation);
            let destinations = Destinations::new(&rules.policy, &rules.catalog);
            let names = destinations.names();
            if names != self.names {
                self.names = names.clone();
                let _ = self.names_to_resolve.send(names);
            }
            let monitor = rules.policy.mode == Mode::Monitor;
            let name_rules: BTreeMap<warden_policy::HostPattern, KernelRule> = destinations
                .name_rules()
                .into_iter()
                .map(|rule| (rule.pattern, kernel_rule(rule.action, rule.shared, monitor)))
                .collect();
            if let Err(error) = firewall.set_names(&name_rules) {
                eprintln!("warden: warning: updating the governed names: {error}");
            }
            self.destinations = Some(Arc::new(destinations));
        }
        let answers = self.resolved.borrow().clone();
        let Some(destinations) = self.destinations.clone() else { return };
        let monitor = rules.policy.mode == Mode::Monitor;
        // The service's own lookups, and what the kernel learned from answers (until their TTL).
        let now = Instant::now();
        self.learned.retain(|_, addresses| {
            addresses.retain(|_, until| *until > now);
            !addresses.is_empty()
        });
        let mut known = answers.resolved.clone();
        for (name, addresses) in &self.learned {
            let list = known.entry(name.clone()).or_default();
            list.extend(addresses.keys().copied());
            list.sort();
            list.dedup();
        }
        let ranges: BTreeMap<Cidr, KernelRule> = destinations
            .ranges(&known)
            .into_iter()
            .map(|range| (range.cidr, kernel_rule(range.action, range.shared, monitor)))
            .collect();
        if let Err(error) = firewall.set_ranges(&ranges) {
            eprintln!("warden: warning: updating the governed addresses: {error}");
        }
        self.resolved_by.retain(|_, (_, at)| at.elapsed() < LEARNED_MAX);
        self.folded.retain(|_, at| at.elapsed() < FOLD);
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        status.names = self.names.len() as u64;
        status.names_resolved = answers.resolved.len() as u64;
        let (ranges, open) = firewall.counts();
        drop(firewall);
        status.ranges = ranges as u64;
        status.learned = self.learned.values().map(BTreeMap::len).sum::<usize>() as u64;
        status.unresolved = answers.failures.clone();
        status.open_processes = open as u64;
        status.proxies = proxies(Some(&rules.policy));
    }

    fn on_kernel_event(&mut self, runtime: &Arc<Runtime>, event: warden_net::kernel::KernelEvent) {
        let rules = runtime.agent().rules();
        let Some(destinations) = self.destinations.clone() else { return };
        let now_ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        // Unnamed reports can be frequent (every connection of a machine whose resolver the kernel
        // cannot read): folded before /proc is read for them.
        if event.verdict == warden_net::kernel::KernelVerdict::Unnamed {
            let key = (event.tgid, format!("unnamed {}", event.address), ConnectOutcome::Allowed);
            if self.folded.get(&key).is_some_and(|at| at.elapsed() < FOLD) {
                return;
            }
            self.folded.insert(key, Instant::now());
        }
        let process = attribute(event.tgid, &rules);
        let caller = runtime.caller(event.uid);
        let person = caller.account.clone().or(caller.login.clone());
        // The connection's name: the governed name this process resolved to the address (its DNS
        // answer, read by the kernel), else the first governed name whose addresses hold it
        // (sanctioned addresses never reach here: the kernel lets them through silently).
        let address = event.address.to_canonical();
        let host = self.resolved_by.get(&(event.tgid, address)).map(|(name, _)| name.clone()).or_else(|| {
            let answers = self.resolved.borrow();
            let from_lookups =
                answers.resolved.iter().filter(|(_, list)| list.contains(&address)).map(|(name, _)| name);
            let from_answers =
                self.learned.iter().filter(|(_, list)| list.contains_key(&address)).map(|(name, _)| name);
            from_lookups
                .chain(from_answers)
                .find(|n| destinations.by_host(n).is_some_and(|d| d.action != Action::Allow))
                .cloned()
        });
        // A shared front end reached without a DNS answer the kernel could read: let through (it
        // cannot be told apart from unrelated traffic). Worth an event only when an AI tool did it.
        if event.verdict == warden_net::kernel::KernelVerdict::Unnamed && process.tool.is_none() {
            return;
        }
        let facts = ConnectFacts {
            host: host.clone(),
            address: Some(event.address),
            tool: process.tool.clone(),
            person: person.clone(),
            cwd: process.cwd.clone(),
        };
        let decision = decide_connect(&rules.policy, &destinations, &rules.exceptions, &facts, now_ms / 1000);
        let outcome = match event.verdict {
            warden_net::kernel::KernelVerdict::Denied => ConnectOutcome::Blocked,
            warden_net::kernel::KernelVerdict::Open | warden_net::kernel::KernelVerdict::Unnamed => {
                ConnectOutcome::Allowed
            }
            warden_net::kernel::KernelVerdict::Observed => match (decision.action, decision.monitor) {
                (Action::Block, true) => ConnectOutcome::WouldBlock,
                (Action::Allow, _) => ConnectOutcome::Allowed,
                _ => ConnectOutcome::Warned,
            },
        };
        let destination = decision.destination.clone().or(host).unwrap_or_else(|| event.address.to_string());
        let key = (event.tgid, destination.clone(), outcome);
        if self.folded.get(&key).is_some_and(|at| at.elapsed() < FOLD) {
            return;
        }
        self.folded.insert(key, Instant::now());
        let unnamed = event.verdict == warden_net::kernel::KernelVerdict::Unnamed;
        let rule = match &decision.rule {
            _ if unnamed => "shared-unnamed".into(),
            ConnectRule::Exception { id } => format!("exception:{id}"),
            ConnectRule::Sanctioned => "sanctioned".into(),
            ConnectRule::Ungoverned => "ungoverned".into(),
            ConnectRule::Destination => "destination".into(),
        };
        let reason = if unnamed {
            "A shared front end's address, reached without a DNS answer Warden could read (a hard-coded \
             address, a resolver cache daemon or encrypted DNS): not decided."
                .to_owned()
        } else {
            decision.message
        };
        let connect = ConnectEvent {
            id: warden_agent::new_event_id(),
            at_ms: now_ms,
            pid: event.tgid,
            uid: event.uid,
            user: person,
            exe: process.exe,
            tool: process.tool,
            host: destination,
            address: event.address.to_string(),
            port: event.port,
            protocol: event.protocol,
            action: if unnamed { Action::Allow } else { decision.action },
            outcome,
            rule,
            reason,
            count: 1,
        };
        // Stored before anyone hears of it, as every event.
        if let Err(error) = runtime.agent().store().append(&Event::Connect(connect.clone())) {
            eprintln!("warden: warning: recording a connection: {error}");
        }
        runtime.broadcast(LiveEvent::Connect { event: connect });
    }
}

/// What the kernel holds for a policy action: `block` refuses (observed in monitor mode), `warn`
/// observes, `allow` is held so nothing learned blocks it; `shared` as the destination says.
#[cfg(target_os = "linux")]
fn kernel_rule(action: Action, shared: bool, monitor: bool) -> KernelRule {
    let action = match action {
        Action::Allow => warden_net::kernel::KernelAction::Allow,
        Action::Block if !monitor => warden_net::kernel::KernelAction::Block,
        _ => warden_net::kernel::KernelAction::Observe,
    };
    KernelRule { action, shared }
}

/// The resolver task's latest answers: last good addresses per name, and the names failing now.
#[derive(Debug, Clone, Default)]
struct Answers {
    resolved: warden_net::Resolved,
    failures: Vec<String>,
}

/// Resolves the names it is given, again every interval and at once when they change; never
/// holds up the firewall task (a lookup may take seconds when DNS does not answer).
async fn resolve(
    mut resolver: warden_net::Resolver,
    mut names: tokio::sync::watch::Receiver<Vec<String>>,
    answers: tokio::sync::watch::Sender<Answers>,
) {
    loop {
        let list = names.borrow_and_update().clone();
        resolver.refresh(&list).await;
        let _ = answers.send(Answers {
            resolved: resolver.resolved().clone(),
            failures: resolver.failures().keys().cloned().collect(),
        });
        tokio::select! {
            _ = tokio::time::sleep(resolver.interval) => {}
            changed = names.changed() => if changed.is_err() { return },
        }
    }
}

/// What is known about the process that connected.
#[derive(Debug, Default)]
struct Process {
    exe: Option<String>,
    tool: Option<String>,
    cwd: Option<String>,
}

/// The process's executable and its catalog tool: its own (content, path, script, package), else
/// that of the nearest ancestor that is a tool (a helper a tool started belongs to its launch).
#[cfg(target_os = "linux")]
fn attribute(tgid: u32, rules: &warden_monitor::Rules) -> Process {
    let mut users = warden_monitor::facts::UserNames::default();
    let Ok((facts, _, _)) = warden_monitor::facts::read(tgid, &mut users) else {
        return Process { exe: warden_monitor::facts::exe(tgid).ok(), ..Process::default() };
    };
    let own = rules.catalog.identify(&facts).map(|found| found.tool.id.clone());
    let tool = own.or_else(|| {
        facts.ancestors.iter().find_map(|a| {
            rules
                .catalog
                .identify_program(&a.exe, &a.argv, a.script.as_deref(), None)
                .map(|found| found.tool.id.clone())
        })
    });
    Process { exe: Some(facts.exe.clone()), tool, cwd: facts.cwd.clone() }
}
