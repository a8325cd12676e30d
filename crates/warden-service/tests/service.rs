//! The system service against a developer who wants the banned tool: `wardend` started as its
//! unit's `ExecStart` does (as root, with a scratch state directory and socket), a real
//! ordinary user created for the test, and the attempts of issue 9 tried as that user — through
//! the real `warden` CLI, `curl --unix-socket`, `kill`, and the user's own shell.
//!
//! Runs in the `process-monitor` nextest group: the service enforces on every process of the
//! machine, so nothing else may run a fake tool meanwhile. Everything is killed by pid and the
//! user is removed, also when an assertion fails.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const WARDEND: &str = env!("CARGO_BIN_EXE_wardend");

/// A binary cargo builds beside `wardend` (the workspace shares one target folder).
fn sibling(name: &str) -> PathBuf {
    let path = Path::new(WARDEND).with_file_name(name);
    assert!(path.exists(), "{} is missing: build the workspace (`cargo build --workspace`)", path.display());
    path
}

fn run(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("running {command:?}: {e}"))
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// An ordinary local user made for this test (no password, no sudo), removed on drop.
struct TestUser {
    name: String,
    uid: u32,
    home: PathBuf,
}

impl TestUser {
    fn create(tag: &str, scratch: &Path) -> TestUser {
        let name = format!("wt{tag}{}", std::process::id() % 100_000);
        let home = scratch.join(format!("home-{name}"));
        let _ = run(Command::new("userdel").arg(&name));
        let made = run(Command::new("useradd")
            .args(["--no-create-home", "--shell", "/bin/bash", "--home-dir"])
            .arg(&home)
            .arg(&name));
        assert!(made.status.success(), "useradd {name}: {}", text(&made));
        std::fs::create_dir_all(&home).unwrap();
        let owned = run(Command::new("chown").arg("-R").arg(format!("{name}:")).arg(&home));
        assert!(owned.status.success(), "{}", text(&owned));
        let id = run(Command::new("id").args(["-u", &name]));
        let uid = String::from_utf8_lossy(&id.stdout).trim().parse().unwrap();
        TestUser { name, uid, home }
    }

    /// A bash command line run as this user, in their home, with a clean environment.
    fn command(&self, script: &str) -> Command {
        // setpriv execs in place (no PAM session, no supervising parent): the child we wait
        // for is the user's shell itself, then what it execs.
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid", &self.name, "--regid", &self.name, "--init-groups", "--", "env", "-i"])
            .arg(format!("HOME={}", self.home.display()))
            .args(["PATH=/usr/local/bin:/usr/bin:/bin", "bash", "-c", script])
            .current_dir(&self.home);
        command
    }

    fn sh(&self, script: &str) -> Output {
        run(&mut self.command(script))
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = run(Command::new("pkill").args(["-KILL", "-u", &self.name]));
        let _ = run(Command::new("userdel").arg(&self.name));
    }
}

/// The scratch area: world-traversable (the users run the copied binaries from it).
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::Builder::new().prefix("warden-svc-").tempdir_in("/tmp").unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        for name in ["warden", "wardend"] {
            let to = bin.join(name);
            std::fs::copy(sibling(name), &to).unwrap();
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let fake = bin.join("fake-tool");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/monitor/fake_tool.c");
        let built = run(Command::new("cc").arg("-O1").arg("-o").arg(&fake).arg(&source));
        assert!(built.status.success(), "compiling the fake tool: {}", text(&built));
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        Scratch(dir)
    }

    fn path(&self, rest: &str) -> PathBuf {
        self.0.path().join(rest)
    }
}

