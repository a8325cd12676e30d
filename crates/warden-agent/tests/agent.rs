//! The agent library in-process, as the tray app uses it: real exec events, real kills,
//! policy and exceptions swapped while it runs, events broadcast and stored.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::broadcast::Receiver;
use warden_agent::{AgentConfig, SourceChoice};
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
    let mut config = AgentConfig::new(state.path().to_path_buf(), monitor);
    config.source = SourceChoice::ProcConnector;
    config.sweep_running = false;
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

    let mut config = AgentConfig::new(state.path().to_path_buf(), Policy::embedded());
    config.source = SourceChoice::ProcConnector;
    config.sweep_running = false;
    config.exceptions = vec![Exception {
        id: "exc-acct".into(),
        user: ACCOUNT.into(),
        tool: "claude-code".into(),
        scope: None,
        starts_at: 0,
        expires_at: now_secs() + 3600,
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
