//! The API story, end to end over real HTTP, on SQLite and on PostgreSQL: enroll → upload policy
//! → fetch the signed policy (verify, 304) → upload events twice → file a request → approve →
//! the waiting device hears of it → the exception expires.

mod common;

use common::{ADMIN_TOKEN, Api, Db, TestServer, enroll, launch_event, now_ms, signed_exceptions};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use warden_api::{PolicyEnvelope, verify_envelope};
use warden_policy::Policy;

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/server").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn story(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let api: &Api = &server.api;

    // Enroll: the device gets an id, a token and the key to pin.
    let (device_id, token, pinned_key) = enroll(api, "dev", "dev-laptop").await;
    let me = api.get("/api/v1/device/me", &token).await;
    assert_eq!(me.body["id"], json!(device_id));
    assert_eq!(me.body["user"], json!("dev"));

    // Upload: a broken policy is refused with its line and column and changes nothing.
    let broken = api
        .post(
            "/api/v1/admin/policies",
            ADMIN_TOKEN,
            json!({"source": fixture("broken-policy.toml"), "file_name": "broken-policy.toml"}),
        )
        .await;
    assert_eq!(broken.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", broken.text);
    assert_eq!(broken.body["field"], json!("source"));
    assert_eq!(broken.body["location"]["file"], json!("broken-policy.toml"));
    assert_eq!(broken.body["location"]["line"], json!(5));
    assert!(broken.body["message"].as_str().unwrap().contains("claud-code"), "{}", broken.text);
    let uploaded = api
        .post(
            "/api/v1/admin/policies",
            ADMIN_TOKEN,
            json!({"source": fixture("strict-policy.toml"), "uploaded_by": "alice"}),
        )
        .await;
    assert_eq!(uploaded.status, StatusCode::CREATED, "{}", uploaded.text);
    assert_eq!(uploaded.body["active"], json!(true));
    let version = uploaded.body["version"].as_i64().unwrap();
    assert_eq!(version, 2, "version 1 is the embedded default stored at first start");

    // Fetch: signed by the pinned key, the policy we uploaded; 304 for the same ETag.
    let fetched = api.get("/api/v1/device/policy", &token).await;
    assert_eq!(fetched.status, StatusCode::OK);
    let envelope: PolicyEnvelope = serde_json::from_value(fetched.body.clone()).unwrap();
    assert_eq!(envelope.version, version);
    verify_envelope(&envelope, &pinned_key).expect("the policy verifies against the key pinned at enrollment");
    let policy = Policy::from_json("served.json", &envelope.policy).unwrap();
    assert_eq!(policy.name, "Strict: internal assistant only");
    assert_eq!(policy.exceptions.max_duration, 8 * 3600);
    let etag = fetched.headers["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag, envelope.etag);
    let unchanged =
        api.call_with(Method::GET, "/api/v1/device/policy", Some(&token), None, &[("if-none-match", &etag)]).await;
    assert_eq!(unchanged.status, StatusCode::NOT_MODIFIED);
    assert!(unchanged.text.is_empty());
    let stale = api
        .call_with(
            Method::GET,
            "/api/v1/device/policy",
            Some(&token),
            None,
            &[("if-none-match", "\"1-0000000000000000\"")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::OK);

    // Events: a batch of 50 (30 blocked claude-code launches), uploaded twice: no duplicates.
    let start = now_ms() - 60_000;
    let events: Vec<Value> = (0..50)
        .map(|i| {
            let (tool, action) = if i < 30 { ("claude-code", "block") } else { ("qwen-code", "allow") };
            launch_event(
                &format!("00000000-0000-4000-8000-{:012}", i + 1000 * db as usize),
                "dev",
                tool,
                action,
                start + i as i64,
            )
        })
        .collect();
    let first = api.post("/api/v1/device/events", &token, json!({"events": events})).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.body, json!({"stored": 50, "duplicates": 0, "sync_interval_seconds": 60}));
    let retry = api.post("/api/v1/device/events", &token, json!({"events": events})).await;
    assert_eq!(retry.body, json!({"stored": 0, "duplicates": 50, "sync_interval_seconds": 60}));
    let all = api.get(&format!("/api/v1/admin/events?device={device_id}&limit=1000"), ADMIN_TOKEN).await;
    assert_eq!(all.body["events"].as_array().unwrap().len(), 50);
    let blocked = api.get("/api/v1/admin/events?user=dev&tool=claude-code&action=block&limit=1000", ADMIN_TOKEN).await;
    assert_eq!(blocked.body["events"].as_array().unwrap().len(), 30);
    let window =
        api.get(&format!("/api/v1/admin/events?since_ms={}&until_ms={}", start + 10, start + 20), ADMIN_TOKEN).await;
    let window = window.body["events"].as_array().unwrap().clone();
    assert_eq!(window.len(), 10);
    assert_eq!(window[0]["event"]["at_ms"], json!(start + 19), "newest first");

    // File a request: the policy's limits apply.
    let too_long = api
        .post(
            "/api/v1/device/exceptions",
            &token,
            json!({"tool": "claude-code", "justification": "Pairing with the vendor on the SDK migration", "duration_seconds": 9 * 3600}),
        )
        .await;
    assert_eq!(too_long.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(too_long.body["field"], json!("duration_seconds"));
    let never = api
        .post(
            "/api/v1/device/exceptions",
            &token,
            json!({"tool": "claude-desktop", "justification": "Pairing with the vendor on the SDK migration", "duration_seconds": 3600}),
        )
        .await;
    assert_eq!(
        (never.status, never.body["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("exception_not_allowed"))
    );
    let filed = api
        .post(
            "/api/v1/device/exceptions",
            &token,
            json!({"tool": "claude-code", "justification": "Pairing with the vendor on the SDK migration this week",
                   "scope": "/home/dev/src/app", "duration_seconds": 3600, "client_id": "outbox-1"}),
        )
        .await;
    assert_eq!(filed.status, StatusCode::CREATED, "{}", filed.text);
    assert_eq!(filed.body["state"], json!("pending"));
    assert_eq!(filed.body["user"], json!("dev"));
    let request_id = filed.body["id"].as_str().unwrap().to_owned();
    let refiled = api
        .post(
            "/api/v1/device/exceptions",
            &token,
            json!({"tool": "claude-code", "justification": "Pairing with the vendor on the SDK migration this week",
                   "scope": "/home/dev/src/app", "duration_seconds": 3600, "client_id": "outbox-1"}),
        )
        .await;
    assert_eq!(
        (refiled.status, refiled.body["id"].clone()),
        (StatusCode::OK, json!(request_id)),
        "a retried filing is the same request"
    );

    // The approver sees it first, with how often this user hit the block.
    let pending = api.get("/api/v1/admin/exceptions?state=pending", ADMIN_TOKEN).await;
    let pending = pending.body.as_array().unwrap().clone();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["id"], json!(request_id));
    assert_eq!(pending[0]["blocked_last_7_days"], json!(30));
    assert_eq!(pending[0]["hostname"], json!("dev-laptop"));
    assert_eq!(pending[0]["justification"], json!("Pairing with the vendor on the SDK migration this week"));

    // The device waits; the approval (shortened to 2 s) wakes it.
    let cursor = api.get("/api/v1/device/wait?since=0", &token).await.body["cursor"].as_i64().unwrap();
    let waiter = {
        let api = api.clone();
        let token = token.clone();
        tokio::spawn(async move { api.get(&format!("/api/v1/device/wait?since={cursor}&timeout=30"), &token).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let approved = api
        .post(
            &format!("/api/v1/admin/exceptions/{request_id}/approve"),
            ADMIN_TOKEN,
            json!({"approver": "alice@example.com", "comment": "OK for the migration", "duration_seconds": 2}),
        )
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.text);
    assert_eq!(approved.body["state"], json!("approved"));
    assert_eq!(approved.body["granted_seconds"], json!(2));
    let woken = waiter.await.unwrap();
    assert_eq!(woken.status, StatusCode::OK);
    let changes = woken.body["changes"].as_array().unwrap();
    assert!(
        changes.iter().any(|c| c["kind"] == json!("exception") && c["subject"] == json!(request_id)),
        "the wait ended with the decision, not the timeout: {}",
        woken.text
    );
    assert!(woken.body["cursor"].as_i64().unwrap() > cursor);

    // The device fetches its exceptions: exactly this one is in force.
    let (_, mine) = signed_exceptions(api, &token, &device_id, &pinned_key).await;
    let active = &mine.exceptions;
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].tool, "claude-code");
    assert_eq!(active[0].user, "dev");
    assert_eq!(active[0].scope.as_deref(), Some("/home/dev/src/app"));
    assert_eq!(active[0].expires_at - active[0].starts_at, 2);

    // Expiry: after 2 s it no longer applies, and the sweep logs `expired` as `system`.
    let audit_path = format!("/api/v1/admin/exceptions/{request_id}/audit");
    let mut audit = Vec::new();
    for _ in 0..100 {
        audit = api.get(&audit_path, ADMIN_TOKEN).await.body.as_array().unwrap().clone();
        if audit.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let trail: Vec<(Value, Value, Value)> =
        audit.iter().map(|e| (e["from_state"].clone(), e["to_state"].clone(), e["actor"].clone())).collect();
    assert_eq!(
        trail,
        vec![
            (Value::Null, json!("pending"), json!("dev")),
            (json!("pending"), json!("approved"), json!("alice@example.com")),
            (json!("approved"), json!("expired"), json!("system")),
        ]
    );
    let (after, list) = signed_exceptions(api, &token, &device_id, &pinned_key).await;
    assert_eq!(list.exceptions, []);
    assert_eq!(after.body["requests"][0]["state"], json!("expired"));
    let history = api.get("/api/v1/admin/audit", ADMIN_TOKEN).await;
    assert_eq!(history.body.as_array().unwrap().len(), 3);

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn story_on_sqlite() {
    story(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn story_on_postgres() {
    story(Db::Postgres).await;
}
