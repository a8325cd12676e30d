//! The privileged pre-exec gate: fanotify `FAN_OPEN_EXEC_PERM` on chosen mounts. The
//! kernel holds every `execve` of a file on a marked mount until Warden answers; a
//! blocked program's `execve` fails with EPERM before its first instruction.
//!
//! - Decisions are cached by (device, inode, mtime, size, uid) *and the path* the file was
//!   executed by: a verdict reached for a hard link at an innocent path never lets the same
//!   inode through at the tool's own path. The cache is dropped whenever the rules change.
//! - The file is judged by what it is (its content fingerprint, read through the event's
//!   descriptor) before where it sits.
//! - Every permission event is answered: by the decision, or by a watchdog thread when
//!   the decision misses its deadline (allow, or deny when `enforcement.fail_closed`).
//!   Closing the group (on stop, or if the agent dies) lets pending execs through.
//! - A `#!` script's exec is judged as the interpreter running that script, so a blocked
//!   `cli.js` fails to exec before `node` starts. Launches with no exec of their own
//!   (`node cli.js`) are left to the exec-event source running beside the gate.

use crate::facts::{self, UserNames};
use crate::identity::ContentIdentity;
use crate::source::SourceError;
use crate::watcher::{Decider, Launch, monotonic_ns};
use nix::sys::fanotify::{EventFFlags, Fanotify, FanotifyResponse, InitFlags, MarkFlags, MaskFlags, Response};
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use warden_api::Outcome;
use warden_policy::ProcessFacts;

const NAME: &str = "fanotify";

/// How long a decision may take before the watchdog answers for it.
pub const DEFAULT_DEADLINE: Duration = Duration::from_millis(200);

/// The largest file the gate reads for its content fingerprint within its deadline; larger
/// files are judged by path.
pub const GATE_CONTENT_LIMIT: u64 = 16 << 20;

/// How long a cached decision is trusted (exceptions expire with time).
const CACHE_TTL: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FileKey {
    dev: u64,
    ino: u64,
    mtime: i64,
    mtime_nsec: i64,
    size: u64,
    uid: u32,
    path: PathBuf,
}

#[derive(Debug, Clone, Copy)]
struct Cached {
    deny: bool,
    generation: u64,
    at: Instant,
}

/// An event waiting for its answer, shared with the watchdog.
#[derive(Debug)]
struct Pending {
    fd: RawFd,
    since: Instant,
    answered: bool,
}

/// Counters, readable while the gate runs.
#[derive(Debug, Default)]
pub struct GateStats {
    pub allowed: AtomicU64,
    pub denied: AtomicU64,
    pub cache_hits: AtomicU64,
    pub deadline_answers: AtomicU64,
}

/// A running gate. Dropping it (or [`ExecGate::stop`]) closes the group, which lets
/// everything pending through.
#[derive(Debug)]
pub struct ExecGate {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    stats: Arc<GateStats>,
    mounts: Vec<PathBuf>,
}

struct Shared {
    group: Fanotify,
    pending: Mutex<Vec<Pending>>,
    decider: Arc<Decider>,
    stats: Arc<GateStats>,
    deadline: Duration,
}

impl Shared {
    /// Answers an event unless the watchdog already did. Holding the lock while writing
    /// keeps the descriptor open for the watchdog's answer too (it is closed only after
    /// the event leaves `pending`).
    fn answer(&self, fd: BorrowedFd<'_>, allow: bool) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let raw = fd.as_raw_fd();
        let answered = pending.iter().find(|p| p.fd == raw).is_some_and(|p| p.answered);
        pending.retain(|p| p.fd != raw);
        if !answered {
            let response = if allow { Response::FAN_ALLOW } else { Response::FAN_DENY };
            let _ = self.group.write_response(FanotifyResponse::new(fd, response));
        }
    }

