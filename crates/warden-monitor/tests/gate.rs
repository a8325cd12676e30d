//! The fanotify pre-exec gate against real execs, as root, on tmpfs mounts each test creates
//! under a folder of its own: the gate's scope is "local filesystems under that folder", so it
//! never marks a filesystem the machine's other programs use. Every mount is removed when the
//! test ends, also when it fails. These tests run in the `process-monitor` nextest group.
//!
//! A blocked program is a stand-in compiled at run time carrying the content fingerprint of a
//! tool the tests' policy adds to the catalog and blocks, with a marker made up per run: the
//! gate's content path is the one real tools meet, and an enforcing agent of another test
//! running on the same machine (which would kill a stand-in of a real tool once it runs through
//! the loader) knows nothing of it. No test binary carries a real tool's markers.
#![cfg(target_os = "linux")]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use warden_api::Outcome;
use warden_monitor::gate::{DEFAULT_DEADLINE, ExecGate, GateScope, MarkKind};
use warden_monitor::{Decider, Launch};
use warden_policy::Policy;

const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";
const NOBODY: &str = "65534";

fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Whether the test can run; CI runs as root, so there a skip would hide a broken gate.
fn root_or_skip() -> bool {
    if running_as_root() {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "the gate tests must run as root in CI");
    println!("SKIPPED: the fanotify pre-exec gate needs root (CI runs as root, so it runs there)");
    false
}

fn compile(name: &str, flags: &[&str]) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/stand_in.c");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let private = out.with_extension(std::process::id().to_string());
    let status = Command::new("cc").arg("-O1").args(flags).arg("-o").arg(&private).arg(&source).status().unwrap();
    assert!(status.success(), "compiling the stand-in");
    std::fs::rename(&private, &out).unwrap();
    out
}

/// The tests' own tool's content marker, new for every run.
fn marker_text() -> &'static str {
    static MARKER: OnceLock<String> = OnceLock::new();
    MARKER.get_or_init(|| {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        format!("warden-gate-test-tool-{}-{nanos}", std::process::id())
    })
}

const TOOL: &str = "gate-test-tool";

/// A policy with a tool of the tests' own, known by its content (and by its install path,
/// `…/gate-test-tool/versions/*`) and blocked; all else allowed.
fn policy() -> Policy {
    let text = format!(
        "name = \"gate tests\"\ndefault_action = \"allow\"\n\
         [tools.{TOOL}]\naction = \"block\"\nmessage = \"blocked by the gate tests\"\n\
         [[catalog]]\nid = \"{TOOL}\"\nname = \"Gate test tool\"\nvendor = \"Warden tests\"\nkind = \"cli\"\n\
         executables = [\"**/gate-test-tool/versions/*\"]\n\
         fingerprints = [[\"{}\"]]\n",
        marker_text()
    );
    Policy::from_toml("gate-tests.toml", &text).expect("the tests' policy")
}

/// The stand-in carrying the tests' tool's content fingerprint.
fn fingerprinted() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let name = format!("gate_stand_in_tool_{}", std::process::id());
        compile(&name, &[&format!("-DFINGERPRINT=\"{}\"", marker_text())])
    })
}

/// The same program without the fingerprint: an ordinary build output.
fn innocent() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| compile("gate_stand_in_plain", &[]))
}

/// A folder of the test's own (readable by every user) and the tmpfs mounts made under it,
/// unmounted (innermost first, lazily if busy) when it is dropped.
struct TestRoot {
    dir: tempfile::TempDir,
    mounts: Vec<PathBuf>,
}

