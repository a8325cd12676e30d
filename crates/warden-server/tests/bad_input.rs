//! Bad input gets a 4xx with a JSON error body naming the field, and nothing panics. Cases are
//! data (`tests/data/server/bad-requests.jsonl`); the size limit and a burst of garbage follow.

mod common;

use common::{ADMIN_TOKEN, Db, TestServer, enroll};
use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_with_the_field_named() {
    let server = TestServer::start(Db::Sqlite).await.unwrap();
    let api = &server.api;
    let (_, device_token, _) = enroll(api, "dev", "laptop").await;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/server/bad-requests.jsonl");
    let cases = std::fs::read_to_string(path).unwrap();
    let mut count = 0;
    for line in cases.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).unwrap();
        let name = case["name"].as_str().unwrap();
        let method: Method = case["method"].as_str().unwrap().parse().unwrap();
        let path = case["path"].as_str().unwrap();
        let token = match case["auth"].as_str().unwrap() {
            "device" => Some(device_token.as_str()),
            "admin" => Some(ADMIN_TOKEN),
            _ => None,
        };
        let raw = Bytes::from(case["raw"].as_str().unwrap_or("").to_owned());
        let reply = api.client.send_raw(method.clone(), path, token, raw, &[]).await.unwrap();
        api.check(&method, path, &reply);
        assert_eq!(reply.status.as_u16() as u64, case["status"].as_u64().unwrap(), "{name}: {}", reply.text);
        assert!(
            reply.body["code"].is_string() && reply.body["message"].is_string(),
            "{name}: JSON error body: {}",
            reply.text
        );
        if let Some(field) = case.get("field") {
            assert_eq!(&reply.body["field"], field, "{name}: {}", reply.text);
        }
        if let Some(line) = case.get("line") {
            assert_eq!(&reply.body["location"]["line"], line, "{name}: {}", reply.text);
            assert_eq!(&reply.body["location"]["column"], &case["column"], "{name}: {}", reply.text);
        }
        count += 1;
    }
    assert!(count >= 20);

    // Oversized bodies are refused before parsing (the test server allows 256 KiB).
    let huge = Bytes::from(format!("{{\"events\": [{}]}}", "0,".repeat(200_000)));
    let reply =
        api.client.send_raw(Method::POST, "/api/v1/device/events", Some(&device_token), huge, &[]).await.unwrap();
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", reply.text);
    assert_eq!(reply.body["code"], "body_too_large");

    // Garbage of every shape to every route: always a 4xx JSON answer, and the server stays up.
    let garbage: [&[u8]; 5] = [b"", b"null", b"[]", b"{\"a\":", &[0xff, 0xfe, 0x00]];
    for warden_server::Route { method, path, .. } in warden_server::routes() {
        let path = path.replace("{id}", "x").replace("{version}", "9");
        for body in garbage {
            for token in [Some(device_token.as_str()), Some(ADMIN_TOKEN)] {
                let reply = api
                    .client
                    .send_raw(method.parse().unwrap(), &path, token, Bytes::from_static(body), &[])
                    .await
                    .unwrap();
                assert!(reply.status.as_u16() < 500, "{method} {path} with {body:?}: {} {}", reply.status, reply.text);
            }
        }
    }
    let health = api.client.send(Method::GET, "/api/v1/health", None, None, &[]).await.unwrap();
    assert_eq!(health.body["status"], "ok");
    server.stop().await;
}
