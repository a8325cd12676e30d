//! The tray as a client of the system service, end to end with real parts: `wardend` started as
//! root (scratch state directory and socket, no gate), enrolled with a real `warden-server`
//! (SQLite) for an account bound to an ordinary user created for the test; that user's desktop
//! (Xvfb, openbox, trayer, dunst on their own session bus: `tests/tray-e2e/desktop-session.sh`)
//! runs the real tray through tauri-driver with `WARDEN_SOCKET` pointing at the service.
//!
//! Asserted: the tray's menu (read over the session bus as a StatusNotifier host reads it,
//! `com.canonical.dbusmenu`) says "Protected by the Warden service"; the
//! user's blocked launch of a fake Claude Code reaches the tray as a pop-up; a request filed in
//! the tray's exception window reaches the server as the account the service binds that uid to;
//! killing the tray leaves the service enforcing.
//!
//! Runs in the `process-monitor` nextest group: the service enforces on every process of the
//! machine. Everything is killed by pid; the user is removed, also when an assertion fails.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const TRAY: &str = env!("CARGO_BIN_EXE_warden-tray");
const ADMIN: &str = "tray-e2e-admin-token-0123456789abcdef";
const SECRET: &str = "tray-e2e-enroll-secret-0123456789";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A binary cargo builds beside the tray (one target folder for the workspace).
fn sibling(name: &str) -> PathBuf {
    let path = Path::new(TRAY).with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: `cargo build -p warden-service --bin wardend -p warden-server --bin warden-server`",
        path.display()
    );
    path
}

/// tauri-driver, as `cargo xtask test` installs it (`cargo install tauri-driver --version 2.1.0`).
fn tauri_driver() -> PathBuf {
    let found = Command::new("bash").args(["-c", "command -v tauri-driver"]).output().unwrap();
    let path = String::from_utf8_lossy(&found.stdout).trim().to_owned();
    assert!(!path.is_empty(), "tauri-driver is missing: `cargo install tauri-driver --version 2.1.0 --locked`");
    PathBuf::from(path)
}

fn run(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("running {command:?}: {e}"))
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn eventually<T>(limit: Duration, what: impl Fn() -> String, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {}", what());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The scratch area, world-traversable: the user runs the copied binaries from it.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::Builder::new().prefix("warden-tray-svc-").tempdir_in("/tmp").unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let copies = [
            (PathBuf::from(TRAY), "warden-tray"),
            (sibling("wardend"), "wardend"),
            (sibling("warden-server"), "warden-server"),
            (tauri_driver(), "tauri-driver"),
            (repo_root().join("tests/tray-e2e/desktop-session.sh"), "desktop-session.sh"),
            (repo_root().join("tests/tray-e2e/menu-labels.sh"), "menu-labels.sh"),
        ];
        for (from, name) in copies {
            let to = bin.join(name);
            std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let built = run(Command::new("cc")
            .arg("-O1")
            .arg("-o")
            .arg(bin.join("fake-tool"))
            .arg(repo_root().join("tests/data/monitor/fake_tool.c")));
        assert!(built.status.success(), "compiling the fake tool: {}", text(&built));
        Scratch(dir)
    }

    fn path(&self, rest: &str) -> PathBuf {
        self.0.path().join(rest)
    }
}

/// An ordinary local user made for this test, removed (with every process of theirs) on drop.
struct TestUser {
    name: String,
    home: PathBuf,
}

impl TestUser {
    fn create(scratch: &Scratch) -> TestUser {
        let name = format!("wtray{}", std::process::id() % 100_000);
        let home = scratch.path(&format!("home-{name}"));
        let _ = run(Command::new("userdel").arg(&name));
        let made = run(Command::new("useradd")
            .args(["--no-create-home", "--shell", "/bin/bash", "--home-dir"])
            .arg(&home)
            .arg(&name));
        assert!(made.status.success(), "useradd {name}: {}", text(&made));
        let user = TestUser { name, home };
        std::fs::create_dir_all(user.home.join(".local/share/claude/versions")).unwrap();
        std::fs::create_dir_all(user.home.join("desktop")).unwrap();
        let owned = run(Command::new("chown").arg("-R").arg(format!("{}:", user.name)).arg(&user.home));
        assert!(owned.status.success(), "{}", text(&owned));
        user
    }

    /// A bash command line run as this user in a clean environment plus `env`.
    fn command(&self, env: &[(&str, String)], script: &str) -> Command {
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid", &self.name, "--regid", &self.name, "--init-groups", "--", "env", "-i"])
            .arg(format!("HOME={}", self.home.display()))
            .arg("PATH=/usr/local/bin:/usr/bin:/bin")
            .args(env.iter().map(|(k, v)| format!("{k}={v}")))
            .args(["bash", "-c", script])
            .current_dir(&self.home);
        command
    }