impl TestRoot {
    fn new() -> TestRoot {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        TestRoot { dir, mounts: Vec::new() }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn scope(&self) -> GateScope {
        GateScope::LocalFilesystems { under: self.dir.path().to_path_buf() }
    }

    fn mount_tmpfs(&mut self, relative: &str) -> PathBuf {
        let path = self.path(relative);
        std::fs::create_dir_all(&path).unwrap();
        let status =
            Command::new("mount").args(["-t", "tmpfs", "-o", "size=16m", "warden-gate-test"]).arg(&path).status();
        assert!(status.is_ok_and(|s| s.success()), "mounting a tmpfs at {}", path.display());
        self.mounts.push(path.clone());
        path
    }

    fn bind(&mut self, from: &Path, relative: &str) -> PathBuf {
        let path = self.path(relative);
        std::fs::create_dir_all(&path).unwrap();
        let status = Command::new("mount").arg("--bind").arg(from).arg(&path).status();
        assert!(status.is_ok_and(|s| s.success()), "bind-mounting {}", from.display());
        self.mounts.push(path.clone());
        path
    }

    fn unmount(&mut self, path: &Path) {
        let status = Command::new("umount").arg(path).status();
        assert!(status.is_ok_and(|s| s.success()), "unmounting {}", path.display());
        self.mounts.retain(|m| m != path);
    }

    /// Copies `program` to `relative` (mode 0755) and returns its path.
    fn install(&self, program: &Path, relative: &str) -> PathBuf {
        let target = self.path(relative);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(program, &target).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).unwrap();
        target
    }

    /// A marker file every user may append to.
    fn marker(&self, relative: &str) -> PathBuf {
        let path = self.path(relative);
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        path
    }
}

impl Drop for TestRoot {
    fn drop(&mut self) {
        for mount in self.mounts.iter().rev() {
            let unmounted = Command::new("umount").arg(mount).status().is_ok_and(|s| s.success());
            if !unmounted {
                let _ = Command::new("umount").arg("-l").arg(mount).status();
            }
        }
    }
}

fn start_gate(scope: &GateScope) -> (ExecGate, Receiver<Launch>) {
    let decider = Arc::new(Decider::new(policy(), None, Vec::new()));
    let (sender, launches) = channel();
    let gate = ExecGate::start(scope, decider, sender, DEFAULT_DEADLINE).expect("starting the gate");
    (gate, launches)
}

fn run(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().expect("starting the command")
}

/// Runs `program` with `FAKE_MARKER=marker`; the exec's error (EPERM is 1), if it failed.
fn exec(program: &Path, marker: &Path) -> Result<(), i32> {
    match Command::new(program).env("FAKE_MARKER", marker).stdin(Stdio::null()).status() {
        Ok(status) => {
            assert!(status.success(), "{} exited {status}", program.display());
            Ok(())
        }
        Err(error) => Err(error.raw_os_error().unwrap_or(-1)),
    }
}

fn runs(marker: &Path) -> usize {
    std::fs::read_to_string(marker).unwrap_or_default().lines().filter(|l| *l == "main").count()
}

