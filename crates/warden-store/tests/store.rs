//! The event store against a real SQLite file: outbox semantics, filters, every event kind,
//! the migration from the launch-only schema, corruption recovery, and durability across a
//! `kill -9` of the writing process.

use rusqlite::Connection;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use warden_api::local::RuntimeMode;
use warden_api::{Event, EventKind, IncidentEvent, LaunchEvent, Outcome, ServiceStartEvent, ServiceStopEvent};
use warden_policy::Action;
use warden_store::{EventFilter, Store};

fn event(id: &str, at_ms: i64, tool: &str, outcome: Outcome) -> Event {
    Event::Launch(launch(id, at_ms, tool, outcome))
}

fn launch(id: &str, at_ms: i64, tool: &str, outcome: Outcome) -> LaunchEvent {
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
    assert_eq!(all.iter().map(|e| e.id()).collect::<Vec<_>>(), ["c", "b", "a"]);
    assert_eq!(all[2], events[0], "an event round-trips unchanged");

    let claude =
        store.recent(&EventFilter { limit: 10, tool: Some("claude-code".into()), ..Default::default() }).unwrap();
    assert_eq!(claude.len(), 2);
    let warned =
        store.recent(&EventFilter { limit: 10, outcome: Some(Outcome::Warned), ..Default::default() }).unwrap();
    assert_eq!(warned.iter().map(|e| e.id()).collect::<Vec<_>>(), ["b"]);
    let newest = store.recent(&EventFilter { limit: 1, since_ms: Some(1_500), ..Default::default() }).unwrap();
    assert_eq!(newest[0].id(), "c");

    assert_eq!(store.count_since(1_500, None).unwrap(), 2);
    assert_eq!(store.count_since(0, Some(Outcome::Killed)).unwrap(), 2);
}

#[test]
fn every_kind_is_kept_in_one_log_and_filtered_by_kind() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("events.db")).unwrap();
    let start = Event::ServiceStart(ServiceStartEvent {
        id: "s1".into(),
        at_ms: 1_000,
        mode: RuntimeMode::Service,
        version: "0.1.0".into(),
        pid: 812,
        source: Some("fanotify+proc-connector".into()),
        unclean_end: None,
    });
    let incident = Event::Incident(IncidentEvent {
        id: "i1".into(),
        at_ms: 3_000,
        code: "gap-rescan".into(),
        detail: "ENOBUFS: rescanned 12 processes".into(),
    });
    let stop = Event::ServiceStop(ServiceStopEvent {
        id: "s2".into(),
        at_ms: 4_000,
        mode: RuntimeMode::Service,
        version: "0.1.0".into(),
        pid: 812,
        reason: "signal SIGTERM".into(),
    });
    for e in [&start, &event("l1", 2_000, "codex", Outcome::Killed), &incident, &stop] {
        assert!(store.append(e).unwrap());
    }
    let all = store.recent(&EventFilter { limit: 10, ..Default::default() }).unwrap();
    assert_eq!(all.iter().map(Event::id).collect::<Vec<_>>(), ["s2", "i1", "l1", "s1"]);
    assert_eq!(all[0], stop, "a service stop round-trips unchanged");
    let incidents =
        store.recent(&EventFilter { limit: 10, kind: Some(EventKind::Incident), ..Default::default() }).unwrap();
    assert_eq!(incidents, [incident]);
    let launches = store.recent_launches(&EventFilter { limit: 10, ..Default::default() }).unwrap();
    assert_eq!(launches.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), ["l1"]);
    let by_user = store.recent(&EventFilter { limit: 10, user: Some("dev".into()), ..Default::default() }).unwrap();
    assert_eq!(by_user.iter().map(Event::id).collect::<Vec<_>>(), ["l1"]);
    assert_eq!(store.count_since(0, None).unwrap(), 1, "counts are of launches");
    assert_eq!(store.get("s1").unwrap(), Some(start));
    let outbox = store.pending(10).unwrap();
    assert_eq!(outbox.iter().map(Event::id).collect::<Vec<_>>(), ["s1", "l1", "i1", "s2"], "every kind is uploaded");
}

/// The schema before event kinds (user_version 1), as that version's `Store::open` created it.
const LAUNCH_ONLY_SCHEMA: &str = include_str!("data/launch-only-v1-schema.sql");

/// Writes a store file the way the launch-only version did: its schema, its rows (body = the
/// launch JSON, no `kind`).
fn write_launch_only_store(path: &std::path::Path, launches: &[(LaunchEvent, Option<i64>)]) {
    let connection = Connection::open(path).unwrap();
    connection.execute_batch("PRAGMA journal_mode = WAL;").unwrap();
    connection.execute_batch(LAUNCH_ONLY_SCHEMA).unwrap();
    for (launch, uploaded) in launches {
        let outcome = serde_json::to_value(launch.outcome).unwrap().as_str().unwrap().to_owned();
        connection
            .execute(
                "INSERT INTO launch_events (id, at_ms, tool, outcome, body, uploaded_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                rusqlite::params![
                    launch.id,
                    launch.at_ms,
                    launch.tool,
                    outcome,
                    serde_json::to_string(launch).unwrap(),
                    uploaded
                ],
            )
            .unwrap();
    }
    connection
        .execute("INSERT OR IGNORE INTO exception_requests (id, created_ms, body) VALUES ('r1', 1, '{}')", [])
        .unwrap();
}

