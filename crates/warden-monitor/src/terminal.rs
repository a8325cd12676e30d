//! Telling the developer at the terminal a blocked launch was started from, as Santa does:
//! one short message with the reason and the sanctioned assistant.
//!
//! The terminal is found (and opened) *before* the launch is killed, because a dead process
//! has no descriptors left to find it by: the process's stderr (`/proc/PID/fd/2`) if that is
//! a terminal, else its controlling terminal (`tty_nr` in `/proc/PID/stat`), reached through
//! one of its descriptors 0–1 that points at it, or by its `/dev` name when the process shares
//! this agent's mount namespace (a container's `/dev/pts/3` is another terminal than ours).
//!
//! Only terminal devices are ever opened (UNIX98 pseudo-terminals, majors 136–143, and
//! `/dev/tty*`/serial, major 4; never `/dev/tty` or the console, which would mean *our*
//! terminal), write-only, non-blocking and without becoming our controlling terminal; the
//! descriptor is checked with `isatty` before anything is written. A write that would block
//! (a terminal nobody reads, flow control) is dropped: the hot path never waits on it.
//!
//! The agent may run as root (`wardend`) while the launch is the developer's, so what it opens
//! is chosen by someone it does not trust. A developer can point their stderr at anything they
//! can open, even read-only (`2</etc/passwd`), at a symlink (an `O_PATH|O_NOFOLLOW` descriptor),
//! or swap it (`dup2`) between our look and our open; reopening `/proc/PID/fd/2` for writing
//! as root would then write to a file only root may write. So nothing is opened for writing
//! by a name: the candidate is first pinned with `O_PATH` (no open of the device itself, no
//! side effects, no permission check), the pinned inode is checked — a character device with a
//! terminal's major, owned by the launch's own uid (a terminal that is theirs) — and only that
//! very inode is then opened, through our own `/proc/self/fd/N`. Pipes and files are never
//! written to: a launch from an IDE or a script is told through the pop-up instead.

use std::fs::File;
use std::io::Write;
use std::sync::Arc;
use warden_policy::Verdict;

/// An open terminal of a blocked launch (write-only, non-blocking). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Terminal {
    file: Arc<File>,
    /// Where it was found (`/proc/4711/fd/2`, `/dev/pts/3`), for reports.
    pub found_at: String,
}

impl Terminal {
    /// The terminal `pid` was started from, opened now; `None` when it has none (a launch
    /// from a desktop menu, a service) or it cannot be opened.
    #[cfg(target_os = "linux")]
    pub fn of(pid: u32) -> Option<Terminal> {
        linux::find(pid)
    }

    #[cfg(not(target_os = "linux"))]
    pub fn of(_pid: u32) -> Option<Terminal> {
        None
    }

    /// Writes `text` (control characters other than newlines and tabs replaced, so a
    /// policy's words cannot drive the terminal) in one non-blocking write. Errors when
    /// the terminal would block or is gone; nothing is retried.
    pub fn tell(&self, text: &str) -> std::io::Result<()> {
        let clean: String =
            text.chars().map(|c| if c.is_control() && c != '\n' && c != '\t' { '?' } else { c }).collect();
        (&*self.file).write_all(clean.as_bytes())
    }
}

/// The message for a blocked launch: what was stopped and why, then what to use instead.
///
/// ```text
/// warden: Claude Code was stopped: External AI assistants may not be used on company code.
/// warden: use Acme Assistant instead: acme-assistant (https://assistant.example)
/// ```
pub fn blocked_message(verdict: &Verdict) -> String {
    let tool = verdict.tool_name.as_deref().or(verdict.tool.as_deref()).unwrap_or("this program");
    let mut text = format!("\nwarden: {tool} was stopped: {}\n", verdict.reason.trim());
    if let Some(assistant) = &verdict.assistant {
        let command = assistant.command.join(" ");
        if command.is_empty() {
            text.push_str(&format!("warden: use {} instead: {}\n", assistant.name, assistant.url));
        } else {
            text.push_str(&format!("warden: use {} instead: {command} ({})\n", assistant.name, assistant.url));
        }
    }
    text
}

#[cfg(target_os = "linux")]
mod linux {
    use super::Terminal;
    use std::fs::OpenOptions;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
    use std::sync::Arc;

    /// Major and minor of a device number (glibc's `gnu_dev_major`/`gnu_dev_minor`).
    fn split(device: u64) -> (u64, u64) {
        let major = ((device >> 32) & 0xffff_f000) | ((device >> 8) & 0x0000_0fff);
        let minor = ((device >> 12) & 0xffff_ff00) | (device & 0x0000_00ff);
        (major, minor)
    }

    /// A device that is a terminal of its own (not the "current terminal" aliases).
    fn is_terminal_device(device: u64) -> bool {
        let (major, _) = split(device);
        major == 4 || (136..=143).contains(&major)
    }

