//! The agent library in-process, as the tray app uses it: real exec events, real kills,
//! policy and exceptions swapped while it runs, events broadcast and stored.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::broadcast::Receiver;
use warden_agent::{AgentConfig, AgentNotice, EndReason, SourceChoice};
use warden_api::{LaunchEvent, Outcome};
use warden_policy::{Accounts, Exception, Mode, Policy};

fn fake_claude(home: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/monitor/fake_tool.c");
    let target = home.join(".local/share/claude/versions/2.1.37");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    let status = Command::new("cc").arg("-O1").arg("-o").arg(&target).arg(source).status().unwrap();
    assert!(status.success());
    target
}

fn spawn(program: &Path) -> Child {
    Command::new(program).stdin(Stdio::null()).stdout(Stdio::null()).spawn().unwrap()
}

async fn event_for(events: &mut Receiver<LaunchEvent>, pid: u32) -> LaunchEvent {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.checked_duration_since(Instant::now()).expect("an event for the launch");
        let event = tokio::time::timeout(left, events.recv()).await.expect("an event in time").unwrap();
        if event.pid == pid && event.tool.as_deref() == Some("claude-code") {
            return event;
        }
    }
}

fn ended(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn current_user() -> String {
    let output = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_and_exceptions_swap_while_the_agent_runs() {
    let home = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let claude = fake_claude(home.path());

    let mut monitor = Policy::embedded();
    monitor.mode = Mode::Monitor;
    let mut config = connector_config(state.path().to_path_buf(), monitor);
    config.policy_version = Some("v1".into());
    let agent = warden_agent::start(config).await.unwrap();
    let mut events = agent.subscribe();
    assert_eq!(agent.status().source, "proc-connector");
    assert_eq!(agent.status().mode, Mode::Monitor);

    // Monitor mode: reported, not killed.
    let mut first = spawn(&claude);
    let event = event_for(&mut events, first.id()).await;
    assert_eq!(event.outcome, Outcome::WouldBlock);
    assert_eq!(event.policy_version.as_deref(), Some("v1"));
    assert!(ended(&mut first, Duration::from_millis(300)).is_none());
    first.kill().unwrap();
    first.wait().unwrap();

    // Enforce, from the next launch on.
    agent.set_policy(Policy::embedded(), Some("v2".into()));
    let mut second = spawn(&claude);
    let event = event_for(&mut events, second.id()).await;
    assert_eq!(event.outcome, Outcome::Killed);
    assert_eq!(event.policy_version.as_deref(), Some("v2"));
    assert_eq!(ended(&mut second, Duration::from_secs(3)).and_then(|s| s.signal()), Some(9));

    // An approved exception for this user lets it run.
    agent.set_exceptions(vec![Exception {
        id: "exc-7".into(),
        user: current_user(),
        tool: "claude-code".into(),
        scope: None,
        starts_at: 0,
        expires_at: now_secs() + 3600,
        guardrails: Default::default(),
    }]);
    let mut third = spawn(&claude);
    let event = event_for(&mut events, third.id()).await;
    assert_eq!(event.outcome, Outcome::Allowed);
    assert_eq!(event.rule, "exception:exc-7");
    assert_eq!(event.exception.as_deref(), Some("exc-7"));
    assert!(ended(&mut third, Duration::from_millis(300)).is_none());
    third.kill().unwrap();
    third.wait().unwrap();

    let status = agent.status();
    assert_eq!(status.policy_version.as_deref(), Some("v2"));
    assert_eq!(status.mode, Mode::Enforce);
    assert_eq!((status.events_today, status.blocked_today, status.warned_today), (3, 1, 0));
    assert_eq!(status.unrecorded_events, 0);
    let recent = agent.recent_events(10);
    assert_eq!(
        recent.iter().map(|e| e.outcome).collect::<Vec<_>>(),
        [Outcome::Allowed, Outcome::Killed, Outcome::WouldBlock]
    );
    assert_eq!(agent.store().pending_count().unwrap(), 3);
    agent.shutdown().await;
}

fn current_uid() -> u32 {
    let output = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8(output.stdout).unwrap().trim().parse().unwrap()
}

/// Exceptions are granted to accounts: a launch is covered when its uid is bound to the
/// exception's account (its event then names the account), not when another local user's is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accounts_exception_covers_only_the_uid_bound_to_it() {
    const ACCOUNT: &str = "dev@corp.example";
    let home = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let claude = fake_claude(home.path());
    let uid = current_uid();

    let mut config = connector_config(state.path().to_path_buf(), Policy::embedded());
    config.exceptions = vec![Exception {
        id: "exc-acct".into(),
        user: ACCOUNT.into(),
        tool: "claude-code".into(),
        scope: None,
        starts_at: 0,
        expires_at: now_secs() + 3600,
        guardrails: Default::default(),
    }];
    // Another local user of this machine is the one bound to the account.
    let mut someone_else = Accounts::default();
    someone_else.bind(uid.wrapping_add(1), ACCOUNT);
    config.accounts = someone_else;
    let agent = warden_agent::start(config).await.unwrap();
    let mut events = agent.subscribe();

    let mut first = spawn(&claude);
    let event = event_for(&mut events, first.id()).await;
    assert_eq!(event.outcome, Outcome::Killed, "{event:?}");
    assert_eq!(event.user.as_deref(), Some(current_user().as_str()), "an unbound user is named by login");
    assert_eq!(ended(&mut first, Duration::from_secs(3)).and_then(|s| s.signal()), Some(9));

    let mut bound = Accounts::default();
    bound.bind(uid, ACCOUNT);
    agent.set_accounts(bound);
    let mut second = spawn(&claude);
    let event = event_for(&mut events, second.id()).await;
    assert_eq!((event.outcome, event.exception.as_deref()), (Outcome::Allowed, Some("exc-acct")), "{event:?}");
    assert_eq!(event.user.as_deref(), Some(ACCOUNT), "the launch is the account's");
    assert!(ended(&mut second, Duration::from_millis(300)).is_none());
    second.kill().unwrap();
    second.wait().unwrap();
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_store_is_reported_and_the_agent_still_runs() {
    let state = tempfile::tempdir().unwrap();
    std::fs::write(state.path().join("events.db"), vec![0x5Au8; 10_000]).unwrap();
    let mut config = AgentConfig::new(state.path().to_path_buf(), Policy::embedded());
    config.source = SourceChoice::Poll { interval: Duration::from_millis(200) };
    config.sweep_running = false;
    let agent = warden_agent::start(config).await.unwrap();
    let status = agent.status();
    assert_eq!(status.source, "poll");
    let recovery = status.store_recovery.expect("the recovery is reported");
    assert!(recovery.contains("events.db.corrupt-"), "{recovery}");
    agent.shutdown().await;
}

async fn notice_for(notices: &mut Receiver<AgentNotice>, kind: &str, pid: u32, within: Duration) -> AgentNotice {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.checked_duration_since(Instant::now()).unwrap_or_else(|| panic!("no {kind} for {pid}"));
        let notice = tokio::time::timeout(left, notices.recv())
            .await
            .unwrap_or_else(|_| panic!("no {kind} notice for {pid} in time"))
            .unwrap();
        let matches = match &notice {
            AgentNotice::ExceptionEnded { end, .. } => kind == "exception-ended" && end.pid == pid,
            AgentNotice::SessionStopped { stop, .. } => kind == "session-stopped" && stop.pid == pid,
            AgentNotice::Rescan { .. } => false,
        };
        if matches {
            return notice;
        }
    }
}

fn exception(id: &str, expires_at: i64) -> Exception {
    Exception {
        id: id.into(),
        user: current_user(),
        tool: "claude-code".into(),
        scope: None,
        starts_at: 0,
        expires_at,
        guardrails: Default::default(),
    }
}

/// An agent on the process connector, with no sweep of what already runs: each test sees only
/// the launches it makes.
fn connector_config(state: std::path::PathBuf, policy: Policy) -> AgentConfig {
    let mut config = AgentConfig::new(state, policy);
    config.source = SourceChoice::ProcConnector;
    config.sweep_running = false;
    config
}

async fn agent_with_grace(state: &Path, grace: u64, exceptions: Vec<Exception>) -> warden_agent::AgentHandle {
    let mut policy = Policy::embedded();
    policy.exceptions.grace = grace;
    let mut config = connector_config(state.to_path_buf(), policy);
    config.exceptions = exceptions;
    warden_agent::start(config).await.unwrap()
}

/// An exception that expires while its session runs: the session is told (the pop-up's
/// notice, with the grace period), a tool it starts after the end is judged on its own (and
/// killed, with its own event), and the session itself is stopped when the grace is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_exceptions_session_is_told_then_stopped_after_the_grace_period() {
    let home = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let claude = fake_claude(home.path());
    let go = home.path().join("go");
    // The session's child waits for the test's word, then starts the tool again.
    let child = home.path().join("later.sh");
    std::fs::write(
        &child,
        format!("#!/bin/sh\nwhile [ ! -e '{}' ]; do sleep 0.05; done\nexec '{}'\n", go.display(), claude.display()),
    )
    .unwrap();
    std::fs::set_permissions(&child, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let agent = agent_with_grace(state.path(), 2, vec![exception("exc-short", now_secs() + 2)]).await;
    let mut events = agent.subscribe();
    let mut notices = agent.subscribe_notices();
    let mut session =
        Command::new(&claude).env("FAKE_CHILD", &child).stdin(Stdio::null()).stdout(Stdio::null()).spawn().unwrap();
    let pid = session.id();
    let event = event_for(&mut events, pid).await;
    assert_eq!((event.outcome, event.exception.as_deref()), (Outcome::Allowed, Some("exc-short")));

    let AgentNotice::ExceptionEnded { end, id } =
        notice_for(&mut notices, "exception-ended", pid, Duration::from_secs(5)).await
    else {
        unreachable!()
    };
    assert!(!id.is_empty());
    assert_eq!((end.exception.as_str(), end.reason, end.grace_secs), ("exc-short", EndReason::Expired, 2));
    assert_eq!(end.tool, "claude-code");
    assert!(end.message.contains("will be stopped in 2 seconds"), "{}", end.message);
    assert!(end.stops_at_ms.is_some_and(|at| at >= end.at_ms + 2000));
    assert!(ended(&mut session, Duration::from_millis(200)).is_none(), "the grace period lets it run on");

    // A tool the session starts after the end is its own launch, and it is blocked.
    std::fs::write(&go, "").unwrap();
    let relaunch = loop {
        let event = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.expect("the relaunch").unwrap();
        if event.tool.as_deref() == Some("claude-code") && event.pid != pid {
            break event;
        }
    };
    assert_eq!(relaunch.outcome, Outcome::Killed, "{relaunch:?}");
    assert!(ended(&mut session, Duration::from_millis(100)).is_none(), "the session itself is still in its grace");

    let AgentNotice::SessionStopped { stop, .. } =
        notice_for(&mut notices, "session-stopped", pid, Duration::from_secs(5)).await
    else {
        unreachable!()
    };
    assert_eq!(stop.outcome, Outcome::Killed);
    assert_eq!(stop.killed.first(), Some(&pid));
    assert!(stop.at_ms >= end.at_ms + 2000, "not before the grace period was over");
    assert_eq!((stop.reason, stop.grace_secs), (EndReason::Expired, 2));
    assert_eq!(ended(&mut session, Duration::from_secs(3)).and_then(|s| s.signal()), Some(9));

    // Both were stored before anyone heard of them: the outbox holds them for the server.
    let stored = agent
        .store()
        .recent(&warden_store::EventFilter {
            limit: 10,
            kind: Some(warden_api::EventKind::ExceptionEnded),
            ..Default::default()
        })
        .unwrap();
    let outcomes: Vec<(String, warden_api::SessionOutcome)> = stored
        .iter()
        .filter_map(|e| match e {
            warden_api::Event::ExceptionEnded(e) if e.pid == pid => Some((e.exception.clone(), e.outcome)),
            _ => None,
        })
        .collect();
    assert!(outcomes.contains(&("exc-short".into(), warden_api::SessionOutcome::GracePeriod)), "{stored:?}");
    assert!(outcomes.contains(&("exc-short".into(), warden_api::SessionOutcome::Stopped)), "{stored:?}");
    agent.shutdown().await;
}

/// A revoked exception with no grace stops its session at once; one that is revoked and
/// then granted again within the grace period leaves the session running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_exception_stops_its_session_unless_a_new_one_covers_it() {
    let home = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let claude = fake_claude(home.path());

    let agent = agent_with_grace(state.path(), 1, vec![exception("exc-a", now_secs() + 3600)]).await;
    let mut events = agent.subscribe();
    let mut notices = agent.subscribe_notices();
    let mut kept = spawn(&claude);
    assert_eq!(event_for(&mut events, kept.id()).await.exception.as_deref(), Some("exc-a"));
    agent.set_exceptions(Vec::new());
    let AgentNotice::ExceptionEnded { end, .. } =
        notice_for(&mut notices, "exception-ended", kept.id(), Duration::from_secs(3)).await
    else {
        unreachable!()
    };
    assert_eq!((end.reason, end.grace_secs), (EndReason::Revoked, 1));
    agent.set_exceptions(vec![exception("exc-b", now_secs() + 3600)]);
    assert!(ended(&mut kept, Duration::from_secs(3)).is_none(), "the new exception covers the session");
    kept.kill().unwrap();
    kept.wait().unwrap();
    agent.shutdown().await;

    let state = tempfile::tempdir().unwrap();
    let agent = agent_with_grace(state.path(), 0, vec![exception("exc-c", now_secs() + 3600)]).await;
    let mut events = agent.subscribe();
    let mut notices = agent.subscribe_notices();
    let mut session = spawn(&claude);
    assert_eq!(event_for(&mut events, session.id()).await.exception.as_deref(), Some("exc-c"));
    let revoked = Instant::now();
    agent.set_exceptions(Vec::new());
    let AgentNotice::ExceptionEnded { end, .. } =
        notice_for(&mut notices, "exception-ended", session.id(), Duration::from_secs(3)).await
    else {
        unreachable!()
    };
    assert!(end.message.contains("is being stopped"), "{}", end.message);
    assert_eq!(ended(&mut session, Duration::from_secs(3)).and_then(|s| s.signal()), Some(9));
    assert!(revoked.elapsed() < Duration::from_secs(2), "grace 0 stops it at once");
    let AgentNotice::SessionStopped { stop, .. } =
        notice_for(&mut notices, "session-stopped", session.id(), Duration::from_secs(1)).await
    else {
        unreachable!()
    };
    assert_eq!((stop.exception.as_str(), stop.outcome), ("exc-c", Outcome::Killed));
    agent.shutdown().await;
}

