//! The netlink process connector (`NETLINK_CONNECTOR`, `CN_IDX_PROC`), subscribed to
//! exec events only.
//!
//! Layout (see `linux/cn_proc.h`): each datagram is an `nlmsghdr` (16 bytes), a `cn_msg`
//! (20 bytes) and a `proc_event`: `what`@0, `cpu`@4, `timestamp_ns`@8 (CLOCK_MONOTONIC),
//! and for exec `process_pid`@16, `process_tgid`@20. Kernels from 6.6 accept a filter
//! (`proc_input { mcast_op, event_type }`); older ones take the 4-byte op alone and
//! send every event kind, which is filtered here.

use super::{EventSource, ExecNotice, SourceError};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

const NAME: &str = "proc-connector";
const NETLINK_CONNECTOR: libc::c_int = 11;
const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
const PROC_CN_MCAST_LISTEN: u32 = 1;
const PROC_CN_MCAST_IGNORE: u32 = 2;
const PROC_EVENT_EXEC: u32 = 0x0000_0002;
const NLMSG_HEADER: usize = 16;
const CN_MSG_HEADER: usize = 20;
const EVENT_OFFSET: usize = NLMSG_HEADER + CN_MSG_HEADER;

/// A subscribed process-connector socket.
#[derive(Debug)]
pub struct ProcConnector {
    socket: OwnedFd,
    buffer: Vec<u8>,
    lost: u64,
    /// Whether the kernel takes the exec-only filter.
    filtered: bool,
}

fn io_error(context: &str) -> SourceError {
    let error = std::io::Error::last_os_error();
    SourceError::Unavailable { source_name: NAME, message: format!("{context}: {error}") }
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// Whether the running kernel is at least `major.minor` (for the 6.6 exec-only filter).
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release.trim().split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    let (found_major, found_minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (found_major, found_minor) >= (major, minor)
}

impl ProcConnector {
    /// Opens the socket and subscribes to exec events.
    pub fn open() -> Result<ProcConnector, SourceError> {
        // SAFETY: plain socket(2) call with constant arguments; the result is checked.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                NETLINK_CONNECTOR,
            )
        };
        if raw < 0 {
            return Err(io_error("socket(AF_NETLINK, NETLINK_CONNECTOR)"));
        }
        // SAFETY: `raw` is a fresh, valid descriptor that nothing else owns.
        let socket = unsafe { OwnedFd::from_raw_fd(raw) };

        // A larger receive buffer rides out bursts (a build starting hundreds of compilers).
        let size: libc::c_int = 4 << 20;
        for option in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
            // SAFETY: `size` lives across the call and its length is passed exactly.
            let done = unsafe {
                libc::setsockopt(
                    socket.as_raw_fd(),
                    libc::SOL_SOCKET,
                    option,
                    (&size as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if done == 0 {
                break; // FORCE needs CAP_NET_ADMIN; the plain option is capped but fine.
            }
        }

        // SAFETY: sockaddr_nl is plain data; all-zero is a valid value to start from.
        let mut address: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        address.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        address.nl_groups = CN_IDX_PROC;
        address.nl_pid = 0; // let the kernel pick a unique port id
        // SAFETY: `address` is a valid sockaddr_nl and its exact size is passed.
        let bound = unsafe {
            libc::bind(
                socket.as_raw_fd(),
                (&address as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if bound < 0 {
            return Err(io_error("bind(CN_IDX_PROC)"));
        }
        let filtered = kernel_at_least(6, 6);
        let mut connector = ProcConnector { socket, buffer: vec![0; 16 * 1024], lost: 0, filtered };
        connector.send_op(PROC_CN_MCAST_LISTEN)?;
        Ok(connector)
    }

    fn send_op(&mut self, op: u32) -> Result<(), SourceError> {
        let payload: Vec<u8> = if self.filtered {
            [op.to_ne_bytes(), PROC_EVENT_EXEC.to_ne_bytes()].concat()
        } else {
            op.to_ne_bytes().to_vec()
        };
        let total = EVENT_OFFSET + payload.len();
        let mut message = Vec::with_capacity(total);
        message.extend_from_slice(&(total as u32).to_ne_bytes()); // nlmsg_len
        message.extend_from_slice(&(libc::NLMSG_DONE as u16).to_ne_bytes()); // nlmsg_type
        message.extend_from_slice(&0u16.to_ne_bytes()); // nlmsg_flags
        message.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_seq
        message.extend_from_slice(&std::process::id().to_ne_bytes()); // nlmsg_pid
        message.extend_from_slice(&CN_IDX_PROC.to_ne_bytes()); // cn_msg.id.idx
        message.extend_from_slice(&CN_VAL_PROC.to_ne_bytes()); // cn_msg.id.val
        message.extend_from_slice(&0u32.to_ne_bytes()); // seq
        message.extend_from_slice(&0u32.to_ne_bytes()); // ack
        message.extend_from_slice(&(payload.len() as u16).to_ne_bytes()); // len
        message.extend_from_slice(&0u16.to_ne_bytes()); // flags
        message.extend_from_slice(&payload);
        // SAFETY: `message` is a valid buffer of `message.len()` bytes for the whole call.
        let sent = unsafe { libc::send(self.socket.as_raw_fd(), message.as_ptr().cast(), message.len(), 0) };
        if sent < 0 {
            return Err(io_error("subscribing to exec events"));
        }
        Ok(())
    }

    /// Starts a short-lived program and waits for its exec event: proof that this
    /// kernel really delivers events to this (possibly unprivileged) listener.
    pub fn self_test(&mut self) -> Result<(), SourceError> {
        let child = std::process::Command::new("/bin/true")
            .spawn()
            .map_err(|error| SourceError::Unavailable { source_name: NAME, message: format!("self-test: {error}") })?;
        let pid = child.id();
        let mut child = child;
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut seen = Vec::new();
        let mut found = false;
        while Instant::now() < deadline && !found {
            self.wait(Duration::from_millis(100), &mut seen)?;
            found = seen.iter().any(|notice| notice.pid == pid);
            seen.clear();
        }
        let _ = child.wait();
        if found {
            Ok(())
        } else {
            Err(SourceError::Unavailable {
                source_name: NAME,
                message: "subscribed, but no exec event arrived within 2 s (kernel refuses this listener?)".into(),
            })
        }
    }

    fn parse(&mut self, length: usize, out: &mut Vec<ExecNotice>) {
        let mut offset = 0;
        while offset + NLMSG_HEADER <= length {
            let bytes = &self.buffer[offset..length];
            let Some(message_length) = read_u32(bytes, 0).map(|l| l as usize) else { break };
            if message_length < NLMSG_HEADER || message_length > bytes.len() {
                break;
            }
            let message = &bytes[..message_length];
            if read_u32(message, EVENT_OFFSET) == Some(PROC_EVENT_EXEC)
                && let (Some(kernel_ns), Some(tgid)) =
                    (read_u64(message, EVENT_OFFSET + 8), read_u32(message, EVENT_OFFSET + 20))
            {
                out.push(ExecNotice { pid: tgid, kernel_ns: Some(kernel_ns), facts: None });
            }
            // Netlink messages are 4-byte aligned.
            offset += (message_length + 3) & !3;
        }
    }
}

impl EventSource for ProcConnector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn wait(&mut self, timeout: Duration, out: &mut Vec<ExecNotice>) -> Result<(), SourceError> {
        let fd = self.socket.as_fd();
        let mut fds = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLIN)];
        let millis = timeout.as_millis().min(i32::MAX as u128) as i32;
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::try_from(millis).unwrap_or(nix::poll::PollTimeout::MAX))
        {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok(()),
            Err(errno) => return Err(SourceError::Io { source_name: NAME, error: errno.into() }),
        }
        // Drain everything that is queued, so a burst costs one wake-up.
        loop {
            // SAFETY: the buffer is valid for `len` bytes for the whole call.
            let received =
                unsafe { libc::recv(self.socket.as_raw_fd(), self.buffer.as_mut_ptr().cast(), self.buffer.len(), 0) };
            if received < 0 {
                let error = std::io::Error::last_os_error();
                match error.raw_os_error() {
                    Some(libc::EAGAIN) => return Ok(()),
                    Some(libc::EINTR) => continue,
                    // The kernel dropped events because we were slow: count and go on.
                    Some(libc::ENOBUFS) => {
                        self.lost += 1;
                        continue;
                    }
                    _ => return Err(SourceError::Io { source_name: NAME, error }),
                }
            }
            self.parse(received as usize, out);
        }
    }

    fn lost(&self) -> u64 {
        self.lost
    }
}

