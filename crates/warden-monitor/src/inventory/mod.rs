//! What AI tools are installed: IDE extensions (VS Code and its forks), JetBrains
//! plugins, global npm packages, Python installs (pip, pipx, uv tools), native install
//! folders and config folders. IDE-extension tools never run as a process of their own,
//! so this scan is the only way to see them.
//!
//! The scan reads directory listings only; it never runs what it finds.

use serde::Serialize;
use std::path::{Path, PathBuf};
use warden_policy::{Catalog, Tool};

/// Where an installation was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstallKind {
    EditorExtension,
    JetbrainsPlugin,
    NpmPackage,
    PythonPackage,
    InstallFolder,
    ConfigFolder,
}

/// One installation of a tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Installed {
    /// Catalog id.
    pub tool: String,
    pub tool_name: String,
    pub kind: InstallKind,
    /// For extensions: the editor (`vscode`, `cursor`, …); for packages: the manager.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
    pub path: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// The folders a scan looks in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locations {
    pub home: PathBuf,
    /// Global `node_modules` folders (besides those under `home`).
    pub npm_roots: Vec<PathBuf>,
    /// Python `site-packages`/`dist-packages` folders (besides those under `home`).
    pub python_roots: Vec<PathBuf>,
    /// Whether absolute `install_paths` of the catalog (`/usr/share/cursor`) are checked.
    pub system_folders: bool,
}

/// Editor extension folders, relative to the home folder: (editor, folder).
const EDITOR_EXTENSIONS: &[(&str, &str)] = &[
    ("vscode", ".vscode/extensions"),
    ("vscode-insiders", ".vscode-insiders/extensions"),
    ("vscodium", ".vscode-oss/extensions"),
    ("vscode-server", ".vscode-server/extensions"),
    ("vscode-server-insiders", ".vscode-server-insiders/extensions"),
    ("cursor", ".cursor/extensions"),
    ("cursor-server", ".cursor-server/extensions"),
    ("windsurf", ".windsurf/extensions"),
    ("windsurf-server", ".windsurf-server/extensions"),
    ("kiro", ".kiro/extensions"),
];

/// JetBrains configuration roots, relative to the home folder (Linux, macOS, Windows).
const JETBRAINS_ROOTS: &[&str] =
    &[".local/share/JetBrains", "Library/Application Support/JetBrains", "AppData/Roaming/JetBrains"];

impl Locations {
    /// Only folders under `home` (what tests and `warden inventory --home` use).
    pub fn under_home(home: impl Into<PathBuf>) -> Locations {
        Locations { home: home.into(), npm_roots: Vec::new(), python_roots: Vec::new(), system_folders: false }
    }

    /// `home` plus the usual system-wide folders, and `npm root -g` when npm is there.
    pub fn standard(home: impl Into<PathBuf>, npm_global_root: Option<PathBuf>) -> Locations {
        let mut npm_roots: Vec<PathBuf> =
            ["/usr/lib/node_modules", "/usr/local/lib/node_modules", "/opt/homebrew/lib/node_modules"]
                .iter()
                .map(PathBuf::from)
                .collect();
        npm_roots.extend(npm_global_root);
        npm_roots.dedup();
        let mut python_roots = vec![PathBuf::from("/usr/lib/python3/dist-packages")];
        for base in ["/usr/local/lib", "/usr/lib"] {
            python_roots.extend(
                glob_children(Path::new(base), "python3")
                    .into_iter()
                    .flat_map(|p| [p.join("site-packages"), p.join("dist-packages")]),
            );
        }
        Locations { home: home.into(), npm_roots, python_roots, system_folders: true }
    }

    fn all_npm_roots(&self) -> Vec<PathBuf> {
        let home = &self.home;
        let mut roots = vec![
            home.join(".npm-global/lib/node_modules"),
            home.join(".local/lib/node_modules"),
            home.join(".local/share/npm/lib/node_modules"),
            home.join(".bun/install/global/node_modules"),
            home.join("AppData/Roaming/npm/node_modules"),
        ];
        for version in glob_children(&home.join(".nvm/versions/node"), "") {
            roots.push(version.join("lib/node_modules"));
        }
        for store in glob_children(&home.join(".local/share/pnpm/global"), "") {
            roots.push(store.join("node_modules"));
        }
        // npx caches: tools run once with `npx @anthropic-ai/claude-code`.
        for cache in glob_children(&home.join(".npm/_npx"), "") {
            roots.push(cache.join("node_modules"));
        }
        roots.extend(self.npm_roots.iter().cloned());
        roots
    }

    fn all_python_roots(&self) -> Vec<(String, PathBuf)> {
        let mut roots = Vec::new();
        for python in glob_children(&self.home.join(".local/lib"), "python") {
            roots.push(("pip".to_owned(), python.join("site-packages")));
        }
        for (manager, venvs) in
            [("pipx", ".local/pipx/venvs"), ("pipx", ".local/share/pipx/venvs"), ("uv", ".local/share/uv/tools")]
        {
            for venv in glob_children(&self.home.join(venvs), "") {
                for python in glob_children(&venv.join("lib"), "python") {
                    roots.push((manager.to_owned(), python.join("site-packages")));
                }
            }
        }
        roots.extend(self.python_roots.iter().map(|p| ("pip".to_owned(), p.clone())));
        roots
    }
}

