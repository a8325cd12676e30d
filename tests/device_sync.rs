//! Device ↔ server end to end, with real parts only: the `warden-server` binary (SQLite, and
//! PostgreSQL when `WARDEN_TEST_POSTGRES_URL` is set), a private D-Bus session bus with an
//! unlocked `gnome-keyring-daemon` holding the device token, `warden enroll/request/requests/
//! status/sync` and `warden watch` as child processes, and a fake Claude Code (a copy of
//! `/bin/sleep` at `~/.local/share/claude/versions/2.1.37`) that is really killed.
//!
//! Also the faults: server down during events and a request, an uploader killed with SIGKILL
//! mid-upload, a tampered policy signature (through a tampering proxy), a corrupt local store.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use warden_api::{LaunchEvent, Outcome};
use warden_policy::Action;
use warden_store::Store;

const WARDEN: &str = env!("CARGO_BIN_EXE_warden");
const ADMIN: &str = "test-admin-token-0123456789abcdefghij";
const SECRET: &str = "test-enroll-secret-0123456789";
const REASON: &str = "Pairing with the vendor on the SDK migration this week";

/// `warden-server` beside the `warden` binary (cargo builds every workspace binary into one folder).
fn server_binary() -> PathBuf {
    let path = Path::new(WARDEN).with_file_name("warden-server");
    assert!(path.exists(), "{} is missing: build it with `cargo build -p warden-server`", path.display());
    path
}

