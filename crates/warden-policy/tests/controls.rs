//! The vendor files rendered from policies, against golden files next to this test
//! (`tests/controls/<policy>/<system path>`; `applies.txt` lists what each file applies to which
//! tool). `WARDEN_BLESS=1 cargo test -p warden-policy --test controls` rewrites them after a
//! deliberate change; review the diff. Each file is also checked against its vendor's documented
//! shape (keys and value types), since the vendors' own readers do not run here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use warden_policy::{Exception, MANAGED_PATHS, ManagedFile, Ownership, Policy, Vendor, render_controls};

/// The time the golden files are rendered at (the exceptions fixture is in force then).
const NOW: i64 = 1_800_000_000;

/// `tests/data/guardrail-exceptions.json`: exceptions with guardrails, one expired.
fn guardrail_exceptions() -> Vec<Exception> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/guardrail-exceptions.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn policy(name: &str) -> Policy {
    if name == "embedded" {
        return Policy::embedded();
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/policies").join(format!("{name}.toml"));
    Policy::parse(name, &std::fs::read_to_string(path).unwrap()).unwrap()
}

fn golden_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/controls").join(name)
}

fn files_under(dir: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                found.insert(relative, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    found
}

fn rendered(files: &[ManagedFile]) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> =
        files.iter().map(|f| (f.path.trim_start_matches('/').to_owned(), f.content.clone())).collect();
    let mut applies = String::new();
    for file in files {
        for applied in &file.applies {
            applies.push_str(&format!("{}\t{}\t{}\n", file.path, applied.tool, applied.control));
        }
    }
    out.insert("applies.txt".into(), applies);
    out
}

#[test]
fn rendered_files_match_the_golden_files() {
    let bless = std::env::var_os("WARDEN_BLESS").is_some();
    let mut failures = Vec::new();
    let cases = [
        ("embedded", "embedded", Vec::new()),
        ("controls", "controls", Vec::new()),
        ("catalog-modes", "catalog-modes", Vec::new()),
        ("strict", "strict", Vec::new()),
        // Guardrails of the exceptions in force go into the machine-wide files, and only theirs.
        ("guardrails", "guardrails", guardrail_exceptions()),
        ("guardrails-over-controls", "controls", guardrail_exceptions()),
    ];
    for (name, policy_name, exceptions) in cases {
        let policy = policy(policy_name);
        let files = render_controls(&policy, &policy.catalog(), &exceptions, NOW);
        let want = rendered(&files);
        let dir = golden_dir(name);
        if bless {
            let _ = std::fs::remove_dir_all(&dir);
            for (relative, content) in &want {
                let path = dir.join(relative);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, content).unwrap();
            }
            continue;
        }
        let have = files_under(&dir);
        if have != want {
            let names = |m: &BTreeMap<String, String>| m.keys().cloned().collect::<Vec<_>>();
            for (path, content) in &want {
                if have.get(path) != Some(content) {
                    failures.push(format!("{name}/{path} differs:\n{content}"));
                }
            }
            failures.push(format!("{name}: golden {:?}, rendered {:?}", names(&have), names(&want)));
        }
    }
    assert!(failures.is_empty(), "(WARDEN_BLESS=1 rewrites them)\n{}", failures.join("\n"));
}

