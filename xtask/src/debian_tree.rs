//! The package test: installs the built `.deb`s into a fresh Debian 12 tree and checks what a
//! first real install would meet — every installed path's owner and mode, the maintainer
//! scripts' work (state directories 0700, the server's system user, the units enabled), the
//! binaries' libraries, the units verified by `systemd-analyze verify`, their
//! `systemd-analyze security` exposure, and each unit's `ExecStart` run under `setpriv` with the
//! unit's capability bounding set and no-new-privileges (this machine has no systemd as PID 1).
//!
//! The tree is made once by setup with `debootstrap --variant=minbase bookworm` from the Debian
//! registry and cached as `~/.cache/warden-tools/debian-bookworm-<key>.tar.zst`; the test only
//! unpacks it (no download). The tree also holds the tray's libraries (`TREE_INCLUDE`), so the
//! tray package installs with its real dependencies.

use crate::package::{self, target_dir};
use crate::{check, project_root};
use anyhow::{Context, Result, bail, ensure};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SUITE: &str = "bookworm";
const MIRROR: &str = "http://deb.debian.org/debian";
/// Packages added to minbase: deb-systemd-helper (the postinsts enable the units with it) and
/// what `warden-tray`'s Depends name (WebKitGTK, GTK) plus the tray icon library Tauri loads
/// at run time. A new Depends of a package fails `dpkg -i` here: add it to this list.
pub const TREE_INCLUDE: &[&str] = &["init-system-helpers", "libwebkit2gtk-4.1-0", "libayatana-appindicator3-1"];

/// The cached tree: its name carries a hash of the suite and the include list, so changing
/// either makes setup build a new one.
pub fn tarball() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    // FNV-1a: stable across Rust versions (std's hasher is not).
    let key = format!("{SUITE} {}", TREE_INCLUDE.join(","))
        .bytes()
        .fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3));
    Ok(PathBuf::from(home).join(format!(".cache/warden-tools/debian-{SUITE}-{:08x}.tar.zst", key as u32)))
}

/// Makes the cached tree when it is missing (idempotent; needs root and the Debian registry).
pub fn setup() -> Result<()> {
    let tarball = tarball()?;
    if tarball.is_file() {
        println!("xtask: Debian {SUITE} tree present ({})", tarball.display());
        return Ok(());
    }
    ensure!(crate::is_root(), "making the Debian {SUITE} tree for the package test needs root (debootstrap)");
    let build = tarball.with_extension("").with_extension("build");
    remove_tree(&build)?;
    println!("xtask: debootstrap --variant=minbase {SUITE} (+ {}) into {}", TREE_INCLUDE.join(", "), build.display());
    let made = check(
        Command::new("debootstrap")
            .args(["--variant=minbase", &format!("--include={}", TREE_INCLUDE.join(",")), SUITE])
            .arg(&build)
            .arg(MIRROR),
    );
    if let Err(error) = made {
        remove_tree(&build)?;
        return Err(error);
    }
    // The downloaded .debs are not part of the tree a machine would have.
    let _ = std::fs::remove_dir_all(build.join("var/cache/apt/archives"));
    let partial = tarball.with_extension("partial");
    check(
        Command::new("tar")
            .args(["--numeric-owner", "--xattrs", "-I", "zstd -T0 -3", "-C"])
            .arg(&build)
            .arg("-cf")
            .arg(&partial)
            .arg("."),
    )?;
    std::fs::rename(&partial, &tarball).context("keeping the tree tarball")?;
    remove_tree(&build)?;
    println!("xtask: Debian {SUITE} tree cached in {}", tarball.display());
    Ok(())
}

/// Removes a scratch tree, first making sure nothing is mounted below it (debootstrap mounts
/// /proc and /sys while it runs; a bind-mounted /dev must never be deleted through).
fn remove_tree(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let prefix = format!("{}/", dir.display());
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").context("reading mountinfo")?;
    let mut mounted: Vec<&str> =
        mountinfo.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| m.starts_with(&prefix)).collect();
    mounted.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for mount in mounted {
        check(Command::new("umount").arg("--lazy").arg(mount))?;
    }
    std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))
}

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

