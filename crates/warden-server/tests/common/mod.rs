//! Test fixtures: a real server on 127.0.0.1:0 over a real SQLite file or a fresh database on the
//! PostgreSQL server `cargo xtask test` starts, and a client that checks every answer against
//! the served OpenAPI description.
#![allow(dead_code)]

use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::oneshot;
use warden_api::{ExceptionsEnvelope, ListExpectation, SignedExceptions, verify_exceptions};
use warden_server::client::{JsonClient, Reply};
use warden_server::{Config, Credentials, openapi_json};

pub const ADMIN_TOKEN: &str = "wadm_test-admin-token-0123456789";
pub const ENROLL_SECRET: &str = "test-enroll-secret";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// The fixture PostgreSQL server's URL. In CI a missing URL fails the test; elsewhere the test
/// is skipped with a message (run `cargo xtask test` to get the fixture).
pub fn postgres_url() -> Option<String> {
    match std::env::var("WARDEN_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("WARDEN_TEST_POSTGRES_URL is not set in CI: `cargo xtask test` must start the PostgreSQL fixture")
        }
        _ => {
            eprintln!("SKIPPED: WARDEN_TEST_POSTGRES_URL is not set; run `cargo xtask test` for the PostgreSQL tests");
            None
        }
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}_{}_{}_{}", std::process::id(), nanos % 1_000_000_000, COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A database URL for one test: a new SQLite file in a new temp dir, or a new PostgreSQL database.
pub async fn database_url(db: Db) -> Option<String> {
    match db {
        Db::Sqlite => {
            let dir: PathBuf = std::env::temp_dir().join(unique_name("warden-server-test"));
            std::fs::create_dir_all(&dir).unwrap();
            Some(format!("sqlite://{}?mode=rwc", dir.join("warden.db").display()))
        }
        Db::Postgres => {
            let base = postgres_url()?;
            let name = unique_name("warden_test");
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&base).await.expect("connecting to the PostgreSQL fixture");
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&pool).await.expect("creating a test database");
            pool.close().await;
            let (prefix, _) = base.rsplit_once('/').expect("the URL names a database");
            Some(format!("{prefix}/{name}"))
        }
    }
}

/// A running server and a client for it.
pub struct TestServer {
    pub api: Api,
    pub database_url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// A server on a fresh database (`None` when PostgreSQL is skipped outside CI).
    pub async fn start(db: Db) -> Option<TestServer> {
        let url = database_url(db).await?;
        Some(TestServer::on(&url).await)
    }

    /// A server on a fresh database that expects devices to sync every `sync_interval`.
    pub async fn start_syncing_every(db: Db, sync_interval: Duration) -> Option<TestServer> {
        let url = database_url(db).await?;
        Some(TestServer::on_syncing_every(&url, sync_interval).await)
    }

    /// A server on an existing database (a second replica).
    pub async fn on(url: &str) -> TestServer {
        TestServer::on_syncing_every(url, Config::new(url).sync_interval).await
    }

    /// A server on an existing database with the given sync interval.
    pub async fn on_syncing_every(url: &str, sync_interval: Duration) -> TestServer {
        TestServer::configured(url, |config| config.sync_interval = sync_interval).await
    }

    /// A server on an existing database, its configuration changed by `change` first.
    pub async fn configured(url: &str, change: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = Config::new(url);
        config.credentials = Credentials {
            admin_token: Some(ADMIN_TOKEN.into()),
            enroll_secret: Some(ENROLL_SECRET.into()),
            ..Credentials::default()
        };
        config.sweep_interval = Duration::from_millis(200);
        config.max_body_bytes = 256 * 1024;
        change(&mut config);
        let (state, _) = warden_server::prepare(&config).await.expect("server starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(warden_server::run(listener, state, async move {
            let _ = stopped.await;
        }));
        TestServer { api: Api::new(&base), database_url: url.to_owned(), stop: Some(stop), task: Some(task) }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server stopped cleanly");
        }
    }
}

/// The client the tests use: every answer is checked against the OpenAPI description.
#[derive(Clone)]
pub struct Api {
    pub client: JsonClient,
    spec: Value,
}

