//! The keeper of the vendors' managed files, on a scratch root (never the machine's /etc):
//! written with the policy's content and readable by everyone (`wardend`'s umask 077 is
//! covered by the service test); the admin's own files kept and put back; drop-ins beside the admin's left alone; every
//! drift — an edit, a delete, a rename over the file, `rm -r` of its folder or of `etc` — undone
//! within a second and reported; a policy change rewritten at once; a restart still knows what
//! to undo; an exception's guardrails written while it is in force and gone when it ends.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use warden_api::{ControlDriftEvent, DriftChange};
use warden_policy::{Exception, Guardrails, Policy, render_controls};
use warden_service::controls::{ControlsOptions, Keeper, located};

fn policy(name: &str) -> Policy {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/policies").join(name);
    Policy::parse(name, &std::fs::read_to_string(path).unwrap()).unwrap()
}

struct Scratch {
    dir: tempfile::TempDir,
    drifts: Arc<Mutex<Vec<ControlDriftEvent>>>,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch { dir: tempfile::tempdir().unwrap(), drifts: Arc::default() }
    }
    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
    fn at(&self, path: &str) -> PathBuf {
        located(&self.root(), path)
    }
    fn keeper(&self, policy: &Policy) -> Keeper {
        let drifts = self.drifts.clone();
        let options = ControlsOptions { root: self.root(), state_dir: self.dir.path().join("state"), watch: true };
        Keeper::start(options, policy, &[], Box::new(move |d| drifts.lock().unwrap().push(d))).unwrap()
    }
    fn drifts(&self) -> Vec<ControlDriftEvent> {
        self.drifts.lock().unwrap().clone()
    }
}

/// Waits until `done` holds (at most `limit`), returning how long it took.
fn within(limit: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// `rm -r`: the keeper may refill a folder while it is being removed (its files are gone by then).
fn remove_tree(path: &Path) {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => {}
        other => other.unwrap(),
    }
}

