// Rendering of each window's data into accessible markup, from the fixtures the Rust
// side generates from the embedded policy (ui/tests/fixtures, checked by a Rust test).
import { beforeEach, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { renderCatalog } from "../../src/catalog";
import { renderAbout } from "../../src/about";
import { filterRows } from "../../src/activity";
import { renderRequests } from "../../src/exceptions";
import type { AboutView, ActivityRow, CatalogView, ExceptionRequest } from "../../src/types";

const fixture = <T>(name: string): T => JSON.parse(readFileSync(resolve("tests/fixtures", `${name}.json`), "utf8")) as T;

beforeEach(() => {
  document.body.innerHTML = '<main id="main"></main>';
});

describe("catalog", () => {
  it("shows the sanctioned assistant first with an Open button, then every tool with its status", () => {
    const view = fixture<CatalogView>("catalog_view");
    document.getElementById("main")!.append(...renderCatalog(view));
    expect(document.querySelector("h1")?.textContent).toBe("Approved AI tools");
    expect(document.querySelector('[data-action="open-assistant"]')?.textContent).toBe("Open Internal Assistant");
    const cards = [...document.querySelectorAll<HTMLElement>("li.tool")];
    expect(cards).toHaveLength(view.tools.length);
    expect(cards[0].dataset.tool).toBe("qwen-code");
    expect(cards[0].querySelector(".badge")?.textContent).toBe("Sanctioned assistant");
    const claude = document.querySelector('[data-tool="claude-code"]')!;
    expect(claude.querySelector(".badge")?.textContent).toBe("Blocked");
    expect(claude.querySelector(".alternative")?.textContent).toBe("Use instead: Internal Assistant");
    expect(claude.querySelector('[data-action="request"]')?.textContent).toBe("Request an exception for Claude Code");
    expect(cards[0].querySelector('[data-action="request"]')).toBeNull();
    // The controls the service writes into each tool's own settings.
    expect(claude.querySelector(".controls")?.textContent).toMatch(/^Set in Claude Code's own settings: .*bypass mode disabled/);
    expect(cards[0].querySelector(".controls")?.textContent).toContain("pinned to Internal Assistant");
    expect(document.querySelector('[data-tool="cursor"] .controls')).toBeNull();
  });

  it("has an empty-state text", () => {
    document.getElementById("main")!.append(...renderCatalog({ policyName: "p", assistant: null, tools: [] }));
    expect(document.body.textContent).toContain("The catalog lists no AI tools.");
    expect(document.body.textContent).toContain("This policy names no sanctioned assistant.");
  });
});

describe("activity", () => {
  it("filters by tool and by action", () => {
    const rows = fixture<ActivityRow[]>("recent_activity");
    expect(filterRows(rows, { tool: "", action: "" })).toHaveLength(rows.length);
    expect(filterRows(rows, { tool: "claude-code", action: "" }).every((r) => r.tool === "claude-code")).toBe(true);
    expect(filterRows(rows, { tool: "", action: "warn" }).every((r) => r.action === "warn")).toBe(true);
    expect(filterRows(rows, { tool: "claude-code", action: "warn" })).toHaveLength(0);
  });
});

describe("requests", () => {
  it("lists each status in words, and says when there are none", () => {
    const requests = fixture<ExceptionRequest[]>("exception_requests");
    const list = renderRequests(requests);
    const badges = [...list.querySelectorAll(".badge")].map((b) => b.textContent);
    expect(badges.some((b) => b?.startsWith("Waiting to be sent"))).toBe(true);
    expect(badges).toContain("Denied by lead@example.com: “Please use the Internal Assistant for this repository.”");
    expect(badges).toContain("Withdrawn");
    expect(badges).toContain("Revoked: “Security incident: all Cursor exceptions ended.”");
    expect(list.querySelector('[data-request="req-0b"]')?.className).toBe("request state-withdrawn");
    expect(renderRequests([]).textContent).toContain("You have not requested any exceptions.");
  });
});

describe("about", () => {
  it("lists version, policy, server and device", () => {
    const about = fixture<AboutView>("about");
    document.getElementById("main")!.append(...renderAbout(about).filter((e): e is HTMLElement => e !== null));
    const terms = [...document.querySelectorAll("dt")].map((d) => d.textContent);
    expect(terms).toEqual(["Version", "Policy", "Policy version", "Policy source", "Server", "Device", "Launch events"]);
    expect(document.body.textContent).toContain(about.policyName);
  });
});