fn login_name() -> String {
    let out = Command::new("id").arg("-un").output().expect("running id -un");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A private session bus with an unlocked Secret Service (gnome-keyring), as on a desktop.
struct Keyring {
    bus: Child,
    address: String,
}

impl Keyring {
    fn start(home: &Path) -> Keyring {
        let mut bus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .env("HOME", home)
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting dbus-daemon (package dbus)");
        let mut address = String::new();
        BufReader::new(bus.stdout.take().unwrap()).read_line(&mut address).unwrap();
        let address = address.trim().to_owned();
        assert!(address.starts_with("unix:"), "dbus-daemon printed {address:?}");
        let mut keyring = Command::new("gnome-keyring-daemon")
            .args(["--unlock", "--components=secrets"])
            .env("HOME", home)
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("starting gnome-keyring-daemon (package gnome-keyring)");
        keyring.stdin.take().unwrap().write_all(b"test-keyring-password").unwrap();
        assert!(keyring.wait().unwrap().success(), "gnome-keyring-daemon --unlock failed");
        Keyring { bus, address }
    }

    /// What the keyring holds for an account (via `secret-tool`, another real client).
    fn lookup(&self, home: &Path, account: &str) -> Option<String> {
        let out = Command::new("secret-tool")
            .args(["lookup", "service", "warden-device-token", "username", account])
            .env("HOME", home)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .output()
            .expect("running secret-tool (package libsecret-tools)");
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (!text.is_empty()).then_some(text)
    }
}

impl Drop for Keyring {
    fn drop(&mut self) {
        // The keyring daemon exits with its bus.
        let _ = self.bus.kill();
        let _ = self.bus.wait();
    }
}

/// The `warden-server` binary on a fixed port (so it can be restarted at the same URL).
struct Server {
    child: Option<Child>,
    port: u16,
    database: String,
    home: PathBuf,
    /// HTTPS with this certificate chain and key, and the CA curl trusts for it.
    tls: Option<Tls>,
}

/// A certificate chain file, its key, and the CA it chains to.
#[derive(Clone)]
struct Tls {
    chain: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

impl Server {
    fn start(database: String, home: &Path) -> Server {
        Server::start_with(database, home, None)
    }

    fn start_with(database: String, home: &Path, tls: Option<Tls>) -> Server {
        let mut server = Server { child: None, port: free_port(), database, home: home.to_path_buf(), tls };
        server.restart();
        server
    }

    fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", if self.tls.is_some() { "https" } else { "http" }, self.port)
    }

    fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let mut command = Command::new(server_binary());
        if let Some(tls) = &self.tls {
            command.arg("--tls-cert").arg(&tls.chain).arg("--tls-key").arg(&tls.key);
        }
        let mut child = command
            .args(["--listen", &format!("127.0.0.1:{}", self.port), "--database", &self.database])
            .args(["--admin-token", ADMIN, "--enroll-secret", SECRET, "--sweep-seconds", "1"])
            .env("HOME", &self.home)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting warden-server");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            let line = lines.next().expect("warden-server exited before listening").unwrap();
            if line.starts_with("Listening on") {
                break;
            }
        }
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.child = Some(child);
    }

    /// Stops it abruptly (SIGKILL): a crash, as far as devices can tell.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `curl` to this server (trusting its CA under TLS).
    fn curl(&self) -> Command {
        let mut command = Command::new("curl");
        command.args(["-sS", "-m", "10"]);
        if let Some(tls) = &self.tls {
            command.arg("--cacert").arg(&tls.ca);
        }
        command
    }

    fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let mut command = self.curl();
        command.args(["-X", method, "-H", &format!("Authorization: Bearer {ADMIN}")]);
        if let Some(body) = body {
            command.args(["-H", "content-type: application/json", "--data-binary", &body.to_string()]);
        }
        let out = command.arg(format!("{}/api/v1{path}", self.url())).output().expect("running curl");
        assert!(out.status.success(), "curl {method} {path}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{method} {path} answered {}", String::from_utf8_lossy(&out.stdout)))
    }

    /// Every launch event of `device` the server stored (paging by time, newest first); the
    /// runtime's own start and stop are events too, of other kinds.
    fn events_of(&self, device: &str) -> Vec<Value> {
        self.events_of_kind(device, "launch")
    }

    /// Every event of `device` of one `kind` the server stored (paging by time, newest first).
    fn events_of_kind(&self, device: &str, kind: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut until: Option<i64> = None;
        loop {
            let mut query = format!("/admin/events?device={device}&kind={kind}&limit=1000");
            if let Some(until) = until {
                query.push_str(&format!("&until_ms={until}"));
            }
            let page = self.admin("GET", &query, None)["events"].as_array().cloned().unwrap_or_default();
            let Some(oldest) = page.last().map(|e| e["event"]["at_ms"].as_i64().unwrap()) else { break };
            let full = page.len() == 1000;
            all.extend(page.into_iter().filter(|e| until.is_none_or(|u| e["event"]["at_ms"].as_i64().unwrap() < u)));
            if !full {
                break;
            }
            until = Some(oldest);
        }
        all
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A SQLite file, or a fresh database on the PostgreSQL fixture.
fn database(kind: &str, dir: &Path) -> Option<String> {
    match kind {
        "sqlite" => Some(format!("sqlite://{}?mode=rwc", dir.join("server.db").display())),
        _ => {
            let base = match std::env::var("WARDEN_TEST_POSTGRES_URL") {
                Ok(url) if !url.is_empty() => url,
                _ if std::env::var_os("CI").is_some() => panic!("WARDEN_TEST_POSTGRES_URL must be set in CI"),
                _ => {
                    eprintln!("SKIPPED: WARDEN_TEST_POSTGRES_URL is not set; `cargo xtask test` sets it");
                    return None;
                }
            };
            let name = format!("warden_device_{}_{}", std::process::id(), free_port());
            let status = Command::new("psql").arg(&base).args(["-qc", &format!("CREATE DATABASE {name}")]).status();
            assert!(status.expect("running psql").success(), "creating {name}");
            let (prefix, _) = base.rsplit_once('/').unwrap();
            Some(format!("{prefix}/{name}"))
        }
    }
}

/// One developer's machine: a HOME, a keyring, a state directory, the `warden` CLI.
struct Desk {
    home: tempfile::TempDir,
    keyring: Keyring,
    user: String,
}

impl Desk {
    fn new() -> Desk {
        let home = tempfile::tempdir().unwrap();
        let keyring = Keyring::start(home.path());
        Desk { home, keyring, user: login_name() }
    }

    fn state(&self) -> PathBuf {
        self.home.path().join("state")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(WARDEN);
        command
            .args(args)
            .env("HOME", self.home.path())
            .env("USER", &self.user)
            .env("WARDEN_STATE_DIR", self.state())
            .env("DBUS_SESSION_BUS_ADDRESS", &self.keyring.address)
            .env_remove("WARDEN_DEVICE_TOKEN")
            .stdin(Stdio::null());
        command
    }

    fn warden(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("running warden")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.warden(args);
        assert!(
            out.status.success(),
            "warden {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    fn enroll(&self, server: &str) -> String {
        let out = self.ok(&["enroll", "--server", server, "--secret", SECRET]);
        assert!(out.contains("stored in the OS keyring"), "{out}");
        self.json(&["status", "--json"])["device_id"].as_str().unwrap().to_owned()
    }

    /// The fake Claude Code native binary.
    fn fake_claude(&self) -> PathBuf {
        let path = self.home.path().join(".local/share/claude/versions/2.1.37");
        if !path.exists() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::copy("/bin/sleep", &path).unwrap();
        }
        path
    }

    /// Launches the fake tool with `dir` as its working directory.
    fn launch_in(&self, dir: &Path) -> Child {
        Command::new(self.fake_claude())
            .arg("30")
            .env("HOME", self.home.path())
            .current_dir(dir)
            .stdin(Stdio::null())
            .spawn()
            .expect("launching the fake tool")
    }

    /// Launches the fake tool; true when Warden killed it within 5 s, false when it was
    /// still running after `grace` (then the test stops it).
    fn launch_is_blocked(&self, grace: Duration) -> bool {
        self.launch_is_blocked_in(self.home.path(), grace)
    }

    /// [`Desk::launch_is_blocked`], with `dir` as the launch's working directory.
    fn launch_is_blocked_in(&self, dir: &Path, grace: Duration) -> bool {
        let mut child = self.launch_in(dir);
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert_eq!(status.signal(), Some(9), "the fake tool ended without SIGKILL: {status:?}");
                return true;
            }
            if started.elapsed() > grace {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn watch(&self) -> Watch {
        let mut child = self
            .command(&["watch", "--json", "--source", "proc-connector", "--no-sweep", "--state-dir"])
            .arg(self.state())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting warden watch");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready) = channel();
        let err = BufReader::new(child.stderr.take().unwrap());
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                // Kept before `ready` is signalled: a test that reads the output once `watch`
                // returns must find the line that made it return.
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
                if line.contains("watching with") {
                    let _ = ready_tx.send(());
                }
            }
        });
        let (event_tx, events) = channel();
        let out = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    let _ = event_tx.send(value);
                }
            }
        });
        let ready = ready.recv_timeout(Duration::from_secs(20));
        assert!(ready.is_ok(), "warden watch did not start: {}", stderr.lock().unwrap());
        Watch { child, stderr, events }
    }
}

struct Watch {
    child: Child,
    stderr: Arc<Mutex<String>>,
    #[allow(dead_code)]
    events: Receiver<Value>,
}

