//! `warden gateway` as a real process: refuses a non-loopback address and a missing upstream; running,
//! it keeps its token private (0600), refuses requests without it, answers a request whose upstream is
//! down with a clear 502, counts what it masked in the event log, and `warden status` shows both (the
//! proxy itself is tested in crates/warden-gateway/tests).

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn warden() -> Command {
    Command::new(env!("CARGO_BIN_EXE_warden"))
}

/// Kills the gateway child when the test ends, whatever happened.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn post(address: &str, token: Option<&str>, body: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {address}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn refuses_a_non_loopback_address_and_a_missing_upstream() {
    let state = tempfile::tempdir().unwrap();
    let out = warden()
        .args(["gateway", "--listen", "0.0.0.0:0", "--upstream", "http://127.0.0.1:9/v1", "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a loopback address"), "{out:?}");
    // A policy whose assistant names no model API (the embedded one names one).
    let embedded = include_str!("../crates/warden-policy/src/default-policy.toml");
    let without: String = embedded.lines().filter(|l| !l.starts_with("api_url = ")).map(|l| format!("{l}\n")).collect();
    let policy = state.path().join("no-api-url.toml");
    std::fs::write(&policy, without).unwrap();
    let out = warden()
        .arg("--policy")
        .arg(&policy)
        .args(["gateway", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("assistant.api_url"), "{out:?}");
}

#[test]
fn runs_for_its_user_only_and_shows_in_status() {
    let state = tempfile::tempdir().unwrap();
    // An upstream port nothing listens on: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = warden()
        .args([
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &format!("http://127.0.0.1:{port}/v1"),
            "--state-dir",
        ])
        .arg(state.path())
        .env("WARDEN_GATEWAY_UPSTREAM_KEY", "upstream-key")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _running = Running(child);
    let note_path = state.path().join("gateway.json");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !note_path.exists() {
        assert!(Instant::now() < deadline, "the gateway did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let note: Value = serde_json::from_str(&std::fs::read_to_string(&note_path).unwrap()).unwrap();
    let address = note["listen"].as_str().unwrap().to_owned();

    let token_path = state.path().join("gateway-token");
    let token = std::fs::read_to_string(&token_path).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&token_path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    let body = r#"{"model":"m","messages":[{"role":"user","content":"key AKIAQX7T2LMZP4RGHK3W"}]}"#;
    let answer = post(&address, None, body);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let answer = post(&address, Some(&token), body);
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    assert!(answer.contains("did not answer"), "{answer}");
    assert!(!answer.contains("upstream-key"), "{answer}");

    let out = warden().args(["status", "--json", "--state-dir"]).arg(state.path()).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["gateway"]["running"], true, "{status}");
    assert_eq!(status["gateway"]["listen"], address.as_str());
    // `--print-env` points a client at it, with this user's token (no service answers here).
    let out = warden()
        .args(["--socket", "/nonexistent/warden.sock", "gateway", "--print-env", "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    let env = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(env.contains(&format!("export OPENAI_BASE_URL='http://{address}/v1'")), "{env}");
    assert!(env.contains(&format!("export OPENAI_API_KEY='{}'", token.trim())), "{env}");
    // The request was counted in the event log (by another thread: allow it a moment).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = warden().args(["status", "--json", "--state-dir"]).arg(state.path()).output().unwrap();
        let status: Value = serde_json::from_slice(&out.stdout).unwrap();
        let counted = &status["gateway"]["last_24h"];
        if counted["requests"] == 1 {
            assert_eq!(counted["masked"], 1, "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "the request was never counted: {status}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
