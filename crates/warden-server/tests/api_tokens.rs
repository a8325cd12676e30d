//! API tokens (service accounts), on SQLite and on PostgreSQL: made only by a signed-in person,
//! never above that person's role, never a decider; what they do is recorded as
//! `owner (API token NAME)`; they stop when revoked, expired, or when their owner is disabled.

mod common;

use common::{ADMIN_TOKEN, Db, PASSWORD, TestServer, as_account, database_url, enroll, file_request, sign_in};
use hyper::{Method, StatusCode};
use serde_json::json;
use warden_server::accounts::{Role, add, disable};

const TOKENS: &str = "/api/v1/admin/api-tokens";

async fn api_tokens_act_for_their_owner_and_never_decide(db: Db) {
    let Some(url) = database_url(db).await else { return };
    let server = TestServer::on(&url).await;
    let api = &server.api;
    let (_, dev, _) = enroll(api, "dev", "dev-laptop").await;
    let store = warden_server::Store::open(&url).await.unwrap();
    let now = common::now_ms() / 1000;
    add(&store, "ops@corp.example", Role::Admin, PASSWORD, now).await.unwrap();
    add(&store, "ana@corp.example", Role::Approver, PASSWORD, now).await.unwrap();
    add(&store, "devon", Role::Developer, PASSWORD, now).await.unwrap();

    // Neither the break-glass admin token nor a developer makes tokens.
    let glass = api.post(TOKENS, ADMIN_TOKEN, json!({"name": "ci"})).await;
    assert_eq!((glass.status, glass.body["code"].as_str()), (StatusCode::FORBIDDEN, Some("person_required")));
    let devon = sign_in(api, "devon", PASSWORD).await;
    let refused = as_account(api, Method::POST, TOKENS, &devon, Some(json!({"name": "mine"}))).await;
    assert_eq!((refused.status, refused.body["code"].as_str()), (StatusCode::FORBIDDEN, Some("role_forbids")));

    // An admin makes an admin token: shown once, listed without it.
    let ops = sign_in(api, "ops@corp.example", PASSWORD).await;
    let made = as_account(
        api,
        Method::POST,
        TOKENS,
        &ops,
        Some(json!({"name": "policy-ci", "role": "admin", "valid_days": 30})),
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let ci = made.body["token"].as_str().unwrap().to_owned();
    assert!(ci.starts_with("wapi_") && ci.len() == 69, "{ci}");
    assert_eq!((made.body["owner"].as_str(), made.body["role"].as_str()), (Some("ops@corp.example"), Some("admin")));
    assert_eq!(made.body["expires_at"].as_i64().unwrap() - made.body["created_at"].as_i64().unwrap(), 30 * 86_400);
    let listed = api.call_with(Method::GET, TOKENS, None, None, &[("cookie", &ops.0)]).await;
    assert_eq!(listed.body["tokens"].as_array().unwrap().len(), 1);
    assert!(!listed.text.contains(&ci));

    // The token administers, recorded under its owner and its name.
    let policy = include_str!("../../warden-policy/src/default-policy.toml");
    let uploaded = api.post("/api/v1/admin/policies", &ci, json!({"source": policy, "uploaded_by": "someone"})).await;
    assert_eq!(uploaded.status, StatusCode::CREATED, "{}", uploaded.text);
    assert_eq!(uploaded.body["uploaded_by"], "ops@corp.example (API token policy-ci)");
    let audit = api.get("/api/v1/admin/admin-audit", &ci).await;
    let actors: Vec<(&str, &str)> = audit
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert!(actors.contains(&("api-token-created", "ops@corp.example")), "{actors:?}");
    assert!(actors.contains(&("policy-uploaded", "ops@corp.example (API token policy-ci)")), "{actors:?}");

    // It never decides an exception request, and it cannot mint tokens of its own.
    let request = file_request(api, &dev, "Pairing with the vendor on the SDK migration", 3600).await;
    for verb in ["approve", "deny", "revoke"] {
        let path = format!("/api/v1/admin/exceptions/{request}/{verb}");
        let tried = api.post(&path, &ci, json!({"approver": "ops@corp.example", "comment": "ok"})).await;
        assert_eq!((tried.status, tried.body["code"].as_str()), (StatusCode::FORBIDDEN, Some("person_required")));
    }
    let still = api.get("/api/v1/admin/exceptions?state=pending", &ci).await;
    assert!(still.text.contains(&request), "{}", still.text);
    let minted = api.post(TOKENS, &ci, json!({"name": "child"})).await;
    assert_eq!((minted.status, minted.body["code"].as_str()), (StatusCode::FORBIDDEN, Some("person_required")));

    // An approver makes auditor tokens only; an auditor token reads but does not administer.
    let ana = sign_in(api, "ana@corp.example", PASSWORD).await;
    let above = as_account(api, Method::POST, TOKENS, &ana, Some(json!({"name": "x", "role": "admin"}))).await;
    assert_eq!((above.status, above.body["code"].as_str()), (StatusCode::FORBIDDEN, Some("role_forbids")));
    for (body, field) in [
        (json!({"name": "x", "role": "approver"}), "role"),
        (json!({"name": " "}), "name"),
        (json!({"name": "x", "valid_days": 0}), "valid_days"),
        (json!({"name": "x", "valid_days": 366}), "valid_days"),
    ] {
        let bad = as_account(api, Method::POST, TOKENS, &ana, Some(body.clone())).await;
        assert_eq!((bad.status, bad.body["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(field)), "{body}");
    }
    let siem = as_account(api, Method::POST, TOKENS, &ana, Some(json!({"name": "siem-export"}))).await;
    assert_eq!((siem.status, siem.body["role"].as_str()), (StatusCode::CREATED, Some("auditor")), "{}", siem.text);
    let siem_token = siem.body["token"].as_str().unwrap().to_owned();
    let siem_id = siem.body["id"].as_str().unwrap().to_owned();
    assert_eq!(api.get("/api/v1/admin/events?format=csv", &siem_token).await.status, StatusCode::OK);
    let upload = api.post("/api/v1/admin/policies", &siem_token, json!({"source": policy})).await;
    assert_eq!((upload.status, upload.body["code"].as_str()), (StatusCode::FORBIDDEN, Some("role_forbids")));
    // Ana sees only her own tokens; she cannot revoke the admin's.
    let hers = api.call_with(Method::GET, TOKENS, None, None, &[("cookie", &ana.0)]).await;
    assert_eq!(hers.body["tokens"].as_array().unwrap().len(), 1);
    let ci_id = made.body["id"].as_str().unwrap();
    let theirs = as_account(api, Method::POST, &format!("{TOKENS}/{ci_id}/revoke"), &ana, None).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);

    // Revoked: refused at once.
    let revoked = as_account(api, Method::POST, &format!("{TOKENS}/{siem_id}/revoke"), &ana, None).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    assert!(revoked.body["revoked_at"].is_i64());
    let gone = api.get("/api/v1/admin/overview", &siem_token).await;
    assert_eq!((gone.status, gone.body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unknown_token")));

    // Expired: refused.
    sqlx::query("UPDATE api_tokens SET expires_at = $1 WHERE id = $2")
        .bind(now)
        .bind(ci_id)
        .execute(&store.pool)
        .await
        .unwrap();
    assert_eq!(api.get("/api/v1/admin/overview", &ci).await.status, StatusCode::UNAUTHORIZED);
    sqlx::query("UPDATE api_tokens SET expires_at = $1 WHERE id = $2")
        .bind(now + 3600)
        .bind(ci_id)
        .execute(&store.pool)
        .await
        .unwrap();
    assert_eq!(api.get("/api/v1/admin/overview", &ci).await.status, StatusCode::OK);
    let used = api.call_with(Method::GET, TOKENS, None, None, &[("cookie", &ops.0)]).await;
    let ci_view = used.body["tokens"].as_array().unwrap().iter().find(|t| t["id"] == ci_id).unwrap().clone();
    assert!(ci_view["last_used_at"].as_i64().unwrap() >= now, "{ci_view}");

    // Its owner demoted (signs in through the identity provider as an auditor now): the token
    // acts as an auditor; its owner disabled: refused.
    sqlx::query("UPDATE accounts SET role = 'auditor' WHERE name = 'ops@corp.example'")
        .execute(&store.pool)
        .await
        .unwrap();
    let demoted = api.post("/api/v1/admin/policies", &ci, json!({"source": policy})).await;
    assert_eq!((demoted.status, demoted.body["code"].as_str()), (StatusCode::FORBIDDEN, Some("role_forbids")));
    assert_eq!(api.get("/api/v1/admin/overview", &ci).await.status, StatusCode::OK);
    disable(&store, "ops@corp.example", now).await.unwrap();
    assert_eq!(api.get("/api/v1/admin/overview", &ci).await.status, StatusCode::UNAUTHORIZED);
    server.stop().await;
}

#[tokio::test]
async fn api_tokens_act_for_their_owner_and_never_decide_on_sqlite() {
    api_tokens_act_for_their_owner_and_never_decide(Db::Sqlite).await;
}

#[tokio::test]
async fn api_tokens_act_for_their_owner_and_never_decide_on_postgres() {
    api_tokens_act_for_their_owner_and_never_decide(Db::Postgres).await;
}
