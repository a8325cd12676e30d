//! Program files too large for the hot path ([`crate::watcher::HOT_PATH_CONTENT_LIMIT`]), read on
//! a worker thread of their own, so the watcher's one decision thread never waits for a 400 MB
//! read while execs queue behind it. A launch whose file turns out to be a tool is decided again
//! when the answer comes (and killed then, if the policy blocks it); the answer is cached, so the
//! next exec of the same file is decided on the hot path. Launches are not frozen while their
//! file is read: stopping arbitrary large programs (browsers, compilers) for a second breaks
//! shells' job control and costs every developer on every new build.

use crate::identity::{ContentIdentity, FileKey};
use crate::watcher::Rules;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use warden_policy::ContentFacts;

/// At most this many distinct files wait to be read; beyond it new ones are judged by path only
/// (and counted), so a flood of fresh large binaries cannot grow the queue without bound.
const PENDING_LIMIT: usize = 256;

/// A launch waiting for its file: pid and start time (ticks), against pid reuse.
pub(crate) type Waiting = (u32, Option<u64>);

struct Job {
    key: FileKey,
    file: std::fs::File,
    rules: Arc<Rules>,
}

/// One file read to its end.
pub(crate) struct Done {
    pub key: FileKey,
    pub generation: u64,
    pub content: Option<ContentFacts>,
    pub rules: Arc<Rules>,
    pub waiting: Vec<Waiting>,
}

/// The worker and what waits for it.
pub(crate) struct LateReader {
    jobs: Sender<Job>,
    results: Receiver<(FileKey, u64, Option<ContentFacts>, Arc<Rules>)>,
    pending: HashMap<FileKey, Vec<Waiting>>,
    /// Files not queued because [`PENDING_LIMIT`] were waiting.
    pub skipped: u64,
}

impl std::fmt::Debug for LateReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LateReader").field("pending", &self.pending.len()).field("skipped", &self.skipped).finish()
    }
}

/// Gives the calling thread the lowest CPU priority (nice 19): a first read of a large program
/// file takes a core for up to a second or two, which must not come out of a developer's build
/// or the decisions of the hot path. Best effort: a refusal leaves the priority as it was.
fn lowest_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its three integer arguments; on Linux, PRIO_PROCESS with
    // `who == 0` sets the calling thread's nice value (nice is a per-thread attribute there, see
    // setpriority(2), NOTES) and touches no memory of this process.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
    }
}

impl LateReader {
    /// Starts the worker thread (`warden-late-read`); it ends when the reader is dropped, after
    /// the file it is reading.
    pub fn start() -> LateReader {
        let (jobs, queue) = channel::<Job>();
        let (answers, results) = channel();
        let spawned = std::thread::Builder::new().name("warden-late-read".into()).spawn(move || {
            lowest_priority();
            // No size limit: this thread exists to read what the hot path may not.
            let mut identity = ContentIdentity::default();
            for job in queue {
                let content = identity.identify_file(job.file, job.rules.catalog.content(), job.rules.generation);
                if answers.send((job.key, job.rules.generation, content, job.rules)).is_err() {
                    return;
                }
            }
        });
        if let Err(error) = spawned {
            // Without the worker every large file stays judged by path, as before it existed.
            eprintln!("warden: warning: no worker for large program files: {error}");
        }
        LateReader { jobs, results, pending: HashMap::new(), skipped: 0 }
    }

    /// Queues `file` (open, so the process may exit or the path change meanwhile) for the launch
    /// `waiting`; a file already queued only gains the launch.
    pub fn submit(&mut self, key: FileKey, file: std::fs::File, rules: Arc<Rules>, waiting: Waiting) {
        if let Some(launches) = self.pending.get_mut(&key) {
            launches.push(waiting);
            return;
        }
        if self.pending.len() >= PENDING_LIMIT {
            self.skipped += 1;
            return;
        }
        if self.jobs.send(Job { key, file, rules }).is_ok() {
            self.pending.insert(key, vec![waiting]);
        }
    }

    /// The files read since the last call, each with the launches that waited for it.
    pub fn finished(&mut self) -> Vec<Done> {
        let mut done = Vec::new();
        while let Ok((key, generation, content, rules)) = self.results.try_recv() {
            let waiting = self.pending.remove(&key).unwrap_or_default();
            done.push(Done { key, generation, content, rules, waiting });
        }
        done
    }
}
