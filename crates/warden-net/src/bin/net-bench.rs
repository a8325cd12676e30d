//! `net-bench`: what the eBPF hooks cost and how exactly they attribute (docs/benchmarks.md).
//!
//! Root only; touches only what it creates: a cgroup v2 folder of its own (it moves itself in,
//! and back to where it was at the end), loopback addresses 127.0.0.61–62, its own children.
//!
//! 1. Added cost of `connect()` to an ungoverned destination: the median and p99 of one UDP
//!    `connect()` (no packet: the hook and the route lookup) and of one TCP connect + close on
//!    loopback, with no hook vs the hooks attached holding `--ranges` governed prefixes, in
//!    alternating rounds.
//!    DNS answers: the same alternation times a datagram round trip on loopback (the `cgroup_skb`
//!    ingress program's early return on every packet that is not DNS) and a DNS query and answer
//!    between two of the bench's sockets (127.0.0.153:53 answers an unrelated name with an address
//!    in a shared governed range: the whole answer is read, hashed, looked up and remembered).
//! 2. Attribution: `--procs` child processes each connect `--per-proc` times to a governed
//!    (observed) address; every kernel event must name the pid of the child that connected.
//!
//! 3. Beside OpenSnitch (when `--opensnitch-root` holds its daemon, as `cargo xtask setup` unpacks
//!    it): TCP connect + close inside a network namespace the bench creates, with no firewall and
//!    with `opensnitchd` 1.5.8 running there in its default configuration (its log and UI socket
//!    moved to a scratch folder; its config folder bind-mounted in a mount namespace of its own, so
//!    the machine's `/etc` and firewall are never touched), in alternating rounds.
//!
//! `net-bench [--rounds 6] [--ops 20000] [--ranges 500] [--procs 20] [--per-proc 50] [--opensnitch-root DIR]`

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use warden_net::kernel::{Firewall, KernelAction, KernelRule};
use warden_policy::{Cidr, HostPattern};

/// What the eBPF hooks cost per `connect()` and how exactly they attribute (root only).
#[derive(Debug, clap::Parser)]
#[command(name = "net-bench")]
struct Options {
    /// Alternating rounds without and with the hooks.
    #[arg(long, default_value_t = 6)]
    rounds: usize,
    /// `connect()` calls per round.
    #[arg(long, default_value_t = 20_000)]
    ops: usize,
    /// Governed prefixes the hooks hold.
    #[arg(long, default_value_t = 500)]
    ranges: usize,
    /// Child processes connecting for the attribution part.
    #[arg(long, default_value_t = 20)]
    procs: usize,
    /// Connections per child.
    #[arg(long, default_value_t = 50)]
    per_proc: usize,
    /// A folder holding OpenSnitch's `usr/bin/opensnitchd` and `etc/opensnitchd/` (default: what
    /// `cargo xtask setup` unpacked under `~/.cache/warden-tools`); absent: no comparison.
    #[arg(long, value_name = "DIR")]
    opensnitch_root: Option<PathBuf>,
}

/// Where `cargo xtask setup` unpacks OpenSnitch's Debian package.
const OPENSNITCH_CACHE: &str = ".cache/warden-tools/opensnitch-1.5.8.1";

/// A network namespace of the bench's own (loopback up) and the daemon running in it; the daemon
/// is stopped and the namespace deleted on drop.
struct BenchNetns {
    name: String,
    daemon: Option<std::process::Child>,
}

impl BenchNetns {
    fn new() -> BenchNetns {
        let name = format!("warden-net-bench-{}", std::process::id());
        let _ =
            std::process::Command::new("ip").args(["netns", "del", &name]).stderr(std::process::Stdio::null()).status();
        let ok = |args: &[&str]| std::process::Command::new("ip").args(args).status().is_ok_and(|s| s.success());
        assert!(ok(&["netns", "add", &name]) && ok(&["-n", &name, "link", "set", "lo", "up"]), "creating {name}");
        BenchNetns { name, daemon: None }
    }

    fn enter(&self) -> std::process::Command {
        let mut command = std::process::Command::new("nsenter");
        command.arg(format!("--net=/run/netns/{}", self.name));
        command
    }

