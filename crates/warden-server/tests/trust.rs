//! Issue 14's attempts against the server, each now failing: rolling devices back to an older
//! policy, a guessable admin token, the signing key and database readable by other local users,
//! pages without security headers, and a flood of connections that never send a header — over
//! real HTTP, on SQLite and PostgreSQL where the database matters, and the real binary where the
//! files on disk do.

mod common;

use common::{ADMIN_TOKEN, Db, TestServer, database_url, enroll};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use warden_server::{Config, Credentials};

async fn policy_on_device(server: &TestServer, token: &str) -> Value {
    let reply = server.api.get("/api/v1/device/policy", token).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.body
}

async fn an_older_version_is_put_back_as_a_newer_one(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let api = &server.api;
    let (_, token, _) = enroll(api, "dev", "dev-laptop").await;
    let first = policy_on_device(&server, &token).await;
    assert_eq!(first["version"], 1);
    let source = include_str!("../../warden-policy/src/default-policy.toml").replacen(
        "mode = \"enforce\"",
        "mode = \"monitor\"",
        1,
    );
    let uploaded = api.post("/api/v1/admin/policies", ADMIN_TOKEN, json!({"source": source})).await;
    assert_eq!(uploaded.status, StatusCode::CREATED, "{}", uploaded.text);
    assert_eq!(policy_on_device(&server, &token).await["version"], 2);

    // "Activate version 1": devices hold version 2 and never accept a lower number, so version 1's
    // content comes back as version 3, which they take.
    let activated = api.post("/api/v1/admin/policies/1/activate", ADMIN_TOKEN, json!({})).await;
    assert_eq!(activated.status, StatusCode::OK, "{}", activated.text);
    assert_eq!((activated.body["version"].as_i64(), activated.body["republished_from"].as_i64()), (Some(3), Some(1)));
    assert_eq!(activated.body["active"], true);
    let now = policy_on_device(&server, &token).await;
    assert_eq!(now["version"], 3);
    assert_eq!(now["policy"], first["policy"], "version 1's content, signed again");
    assert_eq!(now["public_key"], first["public_key"]);
    let list = api.get("/api/v1/admin/policies", ADMIN_TOKEN).await;
    let active: Vec<i64> = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["active"] == true)
        .filter_map(|v| v["version"].as_i64())
        .collect();
    assert_eq!(active, [3], "{}", list.text);

    // Activating the newest stored version is a plain activation: no new version.
    let again = api.post("/api/v1/admin/policies/3/activate", ADMIN_TOKEN, json!({})).await;
    assert_eq!((again.body["version"].as_i64(), again.body.get("republished_from")), (Some(3), None), "{}", again.text);
    server.stop().await;
}

#[tokio::test]
async fn an_older_version_is_put_back_as_a_newer_one_on_sqlite() {
    an_older_version_is_put_back_as_a_newer_one(Db::Sqlite).await;
}

#[tokio::test]
async fn an_older_version_is_put_back_as_a_newer_one_on_postgres() {
    an_older_version_is_put_back_as_a_newer_one(Db::Postgres).await;
}

#[tokio::test]
async fn a_short_configured_admin_token_or_enroll_secret_stops_the_start() {
    let url = database_url(Db::Sqlite).await.unwrap();
    for (admin, secret, words) in [
        ("x", "a-long-enough-secret", "admin token has 1 characters; at least 32"),
        ("wadm_test-admin-token-0123456789", "short", "enroll secret has 5 characters; at least 16"),
    ] {
        let mut config = Config::new(&url);
        config.credentials = Credentials {
            admin_token: Some(admin.into()),
            enroll_secret: Some(secret.into()),
            ..Credentials::default()
        };
        let error = warden_server::prepare(&config).await.expect_err("refused").to_string();
        assert!(error.contains(words), "{error}");
    }
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let Some(server) = TestServer::start(Db::Sqlite).await else { return };
    let client = &server.api.client;
    for (path, token, status) in [
        ("/admin", None, StatusCode::OK),
        ("/admin/app.js", None, StatusCode::OK),
        ("/admin/app.css", None, StatusCode::OK),
        ("/api/v1/health", None, StatusCode::OK),
        ("/api/v1/admin/devices", None, StatusCode::UNAUTHORIZED),
        ("/api/v1/admin/devices", Some(ADMIN_TOKEN), StatusCode::OK),
        ("/nothing-here", None, StatusCode::NOT_FOUND),
    ] {
        let reply = client.send(Method::GET, path, token, None, &[]).await.unwrap();
        assert_eq!(reply.status, status, "{path}");
        for (name, value) in warden_server::SECURITY_HEADERS {
            assert_eq!(reply.headers.get(*name).and_then(|v| v.to_str().ok()), Some(*value), "{path}: {name}");
        }
    }
    // The CSP allows no inline code or style, so the page has none.
    let page = client.send(Method::GET, "/admin", None, None, &[]).await.unwrap().text;
    assert!(!page.contains("<style") && !page.contains(" style="), "inline style");
    assert!(page.match_indices("<script").all(|(at, _)| page[at..].starts_with("<script src=")), "inline script");
    let handler = page.split(' ').any(|word| {
        word.strip_prefix("on")
            .and_then(|rest| rest.split_once('='))
            .is_some_and(|(name, _)| !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase()))
    });
    assert!(!handler, "an inline event handler");
    server.stop().await;
}

