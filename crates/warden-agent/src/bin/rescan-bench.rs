//! Rescan-after-a-gap benchmark (docs/benchmarks.md, "Rescan after a gap"): with N extra
//! processes running (`sleep`, default 2,000) and a few fake tools, how long the agent takes
//! from a gap to having decided every running process. The agent is `agent-run` (a sibling
//! binary), a process of its own, so the bench can stop it for real.
//!
//! Scenarios, in one run:
//! 1. *start*: the agent starts with every process already running (the start sweep; the
//!    peer: what a restart costs);
//! 2. *pause*: SIGSTOP for 1.5 s, fake tools started meanwhile, SIGCONT (the ticker's gap);
//! 3. *pause + overflow*: as 2, but the notice queue is flooded until the kernel drops
//!    notices before the tools start, so only the rescan can find them (ENOBUFS).
//!
//! For each: the rescan's own duration (first to last decision, measured in the agent), and
//! from SIGCONT to the rescan's notice on the agent's stdout and to the last fake tool's death
//! (both include detecting the gap).
//!
//! The peer, in the same run and with the same processes running: `ps -e -o pid,user,args`
//! (procps reading `/proc/PID/stat`, `status` and `cmdline` of every process, timed from spawn
//! to exit), the cheapest common way to look at every running process once.
//!
//! `rescan-bench [--processes N] [--tools K] [--rounds R]`. Every process it starts (the
//! sleepers, the fake tools, the agent) is killed by pid when it ends, also on a panic.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

const FAKE_TOOL_C: &str = include_str!("../../../../tests/data/monitor/fake_tool.c");
const EXEC_CHAIN_C: &str = include_str!("../../tests/data/exec_chain.c");

/// Rescan-after-a-gap benchmark (docs/benchmarks.md, "Rescan after a gap"); needs `agent-run`
/// built beside it.
#[derive(Debug, clap::Parser)]
#[command(name = "rescan-bench")]
struct Options {
    /// Extra `sleep` processes running during every scenario.
    #[arg(long, default_value_t = 2000)]
    processes: usize,
    /// Fake tools started per gap.
    #[arg(long, default_value_t = 5)]
    tools: usize,
    /// Rounds per scenario.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

fn options() -> Options {
    <Options as clap::Parser>::parse()
}

/// A scratch folder under the system's temporary folder, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("rescan-bench-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn compile(dir: &Path, name: &str, source: &str, target: &Path) {
    let file = dir.join(format!("{name}.c"));
    std::fs::write(&file, source).unwrap();
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    let built = Command::new("cc").arg("-O2").arg("-o").arg(target).arg(&file).status().unwrap();
    assert!(built.success(), "cc {name}");
}

struct Agent {
    child: Child,
    lines: Receiver<Value>,
}

