//! The eBPF hooks: load the clang-built object, attach it to a cgroup v2 folder, keep its maps,
//! read its events. Linux only.
//!
//! Maps (defined in `bpf/connect.bpf.c`): `GOVERNED_V4`/`GOVERNED_V6` (LPM tries: prefix →
//! [`KernelAction`]), `OPEN_TGIDS` (tgid → grant number: an approved exception's launch tree,
//! grown by the fork hook), `EVENTS` (ring buffer of [`KernelEvent`]s: every connect or UDP
//! sendmsg to a governed prefix, refused or not).

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{HashMap, MapData, RingBuf};
use aya::programs::{BtfTracePoint, CgroupAttachMode, CgroupSockAddr};
use aya::{Btf, Ebpf, EbpfLoader};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use tokio::io::unix::AsyncFd;
use warden_policy::Cidr;

/// The compiled kernel programs (see `build.rs`).
static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/connect.bpf.o"));

const HOOKS: [&str; 4] = ["warden_connect4", "warden_connect6", "warden_sendmsg4", "warden_sendmsg6"];

/// Why the hooks could not be set up. The caller falls back and says so; nothing panics.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("opening cgroup {path}: {source}")]
    Cgroup { path: PathBuf, source: std::io::Error },
    #[error("loading the eBPF object: {0}")]
    Load(String),
    #[error("loading or attaching eBPF program {program}: {message}")]
    Program { program: &'static str, message: String },
    #[error("eBPF map {map}: {message}")]
    Map { map: &'static str, message: String },
}

/// What the kernel does on a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KernelAction {
    /// Refuse with EPERM (unless the process is open) and report.
    Block = 1,
    /// Let it through and report (warn destinations; every destination in monitor mode).
    Observe = 2,
}

/// What the kernel did with a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelVerdict {
    Denied,
    Observed,
    /// A governed destination let through because the process is open (an exception).
    Open,
}

/// Which hook saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Connect4,
    Connect6,
    Sendmsg4,
    Sendmsg6,
}

/// One connection to a governed prefix, as the kernel reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelEvent {
    /// The thread's id and its process (thread group) id.
    pub pid: u32,
    pub tgid: u32,
    pub uid: u32,
    /// The destination; a v4-mapped IPv6 destination is reported as IPv4.
    pub address: IpAddr,
    pub port: u16,
    /// `tcp`, `udp` or the protocol number.
    pub protocol: String,
    pub verdict: KernelVerdict,
    pub hook: Hook,
}

/// `struct event` of the C program: 4+4+4+1+1+1+1+16+2+2 = 36 bytes.
const EVENT_SIZE: usize = 36;

impl KernelEvent {
    /// Reads one ring buffer record (layout of `struct event` in `bpf/connect.bpf.c`).
    pub fn parse(bytes: &[u8]) -> Option<KernelEvent> {
        if bytes.len() < EVENT_SIZE {
            return None;
        }
        let u32_at = |i: usize| u32::from_ne_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let family = bytes[12];
        let mut addr = [0u8; 16];
        addr.copy_from_slice(&bytes[16..32]);
        let address = match family {
            4 => IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])),
            6 => IpAddr::V6(Ipv6Addr::from(addr)),
            _ => return None,
        };
        Some(KernelEvent {
            pid: u32_at(0),
            tgid: u32_at(4),
            uid: u32_at(8),
            address,
            port: u16::from_ne_bytes([bytes[32], bytes[33]]),
            protocol: match bytes[15] {
                6 => "tcp".into(),
                17 => "udp".into(),
                n => n.to_string(),
            },
            verdict: match bytes[13] {
                1 => KernelVerdict::Denied,
                3 => KernelVerdict::Open,
                _ => KernelVerdict::Observed,
            },
            hook: match bytes[14] {
                1 => Hook::Connect4,
                2 => Hook::Connect6,
                3 => Hook::Sendmsg4,
                _ => Hook::Sendmsg6,
            },
        })
    }
}