impl Watch {
    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it returns `Some`, for at most `limit`.
fn eventually<T>(limit: Duration, what: impl Fn() -> String, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(started.elapsed() < limit, "timed out after {limit:?} waiting for {}", what());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn pending_request_id(server: &Server) -> String {
    eventually(
        Duration::from_secs(10),
        || "the request on the server".to_string(),
        || {
            let list = server.admin("GET", "/admin/exceptions?state=pending", None);
            let items = list.as_array().cloned().or_else(|| list["requests"].as_array().cloned()).unwrap_or_default();
            items.iter().find(|r| r["state"] == "pending").map(|r| r["id"].as_str().unwrap().to_owned())
        },
    )
}

/// The whole story on one backend.
fn story(kind: &str) {
    let scratch = tempfile::tempdir().unwrap();
    let Some(database) = database(kind, scratch.path()) else { return };
    let desk = Desk::new();
    let server = Server::start(database, scratch.path());
    let device = desk.enroll(&server.url());

    // The token is in the keyring and nowhere in the state directory.
    let account = format!("{device}@{}", server.url());
    let token = desk.keyring.lookup(desk.home.path(), &account).expect("the token is in the Secret Service");
    for entry in std::fs::read_dir(desk.state()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains(&token), "the token leaked into {}", path.display());
    }

    // An MCP server in the developer's Claude Code configuration: the device's inventory reports it.
    std::fs::write(
        desk.home.path().join(".claude.json"),
        r#"{"mcpServers": {"docs": {"command": "npx", "args": ["-y", "@acme/docs-mcp"]}}}"#,
    )
    .unwrap();
    let watch = desk.watch();
    eventually(
        Duration::from_secs(5),
        || "the agent to start syncing".to_string(),
        || watch.stderr().contains("enrolled with").then_some(()),
    );
    let inventory = eventually(
        Duration::from_secs(15),
        || format!("the device's inventory on the server: {}", server.admin("GET", "/admin/inventory", None)),
        || {
            let list = server.admin("GET", "/admin/inventory", None);
            list["devices"].as_array()?.iter().find(|d| d["device_id"] == device.as_str()).cloned()
        },
    );
    let docs = &inventory["report"]["mcp_servers"][0];
    assert_eq!(
        (&docs["client"], &docs["name"], &docs["user"]),
        (&json!("claude-code"), &json!("docs"), &json!(desk.user))
    );
    assert_eq!(docs["command"], json!(["npx", "-y", "@acme/docs-mcp"]));
    assert!(desk.launch_is_blocked(Duration::from_secs(5)), "the fake Claude Code was not blocked");
    let blocked = eventually(
        Duration::from_secs(15),
        || "the block event on the server".to_string(),
        || server.events_of(&device).into_iter().find(|e| e["event"]["tool"] == "claude-code"),
    );
    assert_eq!(blocked["event"]["outcome"], "killed");

    // File a request, approve it through the admin API: the same launch now starts.
    let out = desk.ok(&["request", "--tool", "claude-code", "--reason", REASON, "--duration", "1h"]);
    assert!(out.contains("Sent to"), "{out}");
    let id = pending_request_id(&server);
    let approved = server.admin(
        "POST",
        &format!("/admin/exceptions/{id}/approve"),
        Some(json!({"approver": "lead@example.com", "comment": "ok for the migration", "duration_seconds": 15})),
    );
    assert_eq!(approved["state"], "approved", "{approved}");
    let approved_at = Instant::now();
    let waited = eventually(
        Duration::from_secs(5),
        || {
            format!(
                "the approval to unblock the launch: {approved}\n{}\n{}",
                watch.stderr(),
                desk.ok(&["requests", "--json"])
            )
        },
        || (!desk.launch_is_blocked(Duration::from_millis(400))).then(|| approved_at.elapsed()),
    );
    eprintln!("approval → launch allowed after at most {waited:?} (including the 400 ms survival check)");
    let requests = desk.json(&["requests", "--json"]);
    assert_eq!(requests["requests"][0]["state"], "approved", "{requests}");

    // At expiry it is blocked again, with no sync needed.
    let expires_at = approved["expires_at"].as_i64().unwrap();
    eventually(
        Duration::from_secs(20),
        || "the exception to expire".to_string(),
        || {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
            (now > expires_at).then_some(())
        },
    );
    assert!(desk.launch_is_blocked(Duration::from_secs(5)), "the launch was not blocked after expiry");

    let status = desk.json(&["status", "--json"]);
    assert_eq!(status["server"], server.url());
    assert_eq!(status["device_id"], device);
    assert_eq!(status["connectivity"], "online");
    assert_eq!(status["token"], "os-keyring");
    assert_eq!(status["monitor"]["running"], true);
    assert_eq!(status["monitor"]["source"], "proc-connector");
    assert!(status["policy_version"].as_i64().unwrap() >= 1);
    watch.stop();
}

#[test]
fn story_on_sqlite() {
    story("sqlite");
}

#[test]
fn story_on_postgres() {
    story("postgres");
}

/// Issue 10 row 7: a device enrolled as an account (`dev@corp.example`) while the login name
/// differs, an exception requested with `--scope ../…` through a symlink: the server stores
/// the canonical folder, the approval applies to launches there (reached through the link
/// too), and the launch is attributed to the account. Outside the folder it stays blocked.
fn a_scoped_exception_for_an_account(kind: &str) {
    const ACCOUNT: &str = "dev@corp.example";
    let scratch = tempfile::tempdir().unwrap();
    let Some(database) = database(kind, scratch.path()) else { return };
    let desk = Desk::new();
    let server = Server::start(database, scratch.path());
    let out = desk.ok(&["enroll", "--server", &server.url(), "--secret", SECRET, "--user", ACCOUNT]);
    assert!(out.contains(&format!("Local user {} (uid", desk.user)) && out.contains(ACCOUNT), "{out}");
    let device = desk.json(&["status", "--json"])["device_id"].as_str().unwrap().to_owned();

    // ~/src/vendor-sdk, reached from ~/work as ../sdk-link (a symlink to it).
    let home = std::fs::canonicalize(desk.home.path()).unwrap();
    let (sdk, work, link) = (home.join("src/vendor-sdk"), home.join("work"), home.join("sdk-link"));
    std::fs::create_dir_all(sdk.join("lib")).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    std::os::unix::fs::symlink(&sdk, &link).unwrap();

    let watch = desk.watch();
    eventually(
        Duration::from_secs(5),
        || "the agent to start syncing".to_string(),
        || watch.stderr().contains("enrolled with").then_some(()),
    );
    assert!(desk.launch_is_blocked_in(&sdk, Duration::from_secs(5)), "the fake Claude Code was not blocked");

    // A folder that does not exist is a clear error, and nothing is filed.
    let missing = desk
        .command(&["request", "--tool", "claude-code", "--reason", REASON, "--scope", "../no-such-sdk"])
        .current_dir(&work)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success() && said.contains("no such directory"), "{said}");