#[test]
fn a_store_written_by_the_launch_only_schema_keeps_its_rows_and_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let old = [
        (launch("old-1", 1_000, "claude-code", Outcome::Killed), Some(5_000)),
        (launch("old-2", 2_000, "codex", Outcome::Warned), None),
        (launch("old-3", 3_000, "claude-code", Outcome::Allowed), None),
    ];
    write_launch_only_store(&path, &old);

    let store = Store::open(&path).unwrap();
    assert!(store.recovery().is_none());
    let all = store.recent(&EventFilter { limit: 10, ..Default::default() }).unwrap();
    let expected: Vec<Event> = old.iter().rev().map(|(l, _)| Event::Launch(l.clone())).collect();
    assert_eq!(all, expected, "every old row is there, unchanged, as a launch");
    let pending: Vec<String> = store.pending(10).unwrap().iter().map(|e| e.id().to_owned()).collect();
    assert_eq!(pending, ["old-2", "old-3"], "the upload marks and the outbox order survive");
    assert_eq!(store.last_upload_ms().unwrap(), Some(5_000));
    assert_eq!(store.pending_exception_request_count().unwrap(), 1);
    let by_user = store.recent(&EventFilter { limit: 10, user: Some("dev".into()), ..Default::default() }).unwrap();
    assert_eq!(by_user.len(), 3, "the user column is filled from the old bodies");
    assert!(store.append(&event("new-1", 4_000, "codex", Outcome::Killed)).unwrap());
    assert!(!store.append(&event("old-2", 2_000, "codex", Outcome::Warned)).unwrap(), "ids stay unique");
    drop(store);

    let connection = Connection::open(&path).unwrap();
    let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0)).unwrap();
    assert_eq!(version, 2);
    let old_table: i64 = connection
        .query_row("SELECT COUNT(*) FROM sqlite_master WHERE name = 'launch_events'", [], |row| row.get(0))
        .unwrap();
    assert_eq!(old_table, 0, "the old table is gone");
    drop(connection);

    // An older binary started again on this file re-creates its table and logs one more launch:
    // the next open moves it over too, after the rows already there.
    write_launch_only_store(&path, &[(launch("old-4", 5_000, "codex", Outcome::Killed), None)]);
    let store = Store::open(&path).unwrap();
    let pending: Vec<String> = store.pending(10).unwrap().iter().map(|e| e.id().to_owned()).collect();
    assert_eq!(pending, ["old-2", "old-3", "new-1", "old-4"]);
}

/// A database as the launch-only version left it (schema, rows and upload marks written by that
/// version's code): every row comes back as the launch it was, and the outbox resumes where it was.
#[test]
fn the_launch_only_fixture_database_migrates_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let connection = Connection::open(&path).unwrap();
    connection.execute_batch(LAUNCH_ONLY_SCHEMA).unwrap();
    connection.execute_batch(include_str!("data/launch-only-v1-rows.sql")).unwrap();
    let old: Vec<(String, String)> = connection
        .prepare("SELECT id, body FROM launch_events ORDER BY seq")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    drop(connection);
    assert!(old.len() >= 3, "the fixture has rows");

    let store = Store::open(&path).unwrap();
    assert!(store.recovery().is_none(), "migrated, not moved aside");
    for (id, body) in &old {
        let launch: LaunchEvent = serde_json::from_str(body).unwrap();
        assert_eq!(store.get(id).unwrap(), Some(Event::Launch(launch)), "{id} is the launch it was");
    }
    let pending: Vec<String> = store.pending(10).unwrap().iter().map(|e| e.id().to_owned()).collect();
    assert_eq!(pending, ["9c1e6f1a-0000-4000-8000-000000000003", "9c1e6f1a-0000-4000-8000-000000000004"]);
    let killed =
        store.recent(&EventFilter { limit: 10, outcome: Some(Outcome::Killed), ..Default::default() }).unwrap();
    assert_eq!(killed.len(), 2, "the outcome column survives");
    let by_user =
        store.recent(&EventFilter { limit: 10, user: Some("dev@corp.example".into()), ..Default::default() }).unwrap();
    assert_eq!(by_user.len(), 3, "the person is read out of the old bodies");
    assert_eq!(
        store.recent(&EventFilter { limit: 10, kind: Some(EventKind::Launch), ..Default::default() }).unwrap().len(),
        old.len()
    );
}

#[test]
fn the_outbox_hands_out_each_event_until_it_is_marked_uploaded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("events.db")).unwrap();
    for (i, id) in ["e1", "e2", "e3"].iter().enumerate() {
        store.append(&event(id, i as i64, "codex", Outcome::Warned)).unwrap();
    }
    let batch = store.pending(2).unwrap();
    assert_eq!(batch.iter().map(|e| e.id()).collect::<Vec<_>>(), ["e1", "e2"]);
    assert_eq!(store.mark_uploaded(&["e1".into(), "e2".into(), "unknown".into()]).unwrap(), 2);
    assert_eq!(store.mark_uploaded(&["e1".into()]).unwrap(), 0, "marking twice changes nothing");
    assert_eq!(store.pending(10).unwrap().iter().map(|e| e.id()).collect::<Vec<_>>(), ["e3"]);
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
    assert_eq!(events[49].id(), "k49");
}