impl Drop for ProcConnector {
    fn drop(&mut self) {
        // Unsubscribing keeps the kernel's listener count right (it only sends events
        // while someone listens); the socket closes afterwards anyway.
        let _ = self.send_op(PROC_CN_MCAST_IGNORE);
    }
}

/// Exec notices the kernel dropped at the process-connector sockets `pid` holds: the `Drops`
/// column of `/proc/net/netlink` (protocol 11, `NETLINK_CONNECTOR`) for the socket inodes among
/// `/proc/PID/fd`. Each count is one overrun (`ENOBUFS`), which may hide any number of execs.
/// Errors: `pid` gone or its descriptors not readable by the caller.
pub fn dropped_notices(pid: u32) -> std::io::Result<u64> {
    let sockets: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))?
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| Some(target.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned()))
        .collect();
    let table = std::fs::read_to_string("/proc/net/netlink")?;
    Ok(table
        .lines()
        .skip(1) // the column header
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        // Columns: sk, Eth (protocol), Pid, Groups, Rmem, Wmem, Dump, Locks, Drops, Inode.
        .filter(|f| f.len() >= 10 && f[1] == "11" && sockets.iter().any(|s| s == f[9]))
        .filter_map(|f| f[8].parse::<u64>().ok())
        .sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_the_exec_of_a_child_with_its_kernel_timestamp() {
        let mut connector = ProcConnector::open().expect("the connector opens on this kernel");
        let before = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
        let mut child = std::process::Command::new("/bin/sleep").arg("0.2").spawn().unwrap();
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut notices = Vec::new();
        while Instant::now() < deadline && !notices.iter().any(|n: &ExecNotice| n.pid == pid) {
            connector.wait(Duration::from_millis(100), &mut notices).unwrap();
        }
        child.wait().unwrap();
        let notice = notices.iter().find(|n| n.pid == pid).expect("the child's exec was reported");
        let before_ns = before.tv_sec() as u64 * 1_000_000_000 + before.tv_nsec() as u64;
        assert!(notice.kernel_ns.unwrap() >= before_ns, "timestamps are CLOCK_MONOTONIC");
    }

    #[test]
    fn kernel_version_comparison() {
        assert!(kernel_at_least(2, 6));
        assert!(!kernel_at_least(99, 0));
    }
}
