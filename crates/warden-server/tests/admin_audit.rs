//! The admin audit log, on SQLite and on PostgreSQL: device revocations, policy uploads and
//! activations each leave one row naming who acted (or that the shared admin token acted unnamed);
//! a revocation's actor shows on the device; a malformed actor is refused naming the field.

mod common;

use common::{ADMIN_TOKEN, Db, TestServer, enroll};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

async fn admin_actions_name_their_actor(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let api = &server.api;
    let (device, _, _) = enroll(api, "dev", "dev-laptop").await;
    let (unnamed, _, _) = enroll(api, "erin", "erin-laptop").await;

    // Malformed actors change nothing.
    let revoke = |id: &str| format!("/api/v1/admin/devices/{id}/revoke");
    let wrong = api.post(&revoke(&device), ADMIN_TOKEN, json!({"who": "ana"})).await;
    assert_eq!((wrong.status, wrong.body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("who")), "{}", wrong.text);
    let control = api.post(&revoke(&device), ADMIN_TOKEN, json!({"actor": "ana\u{7}"})).await;
    assert_eq!((control.status, control.body["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("actor")));

    let revoked = api.post(&revoke(&device), ADMIN_TOKEN, json!({"actor": "ana@corp.example"})).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    assert_eq!(revoked.body["revoked_by"], "ana@corp.example");
    // Revoking again changes nothing and records nothing.
    api.post(&revoke(&device), ADMIN_TOKEN, json!({"actor": "raj@corp.example"})).await;
    let bare = api.call(Method::POST, &revoke(&unnamed), Some(ADMIN_TOKEN), None).await;
    assert_eq!(bare.body["revoked_by"], "admin token (no name given)", "{}", bare.text);

    let source = include_str!("../../warden-policy/src/default-policy.toml");
    let uploaded =
        api.post("/api/v1/admin/policies", ADMIN_TOKEN, json!({"source": source, "uploaded_by": "raj"})).await;
    assert_eq!(uploaded.status, StatusCode::CREATED, "{}", uploaded.text);
    let again = api.post("/api/v1/admin/policies/1/activate", ADMIN_TOKEN, json!({"actor": "lee"})).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert!(again.body["uploaded_by"].as_str().unwrap().contains("activated again by lee"), "{}", again.text);
    let newest = api.post("/api/v1/admin/policies/3/activate", ADMIN_TOKEN, json!({"actor": "lee"})).await;
    assert_eq!(newest.status, StatusCode::OK, "{}", newest.text);

    let log = api.get("/api/v1/admin/admin-audit", ADMIN_TOKEN).await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.text);
    let rows: Vec<(String, String, String)> = log
        .body
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e: &Value| {
            let text = |k: &str| e[k].as_str().unwrap().to_owned();
            (text("actor"), text("action"), text("subject"))
        })
        .collect();
    let row = |actor: &str, action: &str, subject: &str| (actor.to_owned(), action.to_owned(), subject.to_owned());
    assert_eq!(
        rows,
        [
            row("warden-server (first start)", "policy-uploaded", "1"),
            row("ana@corp.example", "device-revoked", &device),
            row("admin token (no name given)", "device-revoked", &unnamed),
            row("raj", "policy-uploaded", "2"),
            row("lee", "policy-activated", "3"),
            row("lee", "policy-activated", "3"),
        ]
    );
    let csv = api.get("/api/v1/admin/admin-audit?format=csv", ADMIN_TOKEN).await;
    assert_eq!(csv.text.lines().count(), 7, "{}", csv.text);
    server.stop().await;
}

#[tokio::test]
async fn admin_actions_name_their_actor_on_sqlite() {
    admin_actions_name_their_actor(Db::Sqlite).await;
}

#[tokio::test]
async fn admin_actions_name_their_actor_on_postgres() {
    admin_actions_name_their_actor(Db::Postgres).await;
}
