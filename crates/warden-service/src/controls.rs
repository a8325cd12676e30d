//! The vendors' managed files, written from the policy and kept: the OS edge of
//! `warden_policy::render_controls`. The system service (`wardend`, root) runs one [`Keeper`];
//! the personal mode writes none (they are system files).
//!
//! - **Written** atomically (temporary file in the same folder, fsync, mode 0644, rename,
//!   fsync of the folder), folders created 0755: the vendors' tools run as the developers and
//!   must read them, whatever the service's umask.
//! - **Owned files** (the vendor's one file at that path, e.g. `/etc/codex/requirements.toml`):
//!   what was there before Warden took the file is copied to `<state>/controls/backup/` and put
//!   back when the policy no longer needs the file. **Drop-ins** (Warden's own file in a folder
//!   the vendor merges) are simply removed then. Which paths Warden holds, and which have a
//!   backup, is recorded in `<state>/controls/held.json`, so a restart still knows what to undo.
//! - **Kept**: every folder from each file's parent up to the root is watched (inotify through
//!   `notify`), so an edit, a rename over the file, a delete, or `rm -r` of its folder (or of
//!   any folder above it) wakes the keeper, which rewrites what differs and reports each drift
//!   (a `control-drift` event). Folders that disappear and come back are watched again. A check
//!   every [`SAFETY_CHECK`] covers events the kernel dropped.
//! - A policy change ([`Keeper::apply`]) rewrites every file at once and removes or restores
//!   what the new policy no longer says.
//! - **Exceptions with guardrails** ([`Keeper::set_exceptions`]) add their conditions to the
//!   tool's machine-wide files while they are in force: the files are rendered again on every
//!   wake-up with the clock, so a guardrail goes within [`SAFETY_CHECK`] of its exception's end.
//!   A file changed by that (or by the policy) is not reported as drift.
//!
//! Every system path is put under `root` (`wardend --root DIR`, `WARDEN_ROOT`), so tests write
//! into a scratch tree and never into the machine's `/etc`.

use notify::{RecursiveMode, Watcher};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use warden_api::local::{AppliedControl, ManagedFileState};
use warden_api::{ControlDriftEvent, DriftChange};
use warden_policy::{Catalog, Exception, MANAGED_PATHS, ManagedFile, Ownership, Policy, Vendor, render_controls};

/// How often every file is checked even without a filesystem event (events the kernel
/// dropped, a watch that could not be placed).
pub const SAFETY_CHECK: Duration = Duration::from_secs(2);

/// How long the keeper gathers a burst of events before checking (one check per burst).
const SETTLE: Duration = Duration::from_millis(15);

/// Where the keeper works.
#[derive(Debug, Clone)]
pub struct ControlsOptions {
    /// Every system path is put under this folder (`/` on a real machine).
    pub root: PathBuf,
    /// The service's state directory: `controls/held.json` and `controls/backup/`.
    pub state_dir: PathBuf,
    /// Watch the folders (inotify). `false` leaves only the check every [`SAFETY_CHECK`]: the
    /// benchmark's peer (a keeper that polls), never the service.
    pub watch: bool,
}

