//! Extensions installed in VS Code and its forks, read from the editor's own records.
//!
//! Every editor built on VS Code (Cursor, Windsurf, VSCodium, Kiro, code-server, the remote
//! servers) keeps user extensions in one folder, `<folder>/<publisher>.<name>-<version>[-<platform>]`,
//! plus two records beside them (format: microsoft/vscode,
//! `src/vs/platform/extensionManagement/common/extensionsProfileScannerService.ts` and
//! `node/extensionsScanner.ts`):
//! - `extensions.json`: the default profile's installed extensions, a JSON array of
//!   `{"identifier": {"id": "publisher.name", "uuid": …}, "version": "1.2.3",
//!   "location": {"$mid": 1, "path": "/abs/folder", "scheme": "file"} | "relative/folder",
//!   "relativeLocation": "folder", "metadata": {…}}`. Other profiles keep the same file under
//!   `<user data>/User/profiles/<id>/extensions.json`, pointing into the same folder.
//! - `.obsolete`: a JSON object `{"publisher.name-1.2.3[-platform]": true}` of extensions that
//!   were uninstalled but whose folders are still on disk until the editor next starts.
//!
//! So an extension is installed when a profile record lists it, its folder exists and
//! `.obsolete` does not name it. Editors older than profiles (VS Code < 1.74) have no
//! `extensions.json`: then the folders are the record, minus `.obsolete`. A record that cannot be
//! read (damaged, wrong shape, too big) is reported as a note and the scan falls back to the
//! folders, so a broken file can hide nothing.

use super::{Note, read_capped};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// One editor: its name in reports, its extensions folder and where its profiles live,
/// both relative to the home folder.
pub(super) struct Editor {
    pub name: &'static str,
    pub extensions: &'static str,
    /// `<user data>/User/profiles`: each subfolder may hold an `extensions.json`.
    pub profiles: &'static [&'static str],
}

/// The editors scanned. Desktop editors keep user data under `~/.config/<Product>` on Linux,
/// `~/Library/Application Support/<Product>` on macOS, `%APPDATA%\<Product>` on Windows; the
/// remote servers and code-server under their own folder.
pub(super) const EDITORS: &[Editor] = &[
    Editor {
        name: "vscode",
        extensions: ".vscode/extensions",
        profiles: &[
            ".config/Code/User/profiles",
            "Library/Application Support/Code/User/profiles",
            "AppData/Roaming/Code/User/profiles",
        ],
    },
    Editor {
        name: "vscode-insiders",
        extensions: ".vscode-insiders/extensions",
        profiles: &[
            ".config/Code - Insiders/User/profiles",
            "Library/Application Support/Code - Insiders/User/profiles",
            "AppData/Roaming/Code - Insiders/User/profiles",
        ],
    },
    Editor {
        name: "vscodium",
        extensions: ".vscode-oss/extensions",
        profiles: &[
            ".config/VSCodium/User/profiles",
            "Library/Application Support/VSCodium/User/profiles",
            "AppData/Roaming/VSCodium/User/profiles",
        ],
    },
    Editor {
        name: "vscode-server",
        extensions: ".vscode-server/extensions",
        profiles: &[".vscode-server/data/User/profiles"],
    },
    Editor {
        name: "vscode-server-insiders",
        extensions: ".vscode-server-insiders/extensions",
        profiles: &[".vscode-server-insiders/data/User/profiles"],
    },
    Editor {
        name: "code-server",
        extensions: ".local/share/code-server/extensions",
        profiles: &[".local/share/code-server/User/profiles"],
    },
    Editor {
        name: "openvscode-server",
        extensions: ".openvscode-server/extensions",
        profiles: &[".openvscode-server/data/User/profiles"],
    },
    Editor {
        name: "cursor",
        extensions: ".cursor/extensions",
        profiles: &[
            ".config/Cursor/User/profiles",
            "Library/Application Support/Cursor/User/profiles",
            "AppData/Roaming/Cursor/User/profiles",
        ],
    },
    Editor {
        name: "cursor-server",
        extensions: ".cursor-server/extensions",
        profiles: &[".cursor-server/data/User/profiles"],
    },
    Editor {
        name: "windsurf",
        extensions: ".windsurf/extensions",
        profiles: &[
            ".config/Windsurf/User/profiles",
            "Library/Application Support/Windsurf/User/profiles",
            "AppData/Roaming/Windsurf/User/profiles",
        ],
    },
    Editor {
        name: "windsurf-server",
        extensions: ".windsurf-server/extensions",
        profiles: &[".windsurf-server/data/User/profiles"],
    },
    Editor {
        name: "kiro",
        extensions: ".kiro/extensions",
        profiles: &[
            ".config/Kiro/User/profiles",
            "Library/Application Support/Kiro/User/profiles",
            "AppData/Roaming/Kiro/User/profiles",
        ],
    },
];

