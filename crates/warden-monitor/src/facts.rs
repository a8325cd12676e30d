//! Reading a process's facts from the OS: `/proc` on Linux (exe, argv, cwd, user,
//! environment markers, the parent chain), and resolving an interpreter's script.
//!
//! Only the variables listed in [`ENV_MARKERS`] are kept from the environment, which may
//! hold secrets. Everything is read right after the exec event, so the facts describe the
//! new program image, never the stale one a poller remembers.

use std::collections::HashMap;
use std::path::Path;
use warden_policy::{
    AncestorFacts, Catalog, MAX_SETTINGS_FILE_BYTES, ProcessFacts, ScriptArgument, SettingsFile, interpreter_script,
};

/// How many ancestors are collected (the parent first). Eight covers a terminal, a shell,
/// `npx`, a wrapper and its relaunch with room to spare.
pub const MAX_ANCESTORS: usize = 8;

/// Reading facts failed.
#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    /// The process is gone (it exited before it could be read).
    #[error("process {0} has exited")]
    Exited(u32),
    /// The process belongs to someone we may not inspect.
    #[error("process {0} belongs to another user and cannot be inspected")]
    NotPermitted(u32),
    #[error("reading /proc/{pid}: {source}")]
    Io { pid: u32, source: std::io::Error },
}

impl FactsError {
    fn from_io(pid: u32, error: std::io::Error) -> FactsError {
        match error.kind() {
            std::io::ErrorKind::NotFound => FactsError::Exited(pid),
            std::io::ErrorKind::PermissionDenied => FactsError::NotPermitted(pid),
            _ if error.raw_os_error() == Some(3) => FactsError::Exited(pid), // ESRCH
            _ => FactsError::Io { pid, source: error },
        }
    }
}

/// Resolves the script an interpreter runs (`node /usr/local/bin/claude`, a symlink into
/// the npm package) to its real path, relative paths against `cwd`.
pub fn resolve_script(exe: &str, argv: &[String], cwd: Option<&str>) -> Option<String> {
    let ScriptArgument::Script { path, .. } = interpreter_script(exe, argv)? else {
        return None;
    };
    let path = Path::new(path);
    let full = match (path.is_absolute(), cwd) {
        (true, _) => path.to_path_buf(),
        (false, Some(cwd)) => Path::new(cwd).join(path),
        (false, None) => return None,
    };
    std::fs::canonicalize(full).ok().map(|p| p.to_string_lossy().into_owned())
}

/// Reads the settings files a tool launch names on its command line (`claude --settings
/// ./s.json`; which options name one is the catalog's business) into
/// `facts.settings_files`, relative paths against the launch's cwd. Files already there are
/// kept (a described launch may carry them). Never blocks and never reads more than
/// [`MAX_SETTINGS_FILE_BYTES`]: a FIFO, a device, a huge or non-UTF-8 file is recorded as
/// unreadable, which the policy counts as risky.
pub fn read_settings_files(catalog: &Catalog, facts: &mut ProcessFacts) {
    let wanted: Vec<String> = catalog
        .settings_files(facts)
        .into_iter()
        .filter(|path| !facts.settings_files.iter().any(|f| f.path == *path))
        .map(str::to_owned)
        .collect();
    for path in wanted {
        let full = match (Path::new(&path).is_absolute(), facts.cwd.as_deref()) {
            (true, _) => Path::new(&path).to_path_buf(),
            (false, Some(cwd)) => Path::new(cwd).join(&path),
            (false, None) => {
                facts.settings_files.push(SettingsFile {
                    path,
                    content: None,
                    unreadable: Some("relative path and unknown working directory".into()),
                });
                continue;
            }
        };
        let (content, unreadable) = match read_small_file(&full) {
            Ok(text) => (Some(text), None),
            Err(why) => (None, Some(why)),
        };
        facts.settings_files.push(SettingsFile { path, content, unreadable });
    }
}

