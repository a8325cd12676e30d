//! `open-bench`: the device's half of "approval → destination open" (issue 11): a tool launched
//! under an approved exception → its first successful `connect()` to the tool's governed
//! destination, through the whole runtime (connector → verdict → recorder → network task → the
//! kernel's open map, or the fork hook). The peer, in the same run and interleaved: the same
//! launch reaching an ungoverned address, which nothing has to open (the floor: shell, two execs,
//! a fork, one connect), each kind first in half of the pairs. The other half of the measure,
//! approval → exception in enforcement, is `sync-bench`'s.
//!
//! Root only (eBPF hooks on a cgroup the bench creates; only its own processes are moved in).
//! Usage (release build, see docs/benchmarks.md): `open-bench [--launches 60]`.

use anyhow::{Context, Result, ensure};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use warden_policy::{Exception, Policy};
use warden_service::network::{NetworkConfig, cgroup2_root};
use warden_service::{Runtime, RuntimeConfig, RuntimeMode};

#[derive(Debug, clap::Parser)]
#[command(name = "open-bench")]
struct Options {
    /// Launches timed of each kind.
    #[arg(long, default_value_t = 60)]
    launches: usize,
}

/// The tool's helper: connects to 127.0.0.1-style `ADDRESS PORT` (argv 3 and 4 after the fake
/// tool's "exec child") until it succeeds, at most 5 s, retrying every 100 µs; prints the refusals
/// it met (EPERM: not open yet) and exits.
const PROBER: &str = r#"
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
int main(void) {
    const char *address = getenv("PROBE_ADDRESS"), *port = getenv("PROBE_PORT");
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(port)) };
    inet_pton(AF_INET, address, &to.sin_addr);
    struct timespec pause = { 0, 100000 };
    for (int refused = 0; refused < 50000; refused++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        int r = connect(s, (struct sockaddr *)&to, sizeof to);
        int e = errno;
        close(s);
        if (r == 0) { printf("ok %d\n", refused); fflush(stdout); return 0; }
        if (e != EPERM) { printf("error %d\n", e); fflush(stdout); return 1; }
        nanosleep(&pause, 0);
    }
    printf("timeout\n");
    return 1;
}
"#;

/// The bench's cgroup and scratch folder, removed on drop (its processes killed first).
struct Cell {
    cgroup: PathBuf,
    scratch: PathBuf,
    children: Vec<Child>,
}

