//! Devices belong to people, on SQLite and on PostgreSQL: once accounts exist the shared enroll
//! secret no longer enrolls; a one-time code a signed-in person made enrolls exactly one device,
//! for that person whatever the device claims; only admins make codes for others; device tokens
//! rotate without a window in which the device is locked out.

mod common;

use common::{ADMIN_TOKEN, Db, ENROLL_SECRET, PASSWORD, TestServer, as_account, database_url, enroll, sign_in};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use warden_api::EnrollmentCode;
use warden_server::accounts::{Role, add};

const CODES: &str = "/api/v1/admin/enrollment-codes";

fn enroll_body(code: &str, user: &str) -> Value {
    json!({"code": code, "hostname": "dev-laptop", "user": user, "platform": "linux", "agent_version": "0.1.0"})
}

/// The `(status, code)` of a reply, for one-line assertions.
fn outcome(reply: &warden_server::client::Reply) -> (StatusCode, Option<&str>) {
    (reply.status, reply.body["code"].as_str())
}

async fn devices_belong_to_people(db: Db) {
    let Some(url) = database_url(db).await else { return };
    let server = TestServer::on(&url).await;
    let api = &server.api;
    let store = warden_server::Store::open(&url).await.unwrap();
    let now = common::now_ms() / 1000;
    add(&store, "dev", Role::Developer, PASSWORD, now).await.unwrap();
    add(&store, "ops", Role::Admin, PASSWORD, now).await.unwrap();

    // The finding: with the shared secret anyone enrolled a "device" as any colleague. Not once
    // accounts exist.
    let body = json!({"secret": ENROLL_SECRET, "hostname": "h", "user": "ana", "platform": "linux"});
    let secret = api.call(Method::POST, "/api/v1/enroll", None, Some(body)).await;
    assert_eq!(outcome(&secret), (StatusCode::FORBIDDEN, Some("enrollment_code_required")), "{}", secret.text);

    // A developer signs in and makes a code for their own device; it names this server and them.
    let dev = sign_in(api, "dev", PASSWORD).await;
    let made = as_account(api, Method::POST, CODES, &dev, Some(json!({}))).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let code = EnrollmentCode::decode(made.body["enrollment_code"].as_str().unwrap()).unwrap();
    assert_eq!((code.server.as_str(), code.user.as_str()), (server.api.client.base(), "dev"));
    assert!(code.code.starts_with("wenr_") && code.server_ca.is_none(), "{code:?}");
    assert!(code.expires_at > now + 23 * 3600 && code.expires_at <= now + 24 * 3600 + 5);
    // …but not for someone else, and reads nothing else.
    let other = as_account(api, Method::POST, CODES, &dev, Some(json!({"user": "ana"}))).await;
    assert_eq!(outcome(&other), (StatusCode::FORBIDDEN, Some("role_forbids")), "{}", other.text);
    let read = api.call_with(Method::GET, "/api/v1/admin/overview", None, None, &[("cookie", &dev.0)]).await;
    assert_eq!(outcome(&read), (StatusCode::FORBIDDEN, Some("role_forbids")));
    for hours in [0, 169] {
        let bad = as_account(api, Method::POST, CODES, &dev, Some(json!({"valid_hours": hours}))).await;
        assert_eq!((bad.status, bad.body["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("valid_hours")));
    }

    // The device claims to be Ana's: refused, and the code is not spent by the refusal.
    let claimed = api.call(Method::POST, "/api/v1/enroll", None, Some(enroll_body(&code.code, "ana"))).await;
    assert_eq!((claimed.status, claimed.body["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("user")));
    let enrolled = api.call(Method::POST, "/api/v1/enroll", None, Some(enroll_body(&code.code, ""))).await;
    assert_eq!(enrolled.status, StatusCode::CREATED, "{}", enrolled.text);
    assert_eq!(enrolled.body["user"], "dev");
    let token = enrolled.body["device_token"].as_str().unwrap().to_owned();
    let me = api.get("/api/v1/device/me", &token).await;
    assert_eq!(me.body["user"], "dev");
    // One device per code: the second use is refused like an unknown code.
    let again = api.call(Method::POST, "/api/v1/enroll", None, Some(enroll_body(&code.code, ""))).await;
    assert_eq!(outcome(&again), (StatusCode::FORBIDDEN, Some("invalid_enrollment_code")));
    let guessed = api.call(Method::POST, "/api/v1/enroll", None, Some(enroll_body("wenr_0123", ""))).await;
    assert_eq!(outcome(&guessed), (StatusCode::FORBIDDEN, Some("invalid_enrollment_code")));

    // An expired code enrolls nothing.
    let late = as_account(api, Method::POST, CODES, &dev, Some(json!({"valid_hours": 1}))).await;
    let late = EnrollmentCode::decode(late.body["enrollment_code"].as_str().unwrap()).unwrap();
    sqlx::query("UPDATE enrollment_codes SET expires_at = $1 WHERE expires_at = $2")
        .bind(now - 1)
        .bind(late.expires_at)
        .execute(&store.pool)
        .await
        .unwrap();
    let expired = api.call(Method::POST, "/api/v1/enroll", None, Some(enroll_body(&late.code, ""))).await;
    assert_eq!(outcome(&expired), (StatusCode::FORBIDDEN, Some("invalid_enrollment_code")));

    // An admin makes one for a colleague without an account; the admin token must name one.
    let ops = sign_in(api, "ops", PASSWORD).await;
    let for_raj = as_account(api, Method::POST, CODES, &ops, Some(json!({"user": "Raj@Corp.Example"}))).await;
    assert_eq!((for_raj.status, for_raj.body["user"].as_str()), (StatusCode::CREATED, Some("raj@corp.example")));
    let nobody = api.post(CODES, ADMIN_TOKEN, json!({})).await;
    assert_eq!((nobody.status, nobody.body["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("user")));
    let glass = api.post(CODES, ADMIN_TOKEN, json!({"user": "sam"})).await;
    assert_eq!(glass.status, StatusCode::CREATED, "{}", glass.text);

    // Who made which code, and which device used it, is in the admin audit log.
    let audit = as_account(api, Method::GET, "/api/v1/admin/admin-audit", &ops, None).await;
    let actions: Vec<(String, String)> = audit
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["actor"].as_str().unwrap().to_owned(), e["action"].as_str().unwrap().to_owned()))
        .collect();
    for expected in [("dev", "enrollment-code-created"), ("dev", "device-enrolled"), ("ops", "enrollment-code-created")]
    {
        assert!(actions.contains(&(expected.0.to_owned(), expected.1.to_owned())), "{expected:?} in {actions:?}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_belong_to_people_on_sqlite() {
    devices_belong_to_people(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_belong_to_people_on_postgres() {
    devices_belong_to_people(Db::Postgres).await;
}

async fn device_tokens_rotate_without_locking_the_device_out(db: Db) {
    let Some(url) = database_url(db).await else { return };
    let server = TestServer::on(&url).await;
    let api = &server.api;
    let (device, old, _) = enroll(api, "dev", "dev-laptop").await;
    let rotate = |token: String| async move { api.post("/api/v1/device/token", &token, json!({})).await };

    // An answer lost on the way: the old token still works, and asking again replaces the
    // unused token.
    let lost = rotate(old.clone()).await;
    assert_eq!(lost.status, StatusCode::OK, "{}", lost.text);
    let lost = lost.body["device_token"].as_str().unwrap().to_owned();
    assert_eq!(api.get("/api/v1/device/me", &old).await.status, StatusCode::OK);
    let next = rotate(old.clone()).await.body["device_token"].as_str().unwrap().to_owned();
    assert_ne!(next, lost);
    assert_eq!(outcome(&api.get("/api/v1/device/me", &lost).await), (StatusCode::UNAUTHORIZED, Some("unknown_token")));
    assert_eq!(api.get("/api/v1/device/me", &old).await.status, StatusCode::OK);

    // The new token's first use retires the old one.
    let me = api.get("/api/v1/device/me", &next).await;
    assert_eq!((me.status, me.body["id"].as_str()), (StatusCode::OK, Some(device.as_str())));
    assert_eq!(outcome(&api.get("/api/v1/device/me", &old).await), (StatusCode::UNAUTHORIZED, Some("unknown_token")));
    assert_eq!(api.get("/api/v1/device/policy", &next).await.status, StatusCode::OK);

    // A revoked device gets no new token.
    let revoked = api.post(&format!("/api/v1/admin/devices/{device}/revoke"), ADMIN_TOKEN, json!({})).await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert_eq!(outcome(&rotate(next).await), (StatusCode::UNAUTHORIZED, Some("revoked_token")));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_tokens_rotate_without_locking_the_device_out_on_sqlite() {
    device_tokens_rotate_without_locking_the_device_out(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_tokens_rotate_without_locking_the_device_out_on_postgres() {
    device_tokens_rotate_without_locking_the_device_out(Db::Postgres).await;
}