    /// The terminal device `/proc/PID/fd/N` points at, if it is one.
    fn terminal_of_fd(pid: u32, fd: u32) -> Option<u64> {
        let metadata = std::fs::metadata(format!("/proc/{pid}/fd/{fd}")).ok()?;
        (metadata.file_type().is_char_device() && is_terminal_device(metadata.rdev())).then(|| metadata.rdev())
    }

    /// The controlling terminal (`tty_nr`, field 7 of `/proc/PID/stat`; 0 = none).
    fn controlling(pid: u32) -> Option<u64> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = &text[text.rfind(')')? + 1..];
        // rest starts at field 3 (state), so field 7 is the fifth word.
        let tty_nr: u64 = rest.split_whitespace().nth(4)?.parse().ok()?;
        // `tty_nr` packs major in bits 8–15, minor in bits 0–7 and 20–31.
        let (major, minor) = ((tty_nr >> 8) & 0xfff, (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00));
        (tty_nr != 0).then_some(libc::makedev(major as u32, minor as u32))
    }

    fn same_mount_namespace(pid: u32) -> bool {
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/mnt"));
        let ours = std::fs::read_link("/proc/self/ns/mnt");
        matches!((theirs, ours), (Ok(a), Ok(b)) if a == b)
    }

    /// The `/dev` name of a terminal device in this mount namespace.
    fn device_path(device: u64) -> Option<String> {
        match split(device) {
            (4, minor @ 1..=63) => Some(format!("/dev/tty{minor}")),
            (4, minor @ 64..=255) => Some(format!("/dev/ttyS{}", minor - 64)),
            // One major holds every pseudo-terminal (2^20 minors) on current kernels.
            (136, minor) => Some(format!("/dev/pts/{minor}")),
            _ => None,
        }
    }

    /// The real uid of `pid` (`Uid:` of `/proc/PID/status`).
    fn uid_of(pid: u32) -> Option<u32> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status.lines().find_map(|l| l.strip_prefix("Uid:"))?.split_whitespace().next()?.parse().ok()
    }

    /// Opens the terminal `device` that `path` names, if it is still that terminal and belongs
    /// to `owner` (write-only, non-blocking, never as our controlling terminal).
    ///
    /// Why in two steps (see the module's documentation): `O_PATH` pins whatever `path` names
    /// now without opening it; the pinned inode is checked; then exactly that inode is opened
    /// for writing through `/proc/self/fd/N`, so a `dup2` or a rename after the check cannot
    /// substitute a file only root may write. `O_NOFOLLOW` keeps a `/dev` name from being a
    /// symlink; a `/proc/PID/fd/N` name is the kernel's link to the open file itself (it must
    /// be followed), and a symlink the process holds open there is refused by the type check.
    fn open(path: String, device: u64, owner: u32) -> Option<Terminal> {
        let nofollow = if path.starts_with("/proc/") { 0 } else { libc::O_NOFOLLOW };
        let pinned =
            OpenOptions::new().read(true).custom_flags(libc::O_PATH | libc::O_CLOEXEC | nofollow).open(&path).ok()?;
        let metadata = pinned.metadata().ok()?;
        let theirs = metadata.file_type().is_char_device()
            && metadata.rdev() == device
            && is_terminal_device(metadata.rdev())
            && metadata.uid() == owner;
        if !theirs {
            return None;
        }
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
            .open(format!("/proc/self/fd/{}", pinned.as_raw_fd()))
            .ok()?;
        let metadata = file.metadata().ok()?;
        let still = metadata.file_type().is_char_device() && metadata.rdev() == device;
        (still && nix::unistd::isatty(&file).unwrap_or(false))
            .then(|| Terminal { file: Arc::new(file), found_at: path })
    }

    pub(super) fn find(pid: u32) -> Option<Terminal> {
        let owner = uid_of(pid)?;
        if let Some(device) = terminal_of_fd(pid, 2) {
            return open(format!("/proc/{pid}/fd/2"), device, owner);
        }
        let device = controlling(pid).filter(|d| is_terminal_device(*d))?;
        for fd in [1, 0] {
            if terminal_of_fd(pid, fd) == Some(device) {
                return open(format!("/proc/{pid}/fd/{fd}"), device, owner);
            }
        }
        if same_mount_namespace(pid) {
            return open(device_path(device)?, device, owner);
        }
        None
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn device_numbers_split_and_name_like_the_kernel() {
            let pts = libc::makedev(136, 5);
            assert_eq!(split(pts), (136, 5));
            assert!(is_terminal_device(pts));
            assert_eq!(device_path(pts).as_deref(), Some("/dev/pts/5"));
            assert_eq!(device_path(libc::makedev(4, 2)).as_deref(), Some("/dev/tty2"));
            // /dev/tty and /dev/console mean "the caller's own terminal": never used.
            assert!(!is_terminal_device(libc::makedev(5, 0)));
            assert!(!is_terminal_device(libc::makedev(5, 1)));
            assert!(!is_terminal_device(libc::makedev(1, 3)), "/dev/null is no terminal");
        }
    }
}
