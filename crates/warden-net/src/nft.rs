//! The nftables fallback, for kernels where the eBPF hooks cannot load: one table (`inet warden`
//! by default) whose `output` chain refuses connections to the governed `block` prefixes — TCP with
//! a reset, anything else (QUIC, DNS over UDP) with ICMP administratively prohibited — for every
//! process in the network namespace, except those in the exception cgroup.
//!
//! An approved exception opens its launch tree by moving its processes into a cgroup v2 folder
//! under that exception cgroup (`<open>/grant-N`): their children are born there, and the chain
//! accepts any socket whose cgroup has the exception cgroup as its ancestor (`socket cgroupv2
//! level L`). Closing the grant moves every process still in `grant-N` back to the cgroup the
//! launch came from. Compared with the eBPF layer: no per-connection events (the kernel's verdict
//! is not reported), `observe` prefixes are not seen at all, and the error a refused process gets
//! is `ECONNREFUSED`/`EHOSTUNREACH` rather than `EPERM`; moving a process out of its session's
//! cgroup also takes it out of that cgroup's resource limits while the exception lasts.
//!
//! The ruleset is written with the `nft` command (nftables' own parser: a refused ruleset is
//! refused whole, nothing half-applied). The `nftables` crate's typed JSON cannot express the
//! `socket cgroupv2 level` match this needs (0.6.3), so the few statements are formatted here
//! from typed values only (`Cidr`, a checked cgroup path).

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use warden_policy::Cidr;

use crate::kernel::{KernelAction, KernelRule};

/// `ESRCH` (Linux's value; this module is Linux only): writing a pid that already exited to
/// `cgroup.procs` fails with it.
const ESRCH: i32 = 3;

/// nftables resolves `socket cgroupv2` paths relative to this folder.
const NFT_CGROUP_BASE: &str = "/sys/fs/cgroup";

/// Why the fallback could not be set up or changed.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("running {command}: {source}")]
    Spawn { command: String, source: std::io::Error },
    #[error("nft refused the ruleset: {0}")]
    Refused(String),
    #[error("the exception cgroup {path}: {source}")]
    Cgroup { path: PathBuf, source: std::io::Error },
    #[error("the exception cgroup {0} must be a folder below {NFT_CGROUP_BASE} of printable characters without quotes")]
    CgroupPath(PathBuf),
    #[error("the table name {0:?} must be 1–32 letters, digits, - or _")]
    TableName(String),
}

/// Where and how the fallback is installed.
#[derive(Debug, Clone)]
pub struct NftOptions {
    /// The `inet` table Warden owns (replaced whole at install, deleted on drop).
    pub table: String,
    /// The cgroup v2 folder exception launch trees are moved below (created; removed on drop).
    pub open_cgroup: PathBuf,
    /// The cgroup v2 hierarchy's root (its mount point) the `level` counts from.
    pub cgroup_root: PathBuf,
    /// The command that runs `nft` (`["nft"]`; the tests prefix `nsenter --net=…`).
    pub nft: Vec<OsString>,
}

/// The installed fallback; dropping it deletes the table and puts opened processes back.
#[derive(Debug)]
pub struct NftFallback {
    options: NftOptions,
    ranges: BTreeMap<Cidr, KernelRule>,
    /// Grant → (its cgroup, the cgroup its launch came from, tgids moved).
    grants: HashMap<u32, Grant>,
}

#[derive(Debug)]
struct Grant {
    folder: PathBuf,
    origin: Option<PathBuf>,
    tgids: Vec<u32>,
}