/// The denial the gate reports for `tool`, within a second.
fn expect_denied(launches: &Receiver<Launch>, what: &str) -> Launch {
    let deadline = Instant::now() + Duration::from_secs(1);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match launches.recv_timeout(left) {
            Ok(launch) if launch.outcome == Outcome::Denied => return launch,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    panic!("no denial reported for {what}");
}

/// Whether an unprivileged user may create a user namespace here (`unshare -Urm`).
fn user_namespaces_allowed() -> bool {
    run(Command::new("setpriv").args([
        "--reuid",
        NOBODY,
        "--regid",
        NOBODY,
        "--clear-groups",
        "unshare",
        "-Urm",
        "true",
    ]))
    .status
    .success()
}

#[test]
fn whole_filesystem_marks_cover_bind_mounts_and_other_mount_namespaces() {
    if !root_or_skip() {
        return;
    }
    let mut root = TestRoot::new();
    let gated = root.mount_tmpfs("gated");
    let tool = root.install(fingerprinted(), "gated/bin/notes");
    let plain = root.install(innocent(), "gated/bin/build-tool");
    let marker = root.marker("gated/marker.txt");
    let (gate, launches) = start_gate(&root.scope());
    let marks = gate.marks();
    assert_eq!(marks.len(), 1, "{marks:?}");
    assert_eq!(marks[0].mount_point, gated);
    assert_eq!(marks[0].fs_type.as_deref(), Some("tmpfs"));
    assert_eq!(marks[0].kind, MarkKind::Filesystem, "this kernel accepts filesystem marks: {marks:?}");

    // Directly, and through a bind mount made after the gate started (the same filesystem:
    // nothing new to mark).
    assert_eq!(exec(&tool, &marker), Err(1), "EPERM");
    let launch = expect_denied(&launches, "the tool");
    assert_eq!(launch.verdict.tool.as_deref(), Some(TOOL));
    let bound = root.bind(&gated, "bound");
    assert_eq!(exec(&bound.join("bin/notes"), &marker), Err(1), "through a bind mount");
    expect_denied(&launches, "the tool through a bind mount");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(gate.marks().len(), 1, "a bind mount is no new filesystem: {:?}", gate.marks());

    // From a new mount namespace (its mounts are copies of ours), as root.
    let output =
        run(Command::new("unshare").args(["-m", "--propagation", "private"]).arg(&tool).env("FAKE_MARKER", &marker));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Operation not permitted"), "unshare -m: {stderr}");
    expect_denied(&launches, "the tool in a new mount namespace");

    // And as an unprivileged user in a user namespace of their own, where the kernel allows one.
    if user_namespaces_allowed() {
        let output = run(Command::new("setpriv")
            .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups", "unshare", "-Urm"])
            .arg(&tool)
            .env("FAKE_MARKER", &marker));
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("Operation not permitted"), "unshare -Urm as nobody: {stderr}");
        let launch = expect_denied(&launches, "the tool in a user namespace");
        assert_eq!(launch.facts.user.as_deref(), Some("nobody"));
        // The ordinary program runs there.
        let output = run(Command::new("setpriv")
            .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups", "unshare", "-Urm"])
            .arg(&plain)
            .env("FAKE_MARKER", &marker));
        assert!(output.status.success(), "{output:?}");
    } else {
        println!("NOTE: this kernel refuses unprivileged user namespaces; that part was not run");
    }

    // Allowed programs run through every path.
    assert_eq!(exec(&plain, &marker), Ok(()));
    assert_eq!(exec(&bound.join("bin/build-tool"), &marker), Ok(()));
    let output =
        run(Command::new("unshare").args(["-m", "--propagation", "private"]).arg(&plain).env("FAKE_MARKER", &marker));
    assert!(output.status.success(), "{output:?}");
    let expected = if user_namespaces_allowed() { 4 } else { 3 };
    assert_eq!(runs(&marker), expected, "only the ordinary program ran");
    gate.stop();
}

#[test]
fn filesystems_mounted_after_the_start_are_followed() {
    if !root_or_skip() {
        return;
    }
    let mut root = TestRoot::new();
    let (gate, launches) = start_gate(&root.scope());
    assert!(gate.marks().is_empty(), "nothing local under the test's folder yet: {:?}", gate.marks());
    let marker = root.marker("marker.txt");
    // Twice at the same place: the second tmpfs may reuse the first one's device number, and
    // must be marked anew all the same.
    for round in 0..2 {
        let later = root.mount_tmpfs("later");
        let deadline = Instant::now() + Duration::from_secs(3);
        while !gate.marks().iter().any(|m| m.mount_point == later) {
            assert!(Instant::now() < deadline, "round {round}: the new tmpfs was not marked: {:?}", gate.marks());
            std::thread::sleep(Duration::from_millis(20));
        }
        let tool = root.install(fingerprinted(), "later/notes");
        assert_eq!(exec(&tool, &marker), Err(1), "round {round}: EPERM");
        expect_denied(&launches, "the tool on a later tmpfs");
        let plain = root.install(innocent(), "later/tool");
        assert_eq!(exec(&plain, &marker), Ok(()));
        root.unmount(&later);
        let deadline = Instant::now() + Duration::from_secs(3);
        while gate.marks().iter().any(|m| m.mount_point == later) {
            assert!(Instant::now() < deadline, "an unmounted filesystem stays listed: {:?}", gate.marks());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert_eq!(runs(&marker), 2);
    gate.stop();
}

/// The stand-in built to be loaded by `interpreter` (its `PT_INTERP`), at `target`.
fn compile_with_interpreter(interpreter: &Path, target: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/stand_in.c");
    let status = Command::new("cc")
        .arg("-O1")
        .arg(format!("-Wl,--dynamic-linker={}", interpreter.display()))
        .arg("-o")
        .arg(target)
        .arg(&source)
        .status()
        .unwrap();
    assert!(status.success(), "compiling {}", target.display());
    target.to_path_buf()
}

/// The masks of this process's fanotify marks, from `/proc/self/fdinfo`.
fn own_fanotify_masks() -> Vec<u64> {
    let mut masks = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fdinfo").unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines().filter(|l| l.starts_with("fanotify sdev:") || l.starts_with("fanotify mnt_id:")) {
            let mask = line.split(' ').find_map(|f| f.strip_prefix("mask:")).unwrap();
            masks.push(u64::from_str_radix(mask, 16).unwrap());
        }
    }
    masks
}

