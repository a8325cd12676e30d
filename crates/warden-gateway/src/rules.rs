//! The masking rule set (`rules.toml` plus the policy's `[masking]` section) compiled once into a
//! [`Detector`]: one Aho-Corasick pass finds every rule's keywords, and only rules whose keywords occur
//! run their regex.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex::Regex;
use serde::Deserialize;
use warden_policy::{Masking, MaskingRule};

/// The built-in rule set, documented in the file itself.
pub const BUILTIN_RULES: &str = include_str!("rules.toml");

/// A rule set that cannot be compiled.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("rules.toml: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("masking rule {id:?}: {message}")]
    Rule { id: String, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    restore: RestoreSection,
    rule: Vec<MaskingRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreSection {
    tools: Vec<String>,
}

/// One compiled rule.
#[derive(Debug)]
struct CompiledRule {
    id: String,
    label: String,
    regex: Regex,
    group: usize,
    entropy: Option<f64>,
    multiline: bool,
    /// Bytes before and after a keyword the match may reach.
    window: [usize; 2],
}

/// A secret or identifier found in a text: byte range `start..end`, and the rule that found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    pub start: usize,
    pub end: usize,
    /// Index into [`Detector::rule_id`] / [`Detector::rule_label`].
    pub rule: usize,
}

/// Every rule compiled; cheap to share (`Arc`) between requests.
#[derive(Debug)]
pub struct Detector {
    rules: Vec<CompiledRule>,
    /// Keyword pattern index → rule index.
    keyword_rule: Vec<usize>,
    /// Keyword pattern index → whether it must match in its own case (its rule's pattern is not
    /// case-insensitive: `SG.` must not open a window at every `msg.`).
    keyword_exact: Vec<bool>,
    keywords: AhoCorasick,
    keyword_text: Vec<String>,
    /// Tools whose arguments get placeholders restored.
    restore_tools: Vec<String>,
}

impl Detector {
    /// The built-in rules plus the policy's `[masking]` section (if any).
    pub fn new(masking: Option<&Masking>) -> Result<Detector, RulesError> {
        Detector::from_sources(BUILTIN_RULES, masking)
    }

    /// `rules_toml` (in the shape of `rules.toml`) plus the policy's section.
    pub fn from_sources(rules_toml: &str, masking: Option<&Masking>) -> Result<Detector, RulesError> {
        let file: RulesFile = toml::from_str(rules_toml)?;
        let mut specs = file.rule;
        if let Some(masking) = masking {
            specs.extend(company_rules(masking));
            specs.extend(masking.rules.iter().cloned());
        }
        let mut rules = Vec::with_capacity(specs.len());
        let mut keyword_rule = Vec::new();
        let mut keyword_exact = Vec::new();
        let mut keywords = Vec::new();
        for spec in &specs {
            let fail = |message: String| RulesError::Rule { id: spec.id.clone(), message };
            if spec.keywords.is_empty() {
                return Err(fail("has no keywords (it would run on every text)".into()));
            }
            let regex = Regex::new(&spec.pattern).map_err(|e| fail(e.to_string()))?;
            let group = spec.group.unwrap_or(0);
            if group >= regex.captures_len() {
                return Err(fail(format!("group {group} does not exist in the pattern")));
            }
            for keyword in &spec.keywords {
                keywords.push(keyword.clone());
                keyword_rule.push(rules.len());
                keyword_exact.push(!spec.pattern.starts_with("(?i"));
            }
            rules.push(CompiledRule {
                id: spec.id.clone(),
                label: spec.label.clone().unwrap_or_else(|| "SECRET".into()),
                regex,
                group,
                entropy: spec.entropy,
                multiline: spec.multiline,
                window: spec.window.unwrap_or([WINDOW_BEFORE, WINDOW_AFTER]),
            });
        }
        let keyword_text = keywords.clone();
        let keywords = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            // A full DFA: one table lookup per byte, which the overlapping search (every keyword of
            // every rule, also where keywords overlap) needs to stay fast.
            .kind(Some(AhoCorasickKind::DFA))
            .build(&keywords)
            .map_err(|e| RulesError::Rule { id: "(keywords)".into(), message: e.to_string() })?;
        Ok(Detector { rules, keyword_rule, keyword_exact, keywords, restore_tools: file.restore.tools, keyword_text })
    }

    /// The id of rule `index` (`"aws-access-key-id"`).
    pub fn rule_id(&self, index: usize) -> &str {
        &self.rules[index].id
    }

    /// The placeholder word of rule `index` (`"SECRET"`, `"HOST"`, …).
    pub fn rule_label(&self, index: usize) -> &str {
        &self.rules[index].label
    }