fn content(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

#[test]
fn every_file_is_written_with_the_policys_content_and_readable_by_everyone() {
    let scratch = Scratch::new();
    let policy = policy("controls.toml");
    let keeper = scratch.keeper(&policy);
    let files = render_controls(&policy, &policy.catalog(), &[], 0);
    assert!(files.len() >= 8, "{} files", files.len());
    for file in &files {
        let at = scratch.at(file.path);
        assert_eq!(content(&at).as_deref(), Some(file.content.as_str()), "{}", file.path);
        assert_eq!(std::fs::metadata(&at).unwrap().permissions().mode() & 0o777, 0o644, "{}", file.path);
        let folder = std::fs::metadata(at.parent().unwrap()).unwrap().permissions().mode() & 0o777;
        assert_eq!(folder, 0o755, "{}", file.path);
    }
    let status = keeper.status();
    assert_eq!(status.len(), files.len());
    assert!(status.iter().all(|s| s.matches), "{status:?}");
    let claude = status.iter().find(|s| s.path.ends_with("90-warden.json")).unwrap();
    assert!(
        claude.controls.iter().any(|c| c.tool == "claude-code" && c.control == "bypass mode disabled"),
        "{:?}",
        claude.controls
    );
    assert!(scratch.drifts().is_empty(), "writing is not drift");
}

#[test]
fn the_admins_files_are_kept_and_put_back_and_drop_ins_beside_them_left_alone() {
    let scratch = Scratch::new();
    let requirements = scratch.at("/etc/codex/requirements.toml");
    let admin_fragment = scratch.at("/etc/claude-code/managed-settings.d/10-admin.json");
    let admin_browser = scratch.at("/etc/chromium/policies/managed/admin.json");
    for (path, text) in [
        (&requirements, "allowed_approval_policies = [\"on-request\"]\n"),
        (&admin_fragment, "{\"model\": \"x\"}\n"),
        (&admin_browser, "{\"HomepageLocation\": \"https://intranet.example\"}\n"),
    ] {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let strict = policy("controls.toml");
    let keeper = scratch.keeper(&strict);
    assert!(content(&requirements).unwrap().contains("allowed_sandbox_modes"), "Warden's now");
    // A policy that no longer needs Codex's file nor the browsers': the admin's copy is back,
    // Warden's drop-ins are gone, the admin's drop-ins never changed.
    let mut lax = strict.clone();
    lax.risky_flags.clear();
    lax.mcp = None;
    lax.tools.clear();
    lax.controls = None;
    keeper.apply_and_wait(&lax);
    assert_eq!(content(&requirements).as_deref(), Some("allowed_approval_policies = [\"on-request\"]\n"));
    assert!(!scratch.at("/etc/claude-code/managed-settings.d/90-warden.json").exists());
    assert!(!scratch.at("/etc/chromium/policies/managed/warden.json").exists());
    assert!(!scratch.at("/etc/claude-code/managed-mcp.json").exists(), "nothing was there: removed");
    assert_eq!(content(&admin_fragment).as_deref(), Some("{\"model\": \"x\"}\n"));
    assert!(content(&admin_browser).unwrap().contains("intranet"));
    // And back: taken again, with the admin's copy kept again.
    keeper.apply_and_wait(&strict);
    assert!(content(&requirements).unwrap().contains("allowed_sandbox_modes"));
    drop(keeper);
    // A restart with the lax policy still knows the backup.
    let keeper = scratch.keeper(&lax);
    assert_eq!(content(&requirements).as_deref(), Some("allowed_approval_policies = [\"on-request\"]\n"));
    assert!(keeper.status().iter().all(|s| s.matches));
    assert!(scratch.drifts().is_empty(), "{:?}", scratch.drifts());
}

#[test]
fn every_drift_is_undone_within_a_second_and_reported() {
    let scratch = Scratch::new();
    let policy = policy("controls.toml");
    let _keeper = scratch.keeper(&policy);
    let files = render_controls(&policy, &policy.catalog(), &[], 0);
    let want = |path: &str| files.iter().find(|f| f.path == path).unwrap().content.clone();
    let claude = "/etc/claude-code/managed-settings.d/90-warden.json";
    let qwen = "/etc/qwen-code/settings.json";
    let chromium = "/etc/chromium/policies/managed/warden.json";
    type Tamper = Box<dyn Fn(&Scratch)>;
    let attempts: Vec<(&str, &str, DriftChange, Tamper)> = vec![
        ("edit", qwen, DriftChange::Changed, Box::new(move |s| std::fs::write(s.at(qwen), "{}").unwrap())),
        ("delete", claude, DriftChange::Removed, Box::new(move |s| std::fs::remove_file(s.at(claude)).unwrap())),
        (
            "rename over",
            chromium,
            DriftChange::Changed,
            Box::new(move |s| {
                let other = s.at("/etc/chromium/policies/managed/.x");
                std::fs::write(&other, "{\"URLBlocklist\": []}").unwrap();
                std::fs::rename(&other, s.at(chromium)).unwrap();
            }),
        ),
        (
            "rm -r of its folder",
            claude,
            DriftChange::Removed,
            Box::new(move |s| remove_tree(&s.at("/etc/claude-code"))),
        ),
        ("rm -r of etc", qwen, DriftChange::Removed, Box::new(|s| remove_tree(&s.at("/etc")))),
    ];
    for (name, path, change, tamper) in attempts {
        let before = scratch.drifts().len();
        tamper(&scratch);
        let took =
            within(Duration::from_secs(1), || content(&scratch.at(path)).as_deref() == Some(want(path).as_str()));
        assert!(took.is_some(), "{name}: {path} not restored within a second");
        // `rm -r` races the keeper, which refills a folder while it is being removed (then `rm`
        // stops early): whichever files it did remove are reported.
        let any_path = name.starts_with("rm -r");
        let reported = within(Duration::from_secs(1), || {
            scratch.drifts()[before..].iter().any(|d| (any_path || d.path == path) && d.change == change && d.restored)
        });
        assert!(reported.is_some(), "{name}: not reported: {:?}", scratch.drifts());
        // After `rm -r etc` every file is back, not only the one checked.
        if name == "rm -r of etc" {
            for file in &files {
                let back = within(Duration::from_secs(1), || {
                    content(&scratch.at(file.path)).as_deref() == Some(file.content.as_str())
                });
                assert!(back.is_some(), "{} not back", file.path);
            }
        }
    }
}

#[test]
fn a_policy_change_rewrites_at_once_and_no_drift_is_reported_for_it() {
    let scratch = Scratch::new();
    let mut policy = policy("controls.toml");
    let keeper = scratch.keeper(&policy);
    policy.assistant.as_mut().unwrap().gateway_url = None;
    // How fast is the benchmark's business (docs/benchmarks.md, `controls-bench`); here: at once,
    // i.e. done when `apply_and_wait` returns, without any filesystem event.
    keeper.apply_and_wait(&policy);
    let qwen = content(&scratch.at("/etc/qwen-code/settings.json")).unwrap();
    assert!(qwen.contains("https://assistant.internal.example/v1") && !qwen.contains("8788"), "{qwen}");
    std::thread::sleep(Duration::from_millis(100));
    assert!(scratch.drifts().is_empty(), "{:?}", scratch.drifts());
}

#[test]
fn guardrails_are_written_while_their_exception_is_in_force_and_go_when_it_ends() {
    let scratch = Scratch::new();
    let policy = policy("guardrails.toml");
    let keeper = scratch.keeper(&policy);
    let claude = scratch.at("/etc/claude-code/managed-settings.d/90-warden.json");
    let codex = scratch.at("/etc/codex/requirements.toml");
    assert!(!claude.exists(), "no exception, and the policy asks nothing of Claude Code's file");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let exception = |id: &str, tool: &str, expires_at: i64, guardrails: Guardrails| Exception {
        id: id.into(),
        user: "dev".into(),
        tool: tool.into(),
        scope: None,
        starts_at: now - 10,
        expires_at,
        guardrails,
    };
    let gateway = Guardrails { through_gateway: true, mcp_servers: Some(vec!["docs".into()]), ..Guardrails::default() };
    let safe = Guardrails { no_risky_modes: true, ..Guardrails::default() };
    keeper.set_exceptions(vec![
        // Ends in about two seconds: its conditions go by themselves.
        exception("exr_claude", "claude-code", now + 2, gateway),
        exception("exr_codex", "codex", now + 3600, safe),
    ]);
    let written = within(Duration::from_secs(1), || {
        content(&claude)
            .is_some_and(|c| c.contains("\"ANTHROPIC_BASE_URL\": \"http://127.0.0.1:8788\"") && c.contains("docs"))
    });
    assert!(written.is_some(), "pinned while in force: {:?}", content(&claude));
    assert!(content(&codex).is_some_and(|c| c.contains("allowed_sandbox_modes")), "{:?}", content(&codex));
    let status = keeper.status();
    let shown = warden_api::local::controls_of_tool(&status, "claude-code");
    for control in [
        "MCP limited to 1 MCP server while exception exr_claude is in force",
        "API base URL pinned to http://127.0.0.1:8788 while exception exr_claude is in force",
    ] {
        assert!(shown.iter().any(|c| c == control), "{control:?} not in {shown:?}");
    }
    // The clock ends the first (the keeper wakes at least every SAFETY_CHECK).
    let gone = within(Duration::from_secs(6), || !claude.exists());
    assert!(gone.is_some(), "still there after its exception ended: {:?}", content(&claude));
    assert!(codex.exists(), "the other exception is still in force");
    // A revocation (the list without it) takes the rest at once.
    keeper.set_exceptions(Vec::new());
    assert!(within(Duration::from_secs(1), || !codex.exists()).is_some(), "{:?}", content(&codex));
    assert!(scratch.drifts().is_empty(), "an exception's start and end are not drift: {:?}", scratch.drifts());
}