impl Api {
    pub fn new(base: &str) -> Api {
        Api {
            client: JsonClient::new(base),
            spec: strict(serde_json::from_str(openapi_json()).expect("the document parses")),
        }
    }

    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        self.call_with(method, path, token, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let reply = self.client.send(method.clone(), path, token, body.as_ref(), headers).await.expect("request sent");
        self.check(&method, path, &reply);
        reply
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// Checks a reply against the description: the route and status are documented, and a
    /// JSON body matches the documented schema.
    pub fn check(&self, method: &Method, path: &str, reply: &Reply) {
        let path = path.split('?').next().unwrap();
        let Some((template, operation)) = find_operation(&self.spec, method.as_str(), path) else {
            if path.starts_with("/api/")
                && reply.status != StatusCode::NOT_FOUND
                && reply.status != StatusCode::METHOD_NOT_ALLOWED
            {
                panic!("{method} {path} answered {} but is not in openapi.json", reply.status);
            }
            return;
        };
        let status = reply.status.as_u16().to_string();
        let response = operation["responses"].get(&status).or_else(|| operation["responses"].get("default"));
        let Some(response) = response else {
            panic!("{method} {template} answered {status}, which openapi.json does not list: {}", reply.text)
        };
        let content_type = reply.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
        if content_type.starts_with("text/csv") {
            assert!(
                response.pointer("/content/text~1csv").is_some(),
                "{method} {template} answered CSV, which openapi.json does not list for {status}"
            );
            return;
        }
        if let Some(schema) = response.pointer("/content/application~1json/schema")
            && let Err(problem) = validate(&self.spec, schema, &reply.body)
        {
            panic!("{method} {template} {status}: body does not match openapi.json: {problem}\nbody: {}", reply.text);
        }
    }
}

/// The documented operation for a concrete path (`{param}` segments match anything).
pub fn find_operation<'a>(spec: &'a Value, method: &str, path: &str) -> Option<(String, &'a Value)> {
    let segments: Vec<&str> = path.split('/').collect();
    for (template, item) in spec["paths"].as_object()? {
        let parts: Vec<&str> = template.split('/').collect();
        if parts.len() == segments.len()
            && parts.iter().zip(&segments).all(|(p, s)| p == s || (p.starts_with('{') && p.ends_with('}')))
            && let Some(operation) = item.get(method.to_lowercase())
        {
            return Some((template.clone(), operation));
        }
    }
    None
}

/// Checks `value` against `schema` (JSON Schema 2020-12, as OpenAPI 3.1 uses it), resolving
/// `#/components/...` in `spec`.
pub fn validate(spec: &Value, schema: &Value, value: &Value) -> Result<(), String> {
    let mut root = schema.clone();
    root["components"] = spec["components"].clone();
    let validator = jsonschema::draft202012::new(&root).map_err(|e| format!("the schema does not compile: {e}"))?;
    let problems: Vec<String> = validator.iter_errors(value).map(|e| format!("{}: {e}", e.instance_path())).collect();
    if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
}

/// The document as the tests check replies against it: every object a reply may hold is closed
/// (`unevaluatedProperties: false`), so a reply carrying a field the document does not describe
/// fails. Members of an `allOf` stay open (their siblings add properties); so do the components
/// an `allOf` names, which are closed at each `$ref` to them instead.
pub fn strict(mut spec: Value) -> Value {
    fn referenced_from_all_of(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for member in map.get("allOf").and_then(Value::as_array).into_iter().flatten() {
                    if let Some(Value::String(target)) = member.get("$ref") {
                        out.push(target.rsplit('/').next().unwrap_or_default().to_owned());
                    }
                }
                map.values().for_each(|v| referenced_from_all_of(v, out));
            }
            Value::Array(list) => list.iter().for_each(|v| referenced_from_all_of(v, out)),
            _ => {}
        }
    }
    fn close(value: &mut Value, open: bool) {
        match value {
            Value::Object(map) => {
                let closable = map.contains_key("properties") || map.contains_key("allOf") || map.contains_key("$ref");
                if closable && !open && !map.contains_key("additionalProperties") {
                    map.insert("unevaluatedProperties".into(), Value::Bool(false));
                }
                for (key, child) in map.iter_mut() {
                    match (key.as_str(), child) {
                        ("allOf", Value::Array(members)) => members.iter_mut().for_each(|m| close(m, true)),
                        (_, child) => close(child, false),
                    }
                }
            }
            Value::Array(list) => list.iter_mut().for_each(|v| close(v, false)),
            _ => {}
        }
    }
    let mut open_components = Vec::new();
    referenced_from_all_of(&spec, &mut open_components);
    if let Some(schemas) = spec.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
        for (name, schema) in schemas.iter_mut() {
            close(schema, open_components.contains(name));
        }
    }
    if let Some(paths) = spec.get_mut("paths") {
        close(paths, false);
    }
    spec
}

