//! `warden inventory --json --home DIR` against a fake home folder built from
//! `tests/data/inventory/home.txt`: editors' own extension records (and damaged ones), Node
//! version managers, Homebrew, AppImages, and the must-not-match cases beside each.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

const WARDEN: &str = env!("CARGO_BIN_EXE_warden");

/// An `expect` line: every given field must equal the found installation's.
#[derive(Debug)]
struct Expected {
    line: usize,
    fields: Vec<(String, String)>,
}

impl Expected {
    fn matches(&self, found: &Value, home: &Path) -> bool {
        self.fields.iter().all(|(key, want)| match key.as_str() {
            "path" => found["path"].as_str() == Some(&home.join(want).to_string_lossy()),
            key => found[key].as_str() == Some(want.as_str()),
        })
    }
}

/// The ELF header of an AppImage (type 2 magic `AI\x02` at offset 8), then some padding.
fn appimage_bytes() -> Vec<u8> {
    let mut bytes = b"\x7fELF\x02\x01\x01\x00AI\x02".to_vec();
    bytes.resize(4096, 0);
    bytes
}

/// Builds the fixture under `home`; returns the expectations and the records to be noted.
fn build(fixture: &str, home: &Path) -> (Vec<Expected>, Vec<String>) {
    let write = |path: &str, body: &[u8]| {
        let path = home.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    };
    let (mut expected, mut notes) = (Vec::new(), Vec::new());
    for (index, line) in fixture.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (directive, rest) = line.split_once(' ').unwrap_or((line, ""));
        let words: Vec<&str> = rest.split_whitespace().collect();
        match (directive, words.as_slice()) {
            ("create", [path]) => {
                let body = if path.ends_with("package.json") { "{\"version\": \"1.2.3\"}" } else { "" };
                write(path, body.as_bytes());
            }
            ("mkdir", [path]) => std::fs::create_dir_all(home.join(path)).unwrap(),
            ("write", [path, ..]) => {
                let text = rest[path.len()..].trim_start();
                let text = text.replace("\\n", "\n").replace("$HOME", &home.to_string_lossy());
                write(path, text.as_bytes());
            }
            ("repeat", [path, count, text]) => write(path, text.repeat(count.parse().unwrap()).as_bytes()),
            ("appimage", [path]) => {
                write(path, &appimage_bytes());
                std::fs::set_permissions(home.join(path), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
            }
            ("fifo", [path]) => {
                let path = home.join(path);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                assert!(Command::new("mkfifo").arg(&path).status().unwrap().success(), "mkfifo {}", path.display());
            }
            ("expect", [tool, kind, more @ ..]) => {
                let mut fields = vec![("tool".to_owned(), tool.to_string()), ("kind".to_owned(), kind.to_string())];
                for field in more {
                    let (key, value) = field.split_once('=').unwrap_or_else(|| panic!("line {}: {field}", index + 1));
                    fields.push((key.to_owned(), value.to_owned()));
                }
                expected.push(Expected { line: index + 1, fields });
            }
            ("note", [path]) => notes.push(path.to_string()),
            _ => panic!("bad fixture line {}: {line}", index + 1),
        }
    }
    (expected, notes)
}

#[test]
fn inventory_reads_the_tools_own_records_in_a_fixture_home() {
    let home = tempfile::tempdir().unwrap();
    let fixture =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/inventory/home.txt")).unwrap();
    let (mut expected, notes) = build(&fixture, home.path());

    let output = Command::new(WARDEN).args(["inventory", "--json", "--home"]).arg(home.path()).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let found: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();

    // Each expectation takes one installation; the most specific expectations choose first.
    expected.sort_by_key(|e| std::cmp::Reverse(e.fields.len()));
    let mut taken = vec![false; found.len()];
    for expectation in &expected {
        let index = (0..found.len()).find(|&i| !taken[i] && expectation.matches(&found[i], home.path()));
        let index = index.unwrap_or_else(|| {
            panic!("line {}: nothing found for {:?}\nfound: {found:#?}", expectation.line, expectation.fields)
        });
        taken[index] = true;
    }
    let unexpected: Vec<&Value> = found.iter().zip(&taken).filter(|(_, t)| !**t).map(|(f, _)| f).collect();
    assert!(unexpected.is_empty(), "reported but not expected: {unexpected:#?}");

    // Every damaged record is named on stderr, and nothing else is.
    let stderr = String::from_utf8_lossy(&output.stderr);
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with("warning: ")).collect();
    for note in &notes {
        let prefix = format!("warning: {}: ", home.path().join(note).display());
        assert!(warnings.iter().any(|w| w.starts_with(&prefix)), "no warning about {note}:\n{stderr}");
    }
    assert_eq!(warnings.len(), notes.len(), "{stderr}");

    // The table: one line per installation.
    let text = Command::new(WARDEN).args(["inventory", "--home"]).arg(home.path()).output().unwrap();
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    assert_eq!(text.lines().count(), expected.len(), "{text}");
    assert!(text.contains("homebrew-package") && text.contains("Caskroom/codex/0.141.0"), "{text}");
}
