//! The long-poll a device waits on to hear of decisions and new policy at once.

use serde::{Deserialize, Serialize};

/// What changed for a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// One of this device's exception requests changed state (fetch `/device/exceptions`).
    Exception,
    /// A new policy is active (fetch `/device/policy`).
    Policy,
    /// This device's token was revoked.
    Revoked,
}

/// One change, numbered by the server's change feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Change {
    pub seq: i64,
    pub kind: ChangeKind,
    /// The exception request id, or the policy version.
    pub subject: String,
}

/// `GET /api/v1/device/wait?since=CURSOR&timeout=SECONDS`: returns as soon as something for this
/// device changed after `CURSOR`, or empty at the timeout. Pass `cursor` back as the next `since`.
/// A first call with `since=0` returns the current cursor immediately, with every change so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WaitResponse {
    pub cursor: i64,
    pub changes: Vec<Change>,
}
