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
use warden_net::kernel::{
    DnsAnswer, Firewall, Hook, KernelAction, KernelEvent, KernelReport, KernelRule, KernelVerdict, NetError,
};
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

fn ranges(list: &[(&str, KernelAction)]) -> BTreeMap<Cidr, KernelRule> {
    list.iter().map(|(c, a)| (c.parse().unwrap(), (*a).into())).collect()
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
            Ok(Some(KernelReport::Connect(event))) if event.tgid == tgid => found.push(event),
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

/// A DNS server on a loopback address for the test's own names: answers A (or AAAA) queries from
/// its table, echoing the question as asked (letter case included) and pointing each record's
/// owner name at it; stops on drop.
struct TestDns {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

const DNS_SERVER: &str = "127.0.0.153";

impl TestDns {
    fn start(table: &[(&str, &str)]) -> TestDns {
        let socket = UdpSocket::bind((DNS_SERVER, 53)).expect("port 53 on a test loopback address");
        socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let table: Vec<(String, IpAddr)> = table.iter().map(|(n, a)| (n.to_string(), a.parse().unwrap())).collect();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut query = [0u8; 512];
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((len, from)) = socket.recv_from(&mut query) else { continue };
                let query = &query[..len];
                // The question: labels from byte 12 to a zero, then QTYPE and QCLASS.
                let mut at = 12;
                let mut labels = Vec::new();
                while at < len && query[at] != 0 {
                    let l = usize::from(query[at]);
                    labels.push(String::from_utf8_lossy(&query[at + 1..at + 1 + l]).to_ascii_lowercase());
                    at += 1 + l;
                }
                let question_end = at + 5;
                let qtype = u16::from_be_bytes([query[at + 1], query[at + 2]]);
                let name = labels.join(".");
                let records: Vec<IpAddr> = table
                    .iter()
                    .filter(|(n, a)| *n == name && (a.is_ipv4() == (qtype == 1)))
                    .map(|(_, a)| *a)
                    .collect();
                let mut answer = Vec::new();
                answer.extend_from_slice(&query[..2]);
                answer.extend_from_slice(&[0x81, 0x80, 0, 1]);
                answer.extend_from_slice(&(records.len() as u16).to_be_bytes());
                answer.extend_from_slice(&[0, 0, 0, 0]);
                answer.extend_from_slice(&query[12..question_end]);
                for address in records {
                    let (kind, data) = match address {
                        IpAddr::V4(a) => (1u16, a.octets().to_vec()),
                        IpAddr::V6(a) => (28u16, a.octets().to_vec()),
                    };
                    answer.extend_from_slice(&[0xc0, 0x0c]);
                    answer.extend_from_slice(&kind.to_be_bytes());
                    answer.extend_from_slice(&[0, 1]);
                    answer.extend_from_slice(&300u32.to_be_bytes());
                    answer.extend_from_slice(&(data.len() as u16).to_be_bytes());
                    answer.extend_from_slice(&data);
                }
                let _ = socket.send_to(&answer, from);
            }
        });
        TestDns { stop, thread: Some(thread) }
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The python client of the DNS test: prints its pid, then for each `dns:NAME:PORT` (A) or
/// `dns6:NAME:PORT` (AAAA) asks the test's DNS server the way glibc does (a connected UDP socket
/// to port 53) and connects over TCP to the first address of the answer; `tcp:ADDRESS:PORT`
/// connects without asking. Prints `ok` or the errno name, one line each.
const DNS_CLIENT: &str = r#"
import errno, os, socket, struct, sys
print(os.getpid(), flush=True)
def resolve(name, qtype):
    wire = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    q = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + wire + struct.pack(">HH", qtype, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
    s.connect((sys.argv[1], 53)); s.send(q); r = s.recv(512); s.close()
    i = 12 + len(wire) + 4
    for _ in range(struct.unpack(">H", r[6:8])[0]):
        i += 2
        rtype, _, _, rdlen = struct.unpack(">HHIH", r[i:i + 10]); i += 10
        if rtype == qtype:
            return socket.inet_ntop(socket.AF_INET if rtype == 1 else socket.AF_INET6, r[i:i + rdlen])
        i += rdlen
    raise OSError(errno.EHOSTUNREACH, "no address")
for target in sys.argv[2:]:
    proto, rest = target.split(":", 1)
    host, port = rest.rsplit(":", 1)
    try:
        if proto in ("dns", "dns6"):
            host = resolve(host, 1 if proto == "dns" else 28)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM); s.settimeout(2); s.connect((host, int(port)))
        s.close(); print("ok", flush=True)
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e)), flush=True)
"#;