    fn answer_overdue(&self) {
        let fail_closed = self.decider.rules().policy.enforcement.fail_closed;
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        for entry in pending.iter_mut().filter(|p| !p.answered && p.since.elapsed() >= self.deadline) {
            // SAFETY: the gate thread keeps this descriptor open until it has removed the
            // entry from `pending` under this same lock, so it is valid here.
            let fd = unsafe { BorrowedFd::borrow_raw(entry.fd) };
            let response = if fail_closed { Response::FAN_DENY } else { Response::FAN_ALLOW };
            let _ = self.group.write_response(FanotifyResponse::new(fd, response));
            entry.answered = true;
            self.stats.deadline_answers.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl ExecGate {
    /// Starts the gate on the mounts holding `mounts` (whole mounts: a directory mark
    /// would cover only its direct children). Denied launches are sent to `launches`.
    /// Needs CAP_SYS_ADMIN (root).
    pub fn start(
        mounts: &[PathBuf],
        decider: Arc<Decider>,
        launches: Sender<Launch>,
        deadline: Duration,
    ) -> Result<ExecGate, SourceError> {
        let unavailable = |context: String, errno: nix::errno::Errno| SourceError::Unavailable {
            source_name: NAME,
            message: format!("{context}: {errno}"),
        };
        let group = Fanotify::init(
            InitFlags::FAN_CLASS_CONTENT | InitFlags::FAN_CLOEXEC | InitFlags::FAN_NONBLOCK,
            EventFFlags::O_RDONLY | EventFFlags::O_LARGEFILE | EventFFlags::O_CLOEXEC,
        )
        .map_err(|e| unavailable("fanotify_init (needs root)".into(), e))?;
        for mount in mounts {
            group
                .mark(
                    MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_MOUNT,
                    MaskFlags::FAN_OPEN_EXEC_PERM,
                    nix::fcntl::AT_FDCWD,
                    Some(mount.as_path()),
                )
                .map_err(|e| unavailable(format!("marking {}", mount.display()), e))?;
        }
        let stats = Arc::new(GateStats::default());
        let shared =
            Arc::new(Shared { group, pending: Mutex::new(Vec::new()), decider, stats: stats.clone(), deadline });
        let stop = Arc::new(AtomicBool::new(false));
        let gate_thread = {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::Builder::new()
                .name("warden-gate".into())
                .spawn(move || run(&shared, &stop, &launches))
                .map_err(|error| SourceError::Io { source_name: NAME, error })?
        };
        let watchdog = {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::Builder::new()
                .name("warden-gate-watchdog".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(shared.deadline / 4);
                        shared.answer_overdue();
                    }
                })
                .map_err(|error| SourceError::Io { source_name: NAME, error })?
        };
        Ok(ExecGate { stop, threads: vec![gate_thread, watchdog], stats, mounts: mounts.to_vec() })
    }

    /// Counters of decisions so far.
    pub fn stats(&self) -> &GateStats {
        &self.stats
    }

    /// The marked mounts.
    pub fn mounts(&self) -> &[PathBuf] {
        &self.mounts
    }

    /// Stops the gate and waits for its threads; the group closes with the last of them.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for ExecGate {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run(shared: &Shared, stop: &AtomicBool, launches: &Sender<Launch>) {
    let mut cache: HashMap<FileKey, Cached> = HashMap::new();
    let mut users = UserNames::default();
    let mut identity = ContentIdentity::with_size_limit(GATE_CONTENT_LIMIT);
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [nix::poll::PollFd::new(shared.group.as_fd(), nix::poll::PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16)) {
            Ok(0) | Err(_) => continue,
            Ok(_) => {}
        }
        let events = match shared.group.read_events() {
            Ok(events) => events,
            Err(_) => continue, // EAGAIN: another reader was faster; EINTR
        };
        for event in events {
            let Some(fd) = event.fd() else { continue }; // queue overflow notice
            if !event.mask().contains(MaskFlags::FAN_OPEN_EXEC_PERM) {
                continue;
            }
            shared.pending.lock().unwrap_or_else(|p| p.into_inner()).push(Pending {
                fd: fd.as_raw_fd(),
                since: Instant::now(),
                answered: false,
            });
            let kernel_ns = monotonic_ns();
            let pid = event.pid().max(0) as u32;
            // A panic while deciding (a bug) must not leave the exec hanging or stop the
            // gate: it is answered as a missed deadline would be.
            let deny = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                decide(shared, fd, pid, &mut cache, &mut users, &mut identity, launches, kernel_ns)
            }))
            .unwrap_or_else(|_| shared.decider.rules().policy.enforcement.fail_closed);
            shared.answer(fd, !deny);
            let counter = if deny { &shared.stats.denied } else { &shared.stats.allowed };
            counter.fetch_add(1, Ordering::Relaxed);
            drop(event); // closes the descriptor, after it left `pending`
        }
    }
}