    let filed = desk
        .command(&["request", "--tool", "claude-code", "--reason", REASON, "--duration", "1h", "--scope"])
        .arg("../sdk-link")
        .current_dir(&work)
        .output()
        .unwrap();
    assert!(filed.status.success(), "{}", String::from_utf8_lossy(&filed.stderr));
    let id = pending_request_id(&server);
    let pending = server.admin("GET", "/admin/exceptions?state=pending", None);
    let items = pending.as_array().cloned().or_else(|| pending["requests"].as_array().cloned()).unwrap_or_default();
    let request = items.into_iter().find(|r| r["id"] == json!(id)).expect("the filed request");
    assert_eq!(request["scope"], json!(sdk.to_str().unwrap()), "the canonical folder is filed: {request}");
    assert_eq!(request["user"], ACCOUNT, "{request}");

    // The account may not approve its own request, in either spelling.
    for own in [ACCOUNT, "dev"] {
        let refused = server.admin(
            "POST",
            &format!("/admin/exceptions/{id}/approve"),
            Some(json!({"approver": own, "comment": "mine"})),
        );
        assert_eq!(refused["code"], "self_approval", "{refused}");
    }
    let approved = server.admin(
        "POST",
        &format!("/admin/exceptions/{id}/approve"),
        Some(json!({"approver": "lead@example.com", "comment": "ok for the migration"})),
    );
    assert_eq!(approved["state"], "approved", "{approved}");

    // Inside the folder (by its own path, below it, and through the symlink) it runs.
    eventually(
        Duration::from_secs(5),
        || format!("the approval to unblock the launch in {}\n{}", sdk.display(), watch.stderr()),
        || (!desk.launch_is_blocked_in(&sdk, Duration::from_secs(2))).then_some(()),
    );
    assert!(!desk.launch_is_blocked_in(&sdk.join("lib"), Duration::from_secs(2)), "below the scope");
    assert!(!desk.launch_is_blocked_in(&link, Duration::from_secs(2)), "through the symlink");
    // Outside it, it is still blocked.
    assert!(desk.launch_is_blocked_in(&work, Duration::from_secs(5)), "outside the scope");

    // The allowed launch is the account's, on the server. It is uploaded with the next sync;
    // `warden sync` runs one now rather than waiting for the loop's interval.
    let allowed = eventually(
        Duration::from_secs(15),
        || format!("the allowed launch on the server: {:#?}\n{}", server.events_of(&device), watch.stderr()),
        || {
            desk.ok(&["sync"]);
            server.events_of(&device).into_iter().find(|e| e["event"]["exception"] == json!(id))
        },
    );
    assert_eq!(allowed["event"]["user"], ACCOUNT, "{allowed}");
    assert_eq!(allowed["event"]["outcome"], "allowed", "{allowed}");
    watch.stop();
}

#[test]
fn a_scoped_exception_for_an_account_on_sqlite() {
    a_scoped_exception_for_an_account("sqlite");
}

#[test]
fn a_scoped_exception_for_an_account_on_postgres() {
    a_scoped_exception_for_an_account("postgres");
}

fn server_down_loses_nothing_and_duplicates_nothing(kind: &str) {
    let scratch = tempfile::tempdir().unwrap();
    let Some(db) = database(kind, scratch.path()) else { return };
    let desk = Desk::new();
    let mut server = Server::start(db, scratch.path());
    let device = desk.enroll(&server.url());
    let watch = desk.watch();

    server.kill();
    for _ in 0..3 {
        assert!(desk.launch_is_blocked(Duration::from_secs(5)), "blocking continues with the server down");
    }
    let out = desk.ok(&["request", "--tool", "claude-code", "--reason", REASON, "--duration", "1h"]);
    assert!(out.contains("stays queued"), "{out}");
    let status = desk.json(&["status", "--json"]);
    assert_eq!(status["outbox"]["requests"], 1, "{status}");
    assert!(status["connectivity"].as_str().unwrap().starts_with("offline"), "{status}");

    server.restart();
    // The running agent's sync loop delivers everything by itself (retry with backoff).
    let events = eventually(
        Duration::from_secs(40),
        || format!("the three blocks on the server: {}", watch.stderr()),
        || {
            // As root the agent sees every exec of the machine: other tests' tools (Qwen Code in
            // the gateway's tests) are events too, so count this test's tool only.
            let events: Vec<Value> =
                server.events_of(&device).into_iter().filter(|e| e["event"]["tool"] == "claude-code").collect();
            (events.len() >= 3).then_some(events)
        },
    );
    assert_eq!(events.len(), 3, "no duplicates: {events:#?}");
    pending_request_id(&server);
    let list = server.admin("GET", "/admin/exceptions", None);
    let items = list.as_array().cloned().or_else(|| list["requests"].as_array().cloned()).unwrap_or_default();
    assert_eq!(items.len(), 1, "the request arrived exactly once: {list}");
    watch.stop();
}

#[test]
fn server_down_loses_nothing_and_duplicates_nothing_on_sqlite() {
    server_down_loses_nothing_and_duplicates_nothing("sqlite");
}

#[test]
fn server_down_loses_nothing_and_duplicates_nothing_on_postgres() {
    server_down_loses_nothing_and_duplicates_nothing("postgres");
}

fn stored_event(i: usize) -> LaunchEvent {
    LaunchEvent {
        id: format!("00000000-0000-4000-8000-{i:012}"),
        at_ms: 1_700_000_000_000 + i as i64,
        pid: 1000 + i as u32,
        user: Some("dev".into()),
        exe: "/home/dev/.local/share/claude/versions/2.1.37".into(),
        argv: vec!["claude".into()],
        cwd: Some("/home/dev/src".into()),
        tool: Some("claude-code".into()),
        action: Action::Block,
        outcome: Outcome::Killed,
        rule: "tool:claude-code".into(),
        reason: "blocked".into(),
        exception: None,
        policy_version: Some("1".into()),
        source: "proc-connector".into(),
    }
}

