//! The app's windows: one per view, opened from the tray menu, from pop-up actions and
//! from a second launch, and focused (not duplicated) when already open.

use crate::shell::Shell;
use crate::views::{View, WindowContext};
use tauri::{AppHandle, Emitter, Manager, WebviewUrl, WebviewWindowBuilder};

/// Event a window receives when it is already open and asked to show something new.
pub const CONTEXT_EVENT: &str = "warden://context";

/// Opens (or brings forward) a view's window with the given context.
pub fn open(app: &AppHandle, view: View, context: WindowContext) -> tauri::Result<()> {
    let shell = app.state::<Shell>();
    shell.set_context(view.label(), context.clone());
    if let Some(window) = app.get_webview_window(view.label()) {
        window.unminimize()?;
        window.show()?;
        window.set_focus()?;
        app.emit_to(view.label(), CONTEXT_EVENT, context)?;
        return Ok(());
    }
    let (width, height) = view.size();
    let page = format!("{}.html", view.label());
    WebviewWindowBuilder::new(app, view.label(), WebviewUrl::App(page.into()))
        .title(view.title())
        .inner_size(width, height)
        .min_inner_size(420.0, 320.0)
        .focused(true)
        .build()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each window's capability file grants exactly the commands that window's page calls
    /// (ui/src/<view>.ts through ui/src/ipc.ts), and nothing to any other window.
    #[test]
    fn capabilities_grant_each_window_only_its_commands() {
        let events = ["core:event:allow-listen", "core:event:allow-unlisten"];
        let cases: [(View, &[&str]); 4] = [
            (View::Catalog, &["allow-catalog-view", "allow-open-assistant", "allow-open-view"]),
            (
                View::Activity,
                &[
                    "allow-recent-activity",
                    "allow-masking-line",
                    "allow-window-context",
                    "allow-open-view",
                    "allow-open-assistant",
                ],
            ),
            (
                View::Exceptions,
                &["allow-exception-form", "allow-exception-requests", "allow-submit-exception", "allow-window-context"],
            ),
            (View::About, &["allow-about"]),
        ];
        let dir = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
            .join("capabilities");
        let files = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(files, cases.len(), "one capability file per window");
        for (view, commands) in cases {
            let text = std::fs::read_to_string(dir.join(format!("{}.json", view.label()))).unwrap();
            let capability: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(capability["windows"], serde_json::json!([view.label()]), "{view:?}");
            let mut granted: Vec<&str> =
                capability["permissions"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
            granted.sort_unstable();
            let mut expected: Vec<&str> = commands.to_vec();
            if view != View::About {
                expected.extend(events);
            }
            expected.sort_unstable();
            assert_eq!(granted, expected, "{view:?}");
            // The page really calls each granted command.
            let page = std::fs::read_to_string(
                std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
                    .join(format!("../ui/src/{}.ts", view.label())),
            )
            .unwrap();
            let ipc = std::fs::read_to_string(
                std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
                    .join("../ui/src/ipc.ts"),
            )
            .unwrap();
            for command in commands {
                let snake = command.trim_start_matches("allow-").replace('-', "_");
                // The wrapper is the nearest `name:` line at or above the command's name.
                let lines: Vec<&str> = ipc.lines().collect();
                let at = lines
                    .iter()
                    .position(|line| line.contains(&format!(">(\"{snake}\"")))
                    .unwrap_or_else(|| panic!("ipc.ts has no wrapper for {snake}"));
                let method = lines[..=at]
                    .iter()
                    .rev()
                    .filter_map(|line| line.trim().split_once(':').map(|(name, _)| name))
                    .find(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()))
                    .expect("a wrapper name");
                assert!(page.contains(&format!("ipc.{method}(")), "{view:?} is granted {snake} but never calls it");
            }
        }
    }
}
