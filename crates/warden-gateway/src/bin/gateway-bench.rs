//! `gateway-bench`: the masking gateway's benchmark. Masking throughput on one core, added latency for a
//! 100 KB prompt and added time to first streamed token (through the gateway vs straight to a loopback
//! upstream), and detection quality on the corpus side by side with Yelp's `detect-secrets`, a finding
//! counted by its line for both. Results go to stdout; docs/benchmarks.md records them.

use axum::Router;
use axum::body::Body;
use axum::http::Response;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};
use warden_gateway::{Detector, GatewayConfig, MaskCounts, Vault, mask_text};

const USAGE: &str = "\
gateway-bench: the masking gateway's benchmark

USAGE: gateway-bench [--iterations N] [--corpus DIR] [--detect-secrets PATH] [--no-peer]

  --iterations N         requests per latency measurement (default 2000)
  --corpus DIR           the corpus (default: crates/warden-gateway/tests/data)
  --detect-secrets PATH  the peer (default: ~/.cache/warden-tools/gateway/detect-secrets/bin/detect-secrets,
                         installed by `cargo xtask setup`)
  --no-peer              skip the detect-secrets comparison
  -h, --help             this text";

#[derive(Debug)]
struct Options {
    iterations: usize,
    corpus: PathBuf,
    peer: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Option<Options>, String> {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let mut options = Options {
        iterations: 2000,
        corpus: Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data"),
        peer: Some(home.join(".cache/warden-tools/gateway/detect-secrets/bin/detect-secrets")),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().cloned().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--iterations" => {
                options.iterations = value(arg)?.parse().map_err(|e| format!("--iterations: {e}"))?;
            }
            "--corpus" => options.corpus = PathBuf::from(value(arg)?),
            "--detect-secrets" => options.peer = Some(PathBuf::from(value(arg)?)),
            "--no-peer" => options.peer = None,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(options))
}

fn main() -> ExitCode {
    // argv[0] is the program itself; the flags follow it.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse(&args) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("gateway-bench: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("gateway-bench: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: &Options) -> Result<(), String> {
    let detector = Arc::new(Detector::new(None).map_err(|e| e.to_string())?);
    let secrets = read(&options.corpus.join("secrets.txt"))?;
    let lookalikes = read(&options.corpus.join("lookalikes.txt"))?;
    println!("machine: {} cores, {}", cores(), cpu_model());

    // 1. Throughput on one core: this workspace's own source text with the corpus mixed in once per
    // MiB (typical prompts: code with a rare secret), and the corpus alone (the worst case: nothing
    // but secrets and look-alikes).
    let code = workload(&secrets, &lookalikes, 8 << 20, 1 << 20);
    let dense = workload(&secrets, &lookalikes, 8 << 20, 0);
    throughput(&detector, "code with the corpus once per MiB", &code);
    throughput(&detector, "corpus only (secret-dense)", &dense);

    // 2 and 3. Latency through the proxy, on one thread (client, gateway and upstream share it).
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(latency(Arc::clone(&detector), &secrets, options.iterations))?;

    // 4. Detection: ours and the peer's on the same files, counted the same way.
    let cases = secret_cases(&secrets);
    let start = Instant::now();
    let ours = [finding_lines(&detector, &secrets), finding_lines(&detector, &lookalikes)];
    let our_time = start.elapsed();
    let negatives = lookalikes.lines().filter(|l| !l.is_empty() && !l.starts_with("# kind:")).count();
    println!("detection corpus: {} secrets ({} kinds), {negatives} look-alikes", cases.len(), kinds(&cases));
    report("warden-gateway", &cases, &ours, our_time);
    if let Some(peer) = &options.peer {
        if !peer.exists() {
            return Err(format!("{} is missing: run `cargo xtask setup` (or pass --no-peer)", peer.display()));
        }
        let start = Instant::now();
        let output = Command::new(peer)
            .args(["scan", "secrets.txt", "lookalikes.txt"])
            .current_dir(&options.corpus)
            .output()
            .map_err(|e| format!("running {}: {e}", peer.display()))?;
        let peer_time = start.elapsed();
        if !output.status.success() {
            return Err(format!("detect-secrets failed: {}", String::from_utf8_lossy(&output.stderr)));
        }
        let scan: Value = serde_json::from_slice(&output.stdout).map_err(|e| format!("detect-secrets output: {e}"))?;
        let lines = |file: &str| -> BTreeSet<usize> {
            scan["results"][file]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["line_number"].as_u64().map(|n| n as usize))
                .collect()
        };
        let version =
            Command::new(peer).arg("--version").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
        report(
            &format!("detect-secrets {}", version.unwrap_or_default()),
            &cases,
            &[lines("secrets.txt"), lines("lookalikes.txt")],
            peer_time,
        );
    }
    Ok(())
}

