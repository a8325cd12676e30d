//! The gate's threads and decisions: a reader that answers what needs no decision at once and
//! keeps every permission event's deadline, a decider, and (for [`GateScope::LocalFilesystems`])
//! a follower of the mount table.
//!
//! - Decisions are cached by (device, inode, mtime, size, uid) *and the path* the file was
//!   executed by: a verdict reached for a hard link at an innocent path never lets the same
//!   inode through at the tool's own path. The cache is dropped whenever the rules change.
//! - The file is judged by what it is (its content fingerprint, read through the event's
//!   descriptor) before where it sits.
//! - Every permission event is answered: by the decision, or by the reader when the decision
//!   misses its deadline (allow, or deny when `enforcement.fail_closed`). Closing the group
//!   (on stop, or if the agent dies) lets pending execs through.
//! - A `#!` script's exec is judged as the interpreter running that script, so a blocked
//!   `cli.js` fails to exec before `node` starts. Launches with no exec of their own
//!   (`node cli.js`) are left to the exec-event source running beside the gate.
//! - The loader pattern: when the file executed is the dynamic loader, its argv (the program)
//!   is not known yet. The gate then adds `FAN_OPEN_PERM` to its marks until that process has
//!   opened its program (at most [`LOADER_WINDOW`]); each open by it is judged as the loader
//!   running the opened file, with the argv the kernel now shows, and a blocked program's open
//!   is denied (the loader exits with "cannot open shared object file"). Opens by any other
//!   process during that window are allowed by the reader without a decision, and so are the
//!   agent's own (which is what keeps the gate from waiting on itself).

use super::marks::Coverage;
use super::mountinfo;
use super::{GateMark, GateScope};
use crate::facts::{self, UserNames};
use crate::identity::ContentIdentity;
use crate::source::SourceError;
use crate::watcher::{Decider, Launch, monotonic_ns};
use nix::sys::fanotify::{EventFFlags, Fanotify, FanotifyResponse, InitFlags, MaskFlags, Response};
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

/// How long a decision may take before the reader answers for it.
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
    /// The file is the dynamic loader (by name or by content).
    loader: bool,
    generation: u64,
    at: Instant,
}

/// An event waiting for its answer, shared by the decider and the reader (deadline answers).
#[derive(Debug)]
struct Pending {
    fd: RawFd,
    since: Instant,
    answered: bool,
}

/// How long the gate watches the opens of a directly run loader for its program.
pub const LOADER_WINDOW: Duration = Duration::from_secs(2);

/// Counters, readable while the gate runs.
#[derive(Debug, Default)]
pub struct GateStats {
    pub allowed: AtomicU64,
    pub denied: AtomicU64,
    pub cache_hits: AtomicU64,
    pub deadline_answers: AtomicU64,
    /// Opens judged because a directly run loader made them.
    pub loader_opens: AtomicU64,
}

/// A running gate. Dropping it (or [`ExecGate::stop`]) closes the group, which lets
/// everything pending through.
#[derive(Debug)]
pub struct ExecGate {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
}

/// A directly run loader the gate watches until it has opened its program.
#[derive(Debug, Clone)]
struct LoaderStart {
    /// The loader's file as executed (resolved path).
    exe: String,
    since: Instant,
}

#[derive(Debug)]
struct Shared {
    group: Fanotify,
    pending: Mutex<Vec<Pending>>,
    decider: Arc<Decider>,
    stats: Arc<GateStats>,
    deadline: Duration,
    coverage: Mutex<Coverage>,
    /// Marking refusals while following the mount table (the status shows them).
    refusals: Mutex<Vec<String>>,
    loaders: Mutex<HashMap<u32, LoaderStart>>,
    own_pid: i32,
}

