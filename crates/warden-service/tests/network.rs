//! The network layer end to end: `wardend` with its eBPF hooks attached to a cgroup v2 folder
//! this test creates (never the root cgroup), governed names pointed at loopback addresses the
//! test listens on through a hosts file bind-mounted over `/etc/hosts` in a mount namespace of the
//! test's own (`unshare -m`: the machine's `/etc/hosts` is untouched). Clients run in that
//! namespace (`nsenter`) and in the test cgroup, connect by name, and `warden watch --json`
//! follows the service's live stream.
//!
//! Runs in the `process-monitor` nextest group and under the machine-wide lock
//! (`flock /tmp/warden-enforcing.lock cargo nextest run -p warden-service --test network`). Every
//! process is killed by pid and the cgroup removed on drop, also when an assertion fails.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const WARDEND: &str = env!("CARGO_BIN_EXE_wardend");

fn sibling(name: &str) -> PathBuf {
    let path = Path::new(WARDEND).with_file_name(name);
    assert!(path.exists(), "{} is missing: build the workspace (`cargo build --workspace`)", path.display());
    path
}

fn cgroup2_mount() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let line = mounts.lines().find(|l| l.split(' ').nth(2) == Some("cgroup2")).expect("a cgroup2 mount");
    PathBuf::from(line.split(' ').nth(1).unwrap())
}

/// The test's own cgroup v2 folder and everything started in it; killed and removed on drop.
struct Cell {
    cgroup: PathBuf,
    scratch: tempfile::TempDir,
    children: Vec<Child>,
}

impl Cell {
    fn new(tag: &str) -> Cell {
        let cgroup = cgroup2_mount().join(format!("warden-net-e2e-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir(&cgroup);
        std::fs::create_dir(&cgroup).unwrap();
        let scratch = tempfile::Builder::new().prefix("warden-net-").tempdir_in("/tmp").unwrap();
        std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Cell { cgroup, scratch, children: Vec::new() }
    }

    fn path(&self, rest: &str) -> PathBuf {
        self.scratch.path().join(rest)
    }

    fn keep(&mut self, child: Child) -> usize {
        self.children.push(child);
        self.children.len() - 1
    }
}

impl Drop for Cell {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Folders a killed service left below (the nftables layer's exception cgroup), deepest first.
        let mut below: Vec<PathBuf> = Vec::new();
        let mut stack = vec![self.cgroup.clone()];
        while let Some(folder) = stack.pop() {
            for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    below.push(entry.path());
                    stack.push(entry.path());
                }
            }
        }
        for folder in below.iter().rev() {
            let _ = std::fs::remove_dir(folder);
        }
        for _ in 0..100 {
            if std::fs::remove_dir(&self.cgroup).is_ok() || !self.cgroup.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("warning: could not remove {}", self.cgroup.display());
    }
}

/// `wardend` in a mount namespace of its own whose `/etc/hosts` is the test's file; its stderr
/// is collected. Returns the child's index in the cell and its log.
fn start_wardend(cell: &mut Cell, extra: &[&str]) -> (usize, std::sync::Arc<std::sync::Mutex<String>>) {
    start_wardend_in(cell, None, extra)
}

/// [`start_wardend`], in the network namespace `netns` (`ip netns` name) when given.
fn start_wardend_in(
    cell: &mut Cell,
    netns: Option<&str>,
    extra: &[&str],
) -> (usize, std::sync::Arc<std::sync::Mutex<String>>) {
    // The test's resolver configuration too, when it has one (the DNS story test).
    let resolv = cell.path("resolv.conf");
    let resolv =
        if resolv.exists() { format!("mount --bind {} /etc/resolv.conf && ", resolv.display()) } else { String::new() };
    let script = format!(
        "mount --bind {hosts} /etc/hosts && {resolv}exec {wardend} --config {config} --state-dir {state} --socket \
         {socket} --no-gate --no-controls {extra}",
        hosts = cell.path("hosts").display(),
        wardend = sibling("wardend").display(),
        config = cell.path("warden.toml").display(),
        state = cell.path("state").display(),
        socket = cell.path("warden.sock").display(),
        extra = extra.join(" "),
    );
    let mut command = match netns {
        Some(name) => {
            let mut command = Command::new("nsenter");
            command.arg(format!("--net=/run/netns/{name}")).arg("unshare");
            command
        }
        None => Command::new("unshare"),
    };
    let mut child = command
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = log.clone();
    let (ready, started) = mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            sink.lock().unwrap().push_str(&format!("{line}\n"));
            if line.contains("local API on") {
                let _ = ready.send(());
            }
        }
    });
    assert!(started.recv_timeout(Duration::from_secs(30)).is_ok(), "wardend did not start: {}", log.lock().unwrap());
    (cell.keep(child), log)
}