/// The loaded, attached hooks and their maps. Dropping it detaches every program.
pub struct Firewall {
    cgroup: PathBuf,
    // Owns the programs and their links: dropping it detaches them.
    _ebpf: Ebpf,
    v4: LpmTrie<MapData, [u8; 4], u32>,
    v6: LpmTrie<MapData, [u8; 16], u32>,
    open: HashMap<MapData, u32, u32>,
    ranges: BTreeMap<Cidr, KernelAction>,
    fork_hook: Result<(), String>,
}

impl std::fmt::Debug for Firewall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Firewall").field("cgroup", &self.cgroup).field("ranges", &self.ranges.len()).finish()
    }
}

/// The ring buffer of [`KernelEvent`]s, readable from async code.
pub struct Events {
    ring: AsyncFd<RingBuf<MapData>>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").field("fd", &self.ring.get_ref().as_raw_fd()).finish()
    }
}

impl Events {
    /// The next event (waits for one). `None` only when the ring buffer cannot be polled any more.
    pub async fn next(&mut self) -> Option<KernelEvent> {
        loop {
            let mut guard = self.ring.readable_mut().await.ok()?;
            let ring = guard.get_inner_mut();
            let mut found = None;
            while let Some(item) = ring.next() {
                if let Some(event) = KernelEvent::parse(&item) {
                    found = Some(event);
                    break;
                }
            }
            match found {
                Some(event) => return Some(event),
                None => guard.clear_ready(),
            }
        }
    }
}