    /// How many rules there are.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Whether a tool's arguments get placeholders restored (it writes files the developer owns).
    pub fn restores_into(&self, tool: &str) -> bool {
        self.restore_tools.iter().any(|t| t == tool)
    }

    /// Every finding in `text`, sorted by start, without overlaps (of overlapping findings the one
    /// starting first wins; at the same start, the longer).
    pub fn find(&self, text: &str) -> Vec<Finding> {
        // Per rule, the windows its keywords open: (start, end) byte ranges of `text`.
        let mut windows: Vec<Vec<(usize, usize)>> = Vec::new();
        for hit in self.keywords.find_overlapping_iter(text) {
            if windows.is_empty() {
                windows = vec![Vec::new(); self.rules.len()];
            }
            let pattern = hit.pattern().as_usize();
            if self.keyword_exact[pattern] && text[hit.start()..hit.end()] != self.keyword_text[pattern] {
                continue;
            }
            let rule = self.keyword_rule[pattern];
            let [before, after] = self.rules[rule].window;
            let window = if self.rules[rule].multiline {
                (line_start(text, hit.start()), text.len())
            } else {
                (snap_back(text, hit.start().saturating_sub(before)), snap_forward(text, hit.end() + after))
            };
            windows[rule].push(window);
        }
        let mut findings = Vec::new();
        for (index, rule_windows) in windows.iter_mut().enumerate().filter(|(_, w)| !w.is_empty()) {
            let rule = &self.rules[index];
            rule_windows.sort_unstable();
            let mut merged: Vec<(usize, usize)> = Vec::with_capacity(rule_windows.len());
            for &(start, end) in rule_windows.iter() {
                match merged.last_mut() {
                    Some(last) if start <= last.1 => last.1 = last.1.max(end),
                    _ => merged.push((start, end)),
                }
            }
            for (start, end) in merged {
                for captures in rule.regex.captures_iter(&text[start..end]) {
                    let Some(span) = captures.get(rule.group) else { continue };
                    if span.is_empty() {
                        continue;
                    }
                    if let Some(minimum) = rule.entropy
                        && !looks_random(span.as_str(), minimum)
                    {
                        continue;
                    }
                    findings.push(Finding { start: start + span.start(), end: start + span.end(), rule: index });
                }
            }
        }
        findings.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
        let mut kept: Vec<Finding> = Vec::with_capacity(findings.len());
        for finding in findings {
            if kept.last().is_none_or(|last| finding.start >= last.end) {
                kept.push(finding);
            }
        }
        kept
    }
}

/// By default, how far before a keyword a single-line rule's match may start (a URL's scheme and user
/// before `://`, a Sentry key before `sentry.io`), and how far after it may end (the longest token).
const WINDOW_BEFORE: usize = 160;
const WINDOW_AFTER: usize = 1024;
/// How far a window's edge moves to reach white space or a quote, so no token is cut in two.
const SNAP: usize = 256;

fn is_separator(byte: u8) -> bool {
    byte.is_ascii_whitespace() || matches!(byte, b'"' | b'\'' | b'`')
}

fn line_start(text: &str, at: usize) -> usize {
    text[..at].rfind('\n').map_or(0, |i| i + 1)
}