/// Every report the kernel has made, until none came for half a second.
async fn drain(events: &mut warden_net::kernel::Events) -> Vec<KernelReport> {
    let mut found = Vec::new();
    while let Ok(Some(report)) = tokio::time::timeout(Duration::from_millis(500), events.next()).await {
        found.push(report);
    }
    found
}

/// Shared front ends are decided by the name each process resolved (its DNS answer, read in the
/// kernel before the process sees it): an unrelated name on the same address connects, the
/// governed name is refused, an address reached without a DNS answer is let through and reported
/// as unnamed. A dedicated address is refused whatever name reached it, and a governed name's
/// address the maps did not hold is learned before the answer reaches the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_answers_decide_shared_addresses_and_teach_new_ones() {
    let mut cgroup = TestCgroup::new("dns");
    let (mut firewall, mut events) = Firewall::attach(&cgroup.path).expect("attach to the test cgroup");
    firewall.dns_hook().expect("the DNS answer reader loads on this kernel");
    let _dns = TestDns::start(&[
        ("api.shared-ai.test", "127.0.0.31"),
        ("www.unrelated-cdn.test", "127.0.0.31"),
        ("api.dedicated-ai.test", "127.0.0.32"),
        ("nip.unrelated.test", "127.0.0.32"),
        ("new.dedicated-ai.test", "127.0.0.33"),
        ("v6.dedicated-ai.test", "::1"),
    ]);
    let (_shared, shared_port) = listen("127.0.0.31");
    let (_dedicated, dedicated_port) = listen("127.0.0.32");
    let (_new, new_port) = listen("127.0.0.33");
    let (_v6, v6_port) = listen("::1");
    let block = KernelRule { action: KernelAction::Block, shared: false };
    let shared = KernelRule { action: KernelAction::Block, shared: true };
    let names: BTreeMap<warden_policy::HostPattern, KernelRule> =
        [("api.shared-ai.test", shared), ("api.dedicated-ai.test", block), ("*.dedicated-ai.test", block)]
            .into_iter()
            .map(|(p, r)| (warden_policy::HostPattern::parse(p).unwrap(), r))
            .collect();
    firewall.set_names(&names).unwrap();
    let mut governed = ranges(&[("127.0.0.32/32", KernelAction::Block)]);
    governed.insert("127.0.0.31/32".parse().unwrap(), shared);
    firewall.set_ranges(&governed).unwrap();

    let run = |cgroup: &mut TestCgroup, targets: &[String]| -> usize {
        let mut args = vec![DNS_SERVER];
        args.extend(targets.iter().map(String::as_str));
        let child = cgroup.spawn_python(DNS_CLIENT, &args);
        cgroup.wait_inside(child);
        cgroup.go(child);
        child
    };
    let unrelated = format!("dns:www.unrelated-cdn.test:{shared_port}");
    // 1. An unrelated name on the shared address connects; no event.
    let first = run(&mut cgroup, std::slice::from_ref(&unrelated));
    let lines = cgroup.output(first);
    assert_eq!(lines[1..], ["ok"], "unrelated traffic to a shared front end keeps working");
    let first_pid: u32 = lines[0].parse().unwrap();
    // 2. The governed name (asked in mixed case, as resolvers randomize it) is refused; the same
    //    process reaching the address through an unrelated name afterwards is still refused.
    let second = run(&mut cgroup, &[format!("dns:API.Shared-AI.test:{shared_port}"), unrelated.clone()]);
    let lines = cgroup.output(second);
    assert_eq!(lines[1..], ["EPERM", "EPERM"], "the governed name is refused, and stays so");
    let governed_pid: u32 = lines[0].parse().unwrap();
    // 3. No DNS answer seen (a hard-coded address): let through, reported as unnamed.
    let third = run(&mut cgroup, &[format!("tcp:127.0.0.31:{shared_port}")]);
    let lines = cgroup.output(third);
    assert_eq!(lines[1..], ["ok"]);
    let unnamed_pid: u32 = lines[0].parse().unwrap();
    // 4. A dedicated address is refused whatever name reached it (a wildcard DNS service pointing
    //    an innocent name at the vendor's address does not open it); 5. a governed name's new
    //    addresses (IPv4 and IPv6) are learned before the process sees the answer, for everyone.
    let fourth = run(
        &mut cgroup,
        &[
            format!("dns:nip.unrelated.test:{dedicated_port}"),
            format!("dns:new.dedicated-ai.test:{new_port}"),
            format!("dns6:v6.dedicated-ai.test:{v6_port}"),
        ],
    );
    let lines = cgroup.output(fourth);
    assert_eq!(lines[1..], ["EPERM", "EPERM", "EPERM"]);
    let learner: u32 = lines[0].parse().unwrap();
    let fifth = run(&mut cgroup, &[format!("tcp:127.0.0.33:{new_port}")]);
    assert_eq!(cgroup.output(fifth)[1..], ["EPERM"], "a learned dedicated address is refused for every process");

    let reports = drain(&mut events).await;
    let answers_of = |tgid: u32| -> Vec<&DnsAnswer> {
        reports
            .iter()
            .filter_map(|r| if let KernelReport::Answer(a) = r { Some(a) } else { None })
            .filter(|a| a.tgid == tgid)
            .collect()
    };
    let answers = answers_of(governed_pid);
    assert_eq!(answers.len(), 1, "{reports:?}");
    assert_eq!(answers[0].name, "api.shared-ai.test");
    assert_eq!(
        answers[0].records.iter().map(|r| (r.address.to_string(), r.ttl, r.learned)).collect::<Vec<_>>(),
        [("127.0.0.31".to_owned(), 300, false)]
    );
    let learned: Vec<(String, String, bool)> = answers_of(learner)
        .iter()
        .flat_map(|a| a.records.iter().map(|r| (a.name.clone(), r.address.to_string(), r.learned)))
        .collect();
    assert_eq!(
        learned,
        [
            ("new.dedicated-ai.test".to_owned(), "127.0.0.33".to_owned(), true),
            ("v6.dedicated-ai.test".to_owned(), "::1".to_owned(), true)
        ]
    );
    assert!(answers_of(first_pid).is_empty(), "an unrelated name is never reported: {reports:?}");
    let verdicts = |tgid: u32| -> Vec<KernelVerdict> {
        reports
            .iter()
            .filter_map(|r| if let KernelReport::Connect(e) = r { Some(e) } else { None })
            .filter(|e| e.tgid == tgid)
            .map(|e| e.verdict)
            .collect()
    };
    assert_eq!(verdicts(first_pid), [], "unrelated traffic is not reported");
    assert_eq!(verdicts(governed_pid), [KernelVerdict::Denied, KernelVerdict::Denied]);
    assert_eq!(verdicts(unnamed_pid), [KernelVerdict::Unnamed]);
    assert_eq!(verdicts(learner), [KernelVerdict::Denied; 3]);
}

