//! No content fingerprint of the catalog matches a file the system or the Rust toolchain
//! ships: every native executable and library under `/usr/bin`, `/usr/lib` and the
//! toolchain is read through the same matcher the monitor and the gate use.

use std::path::{Path, PathBuf};
use warden_monitor::identity::ContentIdentity;
use warden_policy::Catalog;

fn files_under(root: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            files_under(&entry.path(), out);
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
}

#[test]
fn no_fingerprint_matches_a_system_or_toolchain_file() {
    let catalog = Catalog::embedded();
    let mut roots = vec![PathBuf::from("/usr/bin"), PathBuf::from("/usr/lib")];
    let sysroot = std::process::Command::new("rustc").args(["--print", "sysroot"]).output().unwrap();
    roots.push(PathBuf::from(String::from_utf8(sysroot.stdout).unwrap().trim()));
    let mut files = Vec::new();
    for root in &roots {
        files_under(root, &mut files);
    }
    let mut identity = ContentIdentity::default();
    let matched: Vec<String> = files
        .iter()
        .filter_map(|file| {
            let tool = identity.identify(file, catalog.content(), 1)?.tool?;
            Some(format!("{} looks like {tool}", file.display()))
        })
        .collect();
    assert!(identity.files_read > 1000, "only {} native files read under {roots:?}", identity.files_read);
    assert!(matched.is_empty(), "fingerprints match system files:\n{}", matched.join("\n"));
}