const FAN_OPEN_PERM: u64 = 0x0001_0000;

/// SHA-256 of a file, as `sha256sum` prints it (the spelling admin rules use).
fn sha256sum(path: &Path) -> String {
    let output = run(Command::new("sha256sum").arg(path));
    String::from_utf8(output.stdout).unwrap().split_whitespace().next().unwrap().to_owned()
}

/// Admin rules by hash: a file the catalog knows nothing of is denied by its SHA-256 at any
/// name, and a file whose fingerprint says "blocked tool" runs when an allow rule names it (a
/// false positive); the gate reads the hash in the same pass as the fingerprint.
#[test]
fn admin_rules_by_hash_deny_and_allow_files_at_any_name() {
    if !root_or_skip() {
        return;
    }
    let mut root = TestRoot::new();
    root.mount_tmpfs("gated");
    let in_house = root.install(innocent(), "gated/opt/acme/agent");
    let copy = root.install(innocent(), "gated/tmp/x");
    let vetted = root.install(fingerprinted(), "gated/bin/vetted");
    let marker = root.marker("gated/marker.txt");
    let text = format!(
        "{}\n[[binaries]]\nsha256 = \"{}\"\naction = \"block\"\ntool = \"{TOOL}\"\n\
         [[binaries]]\nsha256 = \"{}\"\naction = \"allow\"\n",
        policy().to_toml(),
        sha256sum(&in_house),
        sha256sum(&vetted),
    );
    let policy = Policy::from_toml("by-hash.toml", &text).expect("the policy with hash rules");
    let decider = Arc::new(Decider::new(policy, None, Vec::new()));
    let (sender, launches) = channel();
    let gate = ExecGate::start(&root.scope(), decider, sender, DEFAULT_DEADLINE).expect("starting the gate");

    for program in [&in_house, &copy] {
        assert_eq!(exec(program, &marker), Err(1), "{} is denied by its hash", program.display());
        let launch = expect_denied(&launches, "the file named by hash");
        assert_eq!(launch.verdict.rule.to_string(), format!("binary:{}", sha256sum(&in_house)));
        assert_eq!(launch.verdict.tool.as_deref(), Some(TOOL));
        let content = launch.facts.content.expect("the gate read the file");
        assert_eq!(content.sha256.as_deref(), Some(sha256sum(&in_house).as_str()));
        assert!(content.build_id.is_some(), "cc writes a build-id note");
    }
    assert_eq!(exec(&vetted, &marker), Ok(()), "the allow rule beats the fingerprint");
    assert_eq!(runs(&marker), 1);
    drop(gate);
}

