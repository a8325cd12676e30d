//! Policy as served: the signed envelope devices fetch, and the admin's upload.

use serde::{Deserialize, Serialize};

/// `GET /api/v1/device/policy`: the active policy, signed by the server.
///
/// `policy` is the canonical JSON text (`warden_policy::Policy::to_json`) exactly as signed;
/// verify with [`crate::verify_envelope`] against the key pinned at enrollment before parsing it.
/// The response also carries an `ETag` header equal to `etag`; send it back as `If-None-Match`
/// and an unchanged policy is answered `304 Not Modified` with no body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyEnvelope {
    /// Increases by one with every upload.
    pub version: i64,
    /// Quoted, as in the HTTP header: `"7-3f2a…"`.
    pub etag: String,
    /// The canonical policy JSON, the signed bytes.
    pub policy: String,
    /// Ed25519 signature (base64, 64 bytes) over [`crate::signed_message`]`(version, policy)`.
    pub signature: String,
    /// The signing key (base64, 32 bytes). Informational: trust only the pinned key.
    pub public_key: String,
    /// Seconds since the epoch.
    pub created_at: i64,
}

/// `POST /api/v1/admin/policies`: a policy file as the admin wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyUpload {
    /// The TOML (or, when `file_name` ends in `.json`, the JSON wire form).
    pub source: String,
    /// Used in error locations; defaults to `policy.toml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// Who uploaded it (shown in the history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded_by: Option<String>,
    /// Make it the active policy at once (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activate: Option<bool>,
}

/// One stored policy version (admin views).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyVersion {
    pub version: i64,
    pub name: String,
    pub etag: String,
    pub active: bool,
    pub uploaded_by: String,
    pub uploaded_at: i64,
    /// The file as uploaded (only in single-version answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Set when activating an older version published its content again as this new version
    /// (devices never go back to a lower version number): the version whose content this is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub republished_from: Option<i64>,
}