#[test]
fn name_hashes_follow_the_kernels_backward_wire_form() {
    // FNV-1a 64 of the reversed wire bytes of "\x03com": 'm', 'o', 'c', 3.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in [b'm', b'o', b'c', 3u8] {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    assert_eq!(warden_net::kernel::name_hash("com"), h);
    assert_eq!(warden_net::kernel::name_hash("API.Example.COM"), warden_net::kernel::name_hash("api.example.com"));
    assert_ne!(warden_net::kernel::name_hash("example.com"), warden_net::kernel::name_hash("com"));
}

#[test]
fn dns_answer_reports_parse_the_c_layout_and_refuse_malformed_names() {
    let record = |name: &[u8], count: u8| {
        let mut bytes = vec![0u8; 468];
        bytes[4..8].copy_from_slice(&42u32.to_ne_bytes());
        bytes[8..12].copy_from_slice(&1000u32.to_ne_bytes());
        bytes[14] = 5;
        bytes[15] = 17;
        bytes[16..18].copy_from_slice(&(name.len() as u16).to_ne_bytes());
        bytes[18] = count;
        bytes[20..20 + name.len()].copy_from_slice(name);
        // One IPv4 record: 127.0.0.5, TTL 30, learned.
        bytes[276] = 4;
        bytes[277] = 1;
        bytes[280..284].copy_from_slice(&30u32.to_ne_bytes());
        bytes[284..288].copy_from_slice(&[127, 0, 0, 5]);
        bytes
    };
    let good = record(b"\x03API\x07example\x03com", 1);
    let Some(KernelReport::Answer(answer)) = KernelReport::parse(&good) else { panic!("a DNS report") };
    assert_eq!((answer.tgid, answer.uid, answer.name.as_str()), (42, 1000, "api.example.com"));
    assert_eq!(
        answer.records.iter().map(|r| (r.address.to_string(), r.ttl, r.learned)).collect::<Vec<_>>(),
        [("127.0.0.5".to_owned(), 30, true)]
    );
    // A label running past the name, or an empty label: not a name.
    assert!(DnsAnswer::parse(&record(b"\x09api", 1)).is_none());
    assert!(DnsAnswer::parse(&record(b"\x00\x03com", 1)).is_none());
    // A count past the 8 slots is clamped; empty slots (family 0) are skipped.
    assert_eq!(DnsAnswer::parse(&record(b"\x03com", 200)).unwrap().records.len(), 1);
    assert!(DnsAnswer::parse(&good[..400]).is_none());
}
