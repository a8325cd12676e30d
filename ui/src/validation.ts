// The exception form's inline checks: the same rules as src-tauri/src/request_form.rs,
// which checks again on submit and has the last word.
import type { ExceptionDraft, FieldProblem, FormRules } from "./types";
import { humanDuration } from "./format";

export function checkDraft(draft: ExceptionDraft, rules: FormRules): FieldProblem[] {
  const problems: FieldProblem[] = [];
  if (!draft.tool) {
    problems.push({ field: "tool", message: "Choose the tool you need." });
  } else if (!rules.tools.some((t) => t.id === draft.tool)) {
    problems.push({ field: "tool", message: `No exception can be requested for ${draft.tool}.` });
  }
  const length = [...draft.justification.trim()].length;
  if (length < rules.minJustification) {
    problems.push({
      field: "justification",
      message: `Explain why in at least ${rules.minJustification} characters (${length} so far).`,
    });
  }
  if (draft.scope === "repository") {
    const repository = (draft.repository ?? "").trim();
    if (!repository) {
      problems.push({ field: "repository", message: "Give the repository's folder, or choose everywhere." });
    } else if (scopeProblem(repository) !== null) {
      problems.push({ field: "repository", message: "The repository must be a full path (starting with /)." });
    }
  }
  if (!Number.isFinite(draft.durationSeconds) || draft.durationSeconds < rules.minDurationSeconds) {
    problems.push({ field: "duration", message: "An exception lasts at least an hour." });
  } else if (draft.durationSeconds > rules.maxDurationSeconds) {
    problems.push({ field: "duration", message: `The policy allows at most ${humanDuration(rules.maxDurationSeconds)}.` });
  }
  return problems;
}

/** Seconds from the form's number and unit fields. */
export function durationSeconds(amount: string, unit: "hours" | "days"): number {
  const n = Number(amount);
  if (!amount.trim() || !Number.isFinite(n)) return NaN;
  return Math.round(n * (unit === "days" ? 86_400 : 3600));
}

/** The longest scope accepted, in bytes (warden_policy::MAX_SCOPE_BYTES). */
export const MAX_SCOPE_BYTES = 4096;

/**
 * What is wrong with a typed repository folder that the device cannot fix, or null: the
 * same rule as warden_policy::check_scope in its order (empty, too long, control characters,
 * not absolute: `/…`, `C:\…`, `C:/…`, `\\server\share…`). A `..` or `.` component, `//` or a
 * trailing separator is not refused here: the tray resolves the folder to its canonical path
 * on submit (src-tauri request_form::resolve_repository). Cases: tests/data/scopes.json.
 */
export function scopeProblem(scope: string): "empty" | "too-long" | "control-character" | "not-absolute" | null {
  if (scope === "") return "empty";
  if (new TextEncoder().encode(scope).length > MAX_SCOPE_BYTES) return "too-long";
  // Unicode's control characters, as Rust's char::is_control.
  if (/\p{Cc}/u.test(scope)) return "control-character";
  if (scope.startsWith("/")) return null;
  if (/^[A-Za-z]:[\\/]/.test(scope)) return null;
  if (/^\\\\[^\\]+\\[^\\]+/.test(scope)) return null;
  return "not-absolute";
}
