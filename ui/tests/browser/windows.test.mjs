// Browser tests of the built windows (ui/dist) in Debian's Chromium, with the Tauri IPC
// mocked by @tauri-apps/api/mocks (tests/harness/harness.ts, built to dist-test/).
// Covers each window, each form error, empty states, live updates, keyboard use,
// 200 % zoom and the dark theme. Run: npm run build && npm run test:browser
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { extname, join, resolve } from "node:path";
import { chromium } from "playwright-core";

const ui = resolve(import.meta.dirname, "../..");
const dist = join(ui, "dist");
const harness = readFileSync(join(ui, "dist-test/harness.js"), "utf8");
const fixture = (name) => JSON.parse(readFileSync(join(ui, "tests/fixtures", `${name}.json`), "utf8"));
const types = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".png": "image/png" };

let server;
let base;
let browser;

before(async () => {
  server = createServer(async (request, response) => {
    const path = join(dist, decodeURIComponent(new URL(request.url, "http://x").pathname));
    try {
      const body = await readFile(path);
      response.writeHead(200, { "content-type": types[extname(path)] ?? "application/octet-stream" });
      response.end(body);
    } catch {
      response.writeHead(404).end();
    }
  });
  await new Promise((done) => server.listen(0, "127.0.0.1", done));
  base = `http://127.0.0.1:${server.address().port}`;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
});

after(async () => {
  await browser?.close();
  await new Promise((done) => server.close(done));
});

/** Opens a window's page with the given command answers ({ok} or {error}). */
async function open(view, answers, options = {}) {
  const context = await browser.newContext({ viewport: options.viewport ?? { width: 960, height: 700 }, colorScheme: options.colorScheme ?? "light" });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  await page.addInitScript((fixtures) => {
    window.__WARDEN_FIXTURES__ = fixtures;
  }, { window: view, answers });
  await page.addInitScript({ content: harness });
  await page.goto(`${base}/${view}.html`);
  await page.waitForSelector("main h1");
  page.calls = () => page.evaluate(() => window.__wardenCalls);
  page.done = async () => {
    assert.deepEqual(errors, [], "no uncaught errors in the page");
    await context.close();
  };
  return page;
}

const ok = (value) => ({ ok: value });
const failure = (code, message, problems) => ({ error: problems ? { code, message, problems } : { code, message } });

describe("catalog window", () => {
  test("shows the assistant first, every tool with status, and its buttons call the right commands", async () => {
    const view = fixture("catalog_view");
    const page = await open("catalog", { catalog_view: ok(view), open_assistant: ok(null), open_view: ok(null) });
    assert.equal(await page.locator("li.tool").count(), view.tools.length);
    assert.equal(await page.locator("li.tool").first().getAttribute("data-tool"), "qwen-code");
    const claude = page.locator('[data-tool="claude-code"]');
    assert.equal(await claude.locator(".badge").textContent(), "Blocked");
    assert.match(await claude.textContent(), /Installed on this computer/);
    assert.match(await claude.textContent(), /Use instead: Internal Assistant/);
    await page.getByRole("button", { name: "Open Internal Assistant" }).click();
    await claude.getByRole("button", { name: "Request an exception for Claude Code" }).click();
    const calls = (await page.calls()).filter((c) => c.cmd !== "catalog_view");
    assert.deepEqual(calls, [
      { cmd: "open_assistant", args: { cwd: null } },
      { cmd: "open_view", args: { view: "exceptions", context: { tool: "claude-code" } } },
    ]);
    await page.done();
  });

  test("says when opening the assistant failed, with the error's code", async () => {
    const page = await open("catalog", { catalog_view: ok(fixture("catalog_view")), open_assistant: failure("open-failed", "cannot start qwen: not found") });
    await page.getByRole("button", { name: "Open Internal Assistant" }).click();
    assert.match(await page.getByRole("alert").textContent(), /cannot start qwen: not found \(open-failed\)/);
    await page.done();
  });

  test("has empty-state texts", async () => {
    const page = await open("catalog", { catalog_view: ok({ policyName: "Empty", assistant: null, tools: [] }) });
    assert.match(await page.locator("main").textContent(), /The catalog lists no AI tools\./);
    assert.match(await page.locator("main").textContent(), /This policy names no sanctioned assistant\./);
    await page.done();
  });
});

