//! Start at login: an XDG autostart entry (`~/.config/autostart/warden-tray.desktop`).
//!
//! Written by `warden-tray --install-autostart` (what an installer runs) and on the first
//! start of an installed binary; never for a development build under a cargo target dir,
//! which would otherwise start at every login of the developer's own machine.

use std::path::{Path, PathBuf};

/// The autostart entry's path under `XDG_CONFIG_HOME` (or `~/.config`).
pub fn entry_path() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(config.join("autostart").join("warden-tray.desktop"))
}

/// The entry's text for a binary.
pub fn entry_text(exe: &Path) -> String {
    format!(
        "[Desktop Entry]\nType=Application\nName=Warden\nComment=AI tool governance: status, warnings and exception requests\nExec=\"{}\"\nIcon=security-high\nTerminal=false\nX-GNOME-Autostart-enabled=true\n",
        exe.display()
    )
}

/// Whether a binary looks installed rather than freshly built by cargo.
pub fn is_installed_binary(exe: &Path) -> bool {
    !exe.components().any(|c| matches!(c.as_os_str().to_str(), Some("target" | "debug" | "release")))
        && !exe.to_string_lossy().contains("warden-target")
}

/// Writes the entry (atomically) if it is missing. Returns the path when it wrote one.
pub fn install(exe: &Path) -> std::io::Result<Option<PathBuf>> {
    let Some(path) = entry_path() else { return Ok(None) };
    if path.exists() {
        return Ok(None);
    }
    std::fs::create_dir_all(path.parent().expect("entry has a folder"))?;
    let temporary = path.with_extension("desktop.tmp");
    std::fs::write(&temporary, entry_text(exe))?;
    std::fs::rename(&temporary, &path)?;
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_runs_the_binary_and_dev_builds_are_not_installed() {
        let text = entry_text(Path::new("/usr/bin/warden-tray"));
        assert!(text.contains("Exec=\"/usr/bin/warden-tray\"\n"));
        assert!(text.starts_with("[Desktop Entry]\nType=Application\n"));
        for (exe, installed) in [
            ("/usr/bin/warden-tray", true),
            ("/opt/warden/warden-tray", true),
            ("/work/main/target/debug/warden-tray", false),
            ("/root/.cache/warden-target-tray/debug/warden-tray", false),
        ] {
            assert_eq!(is_installed_binary(Path::new(exe)), installed, "{exe}");
        }
    }
}
