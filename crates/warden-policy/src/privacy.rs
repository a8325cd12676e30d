//! What of a launch's command line is kept in its event (stored on the device, uploaded to the
//! server, shown in the console): by default the program, the options the tool's catalog grammar
//! knows and the values of its settings (`--approval-mode yolo`, `--model x`, a base URL) — never
//! prompts, file names, settings JSON or the values of options the catalog does not describe,
//! which become [`REDACTED`]. `[privacy] full_command_lines = true` keeps everything.

use crate::catalog::Catalog;
use crate::facts::ProcessFacts;
use crate::policy::Policy;
use crate::risky::tool_arguments_start;

/// What stands for the words a command line does not keep (a run of them is one).
pub const REDACTED: &str = "‹redacted›";

/// `facts.argv` as an event keeps it. For `tool` (a catalog id) the tool's own option grammar
/// says what is an option and what a value; for a launch without one, words starting with `-`
/// are kept (the part before a `=`) and the rest redacted. The program words (interpreter, script,
/// the program a loader runs) are always kept. A run of redacted words becomes one [`REDACTED`].
pub fn shareable_argv(policy: &Policy, catalog: &Catalog, facts: &ProcessFacts, tool: Option<&str>) -> Vec<String> {
    if policy.privacy.full_command_lines {
        return facts.argv.clone();
    }
    let argv = &facts.argv;
    let start = tool_arguments_start(facts.interpreter_name(), argv).min(argv.len());
    let shown = match tool.and_then(|id| catalog.tool_options(id)) {
        Some(options) => options.redact(argv, start),
        None => argv
            .iter()
            .enumerate()
            .map(|(i, word)| {
                if i < start {
                    Some(word.clone())
                } else if word.starts_with('-') && word != "-" && word != "--" {
                    Some(option_name_only(word))
                } else {
                    None
                }
            })
            .collect(),
    };
    let mut kept: Vec<String> = Vec::with_capacity(shown.len());
    for word in shown {
        match word {
            Some(word) => kept.push(word),
            None if kept.last().is_some_and(|last| last == REDACTED) => {}
            None => kept.push(REDACTED.to_owned()),
        }
    }
    kept
}

/// An option as written, its inline value redacted: `--token=abc` → `--token=‹redacted›`.
pub(crate) fn option_name_only(word: &str) -> String {
    match word.split_once('=') {
        Some((name, _)) => format!("{name}={REDACTED}"),
        None => word.to_owned(),
    }
}
