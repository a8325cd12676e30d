//! The eBPF hooks: load the clang-built object, attach it to a cgroup v2 folder, keep its maps,
//! read its events. Linux only.
//!
//! Maps (defined in `bpf/connect.bpf.c`): `GOVERNED_V4`/`GOVERNED_V6` (LPM tries: prefix →
//! [`KernelRule`]), `OPEN_TGIDS` (tgid → grant number: an approved exception's launch tree,
//! grown by the fork hook), `NAMES` (hashes of governed names → [`KernelRule`], for the DNS
//! answers the `cgroup_skb/ingress` program reads), `GOVERNED_BY`/`UNRELATED_BY` (which kind of name each process
//! resolved to an address), `EVENTS` (ring buffer of [`KernelReport`]s: every connect or UDP
//! sendmsg to a governed prefix, refused or not, and every DNS answer for a governed name).

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{HashMap, MapData, RingBuf};
use aya::programs::{BtfTracePoint, CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSockAddr};
use aya::{Btf, Ebpf, EbpfLoader};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use tokio::io::unix::AsyncFd;
use warden_policy::{Cidr, HostPattern};

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
    /// Let it through, silently: the sanctioned assistant's addresses, held so that an address
    /// learned from a governed name's DNS answer never blocks them.
    Allow = 3,
}

/// What the kernel holds for a prefix or a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelRule {
    pub action: KernelAction,
    /// A shared front end: decided by the name each process resolved to the address (see
    /// `warden_policy::GovernedRange::shared`).
    pub shared: bool,
}

impl From<KernelAction> for KernelRule {
    fn from(action: KernelAction) -> KernelRule {
        KernelRule { action, shared: false }
    }
}

/// `FLAG_SHARED` of the C program.
const FLAG_SHARED: u32 = 0x100;

impl KernelRule {
    fn value(self) -> u32 {
        self.action as u32 | if self.shared { FLAG_SHARED } else { 0 }
    }
}

/// The key the C program looks a DNS question's name up by: FNV-1a 64 over the name's DNS wire
/// form (length-prefixed labels, no final zero), lower case, read from its last byte to its first
/// (so the C program hashes every suffix of a name in one backward pass). `name` is a dotted name
/// without a trailing dot (`api.anthropic.com`).
pub fn name_hash(name: &str) -> u64 {
    let mut wire = Vec::with_capacity(name.len() + 1);
    for label in name.split('.') {
        wire.push(label.len() as u8);
        wire.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    wire.iter().rev().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// `struct name_key` of the C program: the hash, then NAME_EXACT (1) or NAME_UNDER (2), then padding.
fn name_key(pattern: &HostPattern) -> [u8; 16] {
    let (name, kind) = match pattern {
        HostPattern::Exact(name) => (name, 1u32),
        HostPattern::Under(domain) => (domain, 2u32),
    };
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&name_hash(name).to_ne_bytes());
    key[8..12].copy_from_slice(&kind.to_ne_bytes());
    key
}

/// What the kernel did with a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelVerdict {
    Denied,
    Observed,
    /// A governed destination let through because the process is open (an exception).
    Open,
    /// A shared front end's address let through: the process resolved no name to it that the
    /// kernel saw (a hard-coded address, a cache daemon, encrypted DNS), so it cannot be decided.
    Unnamed,
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
/// `HOOK_DNS`: the record is a `struct dns_event`.
const HOOK_DNS: u8 = 5;
/// `struct dns_event`: 16 + 2+1+1 + 256 + 8 × (1+1+2+4+16) = 468 bytes.
const DNS_EVENT_SIZE: usize = 468;

/// What the ring buffer carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelReport {
    Connect(KernelEvent),
    Answer(DnsAnswer),
}

impl KernelReport {
    /// Reads one ring buffer record: a `struct event` or, with `hook == HOOK_DNS`, a `struct dns_event`.
    pub fn parse(bytes: &[u8]) -> Option<KernelReport> {
        match bytes.get(14) {
            Some(&HOOK_DNS) => DnsAnswer::parse(bytes).map(KernelReport::Answer),
            Some(_) => KernelEvent::parse(bytes).map(KernelReport::Connect),
            None => None,
        }
    }
}

