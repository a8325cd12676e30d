//! The exception-request form's rules: which tools may be asked for, how long a
//! justification must be, which scopes and durations are allowed.
//!
//! The UI checks the same rules inline (ui/src/validation.ts); this is the check that
//! counts, run again when the request is submitted, after [`resolve_repository`] has made
//! the repository the canonical path the exception is stored and compared as.

use serde::{Deserialize, Serialize};
use warden_policy::{Action, Catalog, Policy, check_scope, tool_status};

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
            // The one rule for scopes (warden-policy); a resolved repository always passes.
            Some(path) => {
                if let Err(reason) = check_scope(path) {
                    problem("repository", format!("The repository must be a canonical folder path: {reason}."))
                }
            }
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

/// Replaces a repository-scoped draft's folder by its canonical path (`..` and symlinks
/// resolved by the file system, as the kernel reports a launch's working directory), so the
/// exception matches launches there. A full path to a folder that does not exist is a
/// problem for the form; blank and relative entries are left for [`check_draft`] to name.
pub fn resolve_repository(draft: &mut ExceptionDraft) -> Option<FieldProblem> {
    if draft.scope != ScopeChoice::Repository {
        return None;
    }
    let typed = draft.repository.as_deref().map(str::trim).filter(|p| std::path::Path::new(p).is_absolute())?;
    match warden_client::canonical_scope(std::path::Path::new("/"), std::path::Path::new(typed)) {
        Ok(canonical) => {
            draft.repository = Some(canonical);
            None
        }
        Err(error) => Some(FieldProblem {
            field: "repository",
            message: match error {
                warden_client::ClientError::BadScope { reason, .. } => format!("The repository folder: {reason}."),
                other => other.to_string(),
            },
        }),
    }
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
            (draft("claude-code", why, ScopeChoice::Repository, Some("/src/../app"), 86_400), vec!["repository"]),
            (draft("claude-code", why, ScopeChoice::Repository, Some("/src/app/"), 86_400), vec!["repository"]),
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
    fn the_repository_is_resolved_to_its_canonical_folder() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let sdk = root.join("vendor-sdk");
        std::fs::create_dir_all(root.join("work")).unwrap();
        std::fs::create_dir_all(&sdk).unwrap();
        std::os::unix::fs::symlink(&sdk, root.join("link")).unwrap();
        let why = "Need it to reproduce a customer bug report";
        for typed in [root.join("work/../vendor-sdk"), root.join("link"), root.join("link/")] {
            let typed = typed.to_str().unwrap();
            let mut form = draft("claude-code", why, ScopeChoice::Repository, Some(typed), 86_400);
            assert_eq!(resolve_repository(&mut form), None, "{typed}");
            assert_eq!(form.repository.as_deref(), sdk.to_str(), "{typed}");
        }
        let missing = root.join("missing");
        let mut form = draft("claude-code", why, ScopeChoice::Repository, missing.to_str(), 86_400);
        let problem = resolve_repository(&mut form).expect("a folder that does not exist is a problem");
        assert_eq!(problem.field, "repository");
        assert!(problem.message.contains("no such directory"), "{}", problem.message);
        let mut everywhere = draft("claude-code", why, ScopeChoice::Everywhere, missing.to_str(), 86_400);
        assert_eq!(resolve_repository(&mut everywhere), None, "no folder matters for everywhere");
    }

    #[test]
    fn durations_read_naturally() {
        for (seconds, words) in [(86_400, "1 day"), (30 * 86_400, "30 days"), (7200, "2 hours"), (90, "2 minutes")] {
            assert_eq!(human_duration(seconds), words);
        }
    }
}
