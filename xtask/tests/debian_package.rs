//! The package test: `cargo xtask package` makes the three `.deb`s from the binaries this test
//! run built (dev profile), they are installed with the tree's own `dpkg` into a fresh Debian 12
//! tree (debootstrap, cached by `cargo xtask setup`; unpacked here, no download), and the test
//! checks what a first real install would meet: every installed path's owner and mode, the
//! maintainer scripts' work without systemd as PID 1 (state directories 0700, the server's
//! system user, the units enabled, nothing started), the binaries' libraries, the desktop
//! entries, `systemd-analyze verify` and `security` on the installed units — and each unit's
//! `ExecStart` run under `setpriv` with the capability bounding set parsed from the installed
//! unit and no-new-privileges: `wardend` must arm its process connector and its pre-exec gate
//! (on a tmpfs this test mounts), answer `warden status --json` on its socket and deny a stand-in
//! tool launched on the gated tmpfs; the server must listen as its own user with no
//! capabilities. A capability missing from a unit fails here, not at the first real install.
//!
//! Runs in the `process-monitor` nextest group (it starts an enforcing service); its policy
//! blocks only a tool made up per run, everything started is killed by pid, the tmpfs unmounted
//! and the scratch tree removed, also on failure.
#![cfg(target_os = "linux")]

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};
use xtask::debian_tree::{self, SUITE};
use xtask::package::PACKAGES;

const NOBODY: u32 = 65534;

/// What an installed path must look like.
#[derive(Debug)]
struct Expect {
    path: &'static str,
    /// File type and permission bits, as `st_mode`.
    mode: u32,
    owner: &'static str,
    group: &'static str,
}

const FILE: u32 = 0o100000;
const DIR: u32 = 0o040000;

const fn root_file(path: &'static str, bits: u32) -> Expect {
    Expect { path, mode: FILE | bits, owner: "root", group: "root" }
}

/// Every file the packages install. A packaged file not listed here fails the test; a
/// packaged folder must be 0755 root:root.
const EXPECTED: &[Expect] = &[
    root_file("/usr/sbin/wardend", 0o755),
    root_file("/usr/bin/warden", 0o755),
    root_file("/usr/bin/warden-server", 0o755),
    root_file("/usr/bin/warden-tray", 0o755),
    root_file("/usr/lib/systemd/system/warden.service", 0o644),
    root_file("/usr/lib/systemd/system/warden-server.service", 0o644),
    root_file("/etc/warden/warden.toml", 0o644),
    // May carry a database password.
    root_file("/etc/default/warden-server", 0o600),
    root_file("/etc/xdg/autostart/warden-tray.desktop", 0o644),
    root_file("/usr/share/applications/warden-tray.desktop", 0o644),
    root_file("/usr/share/icons/hicolor/64x64/apps/warden.png", 0o644),
    root_file("/usr/share/doc/warden/copyright", 0o644),
    root_file("/usr/share/doc/warden-server/copyright", 0o644),
    root_file("/usr/share/doc/warden-tray/copyright", 0o644),
];

/// Made by the postinsts, not listed by dpkg.
const CREATED: &[Expect] = &[
    Expect { path: "/var/lib/warden", mode: DIR | 0o700, owner: "root", group: "root" },
    Expect { path: "/var/lib/warden-server", mode: DIR | 0o700, owner: "warden-server", group: "warden-server" },
    // The folders of the vendors' managed files wardend writes (its unit's ReadWritePaths).
    Expect { path: "/etc/claude-code", mode: DIR | 0o755, owner: "root", group: "root" },
    Expect { path: "/etc/codex", mode: DIR | 0o755, owner: "root", group: "root" },
    Expect { path: "/etc/gemini-cli", mode: DIR | 0o755, owner: "root", group: "root" },
    Expect { path: "/etc/qwen-code", mode: DIR | 0o755, owner: "root", group: "root" },
    Expect { path: "/etc/vscode", mode: DIR | 0o755, owner: "root", group: "root" },
    Expect { path: "/etc/chromium/policies", mode: DIR | 0o755, owner: "root", group: "root" },
    Expect { path: "/etc/opt/chrome/policies", mode: DIR | 0o755, owner: "root", group: "root" },
    Expect { path: "/etc/opt/edge/policies", mode: DIR | 0o755, owner: "root", group: "root" },
];

/// Conffiles dpkg must keep across upgrades (an admin's edits survive).
const CONFFILES: &[&str] =
    &["/etc/warden/warden.toml", "/etc/default/warden-server", "/etc/xdg/autostart/warden-tray.desktop"];

/// The units and where `deb-systemd-helper enable` links them.
const UNITS: &[(&str, &str)] = &[
    ("warden.service", "/etc/systemd/system/multi-user.target.wants/warden.service"),
    ("warden-server.service", "/etc/systemd/system/multi-user.target.wants/warden-server.service"),
];

