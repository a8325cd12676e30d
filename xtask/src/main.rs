//! Project commands: `cargo xtask run` starts Warden, `cargo xtask test` runs every test.
//!
//! Both install what a fresh Debian machine lacks (apt packages, npm packages) first, so
//! a newcomer needs nothing but this repository, Rust and Node.

mod browser;
mod postgres;
mod system;
mod tray;

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian packages the build and the tests need. Installed only when missing.
const APT_PACKAGES: &[&str] = &[
    // Building the tray app (Tauri v2 on WebKitGTK).
    "build-essential",
    "pkg-config",
    "curl",
    "file",
    "libwebkit2gtk-4.1-dev",
    "libayatana-appindicator3-dev",
    "librsvg2-dev",
    "libssl-dev",
    "libxdo-dev",
    // Running the real app headlessly: display, window manager, tray host, session bus,
    // notification daemon, keyring, WebDriver.
    "webkit2gtk-driver",
    "xvfb",
    "xauth",
    "x11-utils",
    "xdotool",
    "imagemagick",
    "openbox",
    "trayer",
    "dbus",
    "dbus-x11",
    "at-spi2-core",
    "dunst",
    "libnotify-bin",
    "gnome-keyring",
    "libsecret-tools",
    // The server's PostgreSQL backend, the admin page's browser test, load generation.
    "postgresql",
    "chromium",
    "chromium-driver",
    "wrk",
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = project_root();
    std::env::set_current_dir(&root).context("entering the project root")?;
    match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("test") => test(&args[1..]),
        Some("setup") => setup(),
        Some("bench-server") => postgres::bench_server(&args[1..]),
        _ => {
            eprintln!("usage: cargo xtask run [ARGS…]   start Warden on the embedded default policy");
            eprintln!("       cargo xtask test          install what is missing and run every test");
            eprintln!("       cargo xtask setup         only install what is missing");
            bail!("unknown or missing command");
        }
    }
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives one level below the root").to_path_buf()
}

/// Installs missing Debian packages (idempotent: asks dpkg first).
fn setup() -> Result<()> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|package| {
            let out = Command::new("dpkg-query").args(["-W", "-f=${Status}", package]).output();
            !matches!(out, Ok(o) if String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        println!("xtask: all {} system packages present", APT_PACKAGES.len());
        return Ok(());
    }
    println!("xtask: installing {} missing system packages: {}", missing.len(), missing.join(" "));
    let sudo: &[&str] = if is_root() { &[] } else { &["sudo"] };
    let status = |args: &[&str]| -> Result<()> {
        let mut command = Command::new(sudo.first().copied().unwrap_or(args[0]));
        let rest = if sudo.is_empty() { &args[1..] } else { args };
        command.args(rest).env("DEBIAN_FRONTEND", "noninteractive");
        check(&mut command)
    };
    status(&["apt-get", "update", "-qq"])?;
    let mut install = vec!["apt-get", "install", "-y", "-qq", "--no-install-recommends"];
    install.extend(&missing);
    status(&install)
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// Runs a command, failing loudly with its name when it fails.
fn check(command: &mut Command) -> Result<()> {
    let shown = format!("{command:?}");
    let status = command.status().with_context(|| format!("starting {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(args: &[String]) -> Result<()> {
    setup()?;
    // With a display, `run` starts the tray app, which embeds the built windows.
    if args.is_empty() && std::env::var_os("DISPLAY").is_some_and(|d| !d.is_empty()) {
        tray::build_ui()?;
    }
    if !args.is_empty() {
        // `cargo xtask run ARGS…` runs the CLI with those arguments.
        let mut command = cargo();
        command.args(["run", "--quiet", "--bin", "warden", "--"]).args(args);
        return check(&mut command);
    }
    system::run()
}

fn test(_args: &[String]) -> Result<()> {
    setup()?;
    // src-tauri embeds the built windows, so they are built before anything compiles it.
    tray::build_ui()?;
    println!("xtask: checking format and lints");
    check(cargo().args(["fmt", "--all", "--check"]))?;
    check(cargo().args(["clippy", "--workspace", "--all-targets", "--quiet", "--", "-D", "warnings"]))?;
    println!("xtask: Rust tests (every crate)");
    // The server's PostgreSQL tests need a real server; its tests fail (not skip) in CI without it.
    let postgres = postgres::PostgresFixture::start().context("starting the PostgreSQL test server")?;
    check(
        cargo()
            .args(["nextest", "run", "--workspace", "--no-fail-fast"])
            .env("WARDEN_TEST_POSTGRES_URL", &postgres.url),
    )?;
    drop(postgres);
    check(cargo().args(["test", "--workspace", "--doc", "--quiet"]))?;
    browser::admin_page_test()?;
    tray::ui_tests()?;
    tray::end_to_end()?;
    println!("xtask: every test passed");
    Ok(())
}