fn status(cell: &Cell) -> Value {
    let out = Command::new(sibling("warden"))
        .arg("--socket")
        .arg(cell.path("warden.sock"))
        .args(["status", "--json"])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("status: {}", String::from_utf8_lossy(&out.stderr)))
}

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

/// `warden watch --json` following the service: its lines arrive on the returned channel.
fn watch(cell: &mut Cell) -> mpsc::Receiver<Value> {
    let mut child = Command::new(sibling("warden"))
        .arg("--socket")
        .arg(cell.path("warden.sock"))
        .args(["watch", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (lines, received) = mpsc::channel();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if let Ok(value) = serde_json::from_str(&line) {
                let _ = lines.send(value);
            }
        }
    });
    cell.keep(child);
    received
}

/// The client: prints its pid, then for each `proto:host:port` connects (TCP) or sends a
/// datagram (UDP) by name and prints `ok` or the errno name.
const CLIENT: &str = r#"import errno, os, socket, sys
print(os.getpid(), flush=True)
for target in sys.argv[1:]:
    proto, host, port = target.split(":")
    try:
        if proto == "tcp":
            s = socket.create_connection((host, int(port)), timeout=2)
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b"x", (host, int(port)))
        s.close(); print("ok", flush=True)
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e)), flush=True)
"#;