fn an_uploader_killed_mid_upload_loses_and_duplicates_nothing(kind: &str) {
    const EVENTS: usize = 3000;
    let scratch = tempfile::tempdir().unwrap();
    let Some(db) = database(kind, scratch.path()) else { return };
    let desk = Desk::new();
    let server = Server::start(db, scratch.path());
    let device = desk.enroll(&server.url());
    {
        let store = Store::open(desk.state().join("events.db")).unwrap();
        for i in 0..EVENTS {
            store.append_launch(&stored_event(i)).unwrap();
        }
    }
    // Kill `warden sync` at increasing moments until one dies with part of the outbox sent.
    let mut interrupted = false;
    for delay_ms in [150u64, 250, 400, 600, 900] {
        let mut child = desk.command(&["sync"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill();
        let _ = child.wait();
        let on_server = server.events_of(&device).len();
        if !finished && on_server < EVENTS {
            interrupted = true;
            break;
        }
    }
    assert!(interrupted, "could not kill the uploader mid-upload at any of the tried moments");
    let out = desk.json(&["sync", "--json"]);
    assert!(out["errors"].as_array().unwrap().is_empty(), "{out}");
    let events = server.events_of(&device);
    assert_eq!(events.len(), EVENTS, "every event exactly once");
    let mut ids: Vec<&str> = events.iter().map(|e| e["event"]["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), EVENTS);
    assert_eq!(desk.json(&["status", "--json"])["outbox"]["events"], 0);
}

#[test]
fn an_uploader_killed_mid_upload_loses_and_duplicates_nothing_on_sqlite() {
    an_uploader_killed_mid_upload_loses_and_duplicates_nothing("sqlite");
}

#[test]
fn an_uploader_killed_mid_upload_loses_and_duplicates_nothing_on_postgres() {
    an_uploader_killed_mid_upload_loses_and_duplicates_nothing("postgres");
}

/// A proxy in front of the server that can rewrite the policy it serves: `enforce` becomes
/// `monitor` (same length), the downgrade an attacker on the path would want.
struct TamperingProxy {
    port: u16,
    tamper: Arc<AtomicBool>,
}

impl TamperingProxy {
    fn start(upstream: u16) -> TamperingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let tamper = Arc::new(AtomicBool::new(false));
        let flag = tamper.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let flag = flag.clone();
                std::thread::spawn(move || {
                    let _ = relay(client, upstream, &flag);
                });
            }
        });
        TamperingProxy { port, tamper }
    }
}

/// Relays one request (forcing `Connection: close`) and its answer.
fn relay(mut client: TcpStream, upstream: u16, tamper: &AtomicBool) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    let mut length = 0usize;
    let mut first = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if first.is_empty() {
            first = line.clone();
        }
        let lower = line.to_ascii_lowercase();
        if let Some(value) = lower.strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("connection:") {
            continue;
        }
        if line == "\r\n" {
            head.extend_from_slice(b"Connection: close\r\n\r\n");
            break;
        }
        head.extend_from_slice(line.as_bytes());
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let mut server = TcpStream::connect(("127.0.0.1", upstream))?;
    server.write_all(&head)?;
    server.write_all(&body)?;
    let mut answer = Vec::new();
    server.read_to_end(&mut answer)?;
    if tamper.load(Ordering::Relaxed) && first.contains("/api/v1/device/policy") {
        let text = String::from_utf8_lossy(&answer).replace("enforce", "monitor");
        answer = text.into_bytes();
    }
    client.write_all(&answer)?;
    client.flush()
}

fn a_tampered_policy_is_rejected_and_the_last_good_one_stays(kind: &str) {
    let scratch = tempfile::tempdir().unwrap();
    let Some(db) = database(kind, scratch.path()) else { return };
    let desk = Desk::new();
    let server = Server::start(db, scratch.path());
    let proxy = TamperingProxy::start(server.port);
    desk.enroll(&format!("http://127.0.0.1:{}", proxy.port));
    assert_eq!(desk.json(&["status", "--json"])["policy_version"], 1);

    // A new policy (v2) is published; on the way it is tampered with.
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/warden-policy/src/default-policy.toml"),
    )
    .unwrap();
    let uploaded = server.admin("POST", "/admin/policies", Some(json!({"source": source, "uploaded_by": "lead"})));
    assert_eq!(uploaded["version"], 2, "{uploaded}");
    proxy.tamper.store(true, Ordering::Relaxed);
    let out = desk.json(&["sync", "--json"]);
    assert!(out["policy"].as_str().unwrap().starts_with("REJECTED"), "{out}");
    let status = desk.json(&["status", "--json"]);
    assert_eq!(status["policy_version"], 1, "the last good policy stays: {status}");
    assert_eq!(status["last_incident"]["kind"], "policy-signature", "{status}");
    assert_eq!(status["monitor"]["mode"], "enforce");

    // The same policy, untouched, is accepted.
    proxy.tamper.store(false, Ordering::Relaxed);
    let out = desk.json(&["sync", "--json"]);
    assert_eq!(out["policy"], "updated to version 2", "{out}");
}

#[test]
fn a_tampered_policy_is_rejected_and_the_last_good_one_stays_on_sqlite() {
    a_tampered_policy_is_rejected_and_the_last_good_one_stays("sqlite");
}

#[test]
fn a_tampered_policy_is_rejected_and_the_last_good_one_stays_on_postgres() {
    a_tampered_policy_is_rejected_and_the_last_good_one_stays("postgres");
}