/// A DNS answer for a governed name, read in the kernel before the process that asked saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAnswer {
    /// The process whose socket asked, and its uid.
    pub tgid: u32,
    pub uid: u32,
    /// The question's name, lower case, no trailing dot.
    pub name: String,
    /// Its A and AAAA records (at most 8), each with its TTL in seconds and whether this answer
    /// added it to the kernel's governed prefixes (it was not there yet).
    pub records: Vec<DnsRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecord {
    pub address: IpAddr,
    pub ttl: u32,
    pub learned: bool,
}

impl DnsAnswer {
    /// Reads a `struct dns_event` (layout in `bpf/connect.bpf.c`); `None` for a short record or a
    /// name that is not valid DNS wire form.
    pub fn parse(bytes: &[u8]) -> Option<DnsAnswer> {
        if bytes.len() < DNS_EVENT_SIZE || bytes[14] != HOOK_DNS {
            return None;
        }
        let u32_at = |i: usize| u32::from_ne_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let name_len = usize::from(u16::from_ne_bytes([bytes[16], bytes[17]])).min(255);
        let count = usize::from(bytes[18]).min(8);
        let wire = &bytes[20..20 + name_len];
        let mut labels = Vec::new();
        let mut at = 0;
        while at < wire.len() {
            let len = usize::from(wire[at]);
            let label = wire.get(at + 1..at + 1 + len).filter(|_| len > 0 && len <= 63)?;
            labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
            at += 1 + len;
        }
        let records = (0..count)
            .filter_map(|n| {
                let r = &bytes[276 + n * 24..300 + n * 24];
                let address = match r[0] {
                    4 => IpAddr::V4(Ipv4Addr::new(r[8], r[9], r[10], r[11])),
                    6 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&r[8..24]).ok()?)),
                    _ => return None,
                };
                Some(DnsRecord { address, ttl: u32::from_ne_bytes([r[4], r[5], r[6], r[7]]), learned: r[1] == 1 })
            })
            .collect();
        Some(DnsAnswer { tgid: u32_at(4), uid: u32_at(8), name: labels.join("."), records })
    }
}

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
                4 => KernelVerdict::Unnamed,
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
    names_map: HashMap<MapData, [u8; 16], u32>,
    ranges: BTreeMap<Cidr, KernelRule>,
    names: BTreeMap<HostPattern, KernelRule>,
    fork_hook: Result<(), String>,
    dns_hook: Result<(), String>,
}

impl std::fmt::Debug for Firewall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Firewall").field("cgroup", &self.cgroup).field("ranges", &self.ranges.len()).finish()
    }
}

/// The ring buffer of [`KernelReport`]s, readable from async code.
pub struct Events {
    ring: AsyncFd<RingBuf<MapData>>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").field("fd", &self.ring.get_ref().as_raw_fd()).finish()
    }
}

