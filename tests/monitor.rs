//! `warden watch` against real processes and real signals: fake AI tools placed at the
//! paths the real ones use (a native Claude Code version file, npm's `cli.js` run by a
//! real `node`, Codex's Node wrapper and its native child) are started under a temporary
//! HOME while `warden watch --json` runs as a child process.
//!
//! Every test here runs in the `process-monitor` nextest group (one at a time), because
//! an enforcing watcher governs every process of the machine, not only its own test's.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};
use warden_api::{Event, EventKind};

const WARDEN: &str = env!("CARGO_BIN_EXE_warden");

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/monitor").join(name)
}

/// The fake native tool, compiled with the system C compiler into cargo's scratch folder
/// for integration tests, and rebuilt only when its source changes (test processes build
/// it under a private name and rename it into place, so parallel runs never see half a file).
fn fake_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| compile_fake("fake_tool", &[]))
}

/// The fake tool carrying Claude Code's content fingerprint (the catalog's markers), under
/// a name and at a path that say nothing.
fn fingerprinted_claude() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        // From the catalog at run time, so this test binary itself never carries the markers.
        let catalog = warden_policy::Catalog::embedded();
        let markers = catalog.tool("claude-code").unwrap().fingerprints[0].join(" ");
        let define = format!("-DFINGERPRINT=\"{}\"", markers.replace('"', "\\\""));
        compile_fake("fake_fingerprinted", &[&define])
    })
}

fn compile_fake(name: &str, flags: &[&str]) -> PathBuf {
    {
        let source = data("fake_tool.c");
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        if modified(&out).is_some_and(|built| Some(built) >= modified(&source)) {
            return out;
        }
        let private = out.with_extension(std::process::id().to_string());
        let status = Command::new("cc").arg("-O1").args(flags).arg("-o").arg(&private).arg(&source).status().unwrap();
        assert!(status.success(), "compiling the fake tool");
        std::fs::rename(&private, &out).unwrap();
        out
    }
}

/// A temporary HOME with helpers to install fake tools into it.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home { dir: tempfile::tempdir().unwrap() }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn marker(&self) -> PathBuf {
        self.path("marker.txt")
    }

    fn marks(&self) -> String {
        std::fs::read_to_string(self.marker()).unwrap_or_default()
    }

    /// Copies `source` to `relative` (executable), creating folders.
    fn install(&self, source: &Path, relative: &str) -> PathBuf {
        let target = self.path(relative);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(source, &target).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).unwrap();
        target
    }

    fn link(&self, target: &Path, relative: &str) -> PathBuf {
        let link = self.path(relative);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        symlink(target, &link).unwrap();
        link
    }

    /// Claude Code's native installer layout: a version file and `~/.local/bin/claude`.
    fn native_claude(&self) -> PathBuf {
        let version = self.install(fake_binary(), ".local/share/claude/versions/2.1.37");
        self.link(&version, ".local/bin/claude")
    }

    /// Claude Code from npm: `cli.js` with a `#!/usr/bin/env node` line, and the `bin` symlink.
    fn npm_claude(&self) -> (PathBuf, PathBuf) {
        let cli = self.install(&data("claude-cli.js"), ".npm-global/lib/node_modules/@anthropic-ai/claude-code/cli.js");
        let bin = self.link(&cli, ".npm-global/bin/claude");
        (cli, bin)
    }

    /// Codex from npm: the Node wrapper and the native binary it starts.
    fn npm_codex(&self) -> (PathBuf, PathBuf) {
        let wrapper = self.install(&data("codex.js"), ".npm-global/lib/node_modules/@openai/codex/bin/codex.js");
        let native = self.install(
            fake_binary(),
            ".npm-global/lib/node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex",
        );
        (wrapper, native)
    }

    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command
            .env("HOME", self.dir.path())
            .env("FAKE_MARKER", self.marker())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    }
}

/// `warden watch --json` running as a child process, its JSON lines collected.
struct Watch {
    child: Child,
    lines: Receiver<Value>,
    seen: Vec<Value>,
    state: tempfile::TempDir,
}

impl Watch {
    fn start(extra: &[&str]) -> Watch {
        Watch::start_with(Command::new(WARDEN), extra)
    }