fn a_corrupt_local_store_is_moved_aside_and_enforcement_continues_offline(kind: &str) {
    let scratch = tempfile::tempdir().unwrap();
    let Some(db) = database(kind, scratch.path()) else { return };
    let desk = Desk::new();
    let mut server = Server::start(db, scratch.path());
    desk.enroll(&server.url());
    // A policy that differs from the embedded default only in its message: proof of which
    // policy the offline agent enforces.
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/warden-policy/src/default-policy.toml"),
    )
    .unwrap();
    let marked = source.replacen("name = \"", "name = \"ACME cached ", 1);
    assert_ne!(marked, source, "the default policy has a name line");
    server.admin("POST", "/admin/policies", Some(json!({"source": marked})));
    desk.ok(&["sync"]);
    server.kill();

    let db = desk.state().join("events.db");
    std::fs::write(&db, b"this is not a SQLite database, it was damaged on disk").unwrap();
    let watch = desk.watch();
    eventually(
        Duration::from_secs(5),
        || format!("the damage to be reported: {}", watch.stderr()),
        || watch.stderr().contains("moved to").then_some(()),
    );
    let stderr = watch.stderr();
    assert!(stderr.contains("ACME cached"), "the cached signed policy is in force offline: {stderr}");
    assert!(desk.launch_is_blocked(Duration::from_secs(5)), "enforcement continues");
    let aside: Vec<_> = std::fs::read_dir(desk.state())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("events.db.corrupt-"))
        .collect();
    assert!(!aside.is_empty(), "the damaged file was kept for inspection");
    watch.stop();
}

#[test]
fn a_corrupt_local_store_is_moved_aside_and_enforcement_continues_offline_on_sqlite() {
    a_corrupt_local_store_is_moved_aside_and_enforcement_continues_offline("sqlite");
}

#[test]
fn a_corrupt_local_store_is_moved_aside_and_enforcement_continues_offline_on_postgres() {
    a_corrupt_local_store_is_moved_aside_and_enforcement_continues_offline("postgres");
}

/// The state directory's file `name` as JSON.
fn state_json(desk: &Desk, name: &str) -> Value {
    let path = desk.state().join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Files of the state directory kept aside as evidence (`NAME.rejected-…`), by original name.
fn kept_aside(desk: &Desk) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(desk.state())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_string_lossy().split_once(".rejected-").map(|(name, _)| name.to_owned()))
        .collect();
    names.sort();
    names
}

/// An approved exception arrives signed for this device; a revoked one replayed from a saved
/// copy (the developer's own files, a dead server) and an exception added to the cache are
/// refused at load with incidents the server receives; a rewritten policy is never confirmed
/// by a 304.
fn an_approved_exception_arrives_signed_and_a_tampered_copy_is_refused(kind: &str) {
    let scratch = tempfile::tempdir().unwrap();
    let Some(database) = database(kind, scratch.path()) else { return };
    let desk = Desk::new();
    let mut server = Server::start(database, scratch.path());
    let device = desk.enroll(&server.url());
    let pinned = state_json(&desk, "enrollment.json")["policy_public_key"].as_str().unwrap().to_owned();

    // Filed, approved, synced: the list on disk is signed by the pinned key, for this device.
    desk.ok(&["request", "--tool", "claude-code", "--reason", REASON, "--duration", "1h"]);
    let id = pending_request_id(&server);
    let approved = server.admin(
        "POST",
        &format!("/admin/exceptions/{id}/approve"),
        Some(json!({"approver": "lead@example.com", "comment": "ok for the migration"})),
    );
    assert_eq!(approved["state"], "approved", "{approved}");
    assert_eq!(desk.json(&["sync", "--json"])["active_exceptions"], 1);
    let granted_file = std::fs::read(desk.state().join("exceptions.json")).unwrap();
    let envelope: warden_api::ExceptionsEnvelope =
        serde_json::from_value(state_json(&desk, "exceptions.json")["signed"].clone()).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let expect = warden_api::ListExpectation { device_id: &device, highest_sequence: None, now };
    let granted = warden_api::verify_exceptions(&envelope, &pinned, expect).expect("the list verifies");
    assert_eq!(granted.exceptions.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), [id.as_str()]);

    // Revoked; the next sync brings a newer list without it.
    let revoked = server.admin(
        "POST",
        &format!("/admin/exceptions/{id}/revoke"),
        Some(json!({"approver": "lead@example.com", "comment": "assessment done"})),
    );
    assert_eq!(revoked["state"], "revoked", "{revoked}");
    assert_eq!(desk.json(&["sync", "--json"])["active_exceptions"], 0);

    // The developer puts the saved list back and the server goes away: the restarted agent
    // refuses the replayed list (its sequence is below the one accepted) and blocks the tool.
    std::fs::write(desk.state().join("exceptions.json"), &granted_file).unwrap();
    server.kill();
    let watch = desk.watch();
    assert!(desk.launch_is_blocked(Duration::from_secs(5)), "the replayed exception was applied");
    watch.stop();
    let status = desk.json(&["status", "--json"]);
    assert_eq!(status["active_exceptions"], 0, "{status}");
    assert_eq!(status["last_incident"]["kind"], "exceptions-unverified", "{status}");
    assert!(status["last_incident"]["detail"].as_str().unwrap().contains("replayed"), "{status}");
    assert_eq!(kept_aside(&desk), ["exceptions.json"]);

    // An exception of one's own written into the cache (signature kept) is refused as well.
    let mut cache = state_json(&desk, "exceptions.json");
    let mut body: Value = serde_json::from_str(cache["signed"]["body"].as_str().unwrap()).unwrap();
    body["exceptions"] = json!([{"id": "mine", "user": desk.user, "tool": "claude-code",
        "starts_at": 0, "expires_at": now + 86_400}]);
    cache["signed"]["body"] = json!(body.to_string());
    std::fs::write(desk.state().join("exceptions.json"), cache.to_string()).unwrap();
    let status = desk.json(&["status", "--json"]);
    assert_eq!(status["active_exceptions"], 0, "{status}");
    assert!(status["last_incident"]["detail"].as_str().unwrap().contains("signature"), "{status}");
    assert_eq!(kept_aside(&desk), ["exceptions.json", "exceptions.json"]);

    // Both policy files rewritten to monitor mode, the server's ETag kept: the next sync sends
    // no ETag (nothing verifies), so the server's signed policy comes back instead of a 304.
    server.restart();
    for name in ["policy.json", "policy.verified.json"] {
        let mut cached = state_json(&desk, name);
        let text = cached["envelope"]["policy"].as_str().unwrap().replace("\"enforce\"", "\"monitor\"");
        cached["envelope"]["policy"] = json!(text);
        std::fs::write(desk.state().join(name), cached.to_string()).unwrap();
    }
    let synced = desk.json(&["sync", "--json"]);
    assert_eq!(synced["policy"], "updated to version 1", "{synced}");
    assert_eq!(synced["errors"], json!([]), "{synced}");
    assert_eq!(desk.json(&["status", "--json"])["monitor"]["mode"], "enforce");

    // Every refusal reached the server as an incident with that sync.
    let incidents: Vec<String> = server
        .events_of_kind(&device, "incident")
        .into_iter()
        .map(|e| e["event"]["code"].as_str().unwrap().to_owned())
        .collect();
    let count = |code: &str| incidents.iter().filter(|c| *c == code).count();
    assert_eq!(count("exceptions-unverified"), 2, "{incidents:?}");
    assert_eq!(count("policy-cache-unverified"), 2, "{incidents:?}");
}