    /// `count` TCP connect + close to a listener inside the namespace (this binary, `--tcp-loop`).
    fn tcp_loop(&self, count: usize) -> Vec<u64> {
        let me = std::env::current_exe().unwrap();
        let out = self.enter().arg(me).args(["--tcp-loop", &count.to_string()]).output().expect("running the loop");
        String::from_utf8_lossy(&out.stdout).split_whitespace().filter_map(|n| n.parse().ok()).collect()
    }

    /// Starts `opensnitchd` from `root` in the namespace, with `config` bind-mounted over its
    /// `/etc/opensnitchd` in a mount namespace of its own; waits until its NFQUEUE rule is in place.
    fn start_opensnitch(&mut self, root: &Path, config: &Path, scratch: &Path) {
        let script = format!(
            "mount --bind {config} /etc/opensnitchd && exec {daemon} -rules-path {rules} -log-file {log}",
            config = config.display(),
            daemon = root.join("usr/bin/opensnitchd").display(),
            rules = scratch.join("rules").display(),
            log = scratch.join("opensnitchd.log").display(),
        );
        let _ = std::fs::create_dir_all(scratch.join("rules"));
        let daemon = self
            .enter()
            .args(["unshare", "--mount", "--propagation", "private", "sh", "-c", &script])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting opensnitchd");
        self.daemon = Some(daemon);
        for _ in 0..300 {
            let rules = self.enter().args(["iptables", "-t", "mangle", "-S", "OUTPUT"]).output();
            if rules.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("NFQUEUE")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("opensnitchd did not install its NFQUEUE rule; see {}", scratch.join("opensnitchd.log").display());
    }

    fn stop_opensnitch(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            let _ = std::process::Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status();
            for _ in 0..200 {
                if daemon.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
        // What it leaves behind goes with the namespace; between rounds, flush it.
        let _ = self.enter().args(["iptables", "-t", "mangle", "-F"]).status();
        let _ = self.enter().args(["iptables", "-F"]).status();
        let _ = self.enter().args(["nft", "flush", "ruleset"]).status();
    }
}

impl Drop for BenchNetns {
    fn drop(&mut self) {
        self.stop_opensnitch();
        let _ = std::process::Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// `--tcp-loop COUNT` (internal, run inside the namespace): a listener on 127.0.0.1, a warm-up,
/// then COUNT connect + close; prints each one's nanoseconds.
fn tcp_loop(count: usize) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || for _ in listener.incoming() {});
    for _ in 0..count / 10 {
        drop(TcpStream::connect(address).unwrap());
    }
    let times: Vec<String> = (0..count)
        .map(|_| {
            let start = Instant::now();
            drop(TcpStream::connect(address).unwrap());
            start.elapsed().as_nanos().to_string()
        })
        .collect();
    println!("{}", times.join(" "));
}

/// The comparison with OpenSnitch: (TCP connect + close without it, with it), nanoseconds.
fn beside_opensnitch(root: &Path, rounds: usize, count: usize) -> (Vec<u64>, Vec<u64>) {
    let folder = std::env::temp_dir().join(format!("warden-net-bench-opensnitch-{}", std::process::id()));
    let scratch = folder.as_path();
    // Its default configuration, but for where it logs and where it looks for a UI.
    let config = scratch.join("etc");
    std::fs::create_dir_all(&config).unwrap();
    for entry in std::fs::read_dir(root.join("etc/opensnitchd")).expect("OpenSnitch's etc/opensnitchd").flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let text = text
            .replace("/var/log/opensnitchd.log", &scratch.join("opensnitchd.log").display().to_string())
            .replace("unix:///tmp/osui.sock", &format!("unix://{}", scratch.join("osui.sock").display()));
        std::fs::write(config.join(entry.file_name()), text).unwrap();
    }
    let mut netns = BenchNetns::new();
    let (mut plain, mut snitched) = (Vec::new(), Vec::new());
    netns.tcp_loop(count / 10); // warm-up
    for _ in 0..rounds {
        plain.extend(netns.tcp_loop(count));
        netns.start_opensnitch(root, &config, scratch);
        snitched.extend(netns.tcp_loop(count));
        netns.stop_opensnitch();
    }
    drop(netns);
    let _ = std::fs::remove_dir_all(&folder);
    (plain, snitched)
}

fn cgroup2_mount() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("reading /proc/self/mounts");
    let line = mounts.lines().find(|l| l.split(' ').nth(2) == Some("cgroup2")).expect("a cgroup2 mount");
    PathBuf::from(line.split(' ').nth(1).unwrap())
}

