//! Restoring is exact wherever a stream is cut: a streamed answer fed to the restorer split at every
//! byte position (and one byte at a time) gives the same bytes as fed whole, and values with `"`, `\`
//! and newlines come back exactly, in text and inside JSON string escapes.

use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use warden_gateway::{Api, Detector, MaskCounts, SseRestorer, Vault, mask_text};
use warden_policy::{Masking, MaskingRule};

const ODD: &str = "vault{q\"u\\o\nte\u{e9}}";

fn detector() -> Arc<Detector> {
    let masking = Masking {
        rules: vec![MaskingRule {
            id: "vault-literal".into(),
            keywords: vec!["vault{".into()],
            pattern: r"vault\{[^}]*\}".into(),
            group: None,
            entropy: None,
            label: None,
            multiline: false,
            window: None,
        }],
        ..Masking::default()
    };
    Arc::new(Detector::new(Some(&masking)).unwrap())
}

/// A vault that has masked the prompt, and the placeholders it made.
fn vault_with(detector: &Detector, prompt: &str) -> (Arc<Mutex<Vault>>, String) {
    let mut vault = Vault::default();
    let masked = mask_text(detector, &mut vault, prompt, &mut MaskCounts::default()).expect("something to mask");
    (Arc::new(Mutex::new(vault)), masked)
}

/// A chat-completions stream quoting `masked` in text and in a write_file call, each cut into
/// deltas of `size` characters; the brackets of the arguments' placeholders escaped as `\u27e6`.
fn stream(masked: &str, size: usize) -> String {
    let chars: Vec<char> = masked.chars().collect();
    let mut sse = String::new();
    for piece in chars.chunks(size) {
        let text: String = piece.iter().collect();
        sse.push_str(&format!("data: {}\n\n", json!({"choices": [{"index": 0, "delta": {"content": text}}]})));
    }
    let arguments =
        json!({"file_path": "a.txt", "content": masked}).to_string().replace('⟦', "\\u27e6").replace('⟧', "\\u27E7");
    sse.push_str(&format!(
        "data: {}\n\n",
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"name": "write_file", "arguments": ""}}]}}]})
    ));
    let chars: Vec<char> = arguments.chars().collect();
    for piece in chars.chunks(size) {
        let text: String = piece.iter().collect();
        sse.push_str(&format!(
            "data: {}\r\n\r\n",
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": text}}]}}]})
        ));
    }
    sse.push_str("data: [DONE]\n\n");
    sse
}

fn restore(detector: &Arc<Detector>, vault: &Arc<Mutex<Vault>>, pieces: &[&[u8]]) -> Vec<u8> {
    let mut restorer = SseRestorer::new(Api::ChatCompletions, Arc::clone(detector), Arc::clone(vault));
    let mut out = Vec::new();
    for piece in pieces {
        out.extend(restorer.feed(piece));
    }
    out.extend(restorer.finish());
    out
}

/// The text and the write_file arguments a client assembles from the stream.
fn assemble(body: &[u8]) -> (String, String) {
    let body = String::from_utf8(body.to_vec()).expect("valid UTF-8");
    let (mut text, mut arguments) = (String::new(), String::new());
    for event in body.split("\n\n").flat_map(|e| e.split("\r\n\r\n")) {
        let Some(data) = event.trim().strip_prefix("data: ") else { continue };
        let Ok(value) = serde_json::from_str::<Value>(data) else { continue };
        let delta = &value["choices"][0]["delta"];
        text.push_str(delta["content"].as_str().unwrap_or(""));
        arguments.push_str(delta["tool_calls"][0]["function"]["arguments"].as_str().unwrap_or(""));
    }
    (text, arguments)
}

#[test]
fn a_stream_split_at_every_byte_restores_exactly() {
    let detector = detector();
    let prompt = format!("key AKIAQX7T2LMZP4RGHK3W, literal {ODD}, again AKIAQX7T2LMZP4RGHK3W.");
    let (vault, masked) = vault_with(&detector, &prompt);
    assert!(!masked.contains("AKIA") && !masked.contains("vault{"), "{masked}");
    for size in [4, 7] {
        let sse = stream(&masked, size);
        let bytes = sse.as_bytes();
        let whole = restore(&detector, &vault, &[bytes]);
        let (text, arguments) = assemble(&whole);
        assert_eq!(text, prompt, "deltas of {size}");
        let arguments: Value = serde_json::from_str(&arguments).unwrap_or_else(|e| panic!("{arguments:?}: {e}"));
        assert_eq!(arguments["content"], prompt.as_str(), "deltas of {size}");
        for cut in 0..=bytes.len() {
            let split = restore(&detector, &vault, &[&bytes[..cut], &bytes[cut..]]);
            assert!(split == whole, "deltas of {size}, cut at byte {cut}");
        }
        let pieces: Vec<&[u8]> = bytes.chunks(1).collect();
        assert!(restore(&detector, &vault, &pieces) == whole, "one byte at a time, deltas of {size}");
    }
}

#[test]
fn an_unfinished_placeholder_at_the_end_of_a_channel_is_sent_as_it_was() {
    let detector = detector();
    let (vault, _) = vault_with(&detector, "AKIAQX7T2LMZP4RGHK3W");
    let sse = format!(
        "data: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
        json!({"choices": [{"index": 0, "delta": {"content": "see ⟦SECRET_"}}]}),
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
    );
    let (text, _) = assemble(&restore(&detector, &vault, &[sse.as_bytes()]));
    assert_eq!(text, "see ⟦SECRET_");
}