/// Every file the packages install, and what the maintainer scripts create. A packaged path
/// not listed here fails the test (directories: 0755 root:root).
const EXPECTED: &[Expect] = &[
    Expect { path: "/usr/sbin/wardend", mode: FILE | 0o755, owner: "root", group: "root" },
    Expect { path: "/usr/bin/warden", mode: FILE | 0o755, owner: "root", group: "root" },
    Expect { path: "/usr/bin/warden-server", mode: FILE | 0o755, owner: "root", group: "root" },
    Expect { path: "/usr/bin/warden-tray", mode: FILE | 0o755, owner: "root", group: "root" },
    Expect { path: "/usr/lib/systemd/system/warden.service", mode: FILE | 0o644, owner: "root", group: "root" },
    Expect { path: "/usr/lib/systemd/system/warden-server.service", mode: FILE | 0o644, owner: "root", group: "root" },
    Expect { path: "/etc/warden/warden.toml", mode: FILE | 0o644, owner: "root", group: "root" },
    // May carry a database password.
    Expect { path: "/etc/default/warden-server", mode: FILE | 0o600, owner: "root", group: "root" },
    Expect { path: "/etc/xdg/autostart/warden-tray.desktop", mode: FILE | 0o644, owner: "root", group: "root" },
    Expect { path: "/usr/share/applications/warden-tray.desktop", mode: FILE | 0o644, owner: "root", group: "root" },
    Expect { path: "/usr/share/icons/hicolor/64x64/apps/warden.png", mode: FILE | 0o644, owner: "root", group: "root" },
    Expect { path: "/usr/share/doc/warden/copyright", mode: FILE | 0o644, owner: "root", group: "root" },
    Expect { path: "/usr/share/doc/warden-server/copyright", mode: FILE | 0o644, owner: "root", group: "root" },
    Expect { path: "/usr/share/doc/warden-tray/copyright", mode: FILE | 0o644, owner: "root", group: "root" },
];

/// Made by the postinsts, not listed by dpkg.
const CREATED: &[Expect] = &[
    Expect { path: "/var/lib/warden", mode: DIR | 0o700, owner: "root", group: "root" },
    Expect { path: "/var/lib/warden-server", mode: DIR | 0o700, owner: "warden-server", group: "warden-server" },
];

/// Conffiles dpkg must keep across upgrades.
const CONFFILES: &[&str] =
    &["/etc/warden/warden.toml", "/etc/default/warden-server", "/etc/xdg/autostart/warden-tray.desktop"];

/// The units and where `deb-systemd-helper enable` links them.
const UNITS: &[(&str, &str)] = &[
    ("warden.service", "/etc/systemd/system/multi-user.target.wants/warden.service"),
    ("warden-server.service", "/etc/systemd/system/multi-user.target.wants/warden-server.service"),
];

/// A scratch folder under the system temp dir (world-searchable, so the server check can run
/// the tree's binary as the service user), removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("warden-deb-tree-{}", std::process::id()));
        remove_tree(&dir)?;
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(error) = remove_tree(&self.0) {
            eprintln!("xtask: warning: {error:#}");
        }
    }
}

