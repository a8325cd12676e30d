//! Retention, on SQLite and on PostgreSQL: events older than the configured age become daily
//! counts per (day, device, kind, tool, outcome) and leave the events table; newer events and the
//! exception audit log stay; counts from two sweeps of the same day add up.

mod common;

use common::{ADMIN_TOKEN, Db, TestServer, database_url, enroll, launch_event, now_ms};
use hyper::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const DAY_MS: i64 = 24 * 3600 * 1000;

fn event(n: usize, tool: &str, action: &str, at_ms: i64) -> Value {
    launch_event(&format!("00000000-0000-4000-9000-{n:012}"), "dev", tool, action, at_ms)
}

async fn old_events_become_daily_counts(db: Db) {
    let Some(url) = database_url(db).await else { return };
    let server =
        TestServer::configured(&url, |config| config.retain_events = Some(Duration::from_secs(30 * 24 * 3600))).await;
    let api = &server.api;
    let (device, token, _) = enroll(api, "dev", "laptop-a").await;
    let now = now_ms();
    // 40 and 41 days ago (noon, so both land inside their UTC day), and today.
    let day40 = (now - 40 * DAY_MS).div_euclid(DAY_MS) * DAY_MS + DAY_MS / 2;
    let day41 = day40 - DAY_MS;
    let mut events = Vec::new();
    for i in 0..6 {
        events.push(event(i, "claude-code", "block", day40 + i as i64));
    }
    for i in 6..10 {
        events.push(event(i, "cursor", "warn", day40 + i as i64));
    }
    for i in 10..13 {
        events.push(event(i, "claude-code", "block", day41 + i as i64));
    }
    for i in 13..18 {
        events.push(event(i, "claude-code", "block", now - 1000 + i as i64));
    }
    let sent = api.post("/api/v1/device/events", &token, json!({"events": events})).await;
    assert_eq!(sent.body["stored"], 18, "{}", sent.text);
    let request = common::file_request(api, &token, "Reviewing the vendor agent for the assessment", 600).await;

    // The sweep (every 200 ms in tests) rolls the 13 old events up.
    let started = Instant::now();
    let counts = loop {
        let counts = api.get("/api/v1/admin/event-counts", ADMIN_TOKEN).await;
        assert_eq!(counts.status, StatusCode::OK, "{}", counts.text);
        let total: i64 = counts.body["counts"].as_array().unwrap().iter().map(|c| c["count"].as_i64().unwrap()).sum();
        if total == 13 {
            break counts.body["counts"].as_array().unwrap().clone();
        }
        assert!(started.elapsed() < Duration::from_secs(15), "not rolled up: {}", counts.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let key = |c: &Value| {
        (
            c["day"].as_i64().unwrap(),
            c["tool"].as_str().unwrap().to_owned(),
            c["outcome"].as_str().unwrap().to_owned(),
            c["count"].as_i64().unwrap(),
        )
    };
    let mut got: Vec<_> = counts.iter().map(key).collect();
    got.sort();
    let (d40, d41) = (day40.div_euclid(DAY_MS), day41.div_euclid(DAY_MS));
    assert_eq!(
        got,
        [
            (d41, "claude-code".into(), "denied".into(), 3),
            (d40, "claude-code".into(), "denied".into(), 6),
            (d40, "cursor".into(), "allowed".into(), 4),
        ]
    );
    assert!(counts.iter().all(|c| c["device_id"] == device.as_str() && c["kind"] == "launch"));

    // The old events are gone, the recent ones and the audit log stay.
    let left = api.get(&format!("/api/v1/admin/events?device={device}&limit=1000"), ADMIN_TOKEN).await;
    let left = left.body["events"].as_array().unwrap();
    assert_eq!(left.len(), 5, "{left:?}");
    assert!(left.iter().all(|e| e["at_ms"].as_i64().unwrap() > now - DAY_MS));
    let audit = api.get(&format!("/api/v1/admin/exceptions/{request}/audit"), ADMIN_TOKEN).await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.text);

    // A late upload of the same old day adds to its count; filters and a bad range.
    let late =
        api.post("/api/v1/device/events", &token, json!({"events": [event(20, "cursor", "warn", day40 + 20)]})).await;
    assert_eq!(late.body["stored"], 1, "{}", late.text);
    let started = Instant::now();
    loop {
        let cursor = api
            .get(&format!("/api/v1/admin/event-counts?tool=cursor&since_day={d40}&until_day={}", d40 + 1), ADMIN_TOKEN)
            .await;
        let rows = cursor.body["counts"].as_array().unwrap();
        if rows.len() == 1 && rows[0]["count"] == 5 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{}", cursor.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let backwards = api.get("/api/v1/admin/event-counts?since_day=10&until_day=5", ADMIN_TOKEN).await;
    assert_eq!(backwards.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", backwards.text);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_events_become_daily_counts_on_sqlite() {
    old_events_become_daily_counts(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_events_become_daily_counts_on_postgres() {
    old_events_become_daily_counts(Db::Postgres).await;
}
