//! The device token: kept in the OS keyring (Secret Service on Linux, Keychain on macOS,
//! Credential Manager on Windows), never in a file, never printed.
//!
//! Fallback when no keyring can be used (a headless server, a locked or absent Secret
//! Service): the token may be given in the `WARDEN_DEVICE_TOKEN` environment variable
//! (e.g. from a service manager's credential store). Enrollment without a keyring refuses and
//! says so, unless the caller explicitly asks to have the token handed back once
//! (`warden enroll --print-token`) to put it there.

use crate::state::Enrollment;
use std::fmt;

/// The keyring service name the token is stored under; the account is `DEVICE_ID@SERVER`.
pub const KEYRING_SERVICE: &str = "warden-device-token";

/// The environment variable that supplies the token when no keyring is usable.
pub const TOKEN_ENV: &str = "WARDEN_DEVICE_TOKEN";

/// A device token. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceToken(String);

impl DeviceToken {
    pub fn new(token: impl Into<String>) -> DeviceToken {
        DeviceToken(token.into())
    }

    /// The secret itself, for the `Authorization` header and the keyring only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DeviceToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceToken(<redacted>)")
    }
}

/// Where the token in use came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Keyring,
    Environment,
    /// A root-only file in the system service's state directory.
    File,
}

impl TokenSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenSource::Keyring => "os-keyring",
            TokenSource::Environment => "environment (WARDEN_DEVICE_TOKEN)",
            TokenSource::File => "root-only file",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "the OS keyring is not available ({detail}). Warden keeps its device token only there. \
         Unlock or start your keyring (on Linux: a Secret Service such as gnome-keyring or KWallet on the \
         session bus), or, where no keyring can exist, enroll with `--print-token` and supply the token \
         in the {TOKEN_ENV} environment variable"
    )]
    KeyringUnavailable { detail: String },
    #[error(
        "no device token in the OS keyring for device {device} (was the keyring reset?). \
         Enroll again with `warden enroll`, or supply it in {TOKEN_ENV}"
    )]
    Missing { device: String },
    #[error("the device token file {path}: {detail}")]
    File { path: std::path::PathBuf, detail: String },
}

/// Where a device keeps its token: a developer's runtime in the OS keyring; the system service
/// (`wardend`, root) in a file only root can read, inside its root-only state directory — a
/// service has no login keyring, and the developer it governs must never read the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenStorage {
    Keyring,
    File(std::path::PathBuf),
}

/// Stores the token where `storage` says (a file is replaced atomically, mode 0600).
pub fn save_to(storage: &TokenStorage, enrollment: &Enrollment, token: &DeviceToken) -> Result<(), TokenError> {
    match storage {
        TokenStorage::Keyring => save(enrollment, token),
        TokenStorage::File(path) => write_private(path, token.expose().as_bytes())
            .map_err(|e| TokenError::File { path: path.clone(), detail: e.to_string() }),
    }
}

/// The token from `storage` (for the keyring, `WARDEN_DEVICE_TOKEN` first, as [`load`]).
pub fn load_from(storage: &TokenStorage, enrollment: &Enrollment) -> Result<(DeviceToken, TokenSource), TokenError> {
    match storage {
        TokenStorage::Keyring => load(enrollment),
        TokenStorage::File(path) => match std::fs::read_to_string(path) {
            Ok(text) if !text.trim().is_empty() => Ok((DeviceToken::new(text.trim()), TokenSource::File)),
            Ok(_) => Err(TokenError::File { path: path.clone(), detail: "empty".into() }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                Err(TokenError::Missing { device: enrollment.device_id.clone() })
            }
            Err(error) => Err(TokenError::File { path: path.clone(), detail: error.to_string() }),
        },
    }
}

/// Writes `bytes` to `path` through a temporary file created 0600 (never readable by others,
/// not even for an instant), fsynced, then renamed over the old one.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let temporary = path.with_extension("tmp");
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

fn account(enrollment: &Enrollment) -> String {
    format!("{}@{}", enrollment.device_id, enrollment.server)
}

fn unavailable(error: keyring::Error) -> TokenError {
    // Error texts from the stores never include the secret.
    TokenError::KeyringUnavailable { detail: error.to_string() }
}

fn entry(enrollment: &Enrollment) -> Result<keyring::Entry, TokenError> {
    keyring::Entry::new(KEYRING_SERVICE, &account(enrollment)).map_err(unavailable)
}

/// Stores the token for this enrollment in the OS keyring.
pub fn save(enrollment: &Enrollment, token: &DeviceToken) -> Result<(), TokenError> {
    entry(enrollment)?.set_password(token.expose()).map_err(unavailable)
}

/// The token for this enrollment: `WARDEN_DEVICE_TOKEN` when set, else the OS keyring.
pub fn load(enrollment: &Enrollment) -> Result<(DeviceToken, TokenSource), TokenError> {
    if let Some(token) = std::env::var(TOKEN_ENV).ok().filter(|t| !t.trim().is_empty()) {
        return Ok((DeviceToken::new(token.trim()), TokenSource::Environment));
    }
    load_from_keyring(enrollment).map(|token| (token, TokenSource::Keyring))
}

/// The token from the OS keyring only.
pub fn load_from_keyring(enrollment: &Enrollment) -> Result<DeviceToken, TokenError> {
    match entry(enrollment)?.get_password() {
        Ok(token) => Ok(DeviceToken::new(token)),
        Err(keyring::Error::NoEntry) => Err(TokenError::Missing { device: enrollment.device_id.clone() }),
        Err(error) => Err(unavailable(error)),
    }
}

/// Removes the token (re-enrollment, tests). A missing entry is not an error.
pub fn forget(enrollment: &Enrollment) -> Result<(), TokenError> {
    match entry(enrollment)?.delete_credential() {
        Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
        Err(error) => Err(unavailable(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_is_private_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device-token");
        let storage = TokenStorage::File(path.clone());
        let enrollment = Enrollment {
            server: "http://127.0.0.1:1".into(),
            device_id: "dev-1".into(),
            user: "dev".into(),
            local_users: Vec::new(),
            hostname: "h".into(),
            policy_public_key: String::new(),
            enrolled_at: 0,
            server_ca: None,
            token_rotated_at: None,
        };
        assert!(matches!(load_from(&storage, &enrollment), Err(TokenError::Missing { .. })));
        save_to(&storage, &enrollment, &DeviceToken::new("wdev_one")).unwrap();
        save_to(&storage, &enrollment, &DeviceToken::new("wdev_two")).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let (token, source) = load_from(&storage, &enrollment).unwrap();
        assert_eq!((token.expose(), source), ("wdev_two", TokenSource::File));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let token = DeviceToken::new("wdt_supersecret");
        assert!(!format!("{token:?}").contains("supersecret"));
        assert_eq!(token.expose(), "wdt_supersecret");
    }
}
