//! Exception requests: what a developer files, what an approver decides, and the audit trail.
//!
//! The state machine lives here, once, so server and devices agree on it:
//! `pending → approved | denied | withdrawn`, `approved → expired | revoked`; every other state
//! is final.

use crate::ExceptionsEnvelope;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use warden_policy::{Exception, Guardrails};

/// The shortest justification accepted, in characters (after trimming).
pub const MIN_JUSTIFICATION_CHARS: usize = 20;

/// Where an exception request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ExceptionState {
    Pending,
    Approved,
    Denied,
    Withdrawn,
    Expired,
    Revoked,
}

impl ExceptionState {
    pub const ALL: [ExceptionState; 6] = [
        ExceptionState::Pending,
        ExceptionState::Approved,
        ExceptionState::Denied,
        ExceptionState::Withdrawn,
        ExceptionState::Expired,
        ExceptionState::Revoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExceptionState::Pending => "pending",
            ExceptionState::Approved => "approved",
            ExceptionState::Denied => "denied",
            ExceptionState::Withdrawn => "withdrawn",
            ExceptionState::Expired => "expired",
            ExceptionState::Revoked => "revoked",
        }
    }

    pub fn parse(text: &str) -> Option<ExceptionState> {
        ExceptionState::ALL.into_iter().find(|state| state.as_str() == text)
    }

    /// Whether the state machine allows `self → next`.
    pub fn can_become(self, next: ExceptionState) -> bool {
        use ExceptionState::*;
        matches!((self, next), (Pending, Approved | Denied | Withdrawn) | (Approved, Expired | Revoked))
    }
}

impl fmt::Display for ExceptionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks that a justification says something: long enough, several distinct letters, more
/// than one word. Returns the reason it is not, for the form and the API error alike.
pub fn check_justification(text: &str) -> Result<(), String> {
    let trimmed = text.trim();
    let chars = trimmed.chars().count();
    if chars < MIN_JUSTIFICATION_CHARS {
        return Err(format!(
            "justification must be at least {MIN_JUSTIFICATION_CHARS} characters (has {chars}); say why you need the tool"
        ));
    }
    let distinct: BTreeSet<char> =
        trimmed.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect();
    let words = trimmed.split_whitespace().filter(|w| w.chars().any(char::is_alphanumeric)).count();
    if distinct.len() < 6 || words < 3 {
        return Err("justification must be a sentence in words (at least three), not repeated characters".into());
    }
    Ok(())
}

/// `POST /api/v1/device/exceptions`: filed by the device's user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExceptionRequestCreate {
    /// Catalog id of the tool.
    pub tool: String,
    /// Why; see [`check_justification`].
    // MIN_JUSTIFICATION_CHARS: the derive takes a literal; the server's OpenAPI test compares them.
    #[cfg_attr(feature = "openapi", schema(min_length = 20))]
    pub justification: String,
    /// The directory (a repository) the exception is limited to, as a canonical absolute path
    /// (`warden_policy::check_scope`; the device resolves `..` and symlinks before filing);
    /// absent means everywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Requested length in seconds; at most the policy's `exceptions.max_duration`.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub duration_seconds: u64,
    /// A device-chosen id (e.g. the outbox row's UUID) that makes a retried filing idempotent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// An approver's decision (`…/approve`, `…/deny`, `…/revoke`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Who decides (name or e-mail) when the caller holds the admin token and no accounts are set
    /// up; a signed-in account decides as itself and this is ignored. Must differ from the
    /// requesting user.
    #[serde(default)]
    pub approver: String,
    /// Required when denying or revoking.
    #[serde(default)]
    pub comment: String,
    /// Approve only: grant a shorter time than requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub duration_seconds: Option<u64>,
    /// Approve only: conditions the exception carries (through the company gateway, no risky
    /// modes, only these MCP servers); checked with [`warden_policy::check_guardrails`].
    #[serde(default, skip_serializing_if = "Guardrails::is_empty")]
    pub guardrails: Guardrails,
}