/// The most an `extensions.json` or `.obsolete` may weigh. A real one with a few hundred
/// extensions is well under 1 MiB; anything bigger is not the editor's doing.
pub(super) const RECORD_LIMIT: u64 = 8 << 20;

/// An extension the editor counts as installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Extension {
    /// `publisher.name`, lowercase, as the record (or the folder name) gives it and as the
    /// folder's own `package.json` does: the editor runs what the manifest says, so a record
    /// that renames an extension hides nothing.
    pub ids: Vec<String>,
    pub version: Option<String>,
    /// The extension's folder.
    pub path: PathBuf,
}

/// The most of an extension's `package.json` read (big extensions' manifests are a few
/// hundred KiB, mostly `contributes`).
const MANIFEST_LIMIT: u64 = 4 << 20;

/// The identity fields of an extension manifest; everything else is skipped unparsed.
#[derive(serde::Deserialize)]
struct Manifest {
    publisher: Option<String>,
    name: Option<String>,
}

/// `publisher.name` from the manifest in `folder`, lowercase, when it has both.
fn manifest_id(folder: &Path) -> Option<String> {
    let bytes = read_capped(&folder.join("package.json"), MANIFEST_LIMIT).ok()??;
    let manifest: Manifest = serde_json::from_slice(&bytes).ok()?;
    Some(format!("{}.{}", manifest.publisher?, manifest.name?).to_ascii_lowercase())
}

fn with_manifest(id: String, version: Option<String>, path: PathBuf) -> Extension {
    let mut ids = vec![id];
    ids.extend(manifest_id(&path).filter(|m| *m != ids[0]));
    Extension { ids, version, path }
}

/// One entry of an `extensions.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    id: String,
    version: String,
    location: PathBuf,
}

/// Why a record file was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Unreadable {
    Missing,
    Damaged(String),
}

/// The extensions `editor` has installed under `home`, and notes about records it could not use.
pub(super) fn installed(home: &Path, editor: &Editor, notes: &mut Vec<Note>) -> Vec<Extension> {
    let folder = home.join(editor.extensions);
    if !folder.is_dir() {
        return Vec::new();
    }
    let obsolete = match obsolete_keys(&folder.join(".obsolete")) {
        Ok(keys) => keys,
        Err(Unreadable::Missing) => HashSet::new(),
        Err(Unreadable::Damaged(why)) => {
            // The editor itself reads a damaged `.obsolete` as empty; so does the scan.
            notes.push(Note::new(folder.join(".obsolete"), format!("{why}; read as naming nothing")));
            HashSet::new()
        }
    };
    let is_obsolete = |folder_name: &str, id: &str, version: Option<&str>| {
        obsolete.contains(&folder_name.to_ascii_lowercase())
            || version.is_some_and(|v| obsolete.contains(&format!("{id}-{v}").to_ascii_lowercase()))
    };

    let mut files = vec![folder.join("extensions.json")];
    for profiles in editor.profiles {
        files.extend(super::glob_children(&home.join(profiles), "").into_iter().map(|p| p.join("extensions.json")));
    }
    let mut records = Vec::new();
    let mut default_profile_read = false;
    let mut damaged = false;
    for (index, file) in files.iter().enumerate() {
        match profile_records(file, &folder) {
            Ok(mut found) => {
                default_profile_read |= index == 0;
                records.append(&mut found);
            }
            Err(Unreadable::Missing) => {}
            Err(Unreadable::Damaged(why)) => {
                notes.push(Note::new(file.clone(), format!("{why}; every extension folder counted instead")));
                damaged = true;
            }
        }
    }

    let mut found = Vec::new();
    if default_profile_read && !damaged {
        for record in records {
            let name = record.location.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if is_obsolete(&name, &record.id, Some(&record.version)) || !record.location.is_dir() {
                continue;
            }
            found.push(with_manifest(record.id, Some(record.version), record.location));
        }
    } else {
        // No usable record: every folder the editor would load (it skips names starting with
        // `.` and folders without a `package.json` manifest).
        for path in super::glob_children(&folder, "") {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if name.starts_with('.') || !path.join("package.json").is_file() {
                continue;
            }
            let Some((id, version)) = split_extension_folder(&name) else { continue };
            let id = id.to_ascii_lowercase();
            if is_obsolete(&name, &id, Some(version)) {
                continue;
            }
            found.push(with_manifest(id, Some(version.to_owned()), path));
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found.dedup_by(|a, b| a.path == b.path);
    found
}

/// The keys of `.obsolete` whose value is `true`, lowercase.
fn obsolete_keys(file: &Path) -> Result<HashSet<String>, Unreadable> {
    let value = read_json(file)?;
    let object = value.as_object().ok_or_else(|| Unreadable::Damaged("not a JSON object".to_owned()))?;
    Ok(object.iter().filter(|(_, v)| v.as_bool() == Some(true)).map(|(k, _)| k.to_ascii_lowercase()).collect())
}

/// The entries of one profile's `extensions.json`, with locations resolved against the
/// extensions `folder` the way the editor does. Any entry of the wrong shape makes the whole
/// file unusable, as it does for the editor (`ERROR_INVALID_CONTENT`).
fn profile_records(file: &Path, folder: &Path) -> Result<Vec<Record>, Unreadable> {
    let value = read_json(file)?;
    let entries = value.as_array().ok_or_else(|| Unreadable::Damaged("not a JSON array".to_owned()))?;
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            record(entry, folder).ok_or_else(|| {
                Unreadable::Damaged(format!(
                    "entry {index} is not {{\"identifier\": {{\"id\": …}}, \"version\": …, \"location\": …}}"
                ))
            })
        })
        .collect()
}

