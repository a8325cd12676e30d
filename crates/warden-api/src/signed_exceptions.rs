//! The signed exception list: what the server signs for one device, and the one check a device
//! (and every test) applies before enforcing it.
//!
//! The signed message is `b"warden-exceptions\n" + body`, where `body` is the JSON text of a
//! [`SignedExceptions`] exactly as the server wrote it. The policy's message starts
//! `b"warden-policy\n"`: the two prefixes differ, so no byte string is both, and a policy
//! signature can never pass as an exception list's (or the reverse) although one key signs both.
//!
//! Replay: the body names the device, carries a sequence number the server raises on every
//! fetch, and an expiry. A device keeps the highest sequence it accepted and refuses lower
//! ones, refuses another device's list, and refuses a list past its `valid_until`.

use crate::signing::{PolicySigningKey, SignatureError, decode_key, decode_signature};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::Signer;
use serde::{Deserialize, Serialize};
use warden_policy::Exception;

/// The domain prefix of an exception list's signed message.
pub const EXCEPTIONS_DOMAIN: &[u8] = b"warden-exceptions\n";

/// How long a list the server signs stays valid, in seconds: a device offline for longer
/// enforces no exception until it syncs again (fail closed), and a saved list can be replayed
/// at most this long after it was issued, even where the device's highest sequence was lost.
pub const EXCEPTION_LIST_VALIDITY_SECONDS: i64 = 24 * 3600;

/// The signed content: the exceptions one device enforces, as of `issued_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignedExceptions {
    /// The device the list was issued to.
    pub device_id: String,
    /// Raised by the server on every list it issues to this device (1, 2, …).
    pub sequence: i64,
    /// Seconds since the epoch, server time.
    pub issued_at: i64,
    /// Seconds since the epoch after which the list is void.
    pub valid_until: i64,
    /// Approved and not expired at `issued_at`: exactly what the device enforces.
    pub exceptions: Vec<Exception>,
}

/// A [`SignedExceptions`] as sent and as cached: the body text and its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExceptionsEnvelope {
    /// The JSON text of a [`SignedExceptions`], the signed bytes (verify before parsing).
    pub body: String,
    /// Ed25519 signature (base64, 64 bytes) over [`exceptions_message`]`(body)`.
    pub signature: String,
}

/// The bytes the server signs for one exception list.
pub fn exceptions_message(body: &str) -> Vec<u8> {
    let mut message = Vec::with_capacity(EXCEPTIONS_DOMAIN.len() + body.len());
    message.extend_from_slice(EXCEPTIONS_DOMAIN);
    message.extend_from_slice(body.as_bytes());
    message
}

/// What the device expects of a list: its own id, the highest sequence it accepted so far,
/// and its clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListExpectation<'a> {
    pub device_id: &'a str,
    /// The highest sequence accepted before; `None` before the first list.
    pub highest_sequence: Option<i64>,
    /// Seconds since the epoch.
    pub now: i64,
}

/// Why an exception list was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListRejected {
    #[error("{0}")]
    Signature(SignatureError),
    #[error("the signed body is not an exception list: {0}")]
    Unreadable(String),
    #[error("the list was issued to device {issued_to:?}, not to this device {device_id:?}")]
    WrongDevice { issued_to: String, device_id: String },
    #[error("sequence {sequence} is lower than {highest}, already accepted: an old list replayed")]
    Replayed { sequence: i64, highest: i64 },
    /// Returned only for a list that passed every other check (expiry is checked last): its
    /// sequence still counts as accepted, it only no longer grants anything.
    #[error("list {sequence} expired at {valid_until} (now {now})")]
    Expired { sequence: i64, valid_until: i64, now: i64 },
}

impl ListRejected {
    /// A stable kebab-case name of the reason, for incident details and tests.
    pub fn code(&self) -> &'static str {
        match self {
            ListRejected::Signature(_) => "signature",
            ListRejected::Unreadable(_) => "unreadable",
            ListRejected::WrongDevice { .. } => "wrong-device",
            ListRejected::Replayed { .. } => "replayed",
            ListRejected::Expired { .. } => "expired",
        }
    }
}

/// The one check of a list, in this order: signed by the pinned key (base64) in the exceptions
/// domain, a readable body, issued to this device, not older than the highest sequence
/// accepted, not expired. Only then is the list returned.
pub fn verify_exceptions(
    envelope: &ExceptionsEnvelope,
    pinned_public_key: &str,
    expect: ListExpectation<'_>,
) -> Result<SignedExceptions, ListRejected> {
    let key = decode_key(pinned_public_key).map_err(ListRejected::Signature)?;
    let signature = decode_signature(&envelope.signature).map_err(ListRejected::Signature)?;
    key.verify_strict(&exceptions_message(&envelope.body), &signature)
        .map_err(|_| ListRejected::Signature(SignatureError::Invalid))?;
    let list: SignedExceptions =
        serde_json::from_str(&envelope.body).map_err(|e| ListRejected::Unreadable(e.to_string()))?;
    if list.device_id != expect.device_id {
        return Err(ListRejected::WrongDevice { issued_to: list.device_id, device_id: expect.device_id.to_owned() });
    }
    if let Some(highest) = expect.highest_sequence
        && list.sequence < highest
    {
        return Err(ListRejected::Replayed { sequence: list.sequence, highest });
    }
    if list.valid_until <= expect.now {
        return Err(ListRejected::Expired { sequence: list.sequence, valid_until: list.valid_until, now: expect.now });
    }
    Ok(list)
}

impl PolicySigningKey {
    /// Signs one device's list: the body is the list's JSON text (fields in declaration order).
    pub fn sign_exceptions(&self, list: &SignedExceptions) -> ExceptionsEnvelope {
        let body = serde_json::to_string(list).expect("exception lists always serialize");
        let signature = BASE64.encode(self.secret().sign(&exceptions_message(&body)).to_bytes());
        ExceptionsEnvelope { body, signature }
    }
}
