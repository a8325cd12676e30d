//! Events of every kind in one table, the heartbeat every upload is, and silent devices — over
//! real HTTP on SQLite and on PostgreSQL; and migration 0002 of a database that holds launches
//! only.

mod common;

use common::{ADMIN_TOKEN, Api, Db, TestServer, enroll, launch_event, now_ms};
use hyper::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// One event of every kind, as a device uploads them (ids unique per backend).
fn one_of_each_kind(db: Db, start: i64) -> Vec<Value> {
    let id = |n: u32| format!("7e1d0000-0000-4000-8000-{:012}", n + 100 * db as u32);
    let mut launch = launch_event(&id(1), "dev", "claude-code", "block", start + 10);
    launch["kind"] = json!("launch");
    vec![
        json!({"kind": "service-start", "id": id(0), "at_ms": start, "mode": "service", "version": "0.2.0", "pid": 812,
               "source": "fanotify+proc-connector",
               "unclean_end": {"start_id": "7e1d-previous", "started_at_ms": start - 90_000, "pid": 640,
                               "version": "0.1.0", "last_event_at_ms": start - 30_000}}),
        launch,
        json!({"kind": "incident", "id": id(2), "at_ms": start + 20, "code": "gap-rescan",
               "detail": "ENOBUFS: 212 processes rescanned"}),
        json!({"kind": "exception-ended", "id": id(3), "at_ms": start + 30, "exception": "exr_1", "tool": "claude-code",
               "user": "dev", "pid": 5150, "ended": "revoked", "grace_seconds": 300, "outcome": "grace-period"}),
        json!({"kind": "masking", "id": id(6), "at_ms": start + 36, "user": "dev", "path": "/v1/chat/completions",
               "status": 200, "destination": "Internal Assistant", "masked": {"aws-access-key-id": 1, "private-key": 2},
               "restored": 3, "kept_masked_in": ["run_shell_command"]}),
        json!({"kind": "connect", "id": id(5), "at_ms": start + 35, "pid": 5151, "uid": 1000, "user": "dev",
               "exe": "/usr/bin/node", "tool": "claude-code", "host": "api.anthropic.com", "address": "160.79.104.10",
               "port": 443, "protocol": "tcp", "action": "block", "outcome": "blocked", "rule": "destination",
               "count": 1}),
        json!({"kind": "service-stop", "id": id(4), "at_ms": start + 40, "mode": "service", "version": "0.2.0",
               "pid": 812, "reason": "signal SIGTERM"}),
    ]
}

async fn events_of(api: &Api, query: &str) -> Vec<Value> {
    let page = api.get(&format!("/api/v1/admin/events?{query}"), ADMIN_TOKEN).await;
    assert_eq!(page.status, StatusCode::OK, "{query}: {}", page.text);
    page.body["events"].as_array().unwrap().iter().map(|stored| stored["event"].clone()).collect()
}

async fn device(api: &Api, id: &str) -> (Value, u64) {
    let list = api.get("/api/v1/admin/devices", ADMIN_TOKEN).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let found = list.body["devices"].as_array().unwrap().iter().find(|d| d["id"] == json!(id)).cloned();
    (
        found.unwrap_or_else(|| panic!("{id} missing: {}", list.text)),
        list.body["sync_interval_seconds"].as_u64().unwrap(),
    )
}