/// The whole path: a blocked launch in a real terminal (util-linux `script` runs it on a
/// pseudo-terminal and copies what the terminal shows to its stdout) is told there, by the
/// agent's recorder, why it was stopped and what to use instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_launch_in_a_terminal_is_told_there() {
    let home = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let claude = fake_claude(home.path());
    let config = connector_config(state.path().to_path_buf(), Policy::embedded());
    let agent = warden_agent::start(config).await.unwrap();
    let mut events = agent.subscribe();

    let terminal = Command::new("script")
        .args(["--quiet", "--flush", "--return", "--command"])
        .arg(&claude)
        .arg("/dev/null")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("util-linux `script` (Debian: bsdutils)");
    let event = loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.recv()).await.expect("an event").unwrap();
        if event.tool.as_deref() == Some("claude-code") {
            break event;
        }
    };
    assert_eq!(event.outcome, Outcome::Killed);
    // `script` stops itself when its child is stopped (it mirrors job control), and Warden
    // froze the tool before killing it: continue it (it is this test's own child) until it
    // has relayed the terminal's output and ended.
    let script = terminal.id();
    let resume = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{script}/stat")) else { return };
            if stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('T')) {
                let _ = Command::new("kill").arg("-CONT").arg(script.to_string()).status();
            }
            if stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Still there (stopped again, or never ended): end it so the wait below cannot hang;
        // the assertions then say what it had shown.
        let _ = Command::new("kill").arg("-KILL").arg(script.to_string()).status();
    });
    let output = tokio::task::spawn_blocking(move || terminal.wait_with_output().unwrap()).await.unwrap();
    resume.join().unwrap();
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(shown.contains(&format!("warden: Claude Code was stopped: {}", event.reason)), "{shown:?}");
    assert!(shown.contains("warden: use Internal Assistant instead: qwen"), "{shown:?}");
    agent.shutdown().await;
}

