//! `net-bench`: what the eBPF hooks cost and how exactly they attribute (docs/benchmarks.md).
//!
//! Root only; touches only what it creates: a cgroup v2 folder of its own (it moves itself in,
//! and back to where it was at the end), loopback addresses 127.0.0.61–62, its own children.
//!
//! 1. Added cost of `connect()` to an ungoverned destination: the median and p99 of one UDP
//!    `connect()` (no packet: the hook and the route lookup) and of one TCP connect + close on
//!    loopback, with no hook vs the hooks attached holding `--ranges` governed prefixes, in
//!    alternating rounds.
//! 2. Attribution: `--procs` child processes each connect `--per-proc` times to a governed
//!    (observed) address; every kernel event must name the pid of the child that connected.
//!
//! `net-bench [--rounds 6] [--ops 20000] [--ranges 500] [--procs 20] [--per-proc 50]`

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use warden_net::kernel::{Firewall, KernelAction};
use warden_policy::Cidr;

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

fn governed(count: usize) -> BTreeMap<Cidr, KernelAction> {
    // Documentation ranges (never routed), so the ungoverned destination misses them all.
    (0..count)
        .map(|i| {
            let cidr: Cidr = format!("198.51.{}.{}/32", i / 250, i % 250).parse().unwrap();
            (cidr, KernelAction::Block)
        })
        .collect()
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// One round of `ops` UDP connects and `ops / 4` TCP connects; per-operation nanoseconds.
fn round(ops: usize, tcp: SocketAddr) -> (Vec<u64>, Vec<u64>) {
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
    (udp, stream)
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
    let Options { rounds, ops, ranges, procs, per_proc } = clap::Parser::parse();
    let cell = Cell::new();
    let listener = TcpListener::bind("127.0.0.61:0").unwrap();
    let tcp = listener.local_addr().unwrap();
    std::thread::spawn(move || for _ in listener.incoming() {});
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _guard = runtime.enter();

    let mut samples: HashMap<&str, (Vec<u64>, Vec<u64>)> = HashMap::new();
    round(ops / 10, tcp); // warm-up
    for _ in 0..rounds {
        let (udp, stream) = round(ops, tcp);
        let entry = samples.entry("no hook").or_default();
        entry.0.extend(udp);
        entry.1.extend(stream);
        let (mut firewall, _events) = Firewall::attach(&cell.path).expect("attaching to the bench cgroup");
        firewall.set_ranges(&governed(ranges)).unwrap();
        let (udp, stream) = round(ops, tcp);
        let entry = samples.entry("hook").or_default();
        entry.0.extend(udp);
        entry.1.extend(stream);
        drop(firewall);
    }
    println!(
        "connect() to an ungoverned loopback destination, {rounds} alternating rounds, {ranges} governed prefixes:"
    );
    let mut medians = HashMap::new();
    for name in ["no hook", "hook"] {
        let (udp, stream) = samples.get_mut(name).unwrap();
        udp.sort_unstable();
        stream.sort_unstable();
        println!(
            "  {name:8} UDP connect: median {:.2} µs, p99 {:.2} µs (n={}); TCP connect+close: median {:.2} µs, p99 {:.2} µs (n={})",
            percentile(udp, 0.5) as f64 / 1000.0,
            percentile(udp, 0.99) as f64 / 1000.0,
            udp.len(),
            percentile(stream, 0.5) as f64 / 1000.0,
            percentile(stream, 0.99) as f64 / 1000.0,
            stream.len()
        );
        medians.insert(name, (percentile(udp, 0.5), percentile(stream, 0.5)));
    }
    let (none, hook) = (medians["no hook"], medians["hook"]);
    println!(
        "  added by the hook: UDP {:+.2} µs median (ratio {:.2}), TCP {:+.2} µs median (ratio {:.2})",
        (hook.0 as f64 - none.0 as f64) / 1000.0,
        hook.0 as f64 / none.0 as f64,
        (hook.1 as f64 - none.1 as f64) / 1000.0,
        hook.1 as f64 / none.1 as f64
    );

    // Attribution: every event names the child that connected.
    let (mut firewall, mut events) = Firewall::attach(&cell.path).expect("attaching to the bench cgroup");
    firewall.set_ranges(&[("127.0.0.62/32".parse().unwrap(), KernelAction::Observe)].into_iter().collect()).unwrap();
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
                Ok(Some(event)) => {
                    total += 1;
                    *per_pid.entry(event.tgid).or_default() += 1;
                }
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
}
