//! Every benchmark binary of the workspace (`*-bench`) answers `--help` at once and refuses an
//! unknown flag or a bad value with a usage error (exit 2, the usage on stderr, no panic) before any
//! measurement starts — one table, and a check that it names every bench the crates declare.

use std::path::{Path, PathBuf};
use std::process::Command;

/// (binary, what its usage line starts with, a flag its help lists, a flag with a bad value).
const BENCHES: &[(&str, &str, &str, [&str; 2])] = &[
    ("monitor-bench", "Usage: monitor-bench", "--fapolicyd", ["--only", "latency,everything"]),
    ("rescan-bench", "Usage: rescan-bench", "--processes", ["--processes", "many"]),
    ("sync-bench", "Usage: sync-bench", "--outbox-events", ["--devices", "-3"]),
    ("gateway-bench", "USAGE: gateway-bench", "--no-peer", ["--iterations", "lots"]),
    ("server-bench", "Usage: server-bench", "--postgres", ["--rate", "fast"]),
    ("service-bench", "Usage: service-bench", "--idle-seconds", ["--execs", "1.5"]),
    ("controls-bench", "Usage: controls-bench", "--peer-drifts", ["--changes", "all"]),
    ("net-bench", "Usage: net-bench", "--per-proc", ["--ranges", "-1"]),
    ("open-bench", "Usage: open-bench", "--launches", ["--launches", "many"]),
];

/// Where cargo put the workspace's binaries: beside this test's own folder (`…/debug/deps/..`).
fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let path = exe.parent().and_then(Path::parent).expect("target/<profile>/deps").join(name);
    assert!(path.exists(), "{} is missing: build the workspace first (`cargo build --workspace`)", path.display());
    path
}

#[test]
fn the_table_names_every_bench_the_crates_declare() {
    let root = xtask::project_root();
    let mut declared = Vec::new();
    for entry in std::fs::read_dir(root.join("crates")).unwrap() {
        let manifest = std::fs::read_to_string(entry.unwrap().path().join("Cargo.toml")).unwrap_or_default();
        for line in manifest.lines() {
            if let Some(name) = line.trim().strip_prefix("name = \"").and_then(|rest| rest.strip_suffix("-bench\"")) {
                declared.push(format!("{name}-bench"));
            }
        }
    }
    declared.sort();
    let mut listed: Vec<String> = BENCHES.iter().map(|(name, ..)| (*name).to_owned()).collect();
    listed.sort();
    assert_eq!(listed, declared);
}

#[test]
fn help_answers_and_starts_nothing() {
    for (name, usage, flag, _) in BENCHES {
        let out = Command::new(bin(name)).arg("--help").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{name}: {text}");
        assert!(text.contains(usage) && text.contains(flag), "{name}: {text}");
    }
}

#[test]
fn unknown_flags_and_bad_values_are_usage_errors() {
    for (name, usage, _, bad) in BENCHES {
        for args in [&["--bogus"][..], &["--help-me"], &bad[..]] {
            let out = Command::new(bin(name)).args(args).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{name} {args:?}: {err}");
            // An unknown flag shows the usage; a bad value names the flag and points at --help.
            assert!(err.contains(usage) || (err.contains(args[0]) && err.contains("--help")), "{name} {args:?}: {err}");
            assert!(!err.contains("panicked") && !err.contains("backtrace"), "{name} {args:?}: {err}");
            assert!(
                out.stdout.is_empty(),
                "{name} {args:?} started something: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
}