/// Issue 10 row 10: a hard link of a blocked file run first from another path never lets the
/// file through at its own path (the cache is keyed by the path too), and a file known by its
/// content is denied at every name.
#[test]
fn a_hard_link_run_first_never_lets_the_blocked_file_through() {
    if !root_or_skip() {
        return;
    }
    let mut root = TestRoot::new();
    root.mount_tmpfs("gated");
    // Known only by its install path: at an innocent name it is an ordinary program.
    let installed = root.install(innocent(), "gated/home/.local/share/gate-test-tool/versions/1.0");
    let link = root.path("gated/bin/notes");
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::fs::hard_link(&installed, &link).unwrap();
    // Known by its content: blocked at every name.
    let tool = root.install(fingerprinted(), "gated/bin/scratch");
    let tool_link = root.path("gated/bin/scratch-link");
    std::fs::hard_link(&tool, &tool_link).unwrap();
    let marker = root.marker("gated/marker.txt");
    let (gate, launches) = start_gate(&root.scope());

    for _ in 0..3 {
        assert_eq!(exec(&link, &marker), Ok(()), "the hard link at an innocent name runs");
    }
    assert_eq!(exec(&installed, &marker), Err(1), "the install path is denied after the link ran");
    let launch = expect_denied(&launches, "the install path");
    assert_eq!(launch.facts.exe, installed.to_str().unwrap());
    assert_eq!(exec(&link, &marker), Ok(()), "the link still runs: the denial is for the path");
    assert_eq!(exec(&installed, &marker), Err(1), "and the install path is still denied (cached)");
    expect_denied(&launches, "the install path again");

    assert_eq!(exec(&tool_link, &marker), Err(1), "content: the link is denied");
    expect_denied(&launches, "the fingerprinted link");
    assert_eq!(exec(&tool, &marker), Err(1), "content: the original is denied");
    expect_denied(&launches, "the fingerprinted original");
    assert_eq!(runs(&marker), 4, "only the innocent link's four runs reached main()");
    assert!(gate.stats().cache_hits.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    drop(gate);
}

#[test]
fn a_blocked_program_run_through_the_loader_is_denied_its_open() {
    if !root_or_skip() {
        return;
    }
    let mut root = TestRoot::new();
    root.mount_tmpfs("gated");
    // The loader's own exec must be on a gated filesystem for the gate to see it: a copy under
    // its own name (the test never gates `/`, where the system's loader lives).
    let loader = root.install(Path::new(LOADER), "gated/lib/ld-linux-x86-64.so.2");
    let tool = root.install(fingerprinted(), "gated/bin/notes");
    let plain = root.install(innocent(), "gated/bin/build-tool");
    let marker = root.marker("gated/marker.txt");
    let (gate, launches) = start_gate(&root.scope());
    assert!(own_fanotify_masks().iter().all(|m| m & FAN_OPEN_PERM == 0), "opens are not gated at rest");

    let output = run(Command::new(&loader).arg(&tool).arg("--version").env("FAKE_MARKER", &marker));
    assert_eq!(output.status.code(), Some(127), "the loader gives up: {output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Operation not permitted"), "{stderr}");
    let launch = expect_denied(&launches, "the tool through the loader");
    assert_eq!(launch.verdict.tool.as_deref(), Some(TOOL));
    assert_eq!(launch.facts.exe, loader.to_str().unwrap());
    assert_eq!(launch.facts.argv[1], tool.to_str().unwrap(), "{:?}", launch.facts.argv);
    assert_eq!(launch.facts.argv[2], "--version");
    assert_eq!(runs(&marker), 0, "the tool never ran");

    // With loader options before the program, and the program named relatively.
    let output = run(Command::new(&loader)
        .args(["--argv0", "build-tool", "./notes"])
        .current_dir(tool.parent().unwrap())
        .env("FAKE_MARKER", &marker));
    assert_eq!(output.status.code(), Some(127), "{output:?}");
    expect_denied(&launches, "the tool through the loader with options");

    // A renamed copy of the loader is still the loader (known by its content): the tool's
    // open is denied, an ordinary program runs.
    let renamed = root.install(Path::new(LOADER), "gated/lib/runner");
    let output = run(Command::new(&renamed).arg(&tool).arg("--version").env("FAKE_MARKER", &marker));
    assert_eq!(output.status.code(), Some(127), "the renamed loader gives up: {output:?}");
    let launch = expect_denied(&launches, "the tool through a renamed loader");
    assert_eq!(launch.facts.exe, renamed.to_str().unwrap());
    assert!(launch.facts.exe_is_loader, "{:?}", launch.facts);
    let output = run(Command::new(&renamed).arg(&plain).env("FAKE_MARKER", &marker));
    assert!(output.status.success(), "an ordinary program through the renamed loader: {output:?}");
    assert_eq!(runs(&marker), 1);

    // An ordinary program runs through the loader, and `--list` inspects without running.
    let output = run(Command::new(&loader).arg(&plain).env("FAKE_MARKER", &marker));
    assert!(output.status.success(), "{output:?}");
    assert_eq!(runs(&marker), 2);
    let output = run(Command::new(&loader).arg("--list").arg(&plain));
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("libc.so"), "{output:?}");
    assert!(gate.stats().loader_opens.load(std::sync::atomic::Ordering::Relaxed) >= 3);

    // A program whose interpreter is that loader copy execs it too, as the kernel loads it: no
    // directly run loader, so no open is judged, on the gated filesystem or off it (there the
    // gate sees only the loader's exec, and the process's own image tells it apart).
    let before = gate.stats().loader_opens.load(std::sync::atomic::Ordering::Relaxed);
    let on_gated = compile_with_interpreter(&loader, &root.path("gated/bin/linked"));
    let off_gated = compile_with_interpreter(&loader, &root.path("linked-elsewhere"));
    let judged = || gate.stats().loader_opens.load(std::sync::atomic::Ordering::Relaxed) - before;
    for _ in 0..2 {
        assert_eq!(exec(&on_gated, &marker), Ok(()));
    }
    assert_eq!(judged(), 0, "no open is judged for a program the kernel loads");
    assert_eq!(exec(&off_gated, &marker), Ok(()));
    assert_eq!(judged(), 1, "off the gated filesystem: its first open shows it is no loader run");
    assert_eq!(runs(&marker), 5);

    // Once the loaders have opened their programs, opens are not gated any more.
    let deadline = Instant::now() + Duration::from_secs(4);
    while own_fanotify_masks().iter().any(|m| m & FAN_OPEN_PERM != 0) {
        assert!(Instant::now() < deadline, "FAN_OPEN_PERM stayed on: {:x?}", own_fanotify_masks());
        std::thread::sleep(Duration::from_millis(50));
    }
    gate.stop();
}