/// A connection from `source` (a loopback address of the test's choosing) to `server`.
fn connect_from(source: &str, server: std::net::SocketAddr) -> std::net::TcpStream {
    let socket = bound_connect(source, server);
    // tokio hands over a non-blocking socket; these reads block (with a deadline).
    socket.set_nonblocking(false).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    socket
}

/// Binds a client socket to `source` before connecting (std has no bind-then-connect; tokio does).
fn bound_connect(source: &str, server: std::net::SocketAddr) -> std::net::TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        socket.connect(server).await.unwrap().into_std().unwrap()
    })
}

/// Whether the server closed `stream` (EOF or reset) within `limit`.
fn closed_within(mut stream: &std::net::TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => matches!(error.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe),
    }
}

#[test]
fn a_flood_of_silent_connections_from_one_client_never_stops_the_server_for_others() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = runtime.block_on(database_url(Db::Sqlite)).unwrap();
    let server = runtime.block_on(TestServer::configured(&url, |config| {
        config.max_connections_per_client = 20;
        config.header_read_timeout = Duration::from_secs(3);
    }));
    let address: std::net::SocketAddr =
        server.api.client.base().trim_start_matches("http://").parse().expect("the test server's address");
    // The flood comes from 127.0.0.2 and never sends a byte.
    let connected = Instant::now();
    let flood: Vec<std::net::TcpStream> = (0..40).map(|_| connect_from("127.0.0.2", address)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let (refused, held): (Vec<_>, Vec<_>) =
        flood.into_iter().partition(|s| closed_within(s, Duration::from_millis(30)));
    assert_eq!(refused.len(), 20, "connections past the client's 20 are closed at once");
    assert!(connected.elapsed() < Duration::from_secs(2), "the check itself must end before the deadline");
    // Everyone else is still answered.
    let health = runtime.block_on(server.api.client.send(Method::GET, "/api/v1/health", None, None, &[])).unwrap();
    assert_eq!(health.status, StatusCode::OK);
    // The silent ones are closed when their header deadline (3 s) passes, not before.
    assert!(held.iter().all(|s| closed_within(s, Duration::from_secs(5))), "every silent connection is closed");
    let closed_after = connected.elapsed();
    assert!(
        closed_after >= Duration::from_millis(2500) && closed_after < Duration::from_secs(6),
        "closed at the header deadline: {closed_after:?}"
    );
    // And the client may connect again.
    let mut again = connect_from("127.0.0.2", address);
    std::io::Write::write_all(&mut again, b"GET /api/v1/health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    again.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    runtime.block_on(server.stop());
}

/// The real binary on a data directory of its own: (child, base URL, admin token).
fn start_binary(data: &std::path::Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_warden-server"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("WARDEN_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("WARDEN_ENROLL_SECRET", common::ENROLL_SECRET)
        .env_remove("WARDEN_DATABASE_URL")
        .env_remove("WARDEN_SIGNING_KEY_FILE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting warden-server")
}

/// Reads the child's stdout until it says where it listens.
fn listening(child: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let stdout = child.stdout.take().unwrap();
    for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Some(base) = line.strip_prefix("Listening on ") {
            return base.to_owned();
        }
    }
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    panic!("warden-server did not start: {stderr}");
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[test]
fn the_signing_key_and_the_database_are_the_servers_alone() {
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path().join("data");
    let mut child = start_binary(&data);
    let base = listening(&mut child);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let api = common::Api::new(&base);
    let (_, token, _) = runtime.block_on(enroll(&api, "dev", "dev-laptop"));
    let key_before = runtime.block_on(api.get("/api/v1/device/policy", &token)).body["public_key"].clone();
    let _ = child.kill();
    let _ = child.wait();

    assert_eq!(mode(&data), 0o700, "the data directory");
    assert_eq!(mode(&data.join("warden.db")), 0o600, "the database");
    let key = data.join("policy-signing.key");
    assert_eq!(mode(&key), 0o600, "the signing key");
    // The key is not in the database the admin page reads from.
    let url = format!("sqlite://{}", data.join("warden.db").display());
    let names: Vec<(String,)> = runtime.block_on(async {
        let store = warden_server::Store::open(&url).await.unwrap();
        sqlx::query_as("SELECT name FROM server_settings").fetch_all(&store.pool).await.unwrap()
    });
    assert!(!names.is_empty() && names.iter().all(|(name,)| name != "policy_signing_key"), "{names:?}");

    // Restarted: the same key (devices keep verifying), from the file.
    let mut child = start_binary(&data);
    let base = listening(&mut child);
    let api = common::Api::new(&base);
    let key_after = runtime.block_on(api.get("/api/v1/device/policy", &token)).body["public_key"].clone();
    assert_eq!(key_after, key_before);
    let _ = child.kill();
    let _ = child.wait();

    // A key file others can read stops the start, saying why.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_warden-server"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("WARDEN_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("WARDEN_ENROLL_SECRET", common::ENROLL_SECRET)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with a readable key");
    assert!(stderr.contains("others can read it (mode 644)"), "{stderr}");
}

#[tokio::test]
async fn a_key_an_older_server_kept_in_the_database_moves_into_the_file() {
    let url = database_url(Db::Sqlite).await.unwrap();
    // An older start: the key in the database.
    let older = TestServer::on(&url).await;
    let (_, token, _) = enroll(&older.api, "dev", "dev-laptop").await;
    let key = older.api.get("/api/v1/device/policy", &token).await.body["public_key"].clone();
    older.stop().await;
    // This one is given a key file: the database's key moves there, unchanged.
    let file = warden_server::sqlite_path(&url).unwrap().with_file_name("moved.key");
    let server = TestServer::configured(&url, |config| config.credentials.signing_key_file = Some(file.clone())).await;
    assert_eq!(server.api.get("/api/v1/device/policy", &token).await.body["public_key"], key);
    assert_eq!(mode(&file), 0o600);
    let store = warden_server::Store::open(&url).await.unwrap();
    let left: Option<(String,)> = sqlx::query_as("SELECT value FROM server_settings WHERE name = 'policy_signing_key'")
        .fetch_optional(&store.pool)
        .await
        .unwrap();
    assert!(left.is_none(), "the database keeps no copy");
    server.stop().await;
}

async fn a_device_cannot_speak_for_others_or_sit_on_top_of_the_list(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let api = &server.api;
    let (dev_device, dev_token, _) = enroll(api, "dev", "dev-laptop").await;
    let (_, alice_token, _) = enroll(api, "alice", "alice-laptop").await;
    let now = common::now_ms();
    let id = |n: u32| format!("f0f0{:04}-0000-4000-8000-{:012}", db as u32, n);
    // dev's laptop sends 25 "alice was blocked" events and 30 dated in the year 2100.
    let mut forged: Vec<Value> =
        (0..25).map(|n| common::launch_event(&id(n), "alice", "claude-code", "block", now - 1000)).collect();
    forged.extend((100..130).map(|n| common::launch_event(&id(n), "dev", "cursor", "warn", 4_102_444_800_000)));
    let reply = api.post("/api/v1/device/events", &dev_token, json!({"events": forged})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    // A genuine event of dev's, a little later.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let genuine = common::launch_event(&id(500), "dev", "codex", "block", common::now_ms());
    api.post("/api/v1/device/events", &dev_token, json!({"events": [genuine]})).await;

    // Alice's request shows her own blocks only: none.
    let filed = api
        .post(
            "/api/v1/device/exceptions",
            &alice_token,
            json!({"tool": "claude-code", "justification": "Vendor SDK migration needs the CLI for a day.", "duration_seconds": 3600}),
        )
        .await;
    assert_eq!(filed.status, StatusCode::CREATED, "{}", filed.text);
    let pending = api.get("/api/v1/admin/exceptions?state=pending", ADMIN_TOKEN).await;
    let alice = pending.body.as_array().unwrap().iter().find(|p| p["user"] == "alice").unwrap().clone();
    assert_eq!(alice["blocked_last_7_days"], 0, "forged events counted as alice's: {alice}");
    // They are kept, as dev's device's local account.
    let mine =
        api.get(&format!("/api/v1/admin/events?device={dev_device}&tool=claude-code&limit=100"), ADMIN_TOKEN).await;
    let people: std::collections::BTreeSet<String> =
        mine.body["events"].as_array().unwrap().iter().map(|e| e["person"].as_str().unwrap().to_owned()).collect();
    assert_eq!(people.into_iter().collect::<Vec<_>>(), [format!("alice (local account on device {dev_device})")]);
    // The newest event is the genuine one; the year-2100 ones are filed at their arrival, flagged.
    let recent = api.get("/api/v1/admin/events?limit=5", ADMIN_TOKEN).await;
    let first = &recent.body["events"][0];
    assert_eq!(first["event"]["id"], id(500), "{}", recent.text);
    let ahead = api.get(&format!("/api/v1/admin/events?device={dev_device}&tool=cursor&limit=1"), ADMIN_TOKEN).await;
    let ahead = &ahead.body["events"][0];
    assert_eq!(ahead["clock_ahead"], true, "{ahead}");
    assert!(ahead["at_ms"].as_i64().unwrap() <= common::now_ms());
    assert_eq!(ahead["event"]["at_ms"], 4_102_444_800_000_i64, "the device's claim is kept");
    server.stop().await;
}

#[tokio::test]
async fn a_device_cannot_speak_for_others_or_sit_on_top_of_the_list_on_sqlite() {
    a_device_cannot_speak_for_others_or_sit_on_top_of_the_list(Db::Sqlite).await;
}

#[tokio::test]
async fn a_device_cannot_speak_for_others_or_sit_on_top_of_the_list_on_postgres() {
    a_device_cannot_speak_for_others_or_sit_on_top_of_the_list(Db::Postgres).await;
}

#[tokio::test]
async fn floods_of_requests_enrollments_and_uploads_are_answered_429_with_retry_after() {
    let url = database_url(Db::Sqlite).await.unwrap();
    let server = TestServer::configured(&url, |config| {
        config.limits =
            warden_server::LimitSettings { enrollments_per_minute: 6, uploads_per_minute: 3, events_per_minute: 1000 };
    })
    .await;
    let api = &server.api;
    let (_, alice_token, _) = enroll(api, "alice", "alice-laptop").await;
    let (_, token, _) = enroll(api, "dev", "dev-laptop").await;
    let request = |n: u32| {
        json!({"tool": "claude-code", "justification": format!("Genuine need number {n} for the vendor SDK."),
               "duration_seconds": 3600})
    };
    // Alice's genuine request first; then dev's device files as many as it can.
    let genuine = api.post("/api/v1/device/exceptions", &alice_token, request(0)).await;
    assert_eq!(genuine.status, StatusCode::CREATED);
    let mut refused = None;
    for n in 1..=15 {
        let reply = api.post("/api/v1/device/exceptions", &token, request(n)).await;
        if reply.status != StatusCode::CREATED {
            refused = Some((n, reply));
            break;
        }
    }
    let (n, reply) = refused.expect("a device's pending requests are capped");
    assert_eq!((n, reply.status), (11, StatusCode::TOO_MANY_REQUESTS), "{}", reply.text);
    assert_eq!(reply.body["code"], "too_many_pending");
    let pending = api.get("/api/v1/admin/exceptions?state=pending", ADMIN_TOKEN).await;
    assert!(pending.body.as_array().unwrap().iter().any(|p| p["id"] == genuine.body["id"]));

    // Wrong enroll secrets: after the address's allowance (6 a minute, 2 used above), 429.
    let mut codes = Vec::new();
    for _ in 0..6 {
        let reply = api
            .call(
                Method::POST,
                "/api/v1/enroll",
                None,
                Some(json!({"secret": "guess-guess-guess", "hostname": "h", "user": "u", "platform": "linux"})),
            )
            .await;
        codes.push(reply.status.as_u16());
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            let wait: u64 = reply.headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=60).contains(&wait), "{wait}");
        }
    }
    assert_eq!(codes, [403, 403, 403, 403, 429, 429]);

    // Uploads: three a minute for this device, then 429 with Retry-After; nothing of the refused
    // batch is stored (the device keeps it queued).
    for n in 0..3 {
        let event =
            common::launch_event(&format!("a0a0a0a0-0000-4000-8000-{n:012}"), "dev", "codex", "warn", common::now_ms());
        assert_eq!(api.post("/api/v1/device/events", &token, json!({"events": [event]})).await.status, StatusCode::OK);
    }
    let event = common::launch_event("a0a0a0a0-0000-4000-8000-000000000099", "dev", "codex", "warn", common::now_ms());
    let reply = api.post("/api/v1/device/events", &token, json!({"events": [event]})).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{}", reply.text);
    assert!(reply.headers.contains_key("retry-after"));
    let stored = api.get("/api/v1/admin/events?tool=codex&limit=100", ADMIN_TOKEN).await;
    assert_eq!(stored.body["events"].as_array().unwrap().len(), 3);
    server.stop().await;
}