impl Events {
    /// The next report (waits for one). `None` only when the ring buffer cannot be polled any more.
    pub async fn next(&mut self) -> Option<KernelReport> {
        loop {
            let mut guard = self.ring.readable_mut().await.ok()?;
            let ring = guard.get_inner_mut();
            let mut found = None;
            while let Some(item) = ring.next() {
                if let Some(event) = KernelReport::parse(&item) {
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
        // DNS answers (shared front ends decided by name, addresses learned from answers): where
        // the kernel refuses it, addresses come from the service's own resolution only.
        let dns_hook = (|| -> Result<(), String> {
            let program: &mut CgroupSkb = ebpf
                .program_mut("warden_dns")
                .ok_or("warden_dns is not in the object")?
                .try_into()
                .map_err(|e: aya::programs::ProgramError| error_chain(&e))?;
            program.load().map_err(|e| error_chain(&e))?;
            program
                .attach(&folder, CgroupSkbAttachType::Ingress, CgroupAttachMode::Single)
                .map_err(|e| error_chain(&e))?;
            Ok(())
        })();
        let take = |ebpf: &mut Ebpf, name: &'static str| {
            ebpf.take_map(name).ok_or_else(|| NetError::Map { map: name, message: "not in the object".into() })
        };
        let v4 = LpmTrie::try_from(take(&mut ebpf, "GOVERNED_V4")?).map_err(map_error("GOVERNED_V4"))?;
        let v6 = LpmTrie::try_from(take(&mut ebpf, "GOVERNED_V6")?).map_err(map_error("GOVERNED_V6"))?;
        let open = HashMap::try_from(take(&mut ebpf, "OPEN_TGIDS")?).map_err(map_error("OPEN_TGIDS"))?;
        let names_map = HashMap::try_from(take(&mut ebpf, "NAMES")?).map_err(map_error("NAMES"))?;
        let ring = RingBuf::try_from(take(&mut ebpf, "EVENTS")?).map_err(map_error("EVENTS"))?;
        // SAFETY: the ring buffer owns its map's descriptor (an `OwnedFd` inside `MapData`) for as
        // long as it lives, and `as_raw_fd` always returns that one; the `AsyncFd` owns the ring
        // buffer, so the descriptor stays open and the same until the `AsyncFd` is dropped.
        let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(|e| NetError::Map { map: "EVENTS", message: e.to_string() })?;
        let firewall = Firewall {
            cgroup: cgroup.to_owned(),
            _ebpf: ebpf,
            v4,
            v6,
            open,
            names_map,
            ranges: BTreeMap::new(),
            names: BTreeMap::new(),
            fork_hook,
            dns_hook,
        };
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

    /// Whether the DNS answer reader runs (shared front ends decided by the name a process
    /// resolved, governed names' new addresses learned), else why not.
    pub fn dns_hook(&self) -> Result<(), &str> {
        self.dns_hook.as_ref().map(|_| ()).map_err(String::as_str)
    }

    /// Makes the governed names DNS answers are matched against exactly `names` (only the
    /// differences reach the kernel). Include `allow` names: the longest match decides, so a
    /// sanctioned name under a governed domain stays unrelated.
    pub fn set_names(&mut self, names: &BTreeMap<HostPattern, KernelRule>) -> Result<(), NetError> {
        let gone: Vec<HostPattern> = self.names.keys().filter(|p| !names.contains_key(p)).cloned().collect();
        for pattern in gone {
            self.names_map.remove(&name_key(&pattern)).map_err(map_error("NAMES"))?;
            self.names.remove(&pattern);
        }
        for (pattern, rule) in names {
            if self.names.get(pattern) == Some(rule) {
                continue;
            }
            self.names_map.insert(name_key(pattern), rule.value(), 0).map_err(map_error("NAMES"))?;
            self.names.insert(pattern.clone(), *rule);
        }
        Ok(())
    }

    /// Makes the governed prefixes exactly `ranges` (only the differences reach the kernel). A
    /// prefix the kernel learned from a DNS answer stays until it is given here once and then left
    /// out (the caller ages learned addresses by their TTL).
    pub fn set_ranges(&mut self, ranges: &BTreeMap<Cidr, KernelRule>) -> Result<(), NetError> {
        let gone: Vec<Cidr> = self.ranges.keys().filter(|c| !ranges.contains_key(c)).copied().collect();
        for cidr in gone {
            match cidr.address {
                IpAddr::V4(a) => self.v4.remove(&Key::new(cidr.prefix.into(), a.octets())),
                IpAddr::V6(a) => self.v6.remove(&Key::new(cidr.prefix.into(), a.octets())),
            }
            .map_err(map_error("GOVERNED"))?;
            self.ranges.remove(&cidr);
        }
        for (cidr, rule) in ranges {
            if self.ranges.get(cidr) == Some(rule) {
                continue;
            }
            let value = rule.value();
            match cidr.address {
                IpAddr::V4(a) => self.v4.insert(&Key::new(cidr.prefix.into(), a.octets()), value, 0),
                IpAddr::V6(a) => self.v6.insert(&Key::new(cidr.prefix.into(), a.octets()), value, 0),
            }
            .map_err(map_error("GOVERNED"))?;
            self.ranges.insert(*cidr, *rule);
        }
        Ok(())
    }

    /// The governed prefixes in the kernel now.
    pub fn ranges(&self) -> &BTreeMap<Cidr, KernelRule> {
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
