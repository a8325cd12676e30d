//! The polling fallback: `sysinfo` with the minimal refresh kind (executable and command
//! line only, no threads), diffed against the previous round.
//!
//! A process that execs again keeps its pid, so "new pid" is not enough: the executable
//! and command line are re-read every round (`UpdateKind::Always`) and a change counts as
//! a new program start. That is the stale-facts trap the event-driven sources don't have.

use super::{EventSource, ExecNotice, SourceError};
use crate::facts::{MAX_ANCESTORS, UserNames, resolve_script};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};
use warden_policy::{AncestorFacts, ProcessFacts};

const NAME: &str = "poll";

/// What identifies one program image of one process between rounds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    start_time: u64,
    exe: Option<std::path::PathBuf>,
    cmd: Vec<std::ffi::OsString>,
}

/// A `sysinfo` poller.
#[derive(Debug)]
pub struct Poller {
    system: System,
    interval: Duration,
    next_round: Instant,
    seen: HashMap<Pid, Seen>,
    users: UserNames,
}

fn refresh_kind() -> ProcessRefreshKind {
    ProcessRefreshKind::nothing().without_tasks().with_exe(UpdateKind::Always).with_cmd(UpdateKind::Always)
}

impl Poller {
    /// A poller with the given period. Processes running now are the baseline: they are
    /// not reported as starts.
    pub fn new(interval: Duration) -> Result<Poller, SourceError> {
        let system = System::new()
            .map_err(|e| SourceError::Unavailable { source_name: NAME, message: format!("sysinfo: {e}") })?;
        let mut poller = Poller {
            system,
            interval,
            next_round: Instant::now() + interval,
            seen: HashMap::new(),
            users: UserNames::default(),
        };
        poller.round(&mut Vec::new(), false);
        Ok(poller)
    }

    fn round(&mut self, out: &mut Vec<ExecNotice>, report: bool) {
        self.system.refresh_processes_specifics(ProcessesToUpdate::All, true, refresh_kind());
        let mut current = HashMap::with_capacity(self.system.processes().len());
        let mut started = Vec::new();
        for (pid, process) in self.system.processes() {
            let seen = Seen {
                start_time: process.start_time(),
                exe: process.exe().map(Into::into),
                cmd: process.cmd().to_vec(),
            };
            let changed = self.seen.get(pid) != Some(&seen);
            if report && changed && (seen.exe.is_some() || !seen.cmd.is_empty()) {
                started.push(*pid);
            }
            current.insert(*pid, seen);
        }
        self.seen = current;
        for pid in started {
            let facts = self.facts_of(pid);
            out.push(ExecNotice { pid: pid.as_u32(), kernel_ns: None, facts: Some(facts) });
        }
    }

    fn facts_of(&mut self, pid: Pid) -> ProcessFacts {
        let Some(process) = self.system.process(pid) else {
            return ProcessFacts::default();
        };
        let exe = process.exe().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
        let argv: Vec<String> = process.cmd().iter().map(|a| a.to_string_lossy().into_owned()).collect();
        // cwd and user are read for launches only, not for every process every round.
        let cwd = current_dir(pid);
        let user = process_uid(process).and_then(|uid| self.users.name(uid));
        let script = resolve_script(&exe, &argv, cwd.as_deref());
        let mut ancestors = Vec::new();
        let mut parent = process.parent();
        while let Some(ppid) = parent.filter(|p| p.as_u32() > 1) {
            let Some(ancestor) = self.system.process(ppid) else { break };
            let exe = ancestor.exe().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
            let argv: Vec<String> = ancestor.cmd().iter().map(|a| a.to_string_lossy().into_owned()).collect();
            let script = resolve_script(&exe, &argv, current_dir(ppid).as_deref());
            ancestors.push(AncestorFacts { pid: Some(ppid.as_u32()), exe, argv, script });
            if ancestors.len() == MAX_ANCESTORS {
                break;
            }
            parent = ancestor.parent();
        }
        ProcessFacts {
            pid: Some(pid.as_u32()),
            exe,
            argv,
            env: env_markers(pid.as_u32()),
            cwd,
            user,
            script,
            ancestors,
            settings_files: Vec::new(),
        }
    }
}

#[cfg(target_os = "linux")]
fn current_dir(pid: Pid) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/cwd")).ok().map(|p| p.to_string_lossy().into_owned())
}

#[cfg(not(target_os = "linux"))]
fn current_dir(pid: Pid) -> Option<String> {
    let mut system = System::new().ok()?;
    let kind = ProcessRefreshKind::nothing().without_tasks().with_cwd(UpdateKind::Always);
    system.refresh_processes_specifics(ProcessesToUpdate::Some(&[pid]), false, kind);
    system.process(pid)?.cwd().map(|p| p.to_string_lossy().into_owned())
}

#[cfg(target_os = "linux")]
fn process_uid(process: &sysinfo::Process) -> Option<u32> {
    crate::facts::uid(process.pid().as_u32()).ok()
}

#[cfg(not(target_os = "linux"))]
fn process_uid(_process: &sysinfo::Process) -> Option<u32> {
    None
}

#[cfg(target_os = "linux")]
fn env_markers(pid: u32) -> std::collections::BTreeMap<String, String> {
    crate::facts::env_markers(pid)
}

#[cfg(not(target_os = "linux"))]
fn env_markers(_pid: u32) -> std::collections::BTreeMap<String, String> {
    std::collections::BTreeMap::new()
}

impl EventSource for Poller {
    fn name(&self) -> &'static str {
        NAME
    }

    fn wait(&mut self, timeout: Duration, out: &mut Vec<ExecNotice>) -> Result<(), SourceError> {
        let now = Instant::now();
        if now < self.next_round {
            let pause = (self.next_round - now).min(timeout);
            std::thread::sleep(pause);
            if Instant::now() < self.next_round {
                return Ok(());
            }
        }
        self.round(out, true);
        // Keep a steady rhythm even when a round is slow, without bunching up rounds.
        self.next_round = (self.next_round + self.interval).max(Instant::now());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_that_execs_again_is_a_new_start() {
        // `sh` is seen first, then it becomes `sleep` under the same pid.
        let mut child = std::process::Command::new("/bin/sh").args(["-c", "sleep 0.6; exec sleep 2"]).spawn().unwrap();
        let pid = child.id();
        let mut poller = Poller::new(Duration::from_millis(100)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut notices = Vec::new();
        while Instant::now() < deadline {
            poller.wait(Duration::from_millis(100), &mut notices).unwrap();
            let became_sleep = notices.iter().any(|n| {
                n.pid == pid && n.facts.as_ref().is_some_and(|f| f.argv == ["sleep", "2"] && f.exe.ends_with("sleep"))
            });
            if became_sleep {
                break;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let facts: Vec<_> = notices.iter().filter(|n| n.pid == pid).filter_map(|n| n.facts.as_ref()).collect();
        assert!(facts.iter().any(|f| f.argv == ["sleep", "2"]), "the exec in the same pid was reported: {facts:?}");
        let last = facts.last().unwrap();
        assert_eq!(last.ancestors.first().and_then(|a| a.pid), Some(std::process::id()));
    }
}
