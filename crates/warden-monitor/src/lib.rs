//! Warden's OS edge: where process launches are seen, decided and stopped.
//!
//! - [`facts`]: a process's facts from the OS (`/proc` on Linux).
//! - [`source`]: exec event sources behind one trait (netlink process connector, `sysinfo`
//!   poller), picked at start-up.
//! - [`gate`]: the privileged fanotify pre-exec gate (Linux, root) on whole filesystems, and
//!   which filesystems it covers (the mount table).
//! - [`identity`]: what a program file is by content (fingerprints) and which npm
//!   package a script belongs to, cached per file version.
//! - [`watcher`]: notice → facts → verdict → one launch per tool start → enforcement.
//! - [`enforce`]: freezing and killing a launch's process tree.
//! - [`terminal`]: the terminal a blocked launch came from, and the message written there.
//! - [`inventory`]: installed AI tools (IDE extensions, packages, folders).
//!
//! This crate is the only one that talks to the OS process APIs (`nix`, `libc`,
//! `sysinfo`), and the only one with `unsafe` (each block says why it is sound). It has no
//! async: the agent crate runs it on threads of its own.

mod elf;
pub mod enforce;
pub mod facts;
pub mod gate;
pub mod identity;
pub mod inventory;
mod late;
pub mod source;
pub mod terminal;
pub mod watcher;

pub use source::{EventSource, ExecNotice, SourceChoice, SourceError};
pub use terminal::Terminal;
pub use watcher::{
    Decider, EndReason, ExceptionEnd, GapReason, Launch, Opener, Rescan, Rules, SessionNotice, SessionStop, Watcher,
};

/// Whether this process runs as root (the pre-exec gate needs it).
#[cfg(unix)]
pub fn running_as_root() -> bool {
    #[cfg(target_os = "linux")]
    {
        nix::unistd::geteuid().is_root()
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// Whether this process runs with administrator rights (never assumed off Linux).
#[cfg(not(unix))]
pub fn running_as_root() -> bool {
    false
}

/// Hardens the system service's own process: not dumpable (no core files, no `ptrace` or
/// `/proc/PID/mem` of it by anyone without `CAP_SYS_PTRACE`; `/proc/PID/*` of it becomes
/// root-owned) and a umask of 077, so every file it creates is root-only unless it says
/// otherwise.
///
/// # Errors
/// The `prctl` error text when the kernel refuses.
#[cfg(target_os = "linux")]
pub fn harden_service_process() -> Result<(), String> {
    nix::sys::prctl::set_dumpable(false).map_err(|e| format!("prctl(PR_SET_DUMPABLE, 0): {e}"))?;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    Ok(())
}

/// Off Linux the service has no such knobs here yet.
#[cfg(not(target_os = "linux"))]
pub fn harden_service_process() -> Result<(), String> {
    Ok(())
}
