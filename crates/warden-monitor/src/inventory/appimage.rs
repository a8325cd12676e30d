//! AppImages: single-file Linux applications, and the folders they extract to.
//!
//! An AppImage is an ELF file carrying the magic bytes `AI\x01` (type 1) or `AI\x02` (type 2)
//! at offset 8 (AppImage specification, "Image format"); its name conventionally starts with
//! the application's name: `Cursor-1.2.3-x86_64.AppImage`, `LM-Studio-0.3.5-x64.AppImage`.
//! `--appimage-extract` unpacks it into a `squashfs-root` folder (often renamed) whose top
//! holds `AppRun` and exactly one `.desktop` file naming the application.
//!
//! Where the scan looks (top level only, no recursion): `~/Applications` (AppImageLauncher),
//! `~/AppImages` (Gear Lever), `~/.local/bin` and `~/bin` (installed by hand), `~/Downloads`
//! and `~/Desktop` (run where downloaded); extracted trees also in the home folder itself
//! (where `--appimage-extract` leaves them) and in `/opt` for a system-wide scan. A file counts
//! only with the magic bytes (a half-downloaded `Cursor.AppImage` is nothing), and only names
//! are compared before any file is opened, so a crowded `~/Downloads` costs one listing.

use super::glob_children;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Folders under the home folder that hold AppImage files.
pub(super) const FILE_PLACES: &[&str] = &["Applications", "AppImages", ".local/bin", "bin", "Downloads", "Desktop"];

/// One AppImage found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AppImage {
    /// `appimage` for the file, `extracted` for an unpacked tree.
    pub form: &'static str,
    /// Index into the `apps` given to [`find`].
    pub app: usize,
    pub version: Option<String>,
    pub path: PathBuf,
}

/// Words split on the separators AppImage names use, lowercase.
fn words(text: &str) -> Vec<String> {
    text.split(['-', '_', ' ']).filter(|w| !w.is_empty()).map(str::to_ascii_lowercase).collect()
}

/// Words that may follow the application's name in an AppImage file name.
fn is_release_word(word: &str) -> bool {
    let digits = word.strip_prefix('v').unwrap_or(word);
    digits.starts_with(|c: char| c.is_ascii_digit())
        || matches!(word, "linux" | "x86" | "x64" | "amd64" | "arm64" | "aarch64" | "armhf" | "latest" | "stable")
}

/// Which of `apps` a file named `file_name` is, and the version its name gives.
/// `Cursor-1.2.3-x86_64.AppImage` is Cursor 1.2.3; `cursor.AppImage` is Cursor;
/// `cursorline-editor.AppImage` and `Claude-notes.AppImage` are neither Cursor nor Claude.
fn match_file_name(file_name: &str, apps: &[Vec<String>]) -> Option<(usize, Option<String>)> {
    let lower = file_name.to_ascii_lowercase();
    let stem = lower.strip_suffix(".appimage").unwrap_or(&lower);
    let name_words = words(stem);
    // The longest matching name wins: `Claude Desktop-…` is "Claude Desktop", not "Claude".
    let (app, length) = apps
        .iter()
        .enumerate()
        .filter(|(_, app)| {
            !app.is_empty()
                && name_words.starts_with(app)
                && name_words.get(app.len()).is_none_or(|next| is_release_word(next))
        })
        .map(|(index, app)| (index, app.len()))
        .max_by_key(|(_, length)| *length)?;
    let version = name_words[length..]
        .iter()
        .find(|w| w.trim_start_matches('v').starts_with(|c: char| c.is_ascii_digit()))
        .map(|w| w.trim_start_matches('v').to_owned());
    Some((app, version))
}

/// Whether `path` starts with the AppImage magic (type 1 or 2).
fn has_appimage_magic(path: &Path) -> bool {
    let mut header = [0u8; 11];
    let Ok(mut file) = std::fs::File::open(path) else { return false };
    file.read_exact(&mut header).is_ok()
        && header[..4] == *b"\x7fELF"
        && matches!(&header[8..11], b"AI\x01" | b"AI\x02")
}

