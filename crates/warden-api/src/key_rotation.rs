//! Rotating the server's signing key: each new key is announced signed by the key before it, and
//! a device moves its pin only along a chain of such announcements starting at the key it pinned.
//!
//! The signed message names both keys and the moment, in its own domain so no other signed
//! format can be replayed as an announcement:
//! `b"warden-key-rotation\n" + previous + b"\n" + next + b"\n" + announced_at`.

use crate::PolicySigningKey;
use crate::signing::{SignatureError, decode_key, decode_signature};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::Signer;
use serde::{Deserialize, Serialize};

/// One rotation: `public_key` replaced `previous_public_key` (both base64 Ed25519), signed by the
/// previous key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct KeyRotation {
    pub previous_public_key: String,
    pub public_key: String,
    /// Seconds since the epoch.
    pub announced_at: i64,
    /// Ed25519 signature (base64, 64 bytes) by the previous key over [`rotation_message`].
    pub signature: String,
}

/// `GET /api/v1/device/signing-keys`: the key the server signs with now and every rotation that
/// led to it, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SigningKeys {
    pub current: String,
    pub rotations: Vec<KeyRotation>,
}

/// The bytes the previous key signs to announce the next one.
pub fn rotation_message(previous: &str, next: &str, announced_at: i64) -> Vec<u8> {
    format!("warden-key-rotation\n{previous}\n{next}\n{announced_at}").into_bytes()
}

impl PolicySigningKey {
    /// Announces `next` as the key that replaces this one.
    pub fn announce(&self, next: &PolicySigningKey, announced_at: i64) -> KeyRotation {
        let (previous, public) = (self.public_key(), next.public_key());
        let signature = self.secret().sign(&rotation_message(&previous, &public, announced_at));
        KeyRotation {
            previous_public_key: previous,
            public_key: public,
            announced_at,
            signature: BASE64.encode(signature.to_bytes()),
        }
    }
}

/// The key a device pinned to `pinned` should trust now: follows, from `pinned`, each rotation
/// whose previous key is the current one and whose signature that key made; stops where no
/// verified rotation continues. Rotations that do not start from the chain (another server's,
/// or forged) are ignored; a rotation from the chain with a bad signature is an error, and so
/// is a chain that comes back to a key it already left.
pub fn follow_rotations(pinned: &str, rotations: &[KeyRotation]) -> Result<String, SignatureError> {
    let mut current = pinned.trim().to_owned();
    let mut seen = vec![current.clone()];
    while let Some(rotation) = rotations.iter().find(|r| r.previous_public_key == current) {
        let key = decode_key(&current)?;
        let signature = decode_signature(&rotation.signature)?;
        key.verify_strict(
            &rotation_message(&rotation.previous_public_key, &rotation.public_key, rotation.announced_at),
            &signature,
        )
        .map_err(|_| SignatureError::Invalid)?;
        decode_key(&rotation.public_key)?;
        if seen.contains(&rotation.public_key) {
            return Err(SignatureError::Invalid);
        }
        current = rotation.public_key.clone();
        seen.push(current.clone());
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (case, the rotations served, the pinned key, where the pin ends up)
    type Case<'a> = (&'a str, Vec<KeyRotation>, &'a PolicySigningKey, Result<String, SignatureError>);

    #[test]
    fn a_pin_moves_only_along_rotations_its_key_signed() {
        let [a, b, c, mallory] = [1u8, 2, 3, 4].map(|n| PolicySigningKey::from_secret([n; 32]));
        let a_to_b = a.announce(&b, 100);
        let b_to_c = b.announce(&c, 200);
        let forged = mallory.announce(&c, 150);
        let hijack = KeyRotation { public_key: mallory.public_key(), ..a_to_b.clone() };
        let loop_back = c.announce(&a, 300);
        let cases: Vec<Case> = vec![
            ("no rotation", vec![], &a, Ok(a.public_key())),
            ("one", vec![a_to_b.clone()], &a, Ok(b.public_key())),
            ("two, in any order", vec![b_to_c.clone(), a_to_b.clone()], &a, Ok(c.public_key())),
            ("already at the end", vec![a_to_b.clone(), b_to_c.clone()], &c, Ok(c.public_key())),
            ("from the middle", vec![a_to_b.clone(), b_to_c.clone()], &b, Ok(c.public_key())),
            ("another key's announcement is ignored", vec![forged.clone()], &a, Ok(a.public_key())),
            ("a rewritten target fails its signature", vec![hijack], &a, Err(SignatureError::Invalid)),
            ("a loop", vec![a_to_b.clone(), b_to_c.clone(), loop_back], &a, Err(SignatureError::Invalid)),
        ];
        for (name, rotations, pinned, expected) in cases {
            assert_eq!(follow_rotations(&pinned.public_key(), &rotations), expected, "{name}");
        }
        let garbled = KeyRotation { signature: "!!".into(), ..a_to_b.clone() };
        assert_eq!(follow_rotations(&a.public_key(), &[garbled]), Err(SignatureError::Malformed));
        // The announcement is bound to its moment: another time is another message.
        let retimed = KeyRotation { announced_at: 101, ..a_to_b };
        assert_eq!(follow_rotations(&a.public_key(), &[retimed]), Err(SignatureError::Invalid));
    }
}
