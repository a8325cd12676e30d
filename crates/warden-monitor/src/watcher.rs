//! From an exec notice to a decided, enforced launch: facts → verdict → attribution →
//! enforcement. Synchronous and allocation-light, because it runs between the kernel's
//! exec and the tool's first line of code.
//!
//! Attribution: one launch per tool start. A process whose ancestor already is the same
//! tool (a wrapper's child, a relaunch, an Electron helper) continues that launch; so does
//! the same pid executing the same tool again (`env` → `node` of a `#!/usr/bin/env node`
//! script). A continuation of a blocked launch is killed too, without a new event.
//!
//! Gaps: after anything that may have hidden launches from the watcher (notices the kernel
//! dropped, a pause of the agent, its start) [`Watcher::rescan`] decides every running
//! process like a new launch; a pid already decided with the same start time is skipped.
//!
//! Ends of exceptions: a launch an exception allowed is remembered with its facts;
//! [`Watcher::check_sessions`] re-decides it when the rules change or time passes. When no
//! exception covers it any more it gets an [`ExceptionEnd`] notice and, after the policy's
//! grace period, its process tree is stopped ([`SessionStop`]). Tools the session starts
//! after the end are no longer its continuations: each is judged as a launch of its own.

use crate::enforce::{KillReport, kill_tree};
use crate::facts::UserNames;
use crate::identity::{ContentIdentity, program_path};
use crate::source::ExecNotice;
use crate::terminal::Terminal;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use warden_api::Outcome;
use warden_policy::{Accounts, Action, Catalog, Exception, Policy, ProcessFacts, Verdict, evaluate};

/// The rules in force: a policy, its compiled catalog, the current exceptions and the
/// accounts the device's local users are bound to.
#[derive(Debug)]
pub struct Rules {
    pub policy: Policy,
    pub catalog: Catalog,
    pub exceptions: Vec<Exception>,
    /// uid → account, from the enrollment; the facts of a launch carry its uid's account.
    pub accounts: Accounts,
    /// The policy's version when it came from a server.
    pub version: Option<String>,
    /// Changes whenever the policy or the exceptions change (for decision caches).
    pub generation: u64,
}

impl Rules {
    /// The verdict for `facts` at `now` (seconds since the epoch).
    pub fn decide(&self, facts: &ProcessFacts, now: i64) -> Verdict {
        evaluate(&self.policy, &self.catalog, &self.exceptions, facts, now)
    }
}

/// Holds the rules; swapping them is safe while sources are deciding.
pub struct Decider {
    rules: RwLock<Arc<Rules>>,
    generation: AtomicU64,
    opener: RwLock<Option<Opener>>,
}

impl std::fmt::Debug for Decider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decider")
            .field("rules", &self.rules)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// Called on the hot path with (pid, exception id) for a launch an approved exception allowed,
/// before the launch is resumed when it was frozen for its decision: the network layer opens the
/// tool's destinations for it here, so its first `connect()` already finds them open. Must be
/// quick (a map write), and must not call back into the decider.
pub type Opener = Arc<dyn Fn(u32, &str) + Send + Sync>;

impl Decider {
    pub fn new(policy: Policy, version: Option<String>, exceptions: Vec<Exception>) -> Decider {
        let catalog = policy.catalog();
        let rules = Rules { policy, catalog, exceptions, accounts: Accounts::default(), version, generation: 1 };
        Decider { rules: RwLock::new(Arc::new(rules)), generation: AtomicU64::new(1), opener: RwLock::new(None) }
    }

    /// Sets (or removes) the [`Opener`] for launches exceptions allow.
    pub fn set_opener(&self, opener: Option<Opener>) {
        *self.opener.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = opener;
    }

    /// Opens `pid`'s destinations for `exception` through the [`Opener`], if one is set.
    pub fn open(&self, pid: u32, exception: &str) {
        let opener = self.opener.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        if let Some(opener) = opener {
            opener(pid, exception);
        }
    }