    fn uid(&self) -> u32 {
        let id = run(Command::new("id").args(["-u", &self.name]));
        String::from_utf8_lossy(&id.stdout).trim().parse().unwrap()
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = run(Command::new("pkill").args(["-KILL", "-u", &self.name]));
        std::thread::sleep(Duration::from_millis(200));
        let _ = run(Command::new("userdel").arg(&self.name));
    }
}

/// A child killed by pid on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A child's stderr, collected by a thread (so the child never blocks on a full pipe).
fn collect_stderr(
    child: &mut Child,
    ready_line: &str,
) -> (std::sync::Arc<std::sync::Mutex<String>>, std::sync::mpsc::Receiver<()>) {
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (ready, started) = std::sync::mpsc::channel();
    let sink = log.clone();
    let wanted = ready_line.to_owned();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if line.contains(&wanted) {
                let _ = ready.send(());
            }
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    (log, started)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `curl` with a JSON body: (HTTP status, answer).
fn curl(args: &[&str], body: Option<&Value>) -> (u16, Value) {
    let mut command = Command::new("curl");
    command.args(["-sS", "-m", "30", "-w", "\n%{http_code}"]).args(args);
    if let Some(body) = body {
        command.args(["-H", "content-type: application/json", "--data-binary", &body.to_string()]);
    }
    let output = run(&mut command);
    let out = String::from_utf8_lossy(&output.stdout).to_string();
    let (answer, code) = out.rsplit_once('\n').unwrap_or(("", &out));
    let code = code.trim().parse().unwrap_or_else(|_| panic!("curl {args:?}: {}", text(&output)));
    (code, serde_json::from_str(answer).unwrap_or(Value::String(answer.to_owned())))
}

/// A WebDriver session on tauri-driver (the W3C protocol over loopback HTTP).
struct WebDriver {
    port: u16,
    session: String,
}

impl WebDriver {
    fn call(&self, method: &str, route: &str, body: Option<Value>) -> Value {
        let url = format!("http://127.0.0.1:{}/session/{}{route}", self.port, self.session);
        let (code, answer) = curl(&["-X", method, &url], body.as_ref());
        assert_eq!(code, 200, "{method} {route}: {answer}");
        answer["value"].clone()
    }

    fn script(&self, body: &str) -> Value {
        self.call("POST", "/execute/sync", Some(json!({"script": body, "args": []})))
    }

    /// Switches to the window whose title contains `part`, if there is one.
    fn try_window_titled(&self, part: &str) -> Option<()> {
        let handles = self.call("GET", "/window/handles", None);
        for handle in handles.as_array()? {
            self.call("POST", "/window", Some(json!({"handle": handle})));
            if self.call("GET", "/title", None).as_str()?.to_lowercase().contains(&part.to_lowercase()) {
                return Some(());
            }
        }
        None
    }
}

impl Drop for WebDriver {
    fn drop(&mut self) {
        let url = format!("http://127.0.0.1:{}/session/{}", self.port, self.session);
        let _ = curl(&["-X", "DELETE", &url], None);
    }
}

/// The pids of processes of `uid` running `exe`.
fn pids_of(uid: u32, exe: &Path) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else { continue };
        let owner = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().next());
        if owner != Some(&uid.to_string()) {
            continue;
        }
        if std::fs::read_link(entry.path().join("exe")).is_ok_and(|e| e == exe) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn the_tray_is_a_client_of_the_service_and_quitting_it_stops_nothing() {
    let scratch = Scratch::new();
    let user = TestUser::create(&scratch);
    let account = format!("{}@corp.example", user.name);

    // The governance server (SQLite) and the service, both as root.
    let port = free_port();
    let mut server = Command::new(scratch.path("bin/warden-server"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--database", &format!("sqlite://{}?mode=rwc", scratch.path("server.db").display())])
        .args(["--admin-token", ADMIN, "--enroll-secret", SECRET])
        .env("HOME", scratch.path(""))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting warden-server");
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let server = Running(server);
    loop {
        let line = lines.next().expect("warden-server exited before listening").unwrap();
        if line.starts_with("Listening on") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let server_url = format!("http://127.0.0.1:{port}");

    std::fs::write(scratch.path("warden.toml"), "gate = []\n").unwrap();
    let socket = scratch.path("run/warden.sock");
    let mut wardend = Command::new(scratch.path("bin/wardend"))
        .arg("--config")
        .arg(scratch.path("warden.toml"))
        .arg("--state-dir")
        .arg(scratch.path("state"))
        .arg("--socket")
        .arg(&socket)
        .arg("--no-gate")
        // Never the machine's cgroup v2 root in a test (the network layer has its own tests).
        .arg("--no-network")
        // The vendor files go into the scratch tree, never the machine's /etc.
        .arg("--root")
        .arg(scratch.path("root"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting wardend");
    let (service_log, started) = collect_stderr(&mut wardend, "local API on");
    let wardend = Running(wardend);
    let service_log = || service_log.lock().unwrap().clone();
    assert!(started.recv_timeout(Duration::from_secs(20)).is_ok(), "wardend did not start: {}", service_log());
    let on_socket = |method: &str, route: &str, body: Option<&Value>| {
        curl(&["--unix-socket", socket.to_str().unwrap(), "-X", method, &format!("http://w/v1{route}")], body)
    };
    // Root enrolls the device for the account the user's uid is bound to.
    let (code, enrolled) = on_socket(
        "POST",
        "/enroll",
        Some(&json!({"server": server_url, "secret": SECRET, "owner": account, "local_users": [user.name]})),
    );
    assert_eq!(code, 200, "enrolling: {enrolled}\n{}", service_log());

    // The user's desktop: tauri-driver inside Xvfb + openbox + trayer + dunst on the user's
    // own session bus; the tray it starts finds the service through WARDEN_SOCKET.
    let desktop = user.home.join("desktop");
    let driver_port = free_port();
    let env = [
        ("WARDEN_SOCKET", socket.display().to_string()),
        ("XDG_CONFIG_HOME", user.home.join(".config").display().to_string()),
        ("XDG_DATA_HOME", user.home.join(".local/share").display().to_string()),
        ("XDG_CACHE_HOME", user.home.join(".cache").display().to_string()),
        ("XDG_STATE_HOME", user.home.join(".local/state").display().to_string()),
        ("XDG_RUNTIME_DIR", desktop.join("run").display().to_string()),
    ];
    let session_script = format!(
        "mkdir -p -m 700 {d}/run && exec dbus-run-session -- {bin}/desktop-session.sh {d} \
         bash -c 'echo \"$DBUS_SESSION_BUS_ADDRESS\" > {d}/bus; echo \"$DISPLAY\" > {d}/display-env; \
         exec {bin}/tauri-driver --port {driver_port}'",
        d = desktop.display(),
        bin = scratch.path("bin").display()
    );
    let session_log = std::fs::File::create(scratch.path("session.log")).unwrap();
    let session = user.command(&env, &session_script).stdout(Stdio::null()).stderr(session_log).spawn().unwrap();
    // What the user's desktop said (the tray's own lines among them), for failure messages.
    let desktop_logs = || {
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        format!(
            "--- session (tray, tauri-driver) ---\n{}\n--- dunst ---\n{}\n--- menu offered ---\n{}",
            read(scratch.path("session.log")),
            read(desktop.join("dunst.log")),
            read(desktop.join("menu-offered"))
        )
    };
    let _session = Running(session);
    eventually(
        Duration::from_secs(30),
        || "tauri-driver in the user's desktop".into(),
        || (curl(&[&format!("http://127.0.0.1:{driver_port}/status")], None).0 == 200).then_some(()),
    );
    let bus = std::fs::read_to_string(desktop.join("bus")).unwrap().trim().to_owned();
    let display = std::fs::read_to_string(desktop.join("display-env")).unwrap().trim().to_owned();
    let as_user = |script: &str| {
        let mut env = env.to_vec();
        env.push(("DBUS_SESSION_BUS_ADDRESS", bus.clone()));
        env.push(("DISPLAY", display.clone()));
        run(&mut user.command(&env, script))
    };

    let tray_bin = scratch.path("bin/warden-tray");
    let (code, created) = curl(
        &["-X", "POST", &format!("http://127.0.0.1:{driver_port}/session")],
        Some(&json!({"capabilities": {"alwaysMatch": {"tauri:options": {
            "application": tray_bin,
            "args": ["--open", "exceptions", "--popup-window-ms", "0"],
        }}}})),
    );
    assert_eq!(code, 200, "starting the tray through tauri-driver: {created}");
    let driver = WebDriver { port: driver_port, session: created["value"]["sessionId"].as_str().unwrap().to_owned() };

    // 1. Its menu, as the tray host reads it, says it is protected by the service.
    let menu = eventually(
        Duration::from_secs(15),
        || "the tray's menu on the session bus".into(),
        || {
            let labels = as_user(&scratch.path("bin/menu-labels.sh").display().to_string());
            let labels = String::from_utf8_lossy(&labels.stdout).to_string();
            labels.contains("Protected by the Warden service").then_some(labels)
        },
    );
    assert!(menu.contains("Quit tray (the service keeps protecting)"), "{menu}");
    assert!(!menu.contains("not tamper-proof"), "{menu}");
    let tray_pids = pids_of(user.uid(), &tray_bin);
    assert_eq!(tray_pids.len(), 1, "one tray process for the user: {tray_pids:?}");
    // No agent in the tray: the service decides, and the tray holds no state of its own.
    assert!(!user.home.join(".local/state/warden").exists(), "the tray made a personal state directory");

    // 2. The user's blocked launch produces the pop-up.
    let fake = user.home.join(".local/share/claude/versions/2.1.37");
    std::fs::copy(scratch.path("bin/fake-tool"), &fake).unwrap();
    run(Command::new("chown").arg(format!("{}:", user.name)).arg(&fake));
    let notify_calls = || {
        std::fs::read_to_string(desktop.join("dbus-monitor.log")).unwrap_or_default().matches("member=Notify").count()
    };
    let before = notify_calls();
    let launched = as_user(&format!("FAKE_SLEEP=30 {}; echo \"exit $?\"", fake.display()));
    assert!(text(&launched).contains("exit 137"), "the service did not kill the launch: {}", text(&launched));
    eventually(
        Duration::from_secs(10),
        || format!("the block's pop-up\n{}", service_log()),
        || (notify_calls() > before).then_some(()),
    );
    let log = std::fs::read_to_string(desktop.join("dbus-monitor.log")).unwrap();
    assert!(log.contains("string \"Claude Code was blocked: company policy requires it\""), "{log}");
    assert!(log.contains("Use Internal Assistant instead."), "the sanctioned assistant is offered: {log}");

    // 3. A request filed in the tray reaches the server as the account the uid is bound to.
    eventually(
        Duration::from_secs(20),
        || format!("the exception window\n{}", desktop_logs()),
        || driver.try_window_titled("exception requests"),
    );
    eventually(
        Duration::from_secs(15),
        || "the exception form".into(),
        || {
            driver
                .script("return document.querySelector('#tool option[value=claude-code]') !== null")
                .as_bool()
                .filter(|f| *f)
        },
    );
    driver.script(
        "const f = (id, v) => { const e = document.getElementById(id); e.value = v; \
         e.dispatchEvent(new Event('input')); e.dispatchEvent(new Event('change')); }; \
         const everywhere = document.querySelector('input[name=scope][value=everywhere]'); \
         if (everywhere) { everywhere.checked = true; everywhere.dispatchEvent(new Event('change')); } \
         f('tool', 'claude-code'); \
         f('justification', 'Reproducing a payments bug reported by a customer'); \
         document.querySelector('#request-form button[type=submit]').click();",
    );
    let badge = eventually(
        Duration::from_secs(20),
        || format!("the filed request in My requests: {}", driver.script("return document.body.innerText")),
        || {
            driver
                .script("return document.querySelector('#my-requests .badge')?.textContent")
                .as_str()
                .map(str::to_owned)
        },
    );
    assert!(badge.starts_with("Pending") || badge.starts_with("Waiting"), "{badge}");
    let filed = eventually(
        Duration::from_secs(20),
        || "the request on the server".into(),
        || {
            let (_, list) = curl(
                &[
                    "-H",
                    &format!("Authorization: Bearer {ADMIN}"),
                    &format!("{server_url}/api/v1/admin/exceptions?state=pending"),
                ],
                None,
            );
            let items = list.as_array().cloned().or_else(|| list["requests"].as_array().cloned()).unwrap_or_default();
            items.into_iter().find(|r| r["tool"] == "claude-code")
        },
    );
    assert_eq!(filed["user"], account.as_str(), "{filed}");
    assert_eq!(filed["justification"], "Reproducing a payments bug reported by a customer", "{filed}");

    // 4. Killing the tray stops nothing: the service still answers and still kills the tool.
    for pid in &tray_pids {
        run(Command::new("kill").args(["-KILL", &pid.to_string()]));
    }
    eventually(
        Duration::from_secs(10),
        || "the tray to be gone".into(),
        || pids_of(user.uid(), &tray_bin).is_empty().then_some(()),
    );
    let (code, hello) = on_socket("GET", "/hello", None);
    assert_eq!((code, hello["mode"].as_str()), (200, Some("service")), "{hello}");
    let again = as_user(&format!("FAKE_SLEEP=30 {}; echo \"exit $?\"", fake.display()));
    assert!(text(&again).contains("exit 137"), "not enforced after the tray was killed: {}", text(&again));
    drop(driver);
    drop(wardend);
    drop(server);
}