#[test]
fn every_file_has_its_vendors_documented_shape() {
    for (name, exceptions) in
        [("embedded", Vec::new()), ("controls", Vec::new()), ("guardrails", guardrail_exceptions())]
    {
        let policy = policy(name);
        for file in render_controls(&policy, &policy.catalog(), &exceptions, NOW) {
            assert!(MANAGED_PATHS.iter().any(|(v, p, o)| *v == file.vendor && *p == file.path && *o == file.ownership));
            assert!(file.documentation.starts_with("https://"), "{}", file.path);
            if file.path.ends_with(".toml") {
                let table: toml::Table = toml::from_str(&file.content).unwrap();
                for (key, value) in &table {
                    match key.as_str() {
                        "allowed_sandbox_modes" | "allowed_approval_policies" => {
                            let modes = value.as_array().unwrap();
                            assert!(modes.iter().all(|m| m.as_str().is_some_and(|m| m != "danger-full-access")));
                        }
                        "mcp_servers" => {
                            for (id, server) in value.as_table().unwrap() {
                                let identity = server["identity"].as_table().unwrap();
                                assert_eq!(identity.len(), 1, "{id}: one of command or url");
                                assert!(identity.contains_key("command") || identity.contains_key("url"));
                            }
                        }
                        other => panic!("{}: key {other} is not a requirements.toml key", file.path),
                    }
                }
                continue;
            }
            let json: serde_json::Value = serde_json::from_str(&file.content).unwrap();
            let object = json.as_object().unwrap();
            match file.vendor {
                Vendor::Chromium | Vendor::GoogleChrome | Vendor::MicrosoftEdge => {
                    assert_eq!(file.ownership, Ownership::DropIn, "a file of our own beside the admin's");
                    for (key, value) in object {
                        assert!(["URLBlocklist", "URLAllowlist", "ExtensionInstallBlocklist"].contains(&key.as_str()));
                        let list = value.as_array().unwrap();
                        assert!(list.iter().all(|v| v.is_string()), "{key}: a list of strings");
                        if key == "ExtensionInstallBlocklist" {
                            assert!(list.iter().all(|v| v.as_str().unwrap().len() == 32));
                        }
                    }
                }
                Vendor::VsCode => {
                    let allowed =
                        object["AllowedExtensions"].as_str().expect("a JSON string, as the registry holds it");
                    let allowed: serde_json::Map<String, serde_json::Value> = serde_json::from_str(allowed).unwrap();
                    assert_eq!(allowed["*"], true, "extensions not listed stay allowed");
                    assert!(allowed.iter().filter(|(k, _)| *k != "*").all(|(k, v)| v == false && k.contains('.')));
                }
                Vendor::ClaudeCode if file.path.ends_with("managed-mcp.json") => {
                    for (_, server) in object["mcpServers"].as_object().unwrap() {
                        let kind = server["type"].as_str().unwrap();
                        assert!(["stdio", "http", "sse"].contains(&kind));
                        assert_eq!(kind == "stdio", server.get("command").is_some());
                    }
                }
                Vendor::ClaudeCode => {
                    assert!(file.path.contains("/managed-settings.d/"), "a drop-in, never the admin's file");
                    if let Some(mode) = json.pointer("/permissions/disableBypassPermissionsMode") {
                        assert_eq!(mode, "disable");
                    }
                    for list in ["allowedMcpServers", "deniedMcpServers"] {
                        for entry in object.get(list).and_then(|l| l.as_array()).into_iter().flatten() {
                            let entry = entry.as_object().unwrap();
                            assert_eq!(entry.len(), 1, "exactly one of serverName, serverCommand, serverUrl");
                            let key = entry.keys().next().unwrap();
                            assert!(["serverName", "serverCommand", "serverUrl"].contains(&key.as_str()));
                        }
                    }
                    for (key, value) in object.get("env").and_then(|e| e.as_object()).into_iter().flatten() {
                        let value = value.as_str().expect("env values are strings");
                        if key == "ANTHROPIC_BASE_URL" {
                            assert!(policy.is_sanctioned_url(value), "pinned to a sanctioned destination: {value}");
                        }
                    }
                    for rule in json.pointer("/permissions/deny").and_then(|d| d.as_array()).into_iter().flatten() {
                        let rule = rule.as_str().unwrap();
                        assert!(rule.starts_with("Read(") || rule.starts_with("Edit("), "{rule}");
                    }
                }
                Vendor::GeminiCli | Vendor::QwenCode => {
                    for key in object.keys() {
                        assert!(["security", "mcp", "modelProviders", "model"].contains(&key.as_str()), "{key}");
                    }
                    if let Some(auth) = json.pointer("/security/auth/selectedType") {
                        assert_eq!(auth, "openai");
                        let provider = &json["modelProviders"]["openai"][0];
                        assert_eq!(provider["id"], json["model"]["name"], "the pinned model is the provider's");
                        assert!(policy.is_sanctioned_url(provider["baseUrl"].as_str().unwrap()));
                    }
                }
                Vendor::Codex => unreachable!("TOML"),
            }
        }
    }
}

#[test]
fn the_sanctioned_client_goes_through_the_gateway_when_there_is_one_and_controls_show_per_tool() {
    let policy = policy("controls");
    let files = render_controls(&policy, &policy.catalog(), &[], NOW);
    let qwen = files.iter().find(|f| f.vendor == Vendor::QwenCode).unwrap();
    assert!(qwen.content.contains("http://127.0.0.1:8788/v1"), "{}", qwen.content);
    let embedded = Policy::embedded();
    let direct = render_controls(&embedded, &embedded.catalog(), &[], NOW);
    let qwen = direct.iter().find(|f| f.vendor == Vendor::QwenCode).unwrap();
    assert!(qwen.content.contains("https://assistant.internal.example/v1"), "{}", qwen.content);
    let claude: Vec<&str> =
        files.iter().flat_map(|f| &f.applies).filter(|a| a.tool == "claude-code").map(|a| a.control.as_str()).collect();
    assert!(claude.contains(&"bypass mode disabled"), "{claude:?}");
    assert!(claude.iter().any(|c| c.starts_with("MCP limited to 4 MCP servers")), "{claude:?}");
    let mut off = policy.clone();
    off.controls.get_or_insert_with(Default::default).off = true;
    assert!(
        render_controls(&off, &off.catalog(), &guardrail_exceptions(), NOW).is_empty(),
        "controls off: nothing written"
    );
}