#[test]
fn the_server_speaks_tls_and_never_plain_http_off_loopback_unless_told() {
    let scratch = tempfile::tempdir().unwrap();
    let (cert, key) = (scratch.path().join("cert.pem"), scratch.path().join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden-server"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(scratch.path().join("data"))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .env("WARDEN_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("WARDEN_ENROLL_SECRET", common::ENROLL_SECRET)
        .env_remove("WARDEN_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = listening(&mut child);
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");
    let curl = |args: &[&str]| Command::new("curl").args(["-sS", "-m", "5"]).args(args).output().unwrap();
    let health = curl(&["--cacert", cert.to_str().unwrap(), &format!("{base}/api/v1/health")]);
    let body = String::from_utf8_lossy(&health.stdout);
    assert!(
        health.status.success() && body.contains("\"status\":\"ok\""),
        "{body}{}",
        String::from_utf8_lossy(&health.stderr)
    );
    // Plain HTTP to the TLS port gets no answer.
    let plain = curl(&[&format!("{}/api/v1/health", base.replacen("https", "http", 1))]);
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("\"status\""), "plain HTTP answered");
    // A certificate the client does not trust is refused by the client.
    assert!(!curl(&[&format!("{base}/api/v1/health")]).status.success());
    let _ = child.kill();
    let _ = child.wait();

    // Plain HTTP off loopback: refused before the port is opened, saying what to do.
    let refused = Command::new(env!("CARGO_BIN_EXE_warden-server"))
        .args(["--listen", "0.0.0.0:0", "--data-dir"])
        .arg(scratch.path().join("data"))
        .env("WARDEN_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("WARDEN_ENROLL_SECRET", common::ENROLL_SECRET)
        .env_remove("WARDEN_DATABASE_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("refusing to serve plain HTTP on 0.0.0.0:0"), "{stderr}");
    assert!(stderr.contains("--tls-cert"), "{stderr}");
}

/// A device (or a stolen token) cannot tie up the server with long-polls: a third at once is
/// answered 429 with `Retry-After`, and a slot is free again as soon as a wait ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_holds_at_most_two_long_polls() {
    let Some(server) = TestServer::start(Db::Sqlite).await else { return };
    let (_, token, _) = enroll(&server.api, "dev", "laptop-a").await;
    let (_, other, _) = enroll(&server.api, "erin", "laptop-b").await;
    let wait = |token: String, seconds: u64| {
        let api = server.api.clone();
        async move { api.get(&format!("/api/v1/device/wait?since=999999&timeout={seconds}"), &token).await }
    };
    let first = tokio::spawn(wait(token.clone(), 2));
    let second = tokio::spawn(wait(token.clone(), 4));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let third = wait(token.clone(), 1).await;
    assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS, "{}", third.text);
    assert_eq!(third.body["code"], "too_many_waits");
    assert!(third.headers.get("retry-after").is_some());
    // Another device is not affected.
    assert_eq!(wait(other, 1).await.status, StatusCode::OK);
    // When the first wait ends, its slot is free again.
    assert_eq!(first.await.unwrap().status, StatusCode::OK);
    assert_eq!(wait(token.clone(), 1).await.status, StatusCode::OK);
    assert_eq!(second.await.unwrap().status, StatusCode::OK);
    server.stop().await;
}