describe("activity window", () => {
  test("lists events, filters by tool and action, and focuses the event a pop-up's Details asked for", async () => {
    const rows = fixture("recent_activity");
    const page = await open("activity", { recent_activity: ok(rows), window_context: ok({ event: "ev-cursor-1" }), open_view: ok(null) });
    assert.equal(await page.locator("li.event").count(), rows.length);
    assert.equal(await page.evaluate(() => document.activeElement?.id), "event-ev-cursor-1");
    assert.match(await page.locator("li.event.focused").textContent(), /Cursor/);
    await page.getByLabel("Tool").selectOption("claude-code");
    assert.equal(await page.locator("li.event").count(), 2);
    await page.getByLabel("Action").selectOption("warn");
    assert.equal(await page.locator("li.event").count(), 0);
    assert.match(await page.locator("main").textContent(), /No events match these filters\./);
    await page.getByLabel("Tool").selectOption("");
    assert.equal(await page.locator("li.event").count(), 1);
    await page.getByLabel("Action").selectOption("block");
    await page.locator('[data-event="ev-claude-1"]').getByRole("button", { name: "Request exception" }).click();
    const call = (await page.calls()).find((c) => c.cmd === "open_view");
    assert.deepEqual(call.args, { view: "exceptions", context: { tool: "claude-code", event: "ev-claude-1" } });
    await page.done();
  });

  test("updates live when a launch event arrives, and has an empty state", async () => {
    const rows = fixture("recent_activity");
    const page = await open("activity", { recent_activity: ok([]), window_context: ok({}) });
    assert.match(await page.locator("main").textContent(), /No AI tool launches seen yet\./);
    assert.equal(await page.locator("p.masking").count(), 0, "no masking line without a gateway request");
    // A request through the masking gateway: the line appears with the next refresh.
    await page.evaluate((line) => window.__wardenSetAnswer("masking_line", { ok: line }), fixture("masking_line"));
    await page.evaluate((rows) => window.__wardenSetAnswer("recent_activity", { ok: rows }), rows);
    await page.evaluate(() => window.__wardenEmit("warden://activity", "ev-claude-1"));
    await page.waitForSelector("li.event");
    assert.equal(await page.locator("li.event").count(), rows.length);
    assert.match(
      await page.getByRole("note").textContent(),
      /Masking gateway: 3 secrets masked in a request to Internal Assistant · .+ \(last 24 h: 5 secrets masked in 7 requests\)/,
    );
    await page.done();
  });
});

