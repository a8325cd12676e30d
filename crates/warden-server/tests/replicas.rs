//! Two server replicas on one PostgreSQL: a decision taken on one reaches a device long-polling
//! the other (LISTEN/NOTIFY), and both serve the same signed policy.

mod common;

use common::{ADMIN_TOKEN, Db, TestServer, database_url, enroll};
use hyper::StatusCode;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_on_one_replica_wakes_a_device_waiting_on_the_other() {
    let Some(url) = database_url(Db::Postgres).await else { return };
    let first = TestServer::on(&url).await;
    let second = TestServer::on(&url).await;
    let (_, token, key) = enroll(&first.api, "dev", "laptop").await;

    // Same key, same policy on both.
    let a = first.api.get("/api/v1/device/policy", &token).await;
    let b = second.api.get("/api/v1/device/policy", &token).await;
    assert_eq!(a.body, b.body);
    assert_eq!(a.body["public_key"], json!(key));

    let filed = first
        .api
        .post(
            "/api/v1/device/exceptions",
            &token,
            json!({"tool": "claude-code", "justification": "Reproducing a customer bug with the vendor", "duration_seconds": 600}),
        )
        .await;
    let id = filed.body["id"].as_str().unwrap().to_owned();

    for round in 0..3 {
        // Wait on the first replica, decide on the second.
        let cursor = first.api.get("/api/v1/device/wait?since=0", &token).await.body["cursor"].as_i64().unwrap();
        let waiter = {
            let api = first.api.clone();
            let token = token.clone();
            tokio::spawn(
                async move { api.get(&format!("/api/v1/device/wait?since={cursor}&timeout=20"), &token).await },
            )
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let path = match round {
            0 => format!("/api/v1/admin/exceptions/{id}/approve"),
            1 => format!("/api/v1/admin/exceptions/{id}/revoke"),
            _ => "/api/v1/admin/policies/1/activate".to_owned(),
        };
        let body = if round < 2 { json!({"approver": "alice", "comment": "round"}) } else { json!({"actor": "alice"}) };
        let decided = second.api.post(&path, ADMIN_TOKEN, body).await;
        assert_eq!(decided.status, StatusCode::OK, "{path}: {}", decided.text);
        let woken = waiter.await.unwrap();
        let changes = woken.body["changes"].as_array().unwrap();
        let expected = if round < 2 { json!("exception") } else { json!("policy") };
        assert!(
            changes.iter().any(|c| c["kind"] == expected),
            "round {round}: the waiting device heard of the change from the other replica: {}",
            woken.text
        );
    }
    first.stop().await;
    second.stop().await;
}
