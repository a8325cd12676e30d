//! The real kernel hooks on test-owned things only: a cgroup v2 folder this test creates (its own
//! child processes are moved in; never the root cgroup), loopback addresses (127.0.0.x, ::1) it
//! listens on, and everything detached and removed at the end, also on failure (Drop guards).
//! Needs root; run under the machine-wide lock (`flock /tmp/warden-enforcing.lock cargo nextest
//! run -p warden-net`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use warden_net::kernel::{Firewall, Hook, KernelAction, KernelEvent, KernelVerdict, NetError};
use warden_policy::Cidr;

/// A cgroup v2 folder owned by the test: removed on drop after its processes are killed.
struct TestCgroup {
    path: PathBuf,
    children: Vec<Child>,
}

fn cgroup2_mount() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let line = mounts.lines().find(|l| l.split(' ').nth(2) == Some("cgroup2")).expect("a cgroup2 mount");
    PathBuf::from(line.split(' ').nth(1).unwrap())
}

impl TestCgroup {
    fn new(name: &str) -> TestCgroup {
        let path = cgroup2_mount().join(format!("warden-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir(&path);
        std::fs::create_dir(&path).unwrap();
        TestCgroup { path, children: Vec::new() }
    }

    /// Starts `python3 -c CODE ARGS…` inside the cgroup: a shell moves itself in, then waits for
    /// a line on stdin (so the test can open it first) and runs python as its child (a fork: the
    /// fork hook's case). Returns the index of the child; its stdout gives python's pid first.
    fn spawn_python(&mut self, code: &str, args: &[&str]) -> usize {
        let script =
            format!("echo $$ > {}/cgroup.procs && read go && /usr/bin/python3 -c \"$0\" \"$@\"", self.path.display());
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .arg(code)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        self.children.push(child);
        self.children.len() - 1
    }

    fn go(&mut self, index: usize) {
        let stdin = self.children[index].stdin.as_mut().unwrap();
        writeln!(stdin, "go").unwrap();
        stdin.flush().unwrap();
    }

    /// Waits until the shell is in the cgroup (it wrote its pid), returns the shell's pid.
    fn wait_inside(&self, index: usize) -> u32 {
        let pid = self.children[index].id();
        for _ in 0..200 {
            let procs = std::fs::read_to_string(self.path.join("cgroup.procs")).unwrap_or_default();
            if procs.lines().any(|l| l.trim() == pid.to_string()) {
                return pid;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the child never joined the test cgroup");
    }

    /// python's output lines (its pid first, then what it reports), until it exits.
    fn output(&mut self, index: usize) -> Vec<String> {
        let child = &mut self.children[index];
        let out = BufReader::new(child.stdout.take().unwrap());
        let lines = out.lines().map_while(Result::ok).collect();
        let _ = child.wait();
        lines
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for _ in 0..100 {
            if std::fs::remove_dir(&self.path).is_ok() || !self.path.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("warning: could not remove {}", self.path.display());
    }
}

/// The python client: prints its pid, then tries each `proto:host:port` and prints `ok` or the
/// errno name, one line each.
const CLIENT: &str = r#"
import errno, os, socket, sys
print(os.getpid(), flush=True)
for target in sys.argv[1:]:
    proto, rest = target.split(":", 1)
    host, port = rest.rsplit(":", 1)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        if proto == "tcp":
            s = socket.socket(family, socket.SOCK_STREAM); s.settimeout(2); s.connect((host, int(port)))
        else:
            s = socket.socket(family, socket.SOCK_DGRAM); s.sendto(b"x", (host, int(port)))
        s.close(); print("ok", flush=True)
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e)), flush=True)
"#;

fn ranges(list: &[(&str, KernelAction)]) -> BTreeMap<Cidr, KernelAction> {
    list.iter().map(|(c, a)| (c.parse().unwrap(), *a)).collect()
}

fn listen(address: &str) -> (TcpListener, u16) {
    let listener = TcpListener::bind((address, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

async fn events_for(events: &mut warden_net::kernel::Events, tgid: u32, count: usize) -> Vec<KernelEvent> {
    let mut found = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while found.len() < count {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(event)) if event.tgid == tgid => found.push(event),
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn governed_prefixes_are_refused_and_reported_in_the_test_cgroup_only() {
    let mut cgroup = TestCgroup::new("refuse");
    let (mut firewall, mut events) = Firewall::attach(&cgroup.path).expect("attach to the test cgroup");
    let (_blocked, blocked_port) = listen("127.0.0.21");
    let (_warned, warned_port) = listen("127.0.0.22");
    let (_free, free_port) = listen("127.0.0.23");
    let (_v6, v6_port) = listen("::1");
    firewall
        .set_ranges(&ranges(&[
            ("127.0.0.21/32", KernelAction::Block),
            ("127.0.0.22/32", KernelAction::Observe),
            ("::1/128", KernelAction::Block),
        ]))
        .unwrap();
    let targets = [
        format!("tcp:127.0.0.21:{blocked_port}"),
        format!("tcp:127.0.0.22:{warned_port}"),
        format!("tcp:127.0.0.23:{free_port}"),
        format!("tcp:::1:{v6_port}"),
        // v4-mapped: an IPv6 socket reaching the blocked IPv4 address goes through connect6.
        format!("tcp:::ffff:127.0.0.21:{blocked_port}"),
        // UDP (QUIC's port) goes through sendmsg4.
        "udp:127.0.0.21:443".to_owned(),
        "udp:127.0.0.23:443".to_owned(),
    ];
    let args: Vec<&str> = targets.iter().map(String::as_str).collect();
    let child = cgroup.spawn_python(CLIENT, &args);
    cgroup.wait_inside(child);
    cgroup.go(child);
    let lines = cgroup.output(child);
    assert_eq!(lines[1..], ["EPERM", "ok", "ok", "EPERM", "EPERM", "EPERM", "ok"], "{lines:?}");
    let pid: u32 = lines[0].parse().unwrap();
    let seen = events_for(&mut events, pid, 5).await;
    let summary: Vec<(String, u16, KernelVerdict, Hook, &str)> =
        seen.iter().map(|e| (e.address.to_string(), e.port, e.verdict, e.hook, e.protocol.as_str())).collect();
    assert_eq!(
        summary,
        [
            ("127.0.0.21".into(), blocked_port, KernelVerdict::Denied, Hook::Connect4, "tcp"),
            ("127.0.0.22".into(), warned_port, KernelVerdict::Observed, Hook::Connect4, "tcp"),
            ("::1".into(), v6_port, KernelVerdict::Denied, Hook::Connect6, "tcp"),
            ("127.0.0.21".into(), blocked_port, KernelVerdict::Denied, Hook::Connect6, "tcp"),
            ("127.0.0.21".into(), 443, KernelVerdict::Denied, Hook::Sendmsg4, "udp"),
        ]
    );
    assert!(seen.iter().all(|e| e.uid == 0 && e.pid == pid));
    // A process outside the test cgroup is not governed.
    assert!(std::net::TcpStream::connect(("127.0.0.21", blocked_port)).is_ok());
    UdpSocket::bind("127.0.0.1:0").unwrap().send_to(b"x", "127.0.0.21:443").unwrap();
    // Emptied maps refuse nothing.
    firewall.set_ranges(&BTreeMap::new()).unwrap();
    let child = cgroup.spawn_python(CLIENT, &[&format!("tcp:127.0.0.21:{blocked_port}")]);
    cgroup.wait_inside(child);
    cgroup.go(child);
    assert_eq!(cgroup.output(child)[1..], ["ok"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_launch_tree_connects_and_closing_its_grant_closes_it_at_once() {
    let mut cgroup = TestCgroup::new("open");
    let (mut firewall, mut events) = Firewall::attach(&cgroup.path).expect("attach to the test cgroup");
    firewall.fork_hook().expect("the fork hook loads on this kernel");
    let (_blocked, port) = listen("127.0.0.24");
    firewall.set_ranges(&ranges(&[("127.0.0.24/32", KernelAction::Block)])).unwrap();
    let target = format!("tcp:127.0.0.24:{port}");
    // The shell is opened before it forks python: python, its child, is open through the fork hook.
    let opened = cgroup.spawn_python(CLIENT, &[&target]);
    let other = cgroup.spawn_python(CLIENT, &[&target]);
    let shell = cgroup.wait_inside(opened);
    cgroup.wait_inside(other);
    firewall.open(shell, 7).unwrap();
    cgroup.go(opened);
    cgroup.go(other);
    let opened_lines = cgroup.output(opened);
    let other_lines = cgroup.output(other);
    assert_eq!(opened_lines[1..], ["ok"], "the launch tree is open");
    assert_eq!(other_lines[1..], ["EPERM"], "another process of the same user is not");
    let python: u32 = opened_lines[0].parse().unwrap();
    let seen = events_for(&mut events, python, 1).await;
    assert_eq!(seen.first().map(|e| e.verdict), Some(KernelVerdict::Open), "{seen:?}");
    assert!(firewall.open_tgids().contains(&(shell, 7)));
    let open_before = firewall.open_tgids().len();
    assert!(open_before >= 2, "the shell and python (forked while open): {:?}", firewall.open_tgids());
    assert_eq!(firewall.close_grant(7).unwrap(), open_before);
    assert!(firewall.open_tgids().is_empty());
    let again = cgroup.spawn_python(CLIENT, &[&target]);
    cgroup.wait_inside(again);
    cgroup.go(again);
    assert_eq!(cgroup.output(again)[1..], ["EPERM"], "closed again at once");
}

#[tokio::test]
async fn a_load_failure_is_a_typed_error_never_a_crash() {
    let missing = Path::new("/sys/fs/cgroup/unified/warden-no-such-cgroup");
    assert!(matches!(Firewall::attach(missing), Err(NetError::Cgroup { .. })));
    let not_a_cgroup = tempfile::tempdir().unwrap();
    let error = Firewall::attach(not_a_cgroup.path()).unwrap_err();
    assert!(matches!(error, NetError::Program { .. }), "{error}");
    assert!(error.to_string().contains("warden_connect4"), "{error}");
}

#[test]
fn events_parse_the_c_layout() {
    let mut bytes = vec![0u8; 36];
    bytes[0..4].copy_from_slice(&7u32.to_ne_bytes());
    bytes[4..8].copy_from_slice(&5u32.to_ne_bytes());
    bytes[8..12].copy_from_slice(&1000u32.to_ne_bytes());
    bytes[12] = 6;
    bytes[13] = 1;
    bytes[14] = 2;
    bytes[15] = 17;
    bytes[16..32].copy_from_slice(&"2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
    bytes[32..34].copy_from_slice(&443u16.to_ne_bytes());
    let event = KernelEvent::parse(&bytes).unwrap();
    assert_eq!(
        (event.pid, event.tgid, event.uid, event.address, event.port, event.protocol.as_str()),
        (7, 5, 1000, "2001:db8::1".parse::<IpAddr>().unwrap(), 443, "udp")
    );
    assert_eq!((event.verdict, event.hook), (KernelVerdict::Denied, Hook::Connect6));
    assert!(KernelEvent::parse(&bytes[..20]).is_none());
}
