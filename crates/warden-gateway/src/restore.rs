//! Restoring placeholders in what the model sends back — only where the value returns to where it came
//! from: text shown to the developer and the arguments of file-writing tools. In any other tool call
//! (shell, fetch, MCP …) a placeholder stays masked and is reported, so a model steered by a prompt
//! injection cannot send a restored secret out through a local tool.

use crate::rules::Detector;
use crate::vault::Vault;
use regex::{Captures, Regex};
use serde_json::Value;
use std::sync::LazyLock;

/// A placeholder as text: `⟦SECRET_7⟧`.
static PLAIN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"⟦[A-Z]{1,16}_[0-9]{1,9}⟧").expect("valid"));
/// A placeholder inside JSON source text, where a serializer may have escaped the brackets
/// (`\u27e6SECRET_7\u27e7`, as Python's `json.dumps` does by default).
static IN_JSON: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:⟦|\\u27[eE]6)([A-Z]{1,16}_[0-9]{1,9})(?:⟧|\\u27[eE]7)").expect("valid"));

/// What restoring one response did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Placeholders put back.
    pub restored: u32,
    /// (tool, placeholder) kept masked because the tool is not one that writes files.
    pub kept: Vec<(String, String)>,
}

/// How a string is written: plain text, or JSON source text (tool-call arguments), where a restored
/// value must be JSON-escaped and the brackets may arrive escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    Plain,
    JsonSource,
}

/// `text` with this conversation's placeholders restored (`None`: nothing to restore). Unknown
/// placeholders stay as they are.
pub fn restore_str(vault: &Vault, text: &str, kind: TextKind, report: &mut RestoreReport) -> Option<String> {
    if !might_hold_placeholder(text, kind) {
        return None;
    }
    let mut restored = 0;
    let out = match kind {
        TextKind::Plain => PLAIN.replace_all(text, |c: &Captures| match vault.value(&c[0]) {
            Some(value) => {
                restored += 1;
                value.to_owned()
            }
            None => c[0].to_owned(),
        }),
        TextKind::JsonSource => IN_JSON.replace_all(text, |c: &Captures| match vault.value(&format!("⟦{}⟧", &c[1]))
        {
            Some(value) => {
                restored += 1;
                let quoted = serde_json::to_string(value).expect("a string serializes");
                quoted[1..quoted.len() - 1].to_owned()
            }
            None => c[0].to_owned(),
        }),
    };
    report.restored += restored;
    (restored > 0).then(|| out.into_owned())
}

/// Placeholders of this conversation found in `text` (for reporting the ones kept masked).
pub fn placeholders_in(vault: &Vault, text: &str, kind: TextKind) -> Vec<String> {
    if !might_hold_placeholder(text, kind) {
        return Vec::new();
    }
    let found = match kind {
        TextKind::Plain => PLAIN.find_iter(text).map(|m| m.as_str().to_owned()).collect::<Vec<_>>(),
        TextKind::JsonSource => IN_JSON.captures_iter(text).map(|c| format!("⟦{}⟧", &c[1])).collect(),
    };
    found.into_iter().filter(|p| vault.value(p).is_some()).collect()
}

fn might_hold_placeholder(text: &str, kind: TextKind) -> bool {
    text.contains('⟦') || (kind == TextKind::JsonSource && (text.contains("\\u27e6") || text.contains("\\u27E6")))
}

/// The length of the part of `text` that can be restored now: the rest (returned as the index where
/// it starts) may be the beginning of a placeholder that the next chunk completes.
pub fn settled_len(text: &str, kind: TextKind) -> usize {
    // A placeholder is at most 1 + 16 + 1 + 9 + 1 characters (`\u27e6` escapes: 6 bytes each).
    let window_start = text.len().saturating_sub(40);
    let mut start = window_start;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let tail = &text[start..];
    for (i, c) in tail.char_indices() {
        if (c == '⟦' || (kind == TextKind::JsonSource && c == '\\')) && is_partial(&tail[i..], kind) {
            return start + i;
        }
    }
    text.len()
}