/// `wardend` as the unit starts it, killed by pid on drop.
struct Service {
    child: Child,
    socket: PathBuf,
    state: PathBuf,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Service {
    fn start(scratch: &Scratch, extra: &[&str]) -> Service {
        let socket = scratch.path("run/warden.sock");
        let state = scratch.path("state");
        let mut child = Command::new(scratch.path("bin/wardend"))
            .arg("--config")
            .arg(scratch.path("warden.toml"))
            .arg("--state-dir")
            .arg(&state)
            .arg("--socket")
            .arg(&socket)
            // The network hooks would attach to the machine's cgroup v2 root: tests/network.rs
            // tests them on a cgroup of its own.
            .arg("--no-network")
            // The vendor files go into the scratch tree, never the machine's /etc.
            .arg("--root")
            .arg(scratch.path("root"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting wardend");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (ready, started) = std::sync::mpsc::channel();
        let sink = log.clone();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                // Logged first: whoever is told the service is ready can read the line.
                {
                    let mut log = sink.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
                if line.contains("local API on") {
                    let _ = ready.send(());
                }
            }
        });
        let service = Service { child, socket, state, log };
        assert!(started.recv_timeout(Duration::from_secs(20)).is_ok(), "wardend did not start: {}", service.log());
        service
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// `curl` on the socket: (HTTP status, body as JSON or text).
    fn curl(&self, user: Option<&TestUser>, method: &str, route: &str, body: Option<&str>) -> (u16, Value) {
        let mut script = format!(
            "curl -sS -m 10 -w '\\n%{{http_code}}' --unix-socket {} -X {method} http://w/v1{route}",
            self.socket.display()
        );
        if let Some(body) = body {
            script.push_str(&format!(" -H 'content-type: application/json' --data-binary @- <<'EOF'\n{body}\nEOF"));
        }
        let output = match user {
            Some(user) => user.sh(&script),
            None => run(Command::new("bash").args(["-c", &script])),
        };
        let out = String::from_utf8_lossy(&output.stdout).to_string();
        let (body, code) = out.rsplit_once('\n').unwrap_or(("", &out));
        let code = code.trim().parse().unwrap_or_else(|_| panic!("curl {route}: {}", text(&output)));
        (code, serde_json::from_str(body).unwrap_or(Value::String(body.to_owned())))
    }

    fn alive(&self) -> bool {
        self.curl(None, "GET", "/hello", None).0 == 200
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits up to `limit` for a process to end; its wait status.
fn wait_for(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Installs the fake tool where Claude Code's native installer puts a version, owned by the
/// user, execute-only (`chmod 111`: the user's own processes cannot read it).
fn install_claude(user: &TestUser, scratch: &Scratch) -> PathBuf {
    let versions = user.home.join(".local/share/claude/versions");
    let done = user.sh(&format!(
        "mkdir -p {v} && cp {fake} {v}/2.1.37 && chmod 111 {v}/2.1.37",
        v = versions.display(),
        fake = scratch.path("bin/fake-tool").display()
    ));
    assert!(done.status.success(), "{}", text(&done));
    versions.join("2.1.37")
}

#[test]
fn a_developer_cannot_switch_off_read_or_speak_for_others_through_the_service() {
    let scratch = Scratch::new();
    let dev = TestUser::create("dev", scratch.0.path());
    let other = TestUser::create("oth", scratch.0.path());
    std::fs::write(scratch.path("warden.toml"), "gate = []\n").unwrap();
    let service = Service::start(&scratch, &["--no-gate"]);
    let pid = service.pid();

    // The state directory is root's alone: not listable, readable or writable.
    let snoop = dev.sh(&format!(
        "ls {s} || cat {s}/events.db || touch {s}/exceptions.json || echo x >> {s}/policy.json; \
         test -r {s}/events.db || test -w {s} || echo REFUSED",
        s = service.state.display()
    ));
    assert!(String::from_utf8_lossy(&snoop.stdout).contains("REFUSED"), "state readable: {}", text(&snoop));
    let mode = std::fs::metadata(&service.state).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "state dir mode");

    // Signals from the developer fail; the service keeps answering.
    for signal in ["STOP", "TERM", "KILL", "INT"] {
        let sent = dev.sh(&format!("kill -{signal} {pid}"));
        assert!(!sent.status.success(), "kill -{signal} as the developer succeeded: {}", text(&sent));
        assert!(text(&sent).contains("not permitted"), "{}", text(&sent));
    }
    // Not dumpable: its /proc entries are root's and not readable through ptrace rules.
    let mem = dev.sh(&format!("cat /proc/{pid}/environ /proc/{pid}/maps"));
    assert!(!mem.status.success(), "{}", text(&mem));
    assert!(service.alive(), "the service stopped: {}", service.log());

    // The execute-only copy at the canonical path, started with a relative argv[0]: the
    // developer's own processes could not read /proc/PID/exe; the service can, and kills it.
    let version = install_claude(&dev, &scratch);
    let mut launch = dev
        .command(&format!("cd {} && FAKE_SLEEP=30 exec -a claude ./2.1.37", version.parent().unwrap().display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ended = wait_for(&mut launch, Duration::from_secs(10));
    let status = ended.unwrap_or_else(|| {
        panic!(
            "the execute-only Claude Code copy kept running\n{}\nevents: {:?}",
            service.log(),
            service.curl(None, "GET", "/events", None)
        )
    });
    assert!(!status.success(), "it ran to the end instead of being stopped: {status:?}");

    // The developer sees their own launch; the other user does not; root sees all.
    let find = |who: Option<&TestUser>| -> Vec<Value> {
        let (code, events) = service.curl(who, "GET", "/events?limit=50", None);
        assert_eq!(code, 200, "{events}");
        events
            .as_array()
            .unwrap_or_else(|| panic!("{events}"))
            .iter()
            .filter(|e| e["tool"] == "claude-code")
            .cloned()
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while find(Some(&dev)).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let mine = find(Some(&dev));
    assert_eq!(mine.len(), 1, "the developer's own events: {mine:?}\n{}", service.log());
    assert_eq!(mine[0]["outcome"], "killed");
    assert_eq!(mine[0]["user"], dev.name.as_str());
    assert!(find(Some(&other)).is_empty(), "another user sees the developer's launch");
    assert_eq!(find(None).len(), 1, "root sees every launch");

    // The CLI as a client: `warden status` as the developer names the service and their count.
    let status = dev.sh(&format!(
        "{} --socket {} status --json",
        scratch.path("bin/warden").display(),
        service.socket.display()
    ));
    let status: Value = serde_json::from_slice(&status.stdout).unwrap_or_else(|_| panic!("{}", text(&status)));
    assert_eq!(status["service"]["mode"], "service", "{status}");
    assert_eq!(status["you"]["uid"], dev.uid, "{status}");
    assert_eq!(status["today"]["blocked"], 1, "{status}");
    let others = other.sh(&format!(
        "{} --socket {} status --json",
        scratch.path("bin/warden").display(),
        service.socket.display()
    ));
    let others: Value = serde_json::from_slice(&others.stdout).unwrap();
    assert_eq!(others["today"]["blocked"], 0, "another user's count includes the developer's: {others}");

    // Only root changes anything: enrollment by the developer is refused.
    let enroll = json!({"server": "http://127.0.0.1:9", "secret": "x", "owner": dev.name}).to_string();
    let (code, answer) = service.curl(Some(&dev), "POST", "/enroll", Some(&enroll));
    assert_eq!((code, answer["code"].as_str()), (403, Some("forbidden")), "{answer}");
    // No message names a uid or user the service believes: such fields are refused outright.
    let forged = json!({"server": "http://127.0.0.1:9", "secret": "x", "owner": "a", "uid": 0}).to_string();
    let (code, answer) = service.curl(None, "POST", "/enroll", Some(&forged));
    assert_eq!((code, answer["code"].as_str()), (400, Some("bad-request")), "{answer}");
    assert!(service.alive());
}

#[test]
fn hostile_clients_are_dropped_and_never_stop_the_service() {
    let scratch = Scratch::new();
    let dev = TestUser::create("hos", scratch.0.path());
    std::fs::write(scratch.path("warden.toml"), "").unwrap();
    let service = Service::start(&scratch, &["--no-gate"]);

    // Malformed and oversized bodies: clear errors with stable codes.
    let (code, answer) = service.curl(Some(&dev), "POST", "/exception-requests", Some("{not json"));
    assert_eq!(code, 400, "{answer}");
    assert_eq!(answer["code"], "bad-request");
    let big = format!("{{\"tool\":\"{}\"}}", "x".repeat(100 * 1024));
    let (code, answer) = service.curl(Some(&dev), "POST", "/exception-requests", Some(&big));
    assert_eq!((code, answer["code"].as_str()), (413, Some("too-large")), "{answer}");
    let (code, answer) = service.curl(Some(&dev), "GET", "/no-such-route", None);
    assert_eq!((code, answer["code"].as_str()), (404, Some("not-found")), "{answer}");

    // The developer opens many connections and sends nothing (or half a header) on them.
    let flood = dev
        .command(&format!(
            "python3 -c \"
import socket, time
held = []
for i in range(40):
    s = socket.socket(socket.AF_UNIX)
    s.connect('{}')
    if i % 2: s.send(b'GET /v1/hel')
    held.append(s)
time.sleep(30)
\"",
            service.socket.display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut flood = KillOnDrop(flood);
    std::thread::sleep(Duration::from_millis(500));
    // Root (and anyone else) is still answered at once.
    let started = Instant::now();
    assert!(service.alive(), "the service stopped answering: {}", service.log());
    assert!(started.elapsed() < Duration::from_secs(2), "root waited {:?} behind the flood", started.elapsed());

    // A connection that never finishes its header is dropped after the header deadline.
    let mut slow = std::os::unix::net::UnixStream::connect(&service.socket).unwrap();
    slow.write_all(b"GET /v1/hello HTTP/1.1\r\nHost: w\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    let held = started.elapsed();
    assert!(held < Duration::from_secs(12), "a header that never ends held the connection for {held:?}");
    assert!(!String::from_utf8_lossy(&rest).contains("\"api_versions\""), "answered a half request");

    let _ = flood.0.kill();
    let _ = flood.0.wait();
    assert!(service.alive(), "the service stopped: {}", service.log());
}

/// Exec notices the kernel dropped at `pid`'s process-connector sockets.
fn dropped_notices(pid: u32) -> u64 {
    warden_monitor::source::dropped_notices(pid).unwrap()
}

fn signal(pid: u32, name: &str) {
    let sent = run(Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()));
    assert!(sent.status.success(), "kill -{name} {pid}: {}", text(&sent));
}

/// Resumes a stopped service on drop (a failed assertion must not leave it stopped).
struct Resume(u32);

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = run(Command::new("kill").arg("-CONT").arg(self.0.to_string()));
    }
}

/// Root stops the service and floods exec notices until its queue overflows; a Claude Code the
/// developer starts meanwhile keeps running, its own exec notice lost (ENOBUFS). When the service
/// runs again, the gap (the pause its ticker saw, the notices the kernel dropped) is followed by a
/// rescan of every running process, which finds and kills the tool.
#[test]
fn a_gap_in_what_the_service_saw_is_followed_by_a_rescan_that_kills_the_running_tool() {
    let scratch = Scratch::new();
    let dev = TestUser::create("gap", scratch.0.path());
    std::fs::write(scratch.path("warden.toml"), "gate = []\n").unwrap();
    let flood = scratch.path("bin/exec-chain");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../warden-agent/tests/data/exec_chain.c");
    let built = run(Command::new("cc").arg("-O1").arg("-o").arg(&flood).arg(&source));
    assert!(built.status.success(), "compiling the exec flood: {}", text(&built));
    let version = install_claude(&dev, &scratch);
    // The connector alone: with the gate, a stopped service would hold the exec itself.
    let service = Service::start(&scratch, &["--no-gate"]);
    let pid = service.pid();

    signal(pid, "STOP");
    let resume = Resume(pid);
    let stopped = Instant::now();
    let before = dropped_notices(pid);
    let mut rounds = 0;
    while dropped_notices(pid) == before {
        rounds += 1;
        assert!(rounds <= 40, "the stopped service's notice queue never overflowed");
        assert!(run(Command::new(&flood).arg("2000")).status.success());
    }
    // The developer's tool starts now: its exec notice meets a full queue and is dropped.
    let full = dropped_notices(pid);
    let mut tool = dev
        .command(&format!("FAKE_SLEEP=60 exec {}", version.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while dropped_notices(pid) == full {
        assert!(Instant::now() < deadline, "the tool's exec notice was not dropped");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Long enough for the service's ticker to see the pause too.
    std::thread::sleep(Duration::from_millis(1500).saturating_sub(stopped.elapsed()));
    assert!(tool.try_wait().unwrap().is_none(), "the tool runs while the service is stopped");
    drop(resume);

    let status = wait_for(&mut tool, Duration::from_secs(10));
    let status = status.unwrap_or_else(|| panic!("the tool survived the gap\n{}", service.log()));
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "{status:?}");

    let tool_pid = tool.id();
    let (code, events) = service.curl(None, "GET", "/events?limit=50", None);
    assert_eq!(code, 200, "{events}");
    let event = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["pid"] == tool_pid)
        .unwrap_or_else(|| panic!("no event for the tool: {events}"))
        .clone();
    assert_eq!(event["tool"], "claude-code", "{event}");
    assert_eq!(event["outcome"], "killed", "{event}");
    assert_eq!(event["user"], dev.name.as_str(), "{event}");
    assert_eq!(event["source"], "rescan", "its notice was lost: only the rescan can have found it: {event}");

    let (code, status) = service.curl(None, "GET", "/status", None);
    assert_eq!(code, 200, "{status}");
    assert!(status["rescans"].as_u64().unwrap() >= 2, "the start sweep and the gap's: {status}");
    let reasons: Vec<&str> = status["last_rescan"]["reasons"]
        .as_array()
        .unwrap_or_else(|| panic!("{status}"))
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert!(reasons.contains(&"lost-notices") && reasons.contains(&"paused"), "{status}");
    assert!(status["last_rescan"]["launches"].as_u64().unwrap() >= 1, "{status}");
    assert!(service.alive(), "{}", service.log());
}

/// The service runs as root and tells a blocked launch at its terminal: a developer who points the
/// tool's stderr at a file only root may write gets nothing written there. (The message reaching a
/// terminal that is the launch's own, from root, is tested in `warden-monitor`'s `tests/terminal.rs`.)
#[test]
fn the_root_service_never_writes_where_a_developer_points_a_blocked_tools_stderr() {
    let scratch = Scratch::new();
    let dev = TestUser::create("tty", scratch.0.path());
    std::fs::write(scratch.path("warden.toml"), "gate = []\n").unwrap();
    let version = install_claude(&dev, &scratch);
    let service = Service::start(&scratch, &["--no-gate"]);

    // Stderr opened read-only on a root-owned file (anyone may read it): the tool is killed and
    // the file is left exactly as it was.
    let precious = scratch.path("precious");
    std::fs::write(&precious, "root's own\n").unwrap();
    std::fs::set_permissions(&precious, std::fs::Permissions::from_mode(0o644)).unwrap();
    let attempt = dev.sh(&format!("FAKE_SLEEP=30 {} 2<{}; echo \"exit $?\"", version.display(), precious.display()));
    assert!(text(&attempt).contains("exit 137"), "the tool was not killed: {}", text(&attempt));
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "root's own\n");
    assert!(service.alive(), "{}", service.log());
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const ADMIN: &str = "admin-token-for-the-service-test-0123456789";
const SECRET: &str = "enroll-secret-for-the-service-test";
const OWNER: &str = "dev@corp.example";

/// A real `warden-server` (SQLite in the scratch area) on a free loopback port, killed on drop.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(scratch: &Scratch) -> Server {
        Server::start_with(scratch, &[])
    }

    /// With extra command-line options (`--sync-interval-seconds 2`).
    fn start_with(scratch: &Scratch, extra: &[&str]) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new(sibling("warden-server"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(scratch.path("server"))
            .args(["--admin-token", ADMIN, "--enroll-secret", SECRET, "--sweep-seconds", "1"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting warden-server");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            let line = lines.next().expect("warden-server exited before listening").unwrap();
            if let Some(url) = line.strip_prefix("Listening on ") {
                break url.trim().to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Server { child, url }
    }

    fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let mut command = Command::new("curl");
        command.args(["-sS", "-m", "10", "-X", method, "-H", &format!("Authorization: Bearer {ADMIN}")]);
        if let Some(body) = body {
            command.args(["-H", "content-type: application/json", "--data-binary", &body.to_string()]);
        }
        let out = run(command.arg(format!("{}/api/v1{path}", self.url)));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{method} {path}: {}", text(&out)))
    }

    /// The server's events of `kind`, oldest first, waiting up to 20 s for at least `count`.
    fn events(&self, kind: &str, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let page = self.admin("GET", &format!("/admin/events?kind={kind}&limit=100"), None);
            let mut events: Vec<Value> = page["events"]
                .as_array()
                .unwrap_or_else(|| panic!("{page}"))
                .iter()
                .map(|s| s["event"].clone())
                .collect();
            events.reverse();
            if events.len() >= count || Instant::now() > deadline {
                return events;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `probe` every 100 ms until it gives a value or `limit` passes.
fn eventually<T>(limit: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_enrolled_service_files_requests_as_the_bound_account_and_applies_approvals() {
    let scratch = Scratch::new();
    let dev = TestUser::create("enr", scratch.0.path());
    let other = TestUser::create("unb", scratch.0.path());
    let server = Server::start(&scratch);
    let secret_file = scratch.path("enroll-secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(
        scratch.path("warden.toml"),
        format!(
            "gate = []\n[server]\nurl = {:?}\nenroll_secret_file = {:?}\nowner = {OWNER:?}\nlocal_users = [{:?}]\n",
            server.url,
            secret_file.display().to_string(),
            dev.name
        ),
    )
    .unwrap();
    let service = Service::start(&scratch, &["--no-gate"]);

    // The service enrolls itself from its configuration; the token is in a root-only file.
    let device = eventually(Duration::from_secs(20), "the service to enroll", || {
        let (_, status) = service.curl(None, "GET", "/status", None);
        status["enrolled"]["device_id"].as_str().map(str::to_owned)
    });
    let token = service.state.join("device-token");
    let mode = std::fs::metadata(&token).expect("the device token file").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "device-token mode");
    let peek = dev.sh(&format!("cat {}", token.display()));
    assert!(!peek.status.success(), "the developer read the device token: {}", text(&peek));

    let warden = scratch.path("bin/warden");
    let socket = service.socket.display().to_string();
    let request = |user: &TestUser| {
        user.sh(&format!(
            "{} --socket {socket} request --tool claude-code --duration 1h \
             --reason 'Pairing with the vendor on the SDK migration this week'",
            warden.display()
        ))
    };
    // A local user not bound to the device's owner cannot file as anyone.
    let refused = request(&other);
    assert!(!refused.status.success(), "an unbound user filed a request: {}", text(&refused));
    assert!(text(&refused).contains("is not bound to that account"), "{}", text(&refused));
    // The bound developer files as the owner account, whatever they would claim.
    let filed = request(&dev);
    assert!(filed.status.success(), "{}", text(&filed));
    let pending = eventually(Duration::from_secs(10), "the request on the server", || {
        let list = server.admin("GET", "/admin/exceptions?state=pending", None);
        let items = list.as_array().cloned().or_else(|| list["requests"].as_array().cloned()).unwrap_or_default();
        (items.len() == 1).then(|| items[0].clone())
    });
    assert_eq!(pending["user"], OWNER, "{pending}");
    assert_eq!(pending["device_id"], device.as_str(), "{pending}");

    // Blocked now; approved on the server, the same launch runs through the service's sync.
    let version = install_claude(&dev, &scratch);
    let launch = |seconds: u32| {
        dev.command(&format!("FAKE_SLEEP={seconds} exec {}", version.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let blocked = wait_for(&mut launch(20), Duration::from_secs(10)).expect("the blocked launch was not stopped");
    assert!(!blocked.success(), "{blocked:?}");
    let id = pending["id"].as_str().unwrap();
    let approved = server.admin(
        "POST",
        &format!("/admin/exceptions/{id}/approve"),
        Some(json!({"approver": "lead@corp.example", "comment": "ok", "duration_seconds": 600})),
    );
    assert_eq!(approved["state"], "approved", "{approved}");
    eventually(Duration::from_secs(10), "the approval to reach the service", || {
        wait_for(&mut launch(1), Duration::from_secs(5)).filter(|s| s.success())
    });
    let mine = dev.sh(&format!("{} --socket {socket} requests --json", warden.display()));
    let mine: Value = serde_json::from_slice(&mine.stdout).unwrap_or_else(|_| panic!("{}", text(&mine)));
    assert_eq!(mine["requests"][0]["state"], "approved", "{mine}");
    // The owner's requests are theirs alone: an unbound user is told so, and sees none.
    let theirs = other.sh(&format!("{} --socket {socket} requests --json", warden.display()));
    assert!(!theirs.status.success(), "an unbound user listed the owner's requests: {}", text(&theirs));
    assert!(text(&theirs).contains("is not bound to that account"), "{}", text(&theirs));
    assert!(!text(&theirs).contains("Pairing with the vendor"), "{}", text(&theirs));
}

/// Tamper evidence on the server: each start of `wardend` and each clean stop (SIGTERM, as
/// systemd stops it) reaches the governance server as an event; a `kill -9` leaves a start with
/// no stop, and the next start says so.
#[test]
fn the_server_sees_the_service_start_stop_and_an_unclean_end() {
    let scratch = Scratch::new();
    // The server expects a sync every 2 s (the service's own default is 60 s): silent after 4 s.
    let server = Server::start_with(&scratch, &["--sync-interval-seconds", "2"]);
    std::fs::write(scratch.path("enroll-secret"), SECRET).unwrap();
    std::fs::write(
        scratch.path("warden.toml"),
        format!(
            "gate = []\n[server]\nurl = \"{}\"\nenroll_secret_file = \"{}\"\nowner = \"dev@corp.example\"\n",
            server.url,
            scratch.path("enroll-secret").display()
        ),
    )
    .unwrap();

    // Start: enrolled from the configuration, the start is uploaded with the first sync.
    let mut service = Service::start(&scratch, &["--no-gate"]);
    let first_pid = service.pid();
    let starts = server.events("service-start", 1);
    assert_eq!(starts.len(), 1, "no service-start on the server\n{}", service.log());
    assert_eq!(starts[0]["mode"], "service");
    assert_eq!(starts[0]["pid"], first_pid);
    assert_eq!(starts[0]["version"], env!("CARGO_PKG_VERSION"));
    assert!(starts[0].get("unclean_end").is_none(), "a first start: {}", starts[0]);
    let devices = server.admin("GET", "/admin/devices", None);
    assert_eq!(devices["devices"][0]["service"]["status"], "running", "{devices}");
    assert_eq!(devices["sync_interval_seconds"], 2, "{devices}");
    // The device follows the server's interval: after three intervals it is still heard from.
    std::thread::sleep(Duration::from_secs(6));
    let devices = server.admin("GET", "/admin/devices", None);
    assert_eq!(devices["devices"][0]["silent"], false, "the running service went silent: {devices}");

    // SIGTERM: a clean stop, recorded and uploaded before the process ends.
    let sent = run(Command::new("kill").args(["-TERM", &first_pid.to_string()]));
    assert!(sent.status.success(), "{}", text(&sent));
    let status = wait_for(&mut service.child, Duration::from_secs(20)).expect("wardend did not stop on SIGTERM");
    assert!(status.success(), "wardend exited with {status:?}\n{}", service.log());
    let stops = server.events("service-stop", 1);
    assert_eq!(stops.len(), 1, "no service-stop on the server\n{}", service.log());
    assert_eq!((stops[0]["pid"].clone(), stops[0]["reason"].clone()), (json!(first_pid), json!("signal SIGTERM")));
    let devices = server.admin("GET", "/admin/devices", None);
    assert_eq!(devices["devices"][0]["service"]["status"], "stopped", "{devices}");
    assert_eq!(devices["devices"][0]["service"]["reason"], "signal SIGTERM", "{devices}");
    drop(service);
    // Stopped, it is no longer heard from: silent after two intervals.
    std::thread::sleep(Duration::from_secs(6));
    let devices = server.admin("GET", "/admin/devices", None);
    assert_eq!(devices["devices"][0]["silent"], true, "{devices}");

    // Started again after a clean stop: nothing to report. Then killed outright.
    let service = Service::start(&scratch, &["--no-gate"]);
    let second_pid = service.pid();
    let starts = server.events("service-start", 2);
    assert_eq!(starts.len(), 2, "{starts:?}");
    assert!(starts[1].get("unclean_end").is_none(), "after a clean stop: {}", starts[1]);
    let second_start = starts[1].clone();
    drop(service); // SIGKILL: no stop is recorded

    let service = Service::start(&scratch, &["--no-gate"]);
    let starts = server.events("service-start", 3);
    assert_eq!(starts.len(), 3, "{starts:?}");
    let unclean = &starts[2]["unclean_end"];
    assert_eq!(unclean["start_id"], second_start["id"], "{}", starts[2]);
    assert_eq!(unclean["pid"], second_pid, "{}", starts[2]);
    assert_eq!(unclean["started_at_ms"], second_start["at_ms"]);
    assert!(unclean["last_event_at_ms"].as_i64() >= second_start["at_ms"].as_i64(), "{unclean}");
    assert_eq!(server.events("service-stop", 1).len(), 1, "a killed service records no stop");
    assert!(service.alive());
}

/// A tmpfs the test mounts for the gate, unmounted on drop (also when an assertion fails).
struct GatedMount(PathBuf);

impl GatedMount {
    fn new(at: PathBuf) -> GatedMount {
        std::fs::create_dir_all(&at).unwrap();
        let mounted =
            run(Command::new("mount").args(["-t", "tmpfs", "-o", "size=16m,mode=1777", "warden-svc-gate"]).arg(&at));
        assert!(mounted.status.success(), "mounting a tmpfs: {}", text(&mounted));
        GatedMount(at)
    }
}

impl Drop for GatedMount {
    fn drop(&mut self) {
        let _ = run(Command::new("umount").arg("-l").arg(&self.0));
    }
}

#[test]
fn a_tool_run_from_a_users_own_mount_namespace_meets_the_services_gate() {
    let scratch = Scratch::new();
    let dev = TestUser::create("mns", scratch.0.path());
    let probe = dev.sh("unshare -Urm true");
    if !probe.status.success() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "unprivileged user namespaces are refused: {}",
            text(&probe)
        );
        println!("SKIPPED: this kernel refuses unprivileged user namespaces");
        return;
    }
    let gated = GatedMount::new(scratch.path("gated"));
    std::fs::write(scratch.path("warden.toml"), "").unwrap();
    let service = Service::start(&scratch, &["--gate-mount", &gated.0.display().to_string()]);
    assert!(service.log().contains("gate: ") && !service.log().contains("gate: off"), "{}", service.log());

    // The developer puts Claude Code on the gated filesystem, then runs it from the copy of that
    // mount in a mount namespace of their own (with a user namespace to be allowed one): the
    // filesystem mark covers every mount of it, so the exec is refused before it runs.
    let tool = gated.0.join(format!("{}/.local/share/claude/versions/2.1.37", dev.name));
    let installed = dev.sh(&format!(
        "mkdir -p {dir} && cp {fake} {tool}",
        dir = tool.parent().unwrap().display(),
        fake = scratch.path("bin/fake-tool").display(),
        tool = tool.display()
    ));
    assert!(installed.status.success(), "{}", text(&installed));
    let started = Instant::now();
    let attempt = dev.sh(&format!("FAKE_SLEEP=30 unshare -Urm sh -c 'exec {}'; echo exit=$?", tool.display()));
    let said = text(&attempt);
    assert!(said.contains("Permission denied") || said.contains("not permitted"), "{said}");
    assert!(said.contains("exit=126"), "{said}");
    assert!(started.elapsed() < Duration::from_secs(10), "the tool ran instead of being refused");

    // The service recorded the denial as the developer's.
    let denied = eventually(Duration::from_secs(5), "the denied launch", || {
        let (_, events) = service.curl(Some(&dev), "GET", "/events?limit=20", None);
        events.as_array()?.iter().find(|e| e["tool"] == "claude-code" && e["outcome"] == "denied").cloned()
    });
    assert_eq!(denied["user"], dev.name.as_str(), "{denied}");
    assert!(service.alive());
}

#[test]
fn the_service_writes_and_keeps_the_vendors_files_and_reports_drift() {
    let scratch = Scratch::new();
    let dev = TestUser::create("ctl", scratch.0.path());
    std::fs::write(scratch.path("warden.toml"), "").unwrap();
    let service = Service::start(&scratch, &["--no-gate"]);
    let root = scratch.path("root");

    // Every file the embedded policy needs is there, under the scratch root, and the status
    // a developer reads says each matches.
    let (code, status) = service.curl(Some(&dev), "GET", "/status", None);
    assert_eq!(code, 200, "{status}");
    let files = status["managed_files"].as_array().cloned().unwrap_or_default();
    assert!(files.len() >= 7, "{status}");
    assert!(files.iter().all(|f| f["matches"] == true), "{files:?}");
    assert!(files.iter().all(|f| f["location"].as_str().unwrap().starts_with(root.to_str().unwrap())));
    // The developer's tools can read them (the service's umask is 077) and cannot change them.
    let claude = root.join("etc/claude-code/managed-settings.d/90-warden.json");
    let read = dev.sh(&format!("cat {}", claude.display()));
    assert!(text(&read).contains("disableBypassPermissionsMode"), "{}", text(&read));
    let write = dev.sh(&format!("echo '{{}}' > {}", claude.display()));
    assert!(!write.status.success(), "a developer rewrote the managed settings");

    // Root removes the whole folder: back within a second, and recorded as drift.
    let want = std::fs::read_to_string(&claude).unwrap();
    std::fs::remove_dir_all(root.join("etc/claude-code")).unwrap();
    eventually(Duration::from_secs(1), "the managed settings restored", || {
        (std::fs::read_to_string(&claude).ok().as_deref() == Some(want.as_str())).then_some(())
    });
    let store = warden_store::Store::open(service.state.join("events.db")).unwrap();
    let drift = eventually(Duration::from_secs(2), "the drift recorded", || {
        let filter = warden_store::EventFilter {
            limit: 10,
            kind: Some(warden_api::EventKind::ControlDrift),
            ..Default::default()
        };
        store.recent(&filter).ok().and_then(|events| events.into_iter().next())
    });
    let warden_api::Event::ControlDrift(drift) = drift else { panic!("{drift:?}") };
    assert_eq!(drift.path, "/etc/claude-code/managed-settings.d/90-warden.json");
    assert!(drift.restored && drift.change == warden_api::DriftChange::Removed, "{drift:?}");
    assert!(service.log().contains("was removed and is restored"), "{}", service.log());
}

/// A model API on loopback that records each request (headers and body) and answers in the OpenAI
/// shape, quoting every placeholder it received — as a model repeating the prompt would.
struct RecordingUpstream {
    address: std::net::SocketAddr,
    received: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl RecordingUpstream {
    fn start() -> RecordingUpstream {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let body = String::from_utf8_lossy(&body).to_string();
                let quoted: Vec<&str> = body
                    .match_indices('⟦')
                    .filter_map(|(at, _)| body[at..].find('⟧').map(|end| &body[at..at + end + '⟧'.len_utf8()]))
                    .collect();
                record.lock().unwrap().push(format!("{head}\n{body}"));
                let answer = json!({"id": "r1", "object": "chat.completion", "model": "m", "choices": [{"index": 0,
                    "message": {"role": "assistant", "content": format!("You sent {}", quoted.join(" and "))},
                    "finish_reason": "stop"}]})
                .to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        RecordingUpstream { address, received }
    }
}

#[test]
fn the_service_hosts_the_masking_gateway_for_each_user_with_their_own_token() {
    let scratch = Scratch::new();
    let dev = TestUser::create("gwd", scratch.0.path());
    let other = TestUser::create("gwo", scratch.0.path());
    let upstream = RecordingUpstream::start();
    let default =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../warden-policy/src/default-policy.toml"))
            .unwrap();
    // The embedded policy names an api_url: this test's upstream replaces it.
    let policy = default
        .lines()
        .map(|line| {
            if line.starts_with("api_url = ") {
                format!("api_url = \"http://{}/v1\"", upstream.address)
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n[masking]\ninternal_domains = [\"corp.example.com\"]\n";
    std::fs::write(scratch.path("policy.toml"), policy).unwrap();
    let key = scratch.path("upstream-key");
    std::fs::write(&key, "sk-upstream-only-root-knows\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(
        scratch.path("warden.toml"),
        format!(
            "gate = []\n[policy]\nfile = {:?}\n[gateway]\nlisten = \"127.0.0.1:0\"\nupstream_key_file = {:?}\n",
            scratch.path("policy.toml").display().to_string(),
            key.display().to_string()
        ),
    )
    .unwrap();
    let service = Service::start(&scratch, &["--no-gate"]);
    let warden = scratch.path("bin/warden");
    let print_env = |user: &TestUser| -> std::collections::BTreeMap<String, String> {
        let out = user.sh(&format!("{} --socket {} gateway --print-env", warden.display(), service.socket.display()));
        assert!(out.status.success(), "{}\n{}", text(&out), service.log());
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
            .collect()
    };
    let mine = print_env(&dev);
    let theirs = print_env(&other);
    let token = mine["OPENAI_API_KEY"].clone();
    assert!(token.starts_with("wgw_") && mine["ANTHROPIC_API_KEY"] == token, "{mine:?}");
    assert_ne!(token, theirs["OPENAI_API_KEY"], "each user has a token of their own");
    assert_eq!(print_env(&dev)["OPENAI_API_KEY"], token, "asked again: the same token");
    let tokens = service.state.join("gateway-tokens.json");
    assert_eq!(std::fs::metadata(&tokens).unwrap().permissions().mode() & 0o777, 0o600);
    let base = mine["OPENAI_BASE_URL"].clone();
    assert!(base.starts_with("http://127.0.0.1:") && base.ends_with("/v1"), "{base}");

    // The developer's client sends a prompt with a live-looking AWS key and an internal host.
    let aws = "AKIAZ7Q4VN3XKD5RW2PL";
    let prompt = json!({"model": "m", "messages": [{"role": "user",
        "content": format!("deploy to build01.corp.example.com with {aws}")}]});
    let ask = |user: &TestUser, token: &str| {
        user.sh(&format!(
            "curl -sS -m 20 -w '\\n%{{http_code}}' -H 'authorization: Bearer {token}' -H 'content-type: application/json' \
             --data-binary @- {base}/chat/completions <<'EOF'\n{prompt}\nEOF"
        ))
    };
    let answer = ask(&dev, &token);
    let answer = String::from_utf8_lossy(&answer.stdout).to_string();
    assert!(answer.ends_with("\n200"), "{answer}\n{}", service.log());
    assert!(
        answer.contains(aws) && answer.contains("build01.corp.example.com"),
        "restored for the developer: {answer}"
    );
    let received = upstream.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    let seen = received[0].to_ascii_lowercase();
    assert!(!received[0].contains(aws) && !seen.contains("corp.example.com"), "the upstream saw a value: {seen}");
    assert!(received[0].contains('⟦'), "masked: {}", received[0]);
    assert!(seen.contains("bearer sk-upstream-only-root-knows"), "the gateway's own key goes upstream: {seen}");
    assert!(!received[0].contains(&token), "the client's token never goes upstream");

    // Without a token, or with a guessed one: refused, nothing sent.
    let refused = ask(&other, "wgw_guess");
    assert!(String::from_utf8_lossy(&refused.stdout).ends_with("\n401"), "{}", text(&refused));
    assert_eq!(upstream.received.lock().unwrap().len(), 1);

    // The request is the developer's in the status (counts only), not the other user's.
    let status_of = |user: &TestUser| -> Value {
        let out = user.sh(&format!("{} --socket {} status --json", warden.display(), service.socket.display()));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out)))
    };
    let status = eventually(Duration::from_secs(5), "the masking count", || {
        let status = status_of(&dev);
        (status["gateway"]["last_24h"]["requests"] == 1).then_some(status)
    });
    assert_eq!(status["gateway"]["running"], true, "{status}");
    assert!(status["gateway"]["last_24h"]["masked"].as_u64().unwrap() >= 2, "{status}");
    let summary = status["gateway"]["last"]["summary"].as_str().unwrap();
    assert!(summary.ends_with("masked in a request to Internal Assistant"), "{summary}");
    assert!(!status.to_string().contains(aws), "the status carries no value");
    assert_eq!(status_of(&other)["gateway"]["last_24h"]["requests"], 0);

    // A restart keeps the developer's token (their client's settings keep working).
    drop(service);
    let service = Service::start(&scratch, &["--no-gate"]);
    let out = dev.sh(&format!("{} --socket {} gateway --print-env", warden.display(), service.socket.display()));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&token), "{}", text(&out));
}
