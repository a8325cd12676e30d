//! `rescan-bench`'s command line: `--help` answers at once and an unknown flag or a bad value is a
//! usage error (exit 2, the usage on stderr, no panic), before any measurement starts.

use std::process::Command;

const BENCH: &str = env!("CARGO_BIN_EXE_rescan-bench");

#[test]
fn help_answers_and_starts_nothing() {
    let out = Command::new(BENCH).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("Usage: rescan-bench") && text.contains("--processes"), "{text}");
}

#[test]
fn unknown_flags_and_bad_values_are_usage_errors() {
    for args in [&["--bogus"][..], &["--help-me"], &["--processes", "many"]] {
        let out = Command::new(BENCH).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        // An unknown flag shows the usage; a bad value names the flag and points at --help.
        assert!(
            err.contains("Usage: rescan-bench") || (err.contains(args[0]) && err.contains("--help")),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked") && !err.contains("backtrace"), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?} started something: {}", String::from_utf8_lossy(&out.stdout));
    }
}