impl Shared {
    /// Answers an event unless the reader already did (deadline). Holding the lock while
    /// writing keeps the descriptor open for the reader's answer too (it is closed only after
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
            // SAFETY: the decider keeps this descriptor open until it has removed the entry
            // from `pending` under this same lock, so it is valid here.
            let fd = unsafe { BorrowedFd::borrow_raw(entry.fd) };
            let response = if fail_closed { Response::FAN_DENY } else { Response::FAN_ALLOW };
            let _ = self.group.write_response(FanotifyResponse::new(fd, response));
            entry.answered = true;
            self.stats.deadline_answers.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn coverage(&self) -> std::sync::MutexGuard<'_, Coverage> {
        self.coverage.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn loaders(&self) -> std::sync::MutexGuard<'_, HashMap<u32, LoaderStart>> {
        self.loaders.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts watching a loader's opens: `FAN_OPEN_PERM` goes on before its exec is answered.
    fn watch_loader(&self, pid: u32, exe: String) {
        self.loaders().insert(pid, LoaderStart { exe, since: Instant::now() });
        self.coverage().set_open_perm(&self.group, true);
    }

    /// Stops watching loaders that opened their program, ended, or outlived the window; the
    /// last one takes `FAN_OPEN_PERM` off again.
    fn forget_loaders(&self, decided: Option<u32>) {
        let none_left = {
            let mut loaders = self.loaders();
            if let Some(pid) = decided {
                loaders.remove(&pid);
            }
            loaders.retain(|pid, start| {
                start.since.elapsed() < LOADER_WINDOW && std::path::Path::new(&format!("/proc/{pid}")).exists()
            });
            loaders.is_empty()
        };
        if none_left {
            self.coverage().set_open_perm(&self.group, false);
        }
    }
}

