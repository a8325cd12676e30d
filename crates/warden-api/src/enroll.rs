//! Enrollment: a device trades a one-time enrollment code (bound to a person) — or, where no
//! account exists yet, the organisation's enroll secret — for its own id and token; the device
//! token rotates later ([`TokenRotation`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use serde::{Deserialize, Serialize};

/// `POST /api/v1/enroll`: with a [`EnrollRequest::code`], or with the shared
/// [`EnrollRequest::secret`] (refused once the server has accounts: then devices belong to people).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The organisation's enroll secret (server config `WARDEN_ENROLL_SECRET`); empty with a code.
    #[serde(default)]
    pub secret: String,
    /// The one-time secret of an [`EnrollmentCode`] (`wenr_…`): the device belongs to the person
    /// the code was made for, whatever [`EnrollRequest::user`] says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The machine's host name, shown to admins.
    pub hostname: String,
    /// The device's owner account (`dev@corp.example`, or a login name): exception requests
    /// are filed as, and exceptions granted to, this account. The device binds its local user
    /// to it (`warden_client::Enrollment::local_users`). With a code: empty, or the code's person.
    #[serde(default)]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollResponse {
    pub device_id: String,
    /// Bearer token for every `/api/v1/device/…` call. Store it in the OS keyring.
    pub device_token: String,
    /// The server's Ed25519 policy-signing key (base64 of 32 bytes). Pin it: a policy signed by
    /// any other key must be rejected.
    pub policy_public_key: String,
    /// The active policy's version at enrollment time.
    pub policy_version: i64,
    /// The owner account the server recorded (with a code: the code's person).
    #[serde(default)]
    pub user: String,
}

/// Prefix of an enrollment code's text form.
pub const ENROLLMENT_CODE_PREFIX: &str = "WARDEN-ENROLL-1.";

/// What a person copies from the console to enroll their device: where the server is, the
/// one-time secret, whom the device will belong to, and the CA certificate(s) the device pins for
/// that server (a CA, not the leaf, so a certificate renewal does not cut the fleet off).
///
/// Text form: [`ENROLLMENT_CODE_PREFIX`] + base64url (no padding) of this struct as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrollmentCode {
    /// The server's base URL (`https://warden.corp.example`).
    pub server: String,
    /// The one-time secret (`wenr_` + 64 hex digits); the server keeps only its hash.
    pub code: String,
    /// The account the device will belong to.
    pub user: String,
    /// When the code stops working, seconds since the epoch.
    pub expires_at: i64,
    /// PEM certificates the device trusts for this server instead of the system's roots; absent
    /// for a publicly trusted certificate or plain HTTP on loopback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_ca: Option<String>,
}

/// Why a text is not an enrollment code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrollmentCodeError {
    #[error("an enrollment code starts with {ENROLLMENT_CODE_PREFIX} (copy the whole code from the console)")]
    Prefix,
    #[error("the enrollment code is damaged (copy it again): {0}")]
    Damaged(String),
}

impl EnrollmentCode {
    /// The text a person copies.
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("an enrollment code serializes");
        format!("{ENROLLMENT_CODE_PREFIX}{}", BASE64URL.encode(json))
    }

    /// Reads the text form (surrounding white space and line breaks a terminal or mail added are
    /// ignored).
    pub fn decode(text: &str) -> Result<EnrollmentCode, EnrollmentCodeError> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let body = compact.strip_prefix(ENROLLMENT_CODE_PREFIX).ok_or(EnrollmentCodeError::Prefix)?;
        let json = BASE64URL.decode(body).map_err(|e| EnrollmentCodeError::Damaged(e.to_string()))?;
        serde_json::from_slice(&json).map_err(|e| EnrollmentCodeError::Damaged(e.to_string()))
    }
}

/// `POST /api/v1/admin/enrollment-codes`: a signed-in person makes a code for their own device;
/// an admin may name someone else.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrollmentCodeCreate {
    /// Whose device it enrolls; default the signed-in account. Naming another person takes the
    /// admin role (or the admin token, which must name one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// How long the code works, 1–168 hours; default 24.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 168))]
    pub valid_hours: Option<u32>,
}

/// The answer to [`EnrollmentCodeCreate`]: shown once, the server keeps only a hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollmentCodeIssued {
    /// [`EnrollmentCode::encode`]: what `warden enroll --code` takes.
    pub enrollment_code: String,
    pub user: String,
    /// Seconds since the epoch.
    pub expires_at: i64,
}

/// `POST /api/v1/device/token`: a fresh device token. The old one keeps working until the new
/// one is first used, so an answer lost on the way never locks the device out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenRotation {
    pub device_token: String,
}

/// A device as the server knows it (`GET /api/v1/device/me`, admin device list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ServiceStatus {
    Running,
    Stopped,
}

/// A device's service as its newest start or stop event left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceList {
    /// The server's sync interval; a device is silent after two without a heartbeat.
    pub sync_interval_seconds: u64,
    pub devices: Vec<DeviceInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_survive_copying_and_damage_is_named() {
        let code = EnrollmentCode {
            server: "https://warden.corp.example".into(),
            code: format!("wenr_{}", "ab".repeat(32)),
            user: "dev@corp.example".into(),
            expires_at: 1_800_000_000,
            server_ca: Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into()),
        };
        let text = code.encode();
        assert!(text.starts_with(ENROLLMENT_CODE_PREFIX) && !text.contains(char::is_whitespace), "{text}");
        // A terminal or a mail client wrapped it and added spaces around it.
        let (head, tail) = text.split_at(40);
        assert_eq!(EnrollmentCode::decode(&format!("  {head}\n  {tail}\n")).unwrap(), code);
        let cases = [
            ("", EnrollmentCodeError::Prefix),
            ("wenr_abc", EnrollmentCodeError::Prefix),
            ("WARDEN-ENROLL-2.e30", EnrollmentCodeError::Prefix),
        ];
        for (text, error) in cases {
            assert_eq!(EnrollmentCode::decode(text).unwrap_err(), error, "{text:?}");
        }
        for damaged in [&text[..text.len() - 3], "WARDEN-ENROLL-1.e30", "WARDEN-ENROLL-1.!!"] {
            assert!(matches!(EnrollmentCode::decode(damaged), Err(EnrollmentCodeError::Damaged(_))), "{damaged:?}");
        }
    }
}
