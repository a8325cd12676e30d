//! OpenSnitch for the network bench's side-by-side (`net-bench`, docs/benchmarks.md): Debian's
//! `opensnitch` package downloaded and unpacked under `~/.cache/warden-tools/opensnitch-1.5.8.1`,
//! never installed — its postinst would start the daemon machine-wide on a machine with systemd. The
//! bench runs the unpacked daemon in a network namespace of its own. Best effort: without it the
//! bench says the comparison was skipped.

use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::process::Command;

/// The Debian 12 package version the figures were measured with.
pub const VERSION: &str = "1.5.8.1-1+b3";

fn root() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    Ok(PathBuf::from(home).join(".cache/warden-tools/opensnitch-1.5.8.1"))
}

/// Downloads and unpacks the package when the daemon is missing; a failure is reported, not fatal.
pub fn setup() -> Result<()> {
    let root = root()?;
    if root.join("usr/bin/opensnitchd").exists() {
        println!("xtask: OpenSnitch {VERSION} present (unpacked, not installed)");
        return Ok(());
    }
    if let Err(error) = unpack(&root) {
        println!("xtask: OpenSnitch not unpacked ({error:#}): net-bench will skip its comparison");
    }
    Ok(())
}

fn unpack(root: &std::path::Path) -> Result<()> {
    let download = tempfile::tempdir().context("a download folder")?;
    let fetched = Command::new("apt-get")
        .args(["download", "-q", &format!("opensnitch={VERSION}")])
        .current_dir(download.path())
        .status()
        .context("running apt-get download")?;
    if !fetched.success() {
        bail!("apt-get download opensnitch={VERSION} failed");
    }
    let deb = std::fs::read_dir(download.path())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("no .deb downloaded")?;
    std::fs::create_dir_all(root)?;
    let unpacked = Command::new("dpkg-deb").arg("-x").arg(&deb).arg(root).status().context("running dpkg-deb")?;
    if !unpacked.success() {
        bail!("dpkg-deb -x {} failed", deb.display());
    }
    println!("xtask: OpenSnitch {VERSION} unpacked under {}", root.display());
    Ok(())
}
