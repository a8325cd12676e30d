//! The admin console's browser tests: Playwright (`playwright-core`, no browser download) driving
//! Debian's Chromium against a real `warden-server` binary — the approver's pages, sign-in through
//! a real OpenID Connect provider (npm `oidc-provider` on loopback), and the fleet views over a
//! database `warden-seed` fills with 100,000 events.

use crate::{cargo, check};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::Command;

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target"))
}

pub fn admin_page_test() -> Result<()> {
    println!("xtask: admin page in a real browser (tests/browser)");
    check(cargo().args(["build", "--quiet", "-p", "warden-server", "--bin", "warden-server", "--bin", "warden-seed"]))?;
    let server =
        std::fs::canonicalize(target_dir().join("debug/warden-server")).context("locating the built warden-server")?;
    let seed =
        std::fs::canonicalize(target_dir().join("debug/warden-seed")).context("locating the built warden-seed")?;
    check(
        Command::new("npm").args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]).current_dir("tests/browser"),
    )?;
    check(
        Command::new("node")
            .args(["--test", "--test-reporter=spec"])
            .current_dir("tests/browser")
            .env("WARDEN_SERVER_BIN", server)
            .env("WARDEN_SEED_BIN", seed),
    )
}

/// `cargo xtask bench-pages`: the console's sign-in and approval times in Chromium against the
/// release server on a seeded fleet, SQLite and a throwaway PostgreSQL (`tests/browser/bench-pages.mjs`).
pub fn bench_pages() -> Result<()> {
    check(cargo().args(["build", "--release", "--quiet", "-p", "warden-server", "--bins"]))?;
    let release = |name: &str| std::fs::canonicalize(target_dir().join("release").join(name));
    let server = release("warden-server").context("locating the release warden-server")?;
    let seed = release("warden-seed").context("locating the release warden-seed")?;
    check(
        Command::new("npm").args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]).current_dir("tests/browser"),
    )?;
    let postgres = crate::postgres::PostgresFixture::start().context("starting PostgreSQL")?;
    check(
        Command::new("node")
            .arg("bench-pages.mjs")
            .current_dir("tests/browser")
            .env("WARDEN_SERVER_BIN", server)
            .env("WARDEN_SEED_BIN", seed)
            .env("WARDEN_BENCH_POSTGRES_URL", &postgres.url),
    )
}