describe("exception window", () => {
  const answers = (extra = {}) => ({
    exception_form: ok(fixture("exception_form")),
    exception_requests: ok(fixture("exception_requests")),
    window_context: ok({ tool: "claude-code", repository: "/home/dev/src/payments" }),
    ...extra,
  });
  const errorOf = (page, field) => page.locator(`#${field}-error`);

  test("is pre-filled from the pop-up (tool, repository) and lists my requests with their status", async () => {
    const page = await open("exceptions", answers());
    assert.equal(await page.getByLabel("Tool").inputValue(), "claude-code");
    assert.equal(await page.getByLabel("Repository folder").inputValue(), "/home/dev/src/payments");
    const statuses = await page.locator("#my-requests .badge").allTextContents();
    assert.equal(statuses.length, 7);
    assert.match(statuses[0], /^Waiting to be sent/);
    assert.match(statuses.join("|"), /Pending: waiting for an approver/);
    assert.match(statuses.join("|"), /Approved until/);
    assert.match(statuses.join("|"), /Denied by lead@example\.com: “Please use the Internal Assistant for this repository\.”/);
    assert.match(statuses.join("|"), /Expired/);
    assert.match(statuses.join("|"), /Withdrawn/);
    assert.match(statuses.join("|"), /Revoked: “Security incident/);
    await page.done();
  });

  const formErrors = [
    ["no tool chosen", async (p) => p.getByLabel("Tool").selectOption(""), "tool", /Choose the tool you need\./],
    ["justification too short", async (p) => p.getByLabel("Why do you need it?").fill("need it"), "justification", /at least 20 characters \(7 so far\)/],
    ["repository missing", async (p) => p.getByLabel("Repository folder").fill(""), "repository", /repository's folder, or choose everywhere/],
    ["repository not a full path", async (p) => p.getByLabel("Repository folder").fill("src/payments"), "repository", /full path/],
    ["duration under an hour", async (p) => { await p.getByLabel("For how long").fill("0.5"); await p.getByLabel("Duration unit").selectOption("hours"); }, "duration", /at least an hour/],
    ["duration over the policy's limit", async (p) => p.getByLabel("For how long").fill("31"), "duration", /at most 30 days/],
    ["duration not a number", async (p) => p.getByLabel("For how long").fill(""), "duration", /at least an hour/],
  ];
  for (const [name, spoil, field, message] of formErrors) {
    test(`form error: ${name}`, async () => {
      const page = await open("exceptions", answers({ submit_exception: failure("unexpected", "must not be called") }));
      await page.getByLabel("Why do you need it?").fill("Reproducing a customer bug that needs this tool");
      await spoil(page);
      await page.getByRole("button", { name: "Send request" }).click();
      assert.match(await errorOf(page, field).textContent(), message);
      assert.equal(await page.locator(`#${field}`).getAttribute("aria-invalid"), "true");
      assert.equal(await page.locator("[aria-invalid=true]").count(), 1, "only the spoiled field is marked");
      assert.equal(await page.evaluate(() => document.activeElement?.id), field, "focus moves to the first problem");
      assert.equal((await page.calls()).filter((c) => c.cmd === "submit_exception").length, 0, "nothing is sent");
      await page.done();
    });
  }

  test("form error from the app (invalid-request) lands on its field; inline errors clear as you fix them", async () => {
    const problems = [{ field: "duration", message: "The policy allows at most 7 days." }];
    const page = await open("exceptions", answers({ submit_exception: failure("invalid-request", "the request has 1 problem(s)", problems) }));
    await page.getByLabel("Why do you need it?").fill("Reproducing a customer bug that needs this tool");
    await page.getByRole("button", { name: "Send request" }).click();
    await page.waitForSelector("#duration-error:not([hidden])");
    assert.equal(await errorOf(page, "duration").textContent(), "The policy allows at most 7 days.");
    await page.getByLabel("Why do you need it?").fill("short");
    await page.getByRole("button", { name: "Send request" }).click();
    assert.match(await errorOf(page, "justification").textContent(), /at least 20/);
    await page.getByLabel("Why do you need it?").fill("Reproducing a customer bug that needs this tool");
    assert.equal(await errorOf(page, "justification").isHidden(), true, "fixed field's error goes away while typing");
    await page.done();
  });

  test("form error: storage failure keeps what was typed and says so", async () => {
    const page = await open("exceptions", answers({ submit_exception: failure("storage-failed", "cannot write exception-requests.json: disk full") }));
    await page.getByLabel("Why do you need it?").fill("Reproducing a customer bug that needs this tool");
    await page.getByRole("button", { name: "Send request" }).click();
    assert.match(await page.getByRole("alert").textContent(), /disk full \(storage-failed\)\. Nothing you typed was lost\./);
    assert.equal(await page.getByLabel("Why do you need it?").inputValue(), "Reproducing a customer bug that needs this tool");
    await page.done();
  });

  test("a valid request is sent as typed, confirmed, and the list follows live status changes", async () => {
    const saved = { ...fixture("exception_requests")[0], id: "req-9", justification: "Reproducing a customer bug that needs this tool" };
    const page = await open("exceptions", answers({ submit_exception: ok(saved), exception_requests: ok([]) }));
    assert.match(await page.locator("#my-requests").textContent(), /You have not requested any exceptions\./);
    await page.getByLabel("Why do you need it?").fill("Reproducing a customer bug that needs this tool");
    await page.getByLabel("For how long").fill("3");
    await page.evaluate((saved) => window.__wardenSetAnswer("exception_requests", { ok: [saved] }), saved);
    await page.getByRole("button", { name: "Send request" }).click();
    await page.waitForSelector('[data-request="req-9"]');
    assert.match(await page.locator("#form-status").textContent(), /saved\. Waiting to be sent/);
    const submit = (await page.calls()).find((c) => c.cmd === "submit_exception");
    assert.deepEqual(submit.args.draft, {
      tool: "claude-code",
      justification: "Reproducing a customer bug that needs this tool",
      scope: "repository",
      repository: "/home/dev/src/payments",
      durationSeconds: 3 * 86_400,
    });
    const approved = { ...saved, status: { state: "approved", untilMs: Date.UTC(2026, 11, 1, 9) } };
    await page.evaluate((approved) => window.__wardenSetAnswer("exception_requests", { ok: [approved] }), approved);
    await page.evaluate(() => window.__wardenEmit("warden://requests", "req-9"));
    await page.waitForFunction(() => document.querySelector('[data-request="req-9"] .badge')?.textContent?.startsWith("Approved until"));
    await page.done();
  });

  test("a decision the server pushes shows at once: denied, with the approver and comment", async () => {
    const page = await open("exceptions", answers());
    const pending = fixture("exception_requests")[1];
    assert.equal(pending.status.state, "pending");
    const denied = { ...pending, status: { state: "denied", comment: "Not for production data", by: "lead@example.com" } };
    await page.evaluate((list) => window.__wardenSetAnswer("exception_requests", { ok: list }), [denied]);
    await page.evaluate(() => window.__wardenEmit("warden://requests", null));
    await page.waitForFunction(
      (id) => document.querySelector(`[data-request="${id}"] .badge`)?.textContent?.startsWith("Denied by"),
      pending.id,
    );
    assert.equal(
      await page.locator(`[data-request="${pending.id}"] .badge`).textContent(),
      "Denied by lead@example.com: “Not for production data”",
    );
    assert.equal(await page.locator("#my-requests .badge").count(), 1);
    await page.done();
  });

  test("everywhere scope sends no repository; the form's empty state when nothing may be requested", async () => {
    const page = await open("exceptions", answers({ submit_exception: ok(fixture("exception_requests")[1]) }));
    await page.getByLabel("Everywhere on this computer").check();
    await page.getByLabel("Why do you need it?").fill("Reproducing a customer bug that needs this tool");
    await page.getByRole("button", { name: "Send request" }).click();
    await page.waitForSelector("#form-status:not([hidden])");
    const submit = (await page.calls()).find((c) => c.cmd === "submit_exception");
    assert.equal(submit.args.draft.scope, "everywhere");
    assert.equal(submit.args.draft.repository, null);
    await page.done();
    const none = await open("exceptions", answers({ exception_form: ok({ ...fixture("exception_form"), tools: [] }) }));
    assert.match(await none.locator("main").textContent(), /The policy allows no exceptions for any tool\./);
    await none.done();
  });
});

describe("about window", () => {
  test("shows version, policy, server and device; and an error when the app cannot answer", async () => {
    const about = fixture("about");
    const page = await open("about", { about: ok(about) });
    const terms = await page.locator("dt").allTextContents();
    assert.deepEqual(terms, ["Version", "Policy", "Policy version", "Policy source", "Server", "Device", "Launch events"]);
    assert.match(await page.locator("dl").textContent(), /dev-laptop/);
    await page.done();
    const broken = await open("about", { about: failure("unexpected", "no answer") });
    assert.match(await broken.getByRole("alert").textContent(), /no answer/);
    await broken.done();
  });
});

describe("accessibility and themes", () => {
  test("keyboard: skip link first, then the controls in order; Enter activates a button", async () => {
    const page = await open("catalog", { catalog_view: ok(fixture("catalog_view")), open_assistant: ok(null) });
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Skip to content");
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Open Internal Assistant");
    await page.keyboard.press("Enter");
    assert.ok((await page.calls()).some((c) => c.cmd === "open_assistant"));
    await page.done();
  });

  for (const view of ["catalog", "activity", "exceptions", "about"]) {
    test(`${view}: readable at 200 % zoom (no sideways scrolling) and in the dark theme`, async () => {
      const answers = {
        catalog_view: ok(fixture("catalog_view")),
        recent_activity: ok(fixture("recent_activity")),
        window_context: ok({}),
        exception_form: ok(fixture("exception_form")),
        exception_requests: ok(fixture("exception_requests")),
        about: ok(fixture("about")),
      };
      // A 960-pixel window at 200 % zoom lays out like a 480-pixel one.
      const page = await open(view, answers, { viewport: { width: 480, height: 700 }, colorScheme: "dark" });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(overflow <= 0, `${view} scrolls sideways by ${overflow}px at 200 %`);
      const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      assert.equal(background, "rgb(22, 23, 26)", "dark theme background");
      await page.done();
    });
  }
});
