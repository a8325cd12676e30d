//! What AI tools are installed, read from the tools' own records where they keep one: editor
//! extensions (VS Code and its forks: `extensions.json` and `.obsolete`), JetBrains plugins,
//! global npm packages (npm and every Node version manager), Python installs (pip, pipx, uv
//! tools), Homebrew formulae and casks, AppImages, native install folders and config folders.
//! IDE-extension tools never run as a process of their own, so this scan is the only way to
//! see them.
//!
//! The scan reads directory listings and small record files only; it never runs what it finds.
//! A record it cannot use becomes a [`Note`] and the scan falls back to what is on disk.

mod appimage;
mod editors;
mod homebrew;
mod mcp;
mod node;
mod report;

pub use mcp::{McpFound, mcp_servers};
pub use report::{LocalHome, device_report, homes_in_passwd, local_homes, npm_global_root};

use serde::Serialize;
use std::io::Read;
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
    /// A Homebrew formula or cask (`place` says which).
    HomebrewPackage,
    /// An AppImage file, or a tree extracted from one (`place`: `appimage`, `extracted`).
    AppImage,
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
    /// For extensions: the editor (`vscode`, `cursor`, …); for packages: the manager (`npm`,
    /// `nvm`, `volta`, `pip`, `uv`, …); for Homebrew: `cask` or `formula`; for AppImages:
    /// `appimage` or `extracted`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
    pub path: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A record the scan could not use, and what it did instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    pub path: PathBuf,
    /// A sentence: `not valid JSON (EOF while parsing …); every extension folder counted instead`.
    pub message: String,
}

impl Note {
    fn new(path: PathBuf, message: String) -> Note {
        Note { path, message }
    }
}

/// What a scan found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inventory {
    /// Sorted by tool, then kind, then path.
    pub installed: Vec<Installed>,
    pub notes: Vec<Note>,
}

/// The folders a scan looks in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locations {
    pub home: PathBuf,
    /// Global `node_modules` folders (besides those under `home`).
    pub npm_roots: Vec<PathBuf>,
    /// Python `site-packages`/`dist-packages` folders (besides those under `home`).
    pub python_roots: Vec<PathBuf>,
    /// Homebrew prefixes (the folders holding `Cellar` and `Caskroom`).
    pub brew_prefixes: Vec<PathBuf>,
    /// Folders outside `home` whose subfolders may be extracted AppImages (`/opt`).
    pub appimage_trees: Vec<PathBuf>,
    /// Whether absolute `install_paths` of the catalog (`/usr/share/cursor`) are checked.
    pub system_folders: bool,
}

/// JetBrains configuration roots, relative to the home folder (Linux, macOS, Windows).
const JETBRAINS_ROOTS: &[&str] =
    &[".local/share/JetBrains", "Library/Application Support/JetBrains", "AppData/Roaming/JetBrains"];

impl Locations {
    /// Only folders under `home` (what tests and `warden inventory --home` use); Homebrew
    /// only in `~/.linuxbrew`.
    pub fn under_home(home: impl Into<PathBuf>) -> Locations {
        let home = home.into();
        Locations {
            brew_prefixes: vec![home.join(".linuxbrew")],
            home,
            npm_roots: Vec::new(),
            python_roots: Vec::new(),
            appimage_trees: Vec::new(),
            system_folders: false,
        }
    }

    /// `home` plus the usual system-wide folders, and `npm root -g` when npm is there.
    pub fn standard(home: impl Into<PathBuf>, npm_global_root: Option<PathBuf>) -> Locations {
        let home = home.into();
        let brew_prefixes: Vec<PathBuf> =
            [home.join(".linuxbrew"), "/home/linuxbrew/.linuxbrew".into(), "/opt/homebrew".into(), "/usr/local".into()]
                .into_iter()
                .collect();
        let mut npm_roots: Vec<PathBuf> = ["/usr/lib/node_modules", "/usr/local/lib/node_modules"]
            .iter()
            .map(PathBuf::from)
            .chain(brew_prefixes.iter().map(|prefix| prefix.join("lib/node_modules")))
            .collect();
        npm_roots.extend(npm_global_root);
        npm_roots.sort();
        npm_roots.dedup();
        let mut python_roots = vec![PathBuf::from("/usr/lib/python3/dist-packages")];
        for base in ["/usr/local/lib", "/usr/lib"] {
            python_roots.extend(
                glob_children(Path::new(base), "python3")
                    .into_iter()
                    .flat_map(|p| [p.join("site-packages"), p.join("dist-packages")]),
            );
        }
        Locations {
            home,
            npm_roots,
            python_roots,
            brew_prefixes,
            appimage_trees: vec![PathBuf::from("/opt")],
            system_folders: true,
        }
    }

