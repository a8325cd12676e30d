//! Project commands: `cargo xtask run` starts Warden, `cargo xtask test` runs every test.
//!
//! Both install what a fresh Debian machine lacks (apt packages, npm packages) first, so
//! a newcomer needs nothing but this repository, Rust and Node.

mod api_fuzz;
mod browser;
mod gateway_tools;
mod opensnitch;
mod postgres;
mod real_tools;
mod system;
mod system_files;
mod tray;

use anyhow::{Context, Result, bail};
use std::process::{Command, ExitCode};
use xtask::{cargo, check, debian_tree, is_root, package, project_root};

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
    // The server's PostgreSQL backend and the admin page's browser test.
    "postgresql",
    "chromium",
    "chromium-driver",
    // The package test: the Debian 12 tree it installs into, checking the units
    // (systemd-analyze; systemd need not run), the desktop entries, unpacking the cached tree.
    "debootstrap",
    "systemd",
    "desktop-file-utils",
    "zstd",
    // The network layer (warden-net): clang compiles its eBPF program in C (`-target bpf`),
    // libbpf-dev gives it <bpf/bpf_helpers.h>; bpftool lists and detaches programs by hand
    // (`bpftool cgroup tree`) when a test died; nftables is the fallback's tool; iptables is what
    // OpenSnitch's default configuration drives in the bench's comparison. Deliberately not
    // `opensnitch` itself: on a machine with systemd its postinst starts the daemon machine-wide
    // (`opensnitch::setup` unpacks it instead).
    "clang",
    "libbpf-dev",
    "bpftool",
    "nftables",
    "iptables",
    // A real DNS server for the network story test's names (`dnsmasq-base`: the binary alone,
    // no service that would take the machine's port 53).
    "dnsmasq-base",
];

fn main() -> ExitCode {
    match dispatch() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` gives the cause chain on one line; a backtrace of xtask itself helps nobody.
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = project_root();
    std::env::set_current_dir(&root).context("entering the project root")?;
    match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("test") => test(&args[1..]),
        Some("setup") => setup(),
        Some("package") => package::package_command(&args[1..]).map(drop),
        Some("bench-server") => postgres::bench_server(&args[1..]),
        Some("bench-pages") => browser::bench_pages(),
        Some("api-fuzz") => api_fuzz::fuzz_server(),
        _ => {
            eprintln!("usage: cargo xtask run [ARGS…]   start Warden on the embedded default policy");
            eprintln!("       cargo xtask test          install what is missing and run every test");
            eprintln!("       cargo xtask setup         only install what is missing");
            eprintln!("       cargo xtask package [--profile P] [--out DIR]");
            eprintln!("                                 .deb packages of binaries already built (paths on stdout)");
            eprintln!("       cargo xtask bench-server  the governance server benchmark (SQLite and PostgreSQL)");
            eprintln!("       cargo xtask bench-pages   the console's sign-in and approval times in Chromium");
            eprintln!("       cargo xtask api-fuzz      schemathesis against the debug server (the CI step alone)");
            bail!("unknown or missing command");
        }
    }
}

/// Installs missing Debian packages, the gateway's test tools, the real AI tools the
/// content-identity tests copy, cargo-deb, schemathesis, and the Debian 12 tree the package test
/// installs into (idempotent; each is cached).
fn setup() -> Result<()> {
    system_packages()?;
    gateway_tools::setup()?;
    opensnitch::setup()?;
    real_tools::setup()?;
    package::setup()?;
    api_fuzz::setup()?;
    debian_tree::setup()
}

/// Installs missing Debian packages (idempotent: asks dpkg first).
fn system_packages() -> Result<()> {
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
    // The tray's Rust end-to-end test (nextest) drives the real app through tauri-driver.
    tray::ensure_tauri_driver()?;
    // Every step runs even when an earlier one failed, so one run shows every failure.
    let mut steps = Steps::default();
    let system_files = system_files::Snapshot::take();
    steps.run("format", || check(cargo().args(["fmt", "--all", "--check"])));
    steps.run("lints", || {
        check(cargo().args(["clippy", "--workspace", "--all-targets", "--quiet", "--", "-D", "warnings"]))
    });
    steps.run("Rust tests (every crate, SQLite and PostgreSQL)", || {
        // The server's PostgreSQL tests need a real server; they fail (not skip) in CI without it.
        let postgres = postgres::PostgresFixture::start().context("starting the PostgreSQL test server")?;
        // Every binary, the tray's too: the package test (xtask/tests/debian_package.rs)
        // packages these very builds (nextest alone builds only what integration tests run).
        check(cargo().args(["build", "--workspace", "--bins", "--quiet"]))?;
        check(
            cargo()
                .args(["nextest", "run", "--workspace", "--no-fail-fast"])
                .env("WARDEN_TEST_POSTGRES_URL", &postgres.url),
        )
    });
    steps.run("doc tests", || check(cargo().args(["test", "--workspace", "--doc", "--quiet"])));
    steps.run("API fuzzing (schemathesis, SQLite and PostgreSQL)", api_fuzz::fuzz_server);
    steps.run("admin page in a real browser", browser::admin_page_test);
    steps.run("tray windows (Vitest, Playwright)", tray::ui_tests);
    steps.run("tray app end to end", tray::end_to_end);
    steps.run("no test wrote the machine's vendor controls", || system_files.verify_and_restore());
    steps.finish()
}

/// The outcome of each test step, reported together at the end.
#[derive(Debug, Default)]
struct Steps {
    passed: Vec<&'static str>,
    failed: Vec<(&'static str, anyhow::Error)>,
}

impl Steps {
    fn run(&mut self, name: &'static str, step: impl FnOnce() -> Result<()>) {
        println!("xtask: ── {name}");
        match step() {
            Ok(()) => self.passed.push(name),
            Err(error) => {
                eprintln!("xtask: ✗ {name}: {error:#}");
                self.failed.push((name, error));
            }
        }
    }

    fn finish(self) -> Result<()> {
        println!("xtask: steps passed: {}", self.passed.join(", "));
        if self.failed.is_empty() {
            println!("xtask: every test passed");
            return Ok(());
        }
        for (name, error) in &self.failed {
            eprintln!("xtask: step failed: {name}: {error:#}");
        }
        bail!("{} of {} test steps failed", self.failed.len(), self.failed.len() + self.passed.len())
    }
}