async fn every_kind_in_one_table(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let api = &server.api;
    let (device_id, token, _) = enroll(api, "dev", "dev-laptop").await;
    let start = now_ms() - 60_000;
    let sent = one_of_each_kind(db, start);

    let receipt = api
        .post(
            "/api/v1/device/events",
            &token,
            json!({"events": sent, "heartbeat": {"at_ms": now_ms(), "version": "0.2.0"}}),
        )
        .await;
    assert_eq!(receipt.status, StatusCode::OK, "{}", receipt.text);
    assert_eq!(receipt.body, json!({"stored": 7, "duplicates": 0, "sync_interval_seconds": 60}));

    // Every kind comes back exactly as it was sent (the payload kept whole beside its kind).
    let stored = events_of(api, &format!("device={device_id}")).await;
    let by_id = |events: &[Value]| -> BTreeMap<String, Value> {
        events.iter().map(|e| (e["id"].as_str().unwrap().to_owned(), e.clone())).collect()
    };
    assert_eq!(by_id(&stored), by_id(&sent));
    assert_eq!(stored[0]["kind"], "service-stop", "newest first");

    // The filters: by kind, and tool/user across the kinds that have them.
    for (query, expected) in [
        ("kind=launch", vec!["launch"]),
        ("kind=service-start", vec!["service-start"]),
        ("kind=service-stop", vec!["service-stop"]),
        ("kind=incident", vec!["incident"]),
        ("kind=exception-ended", vec!["exception-ended"]),
        ("kind=masking", vec!["masking"]),
        ("kind=connect", vec!["connect"]),
        ("tool=claude-code", vec!["connect", "exception-ended", "launch"]),
        ("user=dev", vec!["masking", "connect", "exception-ended", "launch"]),
        ("action=block", vec!["launch"]),
    ] {
        let kinds: Vec<Value> =
            events_of(api, &format!("device={device_id}&{query}")).await.iter().map(|e| e["kind"].clone()).collect();
        assert_eq!(kinds, expected.iter().map(|k| json!(k)).collect::<Vec<_>>(), "{query}");
    }

    // The heartbeat's version replaces the enrolled one; the newest start/stop is the state.
    let (info, interval) = device(api, &device_id).await;
    assert_eq!(interval, 60);
    assert_eq!(info["agent_version"], "0.2.0");
    assert_eq!(info["silent"], false);
    assert_eq!(
        info["service"],
        json!({"status": "stopped", "at_ms": start + 40, "version": "0.2.0", "reason": "signal SIGTERM"})
    );
    assert_eq!(api.get("/api/v1/device/me", &token).await.body["service"], info["service"]);

    // Late and out of order (an outbox drained after an outage): an older start changes nothing,
    // a newer one does. A device older than kinds sends launches without `kind`.
    let id = |n: u32| format!("7e1d0001-0000-4000-8000-{:012}", n + 100 * db as u32);
    let older = json!({"kind": "service-start", "id": id(0), "at_ms": start - 5_000, "mode": "service",
                       "version": "0.1.0", "pid": 700});
    let bare = launch_event(&id(1), "dev", "codex", "warn", start + 50);
    let reply = api.post("/api/v1/device/events", &token, json!({"events": [older, bare]})).await;
    assert_eq!(reply.body["stored"], 2, "{}", reply.text);
    assert_eq!(device(api, &device_id).await.0["service"]["status"], "stopped");
    assert_eq!(events_of(api, &format!("kind=launch&tool=codex&device={device_id}")).await.len(), 1);
    let newer = json!({"kind": "service-start", "id": id(2), "at_ms": start + 60, "mode": "personal",
                       "version": "0.2.1", "pid": 901});
    api.post("/api/v1/device/events", &token, json!({"events": [newer]})).await;
    assert_eq!(
        device(api, &device_id).await.0["service"],
        json!({"status": "running", "at_ms": start + 60, "version": "0.2.1"})
    );
    server.stop().await;
}

