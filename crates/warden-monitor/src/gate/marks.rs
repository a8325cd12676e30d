//! The gate's marks: which filesystems it covers, marking new ones as they are mounted, and the
//! loader window's `FAN_OPEN_PERM` on all of them.
//!
//! Whether a filesystem is still marked is read from the kernel, not remembered: the group's
//! `/proc/self/fdinfo` lists one `fanotify sdev:…` line per live filesystem mark (and
//! `mnt_id:…` per mount mark), and a mark dies with its superblock. A tmpfs unmounted and
//! another mounted in its place may get the same device number; it is marked again because the
//! kernel no longer lists a mark for that device.

use super::mountinfo::{self, MountEntry};
use super::{GateMark, MarkKind};
use nix::sys::fanotify::{Fanotify, MarkFlags, MaskFlags};
use std::collections::HashSet;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

/// One covered filesystem and how to reach it again (to add or remove `FAN_OPEN_PERM`).
#[derive(Debug, Clone)]
struct Marked {
    mark: GateMark,
    /// `major:minor` from the mount table, when the mark came from it.
    device: Option<String>,
}

/// What the gate covers now.
#[derive(Debug, Default)]
pub(super) struct Coverage {
    marked: Vec<Marked>,
    /// Whether `FAN_OPEN_PERM` is on every mark (while a directly run loader is starting).
    open_perm: bool,
}

/// The kernel's `dev_t` (`MKDEV`: major << 20 | minor) of a `major:minor` text.
fn kernel_dev(device: &str) -> Option<u64> {
    let (major, minor) = device.split_once(':')?;
    Some((major.parse::<u64>().ok()? << 20) | minor.parse::<u64>().ok()?)
}

/// The devices of the group's live filesystem marks and the ids of its mount marks, from
/// `fdinfo` (numbers in hex there).
fn live_marks(group: &Fanotify) -> (HashSet<u64>, HashSet<u64>) {
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", group.as_fd().as_raw_fd())).unwrap_or_default();
    let (mut devices, mut mounts) = (HashSet::new(), HashSet::new());
    for line in text.lines() {
        let hex = |field: &str| u64::from_str_radix(field.split(' ').next().unwrap_or(""), 16).ok();
        if let Some(rest) = line.strip_prefix("fanotify sdev:") {
            devices.extend(hex(rest));
        } else if let Some(rest) = line.strip_prefix("fanotify mnt_id:") {
            mounts.extend(hex(rest));
        }
    }
    (devices, mounts)
}

fn mark(group: &Fanotify, action: MarkFlags, kind: MarkKind, mask: MaskFlags, path: &Path) -> nix::Result<()> {
    let kind = match kind {
        MarkKind::Filesystem => MarkFlags::FAN_MARK_FILESYSTEM,
        MarkKind::Mount => MarkFlags::FAN_MARK_MOUNT,
    };
    group.mark(action | kind, mask, nix::fcntl::AT_FDCWD, Some(path))
}

impl Coverage {
    fn mask(&self) -> MaskFlags {
        if self.open_perm {
            MaskFlags::FAN_OPEN_EXEC_PERM | MaskFlags::FAN_OPEN_PERM
        } else {
            MaskFlags::FAN_OPEN_EXEC_PERM
        }
    }

    /// Marks the filesystem holding `path`: a filesystem mark, else (refused) a mount mark.
    /// The error names both refusals.
    pub(super) fn add(
        &mut self,
        group: &Fanotify,
        path: &Path,
        fs_type: Option<String>,
        device: Option<String>,
    ) -> Result<(), String> {
        let mask = self.mask();
        let (kind, note) = match mark(group, MarkFlags::FAN_MARK_ADD, MarkKind::Filesystem, mask, path) {
            Ok(()) => (MarkKind::Filesystem, None),
            Err(refused) => match mark(group, MarkFlags::FAN_MARK_ADD, MarkKind::Mount, mask, path) {
                Ok(()) => (MarkKind::Mount, Some(format!("filesystem mark refused: {refused}"))),
                Err(error) => {
                    return Err(format!("marking {}: filesystem mark: {refused}; mount mark: {error}", path.display()));
                }
            },
        };
        let mark = GateMark { mount_point: path.to_path_buf(), fs_type, kind, note };
        match self.marked.iter_mut().find(|m| device.is_some() && m.device == device) {
            Some(known) => known.mark = mark,
            None => self.marked.push(Marked { mark, device }),
        }
        Ok(())
    }

    /// Brings the marks in line with the mount table: every local filesystem at or under
    /// `under` that the kernel does not list as marked is marked (new mounts, and a new
    /// filesystem that reuses a gone one's device number); filesystems no longer in the table
    /// leave the status. Returns the refusals, one text each.
    pub(super) fn follow_table(&mut self, group: &Fanotify, entries: &[MountEntry], under: &Path) -> Vec<String> {
        let local = mountinfo::local_filesystems(entries, under);
        let (devices, mounts) = live_marks(group);
        let mut refused = Vec::new();
        for entry in &local {
            let known = self.marked.iter().find(|m| m.device.as_deref() == Some(entry.device.as_str()));
            let still_marked = match known.map(|k| k.mark.kind) {
                Some(MarkKind::Filesystem) => kernel_dev(&entry.device).is_some_and(|d| devices.contains(&d)),
                // A mount-mark fallback stays as long as some mount of the device does; its own
                // mount's id is not kept, so any live mount mark counts.
                Some(MarkKind::Mount) => !mounts.is_empty(),
                None => false,
            };
            if !still_marked
                && let Err(error) =
                    self.add(group, &entry.mount_point, Some(entry.fs_type.clone()), Some(entry.device.clone()))
            {
                refused.push(error);
            }
        }
        self.marked.retain(|m| m.device.as_ref().is_none_or(|d| local.iter().any(|e| &e.device == d)));
        refused
    }

    /// Adds or removes `FAN_OPEN_PERM` on every mark.
    pub(super) fn set_open_perm(&mut self, group: &Fanotify, on: bool) {
        if self.open_perm == on {
            return;
        }
        let action = if on { MarkFlags::FAN_MARK_ADD } else { MarkFlags::FAN_MARK_REMOVE };
        for marked in &self.marked {
            // A filesystem unmounted meanwhile has no mark left to change.
            let _ = mark(group, action, marked.mark.kind, MaskFlags::FAN_OPEN_PERM, &marked.mark.mount_point);
        }
        self.open_perm = on;
    }

    pub(super) fn marks(&self) -> Vec<GateMark> {
        self.marked.iter().map(|m| m.mark.clone()).collect()
    }

    pub(super) fn mount_points(&self) -> Vec<PathBuf> {
        self.marked.iter().map(|m| m.mark.mount_point.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_device_numbers() {
        assert_eq!(kernel_dev("0:39"), Some(0x27));
        assert_eq!(kernel_dev("254:0"), Some(254 << 20));
        assert_eq!(kernel_dev("8:17"), Some((8 << 20) | 17));
        assert_eq!(kernel_dev("x"), None);
    }
}