impl NftFallback {
    /// Creates the exception cgroup and installs the table (empty sets). Errors are typed; nothing
    /// is left behind when one occurs.
    pub fn install(options: NftOptions) -> Result<NftFallback, NftError> {
        if options.table.is_empty()
            || options.table.len() > 32
            || !options.table.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(NftError::TableName(options.table.clone()));
        }
        let relative = nft_cgroup_path(&options.open_cgroup)?;
        let level = options
            .open_cgroup
            .strip_prefix(&options.cgroup_root)
            .map_err(|_| NftError::CgroupPath(options.open_cgroup.clone()))?
            .components()
            .count();
        std::fs::create_dir_all(&options.open_cgroup)
            .map_err(|source| NftError::Cgroup { path: options.open_cgroup.clone(), source })?;
        let table = &options.table;
        // `add` then `delete` makes the delete succeed whether or not an older table exists: the
        // table is replaced whole, in the same transaction as its new contents.
        let script = format!(
            "add table inet {table}\n\
             delete table inet {table}\n\
             table inet {table} {{\n\
             \tset block4 {{ type ipv4_addr; flags interval; auto-merge; }}\n\
             \tset block6 {{ type ipv6_addr; flags interval; auto-merge; }}\n\
             \tchain output {{\n\
             \t\ttype filter hook output priority 0; policy accept;\n\
             \t\tsocket cgroupv2 level {level} \"{relative}\" accept\n\
             \t\tip daddr @block4 meta l4proto tcp reject with tcp reset\n\
             \t\tip daddr @block4 reject with icmpx admin-prohibited\n\
             \t\tip6 daddr @block6 meta l4proto tcp reject with tcp reset\n\
             \t\tip6 daddr @block6 reject with icmpx admin-prohibited\n\
             \t}}\n\
             }}\n"
        );
        let fallback = NftFallback { options, ranges: BTreeMap::new(), grants: HashMap::new() };
        fallback.nft(&script)?;
        Ok(fallback)
    }

    /// The governed prefixes; only `block` ones are refused (`observe` needs the eBPF layer), and
    /// never a shared front end's (a table cannot tell which name a process resolved: refusing the
    /// address would cut off unrelated traffic to it).
    pub fn set_ranges(&mut self, ranges: &BTreeMap<Cidr, KernelRule>) -> Result<(), NftError> {
        if *ranges == self.ranges {
            return Ok(());
        }
        let table = &self.options.table;
        let blocked = |v4: bool| -> Vec<String> {
            ranges
                .iter()
                .filter(|(cidr, rule)| {
                    rule.action == KernelAction::Block && !rule.shared && cidr.address.is_ipv4() == v4
                })
                .map(|(cidr, _)| cidr.to_string())
                .collect()
        };
        let mut script = format!("flush set inet {table} block4\nflush set inet {table} block6\n");
        for (set, list) in [("block4", blocked(true)), ("block6", blocked(false))] {
            if !list.is_empty() {
                script.push_str(&format!("add element inet {table} {set} {{ {} }}\n", list.join(", ")));
            }
        }
        self.nft(&script)?;
        self.ranges = ranges.clone();
        Ok(())
    }

    /// The prefixes last written.
    pub fn ranges(&self) -> &BTreeMap<Cidr, KernelRule> {
        &self.ranges
    }

    /// Opens process `tgid` (and what it starts from now on) under `grant`: moves it into the
    /// grant's cgroup. A process that already exited is not an error.
    pub fn open(&mut self, tgid: u32, grant: u32) -> Result<(), NftError> {
        let origin = cgroup_of(tgid, &self.options.cgroup_root);
        let entry = match self.grants.entry(grant) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let folder = self.options.open_cgroup.join(format!("grant-{grant}"));
                std::fs::create_dir_all(&folder).map_err(|source| NftError::Cgroup { path: folder.clone(), source })?;
                entry.insert(Grant { folder, origin: origin.clone(), tgids: Vec::new() })
            }
        };
        match std::fs::write(entry.folder.join("cgroup.procs"), tgid.to_string()) {
            Ok(()) => {
                entry.tgids.push(tgid);
                Ok(())
            }
            Err(error) if error.raw_os_error() == Some(ESRCH) => Ok(()),
            Err(source) => Err(NftError::Cgroup { path: entry.folder.clone(), source }),
        }
    }

    /// Closes a grant: every process in its cgroup (the opened ones and what they started) goes
    /// back to where the launch came from. Returns how many were moved.
    pub fn close_grant(&mut self, grant: u32) -> Result<usize, NftError> {
        let Some(entry) = self.grants.remove(&grant) else { return Ok(0) };
        let back = entry.origin.clone().unwrap_or_else(|| self.options.cgroup_root.clone());
        let moved = move_all(&entry.folder, &back)?;
        let _ = std::fs::remove_dir(&entry.folder);
        Ok(moved)
    }

    /// (tgid, grant) of the processes opened (not their children).
    pub fn open_tgids(&self) -> Vec<(u32, u32)> {
        self.grants.iter().flat_map(|(grant, g)| g.tgids.iter().map(move |tgid| (*tgid, *grant))).collect()
    }

    fn nft(&self, script: &str) -> Result<(), NftError> {
        let (program, args) =
            self.options.nft.split_first().map_or((OsString::from("nft"), &[][..]), |(p, a)| (p.clone(), a));
        let command =
            format!("{} -f -", self.options.nft.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "));
        let mut child = Command::new(&program)
            .args(args)
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| NftError::Spawn { command: command.clone(), source })?;
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(script.as_bytes())
            .map_err(|source| NftError::Spawn { command: command.clone(), source })?;
        let output = child.wait_with_output().map_err(|source| NftError::Spawn { command, source })?;
        if !output.status.success() {
            return Err(NftError::Refused(String::from_utf8_lossy(&output.stderr).trim().to_owned()));
        }
        Ok(())
    }
}

impl Drop for NftFallback {
    fn drop(&mut self) {
        let grants: Vec<u32> = self.grants.keys().copied().collect();
        for grant in grants {
            let _ = self.close_grant(grant);
        }
        let _ = self.nft(&format!("delete table inet {}\n", self.options.table));
        let _ = std::fs::remove_dir(&self.options.open_cgroup);
    }
}

/// `path` as nftables names it: relative to `/sys/fs/cgroup`, printable, no quotes.
fn nft_cgroup_path(path: &Path) -> Result<String, NftError> {
    let relative = path.strip_prefix(NFT_CGROUP_BASE).map_err(|_| NftError::CgroupPath(path.to_owned()))?;
    let text =
        relative.to_str().filter(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_graphic() && c != '"' && c != '\\'));
    text.map(str::to_owned).ok_or_else(|| NftError::CgroupPath(path.to_owned()))
}

/// The cgroup v2 folder process `tgid` is in (`0::/path` in `/proc/<tgid>/cgroup`).
fn cgroup_of(tgid: u32, root: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{tgid}/cgroup")).ok()?;
    let path = text.lines().find_map(|line| line.strip_prefix("0::"))?;
    Some(root.join(path.trim_start_matches('/')))
}

/// Moves every process in `from` to `to`; how many moved (exited ones are skipped).
fn move_all(from: &Path, to: &Path) -> Result<usize, NftError> {
    let procs = std::fs::read_to_string(from.join("cgroup.procs"))
        .map_err(|source| NftError::Cgroup { path: from.to_owned(), source })?;
    let mut moved = 0;
    for pid in procs.lines().filter(|l| !l.is_empty()) {
        match std::fs::write(to.join("cgroup.procs"), pid) {
            Ok(()) => moved += 1,
            Err(error) if error.raw_os_error() == Some(ESRCH) => {}
            Err(source) => return Err(NftError::Cgroup { path: to.to_owned(), source }),
        }
    }
    Ok(moved)
}