/// Kills a started process when the check ends early.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The test step: package the dev profile (what the tests built), install, check.
pub fn test() -> Result<()> {
    let started = Instant::now();
    let tarball = tarball()?;
    ensure!(
        tarball.is_file(),
        "the cached Debian {SUITE} tree {} is missing: run `cargo xtask setup` (it downloads it once)",
        tarball.display()
    );
    let scratch = Scratch::new()?;
    let debs = package::build("dev", &scratch.0.join("debs"))?;
    for deb in &debs {
        let size = std::fs::metadata(deb)?.len();
        println!("xtask: package {} ({:.1} MB)", deb.display(), size as f64 / 1e6);
    }
    let tree = scratch.0.join("tree");
    std::fs::create_dir(&tree)?;
    std::fs::set_permissions(&tree, std::fs::Permissions::from_mode(0o755))?;
    check(Command::new("tar").args(["--numeric-owner", "-I", "zstd -T0", "-xpf"]).arg(&tarball).arg("-C").arg(&tree))?;
    println!("xtask: Debian {SUITE} tree unpacked ({:.1} s)", started.elapsed().as_secs_f64());

    install(&tree, &debs)?;
    let users = Accounts::read(&tree)?;
    check_paths(&tree, &users)?;
    check_server_user(&users)?;
    check_libraries(&tree)?;
    check_desktop_entries(&tree)?;
    let scores = check_units(&tree)?;
    check_capability_probes(&tree, &scratch.0)?;
    check_server_start(&tree, &scratch.0, &users)?;
    check_wardend_start(&tree, &scratch.0)?;
    for (unit, score) in &scores {
        println!("xtask: systemd-analyze security {unit}: exposure {score}");
    }
    println!("xtask: packages install and check out in a fresh Debian {SUITE} tree ({:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}

/// Runs a command inside the tree with a plain environment; returns its stdout.
fn in_tree(tree: &Path, args: &[&str]) -> Result<String> {
    let output = Command::new("chroot")
        .arg(tree)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LANG", "C.UTF-8")
        .output()
        .with_context(|| format!("running chroot … {}", args.join(" ")))?;
    ensure!(
        output.status.success(),
        "`{}` in the tree failed ({}):\n{}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `dpkg -i` of all three inside the tree, as on a fresh machine (the tree's own dpkg and
/// maintainer scripts; no systemd running, so the units are enabled but not started).
fn install(tree: &Path, debs: &[PathBuf]) -> Result<()> {
    let inbox = tree.join("tmp/warden-debs");
    std::fs::create_dir_all(&inbox)?;
    let mut args = vec!["dpkg".to_owned(), "-i".to_owned()];
    for deb in debs {
        let name = deb.file_name().context("deb name")?;
        std::fs::copy(deb, inbox.join(name))?;
        args.push(format!("/tmp/warden-debs/{}", name.to_string_lossy()));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    in_tree(tree, &args)?;
    let status = in_tree(tree, &["dpkg-query", "-W", "-f=${Package} ${Status}\\n", "warden", "warden-server", "warden-tray"])?;
    for package in package::PACKAGES {
        ensure!(
            status.lines().any(|l| l == format!("{} install ok installed", package.name)),
            "{} is not fully installed: {status}",
            package.name
        );
    }
    std::fs::remove_dir_all(&inbox)?;
    println!("xtask: dpkg -i in the tree: {} installed", package::PACKAGES.iter().map(|p| p.name).collect::<Vec<_>>().join(", "));
    Ok(())
}

/// The tree's users and groups by id.
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
            let fields: Vec<&str> = line.split(':').collect();
            if let [name, _, uid, gid, _, _, shell] = fields[..] {
                let (uid, gid) = (uid.parse()?, gid.parse()?);
                accounts.users.insert(uid, name.to_owned());
                accounts.by_name.insert(name.to_owned(), (uid, gid, shell.to_owned()));
            }
        }
        for line in group.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            if let [name, _, gid, ..] = fields[..] {
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

/// Owner and mode of every path the packages installed, and of what the postinsts made.
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
                problems.push(format!("{path}: installed but not in the expected list (xtask/src/debian_tree.rs)"));
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
    for package in package::PACKAGES {
        for path in in_tree(tree, &["dpkg", "-L", package.name])?.lines().filter(|l| *l != "/.") {
            check_one(path, EXPECTED.iter().find(|e| e.path == path))?;
        }
    }
    for expect in CREATED {
        check_one(expect.path, Some(expect))?;
    }
    // Every expected file was installed (a package that lost one fails here).
    for expect in EXPECTED {
        if !tree.join(expect.path.trim_start_matches('/')).exists() {
            problems.push(format!("{}: expected but not installed", expect.path));
        }
    }
    let conffiles = in_tree(tree, &["dpkg-query", "-W", "-f=${Conffiles}\\n", "warden", "warden-server", "warden-tray"])?;
    for conffile in CONFFILES {
        if !conffiles.lines().any(|l| l.split_whitespace().next() == Some(conffile)) {
            problems.push(format!("{conffile}: not a conffile (dpkg would overwrite an admin's edits)"));
        }
    }
    for (unit, link) in UNITS {
        let target = std::fs::read_link(tree.join(link.trim_start_matches('/')));
        match target {
            Ok(target) if target.file_name().is_some_and(|n| n == *unit) && tree.join(target.strip_prefix("/").unwrap_or(&target)).is_file() => {}
            Ok(target) => problems.push(format!("{link} points to {}, not the installed {unit}", target.display())),
            Err(e) => problems.push(format!("{unit} is not enabled ({link}: {e})")),
        }
    }
    ensure!(problems.is_empty(), "installed paths:\n  {}", problems.join("\n  "));
    println!(
        "xtask: owners and modes of {files} installed files, their folders and {} made by postinst are as expected; units enabled",
        CREATED.len()
    );
    Ok(())
}

fn check_server_user(accounts: &Accounts) -> Result<()> {
    let (uid, gid, shell) =
        accounts.by_name.get("warden-server").context("postinst made no warden-server user")?.clone();
    ensure!(uid < 1000 && gid < 1000, "warden-server is not a system user (uid {uid}, gid {gid})");
    ensure!(shell == "/usr/sbin/nologin", "warden-server has a login shell: {shell}");
    println!("xtask: system user warden-server (uid {uid}), no login shell");
    Ok(())
}

/// Every binary finds every library it links inside the tree: the Depends are complete.
fn check_libraries(tree: &Path) -> Result<()> {
    for binary in ["/usr/sbin/wardend", "/usr/bin/warden", "/usr/bin/warden-server", "/usr/bin/warden-tray"] {
        let ldd = in_tree(tree, &["ldd", binary])?;
        let missing: Vec<&str> = ldd.lines().filter(|l| l.contains("not found")).collect();
        ensure!(missing.is_empty(), "{binary} lacks libraries in the tree (Depends incomplete):\n{}", missing.join("\n"));
    }
    println!("xtask: every binary's libraries resolve in the tree");
    Ok(())
}

fn check_desktop_entries(tree: &Path) -> Result<()> {
    for entry in ["usr/share/applications/warden-tray.desktop", "etc/xdg/autostart/warden-tray.desktop"] {
        let output = Command::new("desktop-file-validate").arg(tree.join(entry)).output().context("running desktop-file-validate")?;
        let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        ensure!(output.status.success() && !said.contains("error:"), "/{entry} is not a valid desktop entry:\n{said}");
        let text = std::fs::read_to_string(tree.join(entry))?;
        let exec = text.lines().find_map(|l| l.strip_prefix("Exec=")).context("no Exec=")?;
        ensure!(tree.join(exec.trim_start_matches('/')).is_file(), "/{entry}: Exec={exec} is not installed");
    }
    println!("xtask: desktop entries valid, their Exec installed");
    Ok(())
}

/// `systemd-analyze verify` on each installed unit (against the tree: the binaries its
/// ExecStart names must be there), then `systemd-analyze security --offline` for its score.
fn check_units(tree: &Path) -> Result<Vec<(String, String)>> {
    let mut scores = Vec::new();
    for (unit, _) in UNITS {
        let path = tree.join("usr/lib/systemd/system").join(unit);
        let output = Command::new("systemd-analyze")
            .arg("verify")
            .arg(format!("--root={}", tree.display()))
            .arg(&path)
            .output()
            .context("running systemd-analyze verify")?;
        let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        // Only what concerns our unit: verify also loads the tree's other units.
        let ours: Vec<&str> = said.lines().filter(|l| l.contains(unit)).collect();
        ensure!(output.status.success() && ours.is_empty(), "systemd-analyze verify {unit}:\n{said}");
        let output = Command::new("systemd-analyze")
            .args(["security", "--no-pager", "--offline=true"])
            .arg(format!("--root={}", tree.display()))
            .arg(&path)
            .output()
            .context("running systemd-analyze security")?;
        let said = String::from_utf8_lossy(&output.stdout);
        let score = said
            .lines()
            .find_map(|l| l.split_once("Overall exposure level for ").map(|(_, rest)| rest))
            .and_then(|rest| rest.split_once(": ").map(|(_, s)| s.trim().to_owned()))
            .with_context(|| format!("systemd-analyze security {unit} gave no score:\n{said}{}", String::from_utf8_lossy(&output.stderr)))?;
        scores.push(((*unit).to_owned(), score));
    }
    println!("xtask: systemd-analyze verify passes on {}", UNITS.iter().map(|(u, _)| *u).collect::<Vec<_>>().join(", "));
    Ok(scores)
}

/// The directives of `[Service]` a start under setpriv needs.
#[derive(Debug)]
struct ServiceSection {
    exec_start: Vec<String>,
    /// Capability names as setpriv spells them (`sys_admin`).
    capabilities: Vec<String>,
    no_new_privileges: bool,
    user: Option<String>,
}

fn read_unit(tree: &Path, unit: &str) -> Result<ServiceSection> {
    let text = std::fs::read_to_string(tree.join("usr/lib/systemd/system").join(unit))?;
    let mut section = ServiceSection { exec_start: Vec::new(), capabilities: Vec::new(), no_new_privileges: false, user: None };
    let mut bounding_set = None;
    for line in text.lines().map(str::trim) {
        let Some((key, value)) = line.split_once('=') else { continue };
        match key {
            "ExecStart" => section.exec_start = value.split_whitespace().map(str::to_owned).collect(),
            "CapabilityBoundingSet" => {
                bounding_set = Some(
                    value
                        .split_whitespace()
                        .map(|c| c.strip_prefix("CAP_").map(str::to_lowercase).with_context(|| format!("{unit}: capability {c}")))
                        .collect::<Result<Vec<_>>>()?,
                )
            }
            "NoNewPrivileges" => section.no_new_privileges = value == "yes",
            "User" => section.user = Some(value.to_owned()),
            _ => {}
        }
    }
    section.capabilities = bounding_set.with_context(|| format!("{unit} sets no CapabilityBoundingSet"))?;
    ensure!(!section.exec_start.is_empty(), "{unit} has no ExecStart");
    ensure!(section.no_new_privileges, "{unit} lacks NoNewPrivileges=yes");
    Ok(section)
}

/// `setpriv` with a bounding set, no inheritable capabilities and no-new-privileges.
fn setpriv(capabilities: &[String]) -> Command {
    let mut command = Command::new("setpriv");
    let set: String = std::iter::once("-all".to_owned()).chain(capabilities.iter().map(|c| format!("+{c}"))).collect::<Vec<_>>().join(",");
    command.arg(format!("--bounding-set={set}")).args(["--inh-caps=-all", "--no-new-privs"]);
    command
}

/// What wardend does to other users' processes, each probed with the unit's bounding set (must
/// work) and without the one capability it needs (must fail: the probe is not a no-op). The
/// target is an execute-only copy of a program in another user's private folder, run as that
/// user — the hard case from the issue.
fn check_capability_probes(tree: &Path, scratch: &Path) -> Result<()> {
    let unit = read_unit(tree, "warden.service")?;
    let folder = scratch.join("someone-else");
    std::fs::create_dir(&folder)?;
    let tool = folder.join("ai-tool");
    std::fs::copy("/usr/bin/sleep", &tool)?;
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o111))?;
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o700))?;
    check(Command::new("chown").args(["-R", "65534:65534"]).arg(&folder))?;
    let target = Running(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&tool)
            .arg("300")
            .spawn()
            .context("starting the other user's program")?,
    );
    let pid = target.0.id().to_string();
    // Wait until it is the program, not setpriv, at that pid.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_link(format!("/proc/{pid}/exe")).map(|p| p != tool).unwrap_or(true) {
        ensure!(Instant::now() < deadline, "the other user's program did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let tool_text = tool.display().to_string();
    let probes: [(&str, &str, Vec<String>, &dyn Fn(&[u8]) -> bool); 3] = [
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
        ("kill", "signal another user's process", vec!["kill".into(), "-CONT".into(), pid.clone()], &|_| true),
    ];
    for (capability, what, argv, works) in &probes {
        ensure!(
            unit.capabilities.contains(&(*capability).to_owned()),
            "warden.service's CapabilityBoundingSet lacks CAP_{} ({what})",
            capability.to_uppercase()
        );
        let with = setpriv(&unit.capabilities).args(argv).output()?;
        ensure!(
            with.status.success() && works(&with.stdout),
            "with warden.service's capabilities, wardend could not {what}: {}",
            String::from_utf8_lossy(&with.stderr)
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
    println!("xtask: with warden.service's capability set (and only with each capability) root can {}", probes.map(|p| p.1).join(", "));
    Ok(())
}

/// Starts a unit's ExecStart (binary from the tree) and collects its output lines.
fn spawn_lines(mut command: Command) -> Result<(Running, std::sync::mpsc::Receiver<String>)> {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().context("starting the service")?;
    let (sender, lines) = std::sync::mpsc::channel();
    for stream in [child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>), child.stderr.take().map(|s| Box::new(s) as _)]
        .into_iter()
        .flatten()
    {
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
fn wait_for_line(lines: &std::sync::mpsc::Receiver<String>, within: Duration, wanted: impl Fn(&str) -> bool) -> Result<String> {
    let deadline = Instant::now() + within;
    let mut said = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) if wanted(&line) => return Ok(line),
            Ok(line) => said.push(line),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => bail!("it exited; it said:\n{}", said.join("\n")),
        }
    }
    bail!("nothing within {within:?}; it said:\n{}", said.join("\n"))
}