/// The mount table's text (`/proc/self/mountinfo`), empty when unreadable.
fn mount_table() -> Vec<mountinfo::MountEntry> {
    mountinfo::parse(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
}

impl ExecGate {
    /// Starts the gate on `scope` (see [`GateScope`]). Denied launches are sent to
    /// `launches`. Needs CAP_SYS_ADMIN (root).
    ///
    /// # Errors
    /// [`SourceError::Unavailable`] when fanotify is refused, or when a listed path can be
    /// marked neither as a filesystem nor as a mount. For [`GateScope::LocalFilesystems`], a
    /// filesystem the kernel refuses is left out and named in [`ExecGate::refusals`].
    pub fn start(
        scope: &GateScope,
        decider: Arc<Decider>,
        launches: Sender<Launch>,
        deadline: Duration,
    ) -> Result<ExecGate, SourceError> {
        let unavailable = |message: String| SourceError::Unavailable { source_name: NAME, message };
        let group = Fanotify::init(
            InitFlags::FAN_CLASS_CONTENT | InitFlags::FAN_CLOEXEC | InitFlags::FAN_NONBLOCK,
            EventFFlags::O_RDONLY | EventFFlags::O_LARGEFILE | EventFFlags::O_CLOEXEC,
        )
        .map_err(|e| unavailable(format!("fanotify_init (needs root): {e}")))?;
        let mut coverage = Coverage::default();
        let mut refusals = Vec::new();
        match scope {
            GateScope::Filesystems(paths) => {
                let table = mount_table();
                for path in paths {
                    // The type and device of the mount holding `path` (the longest mount point
                    // above it), for the status and to mark a filesystem listed twice once.
                    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
                    let holder = table
                        .iter()
                        .filter(|e| real.starts_with(&e.mount_point))
                        .max_by_key(|e| e.mount_point.as_os_str().len());
                    coverage
                        .add(&group, path, holder.map(|e| e.fs_type.clone()), holder.map(|e| e.device.clone()))
                        .map_err(unavailable)?;
                }
            }
            GateScope::LocalFilesystems { under } => {
                refusals = coverage.follow_table(&group, &mount_table(), under);
            }
        }
        let stats = Arc::new(GateStats::default());
        let shared = Arc::new(Shared {
            group,
            pending: Mutex::new(Vec::new()),
            decider,
            stats: stats.clone(),
            deadline,
            coverage: Mutex::new(coverage),
            refusals: Mutex::new(refusals),
            loaders: Mutex::new(HashMap::new()),
            own_pid: std::process::id() as i32,
        });
        let stop = Arc::new(AtomicBool::new(false));
        let spawn = |name: &str, body: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(body)
                .map_err(|error| SourceError::Io { source_name: NAME, error })
        };
        let (to_decider, decisions) = std::sync::mpsc::channel();
        let mut threads = Vec::new();
        {
            let (shared, stop) = (shared.clone(), stop.clone());
            threads.push(spawn("warden-gate", Box::new(move || read(&shared, &stop, &to_decider)))?);
        }
        {
            let shared = shared.clone();
            threads.push(spawn("warden-gate-decider", Box::new(move || run(&shared, &decisions, &launches)))?);
        }
        if let GateScope::LocalFilesystems { under } = scope {
            let (shared, stop, under) = (shared.clone(), stop.clone(), under.clone());
            threads.push(spawn("warden-gate-mounts", Box::new(move || follow(&shared, &stop, &under)))?);
        }
        Ok(ExecGate { stop, threads, shared })
    }

    /// Counters of decisions so far.
    pub fn stats(&self) -> &GateStats {
        &self.shared.stats
    }

    /// What the gate covers now, one entry per filesystem.
    pub fn marks(&self) -> Vec<GateMark> {
        self.shared.coverage().marks()
    }

    /// The mount points of [`ExecGate::marks`].
    pub fn mounts(&self) -> Vec<PathBuf> {
        self.shared.coverage().mount_points()
    }

    /// Local filesystems of the mount table the kernel refused to let the gate mark.
    pub fn refusals(&self) -> Vec<String> {
        self.shared.refusals.lock().unwrap_or_else(|p| p.into_inner()).clone()
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

/// The reader: answers at once what needs no decision (the agent's own opens and execs, and
/// plain opens by processes that are not a watched loader), hands the rest to the decider,
/// and answers every event whose decision misses the deadline. It never opens a file on a
/// marked filesystem, so it cannot wait on itself.
fn read(shared: &Shared, stop: &AtomicBool, decider: &Sender<nix::sys::fanotify::FanotifyEvent>) {
    let tick = u16::try_from((shared.deadline / 4).as_millis().max(1)).unwrap_or(50);
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [nix::poll::PollFd::new(shared.group.as_fd(), nix::poll::PollFlags::POLLIN)];
        let ready = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(tick));
        shared.answer_overdue();
        if !matches!(ready, Ok(n) if n > 0) {
            continue;
        }
        let Ok(events) = shared.group.read_events() else { continue }; // EAGAIN, EINTR
        for event in events {
            let Some(fd) = event.fd() else { continue }; // queue overflow notice
            let exec = event.mask().contains(MaskFlags::FAN_OPEN_EXEC_PERM);
            let pid = event.pid();
            let needs_decision =
                pid != shared.own_pid && (exec || (pid > 0 && shared.loaders().contains_key(&(pid as u32))));
            if !needs_decision {
                let _ = shared.group.write_response(FanotifyResponse::new(fd, Response::FAN_ALLOW));
                continue;
            }
            shared.pending.lock().unwrap_or_else(|p| p.into_inner()).push(Pending {
                fd: fd.as_raw_fd(),
                since: Instant::now(),
                answered: false,
            });
            if let Err(unsent) = decider.send(event) {
                // The decider is gone (a bug): let the exec through rather than hang it.
                if let Some(fd) = unsent.0.fd() {
                    shared.answer(fd, true);
                }
            }
        }
    }
}

