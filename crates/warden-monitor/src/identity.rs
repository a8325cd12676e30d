//! What a launch's code *is*, read from the files themselves: the content fingerprint of
//! the native program file (so a copy, a hard link, a file run through the loader or from
//! memory is still the tool) and the npm package an interpreter's script belongs to (so a
//! copied package folder is still the tool).
//!
//! Each program file is read once: results are cached by (device, inode, size, mtime,
//! ctime), which changes whenever the file's content can have changed. Only native
//! executables (ELF, Mach-O, PE magic) are scanned; scripts and data cost one `stat` and a
//! four-byte read.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use warden_policy::{ContentFacts, ContentMatcher, ProcessFacts, is_native_executable, preloaded_files};

/// How far up from a script a `package.json` is looked for.
const PACKAGE_DEPTH: usize = 8;

/// A `package.json` larger than this is not read (real ones are a few KiB).
const PACKAGE_JSON_LIMIT: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FileKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

#[cfg(unix)]
fn file_key(metadata: &std::fs::Metadata) -> FileKey {
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
fn file_key(metadata: &std::fs::Metadata) -> FileKey {
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
        if !metadata.is_file() || self.size_limit.is_some_and(|limit| metadata.len() > limit) {
            return None;
        }
        let key = file_key(&metadata);
        if let Some(known) = self.known.get(&key) {
            return known.clone();
        }
        file.seek(std::io::SeekFrom::Start(0)).ok()?;
        let mut head = [0u8; 4];
        let read = file.read(&mut head).unwrap_or(0);
        let result = if is_native_executable(&head[..read]) {
            self.files_read += 1;
            let reader =
                std::io::Cursor::new(head[..read].to_vec()).chain(std::io::BufReader::with_capacity(1 << 20, file));
            match matcher.scan(reader) {
                Ok(found) => Some(ContentFacts {
                    sha256: None,
                    tool: found.as_ref().map(|m| m.tool.clone()),
                    evidence: found.map(|m| m.evidence),
                }),
                Err(_) => return None, // a read error is no verdict; the next look retries
            }
        } else {
            Some(ContentFacts::default())
        };
        if self.known.len() >= CACHE_LIMIT {
            self.known.clear();
        }
        self.known.insert(key, result.clone());
        result
    }

    /// Fills `facts.content` (for the program file: `/proc/PID/exe` for a live process, so
    /// copies, hard links and memory-only files are read as what actually runs; the loader's
    /// program for `ld.so PROGRAM`) and `facts.packages`.
    pub fn complete(&mut self, facts: &mut ProcessFacts, program: &Path, matcher: &ContentMatcher, generation: u64) {
        facts.content = self.identify(program, matcher, generation).filter(|c| c.tool.is_some() || c.sha256.is_some());
        facts.packages = packages(facts);
    }
}

/// The file whose content a live launch runs: `/proc/PID/exe` when the executable is the
/// program (it stays readable for deleted and memory-only files), else the loader's program
/// resolved against the working directory.
pub fn program_path(facts: &ProcessFacts) -> PathBuf {
    let program = warden_policy::program_file(&facts.exe, &facts.argv);
    if program == facts.exe {
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
        assert_eq!(identity.identify(&path, catalog.content(), 1), Some(first));
        assert_eq!(identity.files_read, 1);
        // A script is never scanned, and carries no tool.
        std::fs::write(&path, format!("#!/bin/sh\n# {markers}\n")).unwrap();
        assert_eq!(identity.identify(&path, catalog.content(), 1).and_then(|c| c.tool), None);
        assert_eq!(identity.files_read, 1);
    }
}
