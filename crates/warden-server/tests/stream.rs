//! The webhook stream, on SQLite and on PostgreSQL, to a receiver on loopback that is stopped and
//! started again mid-stream: every event and audit record arrives (nothing lost), a record sent
//! twice carries the same id and the same content, every body's signature is the HMAC of the
//! shared secret, and a device's retried upload streams nothing twice. And the syslog stream over
//! TLS to a collector on loopback that restarts: every record arrives as an RFC 5424 message an
//! independent parser reads.

mod common;

use axum::extract::State;
use axum::http::HeaderMap;
use common::{ADMIN_TOKEN, Db, TestServer, database_url, enroll, launch_event, now_ms};
use hyper::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use warden_server::stream::{StreamSettings, signature};

const SECRET: &[u8] = b"stream-secret-for-the-test-0123";

/// (signature header, body) of every delivery the receiver accepted.
type Deliveries = Arc<Mutex<Vec<(String, String)>>>;

async fn accept(
    State(got): State<Deliveries>,
    headers: HeaderMap,
    body: String,
) -> ([(&'static str, &'static str); 1], &'static str) {
    let signature = headers.get("x-warden-signature").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    got.lock().unwrap().push((signature, body));
    // No keep-alive: once the receiver stops, the server's next try cannot reach it.
    ([("connection", "close")], "ok")
}

/// The receiver on `127.0.0.1:port` (0: any); returns its task and port.
async fn start_receiver(port: u16, got: Deliveries) -> (tokio::task::JoinHandle<()>, u16) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route("/in", axum::routing::post(accept)).with_state(got);
    (tokio::spawn(async move { axum::serve(listener, app).await.unwrap() }), port)
}

/// Every record received so far, by id (each id's lines must all be equal).
fn records(got: &Deliveries) -> BTreeMap<String, Value> {
    let mut by_id: BTreeMap<String, Value> = BTreeMap::new();
    for (_, body) in got.lock().unwrap().iter() {
        for line in body.lines() {
            let record: Value = serde_json::from_str(line).unwrap();
            let id = record["id"].as_str().unwrap().to_owned();
            if let Some(earlier) = by_id.get(&id) {
                assert_eq!(earlier, &record, "a record sent again must be the same record");
            }
            by_id.insert(id, record);
        }
    }
    by_id
}