/// `Name=` and `X-AppImage-Version=` of the `[Desktop Entry]` group of a `.desktop` file.
fn desktop_entry(text: &str) -> (Option<&str>, Option<&str>) {
    let (mut name, mut version, mut in_entry) = (None, None, false);
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_entry = line == "[Desktop Entry]";
        } else if in_entry {
            match line.split_once('=') {
                Some(("Name", value)) => name = Some(value.trim()),
                Some(("X-AppImage-Version", value)) => version = Some(value.trim()),
                _ => {}
            }
        }
    }
    (name, version)
}

/// The application an extracted tree at `dir` is: `AppRun` and a top-level `.desktop` whose
/// `Name=` is one of `apps` (all its words, nothing more).
fn match_extracted(dir: &Path, apps: &[Vec<String>]) -> Option<(usize, Option<String>)> {
    if std::fs::symlink_metadata(dir.join("AppRun")).is_err() {
        return None;
    }
    for desktop in glob_children(dir, "").into_iter().filter(|p| p.extension().is_some_and(|e| e == "desktop")) {
        // A `.desktop` file is a few hundred bytes; a huge one is not the application's.
        let Ok(Some(bytes)) = super::read_capped(&desktop, 1 << 20) else { continue };
        let text = String::from_utf8_lossy(&bytes);
        let (Some(name), version) = desktop_entry(&text) else { continue };
        let name = words(name);
        if let Some(app) = apps.iter().position(|app| !app.is_empty() && *app == name) {
            return Some((app, version.map(str::to_owned)));
        }
    }
    None
}

/// AppImage files in `file_places` and extracted trees in `tree_places` that are one of `apps`
/// (application names such as `LM Studio`).
pub(super) fn find(file_places: &[PathBuf], tree_places: &[PathBuf], apps: &[&str]) -> Vec<AppImage> {
    let apps: Vec<Vec<String>> = apps.iter().map(|a| words(a)).collect();
    let mut found = Vec::new();
    for place in file_places {
        for path in glob_children(place, "") {
            let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let Some((app, version)) = match_file_name(&file_name, &apps) else { continue };
            if path.is_file() && has_appimage_magic(&path) {
                found.push(AppImage { form: "appimage", app, version, path });
            }
        }
    }
    for place in tree_places {
        for path in glob_children(place, "") {
            if !path.is_dir() {
                continue;
            }
            if let Some((app, version)) = match_extracted(&path, &apps) {
                found.push(AppImage { form: "extracted", app, version, path });
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_name_the_application() {
        let apps: Vec<Vec<String>> =
            ["Cursor", "LM Studio", "Claude", "Claude Desktop", "Windsurf"].iter().map(|a| words(a)).collect();
        for (file, expected) in [
            ("Cursor-1.2.3-x86_64.AppImage", Some((0, Some("1.2.3")))),
            ("cursor.AppImage", Some((0, None))),
            ("cursor", Some((0, None))),
            ("LM-Studio-0.3.5-x64.AppImage", Some((1, Some("0.3.5")))),
            ("LM_Studio-v0.3.5.AppImage", Some((1, Some("0.3.5")))),
            ("claude-desktop-0.9.3-amd64.AppImage", Some((3, Some("0.9.3")))),
            ("Windsurf-linux-x64-1.10.5.AppImage", Some((4, Some("1.10.5")))),
            // Must not match: another word follows, or the name only starts the same.
            ("cursorline-editor.AppImage", None),
            ("Claude-notes.AppImage", None),
            ("my-cursor.AppImage", None),
            ("Obsidian-1.5.3.AppImage", None),
        ] {
            let got = match_file_name(file, &apps);
            let expected = expected.map(|(app, version)| (app, version.map(str::to_owned)));
            assert_eq!(got, expected, "{file}");
        }
    }

    #[test]
    fn desktop_entries_give_name_and_version() {
        let text = "[Desktop Entry]\nName=LM Studio\nExec=AppRun %U\nX-AppImage-Version=0.3.5\n[Desktop Action new]\nName=New Window\n";
        assert_eq!(desktop_entry(text), (Some("LM Studio"), Some("0.3.5")));
        assert_eq!(desktop_entry("[Other]\nName=Cursor\n"), (None, None));
    }
}