fn read_small_file(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        // A FIFO would block the open until a writer comes: never wait for one.
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(|e| e.to_string())?;
    let metadata = file.metadata().map_err(|e| e.to_string())?;
    if !metadata.is_file() {
        return Err("not a regular file".into());
    }
    let mut bytes = Vec::new();
    file.take(MAX_SETTINGS_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_SETTINGS_FILE_BYTES {
        return Err(format!("larger than {MAX_SETTINGS_FILE_BYTES} bytes"));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8".into())
}

/// Names users by uid, remembering each answer (user databases can be slow: NSS, LDAP).
#[derive(Debug, Default)]
pub struct UserNames {
    known: HashMap<u32, Option<String>>,
}

impl UserNames {
    /// The login name of `uid`, if the user database knows it.
    pub fn name(&mut self, uid: u32) -> Option<String> {
        self.known.entry(uid).or_insert_with(|| lookup_user(uid)).clone()
    }
}

#[cfg(target_os = "linux")]
fn lookup_user(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok().flatten().map(|user| user.name)
}

/// Off Linux the poller does not read numeric uids (Windows has SIDs), so there is
/// nothing to name yet; launches there carry no user, and user-bound exceptions do not
/// apply to them.
#[cfg(not(target_os = "linux"))]
fn lookup_user(_uid: u32) -> Option<String> {
    None
}

/// The uid of login `name`, if the user database knows it (binding local users named in the
/// service's configuration to the device's owner account).
#[cfg(target_os = "linux")]
pub fn uid_of(name: &str) -> Option<u32> {
    nix::unistd::User::from_name(name).ok().flatten().map(|user| user.uid.as_raw())
}

#[cfg(not(target_os = "linux"))]
pub fn uid_of(_name: &str) -> Option<u32> {
    None
}

/// The login name this process runs as, spelled the way launches are attributed (by uid),
/// so exceptions filed under it match the launches the monitor sees.
#[cfg(target_os = "linux")]
pub fn current_user() -> Option<String> {
    lookup_user(nix::unistd::getuid().as_raw())
}

#[cfg(not(target_os = "linux"))]
pub fn current_user() -> Option<String> {
    None
}

/// The real uid this process runs as, the number launches are attributed by (`None` off
/// Linux, where the monitor does not read numeric uids).
#[cfg(target_os = "linux")]
pub fn current_uid() -> Option<u32> {
    Some(nix::unistd::getuid().as_raw())
}

#[cfg(not(target_os = "linux"))]
pub fn current_uid() -> Option<u32> {
    None
}

#[cfg(target_os = "linux")]
pub use linux::*;

#[cfg(target_os = "linux")]
mod linux {
    use super::*;
    use std::collections::BTreeMap;
    use warden_policy::ENV_MARKERS;

    /// The parts of `/proc/PID/stat` and `/proc/PID/status` that matter here.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct ProcStat {
        pub ppid: u32,
        /// Start time in clock ticks since boot: with the pid, it names one process
        /// (pids are reused; an exec keeps both).
        pub start_ticks: u64,
    }

    /// `/proc/PID/stat`: parent and start time.
    pub fn stat(pid: u32) -> Result<ProcStat, FactsError> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| FactsError::from_io(pid, e))?;
        parse_stat(&text).ok_or_else(|| FactsError::Io {
            pid,
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "unexpected /proc/PID/stat format"),
        })
    }

    /// Parses `/proc/PID/stat`. The command name (field 2) may contain spaces and
    /// parentheses, so fields are counted from the last `)`.
    pub fn parse_stat(text: &str) -> Option<ProcStat> {
        let rest = &text[text.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // fields[0] is the state (field 3), so field N is fields[N - 3].
        Some(ProcStat { ppid: fields.get(1)?.parse().ok()?, start_ticks: fields.get(19)?.parse().ok()? })
    }

    /// The real uid of a process (`Uid:` in `/proc/PID/status`).
    pub fn uid(pid: u32) -> Result<u32, FactsError> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| FactsError::from_io(pid, e))?;
        text.lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().next())
            .and_then(|uid| uid.parse().ok())
            .ok_or_else(|| FactsError::Io {
                pid,
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, "no Uid line in /proc/PID/status"),
            })
    }

    /// The executable, without the ` (deleted)` the kernel appends to replaced files.
    pub fn exe(pid: u32) -> Result<String, FactsError> {
        let link = std::fs::read_link(format!("/proc/{pid}/exe")).map_err(|e| FactsError::from_io(pid, e))?;
        let text = link.to_string_lossy();
        Ok(text.strip_suffix(" (deleted)").unwrap_or(&text).to_owned())
    }

    /// The argument vector.
    pub fn argv(pid: u32) -> Result<Vec<String>, FactsError> {
        let bytes = std::fs::read(format!("/proc/{pid}/cmdline")).map_err(|e| FactsError::from_io(pid, e))?;
        Ok(split_nul(&bytes))
    }

    fn split_nul(bytes: &[u8]) -> Vec<String> {
        let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
        if bytes.is_empty() {
            return Vec::new();
        }
        bytes.split(|&b| b == 0).map(|word| String::from_utf8_lossy(word).into_owned()).collect()
    }

    fn cwd(pid: u32) -> Option<String> {
        std::fs::read_link(format!("/proc/{pid}/cwd")).ok().map(|p| p.to_string_lossy().into_owned())
    }

    /// The environment markers of a process (empty when the environment is unreadable).
    pub fn env_markers(pid: u32) -> BTreeMap<String, String> {
        let Ok(bytes) = std::fs::read(format!("/proc/{pid}/environ")) else {
            return BTreeMap::new();
        };
        split_nul(&bytes)
            .into_iter()
            .filter_map(|entry| {
                let (name, value) = entry.split_once('=')?;
                ENV_MARKERS.contains(&name).then(|| (name.to_owned(), value.to_owned()))
            })
            .collect()
    }

    /// Reads everything a decision needs about `pid`, ancestors included.
    pub fn read(pid: u32, users: &mut UserNames) -> Result<(ProcessFacts, ProcStat, u32), FactsError> {
        let exe = exe(pid)?;
        let argv = argv(pid)?;
        let stat = stat(pid)?;
        let uid = uid(pid)?;
        let cwd = cwd(pid);
        let script = resolve_script(&exe, &argv, cwd.as_deref());
        let facts = ProcessFacts {
            pid: Some(pid),
            exe,
            argv,
            env: env_markers(pid),
            cwd,
            user: users.name(uid),
            // The caller binds the uid to an account (it holds the bindings; the uid is returned).
            account: None,
            script,
            ancestors: ancestors(stat.ppid),
            // Settings files are read once the launch is known to be a tool: see `read_settings_files`.
            ..ProcessFacts::default()
        };
        Ok((facts, stat, uid))
    }

    /// The parent chain from `ppid` upwards, nearest first, stopping at init or at the
    /// first ancestor that cannot be read.
    pub fn ancestors(mut ppid: u32) -> Vec<AncestorFacts> {
        let mut chain = Vec::new();
        while ppid > 1 && chain.len() < MAX_ANCESTORS {
            let (Ok(exe), Ok(argv), Ok(stat)) = (exe(ppid), argv(ppid), stat(ppid)) else {
                break;
            };
            let script = resolve_script(&exe, &argv, cwd(ppid).as_deref());
            chain.push(AncestorFacts { pid: Some(ppid), exe, argv, script });
            ppid = stat.ppid;
        }
        chain
    }

    /// Every live process id.
    pub fn all_pids() -> Vec<u32> {
        std::fs::read_dir("/proc")
            .map(|dir| dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok()).collect())
            .unwrap_or_default()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn stat_fields_are_counted_from_the_last_parenthesis() {
            let line = "4242 (we (ird) name) S 17 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
            assert_eq!(parse_stat(line), Some(ProcStat { ppid: 17, start_ticks: 987654 }));
            assert_eq!(parse_stat("garbage"), None);
        }

        #[test]
        fn reads_its_own_process() {
            let mut users = UserNames::default();
            let (facts, stat, uid) = read(std::process::id(), &mut users).unwrap();
            assert_eq!(facts.exe, std::env::current_exe().unwrap().to_string_lossy());
            assert_eq!(facts.argv.first().map(String::as_str), std::env::args().next().as_deref());
            assert_eq!(stat.ppid, std::os::unix::process::parent_id());
            assert_eq!(uid, nix::unistd::getuid().as_raw());
            assert!(facts.user.is_some());
            assert_eq!(facts.ancestors.first().and_then(|a| a.pid), Some(stat.ppid));
        }

        #[test]
        fn split_nul_keeps_empty_arguments() {
            assert_eq!(split_nul(b"node\0\0x\0"), ["node", "", "x"]);
            assert!(split_nul(b"").is_empty());
        }
    }
}