/// The decider: one event at a time, each answered by its verdict.
fn run(
    shared: &Shared,
    events: &std::sync::mpsc::Receiver<nix::sys::fanotify::FanotifyEvent>,
    launches: &Sender<Launch>,
) {
    let mut state = DecideState {
        cache: HashMap::new(),
        users: UserNames::default(),
        identity: ContentIdentity::with_size_limit(GATE_CONTENT_LIMIT),
        interpreters: HashMap::new(),
    };
    loop {
        let event = match events.recv_timeout(Duration::from_millis(100)) {
            Ok(event) => event,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if !shared.loaders().is_empty() {
                    shared.forget_loaders(None);
                }
                continue;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let Some(fd) = event.fd() else { continue };
        let kernel_ns = monotonic_ns();
        let pid = event.pid().max(0) as u32;
        let exec = event.mask().contains(MaskFlags::FAN_OPEN_EXEC_PERM);
        // A panic while deciding (a bug) must not leave the exec hanging or stop the gate: it
        // is answered as a missed deadline would be.
        let deny = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if exec {
                let (deny, loader) = decide(shared, fd, pid, &mut state, launches, kernel_ns);
                match loader {
                    // The kernel loading the interpreter a program it is executing asks for:
                    // that program was just judged; nothing runs the loader directly.
                    Some(_) if state.is_interpreter_load(pid, fd) => {}
                    // Before the answer: the loader must not reach its program's open unwatched.
                    Some(loader) if !deny => shared.watch_loader(pid, loader),
                    Some(_) => {}
                    None => state.expect_interpreter(pid, fd),
                }
                deny
            } else {
                shared.stats.loader_opens.fetch_add(1, Ordering::Relaxed);
                decide_loader_open(shared, fd, pid, &mut state, launches, kernel_ns)
            }
        }))
        .unwrap_or_else(|_| shared.decider.rules().policy.enforcement.fail_closed);
        shared.answer(fd, !deny);
        let counter = if deny { &shared.stats.denied } else { &shared.stats.allowed };
        counter.fetch_add(1, Ordering::Relaxed);
        drop(event); // closes the descriptor, after it left `pending`
    }
}

/// The follower: marks each local filesystem mounted under `under` after the start. The
/// kernel flags `/proc/self/mountinfo` with `POLLPRI` (and `POLLERR`) when the table changes;
/// reading it again from the start re-arms it.
fn follow(shared: &Shared, stop: &AtomicBool, under: &std::path::Path) {
    use std::io::{Read, Seek};
    let Ok(mut table) = std::fs::File::open("/proc/self/mountinfo") else { return };
    let mut text = String::new();
    // The first pass reads at once: a filesystem mounted between the start's reading of the
    // table and this open raised no flag on this descriptor.
    let mut first = true;
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [nix::poll::PollFd::new(table.as_fd(), nix::poll::PollFlags::POLLPRI)];
        if !std::mem::take(&mut first) {
            match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(200u16)) {
                Ok(n) if n > 0 => {}
                _ => continue,
            }
        }
        text.clear();
        if table.seek(std::io::SeekFrom::Start(0)).is_err() || table.read_to_string(&mut text).is_err() {
            continue;
        }
        let refused = shared.coverage().follow_table(&shared.group, &mountinfo::parse(&text), under);
        let mut refusals = shared.refusals.lock().unwrap_or_else(|p| p.into_inner());
        for refusal in refused {
            if !refusals.contains(&refusal) {
                refusals.push(refusal);
            }
        }
    }
}

/// The decider's own state: the verdict cache, user names, content identities.
struct DecideState {
    cache: HashMap<FileKey, Cached>,
    users: UserNames,
    identity: ContentIdentity,
    /// pid → the interpreter (`PT_INTERP`) of the program it is executing, and when: the exec
    /// of a dynamically linked program brings a second exec event, for its loader, which is
    /// not the loader run directly.
    interpreters: HashMap<u32, (PathBuf, Instant)>,
}

/// How long after a program's exec event its interpreter's event is expected (the same
/// `execve`, microseconds apart; generous for a loaded machine).
const INTERPRETER_WINDOW: Duration = Duration::from_millis(500);

impl DecideState {
    /// Notes the interpreter a program being executed names, if it is a dynamic ELF.
    fn expect_interpreter(&mut self, pid: u32, fd: BorrowedFd<'_>) {
        if self.interpreters.len() > 1024 {
            self.interpreters.retain(|_, (_, at)| at.elapsed() < INTERPRETER_WINDOW);
        }
        match elf_interpreter(fd) {
            Some(interpreter) => self.interpreters.insert(pid, (interpreter, Instant::now())),
            None => self.interpreters.remove(&pid),
        };
    }