#[test]
fn an_approved_exception_arrives_signed_and_a_tampered_copy_is_refused_on_sqlite() {
    an_approved_exception_arrives_signed_and_a_tampered_copy_is_refused("sqlite");
}

#[test]
fn an_approved_exception_arrives_signed_and_a_tampered_copy_is_refused_on_postgres() {
    an_approved_exception_arrives_signed_and_a_tampered_copy_is_refused("postgres");
}

/// A CA in `dir` named `ca`, and a certificate for 127.0.0.1 it issued named `leaf`: returns the
/// chain file (leaf then CA, as certbot's fullchain.pem), the key and the CA (openssl, P-256).
fn issue(dir: &Path, ca: &str, leaf: &str) -> Tls {
    let script = format!(
        "set -e; cd '{dir}'
         [ -f {ca}.pem ] || openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout {ca}.key \\
           -out {ca}.pem -days 2 -subj '/CN=Warden test {ca}' -addext basicConstraints=critical,CA:TRUE \\
           -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
         openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout {leaf}.key -out {leaf}.csr \\
           -subj /CN=127.0.0.1 2>/dev/null
         printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\nbasicConstraints=CA:FALSE\\n' > {leaf}.ext
         openssl x509 -req -in {leaf}.csr -CA {ca}.pem -CAkey {ca}.key -CAcreateserial -out {leaf}.pem -days 1 \\
           -extfile {leaf}.ext 2>/dev/null
         cat {leaf}.pem {ca}.pem > {leaf}-chain.pem",
        dir = dir.display()
    );
    let out = Command::new("sh").args(["-c", &script]).output().expect("running openssl");
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    Tls {
        chain: dir.join(format!("{leaf}-chain.pem")),
        key: dir.join(format!("{leaf}.key")),
        ca: dir.join(format!("{ca}.pem")),
    }
}

/// Issue 14: a device enrolled with a code a developer made on the console belongs to that
/// developer and pins the CA the code carries: it syncs over TLS, keeps syncing when the server's
/// certificate is renewed by the same CA, and refuses a certificate from any other CA for the
/// same address (a man in the middle). Its token rotates on request, and the old one stops
/// working on the server.
fn a_device_enrolled_with_a_code_pins_its_servers_ca(kind: &str) {
    let scratch = tempfile::tempdir().unwrap();
    let Some(database) = database(kind, scratch.path()) else { return };
    let first = issue(scratch.path(), "ca-a", "leaf-1");
    let mut server = Server::start_with(database.clone(), scratch.path(), Some(first.clone()));
    let password = scratch.path().join("password");
    std::fs::write(&password, "correct horse battery staple\n").unwrap();
    let added = Command::new(server_binary())
        .args(["--database", &database, "user", "add", "dev@corp.example", "--role", "developer", "--password-file"])
        .arg(&password)
        .output()
        .unwrap();
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));

    // The developer signs in and makes a code (as the console does).
    let jar = scratch.path().join("cookies");
    let signed_in = server
        .curl()
        .args(["-c"])
        .arg(&jar)
        .args(["-H", "content-type: application/json", "--data-binary"])
        .arg(json!({"name": "dev@corp.example", "password": "correct horse battery staple"}).to_string())
        .arg(format!("{}/api/v1/session", server.url()))
        .output()
        .unwrap();
    let session: Value = serde_json::from_slice(&signed_in.stdout).expect("a session");
    let made = server
        .curl()
        .args(["-b"])
        .arg(&jar)
        .args(["-H", &format!("x-csrf-token: {}", session["csrf_token"].as_str().unwrap())])
        .args(["-H", "content-type: application/json", "--data-binary", "{}"])
        .arg(format!("{}/api/v1/admin/enrollment-codes", server.url()))
        .output()
        .unwrap();
    let made: Value = serde_json::from_slice(&made.stdout).expect("an enrollment code");
    let text = made["enrollment_code"].as_str().expect("an enrollment code").to_owned();
    let code = warden_api::EnrollmentCode::decode(&text).unwrap();
    assert_eq!(code.server, server.url());
    let ca_pem = std::fs::read_to_string(&first.ca).unwrap();
    assert_eq!(code.server_ca.as_deref().map(str::trim), Some(ca_pem.trim()), "the code carries the CA, not the leaf");

    let desk = Desk::new();
    let out = desk.ok(&["enroll", "--code", &text]);
    assert!(out.contains("user dev@corp.example"), "{out}");
    let status = desk.json(&["status", "--json"]);
    let device = status["device_id"].as_str().unwrap().to_owned();
    let synced = desk.json(&["sync", "--json"]);
    assert_eq!(synced["errors"], json!([]), "{synced}");
    assert_eq!(server.admin("GET", "/admin/devices", None)["devices"][0]["user"], "dev@corp.example");

    // The token rotates: the keyring holds the new one, and the old one is refused.
    let account = format!("{device}@{}", server.url());
    let old = desk.keyring.lookup(desk.home.path(), &account).unwrap();
    let rotated = desk.json(&["sync", "--rotate-token", "--json"]);
    assert_eq!(rotated["errors"], json!([]), "{rotated}");
    let new = desk.keyring.lookup(desk.home.path(), &account).unwrap();
    assert_ne!(old, new);
    let me = |token: &str| {
        let out = server
            .curl()
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .arg(format!("{}/api/v1/device/me", server.url()))
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    assert_eq!(me(&old)["code"], "unknown_token");
    assert_eq!(me(&new)["id"], device.as_str());

    // A renewal by the same CA: the device does not notice.
    server.kill();
    server.tls = Some(issue(scratch.path(), "ca-a", "leaf-2"));
    server.restart();
    let renewed = desk.json(&["sync", "--json"]);
    assert_eq!(renewed["errors"], json!([]), "{renewed}");

    // Another CA's certificate for the same address — what a man in the middle would present,
    // even one the system trusted — is refused before anything is sent.
    server.kill();
    let imposter = issue(scratch.path(), "ca-b", "imposter");
    server.tls = Some(imposter.clone());
    server.restart();
    // Made a root of this process's system store (rustls-native-certs reads SSL_CERT_FILE), the
    // imposter's CA satisfies a client that does not pin: the unpinned secret enrollment reaches
    // the server — which refuses the shared secret now that accounts exist.
    let unpinned = desk
        .command(&["enroll", "--server", &server.url(), "--secret", SECRET, "--state-dir"])
        .arg(scratch.path().join("other-state"))
        .env("SSL_CERT_FILE", &imposter.ca)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&unpinned.stderr);
    assert!(!unpinned.status.success() && said.contains("enrollment_code_required"), "{said}");
    let refused = desk.command(&["sync", "--json"]).env("SSL_CERT_FILE", &imposter.ca).output().unwrap();
    assert!(!refused.status.success());
    let report: Value = serde_json::from_slice(&refused.stdout).unwrap();
    let errors = report["errors"].to_string();
    assert!(errors.contains("cannot reach the server"), "{errors}");
}

