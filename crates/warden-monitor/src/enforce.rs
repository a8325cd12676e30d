//! Stopping a launch: the whole process tree attributed to it, as fast as possible.
//!
//! The tree is frozen first (SIGSTOP, root first, then each newly found child), so nothing
//! in it can fork or exec while the rest is found; then everything gets SIGKILL. Only
//! processes this agent may signal are touched: as a user, the user's own.

use serde::Serialize;

/// What happened when a launch was stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "result")]
pub enum KillReport {
    /// The root and these descendants were killed (root first).
    Killed { pids: Vec<u32>, not_permitted: Vec<u32> },
    /// The root belongs to another user; nothing was signalled.
    NotPermitted,
    /// The root had already exited (or its pid now names another process).
    Exited,
}

#[cfg(target_os = "linux")]
pub use linux::{kill_tree, process_tree};

#[cfg(target_os = "linux")]
mod linux {
    use super::KillReport;
    use crate::facts;
    use nix::errno::Errno;
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    use std::collections::{HashMap, HashSet};

    /// Children of `pid`, from `/proc/PID/task/*/children` (every thread can be a parent).
    fn children(pid: u32) -> Option<Vec<u32>> {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
        let mut found = Vec::new();
        for task in tasks.flatten() {
            let text = std::fs::read_to_string(task.path().join("children")).ok()?;
            found.extend(text.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
        Some(found)
    }

    /// Children by scanning every process's parent (for kernels without `children`).
    fn children_by_scan(cache: &mut Option<HashMap<u32, Vec<u32>>>, pid: u32) -> Vec<u32> {
        let map = cache.get_or_insert_with(|| {
            let mut map: HashMap<u32, Vec<u32>> = HashMap::new();
            for candidate in facts::all_pids() {
                if let Ok(stat) = facts::stat(candidate) {
                    map.entry(stat.ppid).or_default().push(candidate);
                }
            }
            map
        });
        map.get(&pid).cloned().unwrap_or_default()
    }

    /// `root` and every process below it now, parents before children (a snapshot of
    /// `/proc`: the network layer opens an exception's launch tree with it, and the kernel's fork
    /// hook follows the processes started afterwards).
    pub fn process_tree(root: u32) -> Vec<u32> {
        let mut tree = vec![root];
        let mut known: HashSet<u32> = HashSet::from([root]);
        let mut scan_cache = None;
        let mut next = 0;
        while next < tree.len() {
            let pid = tree[next];
            next += 1;
            for child in children(pid).unwrap_or_else(|| children_by_scan(&mut scan_cache, pid)) {
                if known.insert(child) {
                    tree.push(child);
                }
            }
        }
        tree
    }

    /// Freezes and kills `root` and all its descendants. `root_start` (start time in
    /// ticks) guards against a reused pid: if it no longer matches, nothing is signalled.
    pub fn kill_tree(root: u32, root_start: Option<u64>) -> KillReport {
        let Ok(stat) = facts::stat(root) else { return KillReport::Exited };
        if root_start.is_some_and(|start| start != stat.start_ticks) {
            return KillReport::Exited;
        }
        let me = nix::unistd::geteuid();
        if !me.is_root() && facts::uid(root).is_ok_and(|uid| uid != me.as_raw()) {
            return KillReport::NotPermitted;
        }
        match kill(Pid::from_raw(root as i32), Signal::SIGSTOP) {
            Ok(()) => {}
            Err(Errno::ESRCH) => return KillReport::Exited,
            Err(Errno::EPERM) => return KillReport::NotPermitted,
            Err(_) => return KillReport::Exited,
        }
        let mut tree = vec![root];
        let mut known: HashSet<u32> = HashSet::from([root]);
        let mut not_permitted = Vec::new();
        let mut scan_cache = None;
        let mut next = 0;
        while next < tree.len() {
            let pid = tree[next];
            next += 1;
            let kids = children(pid).unwrap_or_else(|| children_by_scan(&mut scan_cache, pid));
            for child in kids {
                if !known.insert(child) {
                    continue;
                }
                match kill(Pid::from_raw(child as i32), Signal::SIGSTOP) {
                    Ok(()) => tree.push(child),
                    Err(Errno::EPERM) => not_permitted.push(child),
                    Err(_) => {} // exited meanwhile
                }
            }
        }
        let mut killed = Vec::with_capacity(tree.len());
        for pid in tree {
            if kill(Pid::from_raw(pid as i32), Signal::SIGKILL).is_ok() {
                killed.push(pid);
            }
        }
        if killed.is_empty() {
            return KillReport::Exited;
        }
        KillReport::Killed { pids: killed, not_permitted }
    }
}

/// Kills `root` and its descendants with `sysinfo` (macOS, Windows): no freezing there,
/// so children are killed before parents to keep them from being re-parented unseen.
#[cfg(not(target_os = "linux"))]
pub fn kill_tree(root: u32, _root_start: Option<u64>) -> KillReport {
    use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, Signal, System};
    let Ok(mut system) = System::new() else { return KillReport::Exited };
    system.refresh_processes_specifics(ProcessesToUpdate::All, true, ProcessRefreshKind::nothing().without_tasks());
    let root_pid = Pid::from_u32(root);
    if system.process(root_pid).is_none() {
        return KillReport::Exited;
    }
    let mut tree = vec![root_pid];
    let mut next = 0;
    while next < tree.len() {
        let parent = tree[next];
        next += 1;
        for (pid, process) in system.processes() {
            if process.parent() == Some(parent) && !tree.contains(pid) {
                tree.push(*pid);
            }
        }
    }
    let mut killed = Vec::new();
    let mut not_permitted = Vec::new();
    for pid in tree.iter().rev() {
        match system.process(*pid).and_then(|p| p.kill_with(Signal::Kill)) {
            Some(true) => killed.push(pid.as_u32()),
            _ => not_permitted.push(pid.as_u32()),
        }
    }
    if killed.is_empty() {
        return if not_permitted.contains(&root) { KillReport::NotPermitted } else { KillReport::Exited };
    }
    killed.reverse();
    KillReport::Killed { pids: killed, not_permitted }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::time::Duration;

    #[test]
    fn kills_a_tree_and_leaves_the_rest_alone() {
        // sh → (sleep, sh → sleep): three levels, plus an unrelated sleep.
        let mut root = std::process::Command::new("/bin/sh")
            .args(["-c", "sleep 30 & sh -c 'sleep 30 & wait' & wait"])
            .spawn()
            .unwrap();
        let mut bystander = std::process::Command::new("/bin/sleep").arg("30").spawn().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let report = kill_tree(root.id(), None);
        let KillReport::Killed { pids, not_permitted } = &report else { panic!("{report:?}") };
        assert_eq!(pids[0], root.id());
        assert!(pids.len() >= 4, "root, two sleeps and the inner shell: {pids:?}");
        assert!(not_permitted.is_empty());
        assert_eq!(root.wait().unwrap().signal(), Some(9));
        for pid in &pids[1..] {
            // Zombies of killed children are reaped by init once their parent is gone.
            let deadline = std::time::Instant::now() + Duration::from_secs(2);
            while alive(*pid) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            assert!(!alive(*pid), "descendant {pid} is gone");
        }
        assert!(bystander.try_wait().unwrap().is_none(), "the unrelated process still runs");
        bystander.kill().unwrap();
        bystander.wait().unwrap();
        assert_eq!(kill_tree(root.id(), None), KillReport::Exited);
    }

    /// Running (not gone, not a zombie waiting for its reaper).
    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|text| text.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
    }

    #[test]
    fn a_reused_pid_is_not_killed() {
        let mut child = std::process::Command::new("/bin/sleep").arg("30").spawn().unwrap();
        let start = crate::facts::stat(child.id()).unwrap().start_ticks;
        assert_eq!(kill_tree(child.id(), Some(start + 1)), KillReport::Exited);
        assert!(child.try_wait().unwrap().is_none());
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
