//! `warden-seed`: writes a synthetic fleet (devices, inventories, launch events, exception
//! requests) straight into a Warden server database and prints, as JSON, the counts it knows —
//! for the console's browser test, the fleet benchmarks, and demos.

use anyhow::{Context, Result};
use clap::Parser;
use warden_server::seed::{SeedSpec, seed};
use warden_server::{Config, prepare};

/// Seeds a Warden server database with a synthetic fleet.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// `sqlite://PATH?mode=rwc` or `postgres://…`; created and migrated as the server would.
    #[arg(long, env = "WARDEN_DATABASE_URL", value_name = "URL")]
    database: String,
    #[arg(long, default_value_t = 500)]
    devices: usize,
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Spread the events over this many days before now (at most 89).
    #[arg(long, default_value_t = 89, value_parser = clap::value_parser!(u32).range(1..=89))]
    days: u32,
    /// The random seed: the same seed writes the same fleet.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.devices > 0, "--devices must be at least 1");
    let (state, _) =
        prepare(&Config::new(args.database.clone())).await.with_context(|| format!("opening {}", args.database))?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    let started = std::time::Instant::now();
    let truth = seed(
        &state.store,
        SeedSpec { devices: args.devices, events: args.events, days: args.days, seed: args.seed, now },
    )
    .await
    .context("seeding")?;
    eprintln!(
        "warden-seed: wrote {} devices and {} events in {:.1} s",
        truth.devices,
        truth.events,
        started.elapsed().as_secs_f64()
    );
    println!("{}", serde_json::to_string_pretty(&truth)?);
    Ok(())
}
