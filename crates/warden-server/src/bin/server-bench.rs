//! `server-bench`: load client for the governance server. Starts a real `warden-server` (the
//! release binary next to this one) on SQLite and, with `--postgres URL`, on PostgreSQL, and
//! measures on loopback:
//! - policy fetch answered 304, closed loop;
//! - event batch upload (50 events per batch), closed loop;
//! - exception create + approve, closed loop;
//! - the mixed sync traffic of many devices at a fixed rate (open loop, latency counted from the
//!   scheduled send time so a slow server cannot hide its queueing), while waiting devices
//!   measure approval → wake-up latency.
//!
//! With `--fleet`, instead: the console's fleet views over a database `warden-seed`'s generator
//! filled with `--fleet-events` events (default 1,000,000) from `--fleet-devices` devices, each
//! view's latency (p50/p95 of sequential requests), and the server's CPU per inventory upload from
//! that many enrolled devices (read from `/proc/<pid>/stat` of the server process).
//!
//! Figures go to stdout as a Markdown table for docs/benchmarks.md.

use anyhow::{Context, Result, bail};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use warden_server::client::JsonClient;

const ADMIN: &str = "wadm_bench-admin-token-0123456789abcdef";
const SECRET: &str = "bench-enroll-secret";

/// Load client for the governance server (docs/benchmarks.md, "Governance server"); starts the
/// `warden-server` built beside it.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "server-bench")]
struct Options {
    /// Also measure on PostgreSQL (a server URL; the bench creates and drops its own database).
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// Enrolled devices.
    #[arg(long, default_value_t = 500)]
    devices: usize,
    /// Seconds per closed-loop phase.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Requests per second of the open-loop mixed phase.
    #[arg(long, default_value_t = 850, value_name = "REQ_PER_S")]
    rate: u64,
    /// Connections of the closed-loop phases.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Measure the console's fleet views and inventory uploads instead.
    #[arg(long)]
    fleet: bool,
    /// Events the fleet database is seeded with.
    #[arg(long, default_value_t = 1_000_000)]
    fleet_events: usize,
    /// Devices the fleet database is seeded with, and that upload their inventories.
    #[arg(long, default_value_t = 5_000)]
    fleet_devices: usize,
}

fn options() -> Result<Options> {
    Ok(<Options as clap::Parser>::parse())
}

/// A `warden-server` child process, killed (by its PID) when dropped.
struct ServerProcess {
    child: Child,
    base: String,
    _data: Option<std::path::PathBuf>,
}