fn record(entry: &serde_json::Value, folder: &Path) -> Option<Record> {
    let id = entry.get("identifier")?.get("id")?.as_str().filter(|id| !id.is_empty())?;
    let version = entry.get("version")?.as_str().filter(|v| !v.is_empty())?;
    let relative = match entry.get("relativeLocation") {
        None => None,
        Some(value) => Some(value.as_str()?).filter(|r| !r.is_empty()),
    };
    let location = match (relative, entry.get("location")?) {
        (Some(relative), _) => folder.join(relative),
        (None, serde_json::Value::String(path)) if !path.is_empty() => folder.join(path),
        (None, serde_json::Value::Object(uri)) => {
            let scheme = uri.get("scheme").and_then(|s| s.as_str()).unwrap_or("file");
            let path = uri.get("path")?.as_str()?;
            if scheme != "file" || !path.starts_with('/') {
                // Another file system (a remote or virtual one): nothing on this disk.
                return Some(Record { id: id.to_ascii_lowercase(), version: version.into(), location: PathBuf::new() });
            }
            PathBuf::from(path)
        }
        _ => return None,
    };
    Some(Record { id: id.to_ascii_lowercase(), version: version.to_owned(), location })
}

fn read_json(file: &Path) -> Result<serde_json::Value, Unreadable> {
    let bytes = match read_capped(file, RECORD_LIMIT) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Err(Unreadable::Damaged(format!("larger than {} MiB", RECORD_LIMIT >> 20))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Unreadable::Missing),
        Err(e) => return Err(Unreadable::Damaged(format!("unreadable: {e}"))),
    };
    serde_json::from_slice(&bytes).map_err(|e| Unreadable::Damaged(format!("not valid JSON ({e})")))
}