    /// The rules in force right now.
    pub fn rules(&self) -> Arc<Rules> {
        self.rules.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Replaces the policy (the exceptions stay).
    pub fn set_policy(&self, policy: Policy, version: Option<String>) {
        let current = self.rules();
        self.replace(policy, version, current.exceptions.clone(), current.accounts.clone());
    }

    /// Replaces the exceptions (the policy stays).
    pub fn set_exceptions(&self, exceptions: Vec<Exception>) {
        let current = self.rules();
        self.replace(current.policy.clone(), current.version.clone(), exceptions, current.accounts.clone());
    }

    /// Replaces the uid → account bindings (after an enrollment).
    pub fn set_accounts(&self, accounts: Accounts) {
        let current = self.rules();
        self.replace(current.policy.clone(), current.version.clone(), current.exceptions.clone(), accounts);
    }

    fn replace(&self, policy: Policy, version: Option<String>, exceptions: Vec<Exception>, accounts: Accounts) {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let catalog = policy.catalog();
        let rules = Arc::new(Rules { policy, catalog, exceptions, accounts, version, generation });
        *self.rules.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = rules;
    }
}

/// A decided (and, if the policy says so, enforced) launch of an AI tool.
#[derive(Debug, Clone)]
pub struct Launch {
    /// Wall-clock time of the decision.
    pub at: SystemTime,
    pub facts: ProcessFacts,
    pub verdict: Verdict,
    pub outcome: Outcome,
    /// The source that saw it (`proc-connector`, `fanotify`, `poll`, `startup-scan`).
    pub source: &'static str,
    pub policy_version: Option<String>,
    /// From the kernel's exec to the verdict, when the source timestamps execs.
    pub latency: Option<Duration>,
    /// From the kernel's exec to the end of the first look (when a tool the policy
    /// blocks is already frozen), when the source timestamps execs.
    pub first_look: Option<Duration>,
    /// When the verdict was reached (monotonic).
    pub decided: Instant,
    /// Processes killed for this launch, root first.
    pub killed: Vec<u32>,
    /// Processes of the tree Warden may not signal.
    pub not_permitted: Vec<u32>,
    /// The terminal a blocked launch was started from, opened before it was stopped, to
    /// tell the developer there ([`crate::terminal::blocked_message`]).
    pub terminal: Option<Terminal>,
}

impl Launch {
    /// Milliseconds since the epoch.
    pub fn at_ms(&self) -> i64 {
        self.at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
    }
}

#[derive(Debug, Clone)]
struct Tracked {
    start_ticks: Option<u64>,
    tool: String,
    blocked: bool,
    /// Set while the launch runs because an exception allowed it.
    covered: Option<Box<Covered>>,
}

impl Tracked {
    /// The launch's exception has ended (its session is in its grace period or stopped).
    fn ended(&self) -> bool {
        self.covered.as_ref().is_some_and(|c| c.ending.is_some())
    }
}

/// A running launch an exception allowed: what it was decided on, to decide it again.
#[derive(Debug, Clone)]
struct Covered {
    exception: String,
    facts: ProcessFacts,
    /// Set once no exception covers it: when it will be stopped (`None` in monitor mode).
    ending: Option<Option<Instant>>,
    /// Why it ended and the grace period it got, once it did.
    ended: Option<(EndReason, u64)>,
}

pub use warden_api::notice::{EndReason, ExceptionEnd, GapReason, Rescan, SessionNotice, SessionStop};

/// The largest program file the watcher reads for its content fingerprint on the thread that
/// decides every exec. A larger native program is decided by path at once and read on a worker
/// thread (`late`): when it turns out to be a tool, its launch is decided again
/// ([`Watcher::late_launches`], source `content-late`).
pub const HOT_PATH_CONTENT_LIMIT: u64 = 16 << 20;

/// How many launches are remembered before dead ones are pruned.
const TRACKED_LIMIT: usize = 4096;

/// Turns notices into launches.
#[derive(Debug)]
pub struct Watcher {
    decider: Arc<Decider>,
    users: UserNames,
    identity: ContentIdentity,
    /// Program files over [`HOT_PATH_CONTENT_LIMIT`], read off the hot path.
    late: crate::late::LateReader,
    tracked: HashMap<u32, Tracked>,
    /// Continuations of blocked launches that were killed (no event of their own).
    pub continuations_killed: u64,
    /// Launches lost to a panic while deciding.
    pub decision_panics: u64,
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// "5 minutes", "1 second", "90 seconds".
fn spell_duration(seconds: u64) -> String {
    let (count, unit) = match seconds {
        s if s >= 3600 && s % 3600 == 0 => (s / 3600, "hour"),
        s if s >= 60 && s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{count} {unit}{}", if count == 1 { "" } else { "s" })
}

/// CLOCK_MONOTONIC in nanoseconds, the clock of the connector's timestamps.
#[cfg(target_os = "linux")]
pub fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map_or(0, |t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
}

#[cfg(not(target_os = "linux"))]
pub fn monotonic_ns() -> u64 {
    0
}

struct Identity {
    facts: ProcessFacts,
    start_ticks: Option<u64>,
}

/// A process stopped with SIGSTOP while its launch is decided; SIGCONT on drop (harmless
/// after a SIGKILL).
#[derive(Debug)]
struct Freeze(#[cfg_attr(not(target_os = "linux"), allow(dead_code))] u32);

#[cfg(target_os = "linux")]
impl Drop for Freeze {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0 as i32), nix::sys::signal::Signal::SIGCONT);
    }
}

enum FirstLook {
    /// Not an AI tool: nothing more to read (the common case, kept cheap).
    NotATool,
    /// An AI tool; frozen when the policy will most likely block it.
    Tool(Option<Freeze>),
    /// Could not look (another user's process, or gone): read the full facts.
    Unreadable,
}

/// The first, cheap look at a fresh exec: executable, argv and script only. Most
/// programs stop here. A tool the policy blocks is frozen at once, so it cannot run on
/// while its ancestors, user and environment are read for the full decision.
#[cfg(target_os = "linux")]
fn first_look(pid: u32, rules: &Rules, identity: &mut ContentIdentity) -> FirstLook {
    use crate::facts;
    let (Ok(exe), Ok(argv)) = (facts::exe(pid), facts::argv(pid)) else { return FirstLook::Unreadable };
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok().map(|p| p.to_string_lossy().into_owned());
    let script = facts::resolve_script(&exe, &argv, cwd.as_deref());
    let mut partial = ProcessFacts { pid: Some(pid), exe, argv, cwd, script, ..ProcessFacts::default() };
    // A launch its path already names as a tool is frozen (if blocked) before its file is
    // read; the full decision then reads the content, which may name another tool (Claude
    // Code's binary at the sanctioned assistant's path). Anything else is read now: what
    // the program is (content, package) is the only evidence left.
    if rules.catalog.identify(&partial).is_none() {
        let program = program_path(&partial);
        identity.complete(&mut partial, &program, rules.catalog.content(), rules.generation);
        // An admin's rule for this very file (by SHA-256) can make it a tool too.
        let by_hash =
            partial.content.as_ref().and_then(|c| c.sha256.as_deref()).and_then(|h| rules.policy.binary_rule(h));
        // A local MCP server the policy denies is decided with its ancestors (which AI tool
        // started it), so it needs the full facts too.
        let denied_mcp = rules.policy.mcp.as_ref().is_some_and(|m| m.denied_process(&partial.argv).is_some());
        if rules.catalog.identify(&partial).is_none() && by_hash.is_none_or(|rule| rule.tool.is_none()) && !denied_mcp {
            return FirstLook::NotATool;
        }
    }
    if !rules.decide(&partial, now_secs()).must_block() {
        return FirstLook::Tool(None);
    }
    let pid_t = nix::unistd::Pid::from_raw(pid as i32);
    match nix::sys::signal::kill(pid_t, nix::sys::signal::Signal::SIGSTOP) {
        Ok(()) => FirstLook::Tool(Some(Freeze(pid))),
        Err(_) => FirstLook::Tool(None),
    }
}

#[cfg(not(target_os = "linux"))]
fn first_look(_pid: u32, _rules: &Rules, _identity: &mut ContentIdentity) -> FirstLook {
    FirstLook::Unreadable
}

#[cfg(target_os = "linux")]
fn read_facts(pid: u32, users: &mut UserNames, accounts: &Accounts) -> Option<Identity> {
    use crate::facts::{self, FactsError};
    match facts::read(pid, users) {
        Ok((mut facts, stat, uid)) => {
            facts.account = accounts.account_of(uid).map(str::to_owned);
            Some(Identity { facts, start_ticks: Some(stat.start_ticks) })
        }
        // Another user's process: its executable link is closed to us, but its command
        // line is not. Decide on that, so the launch is at least reported.
        Err(FactsError::NotPermitted(_)) => {
            let argv = facts::argv(pid).ok()?;
            let exe = argv.first().filter(|a| a.starts_with('/'))?.clone();
            let stat = facts::stat(pid).ok();
            let uid = facts::uid(pid).ok();
            let user = uid.and_then(|uid| users.name(uid));
            let account = uid.and_then(|uid| accounts.account_of(uid)).map(str::to_owned);
            let facts = ProcessFacts {
                pid: Some(pid),
                exe,
                argv,
                user,
                account,
                ancestors: stat.map(|s| facts::ancestors(s.ppid)).unwrap_or_default(),
                ..ProcessFacts::default()
            };
            Some(Identity { facts, start_ticks: stat.map(|s| s.start_ticks) })
        }
        Err(_) => None,
    }
}

#[cfg(not(target_os = "linux"))]
fn read_facts(_pid: u32, _users: &mut UserNames, _accounts: &Accounts) -> Option<Identity> {
    None
}

/// The account the owner of `pid` is bound to, if any.
#[cfg(target_os = "linux")]
fn account_of(pid: u32, accounts: &Accounts) -> Option<String> {
    if accounts.is_empty() {
        return None;
    }
    crate::facts::uid(pid).ok().and_then(|uid| accounts.account_of(uid)).map(str::to_owned)
}

#[cfg(not(target_os = "linux"))]
fn account_of(_pid: u32, _accounts: &Accounts) -> Option<String> {
    None
}

#[cfg(target_os = "linux")]
fn start_ticks(pid: u32) -> Option<u64> {
    crate::facts::stat(pid).ok().map(|s| s.start_ticks)
}

#[cfg(not(target_os = "linux"))]
fn start_ticks(_pid: u32) -> Option<u64> {
    None
}

impl Watcher {
    pub fn new(decider: Arc<Decider>) -> Watcher {
        Watcher {
            decider,
            users: UserNames::default(),
            identity: ContentIdentity::with_size_limit(HOT_PATH_CONTENT_LIMIT),
            late: crate::late::LateReader::start(),
            tracked: HashMap::new(),
            continuations_killed: 0,
            decision_panics: 0,
        }
    }

