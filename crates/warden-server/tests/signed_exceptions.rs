//! Exception lists are signed per device, on SQLite and on PostgreSQL: every fetch is a new
//! list with a higher sequence (kept in the database, so a restart continues it), naming the
//! device, expiring a day after issue, signed by the key devices pinned; a decision shows in
//! the next list, and a list from before it, replayed, is refused by the device's check.

mod common;

use common::{ADMIN_TOKEN, Db, TestServer, enroll, now_ms, signed_exceptions};
use hyper::StatusCode;
use serde_json::json;
use warden_api::{EXCEPTION_LIST_VALIDITY_SECONDS, ExceptionsEnvelope, ListExpectation, verify_exceptions};

const JUSTIFICATION: &str = "Reviewing the vendor's agent for the security assessment";

async fn lists_are_signed_per_device_with_a_rising_sequence(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let api = &server.api;
    let (device_a, token_a, key) = enroll(api, "dev", "laptop-a").await;
    let (device_b, token_b, _) = enroll(api, "erin", "laptop-b").await;

    // Each fetch is a new list: the sequence rises per device, independently of other devices.
    let mut sequences = Vec::new();
    for _ in 0..3 {
        let (_, list) = signed_exceptions(api, &token_a, &device_a, &key).await;
        assert_eq!(list.device_id, device_a);
        assert_eq!(list.valid_until - list.issued_at, EXCEPTION_LIST_VALIDITY_SECONDS);
        assert!((list.issued_at - now_ms() / 1000).abs() <= 5, "issued now: {}", list.issued_at);
        sequences.push(list.sequence);
    }
    assert_eq!(sequences, [1, 2, 3]);
    assert_eq!(signed_exceptions(api, &token_b, &device_b, &key).await.1.sequence, 1, "device B counts its own");

    // Fetches at the same time (two syncs racing) never share a sequence number.
    let racing: Vec<_> = (0..8)
        .map(|_| {
            let (api, token, device, key) = (api.clone(), token_a.clone(), device_a.clone(), key.clone());
            tokio::spawn(async move { signed_exceptions(&api, &token, &device, &key).await.1.sequence })
        })
        .collect();
    let mut raced = Vec::new();
    for task in racing {
        raced.push(task.await.unwrap());
    }
    raced.sort();
    assert_eq!(raced, (4..12).collect::<Vec<i64>>(), "each racing fetch got its own number");

    // A request, approved: the next list carries it; the list before it does not.
    let (before, _) = signed_exceptions(api, &token_a, &device_a, &key).await;
    let filed = api
        .post(
            "/api/v1/device/exceptions",
            &token_a,
            json!({"tool": "claude-code", "justification": JUSTIFICATION, "duration_seconds": 600}),
        )
        .await;
    assert_eq!(filed.status, StatusCode::CREATED, "{}", filed.text);
    let id = filed.body["id"].as_str().unwrap().to_owned();
    let approved =
        api.post(&format!("/api/v1/admin/exceptions/{id}/approve"), ADMIN_TOKEN, json!({"approver": "alice"})).await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.text);
    let (_, granted) = signed_exceptions(api, &token_a, &device_a, &key).await;
    assert_eq!(granted.exceptions.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), [id.as_str()]);
    assert_eq!(signed_exceptions(api, &token_b, &device_b, &key).await.1.exceptions, [], "not device B's");

    // Revoked: the next list drops it. The list that still had it, replayed after that one was
    // accepted, is refused, and so is the list from before the approval.
    let revoked = api
        .post(
            &format!("/api/v1/admin/exceptions/{id}/revoke"),
            ADMIN_TOKEN,
            json!({"approver": "alice", "comment": "assessment done"}),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    let (_, current) = signed_exceptions(api, &token_a, &device_a, &key).await;
    assert_eq!(current.exceptions, []);
    assert!(current.sequence > granted.sequence);
    let expect =
        ListExpectation { device_id: &device_a, highest_sequence: Some(current.sequence), now: now_ms() / 1000 };
    let old: ExceptionsEnvelope = serde_json::from_value(before.body["signed"].clone()).unwrap();
    assert_eq!(verify_exceptions(&old, &key, expect).unwrap_err().code(), "replayed");
    let moved_to_b =
        ExceptionsEnvelope { body: old.body.replace(&device_a, &device_b), signature: old.signature.clone() };
    let expect_b = ListExpectation { device_id: &device_b, ..expect };
    assert_eq!(verify_exceptions(&moved_to_b, &key, expect_b).unwrap_err().code(), "signature");

    // The sequence lives in the database: a restarted server continues it.
    let url = server.database_url.clone();
    server.stop().await;
    let restarted = TestServer::on(&url).await;
    let (_, after_restart) = signed_exceptions(&restarted.api, &token_a, &device_a, &key).await;
    assert!(after_restart.sequence > current.sequence, "{} after {}", after_restart.sequence, current.sequence);
    restarted.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_are_signed_per_device_with_a_rising_sequence_on_sqlite() {
    lists_are_signed_per_device_with_a_rising_sequence(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_are_signed_per_device_with_a_rising_sequence_on_postgres() {
    lists_are_signed_per_device_with_a_rising_sequence(Db::Postgres).await;
}

/// An approver attaches guardrails: they are stored, shown in words, and signed into the
/// device's list; malformed ones, and guardrails on a denial, are refused with the field named.
async fn guardrails_travel_signed_with_the_approval(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let api = &server.api;
    let (device, token, key) = enroll(api, "dev", "laptop-a").await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let filed = api
            .post(
                "/api/v1/device/exceptions",
                &token,
                json!({"tool": "claude-code", "justification": JUSTIFICATION, "duration_seconds": 600}),
            )
            .await;
        assert_eq!(filed.status, StatusCode::CREATED, "{}", filed.text);
        ids.push(filed.body["id"].as_str().unwrap().to_owned());
    }
    let approve = |id: &str, body| {
        let path = format!("/api/v1/admin/exceptions/{id}/approve");
        async move { api.post(&path, ADMIN_TOKEN, body).await }
    };
    for (bad, status, says) in [
        (json!({"mcp_servers": ["docs", "docs"]}), StatusCode::UNPROCESSABLE_ENTITY, "named twice"),
        (json!({"mcp_servers": [""]}), StatusCode::UNPROCESSABLE_ENTITY, "MCP server names"),
        (json!({"through_gateway": "yes"}), StatusCode::BAD_REQUEST, "guardrails"),
        (json!({"via_vpn": true}), StatusCode::BAD_REQUEST, "guardrails"),
    ] {
        let refused = approve(&ids[0], json!({"approver": "alice", "guardrails": bad})).await;
        assert_eq!(refused.status, status, "{bad}: {}", refused.text);
        assert!(refused.text.contains(says), "{bad}: {}", refused.text);
    }
    let denied = api
        .post(
            &format!("/api/v1/admin/exceptions/{}/deny", ids[1]),
            ADMIN_TOKEN,
            json!({"approver": "alice", "comment": "no", "guardrails": {"no_risky_modes": true}}),
        )
        .await;
    assert_eq!(denied.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", denied.text);
    assert_eq!(denied.body["field"], "guardrails", "{}", denied.text);

    let guardrails = json!({"through_gateway": true, "no_risky_modes": true, "mcp_servers": ["docs"]});
    let approved = approve(&ids[0], json!({"approver": "alice", "guardrails": guardrails})).await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.text);
    assert_eq!(approved.body["guardrails"], guardrails);
    assert_eq!(approved.body["conditions"], "only through the company gateway; no risky modes; MCP servers: docs");
    let (_, list) = signed_exceptions(api, &token, &device, &key).await;
    let signed = &list.exceptions[0];
    assert_eq!(signed.id, ids[0]);
    assert!(signed.guardrails.through_gateway && signed.guardrails.no_risky_modes);
    assert_eq!(signed.guardrails.mcp_servers.as_deref(), Some(&["docs".to_owned()][..]));
    // A plain approval carries none.
    let plain = approve(&ids[1], json!({"approver": "alice"})).await;
    assert_eq!(plain.status, StatusCode::OK, "{}", plain.text);
    assert!(plain.body.get("guardrails").is_none() && plain.body.get("conditions").is_none(), "{}", plain.text);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guardrails_travel_signed_with_the_approval_on_sqlite() {
    guardrails_travel_signed_with_the_approval(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guardrails_travel_signed_with_the_approval_on_postgres() {
    guardrails_travel_signed_with_the_approval(Db::Postgres).await;
}