fn throughput(detector: &Detector, label: &str, text: &str) {
    let mut rates = Vec::new();
    let mut findings = 0;
    for _ in 0..5 {
        let mut vault = Vault::default();
        let mut counts = MaskCounts::default();
        let start = Instant::now();
        let masked = mask_text(detector, &mut vault, text, &mut counts);
        let elapsed = start.elapsed();
        findings = counts.total();
        std::hint::black_box(masked);
        rates.push(text.len() as f64 / elapsed.as_secs_f64() / 1e6);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "masking throughput, {label}: {:.1} MB, {findings} findings: median {:.0} MB/s, best {:.0} MB/s (one core)",
        text.len() as f64 / 1e6,
        rates[2],
        rates[4]
    );
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// `size` bytes of this workspace's Rust, TOML and Markdown with the corpus every `every` bytes, or
/// (`every` = 0) of the corpus alone.
fn workload(secrets: &str, lookalikes: &str, size: usize, every: usize) -> String {
    if every == 0 {
        let corpus = format!("{secrets}\n{lookalikes}\n");
        return corpus.repeat(size / corpus.len() + 1);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for dir in ["crates", "src", "xtask", "docs"] {
        collect(&root.join(dir), &mut files);
    }
    files.sort();
    let sources: Vec<String> = files.iter().filter_map(|f| std::fs::read_to_string(f).ok()).collect();
    let mut text = String::with_capacity(size + (1 << 20));
    let mut next_corpus = 0;
    while text.len() < size {
        for source in &sources {
            text.push_str(source);
            if text.len() >= next_corpus {
                text.push_str(secrets);
                text.push_str(lookalikes);
                next_corpus += every;
            }
            if text.len() >= size {
                break;
            }
        }
    }
    text
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && !path.ends_with("target") && !path.ends_with("node_modules") {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs" || e == "toml" || e == "md") {
            files.push(path);
        }
    }
}

async fn latency(detector: Arc<Detector>, secrets: &str, iterations: usize) -> Result<(), String> {
    let upstream = start_upstream().await;
    let config = GatewayConfig {
        upstream: format!("http://{upstream}/v1"),
        upstream_key: Some("bench-upstream-key".into()),
        clients: warden_gateway::ClientTokens::single("bench-token", "bench"),
        max_body_bytes: 32 << 20,
        idle: Duration::from_secs(600),
        detector,
        on_report: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let gateway = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(warden_gateway::serve(listener, config, std::future::pending()));
    let client = reqwest::Client::new();

    // A 100 KB prompt: this workspace's source code with three of the corpus's secrets in it (an AWS
    // key, a PEM private key, a database URL with a password) — code with a rare secret, as prompts are.
    let code = workload("", "", 100_000, 1 << 30);
    let block = |kind: &str| -> String {
        let start = secrets.find(&format!("# kind: {kind}\n")).expect("the corpus has this kind");
        let block = &secrets[start..];
        block[..block.find("\n\n").unwrap_or(block.len())].to_owned()
    };
    let mut prompt = String::new();
    let mut at = 0;
    for i in 0..4 {
        let end = code.floor_char_boundary((i + 1) * 25_000);
        prompt.push_str(&code[at..end]);
        at = end;
        if let Some(kind) = ["aws-access-key-id", "private-key", "url-password"].get(i) {
            prompt.push('\n');
            prompt.push_str(&block(kind));
            prompt.push('\n');
        }
    }
    let prompt = prompt[..prompt.floor_char_boundary(100_000)].to_owned();
    let body = |stream: bool, text: &str| {
        json!({"model": "m", "stream": stream, "messages": [{"role": "user", "content": text}]}).to_string()
    };
    let whole = body(false, &prompt);
    let small = body(true, &prompt[..2000]);
    let big_stream = body(true, &prompt);
    let send = |base: std::net::SocketAddr, body: String| {
        client
            .post(format!("http://{base}/v1/chat/completions"))
            .bearer_auth("bench-token")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    // Warm up both paths (connections, caches).
    for _ in 0..50 {
        for base in [upstream, gateway] {
            send(base, whole.clone()).await.map_err(|e| e.to_string())?.bytes().await.map_err(|e| e.to_string())?;
        }
    }
    let (mut direct, mut through) = (Vec::new(), Vec::new());
    for _ in 0..iterations {
        for (base, samples) in [(upstream, &mut direct), (gateway, &mut through)] {
            let start = Instant::now();
            let answer = send(base, whole.clone()).await.map_err(|e| e.to_string())?;
            answer.bytes().await.map_err(|e| e.to_string())?;
            samples.push(start.elapsed());
        }
    }
    print_added("100 KB prompt, whole answer", &mut direct, &mut through);

    for (label, request) in [
        ("time to first streamed token, 2 KB prompt", &small),
        ("time to first streamed token, 100 KB prompt", &big_stream),
    ] {
        let (mut direct, mut through) = (Vec::new(), Vec::new());
        for _ in 0..iterations {
            for (base, samples) in [(upstream, &mut direct), (gateway, &mut through)] {
                let start = Instant::now();
                let mut answer = send(base, request.clone()).await.map_err(|e| e.to_string())?;
                let first = answer.chunk().await.map_err(|e| e.to_string())?;
                samples.push(start.elapsed());
                if first.is_none_or(|c| !c.starts_with(b"data:")) {
                    return Err("the first streamed chunk is not an event".into());
                }
                while answer.chunk().await.map_err(|e| e.to_string())?.is_some() {}
            }
        }
        print_added(label, &mut direct, &mut through);
    }
    Ok(())
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn print_added(label: &str, direct: &mut [Duration], through: &mut [Duration]) {
    direct.sort();
    through.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (d50, d99, t50, t99) =
        (percentile(direct, 0.5), percentile(direct, 0.99), percentile(through, 0.5), percentile(through, 0.99));
    println!(
        "{label}: direct p50 {:.3} ms p99 {:.3} ms; through the gateway p50 {:.3} ms p99 {:.3} ms; added p50 {:.3} ms, p99 {:.3} ms ({} requests each)",
        ms(d50),
        ms(d99),
        ms(t50),
        ms(t99),
        ms(t50.saturating_sub(d50)),
        ms(t99.saturating_sub(d99)),
        direct.len()
    );
}

/// A loopback upstream: a fixed chat completion, or a stream whose first event comes at once and the
/// rest 2 ms later (so "first token" and "whole answer" differ).
async fn start_upstream() -> std::net::SocketAddr {
    let app = Router::new().fallback(|body: String| async move {
        let stream = body.contains("\"stream\":true");
        if !stream {
            let answer = json!({"id": "c", "object": "chat.completion", "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": "Done: ⟦SECRET_1⟧ is set."}}]});
            return Response::builder().header("content-type", "application/json").body(Body::from(answer.to_string())).unwrap();
        }
        let (sender, receiver) = tokio::sync::mpsc::channel::<String>(4);
        tokio::spawn(async move {
            let event = |text: &str| format!("data: {}\n\n", json!({"choices": [{"index": 0, "delta": {"content": text}}]}));
            let _ = sender.send(event("Hello")).await;
            tokio::time::sleep(Duration::from_millis(2)).await;
            let _ = sender.send(event(" ⟦SECRET_1⟧ done.") + "data: [DONE]\n\n").await;
        });
        Response::builder().header("content-type", "text/event-stream").body(Body::new(Events(receiver))).unwrap()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("loopback");
    let address = listener.local_addr().expect("bound");
    // TCP_NODELAY like the gateway's own listener, so both paths are measured alike.
    let listener = axum::serve::ListenerExt::tap_io(listener, |stream| {
        let _ = stream.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

#[derive(Debug)]
struct Events(tokio::sync::mpsc::Receiver<String>);

impl http_body::Body for Events {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|e| e.map(|text| Ok(http_body::Frame::data(bytes::Bytes::from(text)))))
    }
}

/// A corpus case: the kind and the line (1-based) its secret starts on.
#[derive(Debug)]
struct Case {
    kind: String,
    first: usize,
}

fn secret_cases(text: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if let Some(kind) = line.strip_prefix("# kind: ") {
            cases.push(Case { kind: kind.to_owned(), first: i + 2 });
        }
    }
    cases
}

fn kinds(cases: &[Case]) -> usize {
    cases.iter().map(|c| c.kind.as_str()).collect::<BTreeSet<_>>().len()
}

fn finding_lines(detector: &Detector, text: &str) -> BTreeSet<usize> {
    let line_starts: Vec<usize> = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
    detector.find(text).iter().map(|f| line_starts.partition_point(|&s| s <= f.start)).collect()
}

/// Recall over the cases (a case is found when a finding is on its first line), precision over every
/// flagged line (a flagged line that is no case's first line, or any look-alike line, is false).
fn report(name: &str, cases: &[Case], lines: &[BTreeSet<usize>; 2], elapsed: Duration) {
    let firsts: BTreeSet<usize> = cases.iter().map(|c| c.first).collect();
    let found = cases.iter().filter(|c| lines[0].contains(&c.first)).count();
    let false_positives = lines[0].difference(&firsts).count() + lines[1].len();
    let recall = found as f64 / cases.len() as f64;
    let precision = if found + false_positives == 0 { 0.0 } else { found as f64 / (found + false_positives) as f64 };
    let mut missed: BTreeMap<&str, usize> = BTreeMap::new();
    for case in cases.iter().filter(|c| !lines[0].contains(&c.first)) {
        *missed.entry(&case.kind).or_default() += 1;
    }
    println!(
        "{name}: recall {:.1} % ({found}/{}), precision {:.1} % ({false_positives} false lines), {:.0} ms; kinds with misses: {}",
        recall * 100.0,
        cases.len(),
        precision * 100.0,
        elapsed.as_secs_f64() * 1e3,
        missed.len()
    );
}