/// Entries of `dir` whose names start with `prefix` (sorted), or nothing if unreadable.
fn glob_children(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<PathBuf> =
        entries.flatten().filter(|e| e.file_name().to_string_lossy().starts_with(prefix)).map(|e| e.path()).collect();
    found.sort();
    found
}

/// `publisher.name-1.2.3[-platform]` → (`publisher.name`, `1.2.3`).
fn split_extension_folder(folder: &str) -> Option<(&str, &str)> {
    let (index, _) =
        folder.match_indices('-').find(|(i, _)| folder[i + 1..].starts_with(|c: char| c.is_ascii_digit()))?;
    let version = &folder[index + 1..];
    let version = version.split('-').next().unwrap_or(version);
    Some((&folder[..index], version))
}

/// PEP 503 normalisation: `Aider_Chat` and `aider-chat` are the same project.
fn normalize_python_name(name: &str) -> String {
    name.to_ascii_lowercase().replace(['_', '.'], "-")
}

fn package_version(package_json: &Path) -> Option<String> {
    let text = std::fs::read_to_string(package_json).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value.get("version")?.as_str().map(str::to_owned)
}

fn entry(tool: &Tool, kind: InstallKind, place: Option<&str>, path: PathBuf, version: Option<String>) -> Installed {
    Installed {
        tool: tool.id.clone(),
        tool_name: tool.name.clone(),
        kind,
        place: place.map(str::to_owned),
        path,
        version,
    }
}

/// Scans `locations` for every tool of `catalog`. Sorted by tool, then kind, then path.
pub fn scan(catalog: &Catalog, locations: &Locations) -> Vec<Installed> {
    let mut found = Vec::new();
    let home = &locations.home;

    for (editor, folder) in EDITOR_EXTENSIONS {
        for path in glob_children(&home.join(folder), "") {
            let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
            let Some((id, version)) = split_extension_folder(&name) else { continue };
            for tool in catalog.tools() {
                if tool.extensions.iter().any(|e| e.eq_ignore_ascii_case(id)) {
                    found.push(entry(
                        tool,
                        InstallKind::EditorExtension,
                        Some(editor),
                        path.clone(),
                        Some(version.into()),
                    ));
                }
            }
        }
    }

    for root in JETBRAINS_ROOTS {
        for product in glob_children(&home.join(root), "") {
            // Linux keeps plugins right in the product folder; macOS and Windows in `plugins/`.
            let product_name = product.file_name().map(|n| n.to_string_lossy().into_owned());
            for plugin in glob_children(&product, "").into_iter().chain(glob_children(&product.join("plugins"), "")) {
                let name = plugin.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                for tool in catalog.tools() {
                    if tool.jetbrains_plugins.iter().any(|p| p.eq_ignore_ascii_case(&name)) {
                        found.push(entry(
                            tool,
                            InstallKind::JetbrainsPlugin,
                            product_name.as_deref(),
                            plugin.clone(),
                            None,
                        ));
                    }
                }
            }
        }
    }

    for root in locations.all_npm_roots() {
        for tool in catalog.tools() {
            for package in &tool.npm_packages {
                let path = root.join(package);
                if path.join("package.json").is_file() {
                    let version = package_version(&path.join("package.json"));
                    found.push(entry(tool, InstallKind::NpmPackage, Some("npm"), path, version));
                }
            }
        }
    }

    for (manager, root) in locations.all_python_roots() {
        for dist_info in glob_children(&root, "") {
            let name = dist_info.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let Some(stem) = name.strip_suffix(".dist-info") else { continue };
            let Some((project, version)) = stem.rsplit_once('-') else { continue };
            let project = normalize_python_name(project);
            for tool in catalog.tools() {
                if tool.pip_packages.iter().any(|p| normalize_python_name(p) == project) {
                    found.push(entry(
                        tool,
                        InstallKind::PythonPackage,
                        Some(&manager),
                        dist_info.clone(),
                        Some(version.to_owned()),
                    ));
                }
            }
        }
    }

    for tool in catalog.tools() {
        for (kind, paths) in
            [(InstallKind::InstallFolder, &tool.install_paths), (InstallKind::ConfigFolder, &tool.config_dirs)]
        {
            for written in paths {
                let absolute = written.starts_with('/');
                if absolute && !locations.system_folders {
                    continue;
                }
                let path = if absolute { PathBuf::from(written) } else { home.join(written) };
                if path.exists() {
                    found.push(entry(tool, kind, None, path, None));
                }
            }
        }
    }

    found.sort_by(|a, b| (&a.tool, a.kind, &a.path).cmp(&(&b.tool, b.kind, &b.path)));
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_folders_split_into_id_and_version() {
        assert_eq!(
            split_extension_folder("anthropic.claude-code-2.1.37-linux-x64"),
            Some(("anthropic.claude-code", "2.1.37"))
        );
        assert_eq!(split_extension_folder("github.copilot-chat-0.30.1"), Some(("github.copilot-chat", "0.30.1")));
        assert_eq!(split_extension_folder("extensions.json"), None);
    }

    #[test]
    fn python_names_are_normalised() {
        assert_eq!(normalize_python_name("Aider_Chat"), "aider-chat");
    }
}