async fn wait_for(got: &Deliveries, ids: &[String]) {
    let started = Instant::now();
    loop {
        let have = records(got);
        if ids.iter().all(|id| have.contains_key(id)) {
            return;
        }
        let missing: Vec<_> = ids.iter().filter(|id| !have.contains_key(*id)).collect();
        assert!(started.elapsed() < Duration::from_secs(30), "still missing after 30 s: {missing:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn the_stream_survives_a_receiver_outage(db: Db) {
    let Some(url) = database_url(db).await else { return };
    let got: Deliveries = Arc::default();
    let (receiver, port) = start_receiver(0, got.clone()).await;
    let settings = StreamSettings::new(&format!("http://127.0.0.1:{port}/in"), SECRET).unwrap();
    let server = TestServer::configured(&url, |config| config.stream = Some(settings)).await;
    let api = &server.api;
    let (device, token, _) = enroll(api, "dev", "laptop-a").await;
    let batch = |first: usize| -> Vec<Value> {
        (first..first + 20)
            .map(|i| launch_event(&format!("00000000-0000-4000-8000-{i:012}"), "dev", "claude-code", "block", now_ms()))
            .collect()
    };
    let ids = |events: &[Value]| events.iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>();

    let first = batch(0);
    assert_eq!(api.post("/api/v1/device/events", &token, json!({"events": first})).await.status, StatusCode::OK);
    wait_for(&got, &ids(&first)).await;

    // The receiver goes away; the server keeps storing, and keeps the records for it.
    receiver.abort();
    let _ = receiver.await;
    let second = batch(20);
    assert_eq!(api.post("/api/v1/device/events", &token, json!({"events": second})).await.status, StatusCode::OK);
    // A retried upload of the same events stores (and streams) nothing new.
    let retry = api.post("/api/v1/device/events", &token, json!({"events": second})).await;
    assert_eq!(retry.body["stored"], 0, "{}", retry.text);
    let request = common::file_request(api, &token, "Reviewing the vendor agent for the assessment", 600).await;
    let approved = api
        .post(&format!("/api/v1/admin/exceptions/{request}/approve"), ADMIN_TOKEN, json!({"approver": "alice"}))
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.text);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_restart = records(&got).values().filter(|r| r["kind"] != "alert").count();
    assert_eq!(before_restart, 20, "nothing reached a receiver that was down");

    // Back on the same port: everything arrives, the audit rows too.
    let (_receiver, _) = start_receiver(port, got.clone()).await;
    let mut wanted = ids(&second);
    wanted.extend([format!("audit:{request}:pending"), format!("audit:{request}:approved")]);
    wait_for(&got, &wanted).await;

    let all = records(&got);
    // Twenty blocks within an hour also raised a `repeated-blocks` alert, streamed like the rest.
    let alerts: Vec<&Value> = all.values().filter(|r| r["kind"] == "alert").collect();
    assert!(!alerts.is_empty() && alerts.iter().all(|a| a["record"]["rule"] == "repeated-blocks"), "{alerts:?}");
    assert_eq!(all.len() - alerts.len(), 42, "40 events and 2 audit records, each once by id");
    let event = &all[&wanted[0]];
    assert_eq!((event["kind"].as_str(), event["record"]["device_id"].as_str()), (Some("event"), Some(device.as_str())));
    assert_eq!(event["record"]["event"]["tool"], "claude-code");
    let approval = &all[&format!("audit:{request}:approved")];
    assert_eq!((approval["kind"].as_str(), approval["record"]["actor"].as_str()), (Some("audit"), Some("alice")));
    for (sent, body) in got.lock().unwrap().iter() {
        assert_eq!(sent, &signature(SECRET, body.as_bytes()), "every body is signed with the shared secret");
        assert_ne!(sent, &signature(b"another-secret-0123456789", body.as_bytes()));
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_survives_a_receiver_outage_on_sqlite() {
    the_stream_survives_a_receiver_outage(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_survives_a_receiver_outage_on_postgres() {
    the_stream_survives_a_receiver_outage(Db::Postgres).await;
}

/// A syslog collector on `127.0.0.1:port` speaking TLS with `cert`/`key`: one connection at a time
/// (so stopping the task closes it), octet-counted frames, each message's MSG kept.
async fn start_collector(
    port: u16,
    tls: Arc<tokio_rustls::rustls::ServerConfig>,
    got: Arc<Mutex<Vec<String>>>,
) -> (tokio::task::JoinHandle<()>, u16) {
    use tokio::io::AsyncReadExt as _;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let Ok(mut stream) = acceptor.accept(stream).await else { continue };
            let mut buffer = Vec::new();
            let mut chunk = [0u8; 8192];
            loop {
                let read = stream.read(&mut chunk).await.unwrap_or(0);
                if read == 0 {
                    break;
                }
                buffer.extend_from_slice(&chunk[..read]);
                // Whole frames: `LEN SP MSG`.
                while let Some(space) = buffer.iter().position(|b| *b == b' ') {
                    let length: usize = std::str::from_utf8(&buffer[..space]).unwrap().parse().unwrap();
                    if buffer.len() < space + 1 + length {
                        break;
                    }
                    let message = String::from_utf8(buffer[space + 1..space + 1 + length].to_vec()).unwrap();
                    buffer.drain(..space + 1 + length);
                    got.lock().unwrap().push(message);
                }
            }
        }
    });
    (task, port)
}

/// The records received so far, by the id in their structured data, each read by the parser.
fn syslog_records(got: &Arc<Mutex<Vec<String>>>) -> BTreeMap<String, Value> {
    let mut by_id = BTreeMap::new();
    for message in got.lock().unwrap().iter() {
        let parsed = syslog_rfc5424::parse_message(message.as_str()).expect("an RFC 5424 message");
        assert_eq!(parsed.facility, syslog_rfc5424::SyslogFacility::LOG_AUDIT);
        assert_eq!(parsed.appname.as_deref(), Some("warden-server"));
        let id = parsed.sd.find_tuple("warden@32473", "id").expect("the record id in structured data").to_owned();
        let record: Value = serde_json::from_str(&parsed.msg).expect("MSG is the record's JSON line");
        assert_eq!(record["id"], id.as_str());
        assert_eq!(parsed.msgid.as_deref(), record["kind"].as_str());
        let severity = if record["kind"] == "alert" {
            syslog_rfc5424::SyslogSeverity::SEV_WARNING
        } else {
            syslog_rfc5424::SyslogSeverity::SEV_NOTICE
        };
        assert_eq!(parsed.severity, severity);
        if let Some(earlier) = by_id.get(&id) {
            assert_eq!(earlier, &record, "a record sent again must be the same record");
        }
        by_id.insert(id, record);
    }
    by_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_syslog_stream_over_tls_survives_a_collector_restart() {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    // A CA and a collector certificate it signed (webpki refuses a self-signed leaf).
    let scratch = tempfile::tempdir().unwrap();
    let path = |name: &str| scratch.path().join(name).to_str().unwrap().to_owned();
    let (ca_cert, cert, key) = (path("ca.pem"), path("cert.pem"), path("key.pem"));
    std::fs::write(path("leaf.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    for args in [
        [
            &["req", "-x509"][..],
            &ec,
            &["-days", "2", "-subj", "/CN=Warden test CA", "-keyout", &path("ca.key"), "-out", &ca_cert],
        ]
        .concat(),
        [&["req"][..], &ec, &["-subj", "/CN=localhost", "-keyout", &key, "-out", &path("leaf.csr")]].concat(),
        [
            &["x509", "-req", "-in", &path("leaf.csr"), "-CA", &ca_cert, "-CAkey", &path("ca.key")][..],
            &["-CAcreateserial", "-days", "2", "-extfile", &path("leaf.ext"), "-out", &cert],
        ]
        .concat(),
    ] {
        let made = std::process::Command::new("openssl").args(&args).output().expect("openssl");
        assert!(made.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&made.stderr));
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(&cert).unwrap().map(Result::unwrap).collect();
    let tls = Arc::new(
        tokio_rustls::rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, PrivateKeyDer::from_pem_file(&key).unwrap())
            .unwrap(),
    );
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let (collector, port) = start_collector(0, tls.clone(), got.clone()).await;
    let ca = std::fs::read(&ca_cert).unwrap();
    let settings = StreamSettings::syslog(&format!("tls://localhost:{port}"), Some(&ca)).unwrap();
    let Some(url) = database_url(Db::Sqlite).await else { return };
    let server = TestServer::configured(&url, |config| config.stream = Some(settings)).await;
    let api = &server.api;
    let (_, token, _) = enroll(api, "dev", "laptop-a").await;
    let batch = |first: usize| -> Vec<Value> {
        (first..first + 20)
            .map(|i| launch_event(&format!("00000000-0000-4000-8000-{i:012}"), "dev", "cursor", "allow", now_ms()))
            .collect()
    };
    let wait_for = |ids: Vec<String>| {
        let got = got.clone();
        async move {
            let started = Instant::now();
            loop {
                let have = syslog_records(&got);
                if ids.iter().all(|id| have.contains_key(id)) {
                    return have;
                }
                assert!(started.elapsed() < Duration::from_secs(30), "still missing after 30 s");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let ids = |events: &[Value]| events.iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    let first = batch(0);
    assert_eq!(api.post("/api/v1/device/events", &token, json!({"events": first})).await.status, StatusCode::OK);
    wait_for(ids(&first)).await;

    // The collector restarts: its connection closes, the server notices before the next batch.
    collector.abort();
    let _ = collector.await;
    let second = batch(20);
    assert_eq!(api.post("/api/v1/device/events", &token, json!({"events": second})).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_collector, _) = start_collector(port, tls, got.clone()).await;
    let all = wait_for(ids(&second)).await;
    assert_eq!(all.len(), 40, "every event once by id");
    assert_eq!(all[&ids(&second)[0]]["record"]["event"]["tool"], "cursor");
    server.stop().await;
}