    fn all_npm_roots(&self, packages: &[&str]) -> Vec<(&'static str, PathBuf)> {
        let mut roots = node::roots_under_home(&self.home, packages);
        roots.extend(self.npm_roots.iter().map(|root| ("npm", root.clone())));
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

/// The contents of `file`, or `None` when it is larger than `limit` bytes (read no further).
/// Anything but a regular file is refused unopened: a named pipe put where a record belongs
/// would otherwise block the scan forever. Errors: `NotFound`, `InvalidData` for a non-file.
fn read_capped(file: &Path, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    if !std::fs::metadata(file)?.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not a regular file"));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(file)?.take(limit + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}

/// PEP 503 normalisation: `Aider_Chat` and `aider-chat` are the same project.
fn normalize_python_name(name: &str) -> String {
    name.to_ascii_lowercase().replace(['_', '.'], "-")
}

fn package_version(package_json: &Path) -> Option<String> {
    let bytes = read_capped(package_json, 1 << 20).ok()??;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
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

/// Scans `locations` for every tool of `catalog` (see [`inventory`]); only what was found.
pub fn scan(catalog: &Catalog, locations: &Locations) -> Vec<Installed> {
    inventory(catalog, locations).installed
}

/// Scans `locations` for every tool of `catalog`: what is installed, and notes about records
/// that could not be used (a damaged `extensions.json`, …).
pub fn inventory(catalog: &Catalog, locations: &Locations) -> Inventory {
    let mut found = Vec::new();
    let mut notes = Vec::new();
    let home = &locations.home;

    for editor in editors::EDITORS {
        for extension in editors::installed(home, editor, &mut notes) {
            for tool in catalog.tools() {
                if tool.extensions.iter().any(|e| extension.ids.iter().any(|id| e.eq_ignore_ascii_case(id))) {
                    found.push(entry(
                        tool,
                        InstallKind::EditorExtension,
                        Some(editor.name),
                        extension.path.clone(),
                        extension.version.clone(),
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

    let packages: Vec<&str> = catalog.tools().iter().flat_map(|t| t.npm_packages.iter().map(String::as_str)).collect();
    for (manager, root) in locations.all_npm_roots(&packages) {
        if !root.is_dir() {
            continue;
        }
        for tool in catalog.tools() {
            for package in &tool.npm_packages {
                let path = root.join(package);
                if path.join("package.json").is_file() {
                    let version = package_version(&path.join("package.json"));
                    found.push(entry(tool, InstallKind::NpmPackage, Some(manager), path, version));
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

    for prefix in &locations.brew_prefixes {
        for tool in catalog.tools() {
            let formulae: Vec<&str> = tool.brew_formulae.iter().map(String::as_str).collect();
            let casks: Vec<&str> = tool.brew_casks.iter().map(String::as_str).collect();
            for keg in homebrew::installed(prefix, &formulae, &casks) {
                found.push(entry(tool, InstallKind::HomebrewPackage, Some(keg.kind), keg.path, keg.version));
            }
        }
    }

    let apps: Vec<(usize, &str)> = catalog
        .tools()
        .iter()
        .enumerate()
        .flat_map(|(index, tool)| tool.app_names.iter().map(move |name| (index, name.as_str())))
        .collect();
    let file_places: Vec<PathBuf> = appimage::FILE_PLACES.iter().map(|p| home.join(p)).collect();
    let mut tree_places = file_places.clone();
    tree_places.push(home.clone());
    tree_places.extend(locations.appimage_trees.iter().cloned());
    let names: Vec<&str> = apps.iter().map(|(_, name)| *name).collect();
    for image in appimage::find(&file_places, &tree_places, &names) {
        let tool = &catalog.tools()[apps[image.app].0];
        found.push(entry(tool, InstallKind::AppImage, Some(image.form), image.path, image.version));
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
    Inventory { installed: found, notes }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_names_are_normalised() {
        assert_eq!(normalize_python_name("Aider_Chat"), "aider-chat");
    }

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"").unwrap();
    }

    /// The Linux Homebrew prefix lives outside the home folder (`/home/linuxbrew/.linuxbrew`);
    /// here it is a temporary one given in `brew_prefixes`, as `Locations::standard` does.
    #[test]
    fn homebrew_prefixes_outside_home_are_scanned() {
        let root = tempfile::tempdir().unwrap();
        let home = root.path().join("home/dev");
        let prefix = root.path().join("home/linuxbrew/.linuxbrew");
        std::fs::create_dir_all(&home).unwrap();
        touch(&prefix.join("Caskroom/claude-code/2.1.37/claude"));
        touch(&prefix.join("Caskroom/claude-code/.metadata/2.1.30/20261101000000.000/Casks/claude-code.rb"));
        touch(&prefix.join("Caskroom/claude-code/.metadata/2.1.37/20261120000000.000/Casks/claude-code.json"));
        // A cask folder without its record or files, and a formula of another tool's name.
        std::fs::create_dir_all(prefix.join("Caskroom/cursor/1.0.0")).unwrap();
        touch(&prefix.join("Cellar/goose/3.24.0/bin/goose"));
        touch(&prefix.join("Cellar/block-goose-cli/1.9.0/INSTALL_RECEIPT.json"));

        let mut locations = Locations::under_home(&home);
        locations.brew_prefixes.push(prefix.clone());
        let found: Vec<(String, Option<String>, Option<String>, PathBuf)> =
            scan(&Catalog::embedded(), &locations).into_iter().map(|i| (i.tool, i.place, i.version, i.path)).collect();
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            found,
            vec![
                ("claude-code".into(), some("cask"), some("2.1.37"), prefix.join("Caskroom/claude-code/2.1.37")),
                ("goose".into(), some("formula"), some("1.9.0"), prefix.join("Cellar/block-goose-cli/1.9.0")),
            ]
        );
    }
}