/// The password test accounts are made with.
pub const PASSWORD: &str = "correct horse battery staple";

/// A signed-in session: (cookie header value, CSRF token).
pub async fn sign_in(api: &Api, name: &str, password: &str) -> (String, String) {
    let reply =
        api.call(Method::POST, "/api/v1/session", None, Some(json!({"name": name, "password": password}))).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let cookie = reply.headers["set-cookie"].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let pair = cookie.split(';').next().unwrap().to_owned();
    (pair, reply.body["csrf_token"].as_str().unwrap().to_owned())
}

pub async fn as_account(
    api: &Api,
    method: Method,
    path: &str,
    session: &(String, String),
    body: Option<Value>,
) -> warden_server::client::Reply {
    api.call_with(method, path, None, body, &[("cookie", &session.0), ("x-csrf-token", &session.1)]).await
}

/// Enrolls a device; returns (device id, token, pinned public key).
pub async fn enroll(api: &Api, user: &str, hostname: &str) -> (String, String, String) {
    let reply = api
        .call(
            Method::POST,
            "/api/v1/enroll",
            None,
            Some(json!({"secret": ENROLL_SECRET, "hostname": hostname, "user": user, "platform": "linux", "agent_version": "0.1.0"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let text = |key: &str| reply.body[key].as_str().unwrap().to_owned();
    (text("device_id"), text("device_token"), text("policy_public_key"))
}

/// A launch event as a device would upload it.
pub fn launch_event(id: &str, user: &str, tool: &str, action: &str, at_ms: i64) -> Value {
    json!({
        "id": id, "at_ms": at_ms, "pid": 4242, "user": user, "exe": "/usr/bin/node",
        "argv": ["node", "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js"], "cwd": "/home/dev/src/app",
        "tool": tool, "action": action, "outcome": if action == "block" { "denied" } else { "allowed" },
        "rule": format!("tool:{tool}"), "reason": "test", "source": "proc-connector"
    })
}

/// Files a Claude Code exception request from the device holding `token`; returns its id.
pub async fn file_request(api: &Api, token: &str, justification: &str, duration_seconds: u64) -> String {
    let filed = api
        .post(
            "/api/v1/device/exceptions",
            token,
            json!({"tool": "claude-code", "justification": justification, "duration_seconds": duration_seconds}),
        )
        .await;
    assert_eq!(filed.status, StatusCode::CREATED, "{}", filed.text);
    filed.body["id"].as_str().unwrap().to_owned()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// `GET /api/v1/device/exceptions`, its signed list checked the way a device checks it (first
/// list, the test's clock): returns the answer and the verified list.
pub async fn signed_exceptions(api: &Api, token: &str, device_id: &str, pinned_key: &str) -> (Reply, SignedExceptions) {
    let reply = api.get("/api/v1/device/exceptions", token).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let envelope: ExceptionsEnvelope = serde_json::from_value(reply.body["signed"].clone()).unwrap();
    let expect = ListExpectation { device_id, highest_sequence: None, now: now_ms() / 1000 };
    let list = verify_exceptions(&envelope, pinned_key, expect).expect("the list verifies as a device checks it");
    (reply, list)
}
