//! A blocked launch is told at the terminal it was started from: a real pseudo-terminal
//! (`openpty`), a fake Claude Code started on it, the real watcher on the process connector
//! (which kills it), and the message read back from the terminal's master side.
//!
//! Runs in the `process-monitor` nextest group: the watcher here enforces.
#![cfg(target_os = "linux")]

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};
use warden_monitor::source::{EventSource, ProcConnector};
use warden_monitor::terminal::blocked_message;
use warden_monitor::{Decider, Launch, Watcher};
use warden_policy::Policy;

/// A fake Claude Code at its native installer's path (by path, never by fingerprint).
fn fake_claude(home: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/monitor/fake_tool.c");
    let target = home.join(".local/share/claude/versions/2.1.37");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    assert!(Command::new("cc").arg("-O1").arg("-o").arg(&target).arg(source).status().unwrap().success());
    target
}

/// The watcher on the process connector, on a thread, under the embedded policy.
struct Watching {
    stop: Arc<AtomicBool>,
    launches: Receiver<Launch>,
}

impl Watching {
    fn start() -> Watching {
        let mut source = warden_monitor::source::open_connector().expect("the process connector");
        let decider = Arc::new(Decider::new(Policy::embedded(), None, Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (sender, launches) = channel();
        let flag = stop.clone();
        std::thread::spawn(move || {
            let mut watcher = Watcher::new(decider);
            let mut notices = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let _ = <ProcConnector as EventSource>::wait(&mut source, Duration::from_millis(50), &mut notices);
                for notice in notices.drain(..) {
                    if let Some(launch) = watcher.handle(notice, "proc-connector") {
                        let _ = sender.send(launch);
                    }
                }
            }
        });
        Watching { stop, launches }
    }

    fn launch_of(&self, pid: u32) -> Launch {
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.launches.recv_timeout(left) {
                Ok(launch) if launch.facts.pid == Some(pid) => return launch,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("no launch for {pid}");
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Everything the terminal's master side shows within `within`.
fn read_master(master: &OwnedFd, within: Duration) -> String {
    let mut file = std::fs::File::from(master.try_clone().unwrap());
    let mut text = Vec::new();
    let deadline = Instant::now() + within;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let mut fds = [nix::poll::PollFd::new(master.as_fd(), nix::poll::PollFlags::POLLIN)];
        let millis = nix::poll::PollTimeout::try_from(left.as_millis().min(1000) as i32).unwrap();
        if nix::poll::poll(&mut fds, millis).unwrap() == 0 {
            continue;
        }
        let mut buffer = [0u8; 4096];
        match file.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.extend_from_slice(&buffer[..n]),
        }
        if String::from_utf8_lossy(&text).contains("instead") {
            break;
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

#[test]
fn the_terminal_on_stderr_gets_the_reason_and_the_sanctioned_assistant() {
    let home = tempfile::tempdir().unwrap();
    let claude = fake_claude(home.path());
    let pty = nix::pty::openpty(None, None).unwrap();
    let watching = Watching::start();

    let mut tool = Command::new(&claude)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(pty.slave.try_clone().unwrap()))
        .spawn()
        .unwrap();
    let launch = watching.launch_of(tool.id());
    assert_eq!(launch.outcome, warden_api::Outcome::Killed);
    tool.wait().unwrap();
    let terminal = launch.terminal.as_ref().expect("the terminal was found before the kill");
    assert_eq!(terminal.found_at, format!("/proc/{}/fd/2", tool.id()));
    terminal.tell(&blocked_message(&launch.verdict)).unwrap();

    let shown = read_master(&pty.master, Duration::from_secs(3));
    assert!(shown.contains("warden: Claude Code was stopped: "), "{shown:?}");
    assert!(shown.contains(&launch.verdict.reason), "{shown:?}");
    assert!(shown.contains("use Internal Assistant instead: qwen (https://assistant.internal.example/)"), "{shown:?}");
}

#[test]
fn without_a_terminal_on_stderr_the_controlling_terminal_is_used_and_a_pipe_never() {
    let home = tempfile::tempdir().unwrap();
    let claude = fake_claude(home.path());
    let pty = nix::pty::openpty(None, None).unwrap();
    let name = nix::unistd::ttyname(&pty.slave).unwrap();
    let path = std::ffi::CString::new(name.to_string_lossy().as_bytes()).unwrap();
    let watching = Watching::start();

    // A session of its own whose controlling terminal is the pty, every descriptor elsewhere.
    let mut command = Command::new(&claude);
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: between fork and exec only async-signal-safe calls are made (setsid, open,
    // close) on a path prepared before the fork.
    unsafe {
        command.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // A session leader without a terminal acquires the first one it opens.
            let fd = libc::open(path.as_ptr(), libc::O_RDWR);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(fd);
            Ok(())
        });
    }
    let mut tool = command.spawn().unwrap();
    let launch = watching.launch_of(tool.id());
    tool.wait().unwrap();
    let terminal = launch.terminal.as_ref().expect("the controlling terminal was found");
    assert_eq!(Path::new(&terminal.found_at), name, "by its name: nothing of the tool's points at it");
    terminal.tell(&blocked_message(&launch.verdict)).unwrap();
    let shown = read_master(&pty.master, Duration::from_secs(3));
    assert!(shown.contains("Claude Code was stopped"), "{shown:?}");

    // Its own session, no terminal at all, stderr a pipe: nothing is found, nothing written.
    let mut command = Command::new(&claude);
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        command.pre_exec(|| if libc::setsid() < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) });
    }
    let mut tool = command.spawn().unwrap();
    let launch = watching.launch_of(tool.id());
    tool.wait().unwrap();
    assert!(launch.terminal.is_none(), "{:?}", launch.terminal);
}

