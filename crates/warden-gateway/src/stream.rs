//! Restoring a streamed (server-sent events) response as it passes: bytes are cut into whole events
//! (so a chunk boundary anywhere, even inside a UTF-8 character, changes nothing); each event's JSON is
//! read; delta strings are restored per channel (a content block, a tool call), holding back the end of a
//! delta that may be the start of a placeholder until the next delta of that channel completes it.
//! Events without anything to restore are passed through byte for byte.
//!
//! Formats: OpenAI chat completion chunks (`choices[].delta`), the Responses API's typed events
//! (`response.output_text.delta`, `response.function_call_arguments.delta`, …) and Anthropic Messages
//! events (`content_block_start`, `content_block_delta`); see each vendor's streaming reference.

use crate::restore::{
    RestoreReport, TextKind, report_kept, restore_str, restore_tool_input, restore_value, settled_len,
};
use crate::rules::Detector;
use crate::vault::Vault;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Which API a stream speaks (from the request path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `/v1/chat/completions`
    ChatCompletions,
    /// `/v1/responses`
    Responses,
    /// `/v1/messages`
    Messages,
}

/// One delta string of an event: where it sits, which channel it continues, how it is written, and
/// the tool it belongs to (None: text shown to the developer).
#[derive(Debug)]
struct Slot {
    channel: String,
    path: Vec<PathStep>,
    kind: TextKind,
    tool: Option<String>,
}

#[derive(Debug, Clone)]
enum PathStep {
    Key(&'static str),
    Index(usize),
}

/// Held-back text of a channel, and an event to carry it if the channel ends before it is settled.
#[derive(Debug, Default)]
struct Channel {
    held: String,
    template: Option<(Vec<String>, Value, Vec<PathStep>)>,
}

/// The restoring state of one streamed response.
#[derive(Debug)]
pub struct SseRestorer {
    api: Api,
    detector: Arc<Detector>,
    vault: Arc<Mutex<Vault>>,
    pending: Vec<u8>,
    /// Where in `pending` the search for the end of an event resumes (the start of its last,
    /// unfinished line), so a stream fed byte by byte is scanned once.
    scan_from: usize,
    channels: HashMap<String, Channel>,
    tools: HashMap<String, String>,
    report: RestoreReport,
}

impl SseRestorer {
    pub fn new(api: Api, detector: Arc<Detector>, vault: Arc<Mutex<Vault>>) -> SseRestorer {
        SseRestorer {
            api,
            detector,
            vault,
            pending: Vec::new(),
            scan_from: 0,
            channels: HashMap::new(),
            tools: HashMap::new(),
            report: RestoreReport::default(),
        }
    }