/// An exception whose approver allowed Claude Code only through the company's endpoint: the
/// launch pointed there runs, the same launch pointed at the vendor is killed with the guardrail
/// named (real exec events, real environment read from /proc, real kill).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exceptions_guardrails_hold_at_every_launch() {
    let home = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let claude = fake_claude(home.path());
    let mut config = connector_config(state.path().to_path_buf(), Policy::embedded());
    config.exceptions = vec![Exception {
        guardrails: warden_policy::Guardrails { through_gateway: true, ..Default::default() },
        ..exception("exc-gw", now_secs() + 3600)
    }];
    let agent = warden_agent::start(config).await.unwrap();
    let mut events = agent.subscribe();
    let launch = |base_url: &str| {
        Command::new(&claude)
            .args(["-p", "fix the leak in billing.py"])
            .env("ANTHROPIC_BASE_URL", base_url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };

    // The embedded policy's endpoint is sanctioned: covered, and the reason says on what terms.
    let mut through = launch("https://assistant.internal.example");
    let event = event_for(&mut events, through.id()).await;
    assert_eq!((event.outcome, event.rule.as_str()), (Outcome::Allowed, "exception:exc-gw"), "{event:?}");
    assert!(event.reason.contains("only through the company gateway"), "{}", event.reason);
    // The prompt never leaves the process: the event keeps the program and the option, not its text.
    assert_eq!(event.argv, [claude.to_str().unwrap(), "-p", warden_policy::REDACTED], "{event:?}");
    let stored = agent.recent_events(1);
    assert_eq!(stored[0].argv, event.argv, "the stored copy is the redacted one");
    assert!(ended(&mut through, Duration::from_millis(300)).is_none());
    through.kill().unwrap();
    through.wait().unwrap();

    // The vendor's own API: the exception does not cover it.
    let mut direct = launch("https://api.anthropic.com");
    let event = event_for(&mut events, direct.id()).await;
    assert_eq!(
        (event.outcome, event.rule.as_str()),
        (Outcome::Killed, "guardrail:exc-gw:through-gateway"),
        "{event:?}"
    );
    assert!(event.reason.contains("ANTHROPIC_BASE_URL=https://api.anthropic.com"), "{}", event.reason);
    assert_eq!(ended(&mut direct, Duration::from_secs(3)).and_then(|s| s.signal()), Some(9));
    agent.shutdown().await;
}

