//! Enrollment: a device trades the organisation's enroll secret for its own id and token.

use serde::{Deserialize, Serialize};

/// `POST /api/v1/enroll`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The organisation's enroll secret (server config `WARDEN_ENROLL_SECRET`).
    pub secret: String,
    /// The machine's host name, shown to admins.
    pub hostname: String,
    /// The device's owner account (`dev@corp.example`, or a login name): exception requests
    /// are filed as, and exceptions granted to, this account. The device binds its local user
    /// to it (`warden_client::Enrollment::local_users`).
    pub user: String,
    /// `linux`, `macos` or `windows`.
    #[serde(default)]
    pub platform: String,
    /// Version of the Warden agent.
    #[serde(default)]
    pub agent_version: String,
}

/// The answer to a successful enrollment. The token is shown exactly once: the server keeps
/// only its SHA-256 hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub device_id: String,
    /// Bearer token for every `/api/v1/device/…` call. Store it in the OS keyring.
    pub device_token: String,
    /// The server's Ed25519 policy-signing key (base64 of 32 bytes). Pin it: a policy signed by
    /// any other key must be rejected.
    pub policy_public_key: String,
    /// The active policy's version at enrollment time.
    pub policy_version: i64,
}

/// A device as the server knows it (`GET /api/v1/device/me`, admin device list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub id: String,
    pub hostname: String,
    pub user: String,
    pub platform: String,
    pub agent_version: String,
    /// Seconds since the epoch.
    pub enrolled_at: i64,
    /// When the server last heard from it (its last event upload, which every sync sends as
    /// the heartbeat), seconds since the epoch on the server's clock.
    pub last_seen_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
    /// Who revoked it, as the revoking call named them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_by: Option<String>,
    /// Not revoked, and not heard from for more than two sync intervals: the service was
    /// stopped, the machine is off or offline — or someone silenced it.
    #[serde(default)]
    pub silent: bool,
    /// The service's state by its newest start or stop event, if it ever sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceState>,
}

/// Whether the device's service runs, by its newest `service-start` / `service-stop` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceStatus {
    Running,
    Stopped,
}

/// A device's service as its newest start or stop event left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceState {
    pub status: ServiceStatus,
    /// When it started or stopped, milliseconds since the epoch (the device's clock).
    pub at_ms: i64,
    pub version: String,
    /// Why it stopped (`signal SIGTERM`); absent while running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `GET /api/v1/admin/devices`: every device, and the setting that decides which are silent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceList {
    /// The server's sync interval; a device is silent after two without a heartbeat.
    pub sync_interval_seconds: u64,
    pub devices: Vec<DeviceInfo>,
}