    /// Takes the next bytes of the upstream stream; returns what can be sent on to the client now.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            match event_end(&self.pending, self.scan_from) {
                Ok(end) => {
                    let event: Vec<u8> = self.pending.drain(..end).collect();
                    self.scan_from = 0;
                    self.process(&event, &mut out);
                }
                Err(resume) => {
                    self.scan_from = resume;
                    return out;
                }
            }
        }
    }

    /// The end of the stream: whatever is still held or pending.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.flush_except(&[], &mut out);
        out.append(&mut self.pending);
        out
    }

    /// What restoring did so far.
    pub fn report(&self) -> &RestoreReport {
        &self.report
    }

    fn process(&mut self, raw: &[u8], out: &mut Vec<u8>) {
        let Some((other_lines, data)) = split_event(raw) else {
            self.flush_except(&[], out);
            out.extend_from_slice(raw);
            return;
        };
        let Ok(mut value) = serde_json::from_str::<Value>(&data) else {
            // `[DONE]`, pings, anything not JSON: nothing of ours inside; it ends every channel.
            self.flush_except(&[], out);
            out.extend_from_slice(raw);
            return;
        };
        let slots = self.slots(&value);
        let channels: Vec<&str> = slots.iter().map(|s| s.channel.as_str()).collect();
        self.flush_except(&channels, out);
        let vault = Arc::clone(&self.vault);
        let vault = vault.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut changed = false;
        if slots.is_empty() {
            changed = self.restore_whole(&vault, &mut value);
        }
        for slot in &slots {
            let Some(Value::String(delta)) = pointer_mut(&mut value, &slot.path) else { continue };
            let channel = self.channels.entry(slot.channel.clone()).or_default();
            let mut text = std::mem::take(&mut channel.held);
            let had_held = !text.is_empty();
            text.push_str(delta);
            let settled = settled_len(&text, slot.kind);
            channel.held = text.split_off(settled);
            let allowed = slot.tool.as_deref().is_none_or(|tool| self.detector.restores_into(tool));
            if allowed {
                if let Some(restored) = restore_str(&vault, &text, slot.kind, &mut self.report) {
                    text = restored;
                }
            } else if let Some(tool) = &slot.tool {
                report_kept(&vault, tool, &text, slot.kind, &mut self.report);
            }
            if had_held || !channel.held.is_empty() || text != *delta {
                *delta = text;
                changed = true;
            }
            if !channel.held.is_empty() {
                channel.template = Some((other_lines.clone(), value.clone(), slot.path.clone()));
            }
        }
        if changed {
            write_event(&other_lines, &value, out);
        } else {
            out.extend_from_slice(raw);
        }
    }

    /// Every channel not in `keep` that holds text gets it sent, in a copy of its last event.
    fn flush_except(&mut self, keep: &[&str], out: &mut Vec<u8>) {
        let mut names: Vec<&String> = self
            .channels
            .iter()
            .filter(|(name, c)| !c.held.is_empty() && !keep.contains(&name.as_str()))
            .map(|(n, _)| n)
            .collect();
        names.sort();
        let names: Vec<String> = names.into_iter().cloned().collect();
        for name in names {
            let channel = self.channels.get_mut(&name).expect("listed above");
            let held = std::mem::take(&mut channel.held);
            if let Some((lines, mut value, path)) = channel.template.take() {
                if let Some(slot) = pointer_mut(&mut value, &path) {
                    *slot = Value::String(held);
                }
                write_event(&lines, &value, out);
            }
        }
    }

    /// A complete event (a `done` event, the final response object): restored whole.
    fn restore_whole(&mut self, vault: &Vault, value: &mut Value) -> bool {
        let kind = value.get("type").and_then(Value::as_str).unwrap_or("");
        if self.api == Api::Responses && kind == "response.function_call_arguments.done" {
            let tool = self.tools.get(&format!("o{}", index(value, "output_index"))).cloned().unwrap_or_default();
            return match value.get_mut("arguments") {
                Some(arguments) => restore_tool_input(&self.detector, vault, &tool, arguments, &mut self.report),
                None => false,
            };
        }
        restore_value(&self.detector, vault, value, &mut self.report)
    }

    /// The delta strings of an event (and the tool names it announces).
    fn slots(&mut self, value: &Value) -> Vec<Slot> {
        let mut slots = Vec::new();
        let text = |channel: String, path: Vec<PathStep>| Slot { channel, path, kind: TextKind::Plain, tool: None };
        match self.api {
            Api::ChatCompletions => {
                let Some(choices) = value.get("choices").and_then(Value::as_array) else { return slots };
                for (k, choice) in choices.iter().enumerate() {
                    let i = choice.get("index").and_then(Value::as_u64).unwrap_or(k as u64);
                    let Some(delta) = choice.get("delta") else { continue };
                    let base = || vec![PathStep::Key("choices"), PathStep::Index(k), PathStep::Key("delta")];
                    for key in ["content", "reasoning_content", "reasoning"] {
                        if delta.get(key).is_some_and(Value::is_string) {
                            let mut path = base();
                            path.push(PathStep::Key(key));
                            slots.push(text(format!("{key}{i}"), path));
                        }
                    }
                    let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) else { continue };
                    for (m, call) in calls.iter().enumerate() {
                        let j = call.get("index").and_then(Value::as_u64).unwrap_or(m as u64);
                        let channel = format!("t{i}.{j}");
                        let function = call.get("function");
                        if let Some(name) = function.and_then(|f| f.get("name")).and_then(Value::as_str) {
                            self.tools.insert(channel.clone(), name.to_owned());
                        }
                        if function.and_then(|f| f.get("arguments")).is_some_and(Value::is_string) {
                            let mut path = base();
                            path.extend([
                                PathStep::Key("tool_calls"),
                                PathStep::Index(m),
                                PathStep::Key("function"),
                                PathStep::Key("arguments"),
                            ]);
                            let tool = Some(self.tools.get(&channel).cloned().unwrap_or_default());
                            slots.push(Slot { channel, path, kind: TextKind::JsonSource, tool });
                        }
                    }
                }
            }
            Api::Messages => {
                let kind = value.get("type").and_then(Value::as_str).unwrap_or("");
                let channel = format!("b{}", index(value, "index"));
                if kind == "content_block_start"
                    && let Some(name) = value.pointer("/content_block/name").and_then(Value::as_str)
                {
                    self.tools.insert(channel.clone(), name.to_owned());
                }
                if kind == "content_block_delta" {
                    let delta_kind = value.pointer("/delta/type").and_then(Value::as_str).unwrap_or("");
                    let (key, json) = match delta_kind {
                        "text_delta" => ("text", false),
                        "thinking_delta" => ("thinking", false),
                        "input_json_delta" => ("partial_json", true),
                        _ => return slots,
                    };
                    let path = vec![PathStep::Key("delta"), PathStep::Key(key)];
                    if json {
                        let tool = Some(self.tools.get(&channel).cloned().unwrap_or_default());
                        slots.push(Slot { channel, path, kind: TextKind::JsonSource, tool });
                    } else {
                        slots.push(text(channel, path));
                    }
                }
            }
            Api::Responses => {
                let kind = value.get("type").and_then(Value::as_str).unwrap_or("");
                let output = index(value, "output_index");
                match kind {
                    "response.output_item.added" => {
                        if let Some(name) = value.pointer("/item/name").and_then(Value::as_str) {
                            self.tools.insert(format!("o{output}"), name.to_owned());
                        }
                    }
                    "response.output_text.delta"
                    | "response.reasoning_summary_text.delta"
                    | "response.reasoning_text.delta"
                    | "response.refusal.delta" => {
                        let part = index(value, "content_index").max(index(value, "summary_index"));
                        slots.push(text(format!("{kind}{output}.{part}"), vec![PathStep::Key("delta")]));
                    }
                    "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
                        let channel = format!("o{output}");
                        let tool = Some(self.tools.get(&channel).cloned().unwrap_or_default());
                        let kind = if kind.contains("function_call") { TextKind::JsonSource } else { TextKind::Plain };
                        slots.push(Slot { channel, path: vec![PathStep::Key("delta")], kind, tool });
                    }
                    _ => {}
                }
            }
        }
        slots
    }
}

