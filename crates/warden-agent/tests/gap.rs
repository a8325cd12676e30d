//! Gaps in what the agent saw, made for real: the agent runs as a child process
//! (`agent-run`), the test stops it with SIGSTOP, floods the kernel's exec notices until its
//! queue overflows, starts a fake tool whose own notice is dropped, and continues it. The
//! rescan after the gap must find the tool and kill it.
//!
//! Runs in the `process-monitor` nextest group: an enforcing agent governs every process.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

const AGENT: &str = env!("CARGO_BIN_EXE_agent-run");

/// Compiles a C fixture into cargo's scratch folder for integration tests (under a private
/// name, renamed into place, so parallel builds never see half a file).
fn compile(source: &Path, name: &str, flags: &[&str]) -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let private = out.with_extension(std::process::id().to_string());
    let status = Command::new("cc").args(flags).arg("-o").arg(&private).arg(source).status().unwrap();
    assert!(status.success(), "compiling {}", source.display());
    std::fs::rename(&private, &out).unwrap();
    out
}

/// A fake Claude Code at its native installer's path (made by path, never by fingerprint).
fn fake_claude(home: &Path) -> PathBuf {
    let built = compile(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/monitor/fake_tool.c"),
        "fake_tool",
        &["-O1"],
    );
    let target = home.join(".local/share/claude/versions/2.1.37");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::copy(built, &target).unwrap();
    target
}

/// The agent as a child process, its JSON lines read on a thread.
struct Agent {
    child: Child,
    lines: Receiver<Value>,
    /// Lines read while waiting for another: the agent's launch events and notices travel on
    /// separate paths, so a rescan's notice may come before the launch it found.
    backlog: Vec<Value>,
}

impl Agent {
    fn start(state: &Path) -> Agent {
        let mut child = Command::new(AGENT)
            .arg("--state-dir")
            .arg(state)
            .args(["--source", "proc-connector", "--no-sweep"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = sender.send(serde_json::from_str(&line).unwrap_or(Value::String(line)));
            }
        });
        let mut agent = Agent { child, lines, backlog: Vec::new() };
        agent.expect("ready", |line| line["kind"] == "ready");
        agent
    }

    /// The first line, already read or still to come, that `wanted` accepts (the others are kept).
    fn expect(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        if let Some(index) = self.backlog.iter().position(&wanted) {
            return self.backlog.remove(index);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if wanted(&line) => return line,
                Ok(line) => self.backlog.push(line),
                Err(_) => break,
            }
        }
        panic!("no {what} from the agent; it said: {:#?}", self.backlog);
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success(), "kill -{name}");
    }

    /// Exec notices the kernel dropped at the agent's process-connector socket.
    fn dropped_notices(&self) -> u64 {
        warden_monitor::source::dropped_notices(self.child.id()).unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-CONT").arg(self.child.id().to_string()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ended(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

#[test]
fn a_tool_whose_exec_notice_was_lost_while_the_agent_was_stopped_is_killed_by_the_rescan() {
    let home = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let claude = fake_claude(home.path());
    let flood = compile(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/exec_chain.c"), "exec_chain", &["-O1"]);
    let mut agent = Agent::start(state.path());

    agent.signal("STOP");
    let stopped = Instant::now();
    // Flood exec notices until the stopped agent's queue overflows.
    let before = agent.dropped_notices();
    let mut rounds = 0;
    while agent.dropped_notices() == before {
        rounds += 1;
        assert!(rounds <= 40, "the notice queue never overflowed");
        assert!(Command::new(&flood).arg("2000").status().unwrap().success());
    }
    // The tool starts now: its exec notice meets a full queue and is dropped.
    let full = agent.dropped_notices();
    let mut tool = Command::new(&claude).stdin(Stdio::null()).stdout(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while agent.dropped_notices() == full {
        assert!(Instant::now() < deadline, "the tool's exec notice was not dropped");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Long enough for the agent's own ticker to see the pause too.
    std::thread::sleep(Duration::from_millis(1500).saturating_sub(stopped.elapsed()));
    assert!(ended(&mut tool, Duration::from_millis(100)).is_none(), "the tool runs while the agent is stopped");
    agent.signal("CONT");

    let pid = tool.id();
    let event = agent.expect("the tool's launch event", |line| line["kind"] == "launch" && line["pid"] == pid);
    assert_eq!(event["tool"], "claude-code", "{event}");
    assert_eq!(event["outcome"], "killed", "{event}");
    assert_eq!(event["source"], "rescan", "its notice was lost: only the rescan can have found it");
    assert_eq!(ended(&mut tool, Duration::from_secs(5)).and_then(|s| s.signal()), Some(9));

    // Both gaps lead to a rescan: one naming both, or (when the ticker's pause is seen before the
    // socket reports its overflow) one each, the first of which found the tool.
    let mut reasons: Vec<String> = Vec::new();
    let mut launches = 0;
    let mut rescans = Vec::new();
    while !(reasons.iter().any(|r| r == "lost-notices") && reasons.iter().any(|r| r == "paused")) {
        let rescan =
            agent.expect(&format!("a rescan for each gap (so far {rescans:?})"), |line| line["kind"] == "rescan");
        reasons.extend(rescan["reasons"].as_array().unwrap().iter().map(|r| r["reason"].as_str().unwrap().to_owned()));
        launches += rescan["launches"].as_u64().unwrap();
        assert!(rescan["processes"].as_u64().unwrap() >= 1, "{rescan}");
        rescans.push(rescan);
    }
    assert!(launches >= 1, "the rescans found the tool: {rescans:?}");
}
