//! The event store against a real SQLite file: outbox semantics, filters, corruption
//! recovery, and durability across a `kill -9` of the writing process.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use warden_api::{LaunchEvent, Outcome};
use warden_policy::Action;
use warden_store::{EventFilter, Store};

fn event(id: &str, at_ms: i64, tool: &str, outcome: Outcome) -> LaunchEvent {
    LaunchEvent {
        id: id.to_owned(),
        at_ms,
        pid: 4242,
        user: Some("dev".into()),
        exe: format!("/home/dev/.local/bin/{tool}"),
        argv: vec![tool.to_owned(), "-p".into(), "hi".into()],
        cwd: Some("/home/dev/src/app".into()),
        tool: Some(tool.to_owned()),
        action: if outcome == Outcome::Killed { Action::Block } else { Action::Warn },
        outcome,
        rule: format!("tool:{tool}"),
        reason: "because".into(),
        exception: None,
        policy_version: None,
        source: "proc-connector".into(),
    }
}

#[test]
fn appended_events_come_back_filtered_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("events.db")).unwrap();
    assert!(store.recovery().is_none());
    let events = [
        event("a", 1_000, "claude-code", Outcome::Killed),
        event("b", 2_000, "codex", Outcome::Warned),
        event("c", 3_000, "claude-code", Outcome::Killed),
    ];
    for e in &events {
        assert!(store.append(e).unwrap());
    }
    assert!(!store.append(&events[0]).unwrap(), "appending the same id twice stores it once");

    let all = store.recent(&EventFilter { limit: 10, ..EventFilter::default() }).unwrap();
    assert_eq!(all.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["c", "b", "a"]);
    assert_eq!(all[2], events[0], "an event round-trips unchanged");

    let claude =
        store.recent(&EventFilter { limit: 10, tool: Some("claude-code".into()), ..Default::default() }).unwrap();
    assert_eq!(claude.len(), 2);
    let warned =
        store.recent(&EventFilter { limit: 10, outcome: Some(Outcome::Warned), ..Default::default() }).unwrap();
    assert_eq!(warned.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["b"]);
    let newest = store.recent(&EventFilter { limit: 1, since_ms: Some(1_500), ..Default::default() }).unwrap();
    assert_eq!(newest[0].id, "c");

    assert_eq!(store.count_since(1_500, None).unwrap(), 2);
    assert_eq!(store.count_since(0, Some(Outcome::Killed)).unwrap(), 2);
}

#[test]
fn the_outbox_hands_out_each_event_until_it_is_marked_uploaded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("events.db")).unwrap();
    for (i, id) in ["e1", "e2", "e3"].iter().enumerate() {
        store.append(&event(id, i as i64, "codex", Outcome::Warned)).unwrap();
    }
    let batch = store.pending(2).unwrap();
    assert_eq!(batch.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["e1", "e2"]);
    assert_eq!(store.mark_uploaded(&["e1".into(), "e2".into(), "unknown".into()]).unwrap(), 2);
    assert_eq!(store.mark_uploaded(&["e1".into()]).unwrap(), 0, "marking twice changes nothing");
    assert_eq!(store.pending(10).unwrap().iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["e3"]);
    assert_eq!(store.pending_count().unwrap(), 1);

    assert!(store.queue_exception_request("r1", r#"{"tool":"claude-code"}"#).unwrap());
    assert!(!store.queue_exception_request("r1", "{}").unwrap());
    let requests = store.pending_exception_requests(10).unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].body, r#"{"tool":"claude-code"}"#);
    assert_eq!(store.mark_exception_requests_uploaded(&["r1".into()]).unwrap(), 1);
    assert!(store.pending_exception_requests(10).unwrap().is_empty());
}

#[test]
fn a_corrupt_file_is_moved_aside_and_a_fresh_store_started() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    std::fs::write(&path, b"this is not an SQLite database, just some bytes that are long enough to matter....")
        .unwrap();
    let store = Store::open(&path).unwrap();
    let recovery = store.recovery().expect("the damage is reported").clone();
    assert!(recovery.moved_to.exists(), "the damaged file is kept for inspection");
    assert!(recovery.moved_to.to_string_lossy().contains("events.db.corrupt-"), "{recovery:?}");
    assert!(std::fs::read(&recovery.moved_to).unwrap().starts_with(b"this is not"));
    assert!(store.append(&event("after", 1, "codex", Outcome::Warned)).unwrap());
    drop(store);
    let reopened = Store::open(&path).unwrap();
    assert!(reopened.recovery().is_none());
    assert_eq!(reopened.pending(10).unwrap().len(), 1);
}

#[test]
fn a_truncated_database_page_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    {
        let store = Store::open(&path).unwrap();
        for i in 0..200 {
            store.append(&event(&format!("e{i}"), i, "codex", Outcome::Warned)).unwrap();
        }
    }
    // Overwrite the middle of the file: the header stays valid, the b-tree pages do not.
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 8192, "the database spans several pages");
    for b in &mut bytes[4096..] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();
    let store = Store::open(&path).unwrap();
    assert!(store.recovery().is_some(), "a damaged page is noticed when opening");
    assert_eq!(store.pending_count().unwrap(), 0);
}

const CHILD_ENV: &str = "WARDEN_STORE_KILL9_CHILD";

/// Run as a child process by `events_survive_kill_9`: appends, reports, and waits to die.
#[test]
fn kill9_child_writer() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        // Run directly as a test: it only has a job as the child of the test below.
        return;
    };
    let store = Store::open(&path).unwrap();
    for i in 0..50 {
        store.append(&event(&format!("k{i}"), i, "claude-code", Outcome::Killed)).unwrap();
    }
    println!("APPENDED 50");
    std::io::stdout().flush().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(60));
}

#[test]
fn events_survive_kill_9_of_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["kill9_child_writer", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let appended = lines.by_ref().map_while(Result::ok).find(|line| line.contains("APPENDED"));
    assert!(appended.is_some_and(|line| line.ends_with("APPENDED 50")), "the child appended its events");
    child.kill().unwrap(); // SIGKILL: no destructor, no checkpoint, no clean close.
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(path.with_file_name("events.db-wal").exists(), "the events were still only in the WAL");

    let store = Store::open(&path).unwrap();
    assert!(store.recovery().is_none());
    let events = store.pending(100).unwrap();
    assert_eq!(events.len(), 50);
    assert_eq!(events[49].id, "k49");
}
