//! Process-monitor benchmarks (docs/benchmarks.md, "Process monitor"), measured side by
//! side in one run on real processes:
//!
//! 1. exec → verdict latency: the netlink process connector against a `sysinfo` poller
//!    at 1 Hz and 10 Hz;
//! 2. block effectiveness over N launches: a `#!/usr/bin/env node` script reaching its
//!    first statement, a C program reaching `main()` (unprivileged path, and with the
//!    fanotify gate as root);
//! 3. the gate's added cost per allowed exec, against no gate and (when installed and
//!    asked for with `--fapolicyd`) Debian's fapolicyd in permissive mode;
//! 4. idle CPU and RSS of `warden watch` (connector), and CPU of the poller at 2 Hz with
//!    1,000 extra processes.
//!
//! Run as root for the gate parts: `cargo run --release -p warden-monitor --bin monitor-bench`.
//! Options: `--launches N` (default 200), `--quick`, `--fapolicyd`, `--warden PATH`,
//! `--only latency,block,gate,idle`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};
use warden_monitor::source::{EventSource, Poller, ProcConnector};
use warden_monitor::{Decider, Launch, Watcher};
use warden_policy::{Mode, Policy};

const FAKE_TOOL_C: &str = include_str!("../../../../tests/data/monitor/fake_tool.c");
const CLAUDE_CLI_JS: &str = include_str!("../../../../tests/data/monitor/claude-cli.js");

/// Process-monitor benchmarks (docs/benchmarks.md, "Process monitor"). Run as root for the gate
/// parts; the whole run takes about six minutes.
#[derive(Debug, clap::Parser)]
#[command(name = "monitor-bench")]
struct Options {
    /// Only these parts, comma-separated; all when absent.
    #[arg(long, value_delimiter = ',', value_parser = ["latency", "block", "gate", "idle", "identity"])]
    only: Vec<String>,
    /// Launches per block-effectiveness measurement.
    #[arg(long, default_value_t = 200)]
    launches: usize,
    /// A smoke run: fewer samples and shorter windows.
    #[arg(long)]
    quick: bool,
    /// Also measure Debian's fapolicyd (permissive) as the gate's peer (root; package installed).
    #[arg(long)]
    fapolicyd: bool,
    /// The `warden` binary for the idle part (default: the one beside this binary).
    #[arg(long)]
    warden: Option<PathBuf>,
}

fn options() -> Options {
    let mut options = <Options as clap::Parser>::parse();
    if options.warden.is_none() {
        options.warden = std::env::current_exe().ok().map(|exe| exe.with_file_name("warden")).filter(|w| w.exists());
    }
    options
}

/// A scratch HOME with a fake Claude Code (native and npm script) in it.
struct Fixture {
    dir: PathBuf,
    native: PathBuf,
    script: PathBuf,
    marker: PathBuf,
}

impl Fixture {
    fn new(base: &Path) -> Fixture {
        let dir = base.to_path_buf();
        let native = dir.join(".local/share/claude/versions/2.1.37");
        std::fs::create_dir_all(native.parent().unwrap()).unwrap();
        let source = dir.join("fake_tool.c");
        std::fs::write(&source, FAKE_TOOL_C).unwrap();
        let built = Command::new("cc").arg("-O2").arg("-o").arg(&native).arg(&source).status().unwrap();
        assert!(built.success(), "cc");
        let script = dir.join(".npm-global/lib/node_modules/@anthropic-ai/claude-code/cli.js");
        std::fs::create_dir_all(script.parent().unwrap()).unwrap();
        std::fs::write(&script, CLAUDE_CLI_JS).unwrap();
        set_executable(&script);
        let bin = dir.join(".npm-global/bin/claude");
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&bin);
        std::os::unix::fs::symlink(&script, &bin).unwrap();
        Fixture { marker: dir.join("marker.txt"), dir, native, script: bin }
    }

    fn marks(&self, prefix: &str) -> usize {
        std::fs::read_to_string(&self.marker).unwrap_or_default().lines().filter(|l| l.starts_with(prefix)).count()
    }

    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .env("FAKE_MARKER", &self.marker)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    }
}

fn set_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A watcher thread over a source, sending every launch it decides.
struct Running {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    launches: Receiver<Launch>,
}