    /// Whether the loader exec `fd` of `pid` is the interpreter of the program that pid is
    /// executing (the same file as its `PT_INTERP`, within the window).
    fn is_interpreter_load(&mut self, pid: u32, fd: BorrowedFd<'_>) -> bool {
        let Some((interpreter, at)) = self.interpreters.remove(&pid) else { return false };
        if at.elapsed() > INTERPRETER_WINDOW {
            return false;
        }
        match (nix::sys::stat::stat(&interpreter), nix::sys::stat::fstat(fd)) {
            (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
            _ => false,
        }
    }
}

/// The `PT_INTERP` path of a 64- or 32-bit little-endian ELF file (the loader the kernel will
/// open for it), read through the descriptor; `None` for anything else.
fn elf_interpreter(fd: BorrowedFd<'_>) -> Option<PathBuf> {
    use crate::elf::ReadAt;
    let (table, entry, wide) = crate::elf::program_header_table(&fd)?;
    let (offset, length) = *crate::elf::segments(&table, entry, wide, crate::elf::PT_INTERP).first()?;
    if length == 0 || length > 4096 {
        return None;
    }
    let mut path = vec![0u8; length as usize];
    let read = fd.read_at(&mut path, offset)?;
    let path = &path[..read];
    let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
    use std::os::unix::ffi::OsStrExt;
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(&path[..end])))
}

/// The file behind an event's descriptor as a `File` of its own (a duplicate descriptor: the
/// event keeps the original), for reading its content without opening it again.
fn event_file(fd: BorrowedFd<'_>) -> Option<std::fs::File> {
    fd.try_clone_to_owned().ok().map(std::fs::File::from)
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

/// Decides an exec. Returns whether to deny it and, when the file executed is the dynamic
/// loader, its path (the caller then watches the loader's opens).
fn decide(
    shared: &Shared,
    fd: BorrowedFd<'_>,
    pid: u32,
    state: &mut DecideState,
    launches: &Sender<Launch>,
    kernel_ns: u64,
) -> (bool, Option<String>) {
    let Ok(path) = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())) else { return (false, None) };
    let Ok(metadata) = nix::sys::stat::fstat(fd) else { return (false, None) };
    let exe = path.to_string_lossy().into_owned();
    let named_loader = warden_policy::is_dynamic_loader(&exe);
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
        && let Some(hit) = state.cache.get(&key)
        && hit.generation == rules.generation
        && hit.at.elapsed() < CACHE_TTL
    {
        shared.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
        if !hit.deny {
            return (false, hit.loader.then(|| exe.clone()));
        }
    }
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
                user: state.users.name(uid),
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
            user: state.users.name(uid),
            account: rules.accounts.account_of(uid).map(str::to_owned),
            ancestors: facts::ancestors(pid),
            ..ProcessFacts::default()
        },
    };
    // The event's descriptor is the file being executed, readable even when its mode is
    // execute-only: it is judged by its content wherever it sits. A file too large to read
    // within the deadline is judged by its path (the identity reader leaves it unread).
    if facts.script.is_none() {
        facts.content = event_file(fd)
            .and_then(|file| state.identity.identify_file(file, rules.catalog.content(), rules.generation))
            .filter(|c| c.tool.is_some() || c.sha256.is_some());
        facts.packages = crate::identity::packages(&facts);
    }
    // The loader is known by its content too: a renamed copy is watched like `ld.so`.
    let is_loader = named_loader || facts.content.as_ref().is_some_and(|c| c.loader);
    facts.exe_is_loader = is_loader && !named_loader;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let verdict = rules.decide(&facts, now);
    let deny = verdict.must_block();
    if state.cache.len() > 10_000 {
        state.cache.clear();
    }
    state.cache.insert(key, Cached { deny, loader: is_loader, generation: rules.generation, at: Instant::now() });
    let loader = is_loader.then(|| facts.exe.clone());
    if deny {
        report_denied(&rules, facts, verdict, launches, kernel_ns);
    }
    (deny, loader)
}