#[test]
fn a_device_enrolled_with_a_code_pins_its_servers_ca_on_sqlite() {
    a_device_enrolled_with_a_code_pins_its_servers_ca("sqlite");
}

#[test]
fn a_device_enrolled_with_a_code_pins_its_servers_ca_on_postgres() {
    a_device_enrolled_with_a_code_pins_its_servers_ca("postgres");
}

/// Issue 14: the server's signing key is rotated while a device runs (`warden watch`). The
/// server restarts with the new key; the device follows the announcement the old key signed,
/// pins the new key, and accepts what the new key signs — the policy signed again at the
/// rotation, then a policy and an exception approved afterwards — with no incident.
fn the_signing_key_rotates_under_a_running_device(kind: &str) {
    let scratch = tempfile::tempdir().unwrap();
    let Some(database) = database(kind, scratch.path()) else { return };
    let desk = Desk::new();
    let mut server = Server::start(database.clone(), scratch.path());
    desk.enroll(&server.url());
    let watch = desk.watch();
    eventually(
        Duration::from_secs(10),
        || "the first sync".to_string(),
        || desk.json(&["status", "--json"])["policy_version"].as_i64().filter(|v| *v == 1),
    );
    let pinned = |desk: &Desk| -> String {
        let text = std::fs::read_to_string(desk.state().join("enrollment.json")).unwrap();
        serde_json::from_str::<Value>(&text).unwrap()["policy_public_key"].as_str().unwrap().to_owned()
    };
    let old_key = pinned(&desk);

    server.kill();
    let rotated = Command::new(server_binary())
        .args(["--database", &database, "rotate-signing-key"])
        .env("HOME", scratch.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&rotated.stdout).into_owned();
    assert!(rotated.status.success(), "{said}{}", String::from_utf8_lossy(&rotated.stderr));
    assert!(said.contains(&format!("Signing key rotated: {old_key} → ")), "{said}");
    let new_key = said.lines().next().unwrap().rsplit(' ').next().unwrap().to_owned();
    server.restart();

    // The running device moves its pin and takes version 2 (version 1 signed again).
    eventually(
        Duration::from_secs(20),
        || format!("the device to pin {new_key}: {}", desk.json(&["status", "--json"])),
        || (pinned(&desk) == new_key && desk.json(&["status", "--json"])["policy_version"] == 2).then_some(()),
    );
    // What the new key signs from now on is accepted: a new policy version and an exception.
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/warden-policy/src/default-policy.toml"),
    )
    .unwrap();
    let source = source.replacen("name = \"", "name = \"Rotated ", 1);
    let uploaded = server.admin("POST", "/admin/policies", Some(json!({"source": source, "uploaded_by": "ops"})));
    assert_eq!(uploaded["version"], 3, "{uploaded}");
    desk.ok(&["request", "--tool", "claude-code", "--reason", REASON, "--duration", "1h"]);
    let id = pending_request_id(&server);
    let approved = server.admin(
        "POST",
        &format!("/admin/exceptions/{id}/approve"),
        Some(json!({"approver": "ana@corp.example", "comment": "ok"})),
    );
    assert_eq!(approved["state"], "approved", "{approved}");
    let synced = desk.json(&["sync", "--json"]);
    assert_eq!(synced["errors"], json!([]), "{synced}");
    assert!(synced["policy"].as_str().unwrap().contains("version 3"), "{synced}");
    assert_eq!(synced["active_exceptions"], 1, "{synced}");
    let status = desk.json(&["status", "--json"]);
    assert!(status["last_incident"].is_null(), "no incident: {status}");
    drop(watch);
}

#[test]
fn the_signing_key_rotates_under_a_running_device_on_sqlite() {
    the_signing_key_rotates_under_a_running_device("sqlite");
}

#[test]
fn the_signing_key_rotates_under_a_running_device_on_postgres() {
    the_signing_key_rotates_under_a_running_device("postgres");
}
