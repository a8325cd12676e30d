//! `sync-bench`: device-sync figures against a real `warden-server` on loopback.
//!
//! 1. Approval → unblocked: a device runs the real sync loop (long-poll + sync) feeding a
//!    recording enforcement side; an admin approves a request; the time until the new exception
//!    reaches enforcement is measured, `--approvals` times.
//! 2. Outbox throughput: `--outbox-events` events appended to a real store, uploaded in batches.
//! 3. 1,000 simulated devices (`--devices`): each enrolls, then runs `--rounds` sync cycles
//!    (policy fetch answered 304, a 50-event batch, its exception list); request rate, latency and
//!    the server process's CPU and RSS.
//!
//! Usage: `cargo run --release -p warden-client --bin sync-bench [-- --devices 1000 --rounds 3]`
//! (needs `warden-server` built in the same profile: `cargo build --release -p warden-server`).

use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc};
use warden_api::{EnrollRequest, EventBatch, ExceptionRequestCreate, LaunchEvent, Outcome};
use warden_client::{Device, Enforcement, Enrollment, ServerApi, StateDir, SyncOptions};
use warden_policy::{Action, Exception, Policy};
use warden_store::Store;

const ADMIN: &str = "bench-admin-token-0123456789abcdef";
const SECRET: &str = "bench-enroll-secret-0123456789abcdef";

/// Device-sync figures against a real `warden-server` on loopback (built beside this binary).
#[derive(Debug, clap::Parser)]
#[command(name = "sync-bench")]
struct Args {
    /// Approvals timed from the approve call to enforcement.
    #[arg(long, default_value_t = 50)]
    approvals: usize,
    /// Simulated devices.
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// Sync cycles per simulated device.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Events appended to the outbox and uploaded.
    #[arg(long, default_value_t = 20_000)]
    outbox_events: usize,
}