/// `at` moved back to just after a separator (at most [`SNAP`] bytes), on a character boundary.
fn snap_back(text: &str, at: usize) -> usize {
    let bytes = text.as_bytes();
    let floor = at.saturating_sub(SNAP);
    let mut i = at;
    while i > floor && !is_separator(bytes[i - 1]) {
        i -= 1;
    }
    let mut i = if i == floor && i > 0 && !is_separator(bytes[i - 1]) { at } else { i };
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// `at` moved forward to a separator (at most [`SNAP`] bytes), on a character boundary.
fn snap_forward(text: &str, at: usize) -> usize {
    let bytes = text.as_bytes();
    if at >= bytes.len() {
        return bytes.len();
    }
    let ceiling = (at + SNAP).min(bytes.len());
    let mut i = at;
    while i < ceiling && !is_separator(bytes[i]) {
        i += 1;
    }
    let mut i = if i == ceiling && ceiling < bytes.len() { at } else { i };
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// Rules for the company's own identifiers.
fn company_rules(masking: &Masking) -> Vec<MaskingRule> {
    let alternation = |values: &[String]| values.iter().map(|v| regex::escape(v.trim())).collect::<Vec<_>>().join("|");
    let rule = |id: &str, label: &str, keywords: &[String], pattern: String| MaskingRule {
        id: id.into(),
        keywords: keywords.iter().map(|k| k.trim().to_owned()).collect(),
        pattern,
        group: None,
        entropy: None,
        label: Some(label.into()),
        multiline: false,
        window: None,
    };
    let mut rules = Vec::new();
    if !masking.internal_domains.is_empty() {
        let domains = alternation(&masking.internal_domains);
        rules.push(rule(
            "internal-host",
            "HOST",
            &masking.internal_domains,
            format!(r"(?i)(?-u:\b)(?:[a-z0-9](?:[a-z0-9\-]{{0,61}}[a-z0-9])?\.)*(?:{domains})(?-u:\b)"),
        ));
    }
    if !masking.email_domains.is_empty() {
        let domains = alternation(&masking.email_domains);
        let keywords: Vec<String> = masking.email_domains.iter().map(|d| format!("@{}", d.trim())).collect();
        rules.push(rule(
            "company-email",
            "EMAIL",
            &keywords,
            format!(r"(?i)(?-u:\b)[A-Za-z0-9._%+\-]+@(?:[a-z0-9\-]+\.)*(?:{domains})(?-u:\b)"),
        ));
    }
    for (id, names) in [("code-name", &masking.code_names), ("customer-name", &masking.customer_names)] {
        if !names.is_empty() {
            rules.push(rule(id, "NAME", names, format!(r"(?i)(?-u:\b)(?:{})(?-u:\b)", alternation(names))));
        }
    }
    rules
}

/// Shannon entropy of `value` in bits per character.
pub fn shannon_entropy(value: &str) -> f64 {
    let mut counts = [0u32; 256];
    let mut total = 0u32;
    for byte in value.bytes() {
        counts[byte as usize] += 1;
        total += 1;
    }
    if total == 0 {
        return 0.0;
    }
    let total = f64::from(total);
    counts.iter().filter(|&&c| c > 0).map(|&c| f64::from(c) / total).map(|p| -p * p.log2()).sum()
}

/// Whether a value found by a generic (keyword) rule looks like a credential rather than code.
///
/// A random string of n distinct characters has log2(n) bits per character, so short values are
/// held to a proportionally lower bar. Identifiers (`DB_PASSWORD`, `process.env.TOKEN`,
/// `getPassword`), templates (`${TOKEN}`, `{{ secrets.X }}`) and values without both letters and
/// digits (or symbols) are code, not secrets.
fn looks_random(value: &str, minimum: f64) -> bool {
    let value = value.trim_end_matches(['.', ',', ';']);
    if value.len() < 8 {
        return false;
    }
    let has_digit = value.bytes().any(|b| b.is_ascii_digit());
    let has_alpha = value.bytes().any(|b| b.is_ascii_alphabetic());
    let has_symbol = value.bytes().any(|b| b"+/=!@#%^&*~-".contains(&b));
    if !(has_alpha && (has_digit || has_symbol)) {
        return false;
    }
    let is_identifier_path = value.split('.').all(|segment| {
        let mut chars = segment.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    // `DB_PASSWORD_2`, `getToken`, `os.environ`: words a developer typed, not a random value.
    if is_identifier_path && (value.contains('.') || value.contains('_') || !has_digit) {
        return false;
    }
    // `my-app-secret`, `Session_Token`: words joined by dashes or underscores.
    let is_words = value.split(['-', '_']).all(|word| word.bytes().all(|b| b.is_ascii_alphabetic()));
    if is_words {
        return false;
    }
    let bar = minimum.min((value.len() as f64).log2() * 0.75);
    shannon_entropy(value) >= bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_rules_compile_and_every_rule_has_keywords() {
        let detector = Detector::new(None).expect("built-in rules compile");
        assert!(detector.rule_count() >= 45, "{}", detector.rule_count());
    }

    #[test]
    fn entropy_of_uniform_and_constant_strings() {
        assert_eq!(shannon_entropy("aaaa"), 0.0);
        assert!((shannon_entropy("abcd") - 2.0).abs() < 1e-9);
    }

    #[test]
    fn company_identifiers_from_the_policy() {
        let masking = Masking {
            internal_domains: vec!["corp.example.com".into()],
            code_names: vec!["Bluefin".into()],
            email_domains: vec!["example.com".into()],
            customer_names: vec!["Globex".into()],
            rules: vec![],
        };
        let detector = Detector::new(Some(&masking)).unwrap();
        let text = "ssh build-7.eu.corp.example.com for bluefin (Globex), mail jane.doe@example.com";
        let found: Vec<(&str, &str)> =
            detector.find(text).iter().map(|f| (detector.rule_id(f.rule), &text[f.start..f.end])).collect();
        assert_eq!(
            found,
            [
                ("internal-host", "build-7.eu.corp.example.com"),
                ("code-name", "bluefin"),
                ("customer-name", "Globex"),
                ("company-email", "jane.doe@example.com"),
            ]
        );
    }
}