/// The server as its unit starts it: the tree's binary as the warden-server user, no
/// capabilities at all, no-new-privileges, its own data directory 0700; it must listen.
fn check_server_start(tree: &Path, scratch: &Path, accounts: &Accounts) -> Result<()> {
    let unit = read_unit(tree, "warden-server.service")?;
    let user = unit.user.as_deref().context("warden-server.service sets no User=")?;
    let (uid, gid, _) = accounts.by_name.get(user).with_context(|| format!("the tree has no user {user}"))?.clone();
    let data = scratch.join("server-data");
    std::fs::create_dir(&data)?;
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))?;
    std::os::unix::fs::chown(&data, Some(uid), Some(gid))?;
    let mut argv = unit.exec_start.clone();
    argv[0] = tree.join(argv[0].trim_start_matches('/')).display().to_string();
    let at = argv.iter().position(|a| a == "--data-dir").context("ExecStart has no --data-dir")?;
    argv[at + 1] = data.display().to_string();
    argv.extend(["--listen".into(), "127.0.0.1:0".into()]);
    let mut command = setpriv(&unit.capabilities);
    command.args([format!("--reuid={uid}"), format!("--regid={gid}"), "--clear-groups".into()]).args(&argv).env_clear();
    let (mut server, lines) = spawn_lines(command)?;
    let line = wait_for_line(&lines, Duration::from_secs(20), |l| l.starts_with("Listening on "))
        .context("warden-server under setpriv with its unit's capabilities (none) did not listen")?;
    let address = line.trim_start_matches("Listening on ").trim().trim_start_matches("http://").to_owned();
    std::net::TcpStream::connect(&address).with_context(|| format!("connecting to the server at {address}"))?;
    let data_mode = std::fs::metadata(&data)?.mode() & 0o777;
    ensure!(data_mode == 0o700, "the server changed its data directory to {data_mode:o}");
    server.0.kill()?;
    println!("xtask: warden-server starts as {user} with no capabilities and no-new-privileges, listens on {address}");
    Ok(())
}