fn running_as_root() -> bool {
    xtask::is_root()
}

#[test]
fn the_packages_install_into_a_fresh_debian_tree_and_their_units_start_under_their_own_capabilities() {
    if !running_as_root() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "the package test must run as root in CI");
        println!("SKIPPED: installing into a Debian tree (chroot, dpkg, setpriv as root) needs root; CI runs as root");
        return;
    }
    if let Err(error) = package_test() {
        panic!("{error:#}");
    }
}

fn package_test() -> Result<()> {
    let started = Instant::now();
    let tarball = debian_tree::tarball()?;
    ensure!(
        tarball.is_file(),
        "the cached Debian {SUITE} tree {} is missing: run `cargo xtask setup` (it makes it once)",
        tarball.display()
    );
    let scratch = Scratch::new()?;
    let debs = package(&scratch.0.join("debs"))?;
    let tree = scratch.0.join("tree");
    std::fs::create_dir(&tree)?;
    std::fs::set_permissions(&tree, std::fs::Permissions::from_mode(0o755))?;
    run_ok(Command::new("tar").args(["--numeric-owner", "-I", "zstd -T0", "-xpf"]).arg(&tarball).arg("-C").arg(&tree))?;
    println!("package test: Debian {SUITE} tree unpacked ({:.1} s)", started.elapsed().as_secs_f64());

    install(&tree, &debs)?;
    let accounts = Accounts::read(&tree)?;
    check_paths(&tree, &accounts)?;
    check_server_user(&accounts)?;
    check_libraries(&tree)?;
    check_desktop_entries(&tree)?;
    let scores = check_units(&tree)?;
    check_capability_probes(&tree, &scratch.0)?;
    check_server_start(&tree, &scratch.0, &accounts)?;
    check_wardend(&tree, &scratch)?;
    for (unit, score) in &scores {
        println!("package test: systemd-analyze security {unit}: overall exposure {score}");
    }
    println!("package test: passed in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// A scratch folder under /tmp (world-searchable: the server runs from it as its own user),
/// removed on drop after unmounting anything below it.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("warden-deb-test-{}", std::process::id()));
        debian_tree::remove_tree(&dir)?;
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(error) = debian_tree::remove_tree(&self.0) {
            eprintln!("package test: warning: {error:#}");
        }
    }
}

/// A started process, killed by pid when the check ends (also early).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn said(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn run_ok(command: &mut Command) -> Result<Output> {
    let shown = format!("{command:?}");
    let output = command.stdin(Stdio::null()).output().with_context(|| format!("starting {shown}"))?;
    ensure!(output.status.success(), "{shown} failed ({}):\n{}", output.status, said(&output));
    Ok(output)
}

/// `cargo xtask package --profile dev --out DIR`, the real command: it must print exactly one
/// path per package, each an existing `.deb` of that package.
fn package(out: &Path) -> Result<Vec<PathBuf>> {
    let xtask = Path::new(env!("CARGO_BIN_EXE_xtask"));
    // The target folder this test was built in (…/debug/xtask), whatever the environment says.
    let target = xtask.parent().and_then(Path::parent).context("the xtask binary's target folder")?;
    let output = run_ok(
        Command::new(xtask)
            .args(["package", "--profile", "dev", "--out"])
            .arg(out)
            .env("CARGO_TARGET_DIR", target)
            .env_remove("CARGO_BUILD_TARGET_DIR"),
    )?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let debs: Vec<PathBuf> = stdout.lines().map(PathBuf::from).collect();
    ensure!(
        debs.len() == PACKAGES.len(),
        "cargo xtask package printed {} lines, not one per package:\n{stdout}",
        debs.len()
    );
    for (deb, package) in debs.iter().zip(PACKAGES) {
        let name = deb.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        ensure!(
            deb.is_file() && name.starts_with(&format!("{}_", package.name)) && name.ends_with(".deb"),
            "cargo xtask package printed {} for {}",
            deb.display(),
            package.name
        );
        println!("package test: {} ({:.1} MB)", deb.display(), std::fs::metadata(deb)?.len() as f64 / 1e6);
    }
    Ok(debs)
}

/// Runs a command inside the tree with a plain environment; returns the output.
fn in_tree(tree: &Path, args: &[&str]) -> Result<Output> {
    run_ok(
        Command::new("chroot")
            .arg(tree)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LANG", "C.UTF-8"),
    )
}

fn in_tree_stdout(tree: &Path, args: &[&str]) -> Result<String> {
    Ok(String::from_utf8_lossy(&in_tree(tree, args)?.stdout).into_owned())
}