    /// `warden` as the unprivileged user `nobody` (a copy of the binary it can reach).
    fn start_as_nobody(extra: &[&str]) -> (Watch, tempfile::TempDir) {
        let reachable = tempfile::tempdir().unwrap();
        std::fs::set_permissions(reachable.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let binary = reachable.path().join("warden");
        std::fs::copy(WARDEN, &binary).unwrap();
        let mut command = Command::new("setpriv");
        command.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(&binary);
        (Watch::start_with(command, extra), reachable)
    }

    fn start_with(mut command: Command, extra: &[&str]) -> Watch {
        let state = tempfile::tempdir().unwrap();
        std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let mut child = command
            .args(["watch", "--json", "--state-dir"])
            .arg(state.path())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (sender, lines) = channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"));
                if sender.send(value).is_err() {
                    break;
                }
            }
        });
        let (ready_tx, ready) = channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[warden] {line}");
                if line.contains("watching with") {
                    let _ = ready_tx.send(line);
                }
            }
        });
        let banner = ready.recv_timeout(Duration::from_secs(20)).expect("warden watch started");
        assert!(banner.contains("watching with"), "{banner}");
        Watch { child, lines, seen: Vec::new(), state }
    }

    /// Waits for an event matching `wanted`.
    fn expect(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        if let Some(found) = self.seen.iter().find(|e| wanted(e)) {
            return found.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(event) => {
                    self.seen.push(event.clone());
                    if wanted(&event) {
                        return event;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no event for {what}; events seen: {:#?}", self.seen);
    }

    /// Collects events for a while (to check that something did *not* happen).
    fn settle(&mut self, time: Duration) -> &[Value] {
        let deadline = Instant::now() + time;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if let Ok(event) = self.lines.recv_timeout(left) {
                self.seen.push(event);
            }
        }
        &self.seen
    }

    fn stop(mut self) -> tempfile::TempDir {
        terminate(&mut self.child);
        std::mem::replace(&mut self.state, tempfile::tempdir().unwrap())
    }
}

fn terminate(child: &mut Child) {
    // SIGTERM first so the agent shuts down cleanly; our own child, by pid.
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process the test started, killed (by its pid) when the test ends.
struct Started(Child);

impl Started {
    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits for it to end; `None` if it still runs after `time`.
    fn ended_within(&mut self, time: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + time;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn running(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(command: &mut Command) -> Started {
    Started(command.spawn().unwrap())
}

fn pid_of(event: &Value) -> u32 {
    event["pid"].as_u64().unwrap() as u32
}

fn is(event: &Value, tool: &str, pid: u32) -> bool {
    event["tool"] == tool && pid_of(event) == pid
}

/// Whether a pid (not our child) still runs (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|text| text.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
}

fn wait_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(3);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    !alive(pid)
}

#[test]
fn native_claude_is_killed_and_bystanders_are_untouched() {
    let home = Home::new();
    let claude = home.native_claude();
    let lookalike = home.install(fake_binary(), "src/claude-notes/bin/claude-notes");
    let mut watch = Watch::start(&["--source", "proc-connector", "--no-sweep"]);

    let mut bystander = start(home.command(&lookalike).env("FAKE_MARKER", home.path("bystander.txt")));
    let mut sleeper = start(Command::new("sleep").arg("30"));
    let mut tool = start(home.command(&claude).args(["-p", "hello"]));

    let event = watch.expect("claude killed", |e| is(e, "claude-code", tool.pid()));
    assert_eq!(event["outcome"], "killed");
    assert_eq!(event["action"], "block");
    assert_eq!(event["rule"], "tool:claude-code");
    assert_eq!(event["source"], "proc-connector");
    assert_eq!(event["exe"], home.path(".local/share/claude/versions/2.1.37").to_str().unwrap());
    assert_eq!(event["argv"][0], claude.to_str().unwrap());
    assert_eq!(event["cwd"], home.dir.path().to_str().unwrap());
    assert!(event["time"].as_str().unwrap().ends_with('Z'));
    assert!(event["reason"].as_str().unwrap().contains("high-risk"));
    let status = tool.ended_within(Duration::from_secs(3)).expect("the tool was stopped");
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL");

    let others = watch.settle(Duration::from_millis(500));
    assert!(
        others.iter().all(|e| pid_of(e) != bystander.pid() && pid_of(e) != sleeper.pid()),
        "unrelated programs are not launch events: {others:#?}"
    );
    assert!(bystander.running() && sleeper.running(), "unrelated processes keep running");

    // The event was stored durably before it was printed.
    let state = watch.stop();
    let store = warden_store::Store::open(state.path().join("events.db")).unwrap();
    let stored = store.get(event["id"].as_str().unwrap()).unwrap().expect("the event is in the store");
    assert_eq!(stored.as_launch().expect("a launch").pid, tool.pid());
    // The run's start and clean stop (SIGTERM) frame the launch in the upload outbox.
    let kinds: Vec<EventKind> = store.pending(10).unwrap().iter().map(Event::kind).collect();
    assert_eq!(kinds, [EventKind::ServiceStart, EventKind::Launch, EventKind::ServiceStop], "waiting in the outbox");
}

#[test]
fn a_tool_binary_is_known_by_its_content_wherever_it_is_copied_linked_or_loaded() {
    let home = Home::new();
    let copy = home.install(fingerprinted_claude(), "bin/notes");
    let hard_link = home.path("bin/scratch");
    std::fs::hard_link(&copy, &hard_link).unwrap();
    let at_qwens_path = home.install(fingerprinted_claude(), ".local/lib/qwen-code/bin/qwen");
    let innocent = home.install(fake_binary(), "bin/claude");
    let mut watch = Watch::start(&["--source", "proc-connector", "--no-sweep"]);

    let mut bystander = start(home.command(&innocent).env("FAKE_MARKER", home.path("bystander.txt")));
    for (how, mut command) in [
        ("a renamed copy", home.command(&copy)),
        ("a hard link", home.command(&hard_link)),
        ("the sanctioned assistant's install path", home.command(&at_qwens_path)),
        ("the dynamic loader", {
            let mut c = home.command("/lib64/ld-linux-x86-64.so.2");
            c.arg(&copy).arg("--version");
            c
        }),
        ("a renamed copy of the dynamic loader (known by its content)", {
            let mut c = home.command(home.install(Path::new("/lib64/ld-linux-x86-64.so.2"), "bin/runner"));
            c.arg(&copy).arg("--version");
            c
        }),
        ("a copy in memory (memfd_create + execve of /proc/self/fd/N)", {
            let mut c = home.command("/usr/bin/python3");
            c.arg("-c")
                .arg(
                    "import os,sys; fd = os.memfd_create('x', 0); os.write(fd, open(sys.argv[1], 'rb').read()); \
                     os.execv('/proc/self/fd/%d' % fd, ['x'])",
                )
                .arg(&copy);
            c
        }),
    ] {
        let mut tool = start(&mut command);
        let event = watch.expect(how, |e| is(e, "claude-code", tool.pid()));
        assert_eq!(event["outcome"], "killed", "{how}: {event:#}");
        assert_eq!(event["action"], "block", "{how}");
        let status = tool.ended_within(Duration::from_secs(3)).expect("the tool was stopped");
        assert_eq!(status.signal(), Some(9), "{how}: killed by SIGKILL");
    }
    let others = watch.settle(Duration::from_millis(300));
    assert!(others.iter().all(|e| pid_of(e) != bystander.pid()), "a program merely named claude: {others:#?}");
    assert!(bystander.running(), "a program merely named claude keeps running");
}

/// A program file too large for the watcher's hot path (over 16 MiB, as every real tool binary
/// is: 100–400 MB) is read on its worker thread: a renamed copy of a tool that large is killed
/// once the read says what it is, the answer is cached (the next exec of the file is decided at
/// once), and a large program that is no tool keeps running.
#[test]
fn a_large_renamed_tool_is_read_off_the_hot_path_and_killed_when_it_is_known() {
    let home = Home::new();
    let padded = |source: &Path, relative: &str| {
        let target = home.install(source, relative);
        // Zeros after the ELF image change nothing the loader reads.
        std::fs::OpenOptions::new().write(true).open(&target).unwrap().set_len(24 << 20).unwrap();
        target
    };
    let big_tool = padded(fingerprinted_claude(), "bin/big-notes");
    let big_other = padded(fake_binary(), "bin/big-compiler");
    let mut watch = Watch::start(&["--source", "proc-connector", "--no-sweep"]);

    let mut other = start(home.command(&big_other).env("FAKE_MARKER", home.path("other.txt")));
    let mut tool = start(&mut home.command(&big_tool));
    let event = watch.expect("a large renamed copy", |e| is(e, "claude-code", tool.pid()));
    assert_eq!(
        (event["outcome"].as_str(), event["source"].as_str()),
        (Some("killed"), Some("content-late")),
        "{event:#}"
    );
    assert_eq!(tool.ended_within(Duration::from_secs(3)).and_then(|s| s.signal()), Some(9));
    let mut again = start(&mut home.command(&big_tool));
    let event = watch.expect("the same large file again", |e| is(e, "claude-code", again.pid()));
    assert_eq!(event["source"], "proc-connector", "decided on the hot path from the cached read: {event:#}");
    assert_eq!(again.ended_within(Duration::from_secs(3)).and_then(|s| s.signal()), Some(9));
    let others = watch.settle(Duration::from_millis(500));
    assert!(others.iter().all(|e| pid_of(e) != other.pid()), "a large program that is no tool: {others:#?}");
    assert!(other.running(), "a large program that is no tool keeps running");
}

/// The real Claude Code binary (2.1.332, 402 MB, fetched from the npm registry by `cargo xtask
/// setup`), copied under a name and to a folder that say nothing: too large for the hot path, it
/// is read on the watcher's worker and killed once the read says what it is.
#[test]
fn the_real_claude_code_binary_under_another_name_is_killed_once_read() {
    let real = Path::new(&std::env::var("HOME").unwrap())
        .join(".cache/warden-tools/real/claude-2.1.332/node_modules/@anthropic-ai/claude-code-linux-x64/claude");
    assert!(real.is_file(), "{} is missing: run `cargo xtask setup` (it fetches the real tools)", real.display());
    let home = Home::new();
    let copy = home.install(&real, "bin/notes");
    let mut watch = Watch::start(&["--source", "proc-connector", "--no-sweep"]);
    // `-p` with its prompt still to come on stdin (kept open): the tool waits, as a session would.
    let mut command = home.command(&copy);
    command.arg("-p").stdin(Stdio::piped());
    let mut tool = start(&mut command);
    let event = watch.expect("the real binary under another name", |e| is(e, "claude-code", tool.pid()));
    assert_eq!(
        (event["outcome"].as_str(), event["source"].as_str()),
        (Some("killed"), Some("content-late")),
        "{event:#}"
    );
    assert_eq!(tool.ended_within(Duration::from_secs(10)).and_then(|s| s.signal()), Some(9));
}

#[test]
fn npm_claude_script_is_killed_before_its_first_statement() {
    let home = Home::new();
    let (cli, bin) = home.npm_claude();
    let mut watch = Watch::start(&["--source", "proc-connector", "--no-sweep"]);

    // As the developer types it: the `claude` symlink, run through `#!/usr/bin/env node`.
    let mut through_shebang = start(home.command(&bin).arg("--version"));
    let event = watch.expect("shebang claude", |e| is(e, "claude-code", through_shebang.pid()));
    assert_eq!(event["outcome"], "killed");
    assert_eq!(through_shebang.ended_within(Duration::from_secs(3)).and_then(|s| s.signal()), Some(9));

    // And as `node …/cli.js`.
    let mut with_node = start(home.command("node").arg(&cli));
    let event = watch.expect("node cli.js", |e| is(e, "claude-code", with_node.pid()));
    assert_eq!(event["outcome"], "killed");
    assert_eq!(with_node.ended_within(Duration::from_secs(3)).and_then(|s| s.signal()), Some(9));

    // A renamed node (`node-22`, as alternatives install it) running a copied package folder
    // (known by its package.json, wherever it was copied).
    let node_22 = home.install(Path::new("/usr/bin/node"), "bin/node-22");
    let copied = home.path("x/cli.js");
    std::fs::create_dir_all(copied.parent().unwrap()).unwrap();
    std::fs::copy(&cli, &copied).unwrap();
    std::fs::write(home.path("x/package.json"), r#"{"name":"@anthropic-ai/claude-code","version":"2.1.0"}"#).unwrap();
    for (how, script) in [("node-22 running the installed cli.js", &cli), ("node-22 running a copied package", &copied)]
    {
        let mut renamed = start(home.command(&node_22).arg(script));
        let event = watch.expect(how, |e| is(e, "claude-code", renamed.pid()));
        assert_eq!(event["outcome"], "killed", "{how}: {event:#}");
        assert_eq!(renamed.ended_within(Duration::from_secs(3)).and_then(|s| s.signal()), Some(9), "{how}");
    }

    let all = watch.settle(Duration::from_millis(500));
    assert_eq!(
        all.iter().filter(|e| pid_of(e) == through_shebang.pid()).count(),
        1,
        "env and node in the same pid are one launch: {all:#?}"
    );
    assert_eq!(home.marks(), "", "no line of the script ran");
}

#[test]
fn codex_wrapper_and_native_child_are_one_warned_launch() {
    let home = Home::new();
    let (wrapper, native) = home.npm_codex();
    let mut watch = Watch::start(&["--source", "proc-connector", "--no-sweep"]);

    let mut codex = start(home.command("node").arg(&wrapper).arg("exec").env("CODEX_BINARY", &native));
    let event = watch.expect("codex warned", |e| is(e, "codex", codex.pid()));
    assert_eq!(event["outcome"], "warned");
    assert_eq!(event["action"], "warn");
    // Wait until the wrapper has started its child, then let events settle.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !home.marks().contains("child") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let child: u32 = home.marks().split_whitespace().last().and_then(|p| p.parse().ok()).expect("child started");
    let events = watch.settle(Duration::from_millis(700));
    let codex_events: Vec<_> = events.iter().filter(|e| e["tool"] == "codex").collect();
    assert_eq!(codex_events.len(), 1, "the wrapper's child continues the launch: {codex_events:#?}");
    assert!(codex.running() && alive(child), "a warning stops nothing");
}

#[test]
fn a_blocked_launch_loses_its_whole_tree() {
    let home = Home::new();
    let (wrapper, native) = home.npm_codex();
    let policy = home.path("policy.toml");
    std::fs::write(
        &policy,
        "name = \"block codex\"\ndefault_action = \"warn\"\n[tools.codex]\naction = \"block\"\nmessage = \"Codex is not approved.\"\n",
    )
    .unwrap();
    let mut watch = Watch::start(&["--source", "proc-connector", "--no-sweep", "--policy", policy.to_str().unwrap()]);

    // The native binary alone is the launch; its own child (a helper) dies with it.
    let mut codex = start(home.command(&native).arg("exec").env("FAKE_CHILD", &native));
    let event = watch.expect("codex killed", |e| is(e, "codex", codex.pid()));
    assert_eq!(event["outcome"], "killed");
    assert_eq!(event["reason"], "Codex is not approved.");
    assert_eq!(codex.ended_within(Duration::from_secs(3)).and_then(|s| s.signal()), Some(9));

    // The Node wrapper: killed at its own exec, before it can start the native child.
    let mut wrapped = start(home.command("node").arg(&wrapper).env("CODEX_BINARY", &native));
    let event = watch.expect("wrapper killed", |e| is(e, "codex", wrapped.pid()));
    assert_eq!(event["outcome"], "killed");
    assert_eq!(wrapped.ended_within(Duration::from_secs(3)).and_then(|s| s.signal()), Some(9));
    watch.settle(Duration::from_millis(300));
    for line in home.marks().lines().filter(|l| l.starts_with("main ")) {
        let pid: u32 = line[5..].trim().parse().unwrap();
        assert!(wait_gone(pid), "process {pid} of a blocked tree is gone");
    }
    assert!(!home.marks().contains("wrapper"), "the wrapper never got to start its child");
}

#[test]
fn monitor_mode_reports_and_kills_nothing() {
    let home = Home::new();
    let claude = home.native_claude();
    let mut watch = Watch::start(&["--source", "proc-connector", "--no-sweep", "--monitor"]);
    let mut tool = start(&mut home.command(&claude));
    let event = watch.expect("would block", |e| is(e, "claude-code", tool.pid()));
    assert_eq!(event["outcome"], "would-block");
    assert_eq!(event["action"], "block");
    assert!(tool.ended_within(Duration::from_millis(800)).is_none(), "monitor mode kills nothing");
}

#[test]
fn a_process_that_execs_a_tool_later_is_a_new_launch() {
    let home = Home::new();
    let claude = home.native_claude();
    let mut watch = Watch::start(&["--source", "proc-connector", "--no-sweep"]);
    let script = format!("sleep 0.4; exec {}", claude.display());
    let mut shell = start(home.command("/bin/sh").args(["-c", &script]));
    let event = watch.expect("exec'd claude", |e| is(e, "claude-code", shell.pid()));
    assert_eq!(event["outcome"], "killed");
    assert_eq!(shell.ended_within(Duration::from_secs(3)).and_then(|s| s.signal()), Some(9));
}

#[test]
fn tools_running_before_the_watcher_starts_are_swept() {
    let home = Home::new();
    let claude = home.native_claude();
    let mut tool = start(&mut home.command(&claude));
    std::thread::sleep(Duration::from_millis(200));
    let mut watch = Watch::start(&["--source", "proc-connector"]);
    let event = watch.expect("swept claude", |e| is(e, "claude-code", tool.pid()));
    assert_eq!(event["source"], "startup-scan");
    assert_eq!(event["outcome"], "killed");
    assert_eq!(tool.ended_within(Duration::from_secs(3)).and_then(|s| s.signal()), Some(9));
}

#[test]
fn the_poller_fallback_also_stops_a_long_running_tool() {
    let home = Home::new();
    let claude = home.native_claude();
    let mut watch = Watch::start(&["--source", "poll:100ms", "--no-sweep"]);
    let mut tool = start(&mut home.command(&claude));
    let event = watch.expect("polled claude", |e| is(e, "claude-code", tool.pid()));
    assert_eq!(event["source"], "poll");
    assert_eq!(event["outcome"], "killed");
    assert_eq!(tool.ended_within(Duration::from_secs(3)).and_then(|s| s.signal()), Some(9));
}

#[test]
fn text_output_tells_the_developer_why() {
    let home = Home::new();
    let claude = home.native_claude();
    let state = tempfile::tempdir().unwrap();
    let mut child = Command::new(WARDEN)
        .args(["watch", "--source", "proc-connector", "--no-sweep", "--state-dir"])
        .arg(state.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut banner = String::new();
    stderr.read_line(&mut banner).unwrap();
    assert!(banner.starts_with("warden: watching with proc-connector"), "{banner}");
    let mut tool = start(&mut home.command(&claude));
    assert_eq!(tool.ended_within(Duration::from_secs(3)).and_then(|s| s.signal()), Some(9));
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let (mut first, mut second) = (String::new(), String::new());
    stdout.read_line(&mut first).unwrap();
    stdout.read_line(&mut second).unwrap();
    terminate(&mut child);
    assert!(first.contains(&format!("pid {} claude-code: block (killed)", tool.pid())), "{first}");
    assert!(second.trim_start().starts_with("blocked claude-code: Claude Code is classified as high-risk"), "{second}");
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("Uid:")).map(|ids| ids.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A tmpfs mounted for one test and unmounted when it ends: the only mount the fanotify
/// gate marks, so the machine's other programs never wait on the test's gate.
struct TestMount {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestMount {
    fn new() -> TestMount {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        let status =
            Command::new("mount").args(["-t", "tmpfs", "-o", "size=64m", "warden-gate-test"]).arg(&path).status();
        assert!(status.is_ok_and(|s| s.success()), "mounting a tmpfs for the gate test");
        TestMount { path, _dir: dir }
    }
}

impl Drop for TestMount {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(&self.path).status().is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

#[test]
fn the_fanotify_gate_denies_blocked_programs_before_their_first_instruction() {
    if !running_as_root() {
        // CI runs as root: there a skip would hide a broken gate.
        assert!(std::env::var("CI").as_deref() != Ok("true"), "the gate test must run as root in CI");
        println!("SKIPPED: the fanotify pre-exec gate needs root (CI runs as root, so it runs there)");
        return;
    }
    let mount = TestMount::new();
    let home = Home { dir: tempfile::tempdir_in(&mount.path).unwrap() };
    let claude = home.native_claude();
    let (cli, _bin) = home.npm_claude();
    let allowed = home.install(fake_binary(), "bin/build-tool");
    let mut watch = Watch::start(&["--source", "fanotify", "--gate-mount", mount.path.to_str().unwrap(), "--no-sweep"]);

    // The native binary: execve fails with EPERM; main() never runs.
    let error = home.command(&claude).spawn().expect_err("the exec is denied");
    assert_eq!(error.raw_os_error(), Some(1), "EPERM: {error}");
    let event = watch.expect("denied claude", |e| e["tool"] == "claude-code" && e["outcome"] == "denied");
    assert_eq!(event["source"], "fanotify");
    assert_eq!(event["exe"], home.path(".local/share/claude/versions/2.1.37").to_str().unwrap());

    // A `#!/usr/bin/env node` script is judged as the script: denied before node starts.
    let error = home.command(&cli).spawn().expect_err("the script's exec is denied");
    assert_eq!(error.raw_os_error(), Some(1), "EPERM: {error}");
    watch.expect("denied cli.js", |e| e["outcome"] == "denied" && e["exe"] == "/usr/bin/env");

    // `node cli.js` execs only node (not on the mount): the exec-event path beside the
    // gate stops it.
    let mut with_node = start(home.command("node").arg(&cli));
    let event = watch.expect("killed node cli.js", |e| is(e, "claude-code", with_node.pid()));
    assert_eq!(event["outcome"], "killed");
    assert_eq!(with_node.ended_within(Duration::from_secs(3)).and_then(|s| s.signal()), Some(9));

    // Allowed programs on the gated mount run normally, also when the decision is cached.
    for _ in 0..3 {
        let status = home.command(&allowed).env("FAKE_SLEEP", "0").status().unwrap();
        assert!(status.success());
    }
    assert_eq!(home.marks().lines().filter(|l| l.starts_with("main")).count(), 3, "only the allowed program ran");
    assert!(!home.marks().contains("first statement"));
    let state = watch.stop();
    drop(state);
    drop(home);
    drop(mount);
}

#[test]
fn an_unprivileged_watcher_reports_what_it_may_not_stop() {
    if !running_as_root() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "this test must run as root in CI");
        println!("SKIPPED: needs root to start the watcher as another user");
        return;
    }
    let home = Home::new();
    let version = home.install(fake_binary(), ".local/share/claude/versions/2.1.37");
    // The watcher runs as `nobody`: the exec events still arrive (the connector works
    // unprivileged), but root's processes can be neither fully read nor signalled.
    let (mut watch, _binary) = Watch::start_as_nobody(&["--source", "proc-connector", "--no-sweep"]);
    let mut tool = start(&mut home.command(&version));
    let event = watch.expect("not permitted", |e| is(e, "claude-code", tool.pid()));
    assert_eq!(event["outcome"], "not-permitted");
    assert_eq!(event["action"], "block");
    assert!(tool.ended_within(Duration::from_millis(500)).is_none(), "nothing was signalled");
}

#[test]
fn a_settings_file_named_on_argv_that_bypasses_permissions_gets_an_allowed_tool_killed() {
    // Claude Code allowed by policy, every catalog risky mode blocked: only the settings file
    // (read by the watcher from the launch's cwd) tells the two launches apart.
    let home = Home::new();
    let claude = home.native_claude();
    std::fs::write(home.path("bypass.json"), r#"{"permissions":{"defaultMode":"bypassPermissions"}}"#).unwrap();
    std::fs::write(home.path("team.json"), r#"{"permissions":{"defaultMode":"acceptEdits"}}"#).unwrap();
    let policy = home.path("policy.toml");
    std::fs::write(
        &policy,
        "name = \"Claude allowed, risky modes blocked\"\ndefault_action = \"allow\"\n\n[tools.claude-code]\n\
         action = \"allow\"\n\n[[risky_flags]]\ncatalog_modes = true\naction = \"block\"\n",
    )
    .unwrap();
    let mut command = Command::new(WARDEN);
    command.arg("--policy").arg(&policy);
    let mut watch = Watch::start_with(command, &["--source", "proc-connector", "--no-sweep"]);

    let mut calm = start(home.command(&claude).args(["--settings", "team.json"]));
    let event = watch.expect("allowed with a harmless settings file", |e| is(e, "claude-code", calm.pid()));
    assert_eq!(event["outcome"], "allowed", "{event}");
    let mut risky = start(home.command(&claude).args(["--settings", "./bypass.json"]));
    let event = watch.expect("killed for its settings file", |e| is(e, "claude-code", risky.pid()));
    assert_eq!(event["outcome"], "killed", "{event}");
    assert!(event["rule"].as_str().unwrap().starts_with("risky-flag:--settings ./bypass.json"), "{event}");
    assert_eq!(risky.ended_within(Duration::from_secs(3)).and_then(|s| s.signal()), Some(9));
    assert!(calm.running(), "the launch with a harmless settings file keeps running");
}
