//! Masking a request: every string a request carries to the model (messages, system prompt, tool
//! results, earlier tool-call arguments, tool descriptions) has its findings replaced by placeholders.

use crate::rules::Detector;
use crate::vault::Vault;
use serde_json::Value;
use std::collections::BTreeMap;

/// What was masked in one request: count per rule id. Never the values.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct MaskCounts {
    pub by_rule: BTreeMap<String, u32>,
}

impl MaskCounts {
    /// Every finding, all rules together.
    pub fn total(&self) -> u32 {
        self.by_rule.values().sum()
    }
}

/// Keys whose string values are protocol words, not text for the model: they are left alone so that
/// a model name or a role can never be mangled into a placeholder.
const STRUCTURAL_KEYS: &[&str] =
    &["model", "role", "type", "id", "tool_call_id", "tool_use_id", "media_type", "previous_response_id", "object"];

/// `text` with every finding replaced by its placeholder, or `None` when nothing was found.
pub fn mask_text(detector: &Detector, vault: &mut Vault, text: &str, counts: &mut MaskCounts) -> Option<String> {
    let findings = detector.find(text);
    if findings.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for finding in findings {
        out.push_str(&text[at..finding.start]);
        out.push_str(vault.placeholder(detector.rule_label(finding.rule), &text[finding.start..finding.end]));
        *counts.by_rule.entry(detector.rule_id(finding.rule).to_owned()).or_default() += 1;
        at = finding.end;
    }
    out.push_str(&text[at..]);
    Some(out)
}

/// Masks every string in a request body in place (see [`STRUCTURAL_KEYS`] for what is left alone).
/// Tool-call `arguments` are JSON inside a string: they are parsed, masked inside and written back,
/// so a secret split by JSON escapes (`\n` in a PEM key, `\"` in a password) is still found.
pub fn mask_request(detector: &Detector, vault: &mut Vault, body: &mut Value, counts: &mut MaskCounts) {
    mask_value(detector, vault, body, counts);
}

fn mask_value(detector: &Detector, vault: &mut Vault, value: &mut Value, counts: &mut MaskCounts) {
    match value {
        Value::String(text) => {
            if let Some(masked) = mask_text(detector, vault, text, counts) {
                *text = masked;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| mask_value(detector, vault, item, counts)),
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                if STRUCTURAL_KEYS.contains(&key.as_str()) && item.is_string() {
                    continue;
                }
                if key == "arguments"
                    && let Value::String(text) = item
                    && let Ok(mut inner @ (Value::Object(_) | Value::Array(_))) = serde_json::from_str::<Value>(text)
                {
                    let before = counts.total();
                    mask_value(detector, vault, &mut inner, counts);
                    if counts.total() != before {
                        *text = inner.to_string();
                    }
                    continue;
                }
                mask_value(detector, vault, item, counts);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}