/// `dpkg -i` of all three with the tree's dpkg and maintainer scripts, as on a fresh machine
/// where systemd is not PID 1: every postinst must finish cleanly (no warning, no error) and
/// leave the units enabled but nothing started.
fn install(tree: &Path, debs: &[PathBuf]) -> Result<()> {
    let inbox = tree.join("tmp/warden-debs");
    std::fs::create_dir_all(&inbox)?;
    let mut args = vec!["dpkg".to_owned(), "-i".to_owned()];
    for deb in debs {
        let name = deb.file_name().context("a .deb's name")?;
        std::fs::copy(deb, inbox.join(name))?;
        args.push(format!("/tmp/warden-debs/{}", name.to_string_lossy()));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = in_tree(tree, &args)?;
    // The only thing a clean install says on stderr: systemctl's note of each enablement.
    let stderr = String::from_utf8_lossy(&output.stderr);
    let complaints: Vec<&str> = stderr.lines().filter(|l| !l.starts_with("Created symlink ")).collect();
    ensure!(complaints.is_empty(), "dpkg -i: a maintainer script complained:\n{}", said(&output));
    let status = in_tree_stdout(
        tree,
        &["dpkg-query", "-W", "-f=${Package} ${Status}\\n", "warden", "warden-server", "warden-tray"],
    )?;
    for package in PACKAGES {
        ensure!(
            status.lines().any(|l| l == format!("{} install ok installed", package.name)),
            "{} is not fully installed (its postinst failed?): {status}",
            package.name
        );
    }
    // deb-systemd-invoke starts nothing without systemd: no process of ours runs from the tree.
    let ours = std::fs::read_dir("/proc")?
        .filter_map(|e| std::fs::read_link(e.ok()?.path().join("exe")).ok())
        .filter(|exe| exe.starts_with(tree))
        .count();
    ensure!(ours == 0, "{ours} processes run from the tree after dpkg -i: a postinst started a service");
    std::fs::remove_dir_all(&inbox)?;
    println!(
        "package test: dpkg -i in the tree: {} installed, postinsts clean",
        PACKAGES.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

/// The tree's users and groups.
#[derive(Debug)]
struct Accounts {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
    /// name → (uid, gid, shell)
    by_name: HashMap<String, (u32, u32, String)>,
}

impl Accounts {
    fn read(tree: &Path) -> Result<Accounts> {
        let passwd = std::fs::read_to_string(tree.join("etc/passwd"))?;
        let group = std::fs::read_to_string(tree.join("etc/group"))?;
        let mut accounts = Accounts { users: HashMap::new(), groups: HashMap::new(), by_name: HashMap::new() };
        for line in passwd.lines() {
            if let [name, _, uid, gid, _, _, shell] = line.split(':').collect::<Vec<_>>()[..] {
                let (uid, gid) = (uid.parse()?, gid.parse()?);
                accounts.users.insert(uid, name.to_owned());
                accounts.by_name.insert(name.to_owned(), (uid, gid, shell.to_owned()));
            }
        }
        for line in group.lines() {
            if let [name, _, gid, ..] = line.split(':').collect::<Vec<_>>()[..] {
                accounts.groups.insert(gid.parse()?, name.to_owned());
            }
        }
        Ok(accounts)
    }

    fn user(&self, uid: u32) -> String {
        self.users.get(&uid).cloned().unwrap_or_else(|| uid.to_string())
    }

    fn group(&self, gid: u32) -> String {
        self.groups.get(&gid).cloned().unwrap_or_else(|| gid.to_string())
    }
}

/// Owner and mode of every path the packages installed and of what the postinsts made;
/// conffiles; the units enabled.
fn check_paths(tree: &Path, accounts: &Accounts) -> Result<()> {
    let mut problems = Vec::new();
    let mut files = 0;
    let mut check_one = |path: &str, expect: Option<&Expect>| -> Result<()> {
        let meta = std::fs::symlink_metadata(tree.join(path.trim_start_matches('/')))
            .with_context(|| format!("{path} is missing from the tree"))?;
        let (owner, group) = (accounts.user(meta.uid()), accounts.group(meta.gid()));
        let (mode, want_owner, want_group) = match expect {
            Some(e) => (e.mode, e.owner, e.group),
            None if meta.is_dir() => (DIR | 0o755, "root", "root"),
            None => {
                problems.push(format!("{path}: installed but not in EXPECTED (xtask/tests/debian_package.rs)"));
                return Ok(());
            }
        };
        if meta.mode() != mode || owner != want_owner || group != want_group {
            problems.push(format!(
                "{path}: {:o} {owner}:{group}, expected {mode:o} {want_owner}:{want_group}",
                meta.mode()
            ));
        }
        files += usize::from(!meta.is_dir());
        Ok(())
    };
    for package in PACKAGES {
        for path in in_tree_stdout(tree, &["dpkg", "-L", package.name])?.lines().filter(|l| *l != "/.") {
            check_one(path, EXPECTED.iter().find(|e| e.path == path))?;
        }
    }
    for expect in CREATED {
        check_one(expect.path, Some(expect))?;
    }
    for expect in EXPECTED {
        if !tree.join(expect.path.trim_start_matches('/')).exists() {
            problems.push(format!("{}: expected but not installed", expect.path));
        }
    }
    let conffiles =
        in_tree_stdout(tree, &["dpkg-query", "-W", "-f=${Conffiles}\\n", "warden", "warden-server", "warden-tray"])?;
    for conffile in CONFFILES {
        if !conffiles.lines().any(|l| l.split_whitespace().next() == Some(conffile)) {
            problems.push(format!("{conffile}: not a conffile (an upgrade would overwrite an admin's edits)"));
        }
    }
    for (unit, link) in UNITS {
        match std::fs::read_link(tree.join(link.trim_start_matches('/'))) {
            Ok(target)
                if target.file_name().is_some_and(|n| n == *unit)
                    && tree.join(target.strip_prefix("/").unwrap_or(&target)).is_file() => {}
            Ok(target) => problems.push(format!("{link} points to {}, not the installed {unit}", target.display())),
            Err(e) => problems.push(format!("{unit} is not enabled ({link}: {e})")),
        }
    }
    ensure!(problems.is_empty(), "installed paths:\n  {}", problems.join("\n  "));
    println!(
        "package test: owners and modes of {files} installed files, their folders and {} made by postinst as expected; conffiles kept; units enabled",
        CREATED.len()
    );
    Ok(())
}

fn check_server_user(accounts: &Accounts) -> Result<()> {
    let (uid, gid, shell) =
        accounts.by_name.get("warden-server").context("postinst made no warden-server user")?.clone();
    ensure!(uid < 1000 && gid < 1000, "warden-server is not a system user (uid {uid}, gid {gid})");
    ensure!(shell == "/usr/sbin/nologin", "warden-server has a login shell: {shell}");
    println!("package test: system user warden-server (uid {uid}), no login shell");
    Ok(())
}

/// Every binary finds every library it links inside the tree: the Depends are complete.
fn check_libraries(tree: &Path) -> Result<()> {
    for binary in ["/usr/sbin/wardend", "/usr/bin/warden", "/usr/bin/warden-server", "/usr/bin/warden-tray"] {
        let ldd = in_tree_stdout(tree, &["ldd", binary])?;
        let missing: Vec<&str> = ldd.lines().filter(|l| l.contains("not found")).collect();
        ensure!(
            missing.is_empty(),
            "{binary} lacks libraries in the tree (Depends incomplete):\n{}",
            missing.join("\n")
        );
    }
    println!("package test: every binary's libraries resolve in the tree");
    Ok(())
}

fn check_desktop_entries(tree: &Path) -> Result<()> {
    for entry in ["usr/share/applications/warden-tray.desktop", "etc/xdg/autostart/warden-tray.desktop"] {
        let output = Command::new("desktop-file-validate")
            .arg(tree.join(entry))
            .output()
            .context("running desktop-file-validate")?;
        ensure!(
            output.status.success() && !said(&output).contains("error:"),
            "/{entry} is not a valid desktop entry:\n{}",
            said(&output)
        );
        let text = std::fs::read_to_string(tree.join(entry))?;
        let exec = text.lines().find_map(|l| l.strip_prefix("Exec=")).context("no Exec=")?;
        ensure!(tree.join(exec.trim_start_matches('/')).is_file(), "/{entry}: Exec={exec} is not installed");
    }
    println!("package test: desktop entries valid, their Exec installed");
    Ok(())
}

/// The installed unit file's path in the tree.
fn unit_path(tree: &Path, unit: &str) -> PathBuf {
    tree.join("usr/lib/systemd/system").join(unit)
}

/// `systemd-analyze verify` on each installed unit (against the tree: the binaries its
/// ExecStart names must be there), then `systemd-analyze security --offline` for its score.
fn check_units(tree: &Path) -> Result<Vec<(String, String)>> {
    let mut scores = Vec::new();
    for (unit, _) in UNITS {
        let path = unit_path(tree, unit);
        let output = Command::new("systemd-analyze")
            .arg("verify")
            .arg(format!("--root={}", tree.display()))
            .arg(&path)
            .output()
            .context("running systemd-analyze verify")?;
        // Only what concerns our unit: verify also loads the tree's other units.
        let text = said(&output);
        let ours: Vec<&str> = text.lines().filter(|l| l.contains(unit)).collect();
        ensure!(output.status.success() && ours.is_empty(), "systemd-analyze verify {unit}:\n{text}");
        let output = Command::new("systemd-analyze")
            .args(["security", "--no-pager", "--offline=true"])
            .arg(format!("--root={}", tree.display()))
            .arg(&path)
            .output()
            .context("running systemd-analyze security")?;
        let text = said(&output);
        let score = text
            .lines()
            .find_map(|l| l.split_once("Overall exposure level for ").map(|(_, rest)| rest))
            .and_then(|rest| rest.split_once(": ").map(|(_, s)| s.trim().to_owned()))
            .with_context(|| format!("systemd-analyze security {unit} gave no score:\n{text}"))?;
        scores.push(((*unit).to_owned(), score));
    }
    println!(
        "package test: systemd-analyze verify passes on {}",
        UNITS.iter().map(|(u, _)| *u).collect::<Vec<_>>().join(", ")
    );
    Ok(scores)
}

/// The directives of `[Service]` a start under setpriv needs, read from the installed unit.
#[derive(Debug)]
struct ServiceSection {
    exec_start: Vec<String>,
    /// Capability names as setpriv spells them (`sys_admin`).
    capabilities: Vec<String>,
    user: Option<String>,
}

fn read_unit(tree: &Path, unit: &str) -> Result<ServiceSection> {
    let text = std::fs::read_to_string(unit_path(tree, unit))?;
    let (mut exec_start, mut bounding_set, mut no_new_privileges, mut user) = (Vec::new(), None, false, None);
    for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
        let Some((key, value)) = line.split_once('=') else { continue };
        match key {
            "ExecStart" => exec_start = value.split_whitespace().map(str::to_owned).collect(),
            "CapabilityBoundingSet" => {
                bounding_set = Some(
                    value
                        .split_whitespace()
                        .map(|c| {
                            c.strip_prefix("CAP_")
                                .map(str::to_lowercase)
                                .with_context(|| format!("{unit}: capability {c}"))
                        })
                        .collect::<Result<Vec<_>>>()?,
                )
            }
            "NoNewPrivileges" => no_new_privileges = value == "yes",
            "User" => user = Some(value.to_owned()),
            _ => {}
        }
    }
    let capabilities = bounding_set.with_context(|| format!("{unit} sets no CapabilityBoundingSet"))?;
    ensure!(!exec_start.is_empty(), "{unit} has no ExecStart");
    ensure!(no_new_privileges, "{unit} lacks NoNewPrivileges=yes");
    Ok(ServiceSection { exec_start, capabilities, user })
}

/// `setpriv` as systemd applies the unit: this bounding set (root's permitted and effective
/// sets become exactly it at exec), no inheritable or ambient capabilities, no-new-privileges.
fn setpriv(capabilities: &[String]) -> Command {
    let mut command = Command::new("setpriv");
    let set = std::iter::once("-all".to_owned())
        .chain(capabilities.iter().map(|c| format!("+{c}")))
        .collect::<Vec<_>>()
        .join(",");
    command.arg(format!("--bounding-set={set}")).args(["--inh-caps=-all", "--ambient-caps=-all", "--no-new-privs"]);
    command
}

/// The unit's ExecStart with its program taken from the tree.
fn exec_start_in_tree(tree: &Path, unit: &ServiceSection) -> Vec<String> {
    let mut argv = unit.exec_start.clone();
    argv[0] = tree.join(argv[0].trim_start_matches('/')).display().to_string();
    argv
}

/// What wardend does that its start below does not show, each probed with warden.service's
/// bounding set (must work) and without the one capability it needs (must fail: the probe is
/// not a no-op): reading and signalling another user's execute-only program in their private
/// folder (the hard case of the issue), and forcing the process connector's receive buffer past
/// `rmem_max` (`SO_RCVBUFFORCE`, so an exec burst is not lost to ENOBUFS; on kernels before 6.6,
/// Debian 12's 6.1 among them, joining the connector needs CAP_NET_ADMIN too — newer kernels, as
/// on the test machine, let anyone join, so the start cannot show it).
fn check_capability_probes(tree: &Path, scratch: &Path) -> Result<()> {
    let unit = read_unit(tree, "warden.service")?;
    let folder = scratch.join("someone-else");
    std::fs::create_dir(&folder)?;
    let tool = folder.join("ai-tool");
    std::fs::copy("/usr/bin/sleep", &tool)?;
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o111))?;
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o700))?;
    run_ok(Command::new("chown").args(["-R", &format!("{NOBODY}:{NOBODY}")]).arg(&folder))?;
    let target = Running(
        Command::new("setpriv")
            .args([format!("--reuid={NOBODY}"), format!("--regid={NOBODY}"), "--clear-groups".into()])
            .arg(&tool)
            .arg("300")
            .spawn()
            .context("starting the other user's program")?,
    );
    let pid = target.0.id().to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_link(format!("/proc/{pid}/exe")).map(|p| p != tool).unwrap_or(true) {
        ensure!(Instant::now() < deadline, "the other user's program did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let tool_text = tool.display().to_string();
    let force = scratch.join("rcvbuf-force");
    let source = scratch.join("rcvbuf-force.c");
    std::fs::write(
        &source,
        "#include <sys/socket.h>\n#include <linux/netlink.h>\n\
         int main(void) { int s = socket(AF_NETLINK, SOCK_DGRAM, NETLINK_CONNECTOR); int n = 4 << 20;\n\
         return s < 0 || setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &n, sizeof n) != 0; }\n",
    )?;
    run_ok(Command::new("cc").arg("-o").arg(&force).arg(&source))?;
    type Works<'a> = dyn Fn(&[u8]) -> bool + 'a;
    let probes: [(&str, &str, Vec<String>, &Works<'_>); 4] = [
        (
            "sys_ptrace",
            "read another user's /proc/PID/exe",
            vec!["readlink".into(), format!("/proc/{pid}/exe")],
            &|out| String::from_utf8_lossy(out).trim() == tool_text,
        ),
        (
            "dac_read_search",
            "read an execute-only program in another user's 0700 folder",
            vec!["head".into(), "-c4".into(), tool_text.clone()],
            &|out| out == b"\x7fELF",
        ),
        // Signal 0: the permission check alone (SIGCONT would pass within the same session).
        ("kill", "signal another user's process", vec!["kill".into(), "-0".into(), pid.clone()], &|_| true),
        (
            "net_admin",
            "give the process connector's socket a receive buffer past rmem_max",
            vec![force.display().to_string()],
            &|_| true,
        ),
    ];
    for (capability, what, argv, works) in &probes {
        ensure!(
            unit.capabilities.iter().any(|c| c == capability),
            "warden.service's CapabilityBoundingSet lacks CAP_{} (to {what})",
            capability.to_uppercase()
        );
        let with = setpriv(&unit.capabilities).args(argv).output()?;
        ensure!(
            with.status.success() && works(&with.stdout),
            "with warden.service's capabilities, wardend could not {what}: {}",
            said(&with)
        );
        let fewer: Vec<String> = unit.capabilities.iter().filter(|c| c != capability).cloned().collect();
        let without = setpriv(&fewer).args(argv).output()?;
        ensure!(
            !(without.status.success() && works(&without.stdout)),
            "the probe '{what}' also works without CAP_{}: it proves nothing",
            capability.to_uppercase()
        );
    }
    drop(target);
    println!(
        "package test: with warden.service's capabilities (and only with the one each needs) root can {}",
        probes.map(|p| p.1).join(", ")
    );
    Ok(())
}

/// Starts a process and collects its output lines.
fn spawn_lines(mut command: Command) -> Result<(Running, Receiver<String>)> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the service")?;
    let (sender, lines) = std::sync::mpsc::channel();
    let streams: [Option<Box<dyn Read + Send>>; 2] =
        [child.stdout.take().map(|s| Box::new(s) as _), child.stderr.take().map(|s| Box::new(s) as _)];
    for stream in streams.into_iter().flatten() {
        let sender = sender.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
    }
    Ok((Running(child), lines))
}

/// Waits for a line that `wanted` accepts; returns it, or fails with everything said.
fn wait_for_line(lines: &Receiver<String>, within: Duration, wanted: impl Fn(&str) -> bool) -> Result<String> {
    let deadline = Instant::now() + within;
    let mut heard = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) if wanted(&line) => return Ok(line),
            Ok(line) => heard.push(line),
            Err(RecvTimeoutError::Timeout) => break,
            Err(RecvTimeoutError::Disconnected) => bail!("it exited; it said:\n{}", heard.join("\n")),
        }
    }
    bail!("nothing within {within:?}; it said:\n{}", heard.join("\n"))
}