/// `publisher.name-1.2.3[-platform]` → (`publisher.name`, `1.2.3`).
pub(super) fn split_extension_folder(folder: &str) -> Option<(&str, &str)> {
    let (index, _) =
        folder.match_indices('-').find(|(i, _)| folder[i + 1..].starts_with(|c: char| c.is_ascii_digit()))?;
    let version = &folder[index + 1..];
    let version = version.split('-').next().unwrap_or(version);
    Some((&folder[..index], version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_folders_split_into_id_and_version() {
        for (folder, expected) in [
            ("anthropic.claude-code-2.1.37-linux-x64", Some(("anthropic.claude-code", "2.1.37"))),
            ("github.copilot-chat-0.30.1", Some(("github.copilot-chat", "0.30.1"))),
            ("extensions.json", None),
        ] {
            assert_eq!(split_extension_folder(folder), expected, "{folder}");
        }
    }

    /// Each case: an `extensions.json` text and the (id, folder) pairs it yields, or `None`
    /// when the file must be refused as a whole.
    #[test]
    fn profile_records_follow_the_editors_format() {
        let folder = Path::new("/h/.vscode/extensions");
        /// (id, folder) pairs.
        type Records<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(&str, Option<Records>)] = &[
            // Today's format: a URI object plus the folder name.
            (
                r#"[{"identifier":{"id":"Anthropic.claude-code","uuid":"x"},"version":"2.1.37",
                    "location":{"$mid":1,"path":"/elsewhere/anthropic.claude-code-2.1.37","scheme":"file"},
                    "relativeLocation":"anthropic.claude-code-2.1.37","metadata":{"pinned":false}}]"#,
                Some(&[("anthropic.claude-code", "/h/.vscode/extensions/anthropic.claude-code-2.1.37")]),
            ),
            // Without relativeLocation the URI's path is used.
            (
                r#"[{"identifier":{"id":"a.b"},"version":"1.0.0","location":{"path":"/opt/ext/a.b-1.0.0","scheme":"file"}}]"#,
                Some(&[("a.b", "/opt/ext/a.b-1.0.0")]),
            ),
            // An older format: the location is a path relative to the extensions folder.
            (
                r#"[{"identifier":{"id":"a.b"},"version":"1.0.0","location":"a.b-1.0.0"}]"#,
                Some(&[("a.b", "/h/.vscode/extensions/a.b-1.0.0")]),
            ),
            (r#"[]"#, Some(&[])),
            // Wrong shapes: the whole file is refused, never half-read.
            (r#"{"identifier":{"id":"a.b"}}"#, None),
            (r#"[{"identifier":{"id":"a.b"},"version":"1.0.0","location":"a.b-1.0.0"}, 7]"#, None),
            (r#"[{"identifier":{"id":42},"version":"1.0.0","location":"x"}]"#, None),
            (r#"[{"identifier":{"id":"a.b"},"version":1,"location":"x"}]"#, None),
            (r#"[{"identifier":{"id":"a.b"},"version":"1.0.0"}]"#, None),
            (r#"[{"identifier":{"id":"a.b"},"version":"1.0.0","location":"x","relativeLocation":3}]"#, None),
        ];
        let dir = tempfile::tempdir().unwrap();
        for (text, expected) in cases {
            let file = dir.path().join("extensions.json");
            std::fs::write(&file, text).unwrap();
            let got = profile_records(&file, folder).ok().map(|records| {
                records.into_iter().map(|r| (r.id, r.location.to_string_lossy().into_owned())).collect::<Vec<_>>()
            });
            let expected = expected
                .map(|pairs| pairs.iter().map(|(id, path)| (id.to_string(), path.to_string())).collect::<Vec<_>>());
            assert_eq!(got, expected, "{text}");
        }
    }

    /// A named pipe, a folder or a device where a record belongs is refused, not waited on.
    #[test]
    fn records_that_are_not_files_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("extensions.json");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(status.success(), "mkfifo");
        std::fs::create_dir(dir.path().join(".obsolete")).unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        let folder = dir.path().to_owned();
        std::thread::spawn(move || {
            let records = profile_records(&folder.join("extensions.json"), &folder);
            let obsolete = obsolete_keys(&folder.join(".obsolete"));
            let device = read_json(Path::new("/dev/zero"));
            sender.send((records, obsolete, device)).unwrap();
        });
        let (records, obsolete, device) =
            receiver.recv_timeout(std::time::Duration::from_secs(10)).expect("reading a named pipe blocked the scan");
        for result in [records.map(|_| ()), obsolete.map(|_| ()), device.map(|_| ())] {
            assert!(
                matches!(&result, Err(Unreadable::Damaged(why)) if why.contains("not a regular file")),
                "{result:?}"
            );
        }
    }

    #[test]
    fn obsolete_names_only_what_is_true() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(".obsolete");
        std::fs::write(&file, r#"{"Anthropic.claude-code-2.1.37-linux-x64":true,"a.b-1.0.0":false}"#).unwrap();
        let keys = obsolete_keys(&file).unwrap();
        assert_eq!(keys, HashSet::from(["anthropic.claude-code-2.1.37-linux-x64".to_owned()]));
        std::fs::write(&file, "[1,2]").unwrap();
        assert!(matches!(obsolete_keys(&file), Err(Unreadable::Damaged(_))));
        assert_eq!(obsolete_keys(&dir.path().join("none")), Err(Unreadable::Missing));
    }
}