/// Keeping the files failed to start.
#[derive(Debug, thiserror::Error)]
pub enum ControlsError {
    #[error("watching the managed files: {0}")]
    Watch(#[from] notify::Error),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Receives every drift the keeper found (and put back, or failed to).
pub type DriftReport = Box<dyn Fn(ControlDriftEvent) + Send + 'static>;

enum Message {
    Changed,
    Apply(Box<Policy>, Option<mpsc::Sender<()>>),
    Exceptions(Vec<Exception>),
    Stop,
}

/// The running keeper. Dropping it stops the watch; the files stay as they are.
pub struct Keeper {
    sender: mpsc::Sender<Message>,
    shared: Arc<Mutex<Desired>>,
    root: PathBuf,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Keeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keeper").field("root", &self.root).finish()
    }
}

/// What the policy in force says, for [`Keeper::status`].
#[derive(Default)]
struct Desired {
    files: BTreeMap<&'static str, ManagedFile>,
}

/// Which paths Warden holds (`held.json`): system path → whether a backup of the admin's file
/// is kept.
type Held = BTreeMap<String, bool>;

struct Worker {
    policy: Policy,
    /// The policy's catalog, compiled once per policy.
    catalog: Catalog,
    /// The device's approved exceptions (their guardrails go into the files while in force).
    exceptions: Vec<Exception>,
    root: PathBuf,
    held_file: PathBuf,
    backups: PathBuf,
    held: Held,
    shared: Arc<Mutex<Desired>>,
    report: DriftReport,
    watcher: notify::RecommendedWatcher,
    /// Watched folders and the inode each had when watched.
    watched: BTreeMap<PathBuf, u64>,
    watching: bool,
}

fn lock(mutex: &Mutex<Desired>) -> std::sync::MutexGuard<'_, Desired> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn vendor_id(vendor: Vendor) -> String {
    serde_json::to_value(vendor).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// `path` (absolute system path) under `root`.
pub fn located(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// How `status` reports one managed file at `location`.
pub fn file_state(file: &ManagedFile, location: &Path, matches: bool) -> ManagedFileState {
    ManagedFileState {
        vendor: vendor_id(file.vendor),
        path: file.path.to_owned(),
        location: location.display().to_string(),
        ownership: match file.ownership {
            Ownership::DropIn => "drop-in".into(),
            Ownership::Owned => "owned".into(),
        },
        matches,
        controls: file
            .applies
            .iter()
            .map(|a| AppliedControl { tool: a.tool.clone(), control: a.control.clone() })
            .collect(),
    }
}

impl Keeper {
    /// Writes the files `policy` and the guardrails of `exceptions` need (undoing what an
    /// earlier run held that it no longer needs) and starts keeping them; `report` hears of
    /// every drift.
    pub fn start(
        options: ControlsOptions,
        policy: &Policy,
        exceptions: &[Exception],
        report: DriftReport,
    ) -> Result<Keeper, ControlsError> {
        let folder = options.state_dir.join("controls");
        let backups = folder.join("backup");
        std::fs::create_dir_all(&backups).map_err(|source| ControlsError::Io { path: backups.clone(), source })?;
        let held_file = folder.join("held.json");
        let held: Held =
            std::fs::read_to_string(&held_file).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
        let (sender, receiver) = mpsc::channel();
        let events = sender.clone();
        let watcher = notify::recommended_watcher(move |_: notify::Result<notify::Event>| {
            let _ = events.send(Message::Changed);
        })?;
        let shared = Arc::new(Mutex::new(Desired::default()));
        let mut worker = Worker {
            policy: policy.clone(),
            catalog: policy.catalog(),
            exceptions: exceptions.to_vec(),
            root: options.root.clone(),
            held_file,
            backups,
            held,
            shared: shared.clone(),
            report,
            watcher,
            watched: BTreeMap::new(),
            watching: options.watch,
        };
        worker.render();
        worker.check(false, &BTreeSet::new());
        let thread = std::thread::Builder::new()
            .name("warden-controls".into())
            .spawn(move || worker.run(receiver))
            .map_err(|source| ControlsError::Io { path: options.root.clone(), source })?;
        Ok(Keeper { sender, shared, root: options.root, thread: Some(thread) })
    }

    /// Rewrites every file for `policy` (a policy change), without waiting.
    pub fn apply(&self, policy: &Policy) {
        let _ = self.sender.send(Message::Apply(Box::new(policy.clone()), None));
    }

    /// The device's approved exceptions changed: their guardrails are written (or removed)
    /// without waiting.
    pub fn set_exceptions(&self, exceptions: Vec<Exception>) {
        let _ = self.sender.send(Message::Exceptions(exceptions));
    }

    /// [`Keeper::apply`], returning once every file is written.
    pub fn apply_and_wait(&self, policy: &Policy) {
        let (done, wait) = mpsc::channel();
        if self.sender.send(Message::Apply(Box::new(policy.clone()), Some(done))).is_ok() {
            let _ = wait.recv_timeout(Duration::from_secs(10));
        }
    }

    /// Every file the policy in force needs, and whether it matches on disk now.
    pub fn status(&self) -> Vec<ManagedFileState> {
        let desired = lock(&self.shared);
        desired
            .files
            .values()
            .map(|file| {
                let location = located(&self.root, file.path);
                let matches = std::fs::read(&location).is_ok_and(|bytes| bytes == file.content.as_bytes());
                file_state(file, &location, matches)
            })
            .collect()
    }

    /// Stops keeping the files (they stay as written).
    pub fn stop(&mut self) {
        let _ = self.sender.send(Message::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Worker {
    fn run(mut self, receiver: mpsc::Receiver<Message>) {
        loop {
            let mut batch = match receiver.recv_timeout(SAFETY_CHECK) {
                Ok(message) => vec![message],
                Err(mpsc::RecvTimeoutError::Timeout) => Vec::new(),
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            // A burst (a rename is several events, `rm -r` one per entry): settle first, unless
            // a policy change is waiting to be written at once.
            if matches!(batch.first(), Some(Message::Changed)) {
                std::thread::sleep(SETTLE);
            }
            batch.extend(receiver.try_iter());
            let mut applied = false;
            let mut waiting = Vec::new();
            for message in batch {
                match message {
                    Message::Stop => return,
                    Message::Apply(policy, done) => {
                        self.catalog = policy.catalog();
                        self.policy = *policy;
                        applied = true;
                        waiting.extend(done);
                    }
                    Message::Exceptions(exceptions) => self.exceptions = exceptions,
                    Message::Changed => {}
                }
            }
            // Rendered again on every wake-up: an exception's guardrails go when it ends. What
            // the policy or an exception changed is that change, not drift.
            let renewed = self.render();
            self.check(!applied, &renewed);
            for done in waiting {
                let _ = done.send(());
            }
        }
    }

    /// Renders the files for now; returns the paths whose content changed since the last time.
    fn render(&mut self) -> BTreeSet<&'static str> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let files: BTreeMap<&'static str, ManagedFile> =
            render_controls(&self.policy, &self.catalog, &self.exceptions, now)
                .into_iter()
                .map(|f| (f.path, f))
                .collect();
        let mut shared = lock(&self.shared);
        let renewed = MANAGED_PATHS
            .iter()
            .map(|(_, path, _)| *path)
            .filter(|path| shared.files.get(path).map(|f| &f.content) != files.get(path).map(|f| &f.content))
            .collect();
        shared.files = files;
        renewed
    }

    /// Makes every managed path what the policy says; reports drift when `report_drift`, except
    /// for the `renewed` paths (their desired content just changed).
    fn check(&mut self, report_drift: bool, renewed: &BTreeSet<&'static str>) {
        let desired: BTreeMap<&'static str, ManagedFile> = lock(&self.shared).files.clone();
        let held_before = self.held.clone();
        for (vendor, path, ownership) in MANAGED_PATHS {
            let location = located(&self.root, path);
            match desired.get(path) {
                Some(file) => {
                    let current = std::fs::read(&location).ok();
                    if current.as_deref() == Some(file.content.as_bytes()) {
                        self.held.entry((*path).to_owned()).or_insert(false);
                        continue;
                    }
                    let holding = self.held.contains_key(*path);
                    if !holding {
                        // First taken: keep the admin's own file (owned paths only).
                        let backup = *ownership == Ownership::Owned && current.is_some();
                        if backup && let Err(error) = std::fs::copy(&location, self.backup_of(path)) {
                            eprintln!("wardend: not taking {path}: keeping its copy failed: {error}");
                            continue;
                        }
                        self.held.insert((*path).to_owned(), backup);
                    }
                    let result = write_atomic(&location, file.content.as_bytes());
                    if holding && report_drift && !renewed.contains(path) {
                        let change = if current.is_some() { DriftChange::Changed } else { DriftChange::Removed };
                        let detail = match (&result, change) {
                            (Err(error), _) => format!("restoring failed: {error}"),
                            (Ok(()), DriftChange::Removed) => "the file was gone".to_owned(),
                            (Ok(()), DriftChange::Changed) => "its content differed from the policy".to_owned(),
                        };
                        (self.report)(ControlDriftEvent {
                            id: warden_agent::new_event_id(),
                            at_ms: now_ms(),
                            path: (*path).to_owned(),
                            vendor: vendor_id(*vendor),
                            change,
                            restored: result.is_ok(),
                            detail,
                        });
                    } else if let Err(error) = result {
                        eprintln!("wardend: writing {}: {error}", location.display());
                    }
                }
                None => {
                    let Some(backup) = self.held.remove(*path) else { continue };
                    let result = if backup {
                        let saved = self.backup_of(path);
                        std::fs::read(&saved)
                            .and_then(|bytes| write_atomic(&location, &bytes))
                            .and_then(|()| std::fs::remove_file(&saved))
                    } else {
                        match std::fs::remove_file(&location) {
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                            other => other,
                        }
                    };
                    if let Err(error) = result {
                        eprintln!("wardend: undoing {}: {error}", location.display());
                    }
                }
            }
        }
        if self.held != held_before {
            let text = serde_json::to_string_pretty(&self.held).expect("maps serialize");
            if let Err(error) = write_private(&self.held_file, text.as_bytes()) {
                eprintln!("wardend: recording the managed files: {error}");
            }
        }
        self.watch(&desired);
    }

    fn backup_of(&self, path: &str) -> PathBuf {
        self.backups.join(path.trim_start_matches('/').replace('/', "%2F"))
    }

    /// Watches every existing folder from each file's parent up to the root (a new inode at a
    /// watched path — a folder removed and made again — is watched anew).
    fn watch(&mut self, desired: &BTreeMap<&'static str, ManagedFile>) {
        if !self.watching {
            return;
        }
        let mut wanted = BTreeSet::new();
        for path in desired.keys() {
            let mut folder = located(&self.root, path).parent().map(Path::to_path_buf);
            while let Some(dir) = folder {
                wanted.insert(dir.clone());
                if dir == self.root || !dir.starts_with(&self.root) {
                    break;
                }
                folder = dir.parent().map(Path::to_path_buf);
            }
        }
        let stale: Vec<PathBuf> = self
            .watched
            .iter()
            .filter(|(dir, inode)| {
                !wanted.contains(*dir) || std::fs::metadata(dir).map(|m| m.ino()).ok() != Some(**inode)
            })
            .map(|(dir, _)| dir.clone())
            .collect();
        for dir in stale {
            let _ = self.watcher.unwatch(&dir);
            self.watched.remove(&dir);
        }
        for dir in wanted {
            if self.watched.contains_key(&dir) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&dir) else { continue };
            if meta.is_dir() && self.watcher.watch(&dir, RecursiveMode::NonRecursive).is_ok() {
                self.watched.insert(dir, meta.ino());
            }
        }
    }
}

/// Writes `bytes` to `path` atomically, readable by everyone (0644), folders made 0755.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let folder = path.parent().ok_or_else(|| std::io::Error::other("no parent folder"))?;
    make_folders(folder)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = folder.join(format!(".{name}.warden-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        std::fs::File::open(folder)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

/// Creates `folder` and any missing folder above it, each 0755 whatever the umask (the
/// service's is 077; `DirBuilder::mode` is masked by it, so the mode is set afterwards).
fn make_folders(folder: &Path) -> std::io::Result<()> {
    if folder.is_dir() {
        return Ok(());
    }
    if let Some(parent) = folder.parent() {
        make_folders(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o755).create(folder) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        other => other?,
    }
    std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o755))
}

/// Writes a root-only file atomically (the keeper's own records).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}
