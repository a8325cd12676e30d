//! The signed-policy format: what the server signs and how a device checks it; the server's
//! signing key (which also signs exception lists, in their own domain: `signed_exceptions`).
//!
//! The signed message binds the version to the policy text, so a replayed older policy cannot
//! pose as a newer one: `b"warden-policy\n" + version + b"\n" + policy_json`.

use crate::policy::PolicyEnvelope;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// Why a signed policy was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the pinned public key is not a base64 Ed25519 key")]
    BadPinnedKey,
    #[error("the signature is not base64 of 64 bytes")]
    Malformed,
    #[error("not signed by the pinned server key")]
    Invalid,
}

/// The bytes the server signs for one policy version.
pub fn signed_message(version: i64, policy_json: &str) -> Vec<u8> {
    let mut message = Vec::with_capacity(policy_json.len() + 32);
    message.extend_from_slice(b"warden-policy\n");
    message.extend_from_slice(version.to_string().as_bytes());
    message.push(b'\n');
    message.extend_from_slice(policy_json.as_bytes());
    message
}

/// The ETag of a policy version: its number and a digest of the signed text, quoted
/// (`"7-3f2a…"`). Derived from signed content only, so a device computes it from its verified
/// cache instead of trusting a stored one, and a `304` can only confirm what it verified.
pub fn policy_etag(version: i64, policy_json: &str) -> String {
    let digest = Sha256::digest(policy_json.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{version}-{hex}\"")
}

/// The SHA-256 of `bytes` as lowercase hex (the MCP inventory's definition hash).
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks an envelope against the key pinned at enrollment (base64). Only then parse `policy`.
pub fn verify_envelope(envelope: &PolicyEnvelope, pinned_public_key: &str) -> Result<(), SignatureError> {
    let key = decode_key(pinned_public_key)?;
    let signature = decode_signature(&envelope.signature)?;
    key.verify_strict(&signed_message(envelope.version, &envelope.policy), &signature)
        .map_err(|_| SignatureError::Invalid)
}

/// The pinned public key from its base64 text.
pub(crate) fn decode_key(pinned_public_key: &str) -> Result<VerifyingKey, SignatureError> {
    let key_bytes: [u8; 32] = BASE64
        .decode(pinned_public_key.trim())
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(SignatureError::BadPinnedKey)?;
    VerifyingKey::from_bytes(&key_bytes).map_err(|_| SignatureError::BadPinnedKey)
}

/// A signature from its base64 text.
pub(crate) fn decode_signature(text: &str) -> Result<Signature, SignatureError> {
    let signature_bytes: [u8; 64] =
        BASE64.decode(text.trim()).ok().and_then(|bytes| bytes.try_into().ok()).ok_or(SignatureError::Malformed)?;
    Ok(Signature::from_bytes(&signature_bytes))
}

/// The server's signing key.
#[derive(Clone)]
pub struct PolicySigningKey(SigningKey);

impl std::fmt::Debug for PolicySigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret half.
        write!(f, "PolicySigningKey(public {})", self.public_key())
    }
}

impl PolicySigningKey {
    /// From 32 secret bytes (the caller draws them from the OS's random source).
    pub fn from_secret(secret: [u8; 32]) -> PolicySigningKey {
        PolicySigningKey(SigningKey::from_bytes(&secret))
    }

    /// From the base64 text [`PolicySigningKey::secret_base64`] wrote.
    pub fn from_secret_base64(text: &str) -> Option<PolicySigningKey> {
        let bytes: [u8; 32] = BASE64.decode(text.trim()).ok()?.try_into().ok()?;
        Some(PolicySigningKey::from_secret(bytes))
    }

    /// The secret half, for signing in this crate only (every signed format lives here).
    pub(crate) fn secret(&self) -> &SigningKey {
        &self.0
    }

    pub fn secret_base64(&self) -> String {
        BASE64.encode(self.0.to_bytes())
    }

    /// The public half, base64: what devices pin.
    pub fn public_key(&self) -> String {
        BASE64.encode(self.0.verifying_key().to_bytes())
    }

    /// The base64 signature of one policy version.
    pub fn sign(&self, version: i64, policy_json: &str) -> String {
        BASE64.encode(self.0.sign(&signed_message(version, policy_json)).to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(key: &PolicySigningKey, version: i64, policy: &str) -> PolicyEnvelope {
        PolicyEnvelope {
            version,
            etag: String::new(),
            policy: policy.into(),
            signature: key.sign(version, policy),
            public_key: key.public_key(),
            created_at: 0,
        }
    }

    #[test]
    fn a_signed_policy_verifies_only_unchanged_and_under_its_key() {
        let key = PolicySigningKey::from_secret([7; 32]);
        let other = PolicySigningKey::from_secret([8; 32]);
        let good = envelope(&key, 3, r#"{"name":"p"}"#);
        assert_eq!(verify_envelope(&good, &key.public_key()), Ok(()));
        assert_eq!(verify_envelope(&good, &other.public_key()), Err(SignatureError::Invalid));

        let tampered = PolicyEnvelope { policy: r#"{"name":"q"}"#.into(), ..good.clone() };
        assert_eq!(verify_envelope(&tampered, &key.public_key()), Err(SignatureError::Invalid));
        let replayed_as_newer = PolicyEnvelope { version: 4, ..good.clone() };
        assert_eq!(verify_envelope(&replayed_as_newer, &key.public_key()), Err(SignatureError::Invalid));
        let garbled = PolicyEnvelope { signature: "not base64!".into(), ..good.clone() };
        assert_eq!(verify_envelope(&garbled, &key.public_key()), Err(SignatureError::Malformed));
        assert_eq!(verify_envelope(&good, "short"), Err(SignatureError::BadPinnedKey));
    }

    #[test]
    fn the_etag_is_the_version_and_a_digest_of_the_signed_text() {
        let etag = policy_etag(7, r#"{"name":"p"}"#);
        let (version, digest) = etag.trim_matches('"').split_once('-').unwrap();
        assert_eq!((version, digest.len()), ("7", 16), "{etag}");
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
        assert_ne!(policy_etag(7, r#"{"name":"q"}"#), etag, "another text, another tag");
        assert_ne!(policy_etag(8, r#"{"name":"p"}"#), etag, "another version, another tag");
    }

    #[test]
    fn keys_round_trip_through_base64() {
        let key = PolicySigningKey::from_secret([9; 32]);
        let back = PolicySigningKey::from_secret_base64(&key.secret_base64()).unwrap();
        assert_eq!(back.public_key(), key.public_key());
        assert!(!format!("{key:?}").contains(&key.secret_base64()));
    }
}
