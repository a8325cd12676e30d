//! The privileged pre-exec gate: fanotify `FAN_OPEN_EXEC_PERM` on whole filesystems. The
//! kernel holds every `execve` of a file on a marked filesystem until Warden answers; a
//! blocked program's `execve` fails with EPERM before its first instruction.
//!
//! - [`GateScope`] says what it covers: by default every local filesystem of the mount table
//!   ([`mountinfo`]), and each one mounted later (the table is watched); or an explicit list.
//! - Marks are filesystem marks (`FAN_MARK_FILESYSTEM`, Linux ≥ 4.20): they cover the
//!   superblock, so a bind mount of a gated filesystem, or its copy in a user's new mount
//!   namespace (`unshare -Urm`), is gated too. Where the kernel refuses one, the gate falls back
//!   to a mount mark on that mount alone, and its status ([`GateMark::kind`]) says so.
//! - A filesystem mounted inside a user's own mount namespace (`unshare -Urm` then `mount -t
//!   tmpfs`) is a new superblock the service never sees in its table: programs run from there
//!   are seen by the exec-event source beside the gate and killed right after their exec.
//! - The dynamic loader run directly (`ld-linux-x86-64.so.2 PROGRAM`) execs only itself; the
//!   gate then watches that process's opens (`FAN_OPEN_PERM`, added only while such a loader
//!   is starting) and denies the open of a blocked program.

pub mod mountinfo;

#[cfg(target_os = "linux")]
mod exec;
#[cfg(target_os = "linux")]
mod marks;

#[cfg(target_os = "linux")]
pub use exec::{DEFAULT_DEADLINE, ExecGate, GATE_CONTENT_LIMIT, GateStats};

use std::path::PathBuf;

/// What the gate covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateScope {
    /// Every local filesystem (see [`mountinfo::LOCAL_TYPES`]) mounted at or under `under`
    /// (`/`: the whole machine), and each one mounted there later.
    LocalFilesystems { under: PathBuf },
    /// The filesystems holding these paths, and no others.
    Filesystems(Vec<PathBuf>),
}

impl GateScope {
    /// Every local filesystem of the machine: the default of the system service.
    pub fn all_local() -> GateScope {
        GateScope::LocalFilesystems { under: PathBuf::from("/") }
    }

    /// An explicit list as configured (`gate = [...]`, `--gate-mount`): `None` (no gate) when
    /// empty.
    pub fn listed(paths: Vec<PathBuf>) -> Option<GateScope> {
        (!paths.is_empty()).then_some(GateScope::Filesystems(paths))
    }
}

/// How a filesystem is marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MarkKind {
    /// The whole filesystem (`FAN_MARK_FILESYSTEM`): every mount of it, in every namespace.
    Filesystem,
    /// Only the mount at [`GateMark::mount_point`] (`FAN_MARK_MOUNT`): the kernel refused the
    /// filesystem mark; bind mounts and other namespaces' copies are not gated by it.
    Mount,
}

/// One filesystem the gate covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GateMark {
    /// Where it was marked (the first mount of it in the table, or the configured path).
    pub mount_point: PathBuf,
    /// Its type (`ext4`, `tmpfs`), when known from the mount table.
    pub fs_type: Option<String>,
    pub kind: MarkKind,
    /// Why the filesystem mark was refused, for a [`MarkKind::Mount`] fallback.
    pub note: Option<String>,
}

impl std::fmt::Display for GateMark {
    /// `/home (btrfs)`, or `/x (fuse.sshfs; this mount only: filesystem mark refused: EINVAL)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.mount_point.display())?;
        let mut details = Vec::new();
        if let Some(fs_type) = &self.fs_type {
            details.push(fs_type.clone());
        }
        if self.kind == MarkKind::Mount {
            details.push(match &self.note {
                Some(note) => format!("this mount only: {note}"),
                None => "this mount only".to_owned(),
            });
        }
        if !details.is_empty() {
            write!(f, " ({})", details.join("; "))?;
        }
        Ok(())
    }
}