impl Running {
    fn start(mut source: Box<dyn EventSource>, decider: Arc<Decider>) -> Running {
        let stop = Arc::new(AtomicBool::new(false));
        let (sender, launches) = channel();
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut watcher = Watcher::new(decider);
                let name = source.name();
                let mut notices = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let _ = source.wait(Duration::from_millis(50), &mut notices);
                    for notice in notices.drain(..) {
                        if let Some(launch) = watcher.handle(notice, name) {
                            let _ = sender.send(launch);
                        }
                    }
                }
            })
        };
        Running { stop, thread: Some(thread), launches }
    }

    fn wait_for(&self, pid: u32, within: Duration) -> Option<Launch> {
        let deadline = Instant::now() + within;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.launches.recv_timeout(left) {
                Ok(launch) if launch.facts.pid == Some(pid) => return Some(launch),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn policy(mode: Mode) -> Arc<Decider> {
    let mut policy = Policy::embedded();
    policy.mode = mode;
    Arc::new(Decider::new(policy, None, Vec::new()))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn summary(mut values: Vec<f64>) -> (f64, f64, usize) {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (percentile(&values, 50.0), percentile(&values, 99.0), values.len())
}

fn reap(children: &mut Vec<Child>) {
    for child in children.iter_mut() {
        let _ = child.kill();
        let _ = child.wait();
    }
    children.clear();
}

/// Part 1: spawn → verdict (and kernel exec → verdict for the connector).
/// A small xorshift generator: spawn times at random phases of a poll period.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn latency(fixture: &Fixture, name: &str, source: Box<dyn EventSource>, samples: usize, spacing: Duration) {
    let mut random = 0x9E37_79B9_7F4A_7C15u64 ^ std::process::id() as u64;
    let running = Running::start(source, policy(Mode::Monitor));
    std::thread::sleep(Duration::from_millis(200));
    let mut from_spawn = Vec::new();
    let mut from_kernel = Vec::new();
    let mut first_looks = Vec::new();
    let mut missed = 0;
    let mut children = Vec::new();
    for _ in 0..samples {
        let spawned = Instant::now();
        let child = fixture.command(&fixture.native).env("FAKE_SLEEP", "3").spawn().unwrap();
        let pid = child.id();
        children.push(child);
        match running.wait_for(pid, Duration::from_secs(3)) {
            Some(launch) => {
                from_spawn.push(launch.decided.duration_since(spawned).as_secs_f64() * 1e3);
                if let Some(latency) = launch.latency {
                    from_kernel.push(latency.as_secs_f64() * 1e3);
                }
                if let Some(first) = launch.first_look {
                    first_looks.push(first.as_secs_f64() * 1e3);
                }
            }
            None => missed += 1,
        }
        // A random pause up to `spacing` (one poll period): launches land at random
        // phases of the poller's cycle, as real ones do.
        let pause = spacing.mul_f64((next_random(&mut random) % 1000) as f64 / 1000.0);
        std::thread::sleep(pause + Duration::from_millis(5));
        if children.len() >= 20 {
            reap(&mut children);
        }
    }
    reap(&mut children);
    let (median, p99, n) = summary(from_spawn);
    println!("latency {name:<16} spawn->verdict  median {median:8.3} ms  p99 {p99:8.3} ms  (n={n}, missed {missed})");
    if !from_kernel.is_empty() {
        let (median, p99, n) = summary(from_kernel);
        println!("latency {name:<16} kernel->verdict median {median:8.3} ms  p99 {p99:8.3} ms  (n={n})");
    }
    if !first_looks.is_empty() {
        let (median, p99, n) = summary(first_looks);
        println!(
            "latency {name:<16} kernel->freeze  median {median:8.3} ms  p99 {p99:8.3} ms  (n={n}; first look: a blocked tool is stopped here)"
        );
    }
}

/// Part 2: how often a blocked launch still ran its first line.
fn effectiveness(fixture: &Fixture, label: &str, program: &Path, mark: &str, launches: usize) {
    let _ = std::fs::remove_file(&fixture.marker);
    let (mut killed, mut denied, mut other) = (0, 0, 0);
    for _ in 0..launches {
        match fixture.command(program).spawn() {
            Ok(mut child) => {
                let deadline = Instant::now() + Duration::from_secs(5);
                loop {
                    if let Some(status) = child.try_wait().unwrap() {
                        use std::os::unix::process::ExitStatusExt;
                        if status.signal() == Some(9) {
                            killed += 1
                        } else {
                            other += 1
                        }
                        break;
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        other += 1;
                        break;
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            Err(error) if error.raw_os_error() == Some(1) => denied += 1,
            Err(error) => panic!("spawn: {error}"),
        }
    }
    let reached = fixture.marks(mark);
    println!(
        "block   {label:<40} {reached:3}/{launches} reached their first line ({:.1} %); killed {killed}, denied {denied}, other {other}",
        100.0 * reached as f64 / launches as f64
    );
}

/// fork + exec + wait of `program`, `count` times; per-exec microseconds.
fn exec_cost(program: &Path, count: usize) -> Vec<f64> {
    exec_cost_with(program, &[], count)
}

/// fork+exec+wait of `program ARGS…`, in microseconds, `count` times.
fn exec_cost_with(program: &Path, args: &[&Path], count: usize) -> Vec<f64> {
    (0..count)
        .map(|_| {
            let started = Instant::now();
            let status = Command::new(program).args(args).stdin(Stdio::null()).stdout(Stdio::null()).status().unwrap();
            assert!(status.success());
            started.elapsed().as_secs_f64() * 1e6
        })
        .collect()
}

/// Nanoseconds on CPU of all threads of `pid` (`/proc/PID/task/*/schedstat`).
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Exec events on the whole machine during `window` (what an idle agent still sees).
fn machine_exec_rate(window: Duration) -> f64 {
    let Ok(mut connector) = ProcConnector::open() else { return f64::NAN };
    let started = Instant::now();
    let mut notices = Vec::new();
    let mut count = 0;
    while started.elapsed() < window {
        connector.wait(Duration::from_millis(100), &mut notices).ok();
        count += notices.len();
        notices.clear();
    }
    count as f64 / window.as_secs_f64()
}

impl Options {
    fn wants(&self, part: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == part)
    }
}

fn main() {
    let options = options();
    let launches = if options.quick { options.launches.min(30) } else { options.launches };
    let root = warden_monitor::running_as_root();
    let scratch = std::env::temp_dir().join(format!("warden-monitor-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let fixture = Fixture::new(&scratch);
    println!(
        "machine: {} cores, kernel {}, root: {root}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim()
    );
    println!("load average at start: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());

    // 1. Latency, the three sources one after the other in this run.
    let samples = if options.quick { 20 } else { 200 };
    if options.wants("latency") {
        latency(
            &fixture,
            "proc-connector",
            Box::new(ProcConnector::open().expect("connector")),
            samples,
            Duration::from_millis(10),
        );
        latency(
            &fixture,
            "poll 10 Hz",
            Box::new(Poller::new(Duration::from_millis(100)).unwrap()),
            samples.min(100),
            Duration::from_millis(100),
        );
        latency(
            &fixture,
            "poll 1 Hz",
            Box::new(Poller::new(Duration::from_secs(1)).unwrap()),
            samples.min(50),
            Duration::from_secs(1),
        );
    }

    // 2. Block effectiveness, unprivileged path (connector + kill).
    if options.wants("block") {
        let _running = Running::start(Box::new(ProcConnector::open().unwrap()), policy(Mode::Enforce));
        std::thread::sleep(Duration::from_millis(200));
        effectiveness(&fixture, "node script (connector + SIGKILL)", &fixture.script, "first statement", launches);
        effectiveness(&fixture, "C main() (connector + SIGKILL)", &fixture.native, "main", launches);
    }

    if options.wants("gate") && root {
        gate_parts(&scratch, launches, options.quick, options.fapolicyd);
    } else if options.wants("gate") {
        println!("gate    skipped: the fanotify gate needs root");
    }

    // 4. Idle cost of `warden watch` with the connector.
    if options.wants("idle") {
        match &options.warden {
            Some(warden) => idle_agent(warden, &scratch, if options.quick { 10 } else { 60 }),
            None => println!("idle    skipped: build `warden` (cargo build --release -p warden) or pass --warden PATH"),
        }
        poller_with_many_processes(if options.quick { 5 } else { 20 });
    }
    // 5. Content identity of a large program file: first read, cached answer, peers.
    if options.wants("identity") {
        identity_cost(&scratch, if options.quick { 2 } else { 5 });
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

/// A 200 MiB "ELF" of pseudo-random bytes (no tool: every byte is read), and the same with a
/// tool's fingerprint markers (taken from the catalog at run time) at its very end.
fn large_files(scratch: &Path) -> (PathBuf, PathBuf) {
    use std::io::Write;
    let plain = scratch.join("plain-200m");
    let marked = scratch.join("marked-200m");
    let catalog = warden_policy::Catalog::embedded();
    let markers = catalog.tool("claude-code").unwrap().fingerprints[0].join(" .. ");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut chunk = vec![0u8; 1 << 20];
    let mut a = std::io::BufWriter::new(std::fs::File::create(&plain).unwrap());
    let mut b = std::io::BufWriter::new(std::fs::File::create(&marked).unwrap());
    for (i, _) in (0..200).enumerate() {
        for word in chunk.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        if i == 0 {
            chunk[..4].copy_from_slice(b"\x7fELF");
        }
        a.write_all(&chunk).unwrap();
        b.write_all(&chunk).unwrap();
    }
    b.write_all(markers.as_bytes()).unwrap();
    (plain, marked)
}

/// Issue 10's goal: identifying a new 200 MB binary ≤ 150 ms the first time, a cached answer
/// ≤ 5 µs. Files in the page cache; rounds interleaved with the peers: the fingerprint scan
/// alone (what the build before the hash did) and coreutils `sha256sum` (a process).
fn identity_cost(scratch: &Path, rounds: usize) {
    use std::io::Read;
    use warden_monitor::identity::ContentIdentity;
    let (plain, marked) = large_files(scratch);
    let catalog = warden_policy::Catalog::embedded();
    let matcher = catalog.content();
    for file in [&plain, &marked] {
        let mut sink = Vec::new();
        std::fs::File::open(file).unwrap().read_to_end(&mut sink).unwrap(); // into the page cache
    }
    let mut rows: Vec<(String, Vec<f64>)> = Vec::new();
    let mut record = |name: String, ms: f64| match rows.iter_mut().find(|(n, _)| *n == name) {
        Some((_, v)) => v.push(ms),
        None => rows.push((name, vec![ms])),
    };
    let mut cached_us = Vec::new();
    for _ in 0..rounds {
        for (label, file) in [("200 MiB, no tool", &plain), ("200 MiB, fingerprint at the end", &marked)] {
            let mut identity = ContentIdentity::default();
            let started = Instant::now();
            let found = identity.identify(file, matcher, 1).expect("read");
            record(
                format!("first identification (scan + SHA-256 + build-id), {label}"),
                started.elapsed().as_secs_f64() * 1e3,
            );
            assert!(found.sha256.is_some());
            let started = Instant::now();
            for _ in 0..10_000 {
                std::hint::black_box(identity.identify(file, matcher, 1));
            }
            cached_us.push(started.elapsed().as_secs_f64() * 1e6 / 10_000.0);
            let started = Instant::now();
            let scanned = matcher.scan(std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(file).unwrap()));
            std::hint::black_box(scanned.unwrap());
            record(format!("peer: fingerprint scan alone, {label}"), started.elapsed().as_secs_f64() * 1e3);
            let started = Instant::now();
            let status = Command::new("sha256sum").arg(file).stdout(Stdio::null()).status().unwrap();
            assert!(status.success());
            record(format!("peer: sha256sum (process), {label}"), started.elapsed().as_secs_f64() * 1e3);
        }
    }
    for (name, mut values) in rows {
        values.sort_by(f64::total_cmp);
        println!(
            "identity {name}: median {:.1} ms (min {:.1}, max {:.1}, n={})",
            percentile(&values, 50.0),
            values[0],
            values[values.len() - 1],
            values.len()
        );
    }
    cached_us.sort_by(f64::total_cmp);
    println!(
        "identity cached answer (open + fstat + lookup): median {:.2} µs (max {:.2}, n={} × 10,000)",
        percentile(&cached_us, 50.0),
        cached_us[cached_us.len() - 1],
        cached_us.len()
    );
}

fn gate_parts(scratch: &Path, launches: usize, quick: bool, fapolicyd: bool) {
    use warden_monitor::gate::{DEFAULT_DEADLINE, ExecGate, GateScope};
    let tmpfs_only = || GateScope::Filesystems(vec![scratch.join("gated")]);
    let mount = scratch.join("gated");
    std::fs::create_dir_all(&mount).unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=64m", "warden-bench"]).arg(&mount).status();
    assert!(mounted.is_ok_and(|s| s.success()), "mount tmpfs");
    let gated = Fixture::new(&mount.join("home"));
    let true_copy = mount.join("true");
    std::fs::copy("/bin/true", &true_copy).unwrap();
    set_executable(&true_copy);

    {
        let decider = policy(Mode::Enforce);
        let (sender, _launches) = channel();
        let gate = ExecGate::start(&tmpfs_only(), decider.clone(), sender, DEFAULT_DEADLINE).unwrap();
        let _running = Running::start(Box::new(ProcConnector::open().unwrap()), decider);
        std::thread::sleep(Duration::from_millis(200));
        effectiveness(&gated, "C main() (fanotify gate)", &gated.native, "main", launches);
        effectiveness(&gated, "node script via #! (fanotify gate)", &gated.script, "first statement", launches);
        gate.stop();
    }

    // 3. Added cost per allowed exec, interleaved rounds: none / gate on the tmpfs only /
    //    gate on the tmpfs and the root filesystem (then the dynamic loader's exec is gated as
    //    well) / gate on every local filesystem with the mount table followed (the service's
    //    default); and the loader run directly (`ld.so PROGRAM`), where the gate switches
    //    FAN_OPEN_PERM on until the loader has opened its program. Configurations that gate the
    //    whole machine decide in monitor mode: the same work, but another test's stand-in
    //    started meanwhile elsewhere on the machine is not denied.
    let per_round = if quick { 100 } else { 400 };
    let rounds = if quick { 2 } else { 5 };
    let loader = Path::new("/lib64/ld-linux-x86-64.so.2");
    let mut baseline = Vec::new();
    let mut gate_tmpfs = Vec::new();
    let mut gate_root = Vec::new();
    let mut gate_local = Vec::new();
    let mut loader_baseline = Vec::new();
    let mut loader_gated = Vec::new();
    let machine_wide = || policy(Mode::Monitor);
    for _ in 0..rounds {
        baseline.extend(exec_cost(&true_copy, per_round));
        loader_baseline.extend(exec_cost_with(loader, &[&true_copy], per_round));
        {
            let (sender, _r) = channel();
            let gate = ExecGate::start(&tmpfs_only(), policy(Mode::Enforce), sender, DEFAULT_DEADLINE).unwrap();
            gate_tmpfs.extend(exec_cost(&true_copy, per_round));
            gate.stop();
        }
        {
            let (sender, _r) = channel();
            let marks = GateScope::Filesystems(vec![mount.clone(), PathBuf::from("/")]);
            let gate = ExecGate::start(&marks, machine_wide(), sender, DEFAULT_DEADLINE).unwrap();
            gate_root.extend(exec_cost(&true_copy, per_round));
            gate.stop();
        }
        {
            let (sender, _r) = channel();
            let gate = ExecGate::start(&GateScope::all_local(), machine_wide(), sender, DEFAULT_DEADLINE).unwrap();
            gate_local.extend(exec_cost(&true_copy, per_round));
            loader_gated.extend(exec_cost_with(loader, &[&true_copy], per_round));
            gate.stop();
        }
    }
    let (base_median, base_p99, n) = summary(baseline);
    println!("cost    no gate                         median {base_median:7.1} us  p99 {base_p99:7.1} us (n={n})");
    for (label, values) in [
        ("gate, program on gated tmpfs", gate_tmpfs),
        ("gate, tmpfs + / (program + ld.so)", gate_root),
        ("gate, every local filesystem", gate_local),
    ] {
        let (median, p99, n) = summary(values);
        println!(
            "cost    {label:<32} median {median:7.1} us  p99 {p99:7.1} us (n={n})  added {:+.1} us median",
            median - base_median
        );
    }
    let (loader_median, loader_p99, n) = summary(loader_baseline);
    println!("cost    ld.so PROGRAM, no gate          median {loader_median:7.1} us  p99 {loader_p99:7.1} us (n={n})");
    let (median, p99, n) = summary(loader_gated);
    println!(
        "cost    ld.so PROGRAM, every local fs   median {median:7.1} us  p99 {p99:7.1} us (n={n})  added {:+.1} us median",
        median - loader_median
    );
    if fapolicyd {
        fapolicyd_cost(&true_copy, per_round, rounds);
    } else {
        println!("cost    fapolicyd: not measured in this run (pass --fapolicyd, as root, with the package installed)");
    }
    let _ = Command::new("umount").arg(&mount).status();
}

/// fapolicyd in permissive mode with an allow-all rule, under a watchdog (`timeout`), in
/// interleaved rounds against no daemon. Its Debian default rules deny every exec when
/// enforcing, so it is only ever started with `--permissive`.
fn fapolicyd_cost(program: &Path, per_round: usize, rounds: usize) {
    if !Path::new("/usr/sbin/fapolicyd").exists() {
        println!("cost    fapolicyd: not installed (apt-get install fapolicyd)");
        return;
    }
    let mut without = Vec::new();
    let mut with = Vec::new();
    for _ in 0..rounds {
        without.extend(exec_cost(program, per_round));
        let mut daemon = Command::new("timeout")
            .args(["-s", "KILL", "120", "/usr/sbin/fapolicyd", "--permissive", "--debug-deny"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // It is ready once it has marked the mounts: wait until an exec is slower, or 3 s.
        std::thread::sleep(Duration::from_secs(3));
        if daemon.try_wait().unwrap().is_some() {
            println!("cost    fapolicyd: exited at start (see `fapolicyd --debug --permissive`); not measured");
            return;
        }
        with.extend(exec_cost(program, per_round));
        let _ = Command::new("kill").arg("-TERM").arg(daemon.id().to_string()).status();
        let _ = daemon.wait();
        std::thread::sleep(Duration::from_millis(500));
    }
    let (base, _, _) = summary(without);
    let (median, p99, n) = summary(with);
    println!(
        "cost    fapolicyd permissive            median {median:7.1} us  p99 {p99:7.1} us (n={n})  added {:+.1} us median (its own baseline {base:.1})",
        median - base
    );
}

fn idle_agent(warden: &Path, scratch: &Path, seconds: u64) {
    let mut agent = Command::new(warden)
        .args(["watch", "--source", "proc-connector", "--no-sweep", "--state-dir"])
        .arg(scratch.join("idle-state"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let pid = agent.id();
    let (cpu_before, started) = (cpu_ns(pid), Instant::now());
    let rate = machine_exec_rate(Duration::from_secs(seconds));
    let cpu = (cpu_ns(pid) - cpu_before) as f64 / started.elapsed().as_nanos() as f64 * 100.0;
    let rss = rss_kib(pid);
    let _ = agent.kill();
    let _ = agent.wait();
    println!(
        "idle    warden watch (proc-connector)   CPU {cpu:.3} % of one core, RSS {:.1} MB over {seconds} s; the machine ran {rate:.1} execs/s meanwhile",
        rss as f64 / 1024.0
    );
}

fn poller_with_many_processes(seconds: u64) {
    let mut sleepers: Vec<Child> =
        (0..1000).filter_map(|_| Command::new("sleep").arg("300").stdin(Stdio::null()).spawn().ok()).collect();
    let total = std::fs::read_dir("/proc")
        .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok()).count())
        .unwrap_or(0);
    std::thread::sleep(Duration::from_secs(1));
    let me = std::process::id();
    for (label, source) in [
        ("poll 2 Hz", Box::new(Poller::new(Duration::from_millis(500)).unwrap()) as Box<dyn EventSource>),
        ("proc-connector", Box::new(ProcConnector::open().unwrap()) as Box<dyn EventSource>),
    ] {
        let running = Running::start(source, policy(Mode::Monitor));
        let (before, started) = (cpu_ns(me), Instant::now());
        std::thread::sleep(Duration::from_secs(seconds));
        let cpu = (cpu_ns(me) - before) as f64 / started.elapsed().as_nanos() as f64 * 100.0;
        drop(running);
        println!(
            "idle    {label:<16} with {} extra processes ({total} in all): CPU {cpu:.2} % of one core over {seconds} s",
            sleepers.len()
        );
    }
    reap(&mut sleepers);
}
