//! Homebrew installs (Linux and macOS), read from Homebrew's own records.
//!
//! Under a Homebrew prefix (`/home/linuxbrew/.linuxbrew`, `~/.linuxbrew`, `/opt/homebrew`,
//! `/usr/local`):
//! - a formula is installed when `Cellar/<name>/<version>/` is a keg with something in it
//!   (brew writes `INSTALL_RECEIPT.json` there);
//! - a cask is installed when `Caskroom/<token>/.metadata/<version>/<timestamp>/Casks/<token>.{json,rb}`
//!   exists (Homebrew `Cask::Metadata`, `Cask#installed_caskfile`); its files are in
//!   `Caskroom/<token>/<version>/`. A version folder with files but no metadata (copied in by
//!   hand) still counts: what is on disk can run. An empty `Caskroom/<token>` does not.

use super::glob_children;
use std::path::{Path, PathBuf};

/// One installed formula or cask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Keg {
    /// `cask` or `formula`.
    pub kind: &'static str,
    pub name: String,
    pub version: Option<String>,
    pub path: PathBuf,
}

fn name_of(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn has_entries(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}

/// The formulae named `formulae` and the casks named `casks` installed under `prefix`.
pub(super) fn installed(prefix: &Path, formulae: &[&str], casks: &[&str]) -> Vec<Keg> {
    let mut found = Vec::new();
    for name in formulae {
        for keg in glob_children(&prefix.join("Cellar").join(name), "") {
            if keg.is_dir() && !name_of(&keg).starts_with('.') && has_entries(&keg) {
                found.push(Keg { kind: "formula", name: name.to_string(), version: Some(name_of(&keg)), path: keg });
            }
        }
    }
    for token in casks {
        let room = prefix.join("Caskroom").join(token);
        if let Some(version) = recorded_cask_version(&room, token) {
            let files = room.join(&version);
            let path = if files.is_dir() { files } else { room.clone() };
            found.push(Keg { kind: "cask", name: token.to_string(), version: Some(version), path });
            continue;
        }
        let unrecorded = glob_children(&room, "")
            .into_iter()
            .filter(|v| v.is_dir() && !name_of(v).starts_with('.') && has_entries(v))
            .max();
        if let Some(files) = unrecorded {
            found.push(Keg { kind: "cask", name: token.to_string(), version: Some(name_of(&files)), path: files });
        }
    }
    found
}

/// The version of the newest installation record of cask `token` in `room`.
fn recorded_cask_version(room: &Path, token: &str) -> Option<String> {
    let mut newest: Option<(String, String)> = None;
    for version in glob_children(&room.join(".metadata"), "") {
        for stamp in glob_children(&version, "") {
            let casks = stamp.join("Casks");
            let recorded = ["json", "rb"].iter().any(|ext| casks.join(format!("{token}.{ext}")).is_file());
            let candidate = (name_of(&stamp), name_of(&version));
            if recorded && newest.as_ref().is_none_or(|n| candidate > *n) {
                newest = Some(candidate);
            }
        }
    }
    newest.map(|(_, version)| version)
}
