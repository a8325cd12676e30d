//! What a launch's code *is*, read from the files themselves: the content fingerprint of
//! the native program file (so a copy, a hard link, a file run through the loader or from
//! memory is still the tool) and the npm package an interpreter's script belongs to (so a
//! copied package folder is still the tool).
//!
//! Each program file is read once, in one pass that scans for fingerprints, hashes the whole
//! file (SHA-256, what admin rules by hash match) and reads the ELF build-id note; results are
//! cached by (device, inode, size, mtime, ctime), which changes whenever the file's content
//! can have changed. Only native executables (ELF, Mach-O, PE magic) are read; scripts and
//! data cost one `stat` and a four-byte read.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use warden_policy::{ContentFacts, ContentMatcher, ProcessFacts, is_native_executable, preloaded_files};

/// How far up from a script a `package.json` is looked for.
const PACKAGE_DEPTH: usize = 8;

/// A `package.json` larger than this is not read (real ones are a few KiB).
const PACKAGE_JSON_LIMIT: u64 = 1 << 20;

/// What identifies one version of a file: it changes whenever the content can have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FileKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

#[cfg(unix)]
pub(crate) fn file_key(metadata: &std::fs::Metadata) -> FileKey {
    use std::os::unix::fs::MetadataExt;
    FileKey {
        dev: metadata.dev(),
        ino: metadata.ino(),
        size: metadata.size(),
        mtime_ns: i128::from(metadata.mtime()) * 1_000_000_000 + i128::from(metadata.mtime_nsec()),
        ctime_ns: i128::from(metadata.ctime()) * 1_000_000_000 + i128::from(metadata.ctime_nsec()),
    }
}

#[cfg(not(unix))]
pub(crate) fn file_key(metadata: &std::fs::Metadata) -> FileKey {
    let mtime = metadata.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    FileKey { dev: 0, ino: 0, size: metadata.len(), mtime_ns: mtime.map_or(0, |d| d.as_nanos() as i128), ctime_ns: 0 }
}

/// The content-identity cache of one reader (the watcher, the gate).
#[derive(Debug, Default)]
pub struct ContentIdentity {
    known: HashMap<FileKey, Option<ContentFacts>>,
    generation: u64,
    /// Files larger than this are not read (see [`ContentIdentity::with_size_limit`]).
    size_limit: Option<u64>,
    /// Files read in full so far (not cache hits), for tests and benchmarks.
    pub files_read: u64,
    /// Python `site-packages` folders read so far, each with its folder version.
    site_packages: HashMap<PathBuf, SitePackages>,
    /// Stop reading at the first complete fingerprint, leaving the hash out (see
    /// [`ContentIdentity::hash_after_fingerprint`]).
    stop_at_fingerprint: bool,
    /// The last file left unread for the size limit, still open (see
    /// [`ContentIdentity::take_skipped`]).
    skipped: Option<(FileKey, std::fs::File)>,
}

/// What the `RECORD` files of one `site-packages` folder list: every installed file (module
/// files, and entry points in the environment's `bin/`), lexically normalized, → its
/// distribution's name. Read again when the folder changes (an install adds a `.dist-info`).
#[derive(Debug)]
struct SitePackages {
    version: FileKey,
    files: HashMap<PathBuf, String>,
}

/// A reader that hashes every byte it hands out.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.hasher.update(&buf[..read]);
        Ok(read)
    }
}

/// How many files are remembered before the cache starts over.
const CACHE_LIMIT: usize = 20_000;

impl ContentIdentity {
    /// A reader that leaves files larger than `bytes` unread (`identify` returns `None` for
    /// them): the monitor's hot path and the gate decide every exec on the machine on one
    /// thread, so a first read of a large unknown binary (a freshly built test binary, a
    /// browser) must not hold up the execs queued behind it.
    pub fn with_size_limit(bytes: u64) -> ContentIdentity {
        ContentIdentity { size_limit: Some(bytes), ..ContentIdentity::default() }
    }

    /// Whether a file that carries a fingerprint is still read to its end for its SHA-256
    /// (default yes). `warden check` turns it off when the policy has no rule by hash: a real
    /// tool's file is 260–400 MB, and the fingerprint already decides.
    pub fn hash_after_fingerprint(mut self, yes: bool) -> ContentIdentity {
        self.stop_at_fingerprint = !yes;
        self
    }

