//! Nothing cached is trusted unverified. A state directory holds a signed policy (v2) and a
//! signed exception list (sequence 5) as a sync leaves them; each case rewrites what a
//! developer could, and the next load must refuse every rewritten file with an incident queued
//! for the server, keep it aside as evidence, and put the last verified copy in force.
//! Then the fetch side: a `304` never confirms a cache that does not verify, and a fetched
//! list older than the one accepted is refused (a loopback HTTP server plays the server).

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use warden_api::{Event, ExceptionsEnvelope, PolicyEnvelope, PolicySigningKey, SignedExceptions, policy_etag};
use warden_client::cache::{EXCEPTIONS_INCIDENT, POLICY_INCIDENT};
use warden_client::{
    CachedExceptions, CachedPolicy, Device, DeviceToken, Enrollment, PolicySync, StateDir, cached_rules,
};
use warden_policy::{Exception, Mode, Policy};
use warden_store::Store;

const DEVICE: &str = "dev_0123456789ab";
const NOW: i64 = 1_900_000_000;

fn server_key() -> PolicySigningKey {
    PolicySigningKey::from_secret([3; 32])
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The embedded policy as version `version`, named after it, signed by `key`.
fn policy(key: &PolicySigningKey, version: i64) -> CachedPolicy {
    let mut policy = Policy::embedded();
    policy.name = format!("signed v{version}");
    let json = policy.to_json();
    let envelope = PolicyEnvelope {
        version,
        etag: policy_etag(version, &json),
        signature: key.sign(version, &json),
        policy: json,
        public_key: key.public_key(),
        created_at: 0,
    };
    CachedPolicy { envelope, fetched_at: 1, confirmed_at: 1 }
}

fn exception(id: &str, tool: &str) -> Exception {
    Exception {
        id: id.into(),
        user: "dev@corp.example".into(),
        tool: tool.into(),
        scope: None,
        starts_at: 0,
        expires_at: NOW * 2,
        guardrails: Default::default(),
    }
}

/// A list for `device` at `sequence`, valid for a day from now.
fn list(key: &PolicySigningKey, device: &str, sequence: i64, ids: &[&str]) -> CachedExceptions {
    let signed = key.sign_exceptions(&SignedExceptions {
        device_id: device.into(),
        sequence,
        issued_at: now(),
        valid_until: now() + 86_400,
        exceptions: ids.iter().map(|id| exception(id, "claude-code")).collect(),
    });
    CachedExceptions { fetched_at: 1, requests: Vec::new(), signed }
}

fn write(path: &Path, value: &impl serde::Serialize) {
    std::fs::write(path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
}

/// An enrolled state directory as a sync leaves it: each cache and its verified copy.
struct Desk {
    _dir: tempfile::TempDir,
    state: StateDir,
    store: Store,
}

impl Desk {
    fn new(server: &str) -> Desk {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        state
            .save_enrollment(&Enrollment {
                server: server.into(),
                device_id: DEVICE.into(),
                user: "dev@corp.example".into(),
                local_users: Vec::new(),
                hostname: "box".into(),
                policy_public_key: server_key().public_key(),
                enrolled_at: 1,
                server_ca: None,
                token_rotated_at: None,
            })
            .unwrap();
        let store = Store::open(state.events_db()).unwrap();
        let desk = Desk { _dir: dir, state, store };
        for name in ["policy.json", "policy.verified.json"] {
            write(&desk.path(name), &policy(&server_key(), 2));
        }
        for name in ["exceptions.json", "exceptions.verified.json"] {
            write(&desk.path(name), &list(&server_key(), DEVICE, 5, &["granted"]));
        }
        desk
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.state.root().join(name)
    }

    fn json(&self, name: &str) -> Value {
        serde_json::from_slice(&std::fs::read(self.path(name)).unwrap()).unwrap()
    }

    /// (policy version in force, exception ids in force)
    fn in_force(&self) -> InForce {
        let (policy, exceptions) = cached_rules(&self.state, &self.store).unwrap();
        if let Some((policy, version)) = &policy {
            assert_eq!((policy.mode, policy.name.as_str()), (Mode::Enforce, format!("signed v{version}").as_str()));
        }
        (policy.map(|(_, version)| version), exceptions.into_iter().map(|e| e.id).collect())
    }

    /// Incident codes queued for the server, oldest first (and the same in the local list).
    fn incidents(&self) -> Vec<String> {
        let queued: Vec<String> = self
            .store
            .pending(1000)
            .unwrap()
            .into_iter()
            .filter_map(|event| match event {
                Event::Incident(incident) => Some(incident.code),
                _ => None,
            })
            .collect();
        let mut local: Vec<String> = self.store.incidents(1000).unwrap().into_iter().map(|i| i.kind).collect();
        local.reverse();
        assert_eq!(queued, local, "every incident is kept locally and queued for the server");
        queued
    }

    /// The files moved aside, by the name they had.
    fn aside(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.state.root())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter_map(|name| name.split_once(".rejected-").map(|(original, _)| original.to_owned()))
            .collect();
        names.sort();
        names
    }
}

/// A rewrite a developer could do.
type Rewrite = fn(&Desk);

/// What is in force after a load: the policy version, and the exception ids.
type InForce = (Option<i64>, Vec<String>);

/// (case, rewrite, incident codes, files kept aside, in force)
type LoadCase = (&'static str, Rewrite, Vec<&'static str>, Vec<&'static str>, InForce);

/// (case, what the server answers, accepted exception ids or the refusal's reason code)
type FetchCase = (&'static str, String, Result<Vec<&'static str>, &'static str>);

/// (request path, its `If-None-Match`) as the fake server saw them.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

fn edit_json(desk: &Desk, name: &str, change: impl FnOnce(&mut Value)) {
    let mut value = desk.json(name);
    change(&mut value);
    write(&desk.path(name), &value);
}

#[test]
fn a_rewritten_cache_is_refused_at_load_and_the_last_verified_copy_stays() {
    let last_verified = || (Some(2), vec!["granted".to_string()]);
    let cases: Vec<LoadCase> = vec![
        ("untouched", |_| {}, vec![], vec![], last_verified()),
        (
            "policy.json says monitor (signature kept)",
            |desk| {
                edit_json(desk, "policy.json", |v| {
                    let text = v["envelope"]["policy"].as_str().unwrap().replace("\"enforce\"", "\"monitor\"");
                    v["envelope"]["policy"] = json!(text);
                })
            },
            vec![POLICY_INCIDENT],
            vec!["policy.json"],
            last_verified(),
        ),
        (
            "policy.json replaced by an older signed policy",
            |desk| write(&desk.path("policy.json"), &policy(&server_key(), 1)),
            vec![POLICY_INCIDENT],
            vec!["policy.json"],
            last_verified(),
        ),
        (
            "policy.json signed by a key of one's own",
            |desk| write(&desk.path("policy.json"), &policy(&PolicySigningKey::from_secret([9; 32]), 3)),
            vec![POLICY_INCIDENT],
            vec!["policy.json"],
            last_verified(),
        ),
        (
            "policy.json not JSON",
            |desk| std::fs::write(desk.path("policy.json"), "{ mode = monitor").unwrap(),
            vec![POLICY_INCIDENT],
            vec!["policy.json"],
            last_verified(),
        ),
        (
            "both policy files rewritten",
            |desk| {
                for name in ["policy.json", "policy.verified.json"] {
                    edit_json(desk, name, |v| v["envelope"]["version"] = json!(9));
                }
            },
            vec![POLICY_INCIDENT, POLICY_INCIDENT],
            vec!["policy.json", "policy.verified.json"],
            (None, vec!["granted".into()]),
        ),
        (
            "the verified copy deleted (a crash between writes looks the same)",
            |desk| std::fs::remove_file(desk.path("policy.verified.json")).unwrap(),
            vec![],
            vec![],
            last_verified(),
        ),
        (
            "exceptions.json: an exception of one's own added (signature kept)",
            |desk| {
                edit_json(desk, "exceptions.json", |v| {
                    let body = v["signed"]["body"].as_str().unwrap();
                    let mut list: SignedExceptions = serde_json::from_str(body).unwrap();
                    list.exceptions.push(exception("mine", "codex"));
                    v["signed"]["body"] = json!(serde_json::to_string(&list).unwrap());
                })
            },
            vec![EXCEPTIONS_INCIDENT],
            vec!["exceptions.json"],
            last_verified(),
        ),
        (
            "exceptions.json: an older signed list put back",
            |desk| write(&desk.path("exceptions.json"), &list(&server_key(), DEVICE, 4, &["granted", "revoked-since"])),
            vec![EXCEPTIONS_INCIDENT],
            vec!["exceptions.json"],
            last_verified(),
        ),
        (
            "exceptions.json: another device's list",
            |desk| write(&desk.path("exceptions.json"), &list(&server_key(), "dev_other", 6, &["granted", "theirs"])),
            vec![EXCEPTIONS_INCIDENT],
            vec!["exceptions.json"],
            last_verified(),
        ),
        (
            "exceptions.json: a policy signature dressed as a list",
            |desk| {
                let policy = policy(&server_key(), 2).envelope;
                let forged = ExceptionsEnvelope { body: policy.policy, signature: policy.signature };
                edit_json(desk, "exceptions.json", |v| v["signed"] = serde_json::to_value(&forged).unwrap())
            },
            vec![EXCEPTIONS_INCIDENT],
            vec!["exceptions.json"],
            last_verified(),
        ),
        (
            "exceptions.json in the unsigned format of old",
            |desk| {
                let old = json!({"fetched_at": 1, "list": {"requests": [], "active": [exception("mine", "codex")]}});
                write(&desk.path("exceptions.json"), &old)
            },
            vec![EXCEPTIONS_INCIDENT],
            vec!["exceptions.json"],
            last_verified(),
        ),
        (
            "an expired list is genuine but grants nothing (no incident)",
            |desk| {
                let expired = server_key().sign_exceptions(&SignedExceptions {
                    device_id: DEVICE.into(),
                    sequence: 6,
                    issued_at: now() - 2 * 86_400,
                    valid_until: now() - 86_400,
                    exceptions: vec![exception("granted", "claude-code")],
                });
                let cached = CachedExceptions { fetched_at: 1, requests: Vec::new(), signed: expired };
                for name in ["exceptions.json", "exceptions.verified.json"] {
                    write(&desk.path(name), &cached);
                }
            },
            vec![],
            vec![],
            (Some(2), vec![]),
        ),
    ];
    for (case, rewrite, incidents, aside, in_force) in cases {
        let desk = Desk::new("http://127.0.0.1:9");
        rewrite(&desk);
        assert_eq!(desk.in_force(), in_force, "{case}: in force");
        assert_eq!(desk.incidents(), incidents, "{case}: incidents");
        assert_eq!(desk.aside(), aside, "{case}: kept aside");
        // The failing files were replaced by the verified copy: loading again finds nothing new.
        assert_eq!(desk.in_force(), in_force, "{case}: in force, second load");
        assert_eq!(desk.incidents(), incidents, "{case}: no new incident on the second load");
        if in_force.0 == Some(2) {
            assert_eq!(desk.json("policy.json"), desk.json("policy.verified.json"), "{case}: cache restored");
        }
    }
}

#[test]
fn the_evidence_is_the_rewritten_file_itself() {
    let desk = Desk::new("http://127.0.0.1:9");
    std::fs::write(desk.path("exceptions.json"), "{\"my\": \"edit\"}").unwrap();
    desk.in_force();
    let aside = std::fs::read_dir(desk.state.root())
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().starts_with("exceptions.json.rejected-"))
        .expect("kept aside");
    assert_eq!(std::fs::read_to_string(aside.path()).unwrap(), "{\"my\": \"edit\"}");
    let detail = desk.store.incidents(1).unwrap().remove(0).detail;
    assert!(detail.contains("exceptions.json") && detail.contains("exceptions.verified.json"), "{detail}");
}

/// A loopback HTTP server that answers the device routes from `answers` (path → (status,
/// body)) and records each request's `If-None-Match`.
struct FakeServer {
    url: String,
    seen: Seen,
}

impl FakeServer {
    fn start(answers: Vec<(&'static str, u16, String)>) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut first = String::new();
                reader.read_line(&mut first).unwrap();
                let path = first.split_whitespace().nth(1).unwrap_or_default().to_owned();
                let mut if_none_match = None;
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    let (name, value) = line.split_once(':').unwrap();
                    match name.to_ascii_lowercase().as_str() {
                        "if-none-match" => if_none_match = Some(value.trim().to_owned()),
                        "content-length" => length = value.trim().parse().unwrap(),
                        _ => {}
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                record.lock().unwrap().push((path.clone(), if_none_match.clone()));
                let (status, text) = match answers.iter().find(|(p, _, _)| path.ends_with(p)) {
                    Some((_, 200, _)) if path.ends_with("/device/policy") && if_none_match.is_some() => {
                        (304, String::new())
                    }
                    Some((_, status, text)) => (*status, text.clone()),
                    None => (404, "{\"code\":\"not_found\",\"message\":\"no\"}".into()),
                };
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                    text.len()
                );
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        FakeServer { url, seen }
    }
}

fn device(desk: &Desk) -> Device {
    let store = Arc::new(Store::open(desk.state.events_db()).unwrap());
    Device::open_with_token(desk.state.clone(), store, DeviceToken::new("wdev_test")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_304_never_confirms_a_cache_that_does_not_verify() {
    // The server's policy is v2, which this fake answers 304 to any If-None-Match.
    let served = serde_json::to_string(&policy(&server_key(), 2).envelope).unwrap();
    let server = FakeServer::start(vec![("/api/v1/device/policy", 200, served)]);
    let desk = Desk::new(&server.url);
    let device = device(&desk);

    // A verified cache: its ETag is sent (computed from the signed text), and 304 confirms it.
    assert_eq!(device.sync_policy().await.unwrap(), PolicySync::Unchanged { version: 2 });
    let etag = policy_etag(2, &policy(&server_key(), 2).envelope.policy);
    assert_eq!(server.seen.lock().unwrap().last().unwrap().1.as_deref(), Some(etag.as_str()));

    // Both files rewritten to monitor mode, with the server's ETag kept: nothing verifies, so
    // no ETag is sent, and the server's signed v2 replaces the rewrite.
    for name in ["policy.json", "policy.verified.json"] {
        edit_json(&desk, name, |v| {
            let text = v["envelope"]["policy"].as_str().unwrap().replace("\"enforce\"", "\"monitor\"");
            v["envelope"]["policy"] = json!(text);
        });
    }
    assert_eq!(device.sync_policy().await.unwrap(), PolicySync::Updated { version: 2 });
    assert_eq!(server.seen.lock().unwrap().last().unwrap().1, None, "no If-None-Match for an unverified cache");
    let (policy, _) = device.cached_rules().unwrap();
    let (policy, version) = policy.unwrap();
    assert_eq!((policy.mode, version), (Mode::Enforce, 2));
    assert_eq!(desk.incidents(), [POLICY_INCIDENT, POLICY_INCIDENT]);

    // Only the cache rewritten: the verified copy's ETag is sent, and confirmed.
    edit_json(&desk, "policy.json", |v| v["envelope"]["version"] = json!(3));
    assert_eq!(device.sync_policy().await.unwrap(), PolicySync::Unchanged { version: 2 });
    assert_eq!(server.seen.lock().unwrap().last().unwrap().1.as_deref(), Some(etag.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetched_list_must_verify_and_be_no_older_than_the_one_accepted() {
    let answer =
        |cached: CachedExceptions| serde_json::to_string(&json!({"requests": [], "signed": cached.signed})).unwrap();
    let cases: Vec<FetchCase> = vec![
        ("a newer list", answer(list(&server_key(), DEVICE, 6, &["granted", "new"])), Ok(vec!["granted", "new"])),
        ("the same list again", answer(list(&server_key(), DEVICE, 5, &["granted"])), Ok(vec!["granted"])),
        ("an older list replayed", answer(list(&server_key(), DEVICE, 4, &["old"])), Err("replayed")),
        ("another device's list", answer(list(&server_key(), "dev_other", 7, &["theirs"])), Err("wrong-device")),
        (
            "signed by another key",
            answer(list(&PolicySigningKey::from_secret([9; 32]), DEVICE, 7, &["mine"])),
            Err("signature"),
        ),
    ];
    for (case, text, expected) in cases {
        let server = FakeServer::start(vec![("/api/v1/device/exceptions", 200, text)]);
        let desk = Desk::new(&server.url);
        let device = device(&desk);
        let got = device.sync_exceptions().await;
        let (_, in_force) = desk.in_force();
        match expected {
            Ok(ids) => {
                let synced = got.unwrap_or_else(|e| panic!("{case}: {e}"));
                assert_eq!(synced.exceptions.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ids, "{case}");
                assert_eq!(in_force, ids, "{case}: cached");
                assert!(desk.incidents().is_empty(), "{case}");
            }
            Err(reason) => {
                let error = got.unwrap_err().to_string();
                assert!(error.contains(&format!("({reason})")), "{case}: {error}");
                assert_eq!(in_force, ["granted"], "{case}: the last verified list stays");
                assert_eq!(desk.incidents(), ["exceptions-rejected"], "{case}");
            }
        }
    }
}

/// A list signed by a key the device did not pin is taken only when the server's announced
/// rotations lead there from the pinned key, each signed by the key before it: then the new key
/// is pinned (in `enrollment.json` too). A forged announcement moves nothing and is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_pinned_only_along_announcements_the_pinned_key_signed() {
    let next = PolicySigningKey::from_secret([21; 32]);
    let mallory = PolicySigningKey::from_secret([22; 32]);
    let answer =
        serde_json::to_string(&json!({"requests": [], "signed": list(&next, DEVICE, 6, &["new"]).signed})).unwrap();
    let keys = |rotation: warden_api::KeyRotation| {
        serde_json::to_string(&json!({"current": next.public_key(), "rotations": [rotation]})).unwrap()
    };
    // The genuine announcement: the pinned key signed it.
    let genuine = keys(server_key().announce(&next, NOW));
    let server = FakeServer::start(vec![
        ("/api/v1/device/exceptions", 200, answer.clone()),
        ("/api/v1/device/signing-keys", 200, genuine),
    ]);
    let desk = Desk::new(&server.url);
    let synced = device(&desk).sync_exceptions().await.unwrap();
    assert_eq!(synced.exceptions.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["new"]);
    assert_eq!(desk.json("enrollment.json")["policy_public_key"], next.public_key());
    assert!(desk.incidents().is_empty(), "{:?}", desk.incidents());

    // A forged one: "pinned → mallory's key" signed by mallory, with mallory's list.
    let forged =
        warden_api::KeyRotation { previous_public_key: server_key().public_key(), ..mallory.announce(&next, NOW) };
    let answer =
        serde_json::to_string(&json!({"requests": [], "signed": list(&mallory, DEVICE, 6, &["theirs"]).signed}))
            .unwrap();
    let server = FakeServer::start(vec![
        ("/api/v1/device/exceptions", 200, answer),
        ("/api/v1/device/signing-keys", 200, keys(forged)),
    ]);
    let desk = Desk::new(&server.url);
    let error = device(&desk).sync_exceptions().await.unwrap_err().to_string();
    assert!(error.contains("(signature)"), "{error}");
    assert_eq!(desk.json("enrollment.json")["policy_public_key"], server_key().public_key(), "the pin stays");
    assert_eq!(desk.in_force().1, ["granted"], "the last verified list stays");
    assert_eq!(desk.incidents(), ["key-rotation-rejected", "exceptions-rejected"]);
}
