//! Which filesystems the gate covers, read from the mount table (`/proc/self/mountinfo`, format
//! in the kernel's `Documentation/filesystems/proc.rst`, "3.5 `/proc/<pid>/mountinfo`"): a pure
//! function over its text, so the choice is tested on fixtures (`mountinfo/*.txt`, each with the
//! `*.expected` list of what it must gate) without marking anything.
//!
//! Local filesystems are the ones whose data lives on this machine's disks or memory (an
//! allowlist of types, [`LOCAL_TYPES`]): pseudo filesystems (proc, sysfs, cgroup, devtmpfs…)
//! hold no programs a developer can add, and network filesystems would make every exec on them
//! wait on the network. FUSE (`fuse`, `fuseblk`, `fuse.*`) is left out by default: a FUSE
//! filesystem is served by a user-space process, often the developer's own (sshfs, an
//! AppImage's squashfuse, rclone), which could hold the gate's reads up; programs started from
//! there are still seen by the exec-event source and killed right after their exec. List such a
//! mount explicitly to gate it anyway.

use std::path::{Path, PathBuf};

/// Filesystem types gated by default: disk and memory filesystems a program can be put on.
pub const LOCAL_TYPES: &[&str] = &[
    "ext2", "ext3", "ext4", "xfs", "btrfs", "bcachefs", "f2fs", "jfs", "reiserfs", "nilfs2", "zfs", "tmpfs", "ramfs",
    "overlay", "vfat", "msdos", "exfat", "ntfs3", "ntfs", "hfs", "hfsplus", "squashfs", "erofs", "iso9660", "udf",
    "ecryptfs", "minix", "ufs",
];

/// One line of the mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// The mount's id (unique while it is mounted).
    pub mount_id: u64,
    /// The filesystem's device, `major:minor`: one per superblock, shared by its bind mounts.
    pub device: String,
    /// Where it is mounted (octal escapes such as `\040` decoded).
    pub mount_point: PathBuf,
    /// The filesystem type (`ext4`, `tmpfs`, `fuse.sshfs`).
    pub fs_type: String,
}

/// Parses mountinfo text; malformed lines are skipped (the kernel writes it, but a fixture or a
/// future field must not stop the gate).
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MountEntry> {
    // id parent major:minor root mount-point options [optional fields…] - type source super-options
    let (before, after) = line.split_once(" - ")?;
    let mut fields = before.split(' ');
    let mount_id = fields.next()?.parse().ok()?;
    let _parent = fields.next()?;
    let device = fields.next()?.to_owned();
    let _root = fields.next()?;
    let mount_point = PathBuf::from(unescape(fields.next()?));
    let fs_type = unescape(after.split(' ').next()?);
    if !device.contains(':') || fs_type.is_empty() {
        return None;
    }
    Some(MountEntry { mount_id, device, mount_point, fs_type })
}

/// Decodes the kernel's `\ooo` octal escapes (space, tab, newline, backslash).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b))
            && let Ok(value) = u8::from_str_radix(&field[i + 1..i + 4], 8)
        {
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `fs_type` is gated by default (see the module docs for FUSE).
pub fn is_local(fs_type: &str) -> bool {
    LOCAL_TYPES.contains(&fs_type)
}

/// The local filesystems mounted at or under `root`, one entry per filesystem (the first mount
/// of each device in table order: a bind mount or a second mount of the same superblock adds
/// nothing, since the gate marks whole filesystems).
pub fn local_filesystems(entries: &[MountEntry], root: &Path) -> Vec<MountEntry> {
    let mut chosen: Vec<MountEntry> = Vec::new();
    for entry in entries {
        if is_local(&entry.fs_type)
            && entry.mount_point.starts_with(root)
            && !chosen.iter().any(|c| c.device == entry.device)
        {
            chosen.push(entry.clone());
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each `mountinfo/NAME.txt` with `NAME.expected`: one `MOUNT-POINT TYPE` line per
    /// filesystem the gate must cover (under `/`, or under the path on an `# under PATH` line).
    #[test]
    fn chooses_the_local_filesystems_of_each_fixture() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/gate/mountinfo");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "txt") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let expected_text = std::fs::read_to_string(path.with_extension("expected")).unwrap();
            let mut root = PathBuf::from("/");
            let mut expected = Vec::new();
            for line in expected_text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                if let Some(under) = line.strip_prefix("# under ") {
                    root = PathBuf::from(under);
                } else if !line.starts_with('#') {
                    expected.push(line.to_owned());
                }
            }
            let chosen: Vec<String> = local_filesystems(&parse(&text), &root)
                .iter()
                .map(|e| format!("{} {}", e.mount_point.display(), e.fs_type))
                .collect();
            assert_eq!(chosen, expected, "{}", path.display());
            checked += 1;
        }
        assert!(checked >= 3, "fixtures found: {checked}");
    }

    #[test]
    fn decodes_escapes_and_skips_malformed_lines() {
        let text = "36 35 98:0 /mnt1 /mnt/my\\040disk rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
                    garbage\n\
                    37 35 98:1 / /a\\134b rw - \n";
        let entries = parse(text);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].mount_point, Path::new("/mnt/my disk"));
        assert_eq!(entries[0].device, "98:0");
        assert_eq!(entries[0].fs_type, "ext3");
        assert_eq!(unescape("a\\134b\\011c\\012"), "a\\b\tc\n");
        assert_eq!(unescape("trailing\\04"), "trailing\\04");
    }
}
