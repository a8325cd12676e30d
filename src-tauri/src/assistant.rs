//! Opens the sanctioned assistant: runs the policy's command in the blocked tool's
//! working directory — pointed at the masking gateway when the runtime hosts one — or opens its
//! URL in the default browser.

use std::path::Path;
use std::process::{Command, Stdio};
use tauri::AppHandle;
use tauri_plugin_opener::OpenerExt;
use warden_api::local::GatewayAccess;
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
/// where the developer was working), otherwise in the home folder; with `gateway`, its
/// environment points OpenAI- and Anthropic-compatible clients at the masking gateway.
pub fn open(
    app: &AppHandle,
    assistant: Option<&Assistant>,
    cwd: Option<&str>,
    gateway: Option<&GatewayAccess>,
) -> Result<(), OpenError> {
    let assistant = assistant.ok_or(OpenError::NoAssistant)?;
    if let Some(mut command) = assistant_command(assistant, cwd, gateway) {
        let program = assistant.command[0].clone();
        let mut child = command.spawn().map_err(|source| OpenError::Command { program, source })?;
        // Reap it when it exits so it does not linger as a zombie of the tray app.
        std::thread::spawn(move || child.wait());
        return Ok(());
    }
    app.opener()
        .open_url(&assistant.url, None::<&str>)
        .map_err(|e| OpenError::Url { url: assistant.url.clone(), message: e.to_string() })
}

/// The assistant's command as it starts (`None`: the policy names no command, only a URL).
pub fn assistant_command(assistant: &Assistant, cwd: Option<&str>, gateway: Option<&GatewayAccess>) -> Option<Command> {
    let (program, args) = assistant.command.split_first()?;
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    if let Some(dir) = cwd.map(Path::new).filter(|d| d.is_dir()) {
        command.current_dir(dir);
    } else if let Some(home) = std::env::var_os("HOME") {
        command.current_dir(home);
    }
    if let Some(gateway) = gateway {
        command.envs(gateway.client_env());
    }
    Some(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_assistant_starts_pointed_at_the_gateway_with_the_developers_token() {
        let assistant = Assistant {
            name: "Internal Assistant".into(),
            url: "https://assistant.internal.example/".into(),
            command: vec!["sh".into(), "-c".into(), "env".into()],
            tool: Some("qwen-code".into()),
            api_url: Some("https://assistant.internal.example/v1".into()),
            gateway_url: None,
            model: None,
        };
        let gateway = GatewayAccess {
            openai_base_url: "http://127.0.0.1:8788/v1".into(),
            anthropic_base_url: "http://127.0.0.1:8788".into(),
            token: "wgw_mine".into(),
        };
        let dir = tempfile::tempdir().unwrap();
        let mut command = assistant_command(&assistant, dir.path().to_str(), Some(&gateway)).unwrap();
        let output = command.stdout(Stdio::piped()).output().unwrap();
        let env = String::from_utf8(output.stdout).unwrap();
        for line in
            ["OPENAI_BASE_URL=http://127.0.0.1:8788/v1", "OPENAI_API_KEY=wgw_mine", "ANTHROPIC_API_KEY=wgw_mine"]
        {
            assert!(env.lines().any(|l| l == line), "{line} missing from:\n{env}");
        }
        let mut plain = assistant_command(&assistant, None, None).unwrap();
        let env = String::from_utf8(plain.stdout(Stdio::piped()).output().unwrap().stdout).unwrap();
        assert!(!env.contains("wgw_mine"));
        let url_only = Assistant { command: vec![], ..assistant };
        assert!(assistant_command(&url_only, None, Some(&gateway)).is_none());
    }
}