/// Runs `program args…` inside the test cgroup and wardend's mount namespace (so the test's
/// hosts file names the addresses); returns its output lines (pid first).
fn client(cell: &Cell, wardend: u32, program: &Path, args: &[String]) -> Vec<String> {
    let script = format!(
        "echo $$ > {procs} && exec nsenter --mount=/proc/{wardend}/ns/mnt -- \"$@\"",
        procs = cell.cgroup.join("cgroup.procs").display()
    );
    let out = Command::new("sh")
        .args(["-c", &script, "client"])
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

/// The wardend process inside `unshare` (its pid is that of the `unshare` child after exec).
fn wardend_pid(cell: &Cell, index: usize) -> u32 {
    cell.children[index].id()
}

fn connects(received: &mpsc::Receiver<Value>, pid: u32, want: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut found = Vec::new();
    while found.len() < want && Instant::now() < deadline {
        if let Ok(value) = received.recv_timeout(Duration::from_millis(200))
            && value["kind"] == "connect"
            && value["pid"] == pid
        {
            found.push(value);
        }
    }
    found
}

struct Listeners {
    blocked: (TcpListener, u16),
    sanctioned: (TcpListener, u16),
    warned: (TcpListener, u16),
    moved: (TcpListener, u16),
}

fn listen(address: &str) -> (TcpListener, u16) {
    let listener = TcpListener::bind((address, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

fn setup(cell: &Cell, mode: &str) -> Listeners {
    let listeners = Listeners {
        blocked: listen("127.0.0.41"),
        sanctioned: listen("127.0.0.42"),
        warned: listen("127.0.0.43"),
        moved: listen("127.0.0.44"),
    };
    std::fs::write(
        cell.path("hosts"),
        "127.0.0.1 localhost\n127.0.0.41 api.anthropic.com claude.ai\n127.0.0.42 assistant.test.example\n\
         127.0.0.43 api.openai.com\n",
    )
    .unwrap();
    std::fs::write(
        cell.path("policy.toml"),
        format!(
            "name = \"network e2e\"\nmode = \"{mode}\"\ndefault_action = \"warn\"\n\
             [assistant]\nname = \"Test Assistant\"\nurl = \"https://assistant.test.example/\"\n\
             api_url = \"http://assistant.test.example:{}/v1\"\ntool = \"qwen-code\"\n\
             [tools.claude-code]\naction = \"block\"\nmessage = \"Claude Code sends source code outside the company network.\"\n",
            listeners.sanctioned.1
        ),
    )
    .unwrap();
    std::fs::write(
        cell.path("warden.toml"),
        format!(
            "gate = []\n[policy]\nfile = {:?}\n[network]\ncgroup = {:?}\nresolve_seconds = 1\n",
            cell.path("policy.toml").display().to_string(),
            cell.cgroup.display().to_string()
        ),
    )
    .unwrap();
    // A "renamed copy of a tool script": a client under a name no catalog knows.
    let renamed = cell.path("my-helper");
    std::fs::write(&renamed, format!("#!/usr/bin/python3\n{CLIENT}")).unwrap();
    std::fs::set_permissions(&renamed, std::fs::Permissions::from_mode(0o755)).unwrap();
    listeners
}

fn wait_ready(cell: &Cell) -> Value {
    eventually(Duration::from_secs(20), "the network layer to govern the test names", || {
        let status = status(cell);
        let network = status["network"].clone();
        (network["layer"] == "ebpf" && network["ranges"].as_u64().unwrap_or(0) >= 2).then_some(network)
    })
}

#[test]
fn a_renamed_tool_and_an_sdk_client_cannot_reach_the_governed_name_and_the_developer_is_told() {
    let mut cell = Cell::new("enforce");
    let listeners = setup(&cell, "enforce");
    let (service, log) = start_wardend(&mut cell, &[]);
    let wardend = wardend_pid(&cell, service);
    let network = wait_ready(&cell);
    assert!(network["detail"].as_str().unwrap().contains(&cell.cgroup.display().to_string()), "{network}");
    let live = watch(&mut cell);
    std::thread::sleep(Duration::from_millis(300));

    let targets = [
        format!("tcp:api.anthropic.com:{}", listeners.blocked.1),
        format!("tcp:assistant.test.example:{}", listeners.sanctioned.1),
        format!("tcp:api.openai.com:{}", listeners.warned.1),
        "udp:api.anthropic.com:443".to_owned(),
    ];
    // A Python client not in the catalog (the SDK case).
    let mut args = vec!["-c".to_owned(), CLIENT.to_owned()];
    args.extend(targets.iter().cloned());
    let python = client(&cell, wardend, Path::new("/usr/bin/python3"), &args);
    assert_eq!(python[1..], ["EPERM", "ok", "ok", "EPERM"], "{python:?}\n{}", log.lock().unwrap());
    let pid: u32 = python[0].parse().unwrap();
    let events = connects(&live, pid, 2);
    let blocked = events.iter().find(|e| e["outcome"] == "blocked").unwrap_or_else(|| panic!("{events:?}"));
    assert_eq!(blocked["host"], "api.anthropic.com", "{blocked}");
    assert_eq!(blocked["port"], listeners.blocked.1, "{blocked}");
    assert_eq!(blocked["action"], "block", "{blocked}");
    assert_eq!(blocked["exe"].as_str().map(|e| e.starts_with("/usr/bin/python3")), Some(true), "{blocked}");
    assert!(blocked["tool"].is_null(), "a client the catalog does not know: {blocked}");
    assert_eq!(blocked["reason"], "Claude Code sends source code outside the company network.", "{blocked}");
    let warned = events.iter().find(|e| e["outcome"] == "warned").unwrap_or_else(|| panic!("{events:?}"));
    assert_eq!(warned["host"], "api.openai.com", "{warned}");

    // The renamed tool script: refused the same way, and named by its own path.
    let renamed = client(&cell, wardend, &cell.path("my-helper"), &targets[..2]);
    assert_eq!(renamed[1..], ["EPERM", "ok"], "{renamed:?}");
    let pid: u32 = renamed[0].parse().unwrap();
    let events = connects(&live, pid, 1);
    assert_eq!(events.first().map(|e| e["host"].clone()), Some("api.anthropic.com".into()), "{events:?}");
    // A process outside the service's cgroup is not governed (here: the test itself).
    assert!(std::net::TcpStream::connect(("127.0.0.41", listeners.blocked.1)).is_ok());

    // An address that changes is followed: the name moves to another address (the resolver
    // asks again every second here), the old address opens and the new one closes.
    std::fs::write(
        cell.path("hosts"),
        "127.0.0.1 localhost\n127.0.0.44 api.anthropic.com claude.ai\n127.0.0.42 assistant.test.example\n\
         127.0.0.43 api.openai.com\n",
    )
    .unwrap();
    let moved =
        vec![format!("tcp:api.anthropic.com:{}", listeners.moved.1), format!("tcp:127.0.0.41:{}", listeners.blocked.1)];
    let mut args = vec!["-c".to_owned(), CLIENT.to_owned()];
    args.extend(moved);
    eventually(Duration::from_secs(10), "the governed name's new address", || {
        let lines = client(&cell, wardend, Path::new("/usr/bin/python3"), &args);
        (lines[1..] == ["EPERM", "ok"]).then_some(())
    });
}

/// The loopback address the test's DNS server listens on (port 53).
const DNS_SERVER: &str = "127.0.0.153";

/// A real DNS server, dnsmasq, answering `--address=/NAME/ADDRESS` for the test's names (and
/// nothing else: no upstream, no hosts file) on [`DNS_SERVER`], killed with the cell; and the
/// cell's `resolv.conf` pointing at it (bind-mounted by [`start_wardend`]).
fn start_dnsmasq(cell: &mut Cell, records: &[(&str, &str)]) {
    let mut command = Command::new("dnsmasq");
    command.args([
        "--keep-in-foreground",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        "--port=53",
        "--conf-file=/dev/null",
        "--user=root",
        "--pid-file=",
    ]);
    command.arg(format!("--listen-address={DNS_SERVER}"));
    command.args(records.iter().map(|(name, address)| format!("--address=/{name}/{address}")));
    let child = command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("dnsmasq");
    cell.keep(child);
    std::fs::write(cell.path("resolv.conf"), format!("nameserver {DNS_SERVER}\noptions timeout:1 attempts:1\n"))
        .unwrap();
    eventually(Duration::from_secs(10), "dnsmasq to listen", || {
        std::net::UdpSocket::bind((DNS_SERVER, 53)).is_err().then_some(())
    });
}

/// Shared front ends end to end, with glibc's own resolver asking a real DNS server: the
/// governed name on a shared address is refused and its event names it, an unrelated name on
/// the same address connects; a name under a governed domain that no lookup of the service's
/// returned is learned from the answer and refused at the first connect.
#[test]
fn a_shared_front_end_is_decided_by_the_name_the_process_resolved() {
    let mut cell = Cell::new("dns");
    let listeners = setup(&cell, "enforce");
    let shared = listen("127.0.0.45");
    let dedicated = listen("127.0.0.46");
    let mut policy = std::fs::read_to_string(cell.path("policy.toml")).unwrap();
    policy.push_str(
        "[[network.destinations]]\nhosts = [\"api.shared-ai.test\"]\naction = \"block\"\nshared = true\n\
         message = \"The shared AI API is not approved.\"\n\
         [[network.destinations]]\nhosts = [\"*.dedicated-ai.test\"]\naction = \"block\"\n\
         message = \"The dedicated AI API is not approved.\"\n",
    );
    std::fs::write(cell.path("policy.toml"), policy).unwrap();
    start_dnsmasq(
        &mut cell,
        &[
            ("api.shared-ai.test", "127.0.0.45"),
            ("www.unrelated-cdn.test", "127.0.0.45"),
            ("chat.dedicated-ai.test", "127.0.0.46"),
        ],
    );
    let (service, log) = start_wardend(&mut cell, &[]);
    let wardend = wardend_pid(&cell, service);
    wait_ready(&cell);
    let live = watch(&mut cell);
    std::thread::sleep(Duration::from_millis(300));
    let run = |targets: &[String]| -> Vec<String> {
        let mut args = vec!["-c".to_owned(), CLIENT.to_owned()];
        args.extend(targets.iter().cloned());
        client(&cell, wardend, Path::new("/usr/bin/python3"), &args)
    };
    let governed = run(&[format!("tcp:api.shared-ai.test:{}", shared.1)]);
    assert_eq!(governed[1..], ["EPERM"], "{governed:?}\n{}", log.lock().unwrap());
    let events = connects(&live, governed[0].parse().unwrap(), 1);
    let blocked = events.first().unwrap_or_else(|| panic!("no event: {}", log.lock().unwrap()));
    assert_eq!(
        (blocked["host"].as_str(), blocked["outcome"].as_str(), blocked["reason"].as_str()),
        (Some("api.shared-ai.test"), Some("blocked"), Some("The shared AI API is not approved.")),
        "{blocked}"
    );
    // The address is governed now (the refusal above proves it); another process reaching it
    // through an unrelated name connects, and is not reported.
    let unrelated = run(&[format!("tcp:www.unrelated-cdn.test:{}", shared.1)]);
    assert_eq!(unrelated[1..], ["ok"], "unrelated traffic to the shared address: {unrelated:?}");
    assert!(connects(&live, unrelated[0].parse().unwrap(), 1).is_empty());
    // Learned: no lookup of the service's can resolve a `*.` pattern; the answer taught it.
    let learned = run(&[format!("tcp:chat.dedicated-ai.test:{}", dedicated.1)]);
    assert_eq!(learned[1..], ["EPERM"], "{learned:?}");
    let events = connects(&live, learned[0].parse().unwrap(), 1);
    assert_eq!(events.first().map(|e| e["host"].clone()), Some("chat.dedicated-ai.test".into()), "{events:?}");
    let network = eventually(Duration::from_secs(5), "the learned address in the status", || {
        let network = status(&cell)["network"].clone();
        (network["learned"] == 1).then_some(network)
    });
    assert!(network["detail"].as_str().unwrap().contains("DNS answers read in the kernel"), "{network}");
    // The sanctioned assistant and the machine outside the cgroup are untouched.
    let sanctioned = run(&[format!("tcp:assistant.test.example:{}", listeners.sanctioned.1)]);
    assert_eq!(sanctioned[1..], ["ok"]);
    assert!(std::net::TcpStream::connect(("127.0.0.46", dedicated.1)).is_ok());
}

#[test]
fn monitor_mode_reports_and_blocks_nothing() {
    let mut cell = Cell::new("monitor");
    let listeners = setup(&cell, "monitor");
    let (service, _log) = start_wardend(&mut cell, &[]);
    let wardend = wardend_pid(&cell, service);
    wait_ready(&cell);
    let live = watch(&mut cell);
    std::thread::sleep(Duration::from_millis(300));
    let args = vec!["-c".to_owned(), CLIENT.to_owned(), format!("tcp:api.anthropic.com:{}", listeners.blocked.1)];
    let lines = client(&cell, wardend, Path::new("/usr/bin/python3"), &args);
    assert_eq!(lines[1..], ["ok"], "monitor mode refuses nothing");
    let pid: u32 = lines[0].parse().unwrap();
    let events = connects(&live, pid, 1);
    assert_eq!(events.first().map(|e| e["outcome"].clone()), Some("would-block".into()), "{events:?}");
}

#[test]
fn without_ebpf_the_service_runs_and_says_launch_only() {
    let mut cell = Cell::new("fallback");
    setup(&cell, "enforce");
    // A folder that is no cgroup: the kernel refuses the attach; the service keeps running.
    let not_a_cgroup = cell.path("not-a-cgroup");
    std::fs::create_dir(&not_a_cgroup).unwrap();
    let flag = format!("--network-cgroup {}", not_a_cgroup.display());
    let (_service, log) = start_wardend(&mut cell, &[&flag]);
    let status = status(&cell);
    assert_eq!(status["network"]["layer"], "launch-only", "{status}");
    let detail = status["network"]["detail"].as_str().unwrap();
    assert!(detail.contains("could not be attached") && detail.contains("launches still are"), "{detail}");
    assert!(log.lock().unwrap().contains("wardend: network: launch only"), "{}", log.lock().unwrap());
    let text =
        Command::new(sibling("warden")).arg("--socket").arg(cell.path("warden.sock")).arg("status").output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("Network:       launch only:"), "{text}");
}

/// A network namespace owned by a test (loopback up; listeners started in it); removed on drop.
struct TestNetns {
    name: String,
    children: Vec<Child>,
}

impl TestNetns {
    fn new(tag: &str) -> TestNetns {
        let name = format!("warden-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        assert!(Command::new("ip").args(["netns", "add", &name]).status().unwrap().success());
        assert!(Command::new("ip").args(["-n", &name, "link", "set", "lo", "up"]).status().unwrap().success());
        TestNetns { name, children: Vec::new() }
    }

    /// Listens on each `host:port` (IPv4) inside the namespace, accepting until dropped.
    fn listen(&mut self, addresses: &[String]) {
        let code = r#"
import socket, sys, threading, time
for address in sys.argv[1:]:
    host, port = address.rsplit(":", 1)
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port))); s.listen(64)
    threading.Thread(target=lambda s=s: [s.accept()[0].close() for _ in iter(int, 1)], daemon=True).start()
print("listening", flush=True)
time.sleep(600)
"#;
        let mut child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.name))
            .args(["python3", "-c", code])
            .args(addresses)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "listening");
        self.children.push(child);
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

