//! Who may do what: missing, wrong and revoked tokens; device tokens on admin routes; admin
//! tokens on device routes; self-approval; another device's exception. On both backends.

mod common;

use common::{ADMIN_TOKEN, Db, TestServer, enroll, signed_exceptions};
use hyper::{Method, StatusCode};
use serde_json::json;

const JUSTIFICATION: &str = "Reviewing the vendor's agent for the security assessment";

async fn authorization(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let api = &server.api;
    let (device_a, token_a, key) = enroll(api, "dev", "laptop-a").await;
    let (device_b, token_b, _) = enroll(api, "erin", "laptop-b").await;

    // Every device and admin route refuses a request without a token, or with a wrong one.
    for warden_server::Route { method, path, access } in warden_server::routes() {
        let access = format!("{access:?}");
        if access != "Device" && access != "Admin" {
            continue;
        }
        let path = path.replace("{id}", "x").replace("{version}", "1");
        let method: Method = method.parse().unwrap();
        let body = (method == Method::POST).then(|| json!({}));
        for token in [None, Some("wrong-token"), Some("Bearer-less")] {
            let reply = api.call(method.clone(), &path, token, body.clone()).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path} with {token:?}: {}", reply.text);
            assert_eq!(reply.body["field"], json!("authorization"));
        }
        // Device tokens never reach admin routes; the admin token is not a device.
        let (token, expected) = if access == "Admin" {
            (&token_a, StatusCode::FORBIDDEN)
        } else {
            (&ADMIN_TOKEN.to_owned(), StatusCode::UNAUTHORIZED)
        };
        let reply = api.call(method.clone(), &path, Some(token), body.clone()).await;
        assert_eq!(reply.status, expected, "{method} {path} with the wrong kind of token: {}", reply.text);
    }

    // A wrong enroll secret enrolls nothing.
    let wrong = api
        .call(Method::POST, "/api/v1/enroll", None, Some(json!({"secret": "guess", "hostname": "h", "user": "u"})))
        .await;
    assert_eq!((wrong.status, wrong.body["field"].clone()), (StatusCode::FORBIDDEN, json!("secret")));

    // Device A files a request; device B can neither see nor withdraw it.
    let filed = api
        .post(
            "/api/v1/device/exceptions",
            &token_a,
            json!({"tool": "claude-code", "justification": JUSTIFICATION, "duration_seconds": 600}),
        )
        .await;
    assert_eq!(filed.status, StatusCode::CREATED, "{}", filed.text);
    let id = filed.body["id"].as_str().unwrap().to_owned();
    assert_eq!(api.get(&format!("/api/v1/device/exceptions/{id}"), &token_b).await.status, StatusCode::NOT_FOUND);
    let withdraw = api.post(&format!("/api/v1/device/exceptions/{id}/withdraw"), &token_b, json!({})).await;
    assert_eq!(withdraw.status, StatusCode::NOT_FOUND);
    assert_eq!(api.get("/api/v1/device/exceptions", &token_b).await.body["requests"], json!([]));

    // Nobody approves their own request, by login or by e-mail.
    for approver in ["dev", "DEV@example.com"] {
        let reply = api
            .post(&format!("/api/v1/admin/exceptions/{id}/approve"), ADMIN_TOKEN, json!({"approver": approver}))
            .await;
        assert_eq!(
            (reply.status, reply.body["code"].clone()),
            (StatusCode::FORBIDDEN, json!("self_approval")),
            "{approver}"
        );
    }
    let still = api.get(&format!("/api/v1/device/exceptions/{id}"), &token_a).await;
    assert_eq!(still.body["state"], json!("pending"));

    // Approved, it reaches device A only.
    let approved = api
        .post(
            &format!("/api/v1/admin/exceptions/{id}/approve"),
            ADMIN_TOKEN,
            json!({"approver": "alice", "comment": "ok"}),
        )
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.text);
    assert_eq!(signed_exceptions(api, &token_a, &device_a, &key).await.1.exceptions.len(), 1);
    assert_eq!(signed_exceptions(api, &token_b, &device_b, &key).await.1.exceptions, []);

    // The state machine holds: approved cannot be denied or withdrawn; revoke needs a comment.
    let deny = api
        .post(
            &format!("/api/v1/admin/exceptions/{id}/deny"),
            ADMIN_TOKEN,
            json!({"approver": "alice", "comment": "no"}),
        )
        .await;
    assert_eq!((deny.status, deny.body["code"].clone()), (StatusCode::CONFLICT, json!("invalid_transition")));
    let withdraw = api.post(&format!("/api/v1/device/exceptions/{id}/withdraw"), &token_a, json!({})).await;
    assert_eq!(withdraw.status, StatusCode::CONFLICT);
    let bare =
        api.post(&format!("/api/v1/admin/exceptions/{id}/revoke"), ADMIN_TOKEN, json!({"approver": "alice"})).await;
    assert_eq!((bare.status, bare.body["field"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("comment")));
    let revoked = api
        .post(
            &format!("/api/v1/admin/exceptions/{id}/revoke"),
            ADMIN_TOKEN,
            json!({"approver": "alice", "comment": "assessment done"}),
        )
        .await;
    assert_eq!(revoked.body["state"], json!("revoked"));
    assert_eq!(signed_exceptions(api, &token_a, &device_a, &key).await.1.exceptions, []);

    // Revoked devices are locked out at once.
    let revoke = api.post(&format!("/api/v1/admin/devices/{device_a}/revoke"), ADMIN_TOKEN, json!({})).await;
    assert_eq!(revoke.status, StatusCode::OK);
    assert!(revoke.body["revoked_at"].is_i64());
    let locked = api.get("/api/v1/device/policy", &token_a).await;
    assert_eq!((locked.status, locked.body["code"].clone()), (StatusCode::UNAUTHORIZED, json!("revoked_token")));
    assert_eq!(api.get("/api/v1/device/policy", &token_b).await.status, StatusCode::OK);

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_on_sqlite() {
    authorization(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_on_postgres() {
    authorization(Db::Postgres).await;
}