impl Agent {
    fn start(state: &Path, sweep: bool) -> Agent {
        let program = std::env::current_exe().unwrap().with_file_name("agent-run");
        let mut command = Command::new(&program);
        command.arg("--state-dir").arg(state).args(["--source", "proc-connector"]);
        if !sweep {
            command.arg("--no-sweep");
        }
        let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).spawn().unwrap_or_else(|e| {
            panic!("{}: {e} (build it: cargo build --release -p warden-agent --bins)", program.display())
        });
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = sender.send(serde_json::from_str(&line).unwrap_or(Value::Null));
            }
        });
        Agent { child, lines }
    }

    fn expect(&mut self, wanted: impl Fn(&Value) -> bool) -> (Value, Instant) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if wanted(&line) => return (line, Instant::now()),
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        // Where each of its threads waits, to tell a slow agent from a stuck one.
        let threads: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", self.child.id()))
            .map(|dir| {
                dir.filter_map(|task| {
                    let task = task.ok()?.path();
                    let read = |name: &str| std::fs::read_to_string(task.join(name)).unwrap_or_default();
                    let state = read("status").lines().find(|l| l.starts_with("State:")).unwrap_or("").to_owned();
                    Some(format!("{} {state} wchan={} {}", read("comm").trim(), read("wchan"), read("stack")))
                })
                .collect()
            })
            .unwrap_or_default();
        // A closed stdout means the agent is ending: how it ended.
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut exited = self.child.try_wait();
        while matches!(exited, Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            exited = self.child.try_wait();
        }
        panic!("the agent did not report in time (exit: {exited:?}); it said: {seen:#?}\nits threads: {threads:#?}");
    }

    fn signal(&self, name: &str) {
        assert!(
            Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status().unwrap().success()
        );
    }

    fn dropped_notices(&self) -> u64 {
        warden_monitor::source::dropped_notices(self.child.id()).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-CONT").arg(self.child.id().to_string()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Processes this bench started, killed by pid (and reaped) on drop, also on a panic.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start_tools(tool: &Path, count: usize) -> Children {
    Children(
        (0..count)
            .map(|_| {
                Command::new(tool)
                    .env("FAKE_SLEEP", "60")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect(),
    )
}

/// Waits for every tool to end; returns when the last one did.
fn all_dead(tools: &mut Children) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if tools.0.iter_mut().all(|t| t.try_wait().unwrap().is_some()) {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "a fake tool survived");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The peer: one `ps -e -o pid,user,args` over every running process, spawn to exit; and
/// how many processes it listed.
fn peer_ps() -> (Duration, usize) {
    let started = Instant::now();
    let output = Command::new("ps").args(["-e", "-o", "pid,user,args"]).stdin(Stdio::null()).output().unwrap();
    let took = started.elapsed();
    assert!(output.status.success(), "ps -e");
    (took, output.stdout.iter().filter(|b| **b == b'\n').count().saturating_sub(1))
}

struct Figures {
    rescan_ms: Vec<f64>,
    to_notice_ms: Vec<f64>,
    to_killed_ms: Vec<f64>,
    processes: Vec<u64>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

fn report(name: &str, figures: &Figures) {
    let max = |v: &[f64]| v.iter().copied().fold(f64::NAN, f64::max);
    println!(
        "{name:<18} processes {:>5}  rescan median {:7.1} ms (max {:7.1})  gap end->rescan notice median {:7.1} ms (max {:7.1})  gap end->tools dead median {:7.1} ms (max {:7.1})  n={}",
        figures.processes.iter().max().copied().unwrap_or(0),
        median(&figures.rescan_ms),
        max(&figures.rescan_ms),
        median(&figures.to_notice_ms),
        max(&figures.to_notice_ms),
        median(&figures.to_killed_ms),
        max(&figures.to_killed_ms),
        figures.rescan_ms.len(),
    );
}

fn main() {
    let options = options();
    let scratch = Scratch::new();
    let tool = scratch.path().join(".local/share/claude/versions/2.1.37");
    compile(scratch.path(), "fake_tool", FAKE_TOOL_C, &tool);
    let flood = scratch.path().join("exec_chain");
    compile(scratch.path(), "exec_chain", EXEC_CHAIN_C, &flood);

    println!("starting {} sleep processes and {} fake tools per gap", options.processes, options.tools);
    let sleepers = Children(
        (0..options.processes)
            .map(|_| Command::new("sleep").arg("3600").stdin(Stdio::null()).spawn().unwrap())
            .collect(),
    );
    let mut peer = Figures { rescan_ms: vec![], to_notice_ms: vec![], to_killed_ms: vec![], processes: vec![] };
    let mut measure_peer = || {
        let (took, listed) = peer_ps();
        peer.rescan_ms.push(ms(took));
        peer.processes.push(listed as u64);
    };

    // 1. The start sweep.
    let mut start = Figures { rescan_ms: vec![], to_notice_ms: vec![], to_killed_ms: vec![], processes: vec![] };
    for _ in 0..options.rounds {
        measure_peer();
        let state = Scratch::new();
        let mut tools = start_tools(&tool, options.tools);
        let started = Instant::now();
        let mut agent = Agent::start(state.path(), true);
        let (rescan, noticed) = agent.expect(|l| l["kind"] == "rescan");
        let killed = all_dead(&mut tools);
        start.rescan_ms.push(rescan["duration_us"].as_f64().unwrap() / 1e3);
        start.to_notice_ms.push(ms(noticed - started));
        start.to_killed_ms.push(ms(killed - started));
        start.processes.push(rescan["processes"].as_u64().unwrap());
    }

    // 2 and 3. Gaps in a running agent.
    let mut gaps = Vec::new();
    for overflow in [false, true] {
        let mut figures = Figures { rescan_ms: vec![], to_notice_ms: vec![], to_killed_ms: vec![], processes: vec![] };
        for _ in 0..options.rounds {
            measure_peer();
            let state = Scratch::new();
            let mut agent = Agent::start(state.path(), false);
            agent.expect(|l| l["kind"] == "ready");
            agent.signal("STOP");
            let stopped = Instant::now();
            if overflow {
                let before = agent.dropped_notices();
                while agent.dropped_notices() == before {
                    assert!(Command::new(&flood).arg("2000").status().unwrap().success());
                }
            }
            let mut tools = start_tools(&tool, options.tools);
            std::thread::sleep(Duration::from_millis(1500).saturating_sub(stopped.elapsed()));
            let resumed = Instant::now();
            agent.signal("CONT");
            let (rescan, noticed) = agent.expect(|l| l["kind"] == "rescan");
            let killed = all_dead(&mut tools);
            figures.rescan_ms.push(rescan["duration_us"].as_f64().unwrap() / 1e3);
            figures.to_notice_ms.push(ms(noticed - resumed));
            figures.to_killed_ms.push(ms(killed - resumed));
            figures.processes.push(rescan["processes"].as_u64().unwrap());
        }
        gaps.push((if overflow { "pause + overflow" } else { "pause" }, figures));
    }
    drop(sleepers);

    println!();
    report("start sweep", &start);
    for (name, figures) in &gaps {
        report(name, figures);
    }
    let max = |v: &[f64]| v.iter().copied().fold(f64::NAN, f64::max);
    println!(
        "{:<18} processes {:>5}  ps -e -o pid,user,args median {:7.1} ms (max {:7.1})  n={}",
        "peer (ps)",
        peer.processes.iter().max().copied().unwrap_or(0),
        median(&peer.rescan_ms),
        max(&peer.rescan_ms),
        peer.rescan_ms.len(),
    );
    let peer_median = median(&peer.rescan_ms);
    println!();
    println!("{:<18} rescan / ps = {:.2}", "start sweep", median(&start.rescan_ms) / peer_median);
    for (name, figures) in &gaps {
        println!("{name:<18} rescan / ps = {:.2}", median(&figures.rescan_ms) / peer_median);
    }
    let worst = gaps.iter().map(|(_, f)| max(&f.rescan_ms)).fold(max(&start.rescan_ms), f64::max);
    println!("goal: a rescan decides every running process in <= 1000 ms: slowest {worst:.1} ms");
}