#[test]
fn the_nftables_layer_refuses_governed_names_in_the_services_network_namespace() {
    let mut cell = Cell::new("nft");
    let listeners = setup(&cell, "enforce");
    // The service and its table live in a namespace of the test's own, never the machine's.
    let mut netns = TestNetns::new("nft-e2e");
    let blocked = format!("127.0.0.41:{}", listeners.blocked.1);
    let warned = format!("127.0.0.43:{}", listeners.warned.1);
    let sanctioned = format!("127.0.0.42:{}", listeners.sanctioned.1);
    netns.listen(&[blocked, warned, sanctioned]);
    let (service, log) = start_wardend_in(&mut cell, Some(&netns.name), &["--network-layer nftables"]);
    let network = eventually(Duration::from_secs(20), "the nftables layer to hold the test names", || {
        let network = status(&cell)["network"].clone();
        (network["layer"] == "fallback" && network["ranges"].as_u64().unwrap_or(0) >= 2).then_some(network)
    });
    let detail = network["detail"].as_str().unwrap();
    assert!(detail.contains("nftables table inet warden") && detail.contains("no per-connection events"), "{detail}");
    assert!(log.lock().unwrap().contains("wardend: network: fallback"), "{}", log.lock().unwrap());
    let text =
        Command::new(sibling("warden")).arg("--socket").arg(cell.path("warden.sock")).arg("status").output().unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("Network:       fallback:"), "{text:?}");

    // A client in the namespace, by name through the test's hosts file: the blocked name is
    // refused, the warned and the sanctioned ones connect (a fallback cannot warn: it lets through).
    let wardend = wardend_pid(&cell, service);
    let out = Command::new("nsenter")
        .arg(format!("--net=/proc/{wardend}/ns/net"))
        .arg(format!("--mount=/proc/{wardend}/ns/mnt"))
        .arg("--")
        .arg(cell.path("my-helper"))
        .arg(format!("tcp:api.anthropic.com:{}", listeners.blocked.1))
        .arg(format!("tcp:api.openai.com:{}", listeners.warned.1))
        .arg(format!("tcp:assistant.test.example:{}", listeners.sanctioned.1))
        .output()
        .unwrap();
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines.get(1..), Some(&["ECONNREFUSED".to_owned(), "ok".to_owned(), "ok".to_owned()][..]), "{out:?}");
    // The machine's own ruleset never holds Warden's table.
    let host = Command::new("nft").args(["list", "tables"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&host.stdout).contains("inet warden"), "{host:?}");

    // A clean stop (SIGTERM) removes the table and the exception cgroup.
    assert!(Command::new("kill").args(["-TERM", &wardend.to_string()]).status().unwrap().success());
    let stopped = eventually(Duration::from_secs(20), "wardend to stop on SIGTERM", || {
        cell.children[service].try_wait().unwrap()
    });
    assert!(stopped.success(), "{stopped:?}: {}", log.lock().unwrap());
    let tables = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", netns.name))
        .args(["nft", "list", "tables"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&tables.stdout).contains("inet warden"), "{tables:?}");
    assert!(!cell.cgroup.join("warden-exceptions").exists());
}

