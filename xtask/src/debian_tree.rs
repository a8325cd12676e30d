//! The fresh Debian 12 tree the package test (`xtask/tests/debian_package.rs`) installs the
//! built `.deb`s into: made once by `cargo xtask setup` with `debootstrap --variant=minbase
//! bookworm` from the Debian registry and cached as
//! `~/.cache/warden-tools/debian-bookworm-<key>.tar.zst`; the test only unpacks it (no
//! download). The tree also holds what the packages' Depends name (`TREE_INCLUDE`), so each
//! installs with its real dependencies and no network.

use crate::check;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian 12.
pub const SUITE: &str = "bookworm";
/// The Debian package registry debootstrap downloads from (setup only).
pub const MIRROR: &str = "http://deb.debian.org/debian";
/// Packages added to minbase: systemd (a Debian 12 install has it; `systemd-analyze verify
/// --root` needs its units, though it never runs as PID 1 here), deb-systemd-helper (the
/// postinsts enable the units with it) and what `warden-tray`'s Depends name (WebKitGTK, GTK) plus the tray icon library Tauri loads
/// at run time; dbus-x11 provides the `dbus-session-bus` GTK's dconf-service needs
/// (debootstrap does not choose providers of virtual packages). A new Depends of a package
/// fails `dpkg -i` in the test: add it to this list.
pub const TREE_INCLUDE: &[&str] =
    &["systemd", "init-system-helpers", "dbus-x11", "libwebkit2gtk-4.1-0", "libayatana-appindicator3-1"];

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
    if !crate::is_root() {
        // The package test needs root too; it fails naming this step when the tree is missing.
        println!("xtask: not making the Debian {SUITE} tree for the package test: debootstrap needs root");
        return Ok(());
    }
    let build = tarball.with_extension("").with_extension("build");
    remove_tree(&build)?;
    println!("xtask: debootstrap --variant=minbase {SUITE} (+ {}) into {}", TREE_INCLUDE.join(", "), build.display());
    // Downloaded packages are kept beside the tarball: a new include list downloads only
    // what it adds.
    let downloads = tarball.with_file_name("debootstrap-debs");
    std::fs::create_dir_all(&downloads)?;
    let made = check(
        Command::new("debootstrap")
            .arg("--variant=minbase")
            .arg(format!("--cache-dir={}", downloads.display()))
            .args([&format!("--include={}", TREE_INCLUDE.join(",")), SUITE])
            .arg(&build)
            .arg(MIRROR),
    );
    if let Err(error) = made {
        remove_tree(&build)?;
        return Err(error);
    }
    // The downloaded .debs are not part of the tree a machine would have.
    for deb in std::fs::read_dir(build.join("var/cache/apt/archives")).into_iter().flatten().flatten() {
        if deb.path().extension().is_some_and(|e| e == "deb") {
            std::fs::remove_file(deb.path())?;
        }
    }
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

/// Removes a scratch tree (also the package test's), first unmounting whatever is mounted
/// below it (debootstrap mounts /proc and /sys while it runs, the test a tmpfs; a mounted
/// folder must never be deleted through).
pub fn remove_tree(dir: &Path) -> Result<()> {
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
