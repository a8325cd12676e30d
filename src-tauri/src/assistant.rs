//! Opens the sanctioned assistant: runs the policy's command in the blocked tool's
//! working directory, or opens its URL in the default browser.

use std::path::Path;
use std::process::{Command, Stdio};
use tauri::AppHandle;
use tauri_plugin_opener::OpenerExt;
use warden_policy::Assistant;

/// Why the assistant could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the policy names no sanctioned assistant")]
    NoAssistant,
    #[error("cannot start {program}: {source}")]
    Command { program: String, source: std::io::Error },
    #[error("cannot open {url}: {message}")]
    Url { url: String, message: String },
}

/// Opens the assistant. A command runs in `cwd` when that folder exists (so it starts
/// where the developer was working), otherwise in the home folder.
pub fn open(app: &AppHandle, assistant: Option<&Assistant>, cwd: Option<&str>) -> Result<(), OpenError> {
    let assistant = assistant.ok_or(OpenError::NoAssistant)?;
    if let Some((program, args)) = assistant.command.split_first() {
        let mut command = Command::new(program);
        command.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        if let Some(dir) = cwd.map(Path::new).filter(|d| d.is_dir()) {
            command.current_dir(dir);
        } else if let Some(home) = std::env::var_os("HOME") {
            command.current_dir(home);
        }
        let mut child = command.spawn().map_err(|source| OpenError::Command { program: program.clone(), source })?;
        // Reap it when it exits so it does not linger as a zombie of the tray app.
        std::thread::spawn(move || child.wait());
        return Ok(());
    }
    app.opener()
        .open_url(&assistant.url, None::<&str>)
        .map_err(|e| OpenError::Url { url: assistant.url.clone(), message: e.to_string() })
}