/// How a `#!` line runs a script: the interpreter and its optional argument.
fn shebang(fd: BorrowedFd<'_>) -> Option<(String, Option<String>)> {
    let mut head = [0u8; 256];
    let read = nix::sys::uio::pread(fd, &mut head, 0).ok()?;
    let line = head[..read].strip_prefix(b"#!")?;
    let line = &line[..line.iter().position(|&b| b == b'\n')?];
    let line = String::from_utf8_lossy(line);
    let mut words = line.trim().splitn(2, [' ', '\t']);
    let interpreter = words.next()?.to_owned();
    let argument = words.next().map(|a| a.trim().to_owned()).filter(|a| !a.is_empty());
    Some((interpreter, argument))
}

#[allow(clippy::too_many_arguments)]
fn decide(
    shared: &Shared,
    fd: BorrowedFd<'_>,
    pid: u32,
    cache: &mut HashMap<FileKey, Cached>,
    users: &mut UserNames,
    identity: &mut ContentIdentity,
    launches: &Sender<Launch>,
    kernel_ns: u64,
) -> bool {
    let Ok(path) = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())) else { return false };
    let Ok(metadata) = nix::sys::stat::fstat(fd) else { return false };
    let uid = facts::uid(pid).unwrap_or(u32::MAX);
    let key = FileKey {
        dev: metadata.st_dev,
        ino: metadata.st_ino,
        mtime: metadata.st_mtime,
        mtime_nsec: metadata.st_mtime_nsec,
        size: metadata.st_size as u64,
        uid,
        path: path.clone(),
    };
    let rules = shared.decider.rules();
    let scoped_exceptions = rules.exceptions.iter().any(|e| e.scope.is_some());
    if !scoped_exceptions
        && let Some(hit) = cache.get(&key)
        && hit.generation == rules.generation
        && hit.at.elapsed() < CACHE_TTL
    {
        shared.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
        if !hit.deny {
            return false;
        }
    }
    let exe = path.to_string_lossy().into_owned();
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok().map(|p| p.to_string_lossy().into_owned());
    // Before the exec, the process still runs its parent's image: its argv is not the
    // new program's, so the gate judges the file alone (argv = the path).
    let mut facts = match shebang(fd) {
        Some((interpreter, argument)) => {
            let mut argv = vec![interpreter.clone()];
            argv.extend(argument);
            argv.push(exe.clone());
            ProcessFacts {
                pid: Some(pid),
                exe: interpreter,
                argv,
                cwd,
                user: users.name(uid),
                account: rules.accounts.account_of(uid).map(str::to_owned),
                script: Some(exe),
                ancestors: facts::ancestors(pid),
                ..ProcessFacts::default()
            }
        }
        None => ProcessFacts {
            pid: Some(pid),
            exe: exe.clone(),
            argv: vec![exe],
            cwd,
            user: users.name(uid),
            account: rules.accounts.account_of(uid).map(str::to_owned),
            ancestors: facts::ancestors(pid),
            ..ProcessFacts::default()
        },
    };
    // The event's descriptor is the file being executed, readable even when its mode is
    // execute-only: it is judged by its content wherever it sits.
    // A file too large to read within the deadline is judged by its path (the identity reader
    // leaves it unread).
    let program = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    if facts.script.is_none() {
        identity.complete(&mut facts, &program, rules.catalog.content(), rules.generation);
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let verdict = rules.decide(&facts, now);
    let deny = verdict.must_block();
    if cache.len() > 10_000 {
        cache.clear();
    }
    cache.insert(key, Cached { deny, generation: rules.generation, at: Instant::now() });
    if deny {
        let decided = Instant::now();
        let latency = Duration::from_nanos(monotonic_ns().saturating_sub(kernel_ns));
        let _ = launches.send(Launch {
            at: SystemTime::now(),
            facts,
            verdict,
            outcome: Outcome::Denied,
            source: NAME,
            policy_version: rules.version.clone(),
            latency: Some(latency),
            first_look: None,
            decided,
            killed: Vec::new(),
            not_permitted: Vec::new(),
            // Found before the answer: the caller then goes on with EPERM and may exit.
            terminal: crate::terminal::Terminal::of(pid),
        });
    }
    deny
}
