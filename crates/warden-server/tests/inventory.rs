//! Device inventories, on SQLite and on PostgreSQL: a device's report replaces its last one, a
//! report that differs (not merely a later scan of the same things) becomes a history entry, the
//! admin sees each device's current report (filtered by tool) and its history; malformed and
//! oversized reports are refused with the field named, and only a device may report.

mod common;

use common::{ADMIN_TOKEN, Db, TestServer, enroll};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

fn report(scanned_at_ms: i64, claude_version: &str) -> Value {
    json!({
        "scanned_at_ms": scanned_at_ms,
        "tools": [
            {"tool": "codex", "user": "", "kind": "npm-package", "place": "npm",
             "path": "/usr/lib/node_modules/@openai/codex", "version": "0.171.0"},
            {"tool": "claude-code", "user": "dev", "kind": "install-folder",
             "path": "/home/dev/.local/share/claude", "version": claude_version}
        ],
        "mcp_servers": [
            {"client": "claude-code", "user": "dev", "scope": "user", "name": "shell", "transport": "stdio",
             "command": ["npx", "-y", "@evil/mcp-shell"], "file": "/home/dev/.claude.json",
             "sha256": "ab12", "denied": "MCP server \"shell\" is denied by policy (npx -y @evil/mcp-shell)"}
        ]
    })
}

async fn inventories_are_kept_current_with_their_history(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let api = &server.api;
    let (device, token, _) = enroll(api, "dev", "laptop-a").await;
    let (other, other_token, _) = enroll(api, "erin", "laptop-b").await;
    let put = |token: &str, body: Value| {
        let token = token.to_owned();
        async move { api.call(Method::PUT, "/api/v1/device/inventory", Some(&token), Some(body)).await }
    };

    let first = put(&token, report(1_000, "2.1.332")).await;
    assert_eq!((first.status, &first.body["changed"]), (StatusCode::OK, &json!(true)), "{}", first.text);
    // The same things found by a later scan: not a change.
    let again = put(&token, report(2_000, "2.1.332")).await;
    assert_eq!(again.body["changed"], false, "{}", again.text);
    // An upgrade is.
    let upgraded = put(&token, report(3_000, "2.1.340")).await;
    assert_eq!(upgraded.body["changed"], true, "{}", upgraded.text);
    let erin = json!({"scanned_at_ms": 5, "tools": [], "mcp_servers": []});
    assert_eq!(put(&other_token, erin).await.status, StatusCode::OK);

    let all = api.get("/api/v1/admin/inventory", ADMIN_TOKEN).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    let devices = all.body["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2);
    let mine = devices.iter().find(|d| d["device_id"] == device).unwrap();
    assert_eq!((&mine["user"], &mine["hostname"]), (&json!("dev"), &json!("laptop-a")));
    assert_eq!(mine["report"]["scanned_at_ms"], 3_000);
    let claude = mine["report"]["tools"].as_array().unwrap().iter().find(|t| t["tool"] == "claude-code").unwrap();
    assert_eq!(claude["version"], "2.1.340");
    assert!(mine["report"]["mcp_servers"][0]["denied"].as_str().unwrap().contains("denied by policy"));
    assert!(mine["changed_at"].as_i64().unwrap() <= mine["reported_at"].as_i64().unwrap());

    // Where is Claude Code installed? Only the first device.
    let with_claude = api.get("/api/v1/admin/inventory?tool=claude-code", ADMIN_TOKEN).await;
    let ids: Vec<&str> =
        with_claude.body["devices"].as_array().unwrap().iter().map(|d| d["device_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [device.as_str()]);
    assert_eq!(api.get("/api/v1/admin/inventory?tol=x", ADMIN_TOKEN).await.status, StatusCode::BAD_REQUEST);

    // Two changes in the history, newest first; the unchanged rescan is not one.
    let history = api.get(&format!("/api/v1/admin/devices/{device}/inventory"), ADMIN_TOKEN).await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.text);
    let changes = history.body["changes"].as_array().unwrap();
    let versions: Vec<&str> = changes
        .iter()
        .map(|c| c["report"]["tools"].as_array().unwrap().iter().find(|t| t["tool"] == "claude-code").unwrap())
        .map(|t| t["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["2.1.340", "2.1.332"]);
    assert!(
        api.get(&format!("/api/v1/admin/devices/{other}/inventory"), ADMIN_TOKEN).await.body["changes"][0].is_object()
    );

    // Refused, nothing kept (the test server's body limit is 256 KiB, so the count is what is
    // refused here): too many items, an item without its tool, a field the format lacks,
    // no device token, the admin token.
    let many: Vec<Value> = (0..5_001).map(|i| json!({"tool": "x", "kind": "k", "path": format!("/{i}")})).collect();
    let too_many = put(&token, json!({"scanned_at_ms": 9, "tools": many})).await;
    assert_eq!(too_many.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", too_many.text);
    assert_eq!(too_many.body["field"], "tools");
    let nameless = put(&token, json!({"scanned_at_ms": 9, "tools": [{"tool": "", "kind": "x", "path": "/p"}]})).await;
    assert_eq!(nameless.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", nameless.text);
    let unknown = put(&token, json!({"scanned_at_ms": 9, "secrets": []})).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{}", unknown.text);
    let anonymous = api.call(Method::PUT, "/api/v1/device/inventory", None, Some(report(9, "x"))).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let as_admin = put(ADMIN_TOKEN, report(9, "x")).await;
    assert_eq!(as_admin.status, StatusCode::UNAUTHORIZED, "{}", as_admin.text);
    let after = api.get(&format!("/api/v1/admin/devices/{device}/inventory"), ADMIN_TOKEN).await;
    assert_eq!(after.body["changes"].as_array().unwrap().len(), 2, "refused reports left no trace");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventories_are_kept_current_with_their_history_on_sqlite() {
    inventories_are_kept_current_with_their_history(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventories_are_kept_current_with_their_history_on_postgres() {
    inventories_are_kept_current_with_their_history(Db::Postgres).await;
}
