//! The exception-request form's rules: which tools may be asked for, how long a
//! justification must be, which scopes and durations are allowed.
//!
//! The UI checks the same rules inline (ui/src/validation.ts); this is the check that
//! counts, run again when the request is submitted.

use serde::{Deserialize, Serialize};
use warden_policy::{Action, Catalog, Policy, tool_status};

/// Shortest justification an approver will read.
pub const MIN_JUSTIFICATION: usize = 20;
/// Shortest exception worth asking for.
pub const MIN_DURATION_SECONDS: u64 = 3600;

/// Where an exception would apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScopeChoice {
    /// Only inside one repository.
    Repository,
    /// Everywhere on this device.
    Everywhere,
}

/// What the developer typed into the form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExceptionDraft {
    pub tool: String,
    pub justification: String,
    pub scope: ScopeChoice,
    /// The repository root, for `Repository` scope.
    #[serde(default)]
    pub repository: Option<String>,
    pub duration_seconds: u64,
}

/// One problem with one field, worded for the developer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldProblem {
    pub field: &'static str,
    pub message: String,
}

/// The tools a developer may request an exception for: those the policy warns about or
/// blocks, minus the ones it says never get exceptions.
pub fn requestable(policy: &Policy, catalog: &Catalog, tool: &str) -> bool {
    catalog.tool(tool).is_some_and(|t| tool_status(policy, t).action > Action::Allow)
        && !policy.exceptions.never.iter().any(|never| never == tool)
}

/// Checks a draft; every problem is reported, not just the first.
pub fn check_draft(draft: &ExceptionDraft, policy: &Policy, catalog: &Catalog) -> Vec<FieldProblem> {
    let mut problems = Vec::new();
    let mut problem = |field, message: String| problems.push(FieldProblem { field, message });
    match catalog.tool(&draft.tool) {
        None if draft.tool.is_empty() => problem("tool", "Choose the tool you need.".into()),
        None => problem("tool", format!("Warden does not know a tool called {:?}.", draft.tool)),
        Some(tool) if !requestable(policy, catalog, &tool.id) => {
            let why = if tool_status(policy, tool).action == Action::Allow {
                "it is already allowed"
            } else {
                "the policy allows no exceptions for it"
            };
            problem("tool", format!("No exception can be requested for {}: {why}.", tool.name))
        }
        Some(_) => {}
    }
    let length = draft.justification.trim().chars().count();
    if length < MIN_JUSTIFICATION {
        problem("justification", format!("Explain why in at least {MIN_JUSTIFICATION} characters ({length} so far)."));
    }
    if draft.scope == ScopeChoice::Repository {
        match draft.repository.as_deref().map(str::trim) {
            None | Some("") => problem("repository", "Give the repository's folder, or choose everywhere.".into()),
            Some(path) if !std::path::Path::new(path).is_absolute() => {
                problem("repository", "The repository must be a full path (starting with /).".into())
            }
            Some(_) => {}
        }
    }
    let max = policy.exceptions.max_duration;
    if draft.duration_seconds < MIN_DURATION_SECONDS {
        problem("duration", "An exception lasts at least an hour.".into());
    } else if draft.duration_seconds > max {
        problem("duration", format!("The policy allows at most {}.", human_duration(max)));
    }
    problems
}

/// "30 days", "8 hours", "1 day".
pub fn human_duration(seconds: u64) -> String {
    let (n, unit) = if seconds.is_multiple_of(86_400) {
        (seconds / 86_400, "day")
    } else if seconds.is_multiple_of(3600) {
        (seconds / 3600, "hour")
    } else {
        (seconds.div_ceil(60), "minute")
    };
    if n == 1 { format!("1 {unit}") } else { format!("{n} {unit}s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(tool: &str, justification: &str, scope: ScopeChoice, repo: Option<&str>, secs: u64) -> ExceptionDraft {
        ExceptionDraft {
            tool: tool.into(),
            justification: justification.into(),
            scope,
            repository: repo.map(Into::into),
            duration_seconds: secs,
        }
    }

    #[test]
    fn each_field_problem_and_a_clean_draft() {
        let policy = Policy::embedded();
        let catalog = policy.catalog();
        let why = "Need it to reproduce a customer bug report";
        let cases: Vec<(ExceptionDraft, Vec<&str>)> = vec![
            (draft("claude-code", why, ScopeChoice::Repository, Some("/src/app"), 86_400), vec![]),
            (draft("cursor", why, ScopeChoice::Everywhere, None, 30 * 86_400), vec![]),
            (draft("", why, ScopeChoice::Everywhere, None, 86_400), vec!["tool"]),
            (draft("no-such-tool", why, ScopeChoice::Everywhere, None, 86_400), vec!["tool"]),
            (draft("qwen-code", why, ScopeChoice::Everywhere, None, 86_400), vec!["tool"]),
            (draft("claude-code", "too short", ScopeChoice::Everywhere, None, 86_400), vec!["justification"]),
            (draft("claude-code", why, ScopeChoice::Repository, None, 86_400), vec!["repository"]),
            (draft("claude-code", why, ScopeChoice::Repository, Some("src/app"), 86_400), vec!["repository"]),
            (draft("claude-code", why, ScopeChoice::Everywhere, None, 60), vec!["duration"]),
            (draft("claude-code", why, ScopeChoice::Everywhere, None, 31 * 86_400), vec!["duration"]),
            (draft("", "", ScopeChoice::Repository, None, 0), vec!["tool", "justification", "repository", "duration"]),
        ];
        for (draft, fields) in cases {
            let problems = check_draft(&draft, &policy, &catalog);
            let got: Vec<_> = problems.iter().map(|p| p.field).collect();
            assert_eq!(got, fields, "{draft:?}: {problems:?}");
        }
        let too_long =
            check_draft(&draft("claude-code", why, ScopeChoice::Everywhere, None, 31 * 86_400), &policy, &catalog);
        assert_eq!(too_long[0].message, "The policy allows at most 30 days.");
    }

    #[test]
    fn durations_read_naturally() {
        for (seconds, words) in [(86_400, "1 day"), (30 * 86_400, "30 days"), (7200, "2 hours"), (90, "2 minutes")] {
            assert_eq!(human_duration(seconds), words);
        }
    }
}
