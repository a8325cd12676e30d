//! Where global npm packages live: npm's own prefixes and every Node version manager's.
//!
//! A global install is `<prefix>/lib/node_modules/<package>` (Windows: `<prefix>/node_modules`),
//! and each version manager keeps one prefix per Node version it installed:
//! - nvm: `$NVM_DIR/versions/node/<v>` (`~/.nvm`, or `~/.config/nvm` for an XDG install);
//! - fnm: `<fnm dir>/node-versions/<v>/installation` (`~/.local/share/fnm`, legacy `~/.fnm`,
//!   macOS `~/Library/Application Support/fnm`);
//! - asdf: `~/.asdf/installs/nodejs/<v>` (older asdf-nodejs: `<v>/.npm`);
//! - mise: `~/.local/share/mise/installs/node/<v>`, and its `npm:` backend one prefix per
//!   package version, `installs/npm-<name>/<v>`;
//! - nodenv: `~/.nodenv/versions/<v>`;
//! - volta: one prefix per package, `~/.volta/tools/image/packages/<package>` (volta runs
//!   `npm install --global` with that prefix; volta-cli/volta `crates/volta-layout/src/v3.rs`);
//! - pnpm: `<pnpm home>/global/<layout version>/node_modules` (`~/.local/share/pnpm`, macOS
//!   `~/Library/pnpm`, Windows `%LOCALAPPDATA%\pnpm`);
//! - bun: `~/.bun/install/global/node_modules`; yarn classic: `~/.config/yarn/global/node_modules`.

use super::glob_children;
use std::path::{Path, PathBuf};

/// `node_modules` folders under `home`, each with the manager that put packages there.
/// `packages` are the npm names the catalog looks for (volta keeps one prefix per package).
pub(super) fn roots_under_home(home: &Path, packages: &[&str]) -> Vec<(&'static str, PathBuf)> {
    let mut roots: Vec<(&'static str, PathBuf)> = [
        ("npm", ".npm-global/lib/node_modules"),
        ("npm", ".local/lib/node_modules"),
        ("npm", ".local/share/npm/lib/node_modules"),
        ("npm", "AppData/Roaming/npm/node_modules"),
        ("bun", ".bun/install/global/node_modules"),
        ("yarn", ".config/yarn/global/node_modules"),
    ]
    .into_iter()
    .map(|(manager, path)| (manager, home.join(path)))
    .collect();

    // Managers with one prefix per installed Node version.
    for (manager, versions, inside) in [
        ("nvm", ".nvm/versions/node", ""),
        ("nvm", ".config/nvm/versions/node", ""),
        ("fnm", ".local/share/fnm/node-versions", "installation"),
        ("fnm", ".fnm/node-versions", "installation"),
        ("fnm", "Library/Application Support/fnm/node-versions", "installation"),
        ("asdf", ".asdf/installs/nodejs", ""),
        ("asdf", ".asdf/installs/nodejs", ".npm"),
        ("mise", ".local/share/mise/installs/node", ""),
        ("mise", ".local/share/mise/installs/nodejs", ""),
        ("nodenv", ".nodenv/versions", ""),
    ] {
        for version in glob_children(&home.join(versions), "") {
            roots.push((manager, version.join(inside).join("lib/node_modules")));
        }
    }
    // mise's `npm:` backend: `installs/npm-<scope>-<name>/<version>`.
    for tool in glob_children(&home.join(".local/share/mise/installs"), "npm-") {
        for version in glob_children(&tool, "") {
            roots.push(("mise", version.join("lib/node_modules")));
        }
    }
    for package in packages {
        let image = home.join(".volta/tools/image/packages").join(package);
        roots.push(("volta", image.join("lib/node_modules")));
        roots.push(("volta", image.join("node_modules")));
    }
    for pnpm_home in [".local/share/pnpm", "Library/pnpm", "AppData/Local/pnpm"] {
        for layout in glob_children(&home.join(pnpm_home).join("global"), "") {
            roots.push(("pnpm", layout.join("node_modules")));
        }
    }
    // npx caches: tools run once with `npx @anthropic-ai/claude-code`.
    for cache in glob_children(&home.join(".npm/_npx"), "") {
        roots.push(("npx", cache.join("node_modules")));
    }
    roots
}
