//! `service-bench`: the system service's figures for issue 9, each beside a peer measured in the
//! same run — `wardend` idle (RSS, CPU), its CPU per exec on the machine against a bare
//! process-connector reader (the floor: receiving the kernel's notice and nothing else), and a
//! blocked launch → its live event at a client of the local socket against that reader's
//! notice of the same exec.
//!
//! Root only (the service refuses anything else). Usage (release build, see docs/benchmarks.md):
//! `service-bench [--idle-seconds 60] [--execs 2000] [--launches 40]`.

use anyhow::{Context, Result, ensure};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use warden_api::local::LiveEvent;
use warden_monitor::source::EventSource;

/// The system service's figures for issue 9 (docs/benchmarks.md); root only, starts the `wardend`
/// built beside it.
#[derive(Debug, clap::Parser)]
#[command(name = "service-bench")]
struct Options {
    /// Seconds `wardend` is left idle for its RSS and CPU.
    #[arg(long, default_value_t = 60)]
    idle_seconds: u64,
    /// Execs timed for the CPU per exec.
    #[arg(long, default_value_t = 2000)]
    execs: u32,
    /// Blocked launches timed to their live event.
    #[arg(long, default_value_t = 40)]
    launches: u32,
}

fn options() -> Result<Options> {
    Ok(<Options as clap::Parser>::parse())
}

/// CPU time of a process (every thread: `/proc/PID/task/*/schedstat`) or of one thread
/// (`/proc/PID/task/TID/schedstat`), in seconds: the first field is the time on a CPU in
/// nanoseconds (see the kernel's Documentation/scheduler/sched-stats.rst), finer than the
/// 10 ms ticks of `/proc/PID/stat`.
fn cpu_seconds(task_or_tasks: &Path) -> Result<f64> {
    let read = |schedstat: PathBuf| -> Result<f64> {
        let text = std::fs::read_to_string(&schedstat).with_context(|| format!("reading {}", schedstat.display()))?;
        let ns: f64 = text.split_whitespace().next().context("empty schedstat")?.parse()?;
        Ok(ns / 1e9)
    };
    if task_or_tasks.file_name().is_some_and(|n| n == "task") {
        let mut total = 0.0;
        for entry in std::fs::read_dir(task_or_tasks)? {
            // A thread that ended meanwhile has nothing to add.
            total += read(entry?.path().join("schedstat")).unwrap_or(0.0);
        }
        Ok(total)
    } else {
        read(task_or_tasks.join("schedstat"))
    }
}

fn rss_mb(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .context("no VmRSS")?
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()?;
    Ok(kb / 1000.0)
}

/// A bare connector reader on its own thread: counts every exec notice and remembers when each
/// pid's notice arrived. Its thread's CPU time is the peer's cost.
struct BareReader {
    execs: Arc<AtomicU64>,
    seen: Arc<Mutex<std::collections::HashMap<u32, Instant>>>,
    stop: Arc<AtomicBool>,
    tid: u32,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BareReader {
    fn start() -> Result<BareReader> {
        let mut connector = warden_monitor::source::open_connector().context("opening the process connector")?;
        let execs = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(Mutex::new(std::collections::HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (e, s, halt) = (execs.clone(), seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let _ = tid_tx.send(
                std::fs::read_link("/proc/thread-self")
                    .ok()
                    .and_then(|p| p.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<u32>().ok())),
            );
            let mut batch = Vec::new();
            while !halt.load(Ordering::Relaxed) {
                batch.clear();
                if connector.wait(Duration::from_millis(100), &mut batch).is_err() {
                    continue;
                }
                let now = Instant::now();
                e.fetch_add(batch.len() as u64, Ordering::Relaxed);
                let mut seen = s.lock().unwrap_or_else(|p| p.into_inner());
                for notice in &batch {
                    seen.entry(notice.pid).or_insert(now);
                }
            }
        });
        let tid = tid_rx.recv()?.context("reading the reader's thread id")?;
        Ok(BareReader { execs, seen, stop, tid, thread: Some(thread) })
    }

    fn cpu_seconds(&self) -> Result<f64> {
        cpu_seconds(&PathBuf::from(format!("/proc/self/task/{}", self.tid)))
    }
}

impl Drop for BareReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The bench's folder under /tmp, removed at the end (also on an error).
struct Scratch(PathBuf);

impl Scratch {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Service {
    child: Child,
    socket: PathBuf,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() -> Result<()> {
    let options = options()?;
    ensure!(is_root(), "service-bench starts wardend, which runs as root only");
    let scratch = Scratch(PathBuf::from(format!("/tmp/warden-service-bench-{}", std::process::id())));
    std::fs::create_dir_all(scratch.path())?;
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755))?;
    let wardend = std::env::current_exe()?.with_file_name("wardend");
    ensure!(wardend.exists(), "{} is missing: cargo build --release -p warden-service", wardend.display());

    // The fake Claude Code at its native installer's path (the embedded policy blocks it).
    let versions = scratch.path().join("home/.local/share/claude/versions");
    std::fs::create_dir_all(&versions)?;
    let tool = versions.join("2.1.37");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/monitor/fake_tool.c");
    let built = Command::new("cc").arg("-O2").arg("-o").arg(&tool).arg(&source).status()?;
    ensure!(built.success(), "compiling {}", source.display());

