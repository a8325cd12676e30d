// Words for durations, request statuses and outcomes.
import { describe, expect, it } from "vitest";
import { humanDuration, outcomeLabel, requestStatusText } from "../../src/format";

describe("humanDuration", () => {
  it.each([
    [86_400, "1 day"],
    [30 * 86_400, "30 days"],
    [7200, "2 hours"],
    [3600, "1 hour"],
    [90, "2 minutes"],
  ])("%i s is %s", (seconds, words) => expect(humanDuration(seconds)).toBe(words));
});

describe("requestStatusText", () => {
  it("says what each status means", () => {
    expect(requestStatusText({ state: "waiting-to-be-sent" })).toMatch(/^Waiting to be sent/);
    expect(requestStatusText({ state: "pending" })).toMatch(/approver/);
    expect(requestStatusText({ state: "approved", untilMs: Date.UTC(2026, 10, 30, 12) })).toMatch(/^Approved until .*2026/);
    expect(
      requestStatusText({
        state: "approved",
        untilMs: Date.UTC(2026, 10, 30, 12),
        conditions: "only through the company gateway; no risky modes",
      }),
    ).toMatch(/^Approved until .*2026.*: only through the company gateway; no risky modes$/);
    expect(requestStatusText({ state: "denied", comment: "Use the assistant" })).toBe("Denied: “Use the assistant”");
    expect(requestStatusText({ state: "denied", comment: "" })).toBe("Denied");
    expect(requestStatusText({ state: "denied", comment: "Use the assistant", by: "lead@example.com" })).toBe(
      "Denied by lead@example.com: “Use the assistant”",
    );
    expect(requestStatusText({ state: "expired" })).toBe("Expired");
    expect(requestStatusText({ state: "withdrawn" })).toBe("Withdrawn");
    expect(requestStatusText({ state: "revoked", comment: "incident" })).toBe("Revoked: “incident”");
    expect(requestStatusText({ state: "revoked", comment: "", by: "sec@example.com" })).toBe("Revoked by sec@example.com");
  });
});

describe("outcomeLabel", () => {
  it("names known outcomes and passes unknown ones through", () => {
    expect(outcomeLabel("killed")).toBe("Blocked (stopped)");
    expect(outcomeLabel("would-block")).toMatch(/monitor/);
    expect(outcomeLabel("something-new")).toBe("something-new");
  });
});