/// The server as its unit starts it: the tree's binary as the unit's user, the unit's (empty)
/// bounding set, no-new-privileges, its own data directory 0700; it must listen.
fn check_server_start(tree: &Path, scratch: &Path, accounts: &Accounts) -> Result<()> {
    let unit = read_unit(tree, "warden-server.service")?;
    let user = unit.user.as_deref().context("warden-server.service sets no User=")?;
    let (uid, gid, _) = accounts.by_name.get(user).with_context(|| format!("the tree has no user {user}"))?.clone();
    let data = scratch.join("server-data");
    std::fs::create_dir(&data)?;
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))?;
    std::os::unix::fs::chown(&data, Some(uid), Some(gid))?;
    let mut argv = exec_start_in_tree(tree, &unit);
    let at = argv.iter().position(|a| a == "--data-dir").context("ExecStart has no --data-dir")?;
    argv[at + 1] = data.display().to_string();
    argv.extend(["--listen".into(), "127.0.0.1:0".into()]);
    let mut command = setpriv(&unit.capabilities);
    command.args([format!("--reuid={uid}"), format!("--regid={gid}"), "--clear-groups".into()]).args(&argv).env_clear();
    let (server, lines) = spawn_lines(command)?;
    let line = wait_for_line(&lines, Duration::from_secs(20), |l| l.starts_with("Listening on "))
        .context("warden-server under setpriv with its unit's capabilities (none) did not listen")?;
    let address = line.trim_start_matches("Listening on ").trim().trim_start_matches("http://").to_owned();
    std::net::TcpStream::connect(&address).with_context(|| format!("connecting to the server at {address}"))?;
    let data_mode = std::fs::metadata(&data)?.mode() & 0o777;
    ensure!(data_mode == 0o700, "the server changed its data directory to {data_mode:o}");
    drop(server);
    println!(
        "package test: warden-server starts as {user} with no capabilities and no-new-privileges, listens on {address}"
    );
    Ok(())
}