    let config = scratch.path().join("warden.toml");
    std::fs::write(&config, "gate = []\n")?;
    let socket = scratch.path().join("warden.sock");
    let child = Command::new(&wardend)
        .arg("--config")
        .arg(&config)
        .arg("--state-dir")
        .arg(scratch.path().join("state"))
        .arg("--socket")
        .arg(&socket)
        .arg("--no-gate")
        .arg("--no-network")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting wardend")?;
    let service = Service { child, socket };
    let pid = service.child.id();
    let tasks = PathBuf::from(format!("/proc/{pid}/task"));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let client = warden_client::LocalClient::new(&service.socket)?;
    let started = Instant::now();
    while runtime.block_on(client.hello()).is_err() {
        ensure!(started.elapsed() < Duration::from_secs(20), "wardend did not answer within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let reader = BareReader::start()?;
    std::thread::sleep(Duration::from_secs(2));

    // Idle: whatever the machine does, for the whole window.
    println!("idle: {} s …", options.idle_seconds);
    let (cpu0, execs0, wall0) = (cpu_seconds(&tasks)?, reader.execs.load(Ordering::Relaxed), Instant::now());
    let mut peak_rss: f64 = 0.0;
    while wall0.elapsed() < Duration::from_secs(options.idle_seconds) {
        peak_rss = peak_rss.max(rss_mb(pid)?);
        std::thread::sleep(Duration::from_secs(1));
    }
    let idle_cpu = cpu_seconds(&tasks)? - cpu0;
    let idle_execs = reader.execs.load(Ordering::Relaxed) - execs0;
    let idle_wall = wall0.elapsed().as_secs_f64();
    let idle_rss = rss_mb(pid)?;
    peak_rss = peak_rss.max(idle_rss);

    // Exec load: N fork+exec+wait of /bin/true; both sides see every exec of the machine.
    println!("exec load: {} × /bin/true …", options.execs);
    let (cpu0, peer0, execs0) = (cpu_seconds(&tasks)?, reader.cpu_seconds()?, reader.execs.load(Ordering::Relaxed));
    let wall = Instant::now();
    for _ in 0..options.execs {
        Command::new("/bin/true").status()?;
    }
    std::thread::sleep(Duration::from_millis(500));
    let load_wall = wall.elapsed().as_secs_f64();
    let load_execs = (reader.execs.load(Ordering::Relaxed) - execs0).max(1) as f64;
    let service_per_exec = (cpu_seconds(&tasks)? - cpu0) / load_execs * 1e6;
    let peer_per_exec = (reader.cpu_seconds()? - peer0) / load_execs * 1e6;

    // Blocked launch → its live event at a socket client, against the bare reader's notice.
    println!("blocked launches: {} …", options.launches);
    let (mut to_service, mut to_reader) = (Vec::<f64>::new(), Vec::<f64>::new());
    runtime.block_on(async {
        let mut live = client.live().await?;
        for _ in 0..options.launches {
            let spawned = Instant::now();
            let mut launch = Command::new(&tool)
                .env("FAKE_SLEEP", "30")
                .env("HOME", scratch.path().join("home"))
                .stdin(Stdio::null())
                .spawn()?;
            let launch_pid = launch.id();
            let arrived = tokio::time::timeout(Duration::from_secs(10), async {
                while let Some(event) = live.recv().await {
                    if let LiveEvent::Launch { event } = event
                        && event.pid == launch_pid
                    {
                        return Some(Instant::now());
                    }
                }
                None
            })
            .await
            .ok()
            .flatten()
            .context("no live event for a blocked launch within 10 s")?;
            to_service.push((arrived - spawned).as_secs_f64() * 1e3);
            let noticed = reader.seen.lock().unwrap_or_else(|p| p.into_inner()).get(&launch_pid).copied();
            if let Some(noticed) = noticed {
                to_reader.push((noticed.max(spawned) - spawned).as_secs_f64() * 1e3);
            }
            let _ = launch.kill();
            let _ = launch.wait();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::Ok(())
    })?;
    to_service.sort_by(f64::total_cmp);
    to_reader.sort_by(f64::total_cmp);
    ensure!(!to_reader.is_empty(), "the bare reader saw none of the launches");

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!();
    println!("load average at the end: {}", load.split(' ').take(3).collect::<Vec<_>>().join(" "));
    println!("| measure | wardend | peer (bare connector reader, same run) | ratio |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| idle {idle_wall:.0} s: RSS end / peak | {idle_rss:.1} MB / {peak_rss:.1} MB | — | — |\n\
         | idle {idle_wall:.0} s: CPU (machine at {:.1} execs/s) | {:.3} % of one core | — | — |",
        idle_execs as f64 / idle_wall,
        idle_cpu / idle_wall * 100.0
    );
    println!(
        "| CPU per exec, {load_execs:.0} execs in {load_wall:.1} s | {service_per_exec:.1} µs | {peer_per_exec:.1} µs | {:.1}× |",
        service_per_exec / peer_per_exec.max(0.01)
    );
    println!(
        "| blocked launch → seen, p50 / p95 / max (n={}) | {:.1} / {:.1} / {:.1} ms (live event at a socket client) | {:.1} / {:.1} / {:.1} ms (netlink notice) | p95 {:.1}× |",
        to_service.len(),
        percentile(&to_service, 0.5),
        percentile(&to_service, 0.95),
        to_service[to_service.len() - 1],
        percentile(&to_reader, 0.5),
        percentile(&to_reader, 0.95),
        to_reader[to_reader.len() - 1],
        percentile(&to_service, 0.95) / percentile(&to_reader, 0.95).max(0.001)
    );
    Ok(())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Uid:")).map(|u| u.split_whitespace().next() == Some("0")))
        .unwrap_or(false)
}
