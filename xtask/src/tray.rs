//! The tray app's steps: build its windows (ui/) before anything compiles `src-tauri`,
//! the windows' Vitest and Playwright tests, and the real app's end-to-end test under a
//! throwaway desktop (tests/tray-e2e).

use crate::{cargo, check};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::Command;

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target"))
}

fn npm(args: &[&str]) -> Result<()> {
    check(Command::new("npm").args(args).current_dir("ui"))
}

/// `npm ci` and the Vite build: `src-tauri` embeds ui/dist, so this runs before any cargo
/// step that compiles the workspace.
pub fn build_ui() -> Result<()> {
    println!("xtask: tray windows (ui/): npm ci and vite build");
    npm(&["ci", "--no-audit", "--no-fund", "--loglevel=error"])?;
    npm(&["run", "build", "--silent"])
}

/// Vitest unit tests, then Playwright (Debian's Chromium) over the built pages with the
/// Tauri IPC mocked.
pub fn ui_tests() -> Result<()> {
    println!("xtask: tray windows: Vitest unit tests");
    npm(&["run", "test:unit", "--silent"])?;
    println!("xtask: tray windows: Playwright tests in Chromium (IPC mocked)");
    check(Command::new("node").args(["--test", "--test-reporter=spec", "tests/browser/"]).current_dir("ui"))
}

/// tauri-driver, pinned; installed once per machine (the Rust test of the tray against the
/// service, `src-tauri/tests/service_client.rs`, drives the tray with it too).
pub fn ensure_tauri_driver() -> Result<()> {
    let present = Command::new("tauri-driver").arg("--help").output().is_ok_and(|o| o.status.success());
    if !present {
        println!("xtask: installing tauri-driver 2.1.0");
        check(cargo().args(["install", "tauri-driver", "--version", "2.1.0", "--locked"]))?;
    }
    Ok(())
}

fn built_tray() -> Result<PathBuf> {
    check(cargo().args(["build", "--quiet", "-p", "warden-tray"]))?;
    std::fs::canonicalize(target_dir().join("debug/warden-tray")).context("locating the built warden-tray")
}

/// The real app under Xvfb + openbox + trayer + dunst on a private session bus, driven
/// through tauri-driver; screenshots land in artifacts/tray/ (paths printed).
pub fn end_to_end() -> Result<()> {
    println!("xtask: tray app end to end (Xvfb, trayer, dunst, tauri-driver)");
    ensure_tauri_driver()?;
    let tray = built_tray()?;
    check(Command::new("tests/tray-e2e/run.sh").arg(tray))
}