/// A tmpfs the test mounts for the gate, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: PathBuf) -> Result<Tmpfs> {
        std::fs::create_dir_all(&at)?;
        run_ok(Command::new("mount").args(["-t", "tmpfs", "-o", "size=16m,mode=0755", "warden-deb-test"]).arg(&at))?;
        Ok(Tmpfs(at))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if !Command::new("umount").arg(&self.0).status().is_ok_and(|s| s.success()) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// wardend as warden.service starts it: the tree's binary, the ExecStart's own arguments with
/// the installed configuration (plus a test policy), a scratch state dir and socket, the gate on
/// a tmpfs of the test, under setpriv with the unit's bounding set. It must enforce with the
/// process connector and the gate (no fallback), answer `warden status --json` on its socket
/// (root and an ordinary user), deny an execute-only stand-in of the test's blocked tool run by
/// that user from the gated tmpfs while an allowed program there runs, and stop cleanly on
/// SIGTERM. Started again without CAP_SYS_ADMIN, it must lose the gate.
fn check_wardend(tree: &Path, scratch: &Scratch) -> Result<()> {
    let unit = read_unit(tree, "warden.service")?;
    let dir = &scratch.0;
    let gated = Tmpfs::mount(dir.join("gated"))?;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.subsec_nanos();
    let tool = "deb-test-tool";
    let marker = format!("warden-deb-test-tool-{}-{nanos}", std::process::id());
    // The policy blocks only this made-up tool: nothing else on the machine is judged blocked.
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "name = \"package test\"\nmode = \"enforce\"\ndefault_action = \"allow\"\n\
             [tools.{tool}]\naction = \"block\"\nmessage = \"blocked by the package test\"\n\
             [[catalog]]\nid = \"{tool}\"\nname = \"Package test tool\"\nvendor = \"Warden tests\"\nkind = \"cli\"\n\
             fingerprints = [[\"{marker}\"]]\n"
        ),
    )?;
    // The installed default configuration (a check that it parses), then the test's policy.
    let config = dir.join("warden.toml");
    let installed = std::fs::read_to_string(tree.join("etc/warden/warden.toml"))?;
    std::fs::write(&config, format!("{installed}\n[policy]\nfile = {:?}\n", policy.display().to_string()))?;
    let stand_in = gated.0.join("notes");
    let source = xtask::project_root().join("crates/warden-monitor/tests/data/stand_in.c");
    run_ok(
        Command::new("cc").arg("-O1").arg(format!("-DFINGERPRINT=\"{marker}\"")).arg("-o").arg(&stand_in).arg(&source),
    )?;
    // Execute-only and the user's own: only the service's capabilities can read it.
    std::os::unix::fs::chown(&stand_in, Some(NOBODY), Some(NOBODY))?;
    std::fs::set_permissions(&stand_in, std::fs::Permissions::from_mode(0o111))?;
    let allowed = gated.0.join("true");
    std::fs::copy("/usr/bin/true", &allowed)?;

    let state = dir.join("wardend-state");
    let socket = dir.join("wardend-run/warden.sock");
    let start = |capabilities: &[String]| -> Result<(Running, Receiver<String>)> {
        let mut argv = exec_start_in_tree(tree, &unit);
        let at = argv.iter().position(|a| a == "--config").context("warden.service's ExecStart has no --config")?;
        argv[at + 1] = config.display().to_string();
        let mut command = setpriv(capabilities);
        command
            .args(&argv)
            .arg("--state-dir")
            .arg(&state)
            .arg("--socket")
            .arg(&socket)
            .arg("--gate-mount")
            .arg(&gated.0)
            // Never the machine's cgroup v2 root in a test (crates/warden-service/tests/network.rs
            // tests the network layer on a cgroup of its own).
            .arg("--no-network")
            // The vendor files go into the scratch tree, never the machine's /etc.
            .arg("--root")
            .arg(dir.join("root"))
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        spawn_lines(command)
    };
    let started = |lines: &Receiver<String>, how: &str| {
        wait_for_line(lines, Duration::from_secs(30), |l| l.starts_with("wardend: enforcing with"))
            .with_context(|| format!("wardend {how} did not say how it enforces"))
    };

    let (service, lines) = start(&unit.capabilities)?;
    // "wardend: enforcing with SOURCE[ (FALLBACK)]; gate: MARKS; local API on SOCKET"
    let line = started(&lines, "under setpriv with warden.service's capabilities")?;
    let (how, rest) = line
        .trim_start_matches("wardend: enforcing with ")
        .split_once("; gate: ")
        .context("an unexpected start line")?;
    ensure!(!how.contains('('), "wardend fell back with warden.service's capabilities (one is missing?): {line}");
    ensure!(how.contains("connector"), "wardend does not use the process connector: {line}");
    ensure!(
        rest.contains(&gated.0.display().to_string()),
        "wardend armed no pre-exec gate on the test's tmpfs with warden.service's capabilities: {line}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        ensure!(Instant::now() < deadline, "wardend did not open its socket {}", socket.display());
        std::thread::sleep(Duration::from_millis(50));
    }
    let state_mode = std::fs::metadata(&state)?.mode() & 0o777;
    ensure!(state_mode == 0o700, "wardend's state directory is {state_mode:o}, not 700");

    // The CLI from the tree answers through the socket, for root and for an ordinary user.
    let warden = tree.join("usr/bin/warden");
    for uid in [0, NOBODY] {
        let output = run_ok(
            Command::new("setpriv")
                .args([format!("--reuid={uid}"), format!("--regid={uid}"), "--clear-groups".into()])
                .arg(&warden)
                .arg("--socket")
                .arg(&socket)
                .args(["status", "--json"])
                .env_clear(),
        )?;
        let status: Value = serde_json::from_slice(&output.stdout).with_context(|| said(&output))?;
        ensure!(
            status["service"]["mode"] == "service" && status["you"]["uid"] == uid,
            "warden status --json as uid {uid}: {status}"
        );
        ensure!(
            status["monitor"]["gate"]
                .as_array()
                .is_some_and(|g| g.iter().any(|m| m == gated.0.to_str().unwrap_or_default())),
            "warden status says the tmpfs is not gated: {status}"
        );
    }

    // The user's launches from the gated tmpfs: the allowed program runs, the blocked one is
    // denied before its first instruction (its main() never writes the marker file).
    let as_nobody = |program: &Path| -> Result<Output> {
        let ran = dir.join("stand-in-ran");
        let output = Command::new("setpriv")
            .args([format!("--reuid={NOBODY}"), format!("--regid={NOBODY}"), "--clear-groups".into()])
            .arg(program)
            .env_clear()
            .env("FAKE_MARKER", &ran)
            .stdin(Stdio::null())
            .output()?;
        ensure!(!ran.exists(), "the blocked stand-in ran (its main() wrote {})", ran.display());
        Ok(output)
    };
    let ok = as_nobody(&allowed)?;
    ensure!(ok.status.success(), "an allowed program on the gated tmpfs did not run: {}", said(&ok));
    let denied = as_nobody(&stand_in)?;
    ensure!(
        // fanotify's FAN_DENY fails the execve with EPERM.
        !denied.status.success() && said(&denied).contains("Operation not permitted"),
        "the blocked stand-in on the gated tmpfs was not denied: {} {}",
        denied.status,
        said(&denied)
    );
    let output = run_ok(
        Command::new("curl").args(["-sS", "-m", "10", "--unix-socket"]).arg(&socket).arg("http://w/v1/events?limit=50"),
    )?;
    let events: Value = serde_json::from_slice(&output.stdout).with_context(|| said(&output))?;
    ensure!(
        events
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["tool"] == tool && e["outcome"] == "denied" && e["user"] == "nobody")),
        "no denied launch of {tool} by nobody among the service's events: {events}"
    );

    // systemd stops a unit with SIGTERM.
    run_ok(Command::new("kill").args(["-TERM", &service.0.id().to_string()]))?;
    let mut service = service;
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = service.0.try_wait()? {
            break status;
        }
        ensure!(Instant::now() < deadline, "wardend did not stop within 15 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    ensure!(status.success(), "wardend stopped with {status} on SIGTERM");
    drop(service);
    println!(
        "package test: wardend under setpriv with warden.service's capabilities: {line}; status answers; the blocked tool is denied; stops cleanly on SIGTERM"
    );

    // Without the capability of the gate: the start says so (or wardend refuses to start), so
    // the check above does see a missing capability.
    let fewer: Vec<String> = unit.capabilities.iter().filter(|c| *c != "sys_admin").cloned().collect();
    let (crippled, lines) = start(&fewer)?;
    match started(&lines, "without CAP_SYS_ADMIN") {
        Ok(line) => {
            let rest = line.split_once("; gate: ").map_or("", |(_, rest)| rest);
            ensure!(
                !rest.contains(&gated.0.display().to_string()),
                "without CAP_SYS_ADMIN wardend still gates: {line}"
            );
            println!("package test: without CAP_SYS_ADMIN wardend loses the pre-exec gate: {line}");
        }
        Err(error) => println!("package test: without CAP_SYS_ADMIN wardend does not start: {error:#}"),
    }
    drop(crippled);
    Ok(())
}