impl Drop for Cell {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for _ in 0..100 {
            if std::fs::remove_dir(&self.cgroup).is_ok() || !self.cgroup.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

fn compile(source: &str, out: &Path, scratch: &Path) -> Result<()> {
    let file = scratch.join("source.c");
    std::fs::write(&file, source)?;
    let status = Command::new("cc").arg("-O2").arg("-o").arg(out).arg(&file).status().context("running cc")?;
    ensure!(status.success(), "compiling {}", out.display());
    Ok(())
}

fn listen(address: &str) -> Result<u16> {
    let listener = TcpListener::bind((address, 0))?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || for _ in listener.incoming() {});
    Ok(port)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() -> Result<()> {
    let options = <Options as clap::Parser>::parse();
    ensure!(warden_monitor::running_as_root(), "open-bench attaches eBPF hooks and runs as root only");
    let root = cgroup2_root().context("no cgroup v2 hierarchy is mounted")?;
    let mut cell = Cell {
        cgroup: root.join(format!("warden-open-bench-{}", std::process::id())),
        scratch: PathBuf::from(format!("/tmp/warden-open-bench-{}", std::process::id())),
        children: Vec::new(),
    };
    std::fs::create_dir_all(&cell.cgroup)?;
    std::fs::create_dir_all(&cell.scratch)?;

    // Claude Code (a stand-in at its native installer's path) is blocked, and so is its
    // destination; an exception for root covers it.
    let governed_port = listen("127.0.0.61")?;
    let free_port = listen("127.0.0.62")?;
    let versions = cell.scratch.join("home/.local/share/claude/versions");
    std::fs::create_dir_all(&versions)?;
    let tool = versions.join("2.1.37");
    let fake_tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/monitor/fake_tool.c");
    compile(&std::fs::read_to_string(&fake_tool)?, &tool, &cell.scratch)?;
    let prober = cell.scratch.join("prober");
    compile(PROBER, &prober, &cell.scratch)?;
    let policy = Policy::parse(
        "open-bench.toml",
        "name = \"open-bench\"\ndefault_action = \"warn\"\n[tools.claude-code]\naction = \"block\"\n\
         [[network.destinations]]\ncidrs = [\"127.0.0.61/32\"]\naction = \"block\"\ntool = \"claude-code\"\n",
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut agent = warden_agent::AgentConfig::new(cell.scratch.join("state"), policy);
    agent.gate = None;
    let config = RuntimeConfig {
        mode: RuntimeMode::Service,
        agent,
        token_storage: warden_client::TokenStorage::File(cell.scratch.join("state/device-token")),
        sync: warden_client::SyncOptions::default(),
        policy_overridden: true,
        monitor_forced: false,
        controls: None,
        gateway: None,
    };
    let async_runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let runtime = async_runtime.block_on(Runtime::start(config)).context("starting the runtime")?;
    let network = async_runtime.block_on(async {
        runtime.start_network(&NetworkConfig { cgroup: Some(cell.cgroup.clone()), ..NetworkConfig::default() })
    });
    ensure!(network.layer == warden_api::local::NetworkLayer::Ebpf, "the eBPF layer did not load: {}", network.detail);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    runtime.agent().set_exceptions(vec![Exception {
        id: "open-bench".into(),
        user: "root".into(),
        tool: "claude-code".into(),
        scope: None,
        starts_at: now - 60,
        expires_at: now + 3600,
        guardrails: Default::default(),
    }]);
    let started = Instant::now();
    let root_caller = runtime.caller(0);
    while runtime.status(&root_caller).network.map_or(0, |n| n.ranges) == 0 {
        ensure!(started.elapsed() < Duration::from_secs(10), "the governed range never reached the kernel");
        std::thread::sleep(Duration::from_millis(50));
    }

    // One launch: a shell joins the cell's cgroup and execs the tool, which forks the prober.
    let launch = |cell: &mut Cell, port: u16, address: &str| -> Result<(f64, u32)> {
        let script = format!("echo $$ > {} && exec {} 30", cell.cgroup.join("cgroup.procs").display(), tool.display());
        let spawned = Instant::now();
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .env("HOME", cell.scratch.join("home"))
            .env("FAKE_CHILD", &prober)
            .env("PROBE_ADDRESS", address)
            .env("PROBE_PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let elapsed = spawned.elapsed().as_secs_f64() * 1e3;
        cell.children.push(child);
        let refused = line.strip_prefix("ok ").with_context(|| format!("the prober said {line:?}"))?;
        Ok((elapsed, refused.trim().parse()?))
    };
    let (mut opened, mut floor, mut refusals, mut refused_launches) = (Vec::new(), Vec::new(), 0u64, 0usize);
    // ABBA: the first launch after a pause pays for waking the machine's idle paths (about 10 ms
    // here, governed or not), so each kind goes first in half of the pairs.
    for round in 0..options.launches {
        for governed in if round % 2 == 0 { [true, false] } else { [false, true] } {
            if governed {
                let (ms, refused) = launch(&mut cell, governed_port, "127.0.0.61")?;
                opened.push(ms);
                refusals += u64::from(refused);
                refused_launches += usize::from(refused > 0);
            } else {
                floor.push(launch(&mut cell, free_port, "127.0.0.62")?.0);
            }
        }
        for mut child in cell.children.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    opened.sort_by(f64::total_cmp);
    floor.sort_by(f64::total_cmp);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at the end: {}", load.split(' ').take(3).collect::<Vec<_>>().join(" "));
    println!("| launch → first successful connect (n={} each) | p50 | p99 | max |", opened.len());
    println!("| --- | --- | --- | --- |");
    for (name, list) in
        [("under an exception, governed destination (opened)", &opened), ("ungoverned destination (floor)", &floor)]
    {
        println!(
            "| {name} | {:.1} ms | {:.1} ms | {:.1} ms |",
            percentile(list, 0.5),
            percentile(list, 0.99),
            list[list.len() - 1]
        );
    }
    println!(
        "| added by opening, p50 / p99 | {:.1} ms / {:.1} ms | launches refused before being opened: {refused_launches} of {} ({refusals} refusals) | |",
        percentile(&opened, 0.5) - percentile(&floor, 0.5),
        percentile(&opened, 0.99) - percentile(&floor, 0.99),
        opened.len()
    );
    drop(runtime);
    drop(async_runtime);
    Ok(())
}
