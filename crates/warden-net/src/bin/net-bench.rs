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
                (medians["hook"].1 as f64 - medians["no hook"].1 as f64) / 1000.0,
            );
        }
        None => println!("beside OpenSnitch: skipped (no opensnitchd; `cargo xtask setup` unpacks it)"),
    }
}