    /// What `path`'s content says, from the cache when the file is unchanged. `generation`
    /// is the rules' generation: new rules may bring new fingerprints, so the cache follows.
    /// `None` when the file cannot be opened (gone, or closed to this process).
    pub fn identify(&mut self, path: &Path, matcher: &ContentMatcher, generation: u64) -> Option<ContentFacts> {
        if matcher.is_empty() {
            return None;
        }
        let file = std::fs::File::open(path).ok()?;
        self.identify_file(file, matcher, generation)
    }

    /// What an open file's content says (the gate reads the file being executed or opened
    /// through the descriptor fanotify gave it, which opens nothing again); as
    /// [`ContentIdentity::identify`], read from the start whatever the descriptor's offset.
    pub fn identify_file(
        &mut self,
        mut file: std::fs::File,
        matcher: &ContentMatcher,
        generation: u64,
    ) -> Option<ContentFacts> {
        use std::io::Seek;
        if generation != self.generation {
            self.known.clear();
            self.generation = generation;
        }
        if matcher.is_empty() {
            return None;
        }
        let metadata = file.metadata().ok()?;
        if !metadata.is_file() {
            return None;
        }
        let key = file_key(&metadata);
        // Before the size limit: a large file read elsewhere ([`ContentIdentity::remember`]) is known.
        if let Some(known) = self.known.get(&key) {
            return known.clone();
        }
        if self.size_limit.is_some_and(|limit| metadata.len() > limit) {
            self.skipped = Some((key, file));
            return None;
        }
        file.seek(std::io::SeekFrom::Start(0)).ok()?;
        let mut head = [0u8; 4];
        let read = file.read(&mut head).unwrap_or(0);
        let result = if is_native_executable(&head[..read]) {
            self.files_read += 1;
            #[cfg(unix)]
            let build_id = crate::elf::build_id(&file);
            #[cfg(not(unix))]
            let build_id = None;
            #[cfg(unix)]
            let is_loader = crate::elf::is_loader(&file);
            #[cfg(not(unix))]
            let is_loader = false;
            // One pass over the bytes: the fingerprint scan reads through the hasher, which
            // then takes the rest of the file (a scan stops at the first complete fingerprint).
            let mut reader = Hashing {
                inner: std::io::Cursor::new(head[..read].to_vec())
                    .chain(std::io::BufReader::with_capacity(1 << 20, file)),
                hasher: Sha256::new(),
            };
            let found = match matcher.scan(&mut reader) {
                Ok(found) => found,
                Err(_) => return None, // a read error is no verdict; the next look retries
            };
            let sha256 = if found.is_some() && self.stop_at_fingerprint {
                None
            } else {
                if std::io::copy(&mut reader, &mut std::io::sink()).is_err() {
                    return None;
                }
                Some(reader.hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
            };
            Some(ContentFacts {
                sha256,
                loader: found.is_none() && is_loader,
                build_id,
                tool: found.as_ref().map(|m| m.tool.clone()),
                evidence: found.map(|m| m.evidence),
            })
        } else {
            Some(ContentFacts::default())
        };
        if self.known.len() >= CACHE_LIMIT {
            self.known.clear();
        }
        self.known.insert(key, result.clone());
        result
    }

    /// The file the last lookups left unread because of the size limit (open: the process may
    /// exit meanwhile), for a reader without one; taking it clears it.
    pub(crate) fn take_skipped(&mut self) -> Option<(FileKey, std::fs::File)> {
        self.skipped.take()
    }

    /// Takes a result read by another reader (the watcher's worker for large files) into this
    /// cache, under the rules' `generation` it was read with (a stale one is dropped).
    pub(crate) fn remember(&mut self, key: FileKey, generation: u64, content: Option<ContentFacts>) {
        if generation != self.generation {
            return;
        }
        if self.known.len() >= CACHE_LIMIT {
            self.known.clear();
        }
        self.known.insert(key, content);
    }

    /// Fills `facts.content` (for the program file: `/proc/PID/exe` for a live process, so
    /// copies, hard links and memory-only files are read as what actually runs; the loader's
    /// program for `ld.so PROGRAM`) and `facts.packages`.
    pub fn complete(&mut self, facts: &mut ProcessFacts, program: &Path, matcher: &ContentMatcher, generation: u64) {
        facts.content = self.identify(program, matcher, generation).filter(|c| c.tool.is_some() || c.sha256.is_some());
        // The executable is the loader by its content (a renamed copy): what it runs is
        // its first non-option argument, whose file is read instead.
        if !facts.exe_is_loader && facts.content.as_ref().is_some_and(|c| c.loader) {
            facts.exe_is_loader = true;
            let program = program_path(facts);
            facts.content =
                self.identify(&program, matcher, generation).filter(|c| c.tool.is_some() || c.sha256.is_some());
        }
        facts.packages = packages(facts);
        facts.distributions = self.distributions(facts);
    }

    /// The Python distributions a Python launch's script belongs to (see
    /// [`ProcessFacts::distributions`]): the `*.dist-info/RECORD` of the `site-packages` folder
    /// above the script, or, for an entry point in an environment's `bin/` (`Scripts\`), of
    /// that environment's `lib/python*/site-packages`, lists it.
    pub fn distributions(&mut self, facts: &ProcessFacts) -> Vec<String> {
        if !warden_policy::is_python_interpreter(&facts.exe) {
            return Vec::new();
        }
        let Some(script) = facts.script.as_deref() else { return Vec::new() };
        let script = lexical(Path::new(script));
        let mut found = Vec::new();
        for site in site_packages_for(&script) {
            let Some(version) = std::fs::metadata(&site).ok().map(|m| file_key(&m)) else { continue };
            if self.site_packages.get(&site).is_none_or(|known| known.version != version) {
                if self.site_packages.len() >= 256 {
                    self.site_packages.clear();
                }
                self.site_packages.insert(site.clone(), SitePackages { version, files: read_records(&site) });
            }
            if let Some(name) = self.site_packages[&site].files.get(&script)
                && !found.contains(name)
            {
                found.push(name.clone());
            }
        }
        found
    }
}

/// How many `.dist-info` folders of one `site-packages` are read, and how large a `RECORD`
/// may be (real ones: a few KiB to a few MiB).
const DIST_INFO_LIMIT: usize = 4096;
const RECORD_LIMIT: u64 = 8 << 20;

/// The `site-packages` folders whose `RECORD` files could list `script`.
fn site_packages_for(script: &Path) -> Vec<PathBuf> {
    let mut sites: Vec<PathBuf> = script
        .ancestors()
        .skip(1) // the script itself: only the folders above it can be a site-packages
        .take(PACKAGE_DEPTH)
        .filter(|dir| dir.file_name().is_some_and(|n| n == "site-packages" || n == "dist-packages"))
        .map(Path::to_path_buf)
        .collect();
    let parent = script.parent();
    if let Some(prefix) =
        parent.filter(|p| p.file_name().is_some_and(|n| n == "bin" || n == "Scripts")).and_then(Path::parent)
    {
        if let Ok(entries) = std::fs::read_dir(prefix.join("lib")) {
            for entry in entries.flatten().take(64) {
                if entry.file_name().to_string_lossy().starts_with("python") {
                    sites.push(entry.path().join("site-packages"));
                }
            }
        }
        sites.push(prefix.join("Lib").join("site-packages"));
    }
    sites.retain(|site| site.is_dir());
    sites
}

/// Every file the `RECORD`s of `site` list → its distribution (the `.dist-info` folder's name
/// before its version: `aider_chat-0.86.1.dist-info` → `aider_chat`).
fn read_records(site: &Path) -> HashMap<PathBuf, String> {
    let mut files = HashMap::new();
    let Ok(entries) = std::fs::read_dir(site) else { return files };
    for entry in entries.flatten().take(DIST_INFO_LIMIT * 4) {
        let folder = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = folder.strip_suffix(".dist-info") else { continue };
        let name = stem.split('-').next().unwrap_or(stem).to_owned();
        let record = entry.path().join("RECORD");
        let Ok(metadata) = std::fs::metadata(&record) else { continue };
        if !metadata.is_file() || metadata.len() > RECORD_LIMIT {
            continue;
        }
        let Ok(text) = std::fs::read(&record) else { continue };
        for line in String::from_utf8_lossy(&text).lines() {
            // CSV: path,hash,size; a path holding a comma is quoted.
            let path = match line.strip_prefix('"') {
                Some(quoted) => quoted.split('"').next().unwrap_or(""),
                None => line.split(',').next().unwrap_or(""),
            };
            if !path.is_empty() {
                files.insert(lexical(&site.join(path)), name.clone());
            }
        }
    }
    files
}

/// `path` with `.` and `..` resolved by spelling alone (`RECORD` names entry points as
/// `../../../bin/aider`); the file system is not asked.
fn lexical(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The file whose content a live launch runs: `/proc/PID/exe` when the executable is the
/// program (it stays readable for deleted and memory-only files), else the loader's program
/// resolved against the working directory.
pub fn program_path(facts: &ProcessFacts) -> PathBuf {
    let exe = facts.interpreter_name();
    let program = warden_policy::program_file(exe, &facts.argv);
    if program == exe {
        return match facts.pid {
            Some(pid) if cfg!(target_os = "linux") => PathBuf::from(format!("/proc/{pid}/exe")),
            _ => PathBuf::from(&facts.exe),
        };
    }
    match &facts.cwd {
        Some(cwd) => Path::new(cwd).join(program),
        None => PathBuf::from(program),
    }
}

/// The npm packages an interpreter launch's code belongs to: for the (resolved) script and
/// every file it preloads, the `name` of the nearest `package.json` above it that has one.
pub fn packages(facts: &ProcessFacts) -> Vec<String> {
    let mut files: Vec<PathBuf> = Vec::new();
    if let Some(script) = &facts.script {
        files.push(PathBuf::from(script));
    }
    for file in preloaded_files(&facts.exe, &facts.argv) {
        let path = Path::new(file);
        let full = match (&facts.cwd, path.is_absolute()) {
            (Some(cwd), false) => Path::new(cwd).join(path),
            _ => path.to_path_buf(),
        };
        if let Ok(real) = std::fs::canonicalize(full) {
            files.push(real);
        }
    }
    let mut names = Vec::new();
    for file in files {
        if let Some(name) = package_of(&file)
            && !names.contains(&name)
        {
            names.push(name);
        }
    }
    names
}

/// The `name` of the nearest `package.json` at or above `file` (a folder counts too: `node
/// -e 'require("/x")'` loads the folder's package). Nameless `package.json` files (a `dist/`
/// marking `"type": "module"`) are passed over; the search stops at `node_modules`.
pub fn package_of(file: &Path) -> Option<String> {
    let start = if file.is_dir() { Some(file) } else { file.parent() };
    for dir in start?.ancestors().take(PACKAGE_DEPTH) {
        if dir.file_name().is_some_and(|n| n == "node_modules") {
            return None;
        }
        let manifest = dir.join("package.json");
        let Ok(metadata) = std::fs::metadata(&manifest) else { continue };
        if !metadata.is_file() || metadata.len() > PACKAGE_JSON_LIMIT {
            continue;
        }
        #[derive(serde::Deserialize)]
        struct Manifest {
            name: Option<String>,
        }
        let Ok(text) = std::fs::read(&manifest) else { continue };
        if let Ok(Manifest { name: Some(name) }) = serde_json::from_slice(&text) {
            return Some(name);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copied_package_folder_keeps_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let package = dir.path().join("x");
        std::fs::create_dir_all(package.join("dist")).unwrap();
        std::fs::write(package.join("package.json"), r#"{"name":"@anthropic-ai/claude-code","version":"2.1.0"}"#)
            .unwrap();
        std::fs::write(package.join("dist/package.json"), r#"{"type":"module"}"#).unwrap();
        std::fs::write(package.join("cli.js"), "").unwrap();
        std::fs::write(package.join("dist/cli.js"), "").unwrap();
        assert_eq!(package_of(&package.join("cli.js")).as_deref(), Some("@anthropic-ai/claude-code"));
        assert_eq!(package_of(&package.join("dist/cli.js")).as_deref(), Some("@anthropic-ai/claude-code"));
        assert_eq!(package_of(&package).as_deref(), Some("@anthropic-ai/claude-code"));
        // A project that merely depends on the SDK is not the SDK's tool.
        let project = dir.path().join("app");
        std::fs::create_dir_all(&project).unwrap();
        std::fs::write(project.join("package.json"), r#"{"name":"app","dependencies":{"@anthropic-ai/sdk":"1"}}"#)
            .unwrap();
        assert_eq!(package_of(&project.join("index.js")).as_deref(), Some("app"));
        // Broken manifests are passed over, not trusted.
        std::fs::write(project.join("package.json"), "{not json").unwrap();
        assert_eq!(package_of(&project.join("index.js")), None);
    }

    #[test]
    fn a_python_script_belongs_to_the_distribution_whose_record_lists_it() {
        let dir = tempfile::tempdir().unwrap();
        let venv = dir.path().join("venvs/tools");
        let site = venv.join("lib/python3.11/site-packages");
        let write = |path: &Path, text: &str| {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write(&site.join("aider/main.py"), "");
        write(&venv.join("bin/aider"), "#!/usr/bin/python3\n");
        write(&venv.join("bin/notes"), "#!/usr/bin/python3\n"); // renamed entry point, listed
        write(&venv.join("bin/mine"), "#!/usr/bin/python3\n"); // the user's own script
        write(
            &site.join("aider_chat-0.86.1.dist-info/RECORD"),
            "aider/__init__.py,sha256=x,1\naider/main.py,sha256=y,2\n../../../bin/aider,sha256=z,3\n\"../../../bin/notes\",,\n",
        );
        write(&site.join("anthropic-0.40.0.dist-info/RECORD"), "anthropic/__init__.py,,\n");
        write(&site.join("anthropic/__init__.py"), "");
        let mut identity = ContentIdentity::default();
        let launch = |exe: &str, script: &Path| ProcessFacts {
            exe: exe.into(),
            argv: vec![exe.into(), script.to_string_lossy().into_owned()],
            script: Some(script.to_string_lossy().into_owned()),
            ..ProcessFacts::default()
        };
        let cases: Vec<(&str, PathBuf, Vec<&str>)> = vec![
            ("/usr/bin/python3.11", venv.join("bin/aider"), vec!["aider_chat"]),
            ("/usr/bin/python3.11", venv.join("bin/notes"), vec!["aider_chat"]),
            ("/usr/bin/python3", site.join("aider/main.py"), vec!["aider_chat"]),
            ("/usr/bin/python3", venv.join("bin/mine"), vec![]),
            // A project using the Anthropic SDK is the SDK's distribution, which is no tool.
            ("/usr/bin/python3", site.join("anthropic/__init__.py"), vec!["anthropic"]),
            // Only Python launches are looked up.
            ("/usr/bin/node", venv.join("bin/aider"), vec![]),
        ];
        for (exe, script, expected) in &cases {
            assert_eq!(identity.distributions(&launch(exe, script)), *expected, "{exe} {}", script.display());
        }
        // A copied environment keeps its records.
        let copy = dir.path().join("elsewhere");
        let status = std::process::Command::new("cp").arg("-r").arg(&venv).arg(&copy).status().unwrap();
        assert!(status.success());
        assert_eq!(identity.distributions(&launch("/usr/bin/python3", &copy.join("bin/aider"))), vec!["aider_chat"]);
        // The catalog knows the distribution by its normalized name.
        let catalog = warden_policy::Catalog::embedded();
        let mut facts = launch("/usr/bin/python3", &copy.join("bin/notes"));
        facts.distributions = identity.distributions(&facts);
        assert_eq!(catalog.identify(&facts).map(|found| found.tool.id.clone()).as_deref(), Some("aider"));
    }

    #[test]
    fn content_is_read_once_per_file_version() {
        let catalog = warden_policy::Catalog::embedded();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes");
        // The markers come from the catalog at run time: a test binary carrying them as a
        // literal would look like Claude Code to an enforcing agent running beside the tests.
        let markers = catalog.tool("claude-code").unwrap().fingerprints[0].join(" .. ");
        let mut bytes = b"\x7fELF".to_vec();
        bytes.extend_from_slice(&[0; 5000]);
        bytes.extend_from_slice(markers.as_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let mut identity = ContentIdentity::default();
        let first = identity.identify(&path, catalog.content(), 1).unwrap();
        assert_eq!(first.tool.as_deref(), Some("claude-code"));
        assert_eq!(identity.identify(&path, catalog.content(), 1), Some(first.clone()));
        assert_eq!(identity.files_read, 1);
        // The same read hashed the whole file, past the fingerprint (what `sha256sum` says).
        let sum = std::process::Command::new("sha256sum").arg(&path).output().unwrap();
        let sum = String::from_utf8(sum.stdout).unwrap();
        assert_eq!(first.sha256.as_deref(), sum.split_whitespace().next(), "{sum}");
        assert_eq!(first.build_id, None, "no program headers, no build-id");
        // Told to stop at the fingerprint (no rule by hash to match), the file is not hashed.
        let mut quick = ContentIdentity::default().hash_after_fingerprint(false);
        let stopped = quick.identify(&path, catalog.content(), 1).unwrap();
        assert_eq!((stopped.tool.as_deref(), stopped.sha256), (Some("claude-code"), None));
        // A real program: hashed and its build-id read (readelf -n shows the same).
        let system = identity.identify(Path::new("/bin/true"), catalog.content(), 1).unwrap();
        assert_eq!(system.tool, None);
        assert_eq!(system.sha256.as_ref().map(String::len), Some(64));
        assert!(system.build_id.is_some(), "/bin/true carries a build-id note");
        assert_eq!(identity.files_read, 2);
        // A script is never scanned, and carries no tool.
        std::fs::write(&path, format!("#!/bin/sh\n# {markers}\n")).unwrap();
        assert_eq!(identity.identify(&path, catalog.content(), 1), Some(ContentFacts::default()));
        assert_eq!(identity.files_read, 2);
    }
}
