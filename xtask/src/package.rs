//! `cargo xtask package`: the Debian packages `warden`, `warden-tray` and `warden-server`, made
//! by cargo-deb (pinned, installed by setup under `~/.cache/warden-tools/cargo-deb`) from
//! binaries already built — it never builds, so CI packages the very binaries its tests ran.
//!
//! What goes into each package is cargo-deb's `[package.metadata.deb]` in the crate's
//! Cargo.toml (root for `warden`, src-tauri, crates/warden-server); the unit files, maintainer
//! scripts, default configuration and desktop entries live in `packaging/`.

use crate::{cargo, check, project_root, target_dir};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// cargo-deb's version, pinned (its options and generated maintainer scripts are what the
/// tree test checks).
pub const CARGO_DEB_VERSION: &str = "3.8.0";

/// One Debian package: its name, the Cargo package whose `[package.metadata.deb]` describes
/// it, and the binaries it takes from the target directory.
#[derive(Debug)]
pub struct DebPackage {
    pub name: &'static str,
    pub cargo_package: &'static str,
    pub binaries: &'static [&'static str],
}

/// The three packages, in the order they are built and installed.
pub const PACKAGES: &[DebPackage] = &[
    DebPackage { name: "warden", cargo_package: "warden", binaries: &["wardend", "warden"] },
    DebPackage { name: "warden-server", cargo_package: "warden-server", binaries: &["warden-server"] },
    DebPackage { name: "warden-tray", cargo_package: "warden-tray", binaries: &["warden-tray"] },
];

/// Which Cargo package builds each binary (for the "build them first" message).
const BUILT_BY: &[(&str, &str)] = &[
    ("wardend", "warden-service"),
    ("warden", "warden"),
    ("warden-server", "warden-server"),
    ("warden-tray", "warden-tray"),
];

fn cache_root() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    Ok(PathBuf::from(home).join(".cache/warden-tools/cargo-deb"))
}

/// The pinned cargo-deb binary.
pub fn cargo_deb() -> Result<PathBuf> {
    Ok(cache_root()?.join("bin/cargo-deb"))
}

/// Installs cargo-deb when the pinned version is missing (idempotent).
pub fn setup() -> Result<()> {
    let binary = cargo_deb()?;
    let installed = Command::new(&binary)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(CARGO_DEB_VERSION));
    if installed {
        // stderr: stdout of `cargo xtask package` is the packages' paths alone.
        eprintln!("xtask: cargo-deb {CARGO_DEB_VERSION} present");
        return Ok(());
    }
    eprintln!("xtask: installing cargo-deb {CARGO_DEB_VERSION} into {}", cache_root()?.display());
    check(
        cargo()
            .args(["install", "--locked", "--quiet", "--version", CARGO_DEB_VERSION, "--root"])
            .arg(cache_root()?)
            .arg("cargo-deb"),
    )
}

/// The folder a Cargo profile builds into (`dev` → `debug`).
fn profile_dir(profile: &str) -> &str {
    if profile == "dev" { "debug" } else { profile }
}

/// `cargo xtask package [--profile release|dev|…] [--out DIR]`: builds the packages, prints
/// their paths one per line, and returns them.
pub fn package_command(args: &[String]) -> Result<Vec<PathBuf>> {
    let mut profile = "release".to_owned();
    let mut out = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--profile" => profile = rest.next().context("--profile needs a value")?.clone(),
            "--out" => out = Some(PathBuf::from(rest.next().context("--out needs a value")?)),
            other => bail!("cargo xtask package: unknown argument {other:?} (use --profile PROFILE, --out DIR)"),
        }
    }
    let out = out.unwrap_or_else(|| target_dir().join("debian"));
    let debs = build(&profile, &out)?;
    for deb in &debs {
        println!("{}", deb.display());
    }
    Ok(debs)
}

/// Makes the three packages from the binaries of `profile` into `out`.
pub fn build(profile: &str, out: &Path) -> Result<Vec<PathBuf>> {
    setup()?;
    let bin_dir = target_dir().join(profile_dir(profile));
    let missing: Vec<&str> = PACKAGES
        .iter()
        .flat_map(|p| p.binaries.iter().copied())
        .filter(|binary| !bin_dir.join(binary).is_file())
        .collect();
    if !missing.is_empty() {
        let packages: Vec<String> = missing
            .iter()
            .map(|b| format!("-p {}", BUILT_BY.iter().find(|(bin, _)| bin == b).map_or(*b, |(_, p)| p)))
            .collect();
        let flag = if profile == "dev" { String::new() } else { format!(" --profile {profile}") };
        bail!(
            "cargo xtask package takes binaries already built, and {} has no {}: build them first \
             (`cargo build{flag} {}`)",
            bin_dir.display(),
            missing.join(", "),
            packages.join(" ")
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut debs = Vec::new();
    for package in PACKAGES {
        let mut command = Command::new(cargo_deb()?);
        command
            .args(["--no-build", "--strip", "--quiet", "--profile", profile, "-p", package.cargo_package, "--output"])
            .arg(out)
            .current_dir(project_root());
        // The dev profile is what the tests ran (large, unoptimised binaries): lighter
        // compression keeps CI fast. cargo-deb warns about packaging it; that is deliberate.
        if profile == "dev" {
            command.arg("--fast");
        }
        let shown = format!("{command:?}");
        let output = command.output().with_context(|| format!("starting {shown}"))?;
        if !output.status.success() {
            bail!("{shown} failed with {}:\n{}", output.status, String::from_utf8_lossy(&output.stderr));
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let deb = stdout
            .lines()
            .rev()
            .map(str::trim)
            .find(|line| line.ends_with(".deb"))
            .map(PathBuf::from)
            .with_context(|| format!("{shown} printed no .deb path: {stdout}"))?;
        if !deb.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&format!("{}_", package.name))) {
            bail!("cargo-deb made {} for package {}", deb.display(), package.name);
        }
        debs.push(deb);
    }
    Ok(debs)
}