/// Decides an open made by a directly run loader: as the loader running the opened file, with
/// the argv the process has now (after its exec). The open of a blocked program is denied.
/// The loader stops being watched once it opened the program its argv names, or was denied.
fn decide_loader_open(
    shared: &Shared,
    fd: BorrowedFd<'_>,
    pid: u32,
    state: &mut DecideState,
    launches: &Sender<Launch>,
    kernel_ns: u64,
) -> bool {
    let Some(start) = shared.loaders().get(&pid).cloned() else { return false };
    // Only a process whose image is the loader itself runs it directly (a program whose
    // interpreter event came unannounced, e.g. from a filesystem the gate does not cover, runs
    // its own image): anything else is not the loader pattern.
    if facts::exe(pid).ok().as_deref() != Some(start.exe.as_str()) {
        shared.forget_loaders(Some(pid));
        return false;
    }
    let Ok(opened) = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())) else { return false };
    let Ok(argv) = facts::argv(pid) else { return false };
    // Only loaders are watched: one not named like a loader was known by its content.
    let by_content = !warden_policy::is_dynamic_loader(&start.exe);
    let read_as = if by_content { "ld.so" } else { start.exe.as_str() };
    let Some(warden_policy::ScriptArgument::Program { index, path: program }) =
        warden_policy::interpreter_script(read_as, &argv)
    else {
        // `--list`, `--verify`, `--help`: the loader runs no program.
        shared.forget_loaders(Some(pid));
        return false;
    };
    // Whether this open is the program argv names (the same file, not a library, the cache or
    // an audit module); `stat` through the process's own cwd opens nothing.
    let named = if program.starts_with('/') {
        PathBuf::from(program)
    } else {
        PathBuf::from(format!("/proc/{pid}/cwd")).join(program)
    };
    let is_program = match (nix::sys::stat::stat(&named), nix::sys::stat::fstat(fd)) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    };
    let rules = shared.decider.rules();
    let uid = facts::uid(pid).unwrap_or(u32::MAX);
    let mut argv = argv.clone();
    // The file actually opened stands for the program: a path swapped after the loader
    // resolved it cannot name something else.
    argv[index] = opened.to_string_lossy().into_owned();
    let mut facts = ProcessFacts {
        pid: Some(pid),
        exe: start.exe.clone(),
        exe_is_loader: by_content,
        argv,
        cwd: std::fs::read_link(format!("/proc/{pid}/cwd")).ok().map(|p| p.to_string_lossy().into_owned()),
        user: state.users.name(uid),
        account: rules.accounts.account_of(uid).map(str::to_owned),
        ancestors: facts::stat(pid).map(|s| facts::ancestors(s.ppid)).unwrap_or_default(),
        ..ProcessFacts::default()
    };
    facts.content = event_file(fd)
        .and_then(|file| state.identity.identify_file(file, rules.catalog.content(), rules.generation))
        .filter(|c| c.tool.is_some() || c.sha256.is_some());
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let verdict = rules.decide(&facts, now);
    let deny = verdict.must_block();
    if deny || is_program {
        shared.forget_loaders(Some(pid));
    }
    if deny {
        report_denied(&rules, facts, verdict, launches, kernel_ns);
    }
    deny
}

fn report_denied(
    rules: &crate::watcher::Rules,
    facts: ProcessFacts,
    verdict: warden_policy::Verdict,
    launches: &Sender<Launch>,
    kernel_ns: u64,
) {
    let decided = Instant::now();
    let latency = Duration::from_nanos(monotonic_ns().saturating_sub(kernel_ns));
    // Found before the answer: the caller then goes on with EPERM and may exit.
    let terminal = facts.pid.and_then(crate::terminal::Terminal::of);
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
        terminal,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn reads_the_interpreter_a_dynamic_program_names() {
        let program = std::fs::File::open("/bin/true").unwrap();
        let interpreter = elf_interpreter(program.as_fd()).expect("/bin/true is dynamically linked");
        assert!(warden_policy::is_dynamic_loader(&interpreter.to_string_lossy()), "{}", interpreter.display());
        // The loader itself names none; neither does a script or a short file.
        let loader = std::fs::File::open(&interpreter).unwrap();
        assert_eq!(elf_interpreter(loader.as_fd()), None);
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in [("script", &b"#!/bin/sh\necho\n"[..]), ("short", &b"\x7fELF\x02\x01"[..])] {
            std::fs::write(dir.path().join(name), bytes).unwrap();
            let file = std::fs::File::open(dir.path().join(name)).unwrap();
            assert_eq!(elf_interpreter(file.as_fd()), None, "{name}");
        }
    }
}