#[test]
fn an_explicit_list_covers_its_filesystems_and_refuses_a_missing_path() {
    if !root_or_skip() {
        return;
    }
    let mut root = TestRoot::new();
    let gated = root.mount_tmpfs("gated");
    let other = root.mount_tmpfs("other");
    let marker = root.marker("marker.txt");
    let (gate, launches) = start_gate(&GateScope::Filesystems(vec![gated.join(".")]));
    assert_eq!(gate.marks().len(), 1);
    assert_eq!(gate.marks()[0].fs_type.as_deref(), Some("tmpfs"));
    let tool = root.install(fingerprinted(), "gated/notes");
    assert_eq!(exec(&tool, &marker), Err(1));
    expect_denied(&launches, "the tool on the listed filesystem");
    // A filesystem not listed is not gated.
    let plain = root.install(innocent(), "other/tool");
    assert_eq!(exec(&plain, &marker), Ok(()));
    gate.stop();
    drop(other);

    let decider = Arc::new(Decider::new(policy(), None, Vec::new()));
    let error =
        ExecGate::start(&GateScope::Filesystems(vec![root.path("missing")]), decider, channel().0, DEFAULT_DEADLINE)
            .expect_err("a path that does not exist cannot be gated");
    assert!(error.to_string().contains("missing"), "{error}");
}