async fn silent_after_two_intervals(db: Db) {
    let Some(server) = TestServer::start_syncing_every(db, Duration::from_secs(1)).await else { return };
    let api = &server.api;
    let (quiet, quiet_token, _) = enroll(api, "dev", "quiet-laptop").await;
    let (busy, busy_token, _) = enroll(api, "ops", "busy-laptop").await;
    let (revoked, _, _) = enroll(api, "old", "old-laptop").await;
    let revoke = api.post(&format!("/api/v1/admin/devices/{revoked}/revoke"), ADMIN_TOKEN, json!({})).await;
    assert_eq!(revoke.status, StatusCode::OK, "{}", revoke.text);
    let heartbeat = json!({"events": [], "heartbeat": {"at_ms": now_ms(), "version": "0.2.0"}});
    for token in [&quiet_token, &busy_token] {
        let reply = api.post("/api/v1/device/events", token, heartbeat.clone()).await;
        assert_eq!(reply.body["sync_interval_seconds"], 1, "{}", reply.text);
    }
    assert_eq!(device(api, &quiet).await.0["silent"], false);

    // Four seconds: the busy device syncs every half second, the quiet one not at all.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        api.post("/api/v1/device/events", &busy_token, json!({"events": []})).await;
    }
    let (quiet_info, interval) = device(api, &quiet).await;
    assert_eq!(interval, 1);
    assert_eq!(quiet_info["silent"], true, "not heard from for more than two intervals: {quiet_info}");
    assert_eq!(device(api, &busy).await.0["silent"], false);
    assert_eq!(device(api, &revoked).await.0["silent"], false, "a revoked device is revoked, not silent");

    // One sync, even with nothing to upload, and it is heard from again.
    api.post("/api/v1/device/events", &quiet_token, json!({"events": []})).await;
    let (quiet_info, _) = device(api, &quiet).await;
    assert_eq!(quiet_info["silent"], false);
    assert!(quiet_info["last_seen_at"].as_i64().unwrap() >= now_ms() / 1000 - 1);
    server.stop().await;
}

/// A database at schema 1 (launches only, `action` required) with a device and its launch.
async fn migrated_from_launches_only(db: Db) {
    let Some(url) = common::database_url(db).await else { return };
    let old = warden_server::Store::open_at(&url, 1).await.expect("schema 1");
    let launch = launch_event("9c1e6f1a-0000-4000-8000-00000000aaaa", "dev", "claude-code", "block", 1_764_500_000_000);
    sqlx::query(
        "INSERT INTO devices (id, token_hash, hostname, username, platform, agent_version, enrolled_at, last_seen_at) \
         VALUES ('dev_old', 'hash', 'old-laptop', 'dev', 'linux', '0.1.0', 1764400000, 1764500000)",
    )
    .execute(&old.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO events (id, device_id, username, tool, action, at_ms, received_at, body) \
         VALUES ($1, 'dev_old', 'dev', 'claude-code', 'block', $2, 1764500001, $3)",
    )
    .bind(launch["id"].as_str().unwrap())
    .bind(launch["at_ms"].as_i64().unwrap())
    .bind(launch.to_string())
    .execute(&old.pool)
    .await
    .unwrap();
    old.pool.close().await;

    let server = TestServer::on(&url).await;
    let api = &server.api;
    let mut expected = launch.clone();
    expected["kind"] = json!("launch");
    assert_eq!(events_of(api, "kind=launch").await, [expected.clone()], "the old row is a launch");
    assert_eq!(events_of(api, "tool=claude-code&action=block").await, [expected]);
    let (info, _) = device(api, "dev_old").await;
    assert_eq!(info["silent"], true, "last heard from long ago");
    assert!(info.get("service").is_none(), "no start or stop known: {info}");
    // Kinds without an action fit the migrated table.
    let (_, token, _) = enroll(api, "dev", "new-laptop").await;
    let stop = json!({"kind": "service-stop", "id": "7e1d-mig-stop", "at_ms": now_ms(), "mode": "service",
                      "version": "0.2.0", "pid": 9, "reason": "signal SIGTERM"});
    let reply = api.post("/api/v1/device/events", &token, json!({"events": [stop]})).await;
    assert_eq!(reply.body["stored"], 1, "{}", reply.text);
    assert_eq!(events_of(api, "kind=service-stop").await.len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_in_one_table_on_sqlite() {
    every_kind_in_one_table(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_in_one_table_on_postgres() {
    every_kind_in_one_table(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_after_two_intervals_on_sqlite() {
    silent_after_two_intervals(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_after_two_intervals_on_postgres() {
    silent_after_two_intervals(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrated_from_launches_only_on_sqlite() {
    migrated_from_launches_only(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrated_from_launches_only_on_postgres() {
    migrated_from_launches_only(Db::Postgres).await;
}