const ADMIN: &str = "admin-token-for-the-network-test-0123456789";
const SECRET: &str = "enroll-secret-for-the-network-test";
const OWNER: &str = "dev@corp.example";

/// A real `warden-server` (SQLite in the scratch area) on a free loopback port.
fn start_server(cell: &mut Cell) -> String {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(sibling("warden-server"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(cell.path("server"))
        .args([
            "--admin-token",
            ADMIN,
            "--enroll-secret",
            SECRET,
            "--sweep-seconds",
            "1",
            "--sync-interval-seconds",
            "2",
        ])
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
    cell.keep(child);
    url
}

fn admin(url: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let mut command = Command::new("curl");
    command.args(["-sS", "-m", "10", "-X", method, "-H", &format!("Authorization: Bearer {ADMIN}")]);
    if let Some(body) = body {
        command.args(["-H", "content-type: application/json", "--data-binary", &body.to_string()]);
    }
    let out = command.arg(format!("{url}/api/v1{path}")).output().unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{method} {path}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// An ordinary user made for the test, removed (with their processes) on drop.
struct TestUser {
    name: String,
    home: PathBuf,
}

impl TestUser {
    fn create(cell: &Cell) -> TestUser {
        let name = format!("wtnet{}", std::process::id() % 100_000);
        let home = cell.path(&format!("home-{name}"));
        let _ = Command::new("userdel").arg(&name).output();
        let made = Command::new("useradd")
            .args(["--no-create-home", "--shell", "/bin/bash", "--home-dir"])
            .arg(&home)
            .arg(&name)
            .output()
            .unwrap();
        assert!(made.status.success(), "useradd: {}", String::from_utf8_lossy(&made.stderr));
        std::fs::create_dir_all(&home).unwrap();
        Command::new("chown").arg("-R").arg(format!("{name}:")).arg(&home).output().unwrap();
        TestUser { name, home }
    }

    /// `setpriv` as this user, with a clean environment plus `env`.
    fn command(&self, env: &[(&str, String)], program: &[String]) -> Vec<String> {
        let mut args: Vec<String> =
            ["--reuid", &self.name, "--regid", &self.name, "--init-groups", "--", "env", "-i"].map(String::from).into();
        args.push(format!("HOME={}", self.home.display()));
        args.push("PATH=/usr/local/bin:/usr/bin:/bin".into());
        args.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
        args.extend(program.iter().cloned());
        args
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("pkill").args(["-KILL", "-u", &self.name]).output();
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

/// Runs `setpriv …` (as the user) inside the test cgroup and wardend's mount namespace.
fn spawn_in_cell(cell: &Cell, wardend: u32, setpriv_args: &[String]) -> Child {
    let script = format!(
        "echo $$ > {procs} && exec nsenter --mount=/proc/{wardend}/ns/mnt -- setpriv \"$@\"",
        procs = cell.cgroup.join("cgroup.procs").display()
    );
    Command::new("sh")
        .args(["-c", &script, "launch"])
        .args(setpriv_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The helper an approved tool starts: connects every 200 ms and appends `<ms> ok|EPERM` to
/// $RESULT, for $SECONDS seconds.
const PROBE: &str = r#"#!/usr/bin/python3
import errno, os, socket, time
host, port = os.environ["TARGET"].rsplit(":", 1)
end = time.time() + float(os.environ["SECONDS"])
while time.time() < end:
    try:
        socket.create_connection((host, int(port)), timeout=2).close(); word = "ok"
    except OSError as e:
        word = errno.errorcode.get(e.errno, str(e))
    with open(os.environ["RESULT"], "a") as f:
        f.write(f"{int(time.time() * 1000)} {word}\n")
    time.sleep(0.2)
"#;

#[test]
fn an_approved_exception_opens_the_tools_launch_tree_for_its_user_only_and_closes_at_expiry() {
    let mut cell = Cell::new("exception");
    let listeners = setup(&cell, "enforce");
    let dev = TestUser::create(&cell);
    let url = start_server(&mut cell);
    let secret = cell.path("enroll-secret");
    std::fs::write(&secret, SECRET).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The server's policy (its embedded default: Claude Code blocked) replaces the local one once
    // enrolled; its catalog governs api.anthropic.com.
    std::fs::write(
        cell.path("warden.toml"),
        format!(
            "gate = []\n[server]\nurl = {url:?}\nenroll_secret_file = {:?}\nowner = {OWNER:?}\nlocal_users = [{:?}]\n\
             [network]\ncgroup = {:?}\nresolve_seconds = 1\n",
            secret.display().to_string(),
            dev.name,
            cell.cgroup.display().to_string()
        ),
    )
    .unwrap();
    let (service, log) = start_wardend(&mut cell, &[]);
    let wardend = wardend_pid(&cell, service);
    eventually(Duration::from_secs(30), "enrollment and governed names", || {
        let status = status(&cell);
        (status["enrolled"] == true && status["network"]["ranges"].as_u64().unwrap_or(0) >= 1).then_some(())
    });
    let live = watch(&mut cell);

    // The tool (a stand-in for Claude Code's native binary, where its installer puts it) starts
    // the probe as its helper; the user files a request, an approver grants 20 seconds (room for a slow sync on a loaded machine:
    // a launch after the end would be killed and its probe never run).
    let versions = dev.home.join(".local/share/claude/versions");
    std::fs::create_dir_all(&versions).unwrap();
    let tool = versions.join("2.1.37");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/monitor/fake_tool.c");
    let built = Command::new("cc").arg("-O1").arg("-o").arg(&tool).arg(&source).output().unwrap();
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    let probe = cell.path("probe");
    std::fs::write(&probe, PROBE).unwrap();
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o755)).unwrap();
    Command::new("chown").arg("-R").arg(format!("{}:", dev.name)).arg(&dev.home).output().unwrap();
    // The user runs a copy of the CLI (the build folder is root's).
    let warden = cell.path("warden");
    std::fs::copy(sibling("warden"), &warden).unwrap();
    std::fs::set_permissions(&warden, std::fs::Permissions::from_mode(0o755)).unwrap();
    let request = Command::new("setpriv")
        .args(dev.command(
            &[],
            &[
                warden.display().to_string(),
                "--socket".into(),
                cell.path("warden.sock").display().to_string(),
                "request".into(),
                "--tool".into(),
                "claude-code".into(),
                "--duration".into(),
                "1h".into(),
                "--reason".into(),
                "Pairing with the vendor on the SDK migration this week".into(),
            ],
        ))
        .current_dir(&dev.home)
        .output()
        .unwrap();
    assert!(
        request.status.success(),
        "{}{}",
        String::from_utf8_lossy(&request.stdout),
        String::from_utf8_lossy(&request.stderr)
    );
    let id = eventually(Duration::from_secs(10), "the request on the server", || {
        let list = admin(&url, "GET", "/admin/exceptions?state=pending", None);
        let items = list.as_array().cloned().or_else(|| list["requests"].as_array().cloned()).unwrap_or_default();
        items.first().and_then(|r| r["id"].as_str().map(str::to_owned))
    });
    let approved = admin(
        &url,
        "POST",
        &format!("/admin/exceptions/{id}/approve"),
        Some(serde_json::json!({"approver": "lead@corp.example", "comment": "ok", "duration_seconds": 20})),
    );
    assert_eq!(approved["state"], "approved", "{approved}");
    eventually(Duration::from_secs(15), "the approval on the device", || {
        (status(&cell)["sync"]["active_exceptions"] == 1).then_some(())
    });

    // Written by the user's processes: in their home.
    let result = dev.home.join("result");
    let target = format!("api.anthropic.com:{}", listeners.blocked.1);
    let env = |seconds: &str| {
        vec![
            ("FAKE_CHILD", probe.display().to_string()),
            ("FAKE_SLEEP", "40".to_owned()),
            ("TARGET", target.clone()),
            ("SECONDS", seconds.to_owned()),
            ("RESULT", result.display().to_string()),
        ]
    };
    let launched = spawn_in_cell(&cell, wardend, &dev.command(&env("30"), &[tool.display().to_string()])[0..]);
    cell.keep(launched);
    // Another program of the same user, not the tool's launch: refused meanwhile.
    let other = dev.home.join("other-result");
    let mut other_env = env("2");
    other_env.retain(|(k, _)| *k != "RESULT" && *k != "FAKE_CHILD");
    other_env.push(("RESULT", other.display().to_string()));
    std::thread::sleep(Duration::from_secs(2));
    let mut outsider = spawn_in_cell(&cell, wardend, &dev.command(&other_env, &[probe.display().to_string()]));
    let _ = outsider.wait();
    let outsider_words: Vec<String> = std::fs::read_to_string(&other)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(' ').nth(1).unwrap_or("").to_owned())
        .collect();
    assert!(!outsider_words.is_empty() && outsider_words.iter().all(|w| w == "EPERM"), "{outsider_words:?}");

    // The launch's helper: open while the exception lasts, refused from its end on, never open
    // again (the session itself runs on for the policy's grace period; its network does not).
    let words = eventually(Duration::from_secs(40), "the probe to see the end of the exception", || {
        let text = std::fs::read_to_string(&result).unwrap_or_default();
        let words: Vec<String> = text.lines().map(|l| l.split(' ').nth(1).unwrap_or("").to_owned()).collect();
        (words.iter().filter(|w| *w == "EPERM").count() >= 5).then_some(words)
    });
    let first_refused = words.iter().position(|w| w == "EPERM").unwrap();
    assert!(first_refused >= 3, "open while the exception lasted: {words:?}\n{}", log.lock().unwrap());
    assert!(words[first_refused..].iter().all(|w| w == "EPERM"), "closed for good at expiry: {words:?}");
    // The service reported the opening as the exception's, for the bound account.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(value) = live.recv_timeout(Duration::from_millis(200))
            && value["kind"] == "connect"
        {
            seen.push(value);
        }
    }
    let allowed = seen.iter().find(|e| e["outcome"] == "allowed").unwrap_or_else(|| panic!("{seen:?}"));
    assert_eq!(allowed["rule"], format!("exception:{id}"), "{allowed}");
    assert_eq!(allowed["user"], OWNER, "{allowed}");
}
