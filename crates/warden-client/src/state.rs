//! The device's files in its state directory: the enrollment (server, device id, pinned key —
//! never the token) and the event/request store's location. The caches of what the server
//! signed (policy, exception list) are `crate::cache`'s: only it reads them, verified.
//!
//! Every file is written atomically (temporary file, fsync, rename), so a crash leaves either
//! the old or the new version, never half of one.

use crate::error::ClientError;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use warden_policy::Accounts;

/// Where a device keeps its state: `$WARDEN_STATE_DIR`, else `$XDG_STATE_HOME/warden`, else
/// `~/.local/state/warden` (the same folder the tray app and agent use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> StateDir {
        StateDir { root: root.into() }
    }

    /// The default location, from the environment.
    pub fn from_env() -> StateDir {
        if let Some(dir) = std::env::var_os("WARDEN_STATE_DIR").filter(|d| !d.is_empty()) {
            return StateDir::new(dir);
        }
        if let Some(dir) = std::env::var_os("XDG_STATE_HOME").map(PathBuf::from).filter(|p| p.is_absolute()) {
            return StateDir::new(dir.join("warden"));
        }
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        StateDir::new(home.join(".local/state/warden"))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The durable event log and outbox (`warden-store`).
    pub fn events_db(&self) -> PathBuf {
        self.root.join("events.db")
    }

    pub fn enrollment_file(&self) -> PathBuf {
        self.root.join("enrollment.json")
    }

    /// The enrollment, if this device is enrolled.
    pub fn load_enrollment(&self) -> Result<Option<Enrollment>, ClientError> {
        read_json(&self.enrollment_file())
    }

    pub fn save_enrollment(&self, enrollment: &Enrollment) -> Result<(), ClientError> {
        write_json_atomically(&self.enrollment_file(), enrollment)
    }
}

/// What enrollment leaves on disk. The device token is *not* here: it is in the OS keyring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    /// Base URL, e.g. `http://127.0.0.1:8470` (no trailing slash).
    pub server: String,
    pub device_id: String,
    /// The device's owner account (`dev@corp.example`, or a login name): the server files
    /// this device's exception requests as, and grants its exceptions to, this account.
    pub user: String,
    /// The local users bound to the owner account at enrollment (the one who enrolled): their
    /// launches are attributed to, and covered by the exceptions of, [`Enrollment::user`].
    /// Empty in enrollments written before accounts were bound; see [`Enrollment::accounts`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub local_users: Vec<LocalUser>,
    pub hostname: String,
    /// The server's Ed25519 policy key (base64), pinned at enrollment.
    pub policy_public_key: String,
    /// Seconds since the epoch.
    pub enrolled_at: i64,
    /// PEM certificates the server's certificate must chain to (from the enrollment code);
    /// `None`: the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_ca: Option<String>,
    /// When the device token last rotated, seconds since the epoch (`None`: at enrollment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_rotated_at: Option<i64>,
}

/// A local user of the device, as the OS names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalUser {
    /// The numeric user id the kernel attributes processes to.
    pub uid: u32,
    /// The login name, for people reading the file.
    pub login: String,
}

impl Enrollment {
    /// Which account each local uid is bound to: every uid in [`Enrollment::local_users`] to
    /// the owner account. An enrollment from before accounts were bound binds no uid, so its
    /// launches keep being matched by login name (which was then the enrolled user).
    pub fn accounts(&self) -> Accounts {
        let mut accounts = Accounts::default();
        for local in &self.local_users {
            accounts.bind(local.uid, self.user.clone());
        }
        accounts
    }
}

pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, ClientError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ClientError::StateFile { path: path.to_path_buf(), source }),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| ClientError::StateFileFormat { path: path.to_path_buf(), source })
}

/// Writes `value` to `path` so a crash leaves the old or the new file, never a torn one.
pub(crate) fn write_json_atomically<T: Serialize>(path: &Path, value: &T) -> Result<(), ClientError> {
    let io = |source| ClientError::StateFile { path: path.to_path_buf(), source };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let text = serde_json::to_vec_pretty(value).expect("state types always serialize");
    let temporary = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state"),
        std::process::id()
    ));
    let mut file = std::fs::File::create(&temporary).map_err(io)?;
    file.write_all(&text).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&temporary, path).map_err(io)?;
    // The rename is durable only once the directory entry is.
    if let Ok(directory) = std::fs::File::open(dir) {
        let _ = directory.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrollment_round_trips_and_absence_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("nested"));
        assert_eq!(state.load_enrollment().unwrap(), None);
        let enrollment = Enrollment {
            server: "http://127.0.0.1:1".into(),
            device_id: "d1".into(),
            user: "dev@corp.example".into(),
            local_users: vec![LocalUser { uid: 1000, login: "dev".into() }],
            hostname: "box".into(),
            policy_public_key: "key".into(),
            enrolled_at: 5,
            server_ca: None,
            token_rotated_at: None,
        };
        state.save_enrollment(&enrollment).unwrap();
        assert_eq!(state.load_enrollment().unwrap(), Some(enrollment));
        let accounts = state.load_enrollment().unwrap().unwrap().accounts();
        assert_eq!(accounts.account_of(1000), Some("dev@corp.example"));
        assert_eq!(accounts.account_of(1001), None, "another local user is not the owner");
        let names: Vec<_> = std::fs::read_dir(state.root()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["enrollment.json"], "no temporary file is left behind");
    }

    #[test]
    fn an_enrollment_from_before_accounts_were_bound_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let old = r#"{"server":"http://127.0.0.1:1","device_id":"d1","user":"dev","hostname":"box",
            "policy_public_key":"key","enrolled_at":5}"#;
        std::fs::write(state.enrollment_file(), old).unwrap();
        let enrollment = state.load_enrollment().unwrap().unwrap();
        assert_eq!((enrollment.user.as_str(), enrollment.local_users.len()), ("dev", 0));
        assert!(enrollment.accounts().is_empty());
    }

    #[test]
    fn a_damaged_state_file_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        std::fs::write(state.enrollment_file(), "{not json").unwrap();
        let error = state.load_enrollment().unwrap_err().to_string();
        assert!(error.contains("enrollment.json"), "{error}");
    }
}
