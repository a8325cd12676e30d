//! Client tokens: each local user's client presents its own token as its API key, and the gateway
//! knows by it whom a request is for ([`ClientTokens`]). `warden gateway` run by a developer keeps
//! one in their state directory (mode 0600, [`load_or_create`]); the service hands each user theirs
//! over its local API, where the kernel names the caller. Another local user, who has neither, cannot
//! use the gateway even though it listens on a loopback port.

use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, RwLock};

/// The tokens a gateway accepts, each naming the client it belongs to (a person: account or login).
/// Cheap to clone; all clones share one set, so tokens issued while the gateway runs are accepted at
/// once.
#[derive(Clone, Default)]
pub struct ClientTokens {
    tokens: Arc<RwLock<Vec<(String, String)>>>,
}

impl std::fmt::Debug for ClientTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens are credentials: only how many there are is printed.
        let count = self.tokens.read().map_or(0, |t| t.len());
        f.debug_struct("ClientTokens").field("tokens", &count).finish()
    }
}

impl ClientTokens {
    /// A set with one token for `client`.
    pub fn single(token: impl Into<String>, client: impl Into<String>) -> ClientTokens {
        let tokens = ClientTokens::default();
        tokens.insert(token, client);
        tokens
    }

    /// Accepts `token` for `client` from now on (replacing `client`'s earlier token, if any).
    pub fn insert(&self, token: impl Into<String>, client: impl Into<String>) {
        let (token, client) = (token.into(), client.into());
        let mut tokens = self.tokens.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        tokens.retain(|(_, c)| *c != client);
        tokens.push((token, client));
    }

    /// The client `given` belongs to. Every token is compared, each in constant time, so the answer's
    /// timing says nothing about how much of a token was right.
    pub fn client_of(&self, given: &str) -> Option<String> {
        let tokens = self.tokens.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut found = None;
        for (token, client) in tokens.iter() {
            if constant_time_eq(given.as_bytes(), token.as_bytes()) {
                found = Some(client.clone());
            }
        }
        found
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A new token: `wgw_` + 64 hex digits (256 random bits).
pub fn new_token() -> io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(format!("no randomness: {e}")))?;
    Ok(std::iter::once("wgw_".to_owned()).chain(bytes.iter().map(|b| format!("{b:02x}"))).collect())
}

/// The token in `path`, or a new one (`wgw_` + 64 hex digits, 256 random bits) written there first.
/// An existing file readable by others is refused rather than trusted.
pub fn load_or_create(path: &Path) -> io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            check_private(path)?;
            let token = text.trim().to_owned();
            if token.len() < 32 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} holds no valid token", path.display()),
                ));
            }
            Ok(token)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let token = new_token()?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path)?;
            file.write_all(token.as_bytes())?;
            file.sync_all()?;
            Ok(token)
        }
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
fn check_private(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is readable by other users (mode {:o}); `chmod 600` it or delete it",
                path.display(),
                mode & 0o777
            ),
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_private_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/gateway-token");
        let token = load_or_create(&path).unwrap();
        assert!(token.starts_with("wgw_") && token.len() == 68);
        assert_eq!(load_or_create(&path).unwrap(), token);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(load_or_create(&path).unwrap_err().to_string().contains("readable by other users"));
        }
    }

    #[test]
    fn each_token_names_its_own_client_and_a_new_one_replaces_the_old() {
        let tokens = ClientTokens::single("wgw_alice", "alice");
        tokens.insert("wgw_bob", "bob");
        assert_eq!(tokens.client_of("wgw_alice").as_deref(), Some("alice"));
        assert_eq!(tokens.client_of("wgw_bob").as_deref(), Some("bob"));
        for wrong in ["", "wgw_", "wgw_alic", "wgw_alicee", "WGW_ALICE"] {
            assert_eq!(tokens.client_of(wrong), None, "{wrong:?}");
        }
        tokens.insert("wgw_alice_2", "alice");
        assert_eq!(tokens.client_of("wgw_alice"), None, "the replaced token no longer works");
        assert_eq!(tokens.client_of("wgw_alice_2").as_deref(), Some("alice"));
        assert!(!format!("{tokens:?}").contains("wgw_"), "Debug never prints a token");
    }
}
