//! The agent as root with its pre-exec gate, against what the gate cannot see: a tmpfs an
//! unprivileged user mounts inside a user namespace of their own is a new filesystem that is
//! not in the service's mount table, so no mark covers it; a program run from there is seen by
//! the process connector beside the gate and killed right after its exec.
//!
//! The gate covers only filesystems under the test's own folder. The blocked program is a
//! stand-in carrying the content marker of a tool the test's policy adds (made up per run, so no
//! other enforcing agent on the machine acts on it, and no test binary carries a real tool's
//! markers).
#![cfg(target_os = "linux")]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use warden_agent::{AgentConfig, GateScope, MarkKind, SourceChoice};
use warden_api::Outcome;
use warden_policy::Policy;

const TOOL: &str = "gate-test-tool";
const NOBODY: &str = "65534";

fn running_as_root() -> bool {
    let output = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

fn setpriv_nobody() -> Command {
    let mut command = Command::new("setpriv");
    command.args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"]).stdin(Stdio::null());
    command
}

/// A folder of the test's own with a tmpfs at `gated`, unmounted when dropped.
struct TestRoot {
    dir: tempfile::TempDir,
    mounted: Option<PathBuf>,
}

impl Drop for TestRoot {
    fn drop(&mut self) {
        if let Some(mount) = &self.mounted
            && !Command::new("umount").arg(mount).status().is_ok_and(|s| s.success())
        {
            let _ = Command::new("umount").arg("-l").arg(mount).status();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_on_a_tmpfs_mounted_in_a_users_own_namespace_is_killed_after_its_exec() {
    if !running_as_root() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "the gate tests must run as root in CI");
        println!("SKIPPED: the pre-exec gate needs root (CI runs as root, so it runs there)");
        return;
    }
    if !setpriv_nobody().args(["unshare", "-Urm", "true"]).status().is_ok_and(|s| s.success()) {
        println!("SKIPPED: this kernel refuses unprivileged user namespaces, so a user cannot mount a tmpfs");
        return;
    }
    let mut root = TestRoot { dir: tempfile::tempdir().unwrap(), mounted: None };
    let dir = root.dir.path().to_path_buf();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let gated = dir.join("gated");
    std::fs::create_dir(&gated).unwrap();
    let mounted =
        Command::new("mount").args(["-t", "tmpfs", "-o", "size=16m", "warden-gate-test"]).arg(&gated).status();
    assert!(mounted.is_ok_and(|s| s.success()));
    root.mounted = Some(gated.clone());
    let private = dir.join("private");
    std::fs::create_dir(&private).unwrap();

    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let marker = format!("warden-gate-test-tool-{}-{nanos}", std::process::id());
    let tool = dir.join("notes");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../warden-monitor/tests/data/stand_in.c");
    let built = Command::new("cc")
        .arg("-O1")
        .arg(format!("-DFINGERPRINT=\"{marker}\""))
        .arg("-o")
        .arg(&tool)
        .arg(source)
        .status()
        .unwrap();
    assert!(built.success(), "compiling the stand-in");
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();

    let policy = Policy::from_toml(
        "gate-tests.toml",
        &format!(
            "name = \"gate tests\"\ndefault_action = \"allow\"\n\
             [tools.{TOOL}]\naction = \"block\"\nmessage = \"blocked by the gate tests\"\n\
             [[catalog]]\nid = \"{TOOL}\"\nname = \"Gate test tool\"\nvendor = \"Warden tests\"\nkind = \"cli\"\n\
             fingerprints = [[\"{marker}\"]]\n"
        ),
    )
    .unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut config = AgentConfig::new(state.path().to_path_buf(), policy);
    config.source = SourceChoice::Fanotify;
    config.gate = Some(GateScope::LocalFilesystems { under: dir.clone() });
    config.sweep_running = false;
    let agent = warden_agent::start(config).await.unwrap();
    let mut events = agent.subscribe();
    let status = agent.status();
    assert_eq!(status.gate_mounts, std::slice::from_ref(&gated), "{:?}", status.gate_marks);
    assert_eq!(status.gate_marks[0].kind, MarkKind::Filesystem);

    // As the user: a namespace of their own, a tmpfs there, the tool copied onto it and run.
    let script = format!(
        "mount -t tmpfs none {private} && cp {tool} {private}/notes && exec {private}/notes",
        private = private.display(),
        tool = tool.display()
    );
    let mut child =
        setpriv_nobody().args(["unshare", "-Urm", "sh", "-c", &script]).env("FAKE_SLEEP", "30").spawn().unwrap();
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    let event = loop {
        let left = deadline.checked_duration_since(Instant::now()).expect("an event for the launch");
        let event = tokio::time::timeout(left, events.recv()).await.expect("an event in time").unwrap();
        if event.pid == pid && event.tool.as_deref() == Some(TOOL) {
            break event;
        }
    };
    assert_eq!(event.outcome, Outcome::Killed, "{event:?}");
    assert_eq!(event.source, "proc-connector", "the gate never saw it: {event:?}");
    assert_eq!(event.user.as_deref(), Some("nobody"));
    let ended = Instant::now() + Duration::from_secs(3);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < ended, "the tool still runs");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL");
    // The user's tmpfs never was in the service's mount table.
    assert_eq!(agent.status().gate_mounts, [gated]);
    agent.shutdown().await;
}