fn program_error(program: &'static str) -> impl Fn(aya::programs::ProgramError) -> NetError {
    move |e| NetError::Program { program, message: error_chain(&e) }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn map_error(map: &'static str) -> impl Fn(aya::maps::MapError) -> NetError {
    move |e| NetError::Map { map, message: error_chain(&e) }
}

impl Firewall {
    /// Loads the programs and attaches the four socket hooks to the cgroup v2 folder `cgroup`
    /// (every process in it and below it is governed), with empty maps: nothing is refused until
    /// [`Firewall::set_ranges`]. The fork hook (launch trees of exceptions) is attached too; where
    /// the kernel refuses it, [`Firewall::fork_hook`] says why and only the processes the caller
    /// opens by tgid are open. Needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN for the cgroup
    /// attach). Call from within a tokio runtime (the events reader registers with it).
    pub fn attach(cgroup: &Path) -> Result<(Firewall, Events), NetError> {
        let folder =
            std::fs::File::open(cgroup).map_err(|source| NetError::Cgroup { path: cgroup.to_owned(), source })?;
        let btf = Btf::from_sys_fs().ok();
        let mut ebpf = EbpfLoader::new().btf(btf.as_ref()).load(OBJECT).map_err(|e| NetError::Load(error_chain(&e)))?;
        for name in HOOKS {
            let program: &mut CgroupSockAddr = ebpf
                .program_mut(name)
                .ok_or_else(|| NetError::Program { program: name, message: "not in the object".into() })?
                .try_into()
                .map_err(program_error(name))?;
            program.load().map_err(program_error(name))?;
            // A bpf_link (kernel ≥ 5.7) takes no flags and always coexists with other programs on
            // the same cgroup (systemd's, another agent's): `Single` is aya's "no flags".
            program.attach(&folder, CgroupAttachMode::Single).map_err(program_error(name))?;
        }
        let fork_hook = (|| -> Result<(), String> {
            let btf = btf.as_ref().ok_or("the kernel has no BTF (/sys/kernel/btf/vmlinux)")?;
            let program: &mut BtfTracePoint = ebpf
                .program_mut("warden_fork")
                .ok_or("warden_fork is not in the object")?
                .try_into()
                .map_err(|e| error_chain(&e))?;
            program.load("sched_process_fork", btf).map_err(|e| error_chain(&e))?;
            program.attach().map_err(|e| error_chain(&e))?;
            Ok(())
        })();
        let take = |ebpf: &mut Ebpf, name: &'static str| {
            ebpf.take_map(name).ok_or_else(|| NetError::Map { map: name, message: "not in the object".into() })
        };
        let v4 = LpmTrie::try_from(take(&mut ebpf, "GOVERNED_V4")?).map_err(map_error("GOVERNED_V4"))?;
        let v6 = LpmTrie::try_from(take(&mut ebpf, "GOVERNED_V6")?).map_err(map_error("GOVERNED_V6"))?;
        let open = HashMap::try_from(take(&mut ebpf, "OPEN_TGIDS")?).map_err(map_error("OPEN_TGIDS"))?;
        let ring = RingBuf::try_from(take(&mut ebpf, "EVENTS")?).map_err(map_error("EVENTS"))?;
        // SAFETY: the ring buffer owns its map's descriptor (an `OwnedFd` inside `MapData`) for as
        // long as it lives, and `as_raw_fd` always returns that one; the `AsyncFd` owns the ring
        // buffer, so the descriptor stays open and the same until the `AsyncFd` is dropped.
        let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(|e| NetError::Map { map: "EVENTS", message: e.to_string() })?;
        let firewall =
            Firewall { cgroup: cgroup.to_owned(), _ebpf: ebpf, v4, v6, open, ranges: BTreeMap::new(), fork_hook };
        Ok((firewall, Events { ring }))
    }

    /// The cgroup the hooks are attached to.
    pub fn cgroup(&self) -> &Path {
        &self.cgroup
    }

    /// Whether the fork hook runs (children of an open process are open too), else why not.
    pub fn fork_hook(&self) -> Result<(), &str> {
        self.fork_hook.as_ref().map(|_| ()).map_err(String::as_str)
    }

    /// Makes the governed prefixes exactly `ranges` (only the differences reach the kernel).
    pub fn set_ranges(&mut self, ranges: &BTreeMap<Cidr, KernelAction>) -> Result<(), NetError> {
        let gone: Vec<Cidr> = self.ranges.keys().filter(|c| !ranges.contains_key(c)).copied().collect();
        for cidr in gone {
            match cidr.address {
                IpAddr::V4(a) => self.v4.remove(&Key::new(cidr.prefix.into(), a.octets())),
                IpAddr::V6(a) => self.v6.remove(&Key::new(cidr.prefix.into(), a.octets())),
            }
            .map_err(map_error("GOVERNED"))?;
            self.ranges.remove(&cidr);
        }
        for (cidr, action) in ranges {
            if self.ranges.get(cidr) == Some(action) {
                continue;
            }
            let value = *action as u32;
            match cidr.address {
                IpAddr::V4(a) => self.v4.insert(&Key::new(cidr.prefix.into(), a.octets()), value, 0),
                IpAddr::V6(a) => self.v6.insert(&Key::new(cidr.prefix.into(), a.octets()), value, 0),
            }
            .map_err(map_error("GOVERNED"))?;
            self.ranges.insert(*cidr, *action);
        }
        Ok(())
    }

    /// The governed prefixes in the kernel now.
    pub fn ranges(&self) -> &BTreeMap<Cidr, KernelAction> {
        &self.ranges
    }

    /// Opens process `tgid` (and, with the fork hook, the processes it starts from now on) under
    /// grant number `grant`.
    pub fn open(&mut self, tgid: u32, grant: u32) -> Result<(), NetError> {
        self.open.insert(tgid, grant, 0).map_err(map_error("OPEN_TGIDS"))
    }

    /// Closes every process opened under `grant` (at once: the next connect is decided anew).
    pub fn close_grant(&mut self, grant: u32) -> Result<usize, NetError> {
        let keys: Vec<u32> =
            self.open.iter().filter_map(Result::ok).filter(|(_, g)| *g == grant).map(|(k, _)| k).collect();
        for key in &keys {
            // A process that exited between the read and the removal is gone already: fine.
            let _ = self.open.remove(key);
        }
        Ok(keys.len())
    }

    /// Every open tgid with its grant.
    pub fn open_tgids(&self) -> Vec<(u32, u32)> {
        self.open.iter().filter_map(Result::ok).collect()
    }
}