/// `sleep 30` as `nobody` (uid 65534) with `script` run first by its shell, every descriptor
/// but the ones given closed; killed by pid on drop.
struct Nobody(std::process::Child);

impl Nobody {
    fn start(script: &str, stderr: Stdio) -> Nobody {
        let child = Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups", "--", "sh", "-c"])
            .arg(format!("{script}; exec sleep 30"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        // Until the shell has exec'd `sleep` (its redirections done).
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(format!("/proc/{}/comm", child.id())).unwrap_or_default().trim() != "sleep" {
            assert!(Instant::now() < deadline, "setpriv … sleep did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        Nobody(child)
    }
}

impl Drop for Nobody {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn as_root_only_a_terminal_that_is_the_launchs_own_is_opened() {
    use std::os::unix::fs::PermissionsExt;
    // These tests run as root, like the service: the launch is someone else's (nobody).
    let pty = nix::pty::openpty(None, None).unwrap();
    let name = nix::unistd::ttyname(&pty.slave).unwrap();

    // A terminal that is root's, handed down to the user's process: not theirs, not opened.
    let process = Nobody::start("true", Stdio::from(pty.slave.try_clone().unwrap()));
    assert!(warden_monitor::terminal::Terminal::of(process.0.id()).is_none(), "root's terminal was used");
    // The same terminal once it belongs to them (as a terminal they logged in on does): used.
    nix::unistd::chown(&name, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let terminal = warden_monitor::terminal::Terminal::of(process.0.id()).expect("their own terminal");
    terminal.tell("warden: test line, instead\n").unwrap();
    assert!(read_master(&pty.master, Duration::from_secs(3)).contains("test line"));
    drop(process);

    // Stderr pointed at a file only root may write (opened read-only, as anyone can):
    // never opened for writing, the file stays as it was.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let precious = dir.path().join("precious");
    std::fs::write(&precious, "root's\n").unwrap();
    std::fs::set_permissions(&precious, std::fs::Permissions::from_mode(0o644)).unwrap();
    let process = Nobody::start(&format!("exec 2<{}", precious.display()), Stdio::null());
    assert!(warden_monitor::terminal::Terminal::of(process.0.id()).is_none());
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "root's\n");
}
