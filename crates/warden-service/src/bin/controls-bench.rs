//! `controls-bench`: how fast the service's keeper puts the policy into the vendors' files, in a
//! scratch root (never the machine's /etc) — a policy change until every managed file is
//! rewritten, and a drift (an edit, a delete, a rename over the file, `rm -r` of its folder)
//! until the file is back — beside a peer measured in the same run: the same keeper with its
//! inotify watch off, i.e. a keeper that polls every 2 s (`SAFETY_CHECK`).
//!
//! Usage (release build, see docs/benchmarks.md):
//! `controls-bench [--changes 200] [--drifts 200] [--peer-drifts 20] [--dir DIR]`.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use warden_policy::{ManagedFile, Policy, render_controls};
use warden_service::controls::{ControlsOptions, Keeper, located};

/// How fast the service's keeper rewrites and restores the vendors' managed files (scratch root).
#[derive(Debug, clap::Parser)]
#[command(name = "controls-bench")]
struct Options {
    /// Policy changes to time (each until every managed file is rewritten).
    #[arg(long, default_value_t = 200)]
    changes: usize,
    /// Drifts to time with the inotify keeper.
    #[arg(long, default_value_t = 200)]
    drifts: usize,
    /// Drifts to time with the polling peer (each takes up to 2 s).
    #[arg(long, default_value_t = 20)]
    peer_drifts: usize,
    /// Where the scratch root is made (default /tmp).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

fn options() -> Result<Options> {
    Ok(<Options as clap::Parser>::parse())
}

/// The two policies a change alternates between: every file's content differs between them.
fn policies() -> Result<(Policy, Policy)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/policies/controls.toml");
    let a = Policy::parse("controls.toml", &std::fs::read_to_string(&path)?).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut b = a.clone();
    b.name = "Controls test policy, changed".into();
    b.assistant.as_mut().context("an assistant")?.gateway_url = None;
    b.assistant.as_mut().context("an assistant")?.url = "https://assistant-2.internal.example/".into();
    let controls = b.controls.as_mut().context("controls")?;
    controls.secret_paths.push("~/.kube/**".into());
    b.mcp
        .as_mut()
        .context("mcp")?
        .deny
        .push(warden_policy::McpServerMatch { name: Some("pastebin".into()), ..Default::default() });
    Ok((a, b))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn summary(name: &str, mut samples: Vec<Duration>) -> Duration {
    if samples.is_empty() {
        println!("{name}: no samples");
        return Duration::ZERO;
    }
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name}: n={} p50={:.2} ms p99={:.2} ms max={:.2} ms",
        samples.len(),
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99)),
        ms(*samples.last().unwrap())
    );
    percentile(&samples, 0.99)
}

fn all_match(root: &Path, files: &[ManagedFile]) -> bool {
    files.iter().all(|f| std::fs::read(located(root, f.path)).is_ok_and(|b| b == f.content.as_bytes()))
}

/// Tampers with file `i` of `files` in one of four ways; returns how long until it is back.
fn drift(root: &Path, files: &[ManagedFile], i: usize, pause: Duration, limit: Duration) -> Result<Duration> {
    let file = &files[i % files.len()];
    let at = located(root, file.path);
    // Start from a settled tree: every file as the policy says.
    let settle = Instant::now();
    while !all_match(root, files) {
        if settle.elapsed() > limit {
            bail!("the files did not settle within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // A check that just restored the last drift may still be running: tamper after a pause,
    // so that no drift is caught by a check already under way.
    std::thread::sleep(pause);
    match (i / files.len()) % 4 {
        0 => std::fs::write(&at, "{}")?,
        1 => std::fs::remove_file(&at)?,
        2 => {
            let other = at.with_extension("bench-tmp");
            std::fs::write(&other, "{\"x\": 1}")?;
            std::fs::rename(&other, &at)?;
        }
        // The keeper may refill the folder while it is being removed: that is the point.
        _ => match std::fs::remove_dir_all(at.parent().context("a folder")?) {
            Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => {}
            other => other?,
        },
    }
    let start = Instant::now();
    loop {
        if std::fs::read(&at).is_ok_and(|b| b == file.content.as_bytes()) {
            return Ok(start.elapsed());
        }
        if start.elapsed() > limit {
            bail!("{} not restored within {limit:?}", file.path);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn main() -> Result<()> {
    let options = options()?;
    let scratch = tempfile::Builder::new()
        .prefix("controls-bench-")
        .tempdir_in(options.dir.as_deref().unwrap_or(Path::new("/tmp")))?;
    let (a, b) = policies()?;
    let (files_a, files_b) = (render_controls(&a, &a.catalog(), &[], 0), render_controls(&b, &b.catalog(), &[], 0));
    println!("controls-bench: {} managed files, scratch root {}", files_a.len(), scratch.path().display());

    let root = scratch.path().join("root");
    let keeper = Keeper::start(
        ControlsOptions { root: root.clone(), state_dir: scratch.path().join("state"), watch: true },
        &a,
        &[],
        Box::new(|_| {}),
    )?;
    let mut changes = Vec::new();
    for i in 0..options.changes {
        let (policy, files) = if i % 2 == 0 { (&b, &files_b) } else { (&a, &files_a) };
        let start = Instant::now();
        keeper.apply_and_wait(policy);
        let took = start.elapsed();
        if !all_match(&root, files) {
            bail!("change {i}: the files do not match the policy after the rewrite");
        }
        changes.push(took);
    }
    keeper.apply_and_wait(&a);
    let changed_p99 = summary("policy change -> every file rewritten", changes);

    let mut drifts = Vec::new();
    for i in 0..options.drifts {
        drifts.push(drift(&root, &files_a, i, Duration::from_millis(30), Duration::from_secs(5))?);
    }
    let drift_p99 = summary("drift -> restored (inotify)", drifts);
    drop(keeper);

    let peer_root = scratch.path().join("peer-root");
    let peer = Keeper::start(
        ControlsOptions { root: peer_root.clone(), state_dir: scratch.path().join("peer-state"), watch: false },
        &a,
        &[],
        Box::new(|_| {}),
    )?;
    let mut polled = Vec::new();
    for i in 0..options.peer_drifts {
        // Spread over the 2 s period, so the peer's figures sample every phase of its poll.
        let phase = Duration::from_millis((i as u64 * 733) % 2000);
        polled.push(drift(&peer_root, &files_a, i, phase, Duration::from_secs(10))?);
    }
    drop(peer);
    let peer_p99 = summary("peer: drift -> restored (polling every 2 s, no inotify)", polled);
    println!(
        "ratio: inotify p99 is {:.0}x faster than the polling peer's; policy change p99 {:.2} ms (budget 1000 ms), drift p99 {:.2} ms (budget 1000 ms)",
        peer_p99.as_secs_f64() / drift_p99.as_secs_f64().max(1e-9),
        changed_p99.as_secs_f64() * 1000.0,
        drift_p99.as_secs_f64() * 1000.0
    );
    Ok(())
}
