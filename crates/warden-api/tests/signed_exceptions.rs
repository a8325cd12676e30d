//! The signed exception list: one accepted case and one refusal per way a list can be wrong
//! (tampered body, wrong domain, another device's list, an old sequence, expired, a policy
//! signature replayed as a list and the reverse), all through `verify_exceptions`, the one
//! check devices use. `tests/data/signed-exceptions.json` pins the wire format: Ed25519 is
//! deterministic, so signing its list again must give its envelope byte for byte.

use ed25519_dalek::{Signer, SigningKey};
use serde_json::Value;
use warden_api::{
    EXCEPTIONS_DOMAIN, ExceptionsEnvelope, ListExpectation, PolicyEnvelope, PolicySigningKey, SignedExceptions,
    verify_envelope, verify_exceptions,
};

/// The fixture's key: 32 bytes of 7 (a test key, never a server's).
const SECRET: [u8; 32] = [7; 32];

fn fixture() -> (SignedExceptions, ExceptionsEnvelope) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/signed-exceptions.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let value: Value = serde_json::from_str(&text).unwrap();
    (serde_json::from_value(value["list"].clone()).unwrap(), serde_json::from_value(value["envelope"].clone()).unwrap())
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A signature by the fixture key over exactly `message` (no domain added).
fn raw_signature(message: &[u8]) -> String {
    base64(&SigningKey::from_bytes(&SECRET).sign(message).to_bytes())
}

#[test]
fn the_format_is_pinned_by_the_fixture() {
    let (list, envelope) = fixture();
    let key = PolicySigningKey::from_secret(SECRET);
    assert_eq!(key.sign_exceptions(&list), envelope, "signing the fixture's list gives the fixture's envelope");
    let parsed: SignedExceptions = serde_json::from_str(&envelope.body).unwrap();
    assert_eq!(parsed, list);
}

#[test]
fn only_an_untouched_current_list_for_this_device_is_accepted() {
    let (list, good) = fixture();
    let key = PolicySigningKey::from_secret(SECRET);
    let pinned = key.public_key();
    let now = list.issued_at + 60;
    let this_device = ListExpectation { device_id: &list.device_id, highest_sequence: Some(list.sequence), now };
    let resign = |change: &dyn Fn(&mut SignedExceptions)| {
        let mut changed = list.clone();
        change(&mut changed);
        key.sign_exceptions(&changed)
    };
    let policy_envelope = {
        let policy = r#"{"name":"p"}"#;
        PolicyEnvelope {
            version: 3,
            etag: String::new(),
            policy: policy.into(),
            signature: key.sign(3, policy),
            public_key: pinned.clone(),
            created_at: 0,
        }
    };

    // (case, envelope, expectation, the refusal's code or None for accepted)
    let cases: Vec<(&str, ExceptionsEnvelope, ListExpectation, Option<&str>)> = vec![
        ("untouched", good.clone(), this_device, None),
        ("first list ever", good.clone(), ListExpectation { highest_sequence: None, ..this_device }, None),
        ("newer than the highest", good.clone(), ListExpectation { highest_sequence: Some(1), ..this_device }, None),
        (
            "an exception added to the body",
            ExceptionsEnvelope {
                body: good.body.replace(r#""exceptions":["#, r#""exceptions":[{"id":"mine","user":"dev@corp.example","tool":"claude-code","starts_at":0,"expires_at":9999999999},"#),
                ..good.clone()
            },
            this_device,
            Some("signature"),
        ),
        (
            "a later expiry written into the body",
            ExceptionsEnvelope { body: good.body.replace(&list.valid_until.to_string(), "9999999999"), ..good.clone() },
            this_device,
            Some("signature"),
        ),
        ("signed without the domain", ExceptionsEnvelope { signature: raw_signature(good.body.as_bytes()), ..good.clone() }, this_device, Some("signature")),
        (
            "signed in the policy domain",
            ExceptionsEnvelope {
                signature: raw_signature(&[b"warden-policy\n".as_slice(), good.body.as_bytes()].concat()),
                ..good.clone()
            },
            this_device,
            Some("signature"),
        ),
        (
            "a policy's signature replayed as a list",
            ExceptionsEnvelope { body: policy_envelope.policy.clone(), signature: policy_envelope.signature.clone() },
            this_device,
            Some("signature"),
        ),
        (
            "signed by another key",
            PolicySigningKey::from_secret([8; 32]).sign_exceptions(&list),
            this_device,
            Some("signature"),
        ),
        ("a garbled signature", ExceptionsEnvelope { signature: "not base64!".into(), ..good.clone() }, this_device, Some("signature")),
        (
            "a signed body that is not a list",
            ExceptionsEnvelope {
                body: "{\"device_id\":\"d\"}".into(),
                signature: raw_signature(&[EXCEPTIONS_DOMAIN, b"{\"device_id\":\"d\"}".as_slice()].concat()),
            },
            this_device,
            Some("unreadable"),
        ),
        ("another device's list", resign(&|l| l.device_id = "someone-else".into()), this_device, Some("wrong-device")),
        (
            "an older sequence replayed",
            good.clone(),
            ListExpectation { highest_sequence: Some(list.sequence + 1), ..this_device },
            Some("replayed"),
        ),
        ("expired", good.clone(), ListExpectation { now: list.valid_until, ..this_device }, Some("expired")),
        ("expired long ago", good.clone(), ListExpectation { now: list.valid_until + 86_400, ..this_device }, Some("expired")),
    ];
    for (case, envelope, expect, refusal) in cases {
        let got = verify_exceptions(&envelope, &pinned, expect);
        match refusal {
            None => assert_eq!(got.as_ref().ok(), Some(&list), "{case}: {got:?}"),
            Some(code) => assert_eq!(got.as_ref().map_err(|e| e.code()), Err(code), "{case}: {got:?}"),
        }
    }
}

#[test]
fn a_list_signature_never_passes_as_a_policy() {
    let (list, good) = fixture();
    let key = PolicySigningKey::from_secret(SECRET);
    // The list's body and signature, dressed as a policy at every version the sequence suggests.
    for version in [0, list.sequence, list.sequence + 1] {
        let forged = PolicyEnvelope {
            version,
            etag: String::new(),
            policy: good.body.clone(),
            signature: good.signature.clone(),
            public_key: key.public_key(),
            created_at: 0,
        };
        assert!(verify_envelope(&forged, &key.public_key()).is_err(), "version {version}");
    }
}
