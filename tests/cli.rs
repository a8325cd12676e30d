//! The `warden` command line at its boundary: real binary, real files, real processes.

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn warden() -> Command {
    Command::new(env!("CARGO_BIN_EXE_warden"))
}

fn data(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(path)
}

fn run_with_stdin(mut command: Command, input: &str) -> Output {
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn corpus() -> Vec<Value> {
    std::fs::read_to_string(data("launches.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn batch_check_answers_every_corpus_launch_in_order() {
    // Launches judged under their own exceptions are checked by the policy crate's corpus test.
    let cases: Vec<Value> = corpus().into_iter().filter(|c| c.get("exceptions").is_none()).collect();
    let batch: String = cases.iter().map(|c| format!("{}\n", c["facts"])).collect();
    let mut command = warden();
    command.args(["check", "--json", "--batch", "-"]);
    let output = run_with_stdin(command, &batch);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let verdicts: Vec<Value> =
        String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(verdicts.len(), cases.len());
    for (case, verdict) in cases.iter().zip(&verdicts) {
        assert_eq!(verdict["tool"], case["expect"]["tool"], "{}", case["name"]);
        assert_eq!(verdict["action"], case["expect"]["action"], "{}", case["name"]);
        assert!(verdict["reason"].as_str().is_some_and(|r| !r.is_empty()), "{}", case["name"]);
    }
}

#[test]
fn a_bad_batch_line_names_its_line_keeps_the_others_and_fails() {
    let input = concat!(
        r#"{"exe":"/usr/bin/git","argv":["git","status"]}"#,
        "\n",
        r#"{"exe": 5}"#,
        "\n",
        r#"{"exe":"/home/dev/.local/share/claude/versions/2.1.37","argv":["claude"]}"#,
        "\n"
    );
    let mut command = warden();
    command.args(["check", "--json", "--batch", "-"]);
    let output = run_with_stdin(command, input);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["action"], "allow");
    assert_eq!(lines[1]["line"], 2);
    assert_eq!(lines[2]["tool"], "claude-code");
    assert!(String::from_utf8_lossy(&output.stderr).contains("-:2:"), "stderr names the line");
}

#[test]
fn check_describes_a_launch_by_its_parts() {
    let output = warden()
        .args(["check", "--json", "--exe", "/usr/bin/node", "--cwd", "/home/dev/src", "--user", "dev"])
        .args(["--env", "TERM_PROGRAM=vscode", "--", "node", "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let verdict: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(verdict["tool"], "claude-code");
    assert_eq!(verdict["action"], "block");
    assert_eq!(verdict["assistant"]["name"], "Internal Assistant");

    let readable = warden().args(["check", "--exe", "/usr/bin/git", "--", "git", "log"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&readable.stdout).trim(), "allow  -  not a recognised AI coding tool");
}

/// Issue 10 row 7: an exception granted to the device's account, scoped to a canonical folder,
/// applies to the local user bound to that account below the folder, and to nobody else.
#[test]
fn check_applies_an_accounts_scoped_exception_to_its_bound_user_only() {
    let dir = tempfile::tempdir().unwrap();
    let exceptions = dir.path().join("exceptions.json");
    let exception = serde_json::json!([{"id": "ex-9", "user": "dev@corp.example", "tool": "claude-code",
        "scope": "/home/dev/src/vendor-sdk", "starts_at": 0, "expires_at": 4_000_000_000_i64}]);
    std::fs::write(&exceptions, exception.to_string()).unwrap();
    let cases: [(&[&str], &str, Option<&str>); 4] = [
        (
            &["--user", "dev", "--account", "dev@corp.example", "--cwd", "/home/dev/src/vendor-sdk/lib"],
            "allow",
            Some("ex-9"),
        ),
        (&["--user", "dev", "--account", "dev@corp.example", "--cwd", "/home/dev/src/vendor-sdk-old"], "block", None),
        (&["--user", "eve", "--cwd", "/home/dev/src/vendor-sdk"], "block", None),
        (&["--user", "dev", "--cwd", "/home/dev/src/vendor-sdk"], "block", None),
    ];
    for (who, action, exception) in cases {
        let output = warden()
            .args(["check", "--json", "--exe", "/home/dev/.local/share/claude/versions/2.1.37", "--exceptions"])
            .arg(&exceptions)
            .args(who)
            .args(["--", "claude"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let verdict: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!((verdict["action"].as_str(), verdict["exception"].as_str()), (Some(action), exception), "{who:?}");
    }
}

#[test]
fn check_by_pid_reads_a_live_process() {
    // A real process whose executable sits where Claude Code's native installer puts it.
    let home = tempfile::tempdir().unwrap();
    let versions = home.path().join(".local/share/claude/versions");
    std::fs::create_dir_all(&versions).unwrap();
    let fake = versions.join("2.1.37");
    std::fs::copy("/bin/sleep", &fake).unwrap();
    let mut child = Command::new(&fake).arg("30").spawn().unwrap();
    let output = warden().args(["check", "--json", "--pid", &child.id().to_string()]).output().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let verdict: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(verdict["tool"], "claude-code");
    assert_eq!(verdict["action"], "block");

    let missing = warden().args(["check", "--json", "--pid", "4000000000"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no process with pid"));
}

#[test]
fn check_follows_the_npm_bin_symlink_to_the_package_script() {
    // npm installs `bin/claude` as a symlink into the package; node is started with the link.
    let prefix = tempfile::tempdir().unwrap();
    let package = prefix.path().join("lib/node_modules/@anthropic-ai/claude-code");
    std::fs::create_dir_all(&package).unwrap();
    std::fs::write(package.join("cli.js"), "console.log('hi')\n").unwrap();
    std::fs::create_dir_all(prefix.path().join("bin")).unwrap();
    let link = prefix.path().join("bin/claude");
    std::os::unix::fs::symlink(package.join("cli.js"), &link).unwrap();
    let output =
        warden().args(["check", "--json", "--exe", "/usr/bin/node", "--", "node"]).arg(&link).output().unwrap();
    let verdict: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(verdict["tool"], "claude-code", "{verdict}");
}

#[test]
fn malformed_policies_are_refused_with_file_line_and_column() {
    let file = data("bad-policies/unknown-tool.toml");
    for args in
        [vec!["policy", "validate", file.to_str().unwrap()], vec!["--policy", file.to_str().unwrap(), "catalog"]]
    {
        let output = warden().args(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("unknown-tool.toml:5:8: unknown tool id \"claud-code\""), "{stderr}");
    }
    let good = warden().args(["policy", "validate"]).arg(data("policies/strict.toml")).output().unwrap();
    assert!(good.status.success());
    assert!(String::from_utf8_lossy(&good.stdout).contains("valid policy \"Strict\""));
}

#[test]
fn catalog_lists_every_tool_with_the_assistant_first() {
    let output = warden().args(["catalog", "--json"]).output().unwrap();
    assert!(output.status.success());
    let document: Value = serde_json::from_slice(&output.stdout).unwrap();
    let tools = document["tools"].as_array().unwrap();
    assert!(tools.len() >= 24);
    assert_eq!(tools[0]["id"], "qwen-code");
    assert_eq!(tools[0]["sanctioned"], true);
    let claude = tools.iter().find(|t| t["id"] == "claude-code").unwrap();
    assert_eq!(claude["action"], "block");

    // A policy file changes the statuses.
    let strict =
        warden().arg("--policy").arg(data("policies/strict.toml")).args(["catalog", "--json"]).output().unwrap();
    let document: Value = serde_json::from_slice(&strict.stdout).unwrap();
    let gemini = document["tools"].as_array().unwrap().iter().find(|t| t["id"] == "gemini-cli").unwrap();
    assert_eq!(gemini["action"], "block");
}

#[test]
fn policy_show_round_trips_through_validate() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, name) in [("--json", "policy.json"), ("", "policy.toml")] {
        let mut command = warden();
        command.args(["policy", "show"]);
        if !flag.is_empty() {
            command.arg(flag);
        }
        let shown = command.output().unwrap();
        assert!(shown.status.success());
        let path = dir.path().join(name);
        std::fs::write(&path, &shown.stdout).unwrap();
        let validated = warden().args(["policy", "validate"]).arg(&path).output().unwrap();
        assert!(validated.status.success(), "{name}: {}", String::from_utf8_lossy(&validated.stderr));
    }
}

/// Runs `warden check --json --batch -` over raw bytes (the input need not be UTF-8).
fn batch_bytes(input: &[u8], extra: &[&str]) -> Output {
    let mut command = warden();
    command.args(["check", "--json"]).args(extra).args(["--batch", "-"]);
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn every_unreadable_batch_line_gets_its_error_and_the_batch_goes_on() {
    // The shared case: line 2 holds a raw byte that is not UTF-8, line 4 a lone surrogate escape.
    let case = std::fs::read(data("batch/non-utf8-line.jsonl")).unwrap();
    let mut input = case.clone();
    // Neighbours of the same kind: wrong types, not JSON, a line over the length limit, a CRLF line.
    input.extend_from_slice(b"{\"exe\":\"/usr/bin/git\",\"argv\":\"git status\"}\n");
    input.extend_from_slice(b"exe=/usr/bin/git\n");
    input.extend_from_slice(format!("{{\"exe\":\"/usr/bin/{}\"}}\n", "x".repeat(2 * 1024 * 1024)).as_bytes());
    input.extend_from_slice(b"{\"exe\":\"/usr/bin/git\",\"argv\":[\"git\"]}\r\n");
    input.extend_from_slice(b"\xff\xfe{\"exe\":\"/usr/bin/git\"}"); // last line, no newline
    let output = batch_bytes(&input, &[]);
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<Value> =
        String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let errors: Vec<u64> = lines.iter().filter_map(|l| l["line"].as_u64()).collect();
    assert_eq!(errors, [2, 4, 6, 7, 8, 10], "{lines:#?}");
    assert_eq!(lines.len(), 10, "one output line per input line");
    for (index, line) in lines.iter().enumerate() {
        if line.get("error").is_some() {
            assert_eq!(line["line"], index as u64 + 1);
            assert!(line["error"].as_str().unwrap().starts_with(&format!("-:{}:", index + 1)), "{line}");
        } else {
            assert!(line["action"].is_string(), "line {}: {line}", index + 1);
        }
    }
    assert_eq!(lines[0]["tool"], "claude-code");
    assert_eq!(lines[4]["tool"], "gemini-cli");
    assert_eq!(lines[8]["action"], "allow");
    assert!(lines[1]["error"].as_str().unwrap().contains("not UTF-8"));
    assert!(lines[3]["error"].as_str().unwrap().contains("surrogate"));
    assert!(lines[7]["error"].as_str().unwrap().contains("longer than"));
}

#[test]
fn a_risky_mode_beats_the_exception_for_every_bypass_spelling() {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let dir = tempfile::tempdir().unwrap();
    let exceptions = dir.path().join("exceptions.json");
    let exception = serde_json::json!([{ "id": "exr_case09", "user": "dev", "tool": "claude-code",
        "scope": "/home/dev/src/vendor-sdk", "starts_at": now - 60, "expires_at": now + 86400 }]);
    std::fs::write(&exceptions, exception.to_string()).unwrap();
    let input = std::fs::read(data("batch/bypass-under-exception.jsonl")).unwrap();
    let output = batch_bytes(&input, &["--exceptions", exceptions.to_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let verdicts: Vec<Value> =
        String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(verdicts.len(), 6);
    for (index, verdict) in verdicts.iter().enumerate() {
        if index == 3 {
            assert_eq!(
                (&verdict["action"], &verdict["exception"]),
                (&"allow".into(), &"exr_case09".into()),
                "{verdict}"
            );
        } else {
            assert_eq!(verdict["action"], "block", "line {}: {verdict}", index + 1);
            assert_eq!(verdict["rule"]["kind"], "risky-flag", "line {}: {verdict}", index + 1);
        }
    }
}

#[test]
fn check_reads_a_settings_file_named_on_the_command_line() {
    let project = tempfile::tempdir().unwrap();
    let cwd = project.path().to_str().unwrap();
    std::fs::write(project.path().join("bypass.json"), r#"{"permissions":{"defaultMode":"bypassPermissions"}}"#)
        .unwrap();
    std::fs::write(project.path().join("team.json"), r#"{"permissions":{"defaultMode":"acceptEdits"}}"#).unwrap();
    std::fs::write(project.path().join("huge.json"), vec![b' '; 70 * 1024]).unwrap();
    // A FIFO nobody writes to: reading it must neither block nor count as harmless.
    let fifo = project.path().join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let exceptions = project.path().join("exceptions.json");
    let exception = serde_json::json!([{ "id": "ex", "user": "dev", "tool": "claude-code", "starts_at": now - 60, "expires_at": now + 600 }]);
    std::fs::write(&exceptions, exception.to_string()).unwrap();
    let mut verdicts = Vec::new();
    for settings in ["bypass.json", "team.json", "huge.json", "fifo", "missing.json"] {
        let output = warden()
            .args(["check", "--json", "--user", "dev", "--cwd", cwd, "--exceptions", exceptions.to_str().unwrap()])
            .args(["--exe", "/home/dev/.local/share/claude/versions/2.1.37", "--", "claude", "--settings", settings])
            .output()
            .unwrap();
        assert!(output.status.success(), "{settings}: {}", String::from_utf8_lossy(&output.stderr));
        let verdict: Value = serde_json::from_slice(&output.stdout).unwrap();
        verdicts.push((settings, verdict["action"].as_str().unwrap().to_owned(), verdict["rule"]["kind"].clone()));
    }
    let actions: Vec<(&str, &str)> = verdicts.iter().map(|(s, a, _)| (*s, a.as_str())).collect();
    assert_eq!(
        actions,
        [
            ("bypass.json", "block"),
            ("team.json", "allow"),
            ("huge.json", "block"),
            ("fifo", "block"),
            ("missing.json", "block")
        ]
    );
}

#[test]
fn every_risky_spelling_blocks_and_an_explicit_off_does_not() {
    let input = std::fs::read(data("batch/risky-spellings.jsonl")).unwrap();
    let output = batch_bytes(&input, &[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let verdicts: Vec<Value> =
        String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let actions: Vec<&str> = verdicts.iter().map(|v| v["action"].as_str().unwrap()).collect();
    // Line 7 is Gemini CLI with `--yolo=false`: its ordinary action (warn), not the risky block.
    assert_eq!(actions, ["block", "block", "block", "block", "block", "block", "warn", "block"]);
    assert_eq!(verdicts[6]["rule"]["kind"], "default");
    assert!(verdicts.iter().enumerate().all(|(i, v)| i == 6 || v["rule"]["kind"] == "risky-flag"));
}

/// The real tools `cargo xtask setup` fetched from the npm registry: (tool, binary).
fn real_tools() -> Vec<(&'static str, PathBuf)> {
    let cache = Path::new(&std::env::var("HOME").unwrap()).join(".cache/warden-tools/real");
    let wanted = [
        ("claude-code", "claude-2.1.300/node_modules/@anthropic-ai/claude-code-linux-x64/claude"),
        ("claude-code", "claude-2.1.332/node_modules/@anthropic-ai/claude-code-linux-x64/claude"),
        ("codex", "codex-0.169.0-linux-x64/node_modules/@openai/codex/vendor/x86_64-unknown-linux-musl/bin/codex"),
        ("codex", "codex-0.171.0-linux-x64/node_modules/@openai/codex/vendor/x86_64-unknown-linux-musl/bin/codex"),
    ];
    wanted
        .into_iter()
        .map(|(tool, relative)| {
            let path = cache.join(relative);
            assert!(
                path.is_file(),
                "{} is missing: run `cargo xtask setup` (it fetches the real tools)",
                path.display()
            );
            (tool, path)
        })
        .collect()
}

#[test]
fn real_tool_binaries_are_known_by_content_under_any_name_and_through_the_loader() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (tool, binary)) in real_tools().into_iter().enumerate() {
        // A copy under a name and in a folder that say nothing, and a hard link to it.
        let copy = dir.path().join(format!("notes-{i}"));
        std::fs::copy(&binary, &copy).unwrap();
        let link = dir.path().join(format!("scratch-{i}"));
        std::fs::hard_link(&copy, &link).unwrap();
        let expected_action = if tool == "claude-code" { "block" } else { "warn" };
        for (how, exe, argv) in [
            ("copy", copy.to_str().unwrap(), vec!["notes", "--version"]),
            ("hard link", link.to_str().unwrap(), vec!["scratch"]),
            ("loader", "/lib64/ld-linux-x86-64.so.2", vec!["/lib64/ld-linux-x86-64.so.2", copy.to_str().unwrap()]),
        ] {
            let out = warden().args(["check", "--json", "--exe", exe, "--"]).args(&argv).output().unwrap();
            assert!(out.status.success(), "{how}: {}", String::from_utf8_lossy(&out.stderr));
            let verdict: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(verdict["tool"], tool, "{how} of {}: {verdict:#}", binary.display());
            assert_eq!(verdict["action"], expected_action, "{how} of {}", binary.display());
            assert!(verdict["evidence"].as_str().unwrap().contains("carries"), "{how}: {verdict:#}");
        }
    }
    // Warden embeds its catalog, markers included: its own binary must never look like a tool.
    let own = env!("CARGO_BIN_EXE_warden");
    let out = warden().args(["check", "--json", "--exe", own, "--", "warden", "watch"]).output().unwrap();
    let verdict: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(verdict["tool"], Value::Null, "warden itself: {verdict:#}");
}

/// Admin rules by hash: `check` reads the program file's SHA-256 (as `sha256sum` prints it) and
/// its build-id in one pass; a block rule catches the file at any name, an allow rule lets a
/// file at a tool's install path through (a false positive), and a Python script is the
/// distribution whose RECORD lists it.
#[test]
fn check_applies_admin_rules_by_hash_and_reads_python_records() {
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("bin/notes");
    let at_install_path = dir.path().join(".local/share/claude/versions/9.9.9");
    for (from, to) in [("/bin/true", &notes), ("/bin/false", &at_install_path)] {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    }
    let sha = |path: &Path| {
        let out = Command::new("sha256sum").arg(path).output().unwrap();
        String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_owned()
    };
    let policy = dir.path().join("by-hash.toml");
    std::fs::write(
        &policy,
        format!(
            "name = \"by hash\"\ndefault_action = \"warn\"\n[tools.claude-code]\naction = \"block\"\n\
             [[binaries]]\nsha256 = \"{}\"\naction = \"block\"\ntool = \"claude-code\"\n\
             [[binaries]]\nsha256 = \"{}\"\naction = \"allow\"\n",
            sha(&notes),
            sha(&at_install_path)
        ),
    )
    .unwrap();
    let check = |exe: &Path| -> Value {
        let output = warden()
            .arg("--policy")
            .arg(&policy)
            .args(["check", "--json", "--exe"])
            .arg(exe)
            .args(["--", "notes"])
            .output()
            .unwrap();
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {output:?}"))
    };
    let blocked = check(&notes);
    assert_eq!(blocked["action"], "block", "{blocked:#}");
    assert_eq!(blocked["rule"]["kind"], "binary", "{blocked:#}");
    assert_eq!(blocked["rule"]["sha256"], sha(&notes));
    assert_eq!(blocked["tool"], "claude-code");
    let allowed = check(&at_install_path);
    assert_eq!(allowed["action"], "allow", "{allowed:#}");
    assert_eq!(allowed["tool"], Value::Null, "the false positive is no AI tool: {allowed:#}");
    // Without the rules the install path is Claude Code.
    let output =
        warden().args(["check", "--json", "--exe"]).arg(&at_install_path).args(["--", "claude"]).output().unwrap();
    let verdict: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(verdict["tool"], "claude-code");

    // A renamed aider entry point in a copied virtualenv: its distribution's RECORD names it.
    let site = dir.path().join("env/lib/python3.11/site-packages");
    std::fs::create_dir_all(site.join("aider_chat-0.86.1.dist-info")).unwrap();
    std::fs::write(site.join("aider_chat-0.86.1.dist-info/RECORD"), "../../../bin/helper,sha256=x,1\n").unwrap();
    let helper = dir.path().join("env/bin/helper");
    std::fs::create_dir_all(helper.parent().unwrap()).unwrap();
    std::fs::write(&helper, "#!/usr/bin/python3\n").unwrap();
    let output = warden()
        .args(["check", "--json", "--exe", "/usr/bin/python3.11", "--", "python3"])
        .arg(&helper)
        .output()
        .unwrap();
    let verdict: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(verdict["tool"], "aider", "{verdict:#}");
}