impl ServerProcess {
    fn start(database: Option<&str>) -> Result<ServerProcess> {
        let exe = std::env::current_exe()?.with_file_name("warden-server");
        let mut command = Command::new(&exe);
        command.args(["--listen", "127.0.0.1:0", "--sweep-seconds", "1"]);
        // The fleet's devices all come from this one address and each is driven far harder than a
        // real device syncs: the limits are raised, so they are checked (and cost) but never hit.
        command.args(["--enrollments-per-minute", "1000000", "--uploads-per-minute", "1000000"]);
        command.args(["--events-per-minute", "100000000", "--max-connections-per-client", "100000"]);
        command.env("WARDEN_ADMIN_TOKEN", ADMIN).env("WARDEN_ENROLL_SECRET", SECRET).env_remove("WARDEN_DATABASE_URL");
        let data = match database {
            Some(url) => {
                command.args(["--database", url]);
                None
            }
            None => {
                let dir = std::env::temp_dir().join(format!("warden-bench-{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&dir);
                command.arg("--data-dir").arg(&dir);
                Some(dir)
            }
        };
        let mut child =
            command.stdout(Stdio::piped()).spawn().with_context(|| format!("starting {}", exe.display()))?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = lines.next().context("warden-server exited before listening")??;
            if let Some(url) = line.strip_prefix("Listening on ") {
                break url.trim().to_owned();
            }
        };
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(ServerProcess { child, base, _data: data })
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self._data {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Latencies of one kind of request, in microseconds.
#[derive(Debug, Default)]
struct Samples {
    micros: Vec<u64>,
    errors: u64,
}

impl Samples {
    fn percentile(&mut self, p: f64) -> f64 {
        if self.micros.is_empty() {
            return f64::NAN;
        }
        self.micros.sort_unstable();
        let index = ((self.micros.len() as f64 - 1.0) * p).round() as usize;
        self.micros[index] as f64 / 1000.0
    }
}

struct Fleet {
    client: JsonClient,
    tokens: Vec<String>,
    etag: String,
    next_event: AtomicU64,
    run: String,
}

impl Fleet {
    fn batch(&self) -> Value {
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        let events: Vec<Value> = (0..50)
            .map(|i| {
                let n = self.next_event.fetch_add(1, Ordering::Relaxed);
                json!({"id": format!("{}-{n}", self.run), "at_ms": now_ms - i, "pid": 1000 + i, "user": "dev",
                       "exe": "/usr/bin/node", "argv": ["node", "cli.js"], "cwd": "/home/dev/src/app",
                       "tool": if i % 3 == 0 { "claude-code" } else { "qwen-code" },
                       "action": if i % 3 == 0 { "block" } else { "allow" },
                       "outcome": if i % 3 == 0 { "denied" } else { "allowed" },
                       "rule": "tool:claude-code", "reason": "bench", "source": "proc-connector"})
            })
            .collect();
        json!({"events": events})
    }

    async fn policy_304(&self, device: usize) -> Result<()> {
        let token = &self.tokens[device % self.tokens.len()];
        let reply = self
            .client
            .send(Method::GET, "/api/v1/device/policy", Some(token), None, &[("if-none-match", &self.etag)])
            .await
            .map_err(anyhow::Error::msg)?;
        if reply.status != StatusCode::NOT_MODIFIED {
            bail!("policy fetch answered {}", reply.status);
        }
        Ok(())
    }

    async fn events(&self, device: usize) -> Result<()> {
        let token = &self.tokens[device % self.tokens.len()];
        let reply = self
            .client
            .send(Method::POST, "/api/v1/device/events", Some(token), Some(&self.batch()), &[])
            .await
            .map_err(anyhow::Error::msg)?;
        if reply.status != StatusCode::OK || reply.body["stored"] != json!(50) {
            bail!("event upload answered {}: {}", reply.status, reply.text);
        }
        Ok(())
    }

    /// Files a request from `device` and approves it; returns (create, approve) latencies.
    async fn create_approve(&self, device: usize) -> Result<(Duration, Duration)> {
        let token = &self.tokens[device % self.tokens.len()];
        let started = Instant::now();
        let body = json!({"tool": "claude-code", "justification": "Benchmarking the approval path of the server",
                          "duration_seconds": 3600});
        let filed = self
            .client
            .send(Method::POST, "/api/v1/device/exceptions", Some(token), Some(&body), &[])
            .await
            .map_err(anyhow::Error::msg)?;
        if filed.status != StatusCode::CREATED {
            bail!("filing answered {}: {}", filed.status, filed.text);
        }
        let created = started.elapsed();
        let id = filed.body["id"].as_str().context("request id")?.to_owned();
        let started = Instant::now();
        let decided = self
            .client
            .send(
                Method::POST,
                &format!("/api/v1/admin/exceptions/{id}/approve"),
                Some(ADMIN),
                Some(&json!({"approver": "bench-approver", "duration_seconds": 600})),
                &[],
            )
            .await
            .map_err(anyhow::Error::msg)?;
        if decided.status != StatusCode::OK {
            bail!("approval answered {}: {}", decided.status, decided.text);
        }
        Ok((created, started.elapsed()))
    }
}

async fn setup(base: &str, devices: usize) -> Result<Arc<Fleet>> {
    let client = JsonClient::new(base);
    let mut tokens = Vec::with_capacity(devices);
    for i in 0..devices {
        let reply = client
            .send(
                Method::POST,
                "/api/v1/enroll",
                None,
                Some(&json!({"secret": SECRET, "hostname": format!("bench-{i}"), "user": format!("user{i}")})),
                &[],
            )
            .await
            .map_err(anyhow::Error::msg)?;
        tokens.push(reply.body["device_token"].as_str().context("enrolled")?.to_owned());
    }
    let policy = client
        .send(Method::GET, "/api/v1/device/policy", Some(&tokens[0]), None, &[])
        .await
        .map_err(anyhow::Error::msg)?;
    let etag = policy.headers.get("etag").context("ETag")?.to_str()?.to_owned();
    let run = format!("bench{}x{}", std::process::id(), Instant::now().elapsed().as_nanos());
    Ok(Arc::new(Fleet { client, tokens, etag, next_event: AtomicU64::new(0), run }))
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Policy,
    Events,
    CreateApprove,
}

/// Closed loop: `concurrency` workers issue requests back to back for `seconds`.
async fn closed_loop(fleet: &Arc<Fleet>, kind: Kind, concurrency: usize, seconds: u64) -> (f64, Samples, Samples) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let first = Arc::new(Mutex::new(Samples::default()));
    let second = Arc::new(Mutex::new(Samples::default()));
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..concurrency {
        let (fleet, first, second) = (fleet.clone(), first.clone(), second.clone());
        workers.push(tokio::spawn(async move {
            let mut device = worker * 7919;
            let (mut a, mut b, mut errors) = (Vec::new(), Vec::new(), 0);
            while Instant::now() < deadline {
                device += 1;
                let t = Instant::now();
                match kind {
                    Kind::Policy => match fleet.policy_304(device).await {
                        Ok(()) => a.push(t.elapsed().as_micros() as u64),
                        Err(_) => errors += 1,
                    },
                    Kind::Events => match fleet.events(device).await {
                        Ok(()) => a.push(t.elapsed().as_micros() as u64),
                        Err(_) => errors += 1,
                    },
                    Kind::CreateApprove => match fleet.create_approve(device).await {
                        Ok((c, d)) => {
                            a.push(c.as_micros() as u64);
                            b.push(d.as_micros() as u64);
                        }
                        Err(_) => errors += 1,
                    },
                }
            }
            first.lock().await.micros.extend(a);
            let mut first = first.lock().await;
            first.errors += errors;
            second.lock().await.micros.extend(b);
        }));
    }
    for worker in workers {
        let _ = worker.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let first = std::mem::take(&mut *first.lock().await);
    let second = std::mem::take(&mut *second.lock().await);
    let requests = first.micros.len() + second.micros.len();
    (requests as f64 / elapsed, first, second)
}

/// Open loop at `rate` requests/s, half policy checks (304) and half 50-event batches, while
/// `waiters` devices long-poll and get one approval each in turn.
async fn mixed(fleet: &Arc<Fleet>, rate: u64, seconds: u64) -> (f64, Samples, Samples, Samples, u64) {
    let policy = Arc::new(Mutex::new(Samples::default()));
    let events = Arc::new(Mutex::new(Samples::default()));
    let in_flight = Arc::new(AtomicU64::new(0));
    let dropped = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);

    // Approval probes: one device at a time waits, an approver approves, we time the wake-up.
    let probe = {
        let fleet = fleet.clone();
        tokio::spawn(async move {
            let mut wake = Samples::default();
            let mut device = fleet.tokens.len() / 2;
            while Instant::now() + Duration::from_secs(2) < deadline {
                device += 1;
                let token = fleet.tokens[device % fleet.tokens.len()].clone();
                let body = json!({"tool": "claude-code", "justification": "Approval latency probe for the benchmark",
                                  "duration_seconds": 600});
                let Ok(filed) =
                    fleet.client.send(Method::POST, "/api/v1/device/exceptions", Some(&token), Some(&body), &[]).await
                else {
                    wake.errors += 1;
                    continue;
                };
                let id = filed.body["id"].as_str().unwrap_or_default().to_owned();
                let cursor = match fleet
                    .client
                    .send(Method::GET, "/api/v1/device/wait?since=0", Some(&token), None, &[])
                    .await
                {
                    Ok(reply) => reply.body["cursor"].as_i64().unwrap_or(0),
                    Err(_) => 0,
                };
                let waiter = {
                    let client = fleet.client.clone();
                    let token = token.clone();
                    tokio::spawn(async move {
                        let reply = client
                            .send(
                                Method::GET,
                                &format!("/api/v1/device/wait?since={cursor}&timeout=10"),
                                Some(&token),
                                None,
                                &[],
                            )
                            .await;
                        (Instant::now(), reply)
                    })
                };
                tokio::time::sleep(Duration::from_millis(100)).await;
                let approved_at = Instant::now();
                let decided = fleet
                    .client
                    .send(
                        Method::POST,
                        &format!("/api/v1/admin/exceptions/{id}/approve"),
                        Some(ADMIN),
                        Some(&json!({"approver": "bench-approver"})),
                        &[],
                    )
                    .await;
                match (decided, waiter.await) {
                    (Ok(d), Ok((woke_at, Ok(reply))))
                        if d.status == StatusCode::OK
                            && reply.body["changes"].as_array().is_some_and(|c| !c.is_empty()) =>
                    {
                        wake.micros.push(woke_at.duration_since(approved_at).as_micros() as u64)
                    }
                    _ => wake.errors += 1,
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            wake
        })
    };

    let mut ticks = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate.max(1)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent: u64 = 0;
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let scheduled = ticks.tick().await;
        if scheduled.into_std() >= deadline {
            break;
        }
        sent += 1;
        if in_flight.load(Ordering::Relaxed) > 4000 {
            dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let (fleet, policy, events, in_flight) = (fleet.clone(), policy.clone(), events.clone(), in_flight.clone());
        in_flight.fetch_add(1, Ordering::Relaxed);
        let device = sent as usize;
        tasks.spawn(async move {
            let is_policy = sent.is_multiple_of(2);
            let result = if is_policy { fleet.policy_304(device).await } else { fleet.events(device).await };
            let micros = scheduled.elapsed().as_micros() as u64;
            let samples = if is_policy { policy } else { events };
            let mut samples = samples.lock().await;
            match result {
                Ok(()) => samples.micros.push(micros),
                Err(_) => samples.errors += 1,
            }
            in_flight.fetch_sub(1, Ordering::Relaxed);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed().as_secs_f64();
    let wake = probe.await.unwrap_or_default();
    let policy = std::mem::take(&mut *policy.lock().await);
    let events = std::mem::take(&mut *events.lock().await);
    let done = policy.micros.len() + events.micros.len();
    (done as f64 / elapsed, policy, events, wake, dropped.load(Ordering::Relaxed))
}

/// Seconds of CPU (user + system) the process `pid` has used, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').context("/proc stat format")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // /proc counts in USER_HZ, which Linux fixes at 100 for every user-space interface.
    Ok(ticks as f64 / 100.0)
}

/// Where the machine's CPU went during a phase (seconds of CPU): the server process, this load
/// client, and everything else that was busy (the database server, the kernel's network stack).
#[derive(Debug, Clone, Copy)]
struct CpuSplit {
    server: f64,
    client: f64,
    machine: f64,
}

impl CpuSplit {
    fn take(server_pid: u32) -> Result<CpuSplit> {
        Ok(CpuSplit {
            server: cpu_seconds(server_pid)?,
            client: cpu_seconds(std::process::id())?,
            machine: machine_busy_seconds()?,
        })
    }

    fn since(&self, before: &CpuSplit) -> CpuSplit {
        CpuSplit {
            server: self.server - before.server,
            client: self.client - before.client,
            machine: self.machine - before.machine,
        }
    }

    /// The CPU one batch cost, split, and the batch rate the machine's cores could sustain at that
    /// cost with nothing else running (the `req/s` column).
    fn per_batch_row(&self, backend: &str, batches: f64) -> String {
        let ms = |seconds: f64| seconds * 1000.0 / batches.max(1.0);
        let rest = (self.machine - self.server - self.client).max(0.0);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        format!(
            "| {backend} | … CPU per batch: server {:.2} ms, load client {:.2} ms, rest (database, kernel) {:.2} ms; \
             batches/s {cores:.0} cores allow at that cost | {:.0} | | | |",
            ms(self.server),
            ms(self.client),
            ms(rest),
            cores * 1000.0 / ms(self.machine).max(f64::EPSILON),
        )
    }
}

/// Seconds the whole machine was busy (every CPU; not idle, not waiting for I/O), from `/proc/stat`.
fn machine_busy_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().context("/proc/stat is empty")?;
    // The first word is the label `cpu` (the sum over every CPU); the counters follow it.
    let ticks: Vec<u64> = line.split_whitespace().skip(1).map(str::parse).collect::<Result<_, _>>()?;
    // user nice system idle iowait irq softirq steal guest…: busy is user, nice, system, irq,
    // softirq and steal (guest time is already inside user), in USER_HZ.
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| ticks.get(i)).sum();
    Ok(busy as f64 / 100.0)
}

/// `count` sequential GETs of `path` with the admin token; latencies in microseconds.
async fn sample_get(client: &JsonClient, path: &str, count: usize) -> Result<Samples> {
    let mut samples = Samples::default();
    for _ in 0..count {
        let started = Instant::now();
        let reply = client.send(Method::GET, path, Some(ADMIN), None, &[]).await.map_err(anyhow::Error::msg)?;
        if reply.status != StatusCode::OK {
            bail!("{path} answered {}: {}", reply.status, reply.text);
        }
        samples.micros.push(started.elapsed().as_micros() as u64);
    }
    Ok(samples)
}

fn fleet_row(backend: &str, what: &str, samples: &mut Samples) -> String {
    format!(
        "| {backend} | {what} | {:.1} | {:.1} | {} |",
        samples.percentile(0.5),
        samples.percentile(0.95),
        samples.micros.len()
    )
}

/// An inventory report like a developer laptop's: a few tools and MCP servers.
fn inventory_report(device: usize) -> Value {
    let user = format!("user{device}");
    let tools = vec![
        json!({"tool": "qwen-code", "user": user, "kind": "npm-package", "place": "npm",
               "path": format!("/home/{user}/.npm-global/lib/node_modules/@qwen-code/qwen-code"), "version": "0.24.4"}),
        json!({"tool": "copilot", "user": user, "kind": "editor-extension", "place": "vscode",
               "path": format!("/home/{user}/.vscode/extensions/github.copilot-1.300.0"), "version": "1.300.0"}),
        json!({"tool": "cursor", "user": "", "kind": "app-image", "path": "/opt/cursor/cursor.AppImage", "version": "1.7.2"}),
        json!({"tool": "claude-code", "user": user, "kind": "install-folder",
               "path": format!("/home/{user}/.local/share/claude"), "version": "2.1.332"}),
    ];
    let servers: Vec<Value> = ["docs", "jira", "github"]
        .iter()
        .map(|name| {
            json!({"client": "qwen-code", "user": user, "scope": "user", "name": name, "transport": "stdio",
                           "command": ["npx", "-y", format!("@corp/mcp-{name}")],
                           "file": format!("/home/{user}/.qwen/settings.json"),
                           "sha256": "0d5f2b5e5c7d2c1f4a1b9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b"})
        })
        .collect();
    json!({"scanned_at_ms": 1_764_000_000_000i64, "tools": tools, "mcp_servers": servers})
}

async fn bench_fleet(name: &str, url: &str, options: &Options) -> Result<Vec<String>> {
    use warden_server::seed::{SeedSpec, seed};
    let mut config = warden_server::Config::new(url);
    config.credentials.admin_token = Some(ADMIN.into());
    config.credentials.enroll_secret = Some(SECRET.into());
    let (state, _) = warden_server::prepare(&config).await?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    eprintln!("server-bench: {name}: seeding {} events from {} devices", options.fleet_events, options.fleet_devices);
    let started = Instant::now();
    let spec = SeedSpec { devices: options.fleet_devices, events: options.fleet_events, days: 89, seed: 1, now };
    seed(&state.store, spec).await?;
    // What autovacuum / a periodic ANALYZE would have done to a table that grew to this size.
    let maintenance = if url.starts_with("sqlite:") { "ANALYZE" } else { "VACUUM ANALYZE" };
    sqlx::query(maintenance).execute(&state.store.pool).await?;
    eprintln!("server-bench: {name}: seeded in {:.0} s", started.elapsed().as_secs_f64());
    // The peer in the same run: the 90-day overview aggregated from the events table, as the views
    // did before the tallies (with that version's covering index), timed at the database.
    eprintln!("server-bench: {name}: the 90-day overview aggregated from the events table, for comparison");
    sqlx::query("CREATE INDEX bench_events_by_day ON events (kind, at_ms, tool, verdict)")
        .execute(&state.store.pool)
        .await?;
    sqlx::query("ANALYZE").execute(&state.store.pool).await?;
    let since_ms = (now * 1000).div_euclid(86_400_000) * 86_400_000 - 89 * 86_400_000;
    let mut direct = Samples::default();
    for _ in 0..6 {
        let started = Instant::now();
        let rows: Vec<(i64, String, Option<String>, i64)> = sqlx::query_as(
            "SELECT at_ms / 86400000, COALESCE(tool, ''), verdict, COUNT(*) FROM events \
             WHERE kind = 'launch' AND at_ms >= $1 GROUP BY 1, 2, 3",
        )
        .bind(since_ms)
        .fetch_all(&state.store.pool)
        .await?;
        anyhow::ensure!(!rows.is_empty(), "the aggregate found no launches");
        direct.micros.push(started.elapsed().as_micros() as u64);
    }
    direct.micros.remove(0); // the first run warms the cache
    sqlx::query("DROP INDEX bench_events_by_day").execute(&state.store.pool).await?;
    let direct_row =
        fleet_row(name, "overview, 90 days, aggregated from the events table (database time only)", &mut direct);
    state.store.pool.close().await;
    drop(state);

    let server = ServerProcess::start(Some(url))?;
    let client = JsonClient::new(&server.base);
    let mut rows = vec![direct_row];
    for (what, path) in [
        ("overview, 30 days", "/api/v1/admin/overview?days=30"),
        ("overview, 90 days", "/api/v1/admin/overview?days=90"),
        ("tools (installed, used 7/30/90 d, trend)", "/api/v1/admin/tools"),
        ("one tool's footprint (claude-code)", "/api/v1/admin/tools/claude-code"),
        ("exception report", "/api/v1/admin/exceptions/report"),
        ("events, first page of 100", "/api/v1/admin/events?limit=100"),
        ("events, blocked only, first page of 100", "/api/v1/admin/events?limit=100&verdict=blocked"),
    ] {
        eprintln!("server-bench: {name}: {what}");
        sample_get(&client, path, 3).await?; // warm-up
        let mut samples = sample_get(&client, path, 30).await?;
        rows.push(fleet_row(name, what, &mut samples));
    }
    // A page deep in the list: the cursor after 200 pages of 1,000.
    let mut cursor = String::new();
    for _ in 0..200 {
        let path = format!("/api/v1/admin/events?limit=1000{cursor}");
        let page = client.send(Method::GET, &path, Some(ADMIN), None, &[]).await.map_err(anyhow::Error::msg)?;
        let next = page.body["next"].as_str().context("a next page")?;
        cursor = format!("&cursor={next}");
    }
    let mut samples = sample_get(&client, &format!("/api/v1/admin/events?limit=100{cursor}"), 30).await?;
    rows.push(fleet_row(name, "events, page of 100 after 200,000 events (cursor)", &mut samples));

    // Inventory uploads: every device enrolls, then uploads a new report, then the same again.
    eprintln!("server-bench: {name}: {} devices enroll and upload their inventory", options.fleet_devices);
    let fleet = setup(&server.base, options.fleet_devices).await?;
    let pid = server.child.id();
    // The first upload of each device is new (a history row); the second, the same report again.
    for what in ["inventory upload, new report", "inventory upload, unchanged report"] {
        let before = cpu_seconds(pid)?;
        let started = Instant::now();
        let mut samples = Samples::default();
        let next = Arc::new(AtomicU64::new(0));
        let collected = Arc::new(Mutex::new(Vec::new()));
        let workers: Vec<_> = (0..16)
            .map(|_| {
                let (fleet, next, collected) = (fleet.clone(), next.clone(), collected.clone());
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    loop {
                        let device = next.fetch_add(1, Ordering::Relaxed) as usize;
                        if device >= fleet.tokens.len() {
                            break;
                        }
                        let body = inventory_report(device);
                        let sent = Instant::now();
                        let reply = fleet
                            .client
                            .send(
                                Method::PUT,
                                "/api/v1/device/inventory",
                                Some(&fleet.tokens[device]),
                                Some(&body),
                                &[],
                            )
                            .await;
                        match reply {
                            Ok(reply) if reply.status == StatusCode::OK => mine.push(sent.elapsed().as_micros() as u64),
                            _ => mine.push(u64::MAX),
                        }
                    }
                    collected.lock().await.extend(mine);
                })
            })
            .collect();
        for worker in workers {
            worker.await?;
        }
        let wall = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds(pid)? - before;
        let all = std::mem::take(&mut *collected.lock().await);
        samples.errors = all.iter().filter(|m| **m == u64::MAX).count() as u64;
        samples.micros = all.into_iter().filter(|m| *m != u64::MAX).collect();
        let uploads = samples.micros.len().max(1) as f64;
        rows.push(format!(
            "| {name} | {what}: server CPU {:.0} µs per upload ({:.0} uploads/s, ×16) | {:.1} | {:.1} | {} |",
            cpu / uploads * 1e6,
            uploads / wall,
            samples.percentile(0.5),
            samples.percentile(0.95),
            samples.micros.len()
        ));
        if samples.errors > 0 {
            bail!("{} inventory uploads failed", samples.errors);
        }
    }
    drop(server);
    Ok(rows)
}

fn row(backend: &str, what: &str, throughput: f64, samples: &mut Samples) -> String {
    format!(
        "| {backend} | {what} | {throughput:.0} | {:.1} | {:.1} | {} |",
        samples.percentile(0.5),
        samples.percentile(0.99),
        samples.errors
    )
}

async fn bench_backend(name: &str, database: Option<&str>, options: &Options) -> Result<Vec<String>> {
    let server = ServerProcess::start(database)?;
    eprintln!("server-bench: {name}: server at {}, enrolling {} devices", server.base, options.devices);
    let fleet = setup(&server.base, options.devices).await?;
    let mut rows = Vec::new();
    let s = options.seconds;
    let c = options.concurrency;

    eprintln!("server-bench: {name}: policy fetch (304), {c} connections, {s} s");
    let (rps, mut samples, _) = closed_loop(&fleet, Kind::Policy, c, s).await;
    rows.push(row(name, &format!("policy fetch → 304, closed loop ×{c}"), rps, &mut samples));

    eprintln!("server-bench: {name}: event batches (50 events), {c} connections, {s} s");
    let before = CpuSplit::take(server.child.id())?;
    let (rps, mut samples, _) = closed_loop(&fleet, Kind::Events, c, s).await;
    let spent = CpuSplit::take(server.child.id())?.since(&before);
    rows.push(row(name, &format!("event batch (50 events), closed loop ×{c}"), rps, &mut samples));
    rows.push(format!("| {name} | … = events stored per second | {:.0} | | | |", rps * 50.0));
    rows.push(spent.per_batch_row(name, rps * s as f64));

    eprintln!("server-bench: {name}: exception create + approve, 8 connections, {s} s");
    let (rps, mut created, mut approved) = closed_loop(&fleet, Kind::CreateApprove, 8, s).await;
    rows.push(row(name, "exception create (of create+approve, ×8)", rps / 2.0, &mut created));
    rows.push(row(name, "exception approve (of create+approve, ×8)", rps / 2.0, &mut approved));

    let rate = options.rate;
    eprintln!("server-bench: {name}: mixed sync traffic at {rate} req/s for {s} s with approval probes");
    let (rps, mut policy, mut events, mut wake, dropped) = mixed(&fleet, rate, s).await;
    rows.push(row(name, &format!("mixed @ {rate} req/s: policy → 304 (open loop)"), rps / 2.0, &mut policy));
    rows.push(row(name, &format!("mixed @ {rate} req/s: event batch of 50 (open loop)"), rps / 2.0, &mut events));
    rows.push(row(
        name,
        "approval → waiting device woken (during the mix)",
        wake.micros.len() as f64 / s as f64,
        &mut wake,
    ));
    if dropped > 0 {
        rows.push(format!("| {name} | mixed: sends skipped (over 4000 in flight) | {dropped} | | | |"));
    }
    drop(server);
    Ok(rows)
}

/// A fresh PostgreSQL database on the server at `base` for one run: (its URL, the admin pool).
async fn bench_database(base: &str) -> Result<(String, String, sqlx::AnyPool)> {
    sqlx::any::install_default_drivers();
    let name = format!("warden_bench_{}", std::process::id());
    let pool = sqlx::AnyPool::connect(base).await.context("connecting to PostgreSQL")?;
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&pool).await?;
    let (prefix, _) = base.rsplit_once('/').context("the URL names a database")?;
    Ok((format!("{prefix}/{name}"), name, pool))
}

async fn fleet_main(options: &Options) -> Result<()> {
    let mut rows =
        vec!["| backend | view | p50 ms | p95 ms | requests |".to_owned(), "|---|---|---:|---:|---:|".to_owned()];
    let dir = std::env::temp_dir().join(format!("warden-fleet-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let sqlite = format!("sqlite://{}?mode=rwc", dir.join("warden.db").display());
    let result = bench_fleet("SQLite", &sqlite, options).await;
    let _ = std::fs::remove_dir_all(&dir);
    rows.extend(result?);
    if let Some(base) = &options.postgres {
        let (url, name, pool) = bench_database(base).await?;
        let result = bench_fleet("PostgreSQL", &url, options).await;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&pool).await?;
        rows.extend(result?);
    }
    println!("{}", rows.join("\n"));
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let options = options()?;
    if options.fleet {
        return fleet_main(&options).await;
    }
    let mut rows = vec![
        "| backend | workload | req/s | p50 ms | p99 ms | errors |".to_owned(),
        "|---|---|---:|---:|---:|---:|".to_owned(),
    ];
    rows.extend(bench_backend("SQLite", None, &options).await?);
    if let Some(base) = &options.postgres {
        let (url, name, pool) = bench_database(base).await?;
        let result = bench_backend("PostgreSQL", Some(&url), &options).await;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&pool).await?;
        rows.extend(result?);
    } else {
        eprintln!("server-bench: no --postgres URL: PostgreSQL skipped (cargo xtask bench-server starts one)");
    }
    println!("{}", rows.join("\n"));
    Ok(())
}