    /// Decides one exec notice. Returns a launch for a new AI-tool start, `None` for
    /// anything else (not a tool, a continuation, a process already gone).
    ///
    /// A panic while deciding (a bug) is contained here: that one launch is lost, the
    /// watcher keeps going.
    pub fn handle(&mut self, notice: ExecNotice, source: &'static str) -> Option<Launch> {
        let pid = notice.pid;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.decide(notice, source))) {
            Ok(launch) => launch,
            Err(_) => {
                self.decision_panics += 1;
                self.tracked.remove(&pid);
                None
            }
        }
    }

    fn decide(&mut self, notice: ExecNotice, source: &'static str) -> Option<Launch> {
        let rules = self.decider.rules();
        // A file an earlier decision left unread belongs to that one.
        drop(self.identity.take_skipped());
        // Held until the decision is carried out; resumes a frozen process on drop.
        let mut _freeze = None;
        let mut first_look_at = None;
        let mut identity = match notice.facts {
            Some(mut facts) => {
                // A source that read the facts itself (polling) knows no accounts.
                if facts.account.is_none() {
                    facts.account = account_of(notice.pid, &rules.accounts);
                }
                Identity { start_ticks: start_ticks(notice.pid), facts }
            }
            None => {
                match first_look(notice.pid, &rules, &mut self.identity) {
                    FirstLook::NotATool => {
                        self.tracked.remove(&notice.pid);
                        // Not a tool by its path and a small file; a large one is not read yet.
                        self.read_later(notice.pid, None, &rules);
                        return None;
                    }
                    FirstLook::Tool(freeze) => {
                        _freeze = freeze;
                        first_look_at = Some(monotonic_ns());
                    }
                    FirstLook::Unreadable => {}
                }
                read_facts(notice.pid, &mut self.users, &rules.accounts)?
            }
        };
        // Cached from the first look: the file is read once.
        let program = program_path(&identity.facts);
        self.identity.complete(&mut identity.facts, &program, rules.catalog.content(), rules.generation);
        self.read_later(notice.pid, identity.start_ticks, &rules);
        // A settings file the tool names on its command line can switch its safety off.
        crate::facts::read_settings_files(&rules.catalog, &mut identity.facts);
        let verdict = rules.decide(&identity.facts, now_secs());
        let latency = notice.kernel_ns.map(|k| Duration::from_nanos(monotonic_ns().saturating_sub(k)));
        let first_look = notice.kernel_ns.zip(first_look_at).map(|(k, at)| Duration::from_nanos(at.saturating_sub(k)));
        let decided = Instant::now();
        let pid = notice.pid;
        let Some(tool) = verdict.tool.clone() else {
            self.tracked.remove(&pid);
            return None;
        };

        // The same process executing the same tool again: `env` → `node`, a re-exec.
        if let Some(known) = self.tracked.get(&pid)
            && known.tool == tool
            && (known.start_ticks.is_none() || known.start_ticks == identity.start_ticks)
        {
            if known.blocked && verdict.must_block() {
                self.kill_continuation(pid, identity.start_ticks);
            }
            return None;
        }

        let (pid, identity) = if verdict.continues_launch {
            // A child of a launch: find the launch's root among the ancestors.
            let root = identity.facts.ancestors.iter().rev().find_map(|ancestor| {
                let id = rules.catalog.identify_program(
                    &ancestor.exe,
                    &ancestor.argv,
                    ancestor.script.as_deref(),
                    identity.facts.cwd.as_deref(),
                )?;
                (id.tool.id == tool).then_some(ancestor.pid?)
            });
            let tracked_root = identity
                .facts
                .ancestors
                .iter()
                .filter_map(|a| a.pid)
                .find_map(|p| self.tracked.get(&p).filter(|t| t.tool == tool));
            match tracked_root {
                // A session whose exception ended shelters nothing it starts: judged alone.
                Some(root) if root.ended() => (pid, identity),
                Some(root) => {
                    if root.blocked && verdict.must_block() {
                        self.kill_continuation(pid, identity.start_ticks);
                    }
                    return None;
                }
                // The launch began before Warden watched: it becomes the launch now.
                None => match root.and_then(|root| Some((root, read_facts(root, &mut self.users, &rules.accounts)?))) {
                    Some((root, root_identity)) => (root, root_identity),
                    None => (pid, identity),
                },
            }
        } else {
            (pid, identity)
        };

        let mut killed = Vec::new();
        let mut not_permitted = Vec::new();
        // Found while the process still has its descriptors: after the kill it has none.
        let terminal = verdict.must_block().then(|| Terminal::of(pid)).flatten();
        let outcome = match verdict.action {
            Action::Allow => Outcome::Allowed,
            Action::Warn => Outcome::Warned,
            Action::Block if verdict.monitor => Outcome::WouldBlock,
            Action::Block => match kill_tree(pid, identity.start_ticks) {
                KillReport::Killed { pids, not_permitted: others } => {
                    killed = pids;
                    not_permitted = others;
                    Outcome::Killed
                }
                KillReport::NotPermitted => {
                    not_permitted.push(pid);
                    Outcome::NotPermitted
                }
                KillReport::Exited => Outcome::Exited,
            },
        };
        if let Some(exception) = &verdict.exception
            && outcome == Outcome::Allowed
        {
            // Still frozen (when it was): the tool's first connect finds its destinations open.
            self.decider.open(pid, exception);
        }
        let covered = verdict
            .exception
            .clone()
            .map(|exception| Box::new(Covered { exception, facts: identity.facts.clone(), ending: None, ended: None }));
        self.track(pid, Tracked { start_ticks: identity.start_ticks, tool, blocked: verdict.must_block(), covered });
        Some(Launch {
            at: SystemTime::now(),
            facts: identity.facts,
            verdict,
            outcome,
            source,
            policy_version: rules.version.clone(),
            latency,
            first_look,
            decided,
            killed,
            not_permitted,
            terminal,
        })
    }

    /// Hands the program file the last lookups left unread for its size (if any) to the worker,
    /// for the launch `pid` (its start time `known`, else read here: only when a file was skipped,
    /// so the common exec pays nothing for it).
    fn read_later(&mut self, pid: u32, known: Option<u64>, rules: &Arc<Rules>) {
        if let Some((key, file)) = self.identity.take_skipped() {
            let started = known.or_else(|| start_ticks(pid));
            self.late.submit(key, file, rules.clone(), (pid, started));
        }
    }

    /// Launches decided again because their large program file, read off the hot path since,
    /// turned out to be a tool (or to have an admin's rule by hash); a blocked one is killed here,
    /// as on the hot path. The answers are cached: the next exec of those files is decided at
    /// once. Call it whenever the watcher's thread is awake (the agent does after each wait).
    pub fn late_launches(&mut self) -> Vec<Launch> {
        let mut launches = Vec::new();
        for done in self.late.finished() {
            self.identity.remember(done.key, done.generation, done.content.clone());
            let identified = done.content.as_ref().is_some_and(|c| {
                c.tool.is_some() || c.sha256.as_deref().is_some_and(|h| done.rules.policy.binary_rule(h).is_some())
            });
            if !identified {
                continue;
            }
            for (pid, start) in done.waiting {
                // Gone, or the pid reused by another process: nothing to decide.
                if start.is_none() || start_ticks(pid) != start {
                    continue;
                }
                if let Some(launch) = self.handle(ExecNotice { pid, kernel_ns: None, facts: None }, "content-late") {
                    launches.push(launch);
                }
            }
        }
        launches
    }

    fn kill_continuation(&mut self, pid: u32, start: Option<u64>) {
        if matches!(kill_tree(pid, start), KillReport::Killed { .. }) {
            self.continuations_killed += 1;
        }
    }

    fn track(&mut self, pid: u32, tracked: Tracked) {
        if self.tracked.len() >= TRACKED_LIMIT {
            self.tracked.retain(|pid, t| t.start_ticks.is_some() && start_ticks(*pid) == t.start_ticks);
        }
        self.tracked.insert(pid, tracked);
    }

    /// Decides every process already running: tools started while Warden was not watching
    /// are reported, and blocked ones stopped, like new launches (source `startup-scan`).
    pub fn sweep_running(&mut self) -> Vec<Launch> {
        self.rescan(vec![GapReason::Start]).0
    }

    /// Decides every running process like a new launch, after a gap (`reasons`): launches
    /// whose exec notices were lost or came while the agent was stopped are found, reported
    /// and, if blocked, stopped. A pid already decided with the same start time is skipped
    /// (one event per tool start). Launches carry the source `rescan` (`startup-scan` for
    /// [`GapReason::Start`]).
    #[cfg(target_os = "linux")]
    pub fn rescan(&mut self, reasons: Vec<GapReason>) -> (Vec<Launch>, Rescan) {
        let started = Instant::now();
        let at_ms = now_ms();
        let source = if reasons.contains(&GapReason::Start) { "startup-scan" } else { "rescan" };
        let me = std::process::id();
        let mut pids = crate::facts::all_pids();
        // Parents before children, so a tree is attributed to its root.
        pids.sort_unstable();
        let mut processes = 0;
        let mut launches = Vec::new();
        for pid in pids {
            if pid == me {
                continue;
            }
            if let Some(known) = self.tracked.get(&pid)
                && known.start_ticks.is_some()
                && start_ticks(pid) == known.start_ticks
            {
                continue;
            }
            processes += 1;
            launches.extend(self.handle(ExecNotice { pid, kernel_ns: None, facts: None }, source));
        }
        let rescan = Rescan {
            reasons,
            at_ms,
            processes,
            launches: launches.len(),
            duration_us: started.elapsed().as_micros() as u64,
        };
        (launches, rescan)
    }

    /// Running processes cannot be listed without `/proc` here; the poller's rounds see
    /// every running process anyway.
    #[cfg(not(target_os = "linux"))]
    pub fn rescan(&mut self, reasons: Vec<GapReason>) -> (Vec<Launch>, Rescan) {
        (Vec::new(), Rescan { reasons, at_ms: now_ms(), processes: 0, launches: 0, duration_us: 0 })
    }

    /// Re-decides every running launch an exception allowed against the rules in force now
    /// (call it at least every second: exceptions expire with the clock). A launch no
    /// exception covers any more gets an [`ExceptionEnd`]; once the policy's grace period
    /// (`[exceptions] grace`) has passed, its process tree is stopped unless a new
    /// exception covers it again. Monitor mode reports the end and stops nothing.
    pub fn check_sessions(&mut self) -> Vec<SessionNotice> {
        let rules = self.decider.rules();
        let now = now_secs();
        let mut notices = Vec::new();
        let pids: Vec<u32> = self.tracked.iter().filter(|(_, t)| t.covered.is_some()).map(|(pid, _)| *pid).collect();
        for pid in pids {
            let Some(tracked) = self.tracked.get_mut(&pid) else { continue };
            if tracked.start_ticks.is_none() || start_ticks(pid) != tracked.start_ticks {
                self.tracked.remove(&pid); // the session ended by itself
                continue;
            }
            let Some(covered) = tracked.covered.as_mut() else { continue };
            let verdict = rules.decide(&covered.facts, now);
            if verdict.action != Action::Block {
                match verdict.exception {
                    // Still (or again) covered: a pending stop is called off.
                    Some(exception) => {
                        covered.exception = exception;
                        covered.ending = None;
                        covered.ended = None;
                    }
                    // Allowed or warned by the policy itself now: nothing to end.
                    None => tracked.covered = None,
                }
                continue;
            }
            match covered.ending {
                None => {
                    let grace = rules.policy.exceptions.grace;
                    let stop_at = (!verdict.monitor).then(|| Instant::now() + Duration::from_secs(grace));
                    covered.ending = Some(stop_at);
                    let reason = match rules.exceptions.iter().find(|e| e.id == covered.exception) {
                        Some(exception) if now >= exception.expires_at => EndReason::Expired,
                        _ => EndReason::Revoked,
                    };
                    covered.ended = Some((reason, grace));
                    let name = verdict.tool_name.clone().unwrap_or_else(|| tracked.tool.clone());
                    let message = match (verdict.monitor, grace) {
                        (true, _) => format!("exception ended: {name} would be stopped (monitor mode)"),
                        (false, 0) => format!("exception ended: {name} is being stopped"),
                        (false, grace) => {
                            format!("exception ended: {name} will be stopped in {}", spell_duration(grace))
                        }
                    };
                    let at_ms = now_ms();
                    notices.push(SessionNotice::ExceptionEnded(ExceptionEnd {
                        at_ms,
                        pid,
                        tool: tracked.tool.clone(),
                        tool_name: verdict.tool_name.clone(),
                        exception: covered.exception.clone(),
                        reason,
                        user: covered.facts.person().map(str::to_owned),
                        cwd: covered.facts.cwd.clone(),
                        grace_secs: grace,
                        stops_at_ms: stop_at.map(|_| at_ms + grace as i64 * 1000),
                        message,
                    }));
                }
                Some(None) => continue, // monitor mode: told once, never stopped
                Some(Some(_)) => {}
            }
            if let Some(Some(stop_at)) = covered.ending
                && Instant::now() >= stop_at
            {
                let exception = covered.exception.clone();
                let user = covered.facts.person().map(str::to_owned);
                let (reason, grace_secs) = covered.ended.unwrap_or((EndReason::Revoked, 0));
                let (outcome, killed, not_permitted) = match kill_tree(pid, tracked.start_ticks) {
                    KillReport::Killed { pids, not_permitted } => (Outcome::Killed, pids, not_permitted),
                    KillReport::NotPermitted => (Outcome::NotPermitted, Vec::new(), vec![pid]),
                    KillReport::Exited => (Outcome::Exited, Vec::new(), Vec::new()),
                };
                // From now on it is a blocked launch: a continuation still starting is killed.
                tracked.covered = None;
                tracked.blocked = true;
                notices.push(SessionNotice::SessionStopped(SessionStop {
                    at_ms: now_ms(),
                    pid,
                    tool: tracked.tool.clone(),
                    exception,
                    user,
                    reason,
                    grace_secs,
                    outcome,
                    killed,
                    not_permitted,
                }));
            }
        }
        notices
    }
}