/// An exception request and, once approved, the exception it grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExceptionRecord {
    pub id: String,
    pub device_id: String,
    /// The requesting device's owner account (the person the exception is granted to).
    pub user: String,
    pub tool: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub justification: String,
    pub requested_seconds: u64,
    /// Already `expired` once `expires_at` has passed, even before the server's sweep records it.
    pub state: ExceptionState,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granted_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// The conditions the approver attached (empty: none).
    #[serde(default, skip_serializing_if = "Guardrails::is_empty")]
    pub guardrails: Guardrails,
    /// The same in words ([`Guardrails::describe`]), for pages that show them; empty for none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub conditions: String,
}

impl ExceptionRecord {
    /// The exception to enforce, while the request is approved.
    pub fn exception(&self) -> Option<Exception> {
        match (self.state, self.starts_at, self.expires_at) {
            (ExceptionState::Approved, Some(starts_at), Some(expires_at)) => Some(Exception {
                id: self.id.clone(),
                user: self.user.clone(),
                tool: self.tool.clone(),
                scope: self.scope.clone(),
                starts_at,
                expires_at,
                guardrails: self.guardrails.clone(),
            }),
            _ => None,
        }
    }
}

/// `GET /api/v1/device/exceptions`: this device's requests, and the exceptions in force now,
/// signed for this device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExceptionList {
    /// Every request of this device, newest first: for display only (not signed; a device
    /// never enforces from it).
    pub requests: Vec<ExceptionRecord>,
    /// The exceptions in force (approved, not expired), signed for this device with a fresh
    /// sequence number: a device enforces only what [`crate::verify_exceptions`] accepts here.
    pub signed: ExceptionsEnvelope,
}

/// A request as the approver sees it: with how often the user hit the block recently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PendingView {
    #[serde(flatten)]
    pub request: ExceptionRecord,
    pub hostname: String,
    /// Launches of this tool by this user that the policy blocked in the last 7 days.
    pub blocked_last_7_days: i64,
}

/// One transition in the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub seq: i64,
    pub request_id: String,
    /// `None` for the filing itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_state: Option<ExceptionState>,
    pub to_state: ExceptionState,
    /// The user, the approver, or `system` (expiry).
    pub actor: String,
    pub at: i64,
    #[serde(default)]
    pub comment: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ExceptionState::*;

    #[test]
    fn only_the_documented_transitions_are_allowed() {
        let allowed: Vec<(ExceptionState, ExceptionState)> = ExceptionState::ALL
            .into_iter()
            .flat_map(|from| ExceptionState::ALL.into_iter().map(move |to| (from, to)))
            .filter(|(from, to)| from.can_become(*to))
            .collect();
        assert_eq!(
            allowed,
            vec![
                (Pending, Approved),
                (Pending, Denied),
                (Pending, Withdrawn),
                (Approved, Expired),
                (Approved, Revoked)
            ]
        );
    }

    #[test]
    fn states_round_trip_through_text() {
        for state in ExceptionState::ALL {
            assert_eq!(ExceptionState::parse(state.as_str()), Some(state));
            assert_eq!(serde_json::to_string(&state).unwrap(), format!("\"{state}\""));
        }
        assert_eq!(ExceptionState::parse("approve"), None);
    }

    #[test]
    fn justifications_must_say_something() {
        let cases = [
            ("", false),
            ("need it", false),
            ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
            ("ab ab ab ab ab ab ab ab ab ab", false),
            ("asdfghjklqwertyuiopzxcv", false),
            ("Pairing with vendor on the SDK migration this week", true),
            ("  Évaluer l'outil pour le projet interne  ", true),
        ];
        for (text, ok) in cases {
            assert_eq!(check_justification(text).is_ok(), ok, "{text:?}");
        }
    }
}
