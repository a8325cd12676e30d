// The exception form's inline rules, case by case (mirrors src-tauri request_form tests).
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { checkDraft, durationSeconds, MAX_SCOPE_BYTES, scopeProblem } from "../../src/validation";
import type { ExceptionDraft, FormRules } from "../../src/types";

const rules: FormRules = {
  tools: [
    { id: "claude-code", name: "Claude Code", status: "blocked" },
    { id: "cursor", name: "Cursor", status: "warn" },
  ],
  minJustification: 20,
  minDurationSeconds: 3600,
  maxDurationSeconds: 30 * 86_400,
};
const why = "Need it to reproduce a customer bug report";
const draft = (over: Partial<ExceptionDraft>): ExceptionDraft => ({
  tool: "claude-code",
  justification: why,
  scope: "repository",
  repository: "/src/app",
  durationSeconds: 86_400,
  ...over,
});

describe("checkDraft", () => {
  const cases: [string, Partial<ExceptionDraft>, string[], RegExp?][] = [
    ["a clean repository-scoped draft", {}, []],
    ["a clean everywhere draft at the limit", { scope: "everywhere", repository: null, durationSeconds: 30 * 86_400 }, []],
    ["no tool", { tool: "" }, ["tool"], /Choose the tool/],
    ["a tool not offered", { tool: "qwen-code" }, ["tool"], /qwen-code/],
    ["a short justification", { justification: "  because  " }, ["justification"], /at least 20 characters \(7 so far\)/],
    ["no repository", { repository: "  " }, ["repository"], /repository's folder/],
    ["a relative repository", { repository: "src/app" }, ["repository"], /full path/],
    ["a repository above the current folder", { repository: "../vendor-sdk" }, ["repository"], /full path/],
    ["a full path with .. (resolved by the tray on submit)", { repository: "/src/../vendor-sdk" }, []],
    ["repository ignored for everywhere", { scope: "everywhere", repository: "" }, []],
    ["too short", { durationSeconds: 600 }, ["duration"], /at least an hour/],
    ["not a number", { durationSeconds: NaN }, ["duration"], /at least an hour/],
    ["too long", { durationSeconds: 31 * 86_400 }, ["duration"], /at most 30 days/],
    ["everything wrong", { tool: "", justification: "", repository: "", durationSeconds: 0 }, ["tool", "justification", "repository", "duration"]],
  ];
  for (const [name, over, fields, message] of cases) {
    it(name, () => {
      const problems = checkDraft(draft(over), rules);
      expect(problems.map((p) => p.field)).toEqual(fields);
      if (message) expect(problems[0].message).toMatch(message);
    });
  }
});

describe("durationSeconds", () => {
  it.each([
    ["2", "days", 172_800],
    ["1.5", "hours", 5400],
    ["8", "hours", 28_800],
  ] as const)("%s %s", (amount, unit, seconds) => expect(durationSeconds(amount, unit)).toBe(seconds));
  it("is NaN for an empty or non-numeric amount", () => {
    expect(durationSeconds("", "days")).toBeNaN();
    expect(durationSeconds("soon", "days")).toBeNaN();
  });
});

// The scope cases the policy core checks too (crates/warden-policy/tests/scopes.rs). The form
// refuses what the device cannot fix; `..`, `.`, `//` and a trailing separator are resolved
// to the canonical folder on submit, so the core's refusals of those are not the form's.
describe("scopeProblem (tests/data/scopes.json)", () => {
  const shared = JSON.parse(readFileSync(resolve("../tests/data/scopes.json"), "utf8")) as {
    cases: { scope: string; problem: string | null }[];
  };
  const resolvedOnSubmit = ["dot-component", "empty-component", "trailing-separator"];
  it("has the shared cases", () => expect(shared.cases.length).toBeGreaterThanOrEqual(30));
  for (const { scope, problem } of shared.cases) {
    const expected = problem !== null && resolvedOnSubmit.includes(problem) ? null : problem;
    it(`${JSON.stringify(scope)} → ${expected}`, () => expect(scopeProblem(scope)).toBe(expected));
  }
  it("bounds the length in bytes", () => {
    expect(scopeProblem(`/${"a".repeat(MAX_SCOPE_BYTES - 1)}`)).toBeNull();
    expect(scopeProblem(`/${"é".repeat(MAX_SCOPE_BYTES / 2)}`)).toBe("too-long");
  });
});