/// A local MCP server the policy denies, started by an AI tool as its child (the fake tool's
/// `FAKE_CHILD`, a script named like the denied command): the server is killed as a launch of
/// that tool, the tool itself keeps running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_mcp_server_an_ai_tool_starts_is_killed_and_the_tool_keeps_running() {
    let home = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let claude = fake_claude(home.path());
    let server = home.path().join("bin/mcp-evil");
    std::fs::create_dir_all(server.parent().unwrap()).unwrap();
    std::fs::write(&server, "#!/bin/sh\nsleep 30\n").unwrap();
    std::fs::set_permissions(&server, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let policy = Policy::parse(
        "mcp.toml",
        r#"
            name = "Claude Code allowed, one MCP server denied"
            default_action = "warn"
            [tools.claude-code]
            action = "allow"
            [mcp]
            deny = [{ command = ["mcp-evil", "exec", "child"] }]
        "#,
    )
    .unwrap();
    let config = connector_config(state.path().to_path_buf(), policy);
    let agent = warden_agent::start(config).await.unwrap();
    let mut events = agent.subscribe();

    let mut client =
        Command::new(&claude).env("FAKE_CHILD", &server).stdin(Stdio::null()).stdout(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let killed = loop {
        let left = deadline.checked_duration_since(Instant::now()).expect("an event for the MCP server");
        let event = tokio::time::timeout(left, events.recv()).await.expect("an event in time").unwrap();
        if event.rule.starts_with("mcp-server:") {
            break event;
        }
    };
    assert_ne!(killed.pid, client.id(), "the server, not the client");
    assert_eq!((killed.outcome, killed.tool.as_deref()), (Outcome::Killed, Some("claude-code")), "{killed:?}");
    assert_eq!(killed.rule, "mcp-server:mcp-evil exec child");
    assert!(killed.reason.contains("started MCP server `mcp-evil exec child`"), "{}", killed.reason);
    let alive = std::path::Path::new(&format!("/proc/{}", killed.pid)).exists()
        && !std::fs::read_to_string(format!("/proc/{}/stat", killed.pid)).unwrap_or_default().contains(") Z ");
    assert!(!alive || ended_pid(killed.pid, Duration::from_secs(3)), "the server still runs");
    assert!(ended(&mut client, Duration::from_millis(300)).is_none(), "the client was left running");
    client.kill().unwrap();
    client.wait().unwrap();
    agent.shutdown().await;
}

/// Whether `pid` is gone (or a zombie) within `within`.
fn ended_pid(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat) if stat.contains(") Z ") => return true,
            Ok(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    false
}
