//! The masking gateway a developer runs themselves (`warden gateway` without the system service):
//! its note in the state directory (`gateway.json`: pid, where it listens, what it forwards to,
//! written while it runs) and its client token (`gateway-token`, mode 0600). `warden status`,
//! `warden gateway --print-env` and the personal tray read them here.

use crate::StateDir;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use warden_api::local::GatewayAccess;

/// Written to the state directory while the gateway runs.
pub const GATEWAY_STATUS_FILE: &str = "gateway.json";
/// The client token (mode 0600).
pub const GATEWAY_TOKEN_FILE: &str = "gateway-token";

/// What a running personal gateway says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayNote {
    pub pid: u32,
    pub listen: SocketAddr,
    pub upstream: String,
}

/// Where the note of `state`'s gateway lives.
pub fn note_path(state: &StateDir) -> PathBuf {
    state.root().join(GATEWAY_STATUS_FILE)
}

/// Where the token of `state`'s gateway lives.
pub fn token_path(state: &StateDir) -> PathBuf {
    state.root().join(GATEWAY_TOKEN_FILE)
}

/// The gateway running for `state`: its note, if its process lives and its port answers.
pub fn running(state: &StateDir) -> Option<GatewayNote> {
    let text = std::fs::read_to_string(note_path(state)).ok()?;
    let note: GatewayNote = serde_json::from_str(&text).ok()?;
    if !Path::new(&format!("/proc/{}", note.pid)).exists() {
        return None;
    }
    std::net::TcpStream::connect_timeout(&note.listen, Duration::from_secs(1)).ok()?;
    Some(note)
}

/// How a client reaches the gateway running for `state`, with its token; `None` when none runs
/// or its token cannot be read.
pub fn access(state: &StateDir) -> Option<GatewayAccess> {
    let note = running(state)?;
    let token = std::fs::read_to_string(token_path(state)).ok()?.trim().to_owned();
    (!token.is_empty()).then(|| GatewayAccess {
        openai_base_url: format!("http://{}/v1", note.listen),
        anthropic_base_url: format!("http://{}", note.listen),
        token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_counts_only_while_its_process_lives_and_its_port_answers() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        assert_eq!(access(&state), None, "no note");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let note = GatewayNote {
            pid: std::process::id(),
            listen: listener.local_addr().unwrap(),
            upstream: "http://127.0.0.1:9/v1".into(),
        };
        std::fs::write(note_path(&state), serde_json::to_string(&note).unwrap()).unwrap();
        assert_eq!(running(&state), Some(note.clone()));
        assert_eq!(access(&state), None, "no token yet");
        std::fs::write(token_path(&state), "wgw_mine\n").unwrap();
        let access = access(&state).unwrap();
        assert_eq!((access.token.as_str(), access.openai_base_url.ends_with("/v1")), ("wgw_mine", true));
        drop(listener);
        assert_eq!(running(&state), None, "the port no longer answers");
    }
}
