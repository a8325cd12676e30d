//! Every event kind round-trips through the wire form and the stored (kind, payload) form
//! unchanged; the cases are data (`tests/data/events.jsonl`, at least one line per kind).

use serde_json::{Value, json};
use std::collections::BTreeSet;
use warden_api::{Event, EventBatch, EventKind, KindError};

fn cases() -> Vec<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/events.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().filter(|line| !line.trim().is_empty()).map(|line| serde_json::from_str(line).unwrap()).collect()
}

#[test]
fn every_kind_round_trips_on_the_wire_and_in_the_store_form() {
    let mut seen = BTreeSet::new();
    for wire in cases() {
        let event: Event = serde_json::from_value(wire.clone()).unwrap_or_else(|e| panic!("{wire}: {e}"));
        let kind = wire["kind"].as_str().unwrap();
        assert_eq!(event.kind().as_str(), kind);
        assert_eq!(event.id(), wire["id"].as_str().unwrap());
        assert_eq!(event.at_ms(), wire["at_ms"].as_i64().unwrap());
        assert_eq!(event.user(), wire.get("user").and_then(Value::as_str), "{wire}");
        assert_eq!(serde_json::to_value(&event).unwrap(), wire, "the wire form comes back byte for byte");

        let payload = event.payload_json();
        let payload_value: Value = serde_json::from_str(&payload).unwrap();
        let mut without_kind = wire.as_object().unwrap().clone();
        without_kind.remove("kind");
        assert_eq!(payload_value, Value::Object(without_kind), "the payload is the wire form less its tag");
        assert_eq!(Event::from_parts(kind, &payload).unwrap(), event, "stored form round-trips");
        seen.insert(event.kind());
    }
    let all: BTreeSet<_> = EventKind::ALL.into_iter().collect();
    assert_eq!(seen.len(), all.len(), "every kind has a case in events.jsonl");
    for kind in EventKind::ALL {
        assert_eq!(kind.as_str().parse::<EventKind>().unwrap(), kind);
        assert_eq!(serde_json::to_value(kind).unwrap(), json!(kind.as_str()));
    }
}

#[test]
fn a_launch_without_kind_is_read_as_a_launch() {
    // What devices from before kinds upload, and what their stores hold.
    let mut wire = cases().into_iter().find(|c| c["kind"] == "launch").unwrap();
    wire.as_object_mut().unwrap().remove("kind");
    let event: Event = serde_json::from_value(wire.clone()).unwrap();
    assert_eq!(event.kind(), EventKind::Launch);
    assert_eq!(event.as_launch().unwrap().tool.as_deref(), Some("claude-code"));
    let batch: EventBatch = serde_json::from_value(json!({"events": [wire]})).unwrap();
    assert_eq!(batch.heartbeat, None);
    assert_eq!(batch.events, [event]);
}

#[test]
fn unknown_or_malformed_kinds_are_errors_that_say_so() {
    let cases = [
        (json!({"kind": "telepathy", "id": "x", "at_ms": 1}), "unknown event kind \"telepathy\""),
        (json!({"kind": 7, "id": "x", "at_ms": 1}), "must be text"),
        (
            json!({"kind": "service-stop", "id": "x", "at_ms": 1, "mode": "service", "version": "1", "pid": 1}),
            "missing field `reason`",
        ),
        (
            json!({"kind": "service-start", "id": "x", "at_ms": 1, "mode": "daemon", "version": "1", "pid": 1}),
            "unknown variant `daemon`",
        ),
        (json!({"kind": "incident", "id": "x", "at_ms": "soon", "code": "c", "detail": "d"}), "invalid type"),
    ];
    for (wire, expected) in cases {
        let error = serde_json::from_value::<Event>(wire.clone()).unwrap_err().to_string();
        assert!(error.contains(expected), "{wire}: {error}");
    }
    assert_eq!("telepathy".parse::<EventKind>(), Err(KindError::Unknown("telepathy".into())));
    assert!(Event::from_parts("launch", "{\"id\": 1}").is_err());
    assert!(Event::from_parts("nope", "{}").is_err());
}

#[test]
fn a_masking_event_says_what_was_masked_in_one_line() {
    let lines: Vec<String> = cases()
        .into_iter()
        .filter(|c| c["kind"] == "masking")
        .map(|wire| match serde_json::from_value::<Event>(wire).unwrap() {
            Event::Masking(masking) => masking.summary(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        lines,
        [
            "3 secrets masked in a request to Internal Assistant; kept masked in a call to run_shell_command",
            "nothing masked in a request to https://assistant.internal.example/v1",
        ]
    );
}