/// Whether `text` is a proper beginning of a placeholder (could still become one, is not yet one).
fn is_partial(text: &str, kind: TextKind) -> bool {
    const OPEN_ESCAPED: [&str; 2] = ["\\u27e6", "\\u27E6"];
    const CLOSE_ESCAPED: [&str; 2] = ["\\u27e7", "\\u27E7"];
    let rest = if let Some(rest) = text.strip_prefix('⟦') {
        rest
    } else if kind == TextKind::JsonSource {
        if text.len() < 6 && OPEN_ESCAPED.iter().any(|e| e.starts_with(text)) {
            return true;
        }
        match OPEN_ESCAPED.iter().find_map(|e| text.strip_prefix(e)) {
            Some(rest) => rest,
            None => return false,
        }
    } else {
        return false;
    };
    let label = rest.bytes().take_while(u8::is_ascii_uppercase).count();
    let rest = &rest[label..];
    if rest.is_empty() {
        return label <= 16;
    }
    let Some(rest) = rest.strip_prefix('_').filter(|_| (1..=16).contains(&label)) else { return false };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let rest = &rest[digits..];
    if rest.is_empty() {
        return digits <= 9;
    }
    digits > 0
        && digits <= 9
        && kind == TextKind::JsonSource
        && rest.len() < 6
        && CLOSE_ESCAPED.iter().any(|e| e.starts_with(rest))
}

/// Restores a whole response body (or a complete streamed event) in place; tool-call arguments only
/// for tools that write files. Returns whether anything changed.
pub fn restore_value(detector: &Detector, vault: &Vault, value: &mut Value, report: &mut RestoreReport) -> bool {
    match value {
        Value::String(text) => match restore_str(vault, text, TextKind::Plain, report) {
            Some(restored) => {
                *text = restored;
                true
            }
            None => false,
        },
        Value::Array(items) => {
            items.iter_mut().fold(false, |changed, item| restore_value(detector, vault, item, report) | changed)
        }
        Value::Object(map) => {
            let tool = tool_call_shape(map);
            let mut changed = false;
            for (key, item) in map.iter_mut() {
                match &tool {
                    Some((name, field)) if key == field => {
                        changed |= restore_tool_input(detector, vault, name, item, report);
                    }
                    _ => changed |= restore_value(detector, vault, item, report),
                }
            }
            changed
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// The input of a call to tool `name`: restored if the tool writes files, else placeholders reported.
pub fn restore_tool_input(
    detector: &Detector,
    vault: &Vault,
    name: &str,
    input: &mut Value,
    report: &mut RestoreReport,
) -> bool {
    let allowed = detector.restores_into(name);
    match input {
        // `arguments` (OpenAI) are JSON source text; a custom tool's `input` is plain text.
        Value::String(text) => {
            let kind = if text.trim_start().starts_with(['{', '[']) { TextKind::JsonSource } else { TextKind::Plain };
            if allowed {
                if let Some(restored) = restore_str(vault, text, kind, report) {
                    *text = restored;
                    return true;
                }
            } else {
                report_kept(vault, name, text, kind, report);
            }
            false
        }
        _ if allowed => restore_value(detector, vault, input, report),
        _ => {
            report_kept(vault, name, &input.to_string(), TextKind::JsonSource, report);
            false
        }
    }
}

/// Notes the placeholders in a tool's input that stay masked.
pub fn report_kept(vault: &Vault, tool: &str, text: &str, kind: TextKind, report: &mut RestoreReport) {
    for placeholder in placeholders_in(vault, text, kind) {
        report.kept.push((tool.to_owned(), placeholder));
    }
}

/// `(tool name, the key holding its input)` if `map` is a tool call: OpenAI chat's `function`
/// (`name` + `arguments`), the Responses API's `function_call`/`custom_tool_call`, Anthropic's `tool_use`.
fn tool_call_shape(map: &serde_json::Map<String, Value>) -> Option<(String, String)> {
    let name = map.get("name")?.as_str()?.to_owned();
    if map.get("arguments").is_some_and(Value::is_string) {
        return Some((name, "arguments".into()));
    }
    let kind = map.get("type").and_then(Value::as_str).unwrap_or("");
    if matches!(kind, "tool_use" | "server_tool_use" | "custom_tool_call" | "function_call")
        && map.contains_key("input")
    {
        return Some((name, "input".into()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_placeholders_are_held_back() {
        for (text, kind, settled) in [
            ("abc⟦SEC", TextKind::Plain, 3),
            ("abc⟦SECRET_1", TextKind::Plain, 3),
            ("abc⟦SECRET_1⟧", TextKind::Plain, 17),
            ("abc⟦", TextKind::Plain, 3),
            ("abc⟦secret", TextKind::Plain, 12),
            ("a\\", TextKind::JsonSource, 1),
            ("a\\u27", TextKind::JsonSource, 1),
            ("a\\u27e6KEY_3\\u27", TextKind::JsonSource, 1),
            ("a\\n", TextKind::JsonSource, 3),
            ("a\\", TextKind::Plain, 2),
        ] {
            assert_eq!(settled_len(text, kind), settled, "{text:?}");
        }
    }
}
