//! People sign in as themselves, on SQLite and on PostgreSQL: local accounts made with
//! `warden-server user add`, sessions in an HttpOnly SameSite=Strict cookie with a CSRF token,
//! roles, decisions recorded under the verified account (never the typed name), self-approval
//! refused by account, and the admin token reduced to break-glass once accounts exist.

mod common;

use common::{ADMIN_TOKEN, Db, PASSWORD, TestServer, as_account, database_url, enroll, file_request, sign_in};
use hyper::{Method, StatusCode};
use serde_json::json;
use warden_server::accounts::{Role, add, disable};

async fn people_sign_in_as_themselves(db: Db) {
    let Some(url) = database_url(db).await else { return };
    let server = TestServer::on(&url).await;
    let api = &server.api;
    // Enrolled with the shared secret while no account exists (afterwards only codes enroll).
    let (dev_device, dev, _) = enroll(api, "dev", "dev-laptop").await;
    let (_, ana_device, _) = enroll(api, "ana", "ana-laptop").await;
    let store = warden_server::Store::open(&url).await.unwrap();
    let now = common::now_ms() / 1000;
    add(&store, "Ana@Corp.Example", Role::Approver, PASSWORD, now).await.unwrap();
    add(&store, "ops", Role::Admin, PASSWORD, now).await.unwrap();
    add(&store, "aud", Role::Auditor, PASSWORD, now).await.unwrap();
    let justification = "Pairing with the vendor on the SDK migration";
    let request = file_request(api, &dev, justification, 3600).await;
    let own = file_request(api, &ana_device, justification, 3600).await;
    let approve = |id: &str| format!("/api/v1/admin/exceptions/{id}/approve");

    // Accounts exist: the shared admin token can no longer decide.
    let token = api.post(&approve(&request), ADMIN_TOKEN, json!({"approver": "ana@corp.example"})).await;
    assert_eq!((token.status, token.body["code"].as_str()), (StatusCode::FORBIDDEN, Some("sign_in_required")));

    // Wrong passwords and unknown names get the same answer.
    for (name, password) in [("ana@corp.example", "not the password at all"), ("nobody", PASSWORD)] {
        let wrong =
            api.call(Method::POST, "/api/v1/session", None, Some(json!({"name": name, "password": password}))).await;
        assert_eq!((wrong.status, wrong.body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("wrong_credentials")));
    }
    let ana = sign_in(api, "ANA@corp.example", PASSWORD).await;
    let me = api.call_with(Method::GET, "/api/v1/session", None, None, &[("cookie", &ana.0)]).await;
    assert_eq!((me.body["account"].as_str(), me.body["role"].as_str()), (Some("ana@corp.example"), Some("approver")));
    let overview = api.call_with(Method::GET, "/api/v1/admin/overview", None, None, &[("cookie", &ana.0)]).await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.text);

    // A changing request without the CSRF token is refused, whatever the cookie.
    let forged = api.call_with(Method::POST, &approve(&request), None, Some(json!({})), &[("cookie", &ana.0)]).await;
    assert_eq!((forged.status, forged.body["code"].as_str()), (StatusCode::FORBIDDEN, Some("csrf")), "{}", forged.text);
    // Ana cannot approve her own request, however she types her name.
    let mine = as_account(api, Method::POST, &approve(&own), &ana, Some(json!({"approver": "someone-else"}))).await;
    assert_eq!(
        (mine.status, mine.body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("self_approval")),
        "{}",
        mine.text
    );
    // Dev's request: decided by the verified account, not the typed name.
    let approved = as_account(api, Method::POST, &approve(&request), &ana, Some(json!({"approver": "raj"}))).await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.text);
    assert_eq!(approved.body["decided_by"], "ana@corp.example");

    // Roles: an approver cannot revoke a device, an auditor cannot decide.
    let revoke = format!("/api/v1/admin/devices/{dev_device}/revoke");
    let refused = as_account(api, Method::POST, &revoke, &ana, None).await;
    assert_eq!((refused.status, refused.body["code"].as_str()), (StatusCode::FORBIDDEN, Some("role_forbids")));
    let aud = sign_in(api, "aud", PASSWORD).await;
    let read = api.call_with(Method::GET, "/api/v1/admin/admin-audit", None, None, &[("cookie", &aud.0)]).await;
    assert_eq!(read.status, StatusCode::OK);
    let decide = as_account(api, Method::POST, &approve(&own), &aud, Some(json!({}))).await;
    assert_eq!((decide.status, decide.body["code"].as_str()), (StatusCode::FORBIDDEN, Some("role_forbids")));
    let ops = sign_in(api, "ops", PASSWORD).await;
    let revoked = as_account(api, Method::POST, &revoke, &ops, Some(json!({"actor": "not me"}))).await;
    assert_eq!(
        (revoked.status, revoked.body["revoked_by"].as_str()),
        (StatusCode::OK, Some("ops")),
        "{}",
        revoked.text
    );

    // Signing out ends the session; disabling an account ends its sessions.
    let out = as_account(api, Method::DELETE, "/api/v1/session", &ana, None).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.text);
    assert!(out.headers["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    let after = api.call_with(Method::GET, "/api/v1/admin/overview", None, None, &[("cookie", &ana.0)]).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    disable(&store, "ops", now).await.unwrap();
    let gone = api.call_with(Method::GET, "/api/v1/admin/overview", None, None, &[("cookie", &ops.0)]).await;
    assert_eq!(gone.status, StatusCode::UNAUTHORIZED);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_sign_in_as_themselves_on_sqlite() {
    people_sign_in_as_themselves(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_sign_in_as_themselves_on_postgres() {
    people_sign_in_as_themselves(Db::Postgres).await;
}

#[test]
fn accounts_are_added_from_the_command_line() {
    let scratch = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}?mode=rwc", scratch.path().join("warden.db").display());
    let password = scratch.path().join("password");
    std::fs::write(&password, format!("{PASSWORD}\n")).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_warden-server"))
            .args(["--database", &database])
            .args(args)
            .env_remove("WARDEN_DATABASE_URL")
            .output()
            .unwrap()
    };
    let password = password.to_str().unwrap();
    let added = run(&["user", "add", "Ana@Corp.Example", "--role", "approver", "--password-file", password]);
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    assert!(String::from_utf8_lossy(&added.stdout).contains("Added ana@corp.example (approver)"));
    let again = run(&["user", "add", "ana@corp.example", "--role", "admin", "--password-file", password]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already an account"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    std::fs::write(scratch.path().join("short"), "short\n").unwrap();
    let short = run(&[
        "user",
        "add",
        "raj",
        "--role",
        "approver",
        "--password-file",
        scratch.path().join("short").to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 12 characters"));
    let bad_role = run(&["user", "add", "raj", "--role", "root", "--password-file", password]);
    assert_eq!(bad_role.status.code(), Some(2), "a usage error");
    let listed = run(&["user", "list"]);
    assert_eq!(String::from_utf8_lossy(&listed.stdout), "ana@corp.example\tapprover\n");
}
