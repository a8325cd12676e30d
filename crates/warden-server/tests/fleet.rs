//! The fleet views, on SQLite and on PostgreSQL: a seeded fleet's overview, tools, one tool's
//! footprint and the exception report match the counts the seed knows; uploads through the device
//! API are classed and raise alerts once; events page by cursor with no gap or repeat; every
//! list comes as CSV; bad filters are refused with the parameter named.

mod common;

use common::{ADMIN_TOKEN, Db, TestServer, database_url, enroll, launch_event, now_ms};
use hyper::StatusCode;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use warden_server::seed::{SeedSpec, seed};

/// An overview's launches per verdict.
fn totals(overview: &Value) -> BTreeMap<String, i64> {
    overview["totals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["verdict"].as_str().unwrap().to_owned(), t["count"].as_i64().unwrap()))
        .collect()
}

fn tallies(list: &Value) -> BTreeMap<String, i64> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|t| (t["value"].as_str().unwrap().to_owned(), t["count"].as_i64().unwrap()))
        .collect()
}

async fn seeded_fleet_views_match_the_seed(db: Db) {
    let Some(url) = database_url(db).await else { return };
    // A day-long sync interval: only the seed's long-silent devices count as silent.
    let server = TestServer::on_syncing_every(&url, Duration::from_secs(43200)).await;
    let api = &server.api;
    let (state, _) = warden_server::prepare(&warden_server::Config::new(url.clone())).await.unwrap();
    let now = now_ms() / 1000;
    let truth = seed(&state.store, SeedSpec { devices: 60, events: 4000, days: 89, seed: 11, now }).await.unwrap();

    let overview = api.get("/api/v1/admin/overview?days=90", ADMIN_TOKEN).await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.text);
    let totals = totals(&overview.body);
    assert_eq!(totals, truth.verdicts_90d);
    assert_eq!(overview.body["adoption"].as_array().unwrap().len(), 90, "one point per day");
    let adopted: i64 =
        overview.body["adoption"].as_array().unwrap().iter().map(|p| p["sanctioned"].as_i64().unwrap()).sum();
    assert_eq!(adopted, truth.verdicts_90d["sanctioned"]);
    assert_eq!(overview.body["devices"]["enrolled"], json!(60 - truth.revoked_devices));
    assert_eq!(overview.body["devices"]["silent"], json!(truth.silent_devices));
    assert_eq!(overview.body["pending_requests"], json!(truth.pending_requests));
    let week = api.get("/api/v1/admin/overview?days=7", ADMIN_TOKEN).await;
    let week_blocked =
        week.body["totals"].as_array().unwrap().iter().find(|t| t["verdict"] == "blocked").unwrap().clone();
    assert_eq!(week_blocked["count"], json!(truth.verdicts_7d.get("blocked").copied().unwrap_or(0)));

    let tools = api.get("/api/v1/admin/tools", ADMIN_TOKEN).await;
    assert_eq!(tools.status, StatusCode::OK, "{}", tools.text);
    assert!(tools.body["policy_activated_at"].as_i64().is_some());
    for (tool, expected) in &truth.tools {
        let row = tools.body["tools"].as_array().unwrap().iter().find(|t| t["tool"] == tool.as_str()).unwrap();
        assert_eq!(row["installed_devices"], json!(expected.installed_devices), "{tool}");
        assert_eq!(row["used_7d"], json!(expected.used_7d), "{tool}");
        assert_eq!(row["used_30d"], json!(expected.used_30d), "{tool}");
        assert_eq!(row["used_90d"], json!(expected.used_90d), "{tool}");
        assert_eq!(row["blocked_30d"], json!(expected.blocked_30d), "{tool}");
    }

    // "Where was Claude Code installed or used, and is it gone now?" — one call.
    let claude = &truth.tools["claude-code"];
    let footprint = api.get("/api/v1/admin/tools/claude-code", ADMIN_TOKEN).await;
    assert_eq!(footprint.status, StatusCode::OK, "{}", footprint.text);
    assert_eq!(footprint.body["installed_now"], json!(claude.installed_devices));
    assert_eq!(footprint.body["removed"], json!(claude.removed_devices));
    let removed: Vec<&Value> =
        footprint.body["devices"].as_array().unwrap().iter().filter(|d| d["status"] == "removed").collect();
    assert!(removed.iter().all(|d| d["removed_at"].as_i64().is_some() && d["first_seen_at"].as_i64().is_some()));
    let csv = api.get("/api/v1/admin/tools/claude-code?format=csv", ADMIN_TOKEN).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.text.lines().next().unwrap().contains("status"), "{}", csv.text);
    assert_eq!(csv.text.lines().count(), footprint.body["devices"].as_array().unwrap().len() + 1);
    let never = api.get("/api/v1/admin/tools/never-heard-of", ADMIN_TOKEN).await;
    assert_eq!(never.body["installed_now"], 0);
    assert_eq!(never.body["devices"], json!([]));

    let report = api.get("/api/v1/admin/exceptions/report", ADMIN_TOKEN).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text);
    assert_eq!(report.body["total"], json!(truth.exceptions));
    assert_eq!(tallies(&report.body["by_state"]), truth.exceptions_by_state);
    assert_eq!(tallies(&report.body["by_approver"]), truth.exceptions_by_approver);
    assert_eq!(tallies(&report.body["top_scopes"])[&truth.top_scope.0], truth.top_scope.1);
    // Two spellings of one justification count as one.
    assert!(
        tallies(&report.body["top_justifications"])
            .contains_key("the internal assistant cannot read our terraform modules")
    );
    assert!(
        report.body["decision_seconds_p50"].as_i64().unwrap() <= report.body["decision_seconds_p90"].as_i64().unwrap()
    );
    // The lists behind the requests and installations tables export too, one row per item.
    let requests = api.get("/api/v1/admin/exceptions?limit=1000&format=csv", ADMIN_TOKEN).await;
    assert_eq!(requests.text.lines().count(), truth.exceptions + 1, "{}", requests.text);
    assert!(requests.text.lines().next().unwrap().contains("hostname"));
    let installs = api.get("/api/v1/admin/inventory?format=csv", ADMIN_TOKEN).await;
    let installed: i64 = truth.tools.values().map(|t| t.installed_devices).sum();
    assert!(installs.text.lines().count() as i64 > installed, "{}", installs.text);
    let pending = api.get("/api/v1/admin/exceptions/report?state=pending", ADMIN_TOKEN).await;
    assert_eq!(pending.body["total"], json!(truth.pending_requests));
    let by_ana = api.get("/api/v1/admin/exceptions/report?approver=ana@corp.example", ADMIN_TOKEN).await;
    assert_eq!(by_ana.body["total"], json!(truth.exceptions_by_approver.get("ana@corp.example").copied().unwrap_or(0)));

    // Every silent device raises one alert on the sweep (every 200 ms here), and only one.
    let started = Instant::now();
    loop {
        let alerts = api.get("/api/v1/admin/alerts?rule=silent-device&limit=1000", ADMIN_TOKEN).await;
        let count = alerts.body["alerts"].as_array().unwrap().len();
        if count == truth.silent_devices {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{}", alerts.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = api.get("/api/v1/admin/alerts?rule=silent-device&limit=1000", ADMIN_TOKEN).await;
    assert_eq!(again.body["alerts"].as_array().unwrap().len(), truth.silent_devices, "no alert raised twice");

    // Keyset pages: every event exactly once, newest first, whatever the page size.
    let mut seen = BTreeSet::new();
    let mut cursor: Option<String> = None;
    let mut last = i64::MAX;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/admin/events?limit=333&cursor={c}"),
            None => "/api/v1/admin/events?limit=333".to_owned(),
        };
        let page = api.get(&path, ADMIN_TOKEN).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        for event in page.body["events"].as_array().unwrap() {
            let at = event["at_ms"].as_i64().unwrap();
            assert!(at <= last, "newest first");
            last = at;
            assert!(seen.insert(event["event"]["id"].as_str().unwrap().to_owned()), "an event on two pages");
        }
        match page.body["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), truth.events);
    let blocked = api.get("/api/v1/admin/events?verdict=blocked&limit=1000&format=csv", ADMIN_TOKEN).await;
    let header: Vec<&str> = blocked.text.lines().next().unwrap().split(',').collect();
    let column = header.iter().position(|h| *h == "verdict").unwrap();
    // Every line after the header is one event.
    let rows: Vec<&str> = blocked.text.lines().skip(1).collect();
    assert!(!rows.is_empty(), "the seed has blocked launches");
    assert!(rows.iter().all(|line| line.split(',').nth(column) == Some("blocked")));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_fleet_views_match_the_seed_on_sqlite() {
    seeded_fleet_views_match_the_seed(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_fleet_views_match_the_seed_on_postgres() {
    seeded_fleet_views_match_the_seed(Db::Postgres).await;
}

fn event(n: usize, user: &str, tool: &str, action: &str, at_ms: i64) -> Value {
    launch_event(&format!("00000000-0000-4000-8000-{n:012}"), user, tool, action, at_ms)
}

async fn uploads_are_classed_and_raise_alerts_once(db: Db) {
    let Some(url) = database_url(db).await else { return };
    let server = TestServer::configured(&url, |config| config.alert_rules.blocks_per_hour = 3).await;
    let api = &server.api;
    let (device, token, _) = enroll(api, "dev", "laptop-a").await;
    // Mid-hour, so the three blocks share one clock hour.
    let hour = (now_ms() - 3_600_000).div_euclid(3_600_000) * 3_600_000 + 1_800_000;
    let mut sanctioned = launch_event("00000000-0000-4000-8000-000000000099", "dev", "qwen-code", "allow", hour);
    sanctioned["rule"] = json!("sanctioned-assistant");
    let two = json!({"events": [event(1, "dev", "claude-code", "block", hour), event(2, "dev", "claude-code", "block", hour + 1), sanctioned]});
    assert_eq!(api.post("/api/v1/device/events", &token, two).await.body["stored"], 3);
    let alerts = api.get("/api/v1/admin/alerts", ADMIN_TOKEN).await;
    assert_eq!(alerts.body["alerts"], json!([]), "two blocks are below the threshold");
    let third = json!({"events": [event(3, "dev", "claude-code", "block", hour + 2)]});
    assert_eq!(api.post("/api/v1/device/events", &token, third.clone()).await.body["stored"], 1);
    // A retried upload and a fourth block in the same hour raise nothing new.
    assert_eq!(api.post("/api/v1/device/events", &token, third).await.body["duplicates"], 1);
    let fourth = json!({"events": [event(4, "dev", "claude-code", "block", hour + 3)]});
    api.post("/api/v1/device/events", &token, fourth).await;
    // Another device's "dev" is its local account, not this person: it counts apart.
    let (_, other, _) = enroll(api, "erin", "laptop-b").await;
    let forged: Vec<Value> = (10..15).map(|n| event(n, "dev", "claude-code", "block", hour)).collect();
    api.post("/api/v1/device/events", &other, json!({"events": forged})).await;
    let drift = json!({"events": [{"kind": "control-drift", "id": "drift-1", "at_ms": hour, "path": "/etc/claude-code/managed-settings.json",
        "vendor": "claude-code", "change": "changed", "restored": true}]});
    let stored = api.post("/api/v1/device/events", &token, drift).await;
    assert_eq!(stored.status, StatusCode::OK, "{}", stored.text);

    let alerts = api.get("/api/v1/admin/alerts", ADMIN_TOKEN).await;
    let mut rules: Vec<(String, String)> = alerts.body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["rule"].as_str().unwrap().to_owned(), a["subject"].as_str().unwrap().to_owned()))
        .collect();
    rules.sort();
    let local = format!("dev (local account on device {})", enroll_id(api, &other).await);
    assert_eq!(
        rules,
        [
            ("control-drift".to_owned(), device.clone()),
            ("repeated-blocks".to_owned(), "dev".to_owned()),
            ("repeated-blocks".to_owned(), local),
        ]
    );
    let overview = api.get("/api/v1/admin/overview?days=1", ADMIN_TOKEN).await;
    let today = overview.body["until_day"].as_i64().unwrap();
    if hour.div_euclid(86_400_000) == today {
        let count = |v: &str| {
            overview.body["totals"].as_array().unwrap().iter().find(|t| t["verdict"] == v).unwrap()["count"].clone()
        };
        assert_eq!(count("blocked"), 9);
        assert_eq!(count("sanctioned"), 1);
        assert!(overview.body["recent_alerts"].as_i64().unwrap() >= 3);
    }
    let csv = api.get("/api/v1/admin/alerts?format=csv", ADMIN_TOKEN).await;
    assert_eq!(csv.text.lines().next(), Some("detail,id,raised_at,rule,subject"));
    assert_eq!(csv.text.lines().count(), 4);
    server.stop().await;
}

async fn enroll_id(api: &common::Api, token: &str) -> String {
    api.get("/api/v1/device/me", token).await.body["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_classed_and_raise_alerts_once_on_sqlite() {
    uploads_are_classed_and_raise_alerts_once(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_classed_and_raise_alerts_once_on_postgres() {
    uploads_are_classed_and_raise_alerts_once(Db::Postgres).await;
}

#[tokio::test]
async fn bad_fleet_filters_are_refused_naming_the_parameter() {
    let server = TestServer::start(Db::Sqlite).await.unwrap();
    let api = &server.api;
    for (path, field) in [
        ("/api/v1/admin/overview?days=0", "days"),
        ("/api/v1/admin/overview?days=9999", "days"),
        ("/api/v1/admin/overview?format=xml", "format"),
        ("/api/v1/admin/events?cursor=nonsense", "cursor"),
        ("/api/v1/admin/events?verdict=maybe", "verdict"),
        ("/api/v1/admin/exceptions/report?state=lost", "state"),
        ("/api/v1/admin/alerts?rule=everything", "rule"),
        ("/api/v1/admin/alerts?limit=0", "limit"),
        ("/api/v1/admin/devices?format=pdf", "format"),
    ] {
        let reply = api.get(path, ADMIN_TOKEN).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {}", reply.text);
        assert_eq!(reply.body["field"], field, "{path}: {}", reply.text);
    }
    for path in ["/api/v1/admin/overview?days=abc", "/api/v1/admin/tools?extra=1", "/api/v1/admin/overview?colour=red"]
    {
        let reply = api.get(path, ADMIN_TOKEN).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}: {}", reply.text);
    }
    let (_, device, _) = enroll(api, "dev", "laptop").await;
    assert_eq!(api.get("/api/v1/admin/overview", &device).await.status, StatusCode::FORBIDDEN);
    assert_eq!(api.call(hyper::Method::GET, "/api/v1/admin/tools", None, None).await.status, StatusCode::UNAUTHORIZED);
    server.stop().await;
}

/// Launches stored before the fleet views (schema 7) are classed by migration 0008 with the same
/// rule the server applies, and counted into the tallies by 0009.
async fn launches_stored_before_the_fleet_views_are_counted(db: Db) {
    let Some(url) = database_url(db).await else { return };
    let old = warden_server::Store::open_at(&url, 7).await.expect("schema 7");
    sqlx::query(
        "INSERT INTO devices (id, token_hash, hostname, username, platform, agent_version, enrolled_at, last_seen_at) \
         VALUES ('dev_old', 'hash', 'old-laptop', 'dev', 'linux', '0.1.0', 1764400000, 1764500000)",
    )
    .execute(&old.pool)
    .await
    .unwrap();
    let at = now_ms() - 60_000;
    let mut sanctioned = launch_event("00000000-0000-4000-8000-0000000000a1", "dev", "qwen-code", "allow", at);
    sanctioned["rule"] = json!("sanctioned-assistant");
    let mut excepted = launch_event("00000000-0000-4000-8000-0000000000a2", "dev", "claude-code", "allow", at);
    excepted["rule"] = json!("exception:exc_1");
    excepted["exception"] = json!("exc_1");
    let blocked = launch_event("00000000-0000-4000-8000-0000000000a3", "dev", "claude-code", "block", at + 1);
    let mut warned = launch_event("00000000-0000-4000-8000-0000000000a4", "dev", "gemini-cli", "warn", at);
    warned["outcome"] = json!("warned");
    for event in [&sanctioned, &excepted, &blocked, &warned] {
        sqlx::query(
            "INSERT INTO events (id, device_id, kind, username, tool, action, at_ms, received_at, body) \
             VALUES ($1, 'dev_old', 'launch', 'dev', $2, $3, $4, 1764500001, $5)",
        )
        .bind(event["id"].as_str().unwrap())
        .bind(event["tool"].as_str().unwrap())
        .bind(event["action"].as_str().unwrap())
        .bind(event["at_ms"].as_i64().unwrap())
        .bind(event.to_string())
        .execute(&old.pool)
        .await
        .unwrap();
    }
    old.pool.close().await;

    let server = TestServer::on(&url).await;
    let api = &server.api;
    let overview = api.get("/api/v1/admin/overview?days=2", ADMIN_TOKEN).await;
    let totals = totals(&overview.body);
    let want: BTreeMap<String, i64> =
        [("sanctioned", 1), ("allowed", 0), ("warned", 1), ("blocked", 1), ("exception", 1)]
            .into_iter()
            .map(|(v, n)| (v.to_owned(), n))
            .collect();
    assert_eq!(totals, want, "{}", overview.text);
    let claude = api.get("/api/v1/admin/tools/claude-code", ADMIN_TOKEN).await;
    let device = &claude.body["devices"][0];
    assert_eq!((device["launches"].clone(), device["blocked"].clone()), (json!(2), json!(1)), "{}", claude.text);
    assert_eq!(device["last_launch_at_ms"], json!(at + 1));
    assert_eq!(claude.body["used_30d"], 1);
    let blocked_only = api.get("/api/v1/admin/events?verdict=blocked", ADMIN_TOKEN).await;
    assert_eq!(blocked_only.body["events"].as_array().unwrap().len(), 1, "{}", blocked_only.text);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launches_stored_before_the_fleet_views_are_counted_on_sqlite() {
    launches_stored_before_the_fleet_views_are_counted(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launches_stored_before_the_fleet_views_are_counted_on_postgres() {
    launches_stored_before_the_fleet_views_are_counted(Db::Postgres).await;
}
