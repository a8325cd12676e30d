//! The policy's `[masking]` section: the company's own identifiers and extra secret rules that the
//! masking gateway (`warden-gateway`) adds to its built-in rule set. Only shapes and checks live here;
//! matching is the gateway's.

use crate::catalog::CompileProblem;
use serde::{Deserialize, Serialize};

/// What, besides the built-in secret rules, never leaves the machine in a prompt.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Masking {
    /// Internal DNS suffixes (`corp.example.com`): the domain and every host name under it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub internal_domains: Vec<String>,
    /// Project code names, matched as whole words, any case.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub code_names: Vec<String>,
    /// E-mail domains whose addresses are masked (`example.com` masks `jane@example.com`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email_domains: Vec<String>,
    /// Customer names, matched as whole words, any case.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub customer_names: Vec<String>,
    /// Further secret rules, in the shape of the gateway's `rules.toml`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<MaskingRule>,
}

/// One extra masking rule (see `crates/warden-gateway/src/rules.toml` for the meaning of each field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskingRule {
    pub id: String,
    /// At least one of these (ASCII case-insensitive) must occur for the pattern to run.
    pub keywords: Vec<String>,
    /// A Rust `regex` pattern.
    pub pattern: String,
    /// The capture group that is the secret (0: the whole match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<usize>,
    /// Minimum Shannon entropy of the secret, bits per character.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entropy: Option<f64>,
    /// The placeholder's word (`SECRET` unless said otherwise): capital letters only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The secret may span lines (a PEM block): matched from the keyword's line to the end of the text.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub multiline: bool,
    /// Bytes before and after a keyword where the match may lie (default 160 and 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<[usize; 2]>,
}

// Entropy thresholds are small finite numbers; a policy never compares NaNs.
impl Eq for MaskingRule {}

impl Masking {
    /// Every entry must be usable: names non-empty, domains without scheme or `@`, rule patterns that
    /// parse (with the same syntax the gateway's `regex` compiles), capture groups that exist.
    pub(crate) fn check(&self) -> Result<(), CompileProblem> {
        let lists = [
            ("internal_domains", &self.internal_domains),
            ("code_names", &self.code_names),
            ("email_domains", &self.email_domains),
            ("customer_names", &self.customer_names),
        ];
        for (field, values) in lists {
            for value in values {
                if value.trim().is_empty() {
                    return Err(problem(field, format!("masking.{field} must not contain an empty name")));
                }
                let is_domain = field.ends_with("domains");
                if is_domain && (value.contains("://") || value.contains('@') || value.contains(char::is_whitespace)) {
                    return Err(problem(
                        value,
                        format!("masking.{field} entry {value:?} must be a bare domain such as \"corp.example.com\""),
                    ));
                }
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for rule in &self.rules {
            if rule.id.is_empty() || !seen.insert(rule.id.as_str()) {
                return Err(problem(&rule.id, format!("masking rule id {:?} is empty or appears twice", rule.id)));
            }
            if rule.keywords.is_empty() || rule.keywords.iter().any(String::is_empty) {
                return Err(problem(&rule.id, format!("masking rule {:?} needs non-empty keywords", rule.id)));
            }
            let hir = regex_syntax::Parser::new()
                .parse(&rule.pattern)
                .map_err(|e| problem(&rule.id, format!("masking rule {:?}: bad pattern: {}", rule.id, one_line(&e))))?;
            let groups = hir.properties().explicit_captures_len();
            if rule.group.is_some_and(|g| g > groups) {
                return Err(problem(
                    &rule.id,
                    format!(
                        "masking rule {:?}: group {} but the pattern has {groups}",
                        rule.id,
                        rule.group.unwrap_or(0)
                    ),
                ));
            }
            if rule.entropy.is_some_and(|e| !(0.0..=8.0).contains(&e)) {
                return Err(problem(&rule.id, format!("masking rule {:?}: entropy must be 0 to 8 bits", rule.id)));
            }
            if rule.label.as_deref().is_some_and(|l| l.is_empty() || !l.chars().all(|c| c.is_ascii_uppercase())) {
                return Err(problem(&rule.id, format!("masking rule {:?}: label must be capital letters", rule.id)));
            }
        }
        Ok(())
    }
}

fn problem(needle: &str, message: String) -> CompileProblem {
    CompileProblem { needle: needle.to_owned(), message }
}

fn one_line(error: &regex_syntax::Error) -> String {
    // regex-syntax draws the pattern with a caret over several lines; the last line says what is wrong.
    error.to_string().lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_owned()
}