fn index(value: &Value, key: &str) -> u64 {
    value.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn pointer_mut<'v>(value: &'v mut Value, path: &[PathStep]) -> Option<&'v mut Value> {
    path.iter().try_fold(value, |v, step| match step {
        PathStep::Key(key) => v.get_mut(*key),
        PathStep::Index(i) => v.get_mut(*i),
    })
}

/// The end (exclusive) of the first complete event in `bytes`: after its first empty line, looking
/// from `start` (a line start). Lines end in `\r\n`, `\n` or `\r` (the HTML Living Standard's
/// event-stream grammar), so a final `\r` waits for the next byte. Without a complete event: the start
/// of the last, unfinished line, where the next search resumes.
fn event_end(bytes: &[u8], start: usize) -> Result<usize, usize> {
    let mut start = start;
    while let Some(offset) = bytes[start..].iter().position(|&b| b == b'\n' || b == b'\r') {
        let at = start + offset;
        let length = match (bytes[at], bytes.get(at + 1)) {
            (b'\r', None) => return Err(start),
            (b'\r', Some(b'\n')) => 2,
            _ => 1,
        };
        if at == start {
            return Ok(at + length);
        }
        start = at + length;
    }
    Err(start)
}

/// The event's lines other than `data:`, and its data (lines joined with `\n`); None without data.
fn split_event(raw: &[u8]) -> Option<(Vec<String>, String)> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut others = Vec::new();
    let mut data: Option<String> = None;
    for line in text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("data:") {
            let rest = rest.strip_prefix(' ').unwrap_or(rest);
            match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(rest);
                }
                None => data = Some(rest.to_owned()),
            }
        } else {
            others.push(line.to_owned());
        }
    }
    data.map(|d| (others, d))
}

fn write_event(other_lines: &[String], value: &Value, out: &mut Vec<u8>) {
    for line in other_lines {
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(value.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}