fn args() -> Args {
    <Args as clap::Parser>::parse()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// CPU seconds (user + system) and RSS (KiB) of a process.
fn cpu_and_rss(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    (ticks / 100.0, rss)
}

fn event(device: usize, i: usize) -> LaunchEvent {
    LaunchEvent {
        id: format!("{device:08}-{i:012}-{}", std::process::id()),
        at_ms: 1_700_000_000_000 + i as i64,
        pid: 4000 + i as u32,
        user: Some(format!("dev{device}")),
        exe: "/home/dev/.local/share/claude/versions/2.1.37".into(),
        argv: vec!["claude".into(), "-p".into(), "hello".into()],
        cwd: Some("/home/dev/src/app".into()),
        tool: Some("claude-code".into()),
        action: Action::Block,
        outcome: Outcome::Killed,
        rule: "tool:claude-code".into(),
        reason: "Claude Code is not allowed".into(),
        exception: None,
        policy_version: Some("1".into()),
        source: "proc-connector".into(),
    }
}

/// Records each exception list handed to enforcement, with when it arrived.
struct Recorder(mpsc::UnboundedSender<(Instant, Vec<Exception>)>);

impl Enforcement for Recorder {
    fn set_policy(&self, _policy: Policy, _version: Option<String>) {}
    fn set_exceptions(&self, exceptions: Vec<Exception>) {
        let _ = self.0.send((Instant::now(), exceptions));
    }
}

async fn enroll(api: &ServerApi, user: &str) -> (String, String, String) {
    let answer = api
        .enroll(&EnrollRequest {
            secret: SECRET.into(),
            code: None,
            hostname: format!("{user}-host"),
            user: user.into(),
            platform: "linux".into(),
            agent_version: "bench".into(),
        })
        .await
        .expect("enroll");
    (answer.device_id, answer.device_token, answer.policy_public_key)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    let scratch = std::env::temp_dir().join(format!("warden-sync-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let server_bin = std::env::current_exe().unwrap().with_file_name("warden-server");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = std::process::Command::new(&server_bin)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(scratch.join("server"))
        .args(["--admin-token", ADMIN, "--enroll-secret", SECRET])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", server_bin.display()));
    let mut lines = std::io::BufReader::new(server.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().starts_with("Listening on") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let base = format!("http://127.0.0.1:{port}");
    let server_pid = server.id();
    println!(
        "machine: {} cores; server: {} (SQLite, loopback)",
        std::thread::available_parallelism().unwrap(),
        server_bin.display()
    );

    // 1. Approval → unblocked.
    let anonymous = ServerApi::new(&base, None, None).unwrap();
    let (device_id, token, key) = enroll(&anonymous, "bench-dev").await;
    let state = StateDir::new(scratch.join("device"));
    let enrollment = Enrollment {
        server: base.clone(),
        device_id,
        user: "bench-dev".into(),
        local_users: Vec::new(),
        hostname: "bench".into(),
        policy_public_key: key,
        enrolled_at: 0,
        server_ca: None,
        token_rotated_at: None,
    };
    state.save_enrollment(&enrollment).unwrap();
    // The bench runs without a desktop keyring: the documented environment fallback.
    let store = Arc::new(Store::open(state.events_db()).unwrap());
    let device =
        Arc::new(Device::open_with_token(state.clone(), store, warden_client::DeviceToken::new(token)).unwrap());
    let (sender, mut applied) = mpsc::unbounded_channel();
    let sync = warden_client::sync::spawn(device.clone(), Arc::new(Recorder(sender)), SyncOptions::default());
    let http = reqwest::Client::new();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut latencies = Vec::new();
    for i in 0..args.approvals {
        let record = device
            .api()
            .file_exception(&ExceptionRequestCreate {
                tool: "claude-code".into(),
                justification: format!("Benchmark approval number {i} for the SDK migration"),
                scope: None,
                duration_seconds: 3600,
                client_id: None,
            })
            .await
            .unwrap();
        // Let the filing's own change notification settle so it does not pre-trigger the sync.
        tokio::time::sleep(Duration::from_millis(300)).await;
        while applied.try_recv().is_ok() {}
        let started = Instant::now();
        let answer = http
            .post(format!("{base}/api/v1/admin/exceptions/{}/approve", record.id))
            .bearer_auth(ADMIN)
            .json(&serde_json::json!({"approver": "bench-lead", "comment": "ok"}))
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "approve: {}", answer.text().await.unwrap_or_default());
        loop {
            let (at, list) = tokio::time::timeout(Duration::from_secs(90), applied.recv()).await.unwrap().unwrap();
            if list.iter().any(|e| e.id == record.id) {
                latencies.push(at - started);
                break;
            }
        }
    }
    sync.stop();
    latencies.sort();
    println!(
        "approval → exception in enforcement ({} approvals): median {}, p99 {}, max {}",
        latencies.len(),
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap())
    );
    let p99 = percentile(&latencies, 0.99).as_secs_f64();
    println!(
        "  periodic full sync every 600 s (Santa's default) waits 300 s on average, ~594 s at p99: {:.0}× our p99",
        594.0 / p99
    );

    // 2. Outbox throughput.
    for i in 0..args.outbox_events {
        device.store().append_launch(&event(0, i)).unwrap();
    }
    let started = Instant::now();
    let (stored, _) = device.upload_events().await.unwrap();
    let took = started.elapsed();
    println!(
        "outbox: {stored} events uploaded in {:.2} s = {:.0} events/s (batches of {})",
        took.as_secs_f64(),
        stored as f64 / took.as_secs_f64(),
        warden_client::device::UPLOAD_BATCH
    );

    // 3. Simulated devices.
    let gate = Arc::new(Semaphore::new(64));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for d in 0..args.devices {
        let base = base.clone();
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            let anonymous = ServerApi::new(&base, None, None).unwrap();
            let (_, token, _) = enroll(&anonymous, &format!("dev{d}")).await;
            token
        }));
    }
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.push(task.await.unwrap());
    }
    println!("{} devices enrolled in {:.2} s", tokens.len(), started.elapsed().as_secs_f64());
    let (cpu_before, _) = cpu_and_rss(server_pid);
    let requests = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (d, token) in tokens.into_iter().enumerate() {
        let base = base.clone();
        let gate = gate.clone();
        let requests = requests.clone();
        let latencies = latencies.clone();
        let rounds = args.rounds;
        tasks.push(tokio::spawn(async move {
            let api = ServerApi::new(&base, Some(warden_client::DeviceToken::new(token)), None).unwrap();
            let mut etag = None;
            for round in 0..rounds {
                let _permit = gate.acquire().await.unwrap();
                let mut timed = Vec::new();
                let t = Instant::now();
                match api.fetch_policy(etag.as_deref()).await.unwrap() {
                    warden_client::PolicyFetch::Changed(envelope) => etag = Some(envelope.etag),
                    warden_client::PolicyFetch::NotModified => {}
                }
                timed.push(t.elapsed());
                let t = Instant::now();
                let events = (0..50).map(|i| event(d, round * 50 + i).into()).collect();
                api.upload_events(&EventBatch { events, heartbeat: None }).await.unwrap();
                timed.push(t.elapsed());
                let t = Instant::now();
                api.exceptions().await.unwrap();
                timed.push(t.elapsed());
                requests.fetch_add(3, Ordering::Relaxed);
                latencies.lock().unwrap().extend(timed);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let took = started.elapsed();
    let (cpu_after, rss) = cpu_and_rss(server_pid);
    let total = requests.load(Ordering::Relaxed);
    let mut all = latencies.lock().unwrap().clone();
    all.sort();
    println!(
        "{} devices × {} sync cycles (policy 304 + 50-event batch + exception list): {total} requests in {:.2} s = {:.0} req/s, {:.0} events/s; latency median {}, p99 {}",
        args.devices,
        args.rounds,
        took.as_secs_f64(),
        total as f64 / took.as_secs_f64(),
        (args.devices * args.rounds * 50) as f64 / took.as_secs_f64(),
        ms(percentile(&all, 0.5)),
        ms(percentile(&all, 0.99)),
    );
    let cpu = cpu_after - cpu_before;
    println!(
        "server: {:.2} CPU-seconds for those cycles ({:.1} ms CPU per device sync cycle), RSS {} MiB; \
         at one cycle per device per 60 s, 1,000 devices cost {:.1} % of one core",
        cpu,
        cpu * 1000.0 / (args.devices * args.rounds) as f64,
        rss / 1024,
        cpu / (args.devices * args.rounds) as f64 * 1000.0 / 60.0 * 100.0
    );
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&scratch);
}