/// THE REAL START CHECK of wardend: the tree's binary started as warden.service's ExecStart
/// does (root, the unit's bounding set, no-new-privileges), with a scratch configuration
/// (state dir, socket, the gate on the scratch filesystem only, and a monitor-mode policy so
/// nothing on this shared machine is killed). It must arm the process connector and the
/// fanotify gate without a fallback, open its socket, and stop cleanly on SIGTERM. The same
/// start without CAP_SYS_ADMIN must report the fallback (the check can see a missing
/// capability).
fn check_wardend_start(tree: &Path, scratch: &Path) -> Result<()> {
    let unit = read_unit(tree, "warden.service")?;
    let state = scratch.join("wardend-state");
    let run = scratch.join("wardend-run");
    std::fs::create_dir(&run)?;
    let policy = scratch.join("monitor-policy.toml");
    let default_policy = std::fs::read_to_string(project_root().join("crates/warden-policy/src/default-policy.toml"))?;
    ensure!(default_policy.contains("\nmode = \"enforce\"\n"), "the default policy no longer says mode = \"enforce\"");
    std::fs::write(&policy, default_policy.replace("\nmode = \"enforce\"\n", "\nmode = \"monitor\"\n"))?;
    let config = scratch.join("warden.toml");
    let socket = run.join("warden.sock");
    // The installed default configuration, then the test's own keys (a check that the
    // shipped file parses with them appended).
    let installed = std::fs::read_to_string(tree.join("etc/warden/warden.toml"))?;
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\nsocket = {:?}\ngate = [{:?}]\n{installed}\n[policy]\nfile = {:?}\n",
            state.display().to_string(),
            socket.display().to_string(),
            scratch.display().to_string(),
            policy.display().to_string()
        ),
    )?;
    let start = |capabilities: &[String]| -> Result<(Running, std::sync::mpsc::Receiver<String>)> {
        let mut argv = unit.exec_start.clone();
        argv[0] = tree.join(argv[0].trim_start_matches('/')).display().to_string();
        let at = argv.iter().position(|a| a == "--config").context("warden.service's ExecStart has no --config")?;
        argv[at + 1] = config.display().to_string();
        let mut command = setpriv(capabilities);
        command.args(&argv).env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        spawn_lines(command)
    };

    // Without CAP_SYS_ADMIN: the gate cannot be armed, and wardend must say so.
    let fewer: Vec<String> = unit.capabilities.iter().filter(|c| *c != "sys_admin").cloned().collect();
    let (mut crippled, lines) = start(&fewer)?;
    let line = wait_for_line(&lines, Duration::from_secs(30), |l| l.starts_with("wardend: enforcing with"))
        .context("wardend without CAP_SYS_ADMIN did not report how it enforces")?;
    ensure!(
        line.contains("no pre-exec gate") || line.contains("gate: off"),
        "without CAP_SYS_ADMIN wardend still claims a gate: {line}"
    );
    crippled.0.kill()?;
    crippled.0.wait()?;
    let _ = std::fs::remove_file(&socket);

    let (mut service, lines) = start(&unit.capabilities)?;
    let line = wait_for_line(&lines, Duration::from_secs(30), |l| l.starts_with("wardend: enforcing with"))
        .context("wardend under setpriv with warden.service's capabilities did not start enforcing")?;
    // "wardend: enforcing with SOURCE[ (FALLBACK)]; gate: MOUNTS; local API on SOCKET"
    let (how, rest) = line.trim_start_matches("wardend: enforcing with ").split_once("; gate: ").context("unexpected start line")?;
    ensure!(!how.contains('('), "wardend fell back with warden.service's capabilities (one is missing?): {line}");
    ensure!(how.contains("connector"), "wardend does not use the process connector: {line}");
    ensure!(!rest.starts_with("off"), "wardend armed no pre-exec gate with warden.service's capabilities: {line}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        ensure!(Instant::now() < deadline, "wardend did not open its socket {}", socket.display());
        std::thread::sleep(Duration::from_millis(50));
    }
    let state_mode = std::fs::metadata(&state)?.mode() & 0o777;
    ensure!(state_mode == 0o700, "wardend's state directory is {state_mode:o}, not 700");
    // systemd stops a unit with SIGTERM.
    check(Command::new("kill").args(["-TERM", &service.0.id().to_string()]))?;
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = service.0.try_wait()? {
            break status;
        }
        ensure!(Instant::now() < deadline, "wardend did not stop within 15 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    ensure!(status.success(), "wardend stopped with {status} on SIGTERM");
    println!("xtask: wardend under setpriv with warden.service's capabilities: {line}; stops cleanly on SIGTERM");
    Ok(())
}