/// The bench's cgroup: it moves itself in, and back out and removes it on drop.
struct Cell {
    path: PathBuf,
    home: PathBuf,
}

impl Cell {
    fn new() -> Cell {
        let root = cgroup2_mount();
        let path = root.join(format!("warden-net-bench-{}", std::process::id()));
        std::fs::create_dir(&path).expect("creating the bench cgroup");
        let mine = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let relative = mine.lines().find_map(|l| l.strip_prefix("0::")).unwrap_or("/").trim_start_matches('/');
        let home = root.join(relative);
        std::fs::write(path.join("cgroup.procs"), std::process::id().to_string()).expect("moving into the cgroup");
        Cell { path, home }
    }
}

impl Drop for Cell {
    fn drop(&mut self) {
        let _ = std::fs::write(self.home.join("cgroup.procs"), std::process::id().to_string());
        for _ in 0..100 {
            if std::fs::remove_dir(&self.path).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("net-bench: could not remove {}", self.path.display());
    }
}

fn governed(count: usize) -> BTreeMap<Cidr, KernelRule> {
    // Documentation ranges (never routed), so the ungoverned destination misses them all.
    (0..count)
        .map(|i| {
            let cidr: Cidr = format!("198.51.{}.{}/32", i / 250, i % 250).parse().unwrap();
            (cidr, KernelAction::Block.into())
        })
        .collect()
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Per-operation nanoseconds of one round.
#[derive(Default)]
struct Round {
    udp: Vec<u64>,
    tcp: Vec<u64>,
    echo: Vec<u64>,
    dns: Vec<u64>,
}

impl Round {
    fn extend(&mut self, other: Round) {
        self.udp.extend(other.udp);
        self.tcp.extend(other.tcp);
        self.echo.extend(other.echo);
        self.dns.extend(other.dns);
    }
}

/// A DNS query for `name` (A, id 0x4242) and its answer: one A record `address`, TTL 60, the owner
/// name compressed as resolvers write it.
fn dns_exchange(name: &str, address: [u8; 4]) -> (Vec<u8>, Vec<u8>) {
    let mut question = Vec::new();
    for label in name.split('.') {
        question.push(label.len() as u8);
        question.extend_from_slice(label.as_bytes());
    }
    question.extend_from_slice(&[0, 0, 1, 0, 1]);
    let mut query = vec![0x42, 0x42, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    query.extend_from_slice(&question);
    let mut answer = vec![0x42, 0x42, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
    answer.extend_from_slice(&question);
    answer.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
    answer.extend_from_slice(&address);
    (query, answer)
}

/// The sockets the datagram parts use: an echo peer and the DNS server (both the bench's own).
struct Peers {
    echo: UdpSocket,
    dns: UdpSocket,
    query: Vec<u8>,
    answer: Vec<u8>,
}

/// One round of `ops` UDP connects, `ops / 4` TCP connects, `ops / 4` datagram round trips and
/// `ops / 10` DNS exchanges.
fn round(ops: usize, tcp: SocketAddr, peers: &Peers) -> Round {
    let target: SocketAddr = "127.0.0.61:9".parse().unwrap();
    let mut udp = Vec::with_capacity(ops);
    for _ in 0..ops {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let start = Instant::now();
        socket.connect(target).unwrap();
        udp.push(start.elapsed().as_nanos() as u64);
    }
    let mut stream = Vec::with_capacity(ops / 4);
    for _ in 0..ops / 4 {
        let start = Instant::now();
        drop(TcpStream::connect(tcp).unwrap());
        stream.push(start.elapsed().as_nanos() as u64);
    }
    let mut buffer = [0u8; 512];
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.connect(peers.echo.local_addr().unwrap()).unwrap();
    let mut echo = Vec::with_capacity(ops / 4);
    for _ in 0..ops / 4 {
        let start = Instant::now();
        client.send(b"ping").unwrap();
        let (_, from) = peers.echo.recv_from(&mut buffer).unwrap();
        peers.echo.send_to(b"pong", from).unwrap();
        client.recv(&mut buffer).unwrap();
        echo.push(start.elapsed().as_nanos() as u64);
    }
    // A resolver's socket: connected to the server (the hooks note it as a DNS socket).
    let resolver = UdpSocket::bind("127.0.0.1:0").unwrap();
    resolver.connect(peers.dns.local_addr().unwrap()).unwrap();
    let mut dns = Vec::with_capacity(ops / 10);
    for _ in 0..ops / 10 {
        let start = Instant::now();
        resolver.send(&peers.query).unwrap();
        let (_, from) = peers.dns.recv_from(&mut buffer).unwrap();
        peers.dns.send_to(&peers.answer, from).unwrap();
        resolver.recv(&mut buffer).unwrap();
        dns.push(start.elapsed().as_nanos() as u64);
    }
    Round { udp, tcp: stream, echo, dns }
}

fn child(target: &str, count: usize) {
    let target: SocketAddr = target.parse().unwrap();
    for _ in 0..count {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(target).unwrap();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // The bench re-runs itself as the attribution's children (`--child TARGET COUNT`, internal).
    if args.get(1).map(String::as_str) == Some("--child") {
        return child(&args[2], args[3].parse().unwrap());
    }
    if args.get(1).map(String::as_str) == Some("--tcp-loop") {
        return tcp_loop(args[2].parse().unwrap());
    }
    let Options { rounds, ops, ranges, procs, per_proc, opensnitch_root } = clap::Parser::parse();
    let opensnitch_root = opensnitch_root
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(OPENSNITCH_CACHE)))
        .filter(|root| root.join("usr/bin/opensnitchd").exists());
    let cell = Cell::new();
    let listener = TcpListener::bind("127.0.0.61:0").unwrap();
    let tcp = listener.local_addr().unwrap();
    std::thread::spawn(move || for _ in listener.incoming() {});
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _guard = runtime.enter();

    let (query, answer) = dns_exchange("www.unrelated-cdn.example", [127, 0, 0, 63]);
    let peers = Peers {
        echo: UdpSocket::bind("127.0.0.61:0").unwrap(),
        dns: UdpSocket::bind("127.0.0.153:53").expect("port 53 on 127.0.0.153 (a loopback address)"),
        query,
        answer,
    };
    // The governed names the kernel matches answers against, and the shared range the answer's
    // address lies in (so the unrelated answer is remembered for the process).
    let names: BTreeMap<HostPattern, KernelRule> = [
        ("api.anthropic.com", KernelRule { action: KernelAction::Block, shared: false }),
        ("*.googleapis.com", KernelRule { action: KernelAction::Block, shared: true }),
    ]
    .into_iter()
    .map(|(p, r)| (HostPattern::parse(p).unwrap(), r))
    .collect();
    let mut held = governed(ranges);
    held.insert("127.0.0.63/32".parse().unwrap(), KernelRule { action: KernelAction::Block, shared: true });

    let mut samples: HashMap<&str, Round> = HashMap::new();
    round(ops / 10, tcp, &peers); // warm-up
    for _ in 0..rounds {
        samples.entry("no hook").or_default().extend(round(ops, tcp, &peers));
        let (mut firewall, _events) = Firewall::attach(&cell.path).expect("attaching to the bench cgroup");
        firewall.dns_hook().expect("the DNS answer reader loads");
        firewall.set_ranges(&held).unwrap();
        firewall.set_names(&names).unwrap();
        samples.entry("hook").or_default().extend(round(ops, tcp, &peers));
        drop(firewall);
    }
    println!(
        "connect() to an ungoverned loopback destination, {rounds} alternating rounds, {ranges} governed prefixes:"
    );
    let mut medians = HashMap::new();
    for name in ["no hook", "hook"] {
        let round = samples.get_mut(name).unwrap();
        for list in [&mut round.udp, &mut round.tcp, &mut round.echo, &mut round.dns] {
            list.sort_unstable();
        }
        let line = |what: &str, list: &[u64]| {
            let us = |p: f64| percentile(list, p) as f64 / 1000.0;
            format!("{what}: median {:.2} µs, p99 {:.2} µs (n={})", us(0.5), us(0.99), list.len())
        };
        println!("  {name:8} {}; {}", line("UDP connect", &round.udp), line("TCP connect+close", &round.tcp));
        println!("  {name:8} {}; {}", line("datagram round trip", &round.echo), line("DNS query + answer", &round.dns));
        medians.insert(
            name,
            [
                percentile(&round.udp, 0.5),
                percentile(&round.tcp, 0.5),
                percentile(&round.echo, 0.5),
                percentile(&round.dns, 0.5),
            ],
        );
    }
    let (none, hook) = (medians["no hook"], medians["hook"]);
    let added = |i: usize| (hook[i] as f64 - none[i] as f64) / 1000.0;
    let ratio = |i: usize| hook[i] as f64 / none[i] as f64;
    println!(
        "  added by the hooks (median): UDP connect {:+.2} µs (ratio {:.2}), TCP {:+.2} µs (ratio {:.2}), datagram round \
         trip {:+.2} µs (ratio {:.2}), DNS query + answer {:+.2} µs (ratio {:.2})",
        added(0),
        ratio(0),
        added(1),
        ratio(1),
        added(2),
        ratio(2),
        added(3),
        ratio(3)
    );

    // Attribution: every event names the child that connected.
    let (mut firewall, mut events) = Firewall::attach(&cell.path).expect("attaching to the bench cgroup");
    firewall
        .set_ranges(&[("127.0.0.62/32".parse().unwrap(), KernelAction::Observe.into())].into_iter().collect())
        .unwrap();
    let me = std::env::current_exe().unwrap();
    let children: Vec<std::process::Child> = (0..procs)
        .map(|_| {
            std::process::Command::new(&me)
                .args(["--child", "127.0.0.62:9", &per_proc.to_string()])
                .spawn()
                .expect("starting a child")
        })
        .collect();
    let pids: Vec<u32> = children.iter().map(|c| c.id()).collect();
    for mut c in children {
        let _ = c.wait();
    }
    let expected = procs * per_proc;
    let mut per_pid: HashMap<u32, usize> = HashMap::new();
    let mut total = 0;
    runtime.block_on(async {
        while total < expected {
            match tokio::time::timeout(Duration::from_secs(2), events.next()).await {
                Ok(Some(warden_net::kernel::KernelReport::Connect(event))) => {
                    total += 1;
                    *per_pid.entry(event.tgid).or_default() += 1;
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }
    });
    let right = pids.iter().map(|p| per_pid.get(p).copied().unwrap_or(0).min(per_proc)).sum::<usize>();
    println!(
        "attribution: {expected} connects from {procs} concurrent processes → {total} events, {right} attributed to the \
         pid that connected ({:.1} %)",
        100.0 * right as f64 / expected as f64
    );
    drop(firewall);
    drop(cell);

    match opensnitch_root {
        Some(root) => {
            let count = ops / 4;
            let (mut plain, mut snitched) = beside_opensnitch(&root, rounds.min(3), count);
            plain.sort_unstable();
            snitched.sort_unstable();
            let median = |v: &[u64]| percentile(v, 0.5) as f64 / 1000.0;
            let p99 = |v: &[u64]| percentile(v, 0.99) as f64 / 1000.0;
            println!(
                "beside OpenSnitch 1.5.8 (its own network namespace, {} alternating rounds of {count}): TCP connect+close \
                 without it median {:.2} µs, p99 {:.2} µs; with opensnitchd median {:.2} µs, p99 {:.2} µs: added {:+.2} µs \
                 median (ratio {:.2}); Warden's hooks added {:+.2} µs (above)",
                rounds.min(3),
                median(&plain),
                p99(&plain),
                median(&snitched),
                p99(&snitched),
                median(&snitched) - median(&plain),
                median(&snitched) / median(&plain),
                (medians["hook"][1] as f64 - medians["no hook"][1] as f64) / 1000.0,
            );
        }
        None => println!("beside OpenSnitch: skipped (no opensnitchd; `cargo xtask setup` unpacks it)"),
    }
}
