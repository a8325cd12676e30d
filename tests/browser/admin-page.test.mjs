// The governance server's admin page in a real browser: Debian's Chromium driven by
// playwright-core, against a real `warden-server` binary on a free loopback port.
// A device files a request through the API; an approver approves it on the page; the API
// then shows the device an approved exception with the approver's comment and duration.
// Devices' service starts and stops are listed by kind, and a device that stopped syncing is silent.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { launchChromium, startServer, stopServer } from "./harness.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const ADMIN_TOKEN = "wadm_browser-test-token-0123456789abcdef";
const ENROLL_SECRET = "browser-test-secret";
let server, base, dataDir, browser;

function startWardenServer() {
  dataDir = mkdtempSync(join(tmpdir(), "warden-browser-"));
  // Devices are expected to sync every second here, so one goes silent within the test.
  return startServer(["--data-dir", dataDir, "--sweep-seconds", "1", "--sync-interval-seconds", "1"], ADMIN_TOKEN, ENROLL_SECRET);
}

async function call(method, path, token, body) {
  const response = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: response.status, body: await response.json().catch(() => null) };
}

before(async () => {
  const started = await startWardenServer();
  server = started.child;
  base = started.url;
  assert.match(started.banner, new RegExp(`Admin page: +${base}/admin`));
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await stopServer(server);
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

test("an approver approves a pending request on the page and the device sees it", async () => {
  // A device enrolls and files a request through the API.
  const enrolled = await fetch(`${base}/api/v1/enroll`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ secret: ENROLL_SECRET, hostname: "dev-laptop", user: "dev", platform: "linux" }),
  }).then((r) => r.json());
  const device = enrolled.device_token;
  const justification = "Pairing with the vendor on the SDK migration this week";
  const filed = await call("POST", "/api/v1/device/exceptions", device,
    { tool: "claude-code", justification, scope: "/home/dev/src/app", duration_seconds: 4 * 3600 });
  assert.equal(filed.status, 201);

  const page = await browser.newPage();
  await page.goto(`${base}/admin#requests`);
  await page.getByLabel("Admin token").fill(ADMIN_TOKEN);
  await page.getByLabel("Your name or e-mail").fill("alice@example.com");
  await page.getByRole("button", { name: "Log in" }).click();

  const request = page.getByRole("article", { name: "Request by dev for claude-code" });
  await request.waitFor();
  assert.match(await request.textContent(), /Pairing with the vendor/);
  assert.match(await request.textContent(), /\/home\/dev\/src\/app/);
  await request.getByLabel("Comment to the developer").fill("OK for the migration");
  await request.getByLabel("Grant (hours)").fill("2");
  await request.getByLabel("Only through the company gateway (secrets masked)").check();
  await request.getByLabel("Only these MCP servers (comma-separated names; empty: as the policy says)").fill("docs, jira");
  await request.getByRole("button", { name: "Approve" }).click();
  await page.getByRole("status").filter({ hasText: "Approved" }).waitFor();
  // The list re-renders after the status line: wait for the request to leave it.
  await request.waitFor({ state: "detached" });
  assert.equal(await page.getByRole("article").count(), 0, "nothing pending any more");
  mkdirSync(join(root, "artifacts"), { recursive: true });
  await page.screenshot({ path: join(root, "artifacts", "admin-page.png"), fullPage: true });

  // The device sees the approval, with the approver's comment and the shortened duration.
  const mine = await call("GET", "/api/v1/device/exceptions", device);
  assert.equal(mine.status, 200);
  const [record] = mine.body.requests;
  assert.equal(record.state, "approved");
  assert.equal(record.decided_by, "alice@example.com");
  assert.equal(record.comment, "OK for the migration");
  assert.equal(record.granted_seconds, 2 * 3600);
  // What the device enforces is the signed list (verified by the device; here its body is read).
  assert.equal(typeof mine.body.signed.signature, "string");
  const signed = JSON.parse(mine.body.signed.body);
  assert.equal(signed.exceptions.length, 1);
  assert.equal(signed.exceptions[0].tool, "claude-code");
  // With the conditions the approver ticked, signed with it and shown in the history.
  assert.deepEqual(signed.exceptions[0].guardrails, { through_gateway: true, mcp_servers: ["docs", "jira"] });
  const decided = page.locator("#history-rows tr").filter({ hasText: "dev-laptop" });
  await decided.filter({ hasText: "only through the company gateway; MCP servers: docs, jira" }).waitFor();
  await page.close();
});

test("the page shows where each AI tool is installed and which MCP servers the policy denies", async () => {
  const token = await enrollDevice("inv-laptop");
  const report = {
    scanned_at_ms: Date.now(),
    tools: [{ tool: "claude-code", user: "dev", kind: "install-folder", path: "/home/dev/.local/share/claude",
      version: "2.1.332" }],
    mcp_servers: [{ client: "claude-code", user: "dev", scope: "user", name: "shell", transport: "stdio",
      command: ["npx", "-y", "@evil/mcp-shell"], file: "/home/dev/.claude.json", sha256: "ab12",
      denied: "MCP server \"shell\" is denied by policy (npx -y @evil/mcp-shell)" }],
  };
  const sent = await call("PUT", "/api/v1/device/inventory", token, report);
  assert.equal(sent.status, 200);
  assert.equal(sent.body.changed, true);

  const page = await browser.newPage();
  await page.goto(`${base}/admin#devices`);
  await page.getByLabel("Admin token").fill(ADMIN_TOKEN);
  await page.getByLabel("Your name or e-mail").fill("alice@example.com");
  await page.getByRole("button", { name: "Log in" }).click();
  const tool = page.locator("#inventory-rows tr").filter({ hasText: "inv-laptop" });
  await tool.waitFor();
  assert.match(await tool.textContent(), /claude-code.*2\.1\.332.*install-folder: \/home\/dev\/\.local\/share\/claude/);
  const server = page.locator("#mcp-rows tr").filter({ hasText: "inv-laptop" });
  assert.match(await server.textContent(), /shell.*npx -y @evil\/mcp-shell.*DENIED: MCP server "shell" is denied/);
  mkdirSync(join(root, "artifacts"), { recursive: true });
  await page.locator("#inventory").screenshot({ path: join(root, "artifacts", "admin-page-inventory.png") });
  await page.close();
});

test("a broken policy upload shows its line and column and keeps the active policy", async () => {
  const page = await browser.newPage();
  await page.goto(`${base}/admin#policy`);
  // Same tab session storage does not carry to a new page: log in again.
  await page.getByLabel("Admin token").fill(ADMIN_TOKEN);
  await page.getByLabel("Your name or e-mail").fill("alice@example.com");
  await page.getByRole("button", { name: "Log in" }).click();
  // The summary fills in once the page has loaded the active policy.
  const summary = page.locator("#policy-summary");
  await summary.filter({ hasText: /Version \d/ }).waitFor();
  const shown = await summary.textContent();
  assert.match(shown, /Version 1/);
  const broken = readFileSync(join(root, "tests", "data", "server", "broken-policy.toml"), "utf8");
  await page.getByLabel("New policy (TOML)").fill(broken);
  await page.getByRole("button", { name: "Upload and activate" }).click();
  const alert = page.getByRole("alert");
  await alert.filter({ hasText: "line 5" }).waitFor();
  assert.match(await alert.textContent(), /claud-code/);
  assert.equal(await summary.textContent(), shown, "the active policy is unchanged");
  const active = await call("GET", "/api/v1/admin/policies/active", ADMIN_TOKEN);
  assert.equal(active.body.version, 1);
  await page.close();
});

async function enrollDevice(hostname, user = "dev") {
  const enrolled = await fetch(`${base}/api/v1/enroll`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ secret: ENROLL_SECRET, hostname, user, platform: "linux" }),
  }).then((r) => r.json());
  return enrolled.device_token;
}

test("the page shows each device's service state, silent devices and events of every kind", async () => {
  const quiet = await enrollDevice("quiet-laptop");
  const busy = await enrollDevice("svc-laptop");
  const now = Date.now();
  const events = [
    { kind: "service-start", id: "b0000000-0000-4000-8000-000000000001", at_ms: now - 5000, mode: "service",
      version: "0.2.0", pid: 640 },
    { kind: "service-stop", id: "b0000000-0000-4000-8000-000000000002", at_ms: now - 4000, mode: "service",
      version: "0.2.0", pid: 640, reason: "signal SIGTERM" },
    { kind: "service-start", id: "b0000000-0000-4000-8000-000000000003", at_ms: now - 3000, mode: "service",
      version: "0.2.0", pid: 702, unclean_end: { start_id: "b0000000-0000-4000-8000-000000000000",
        started_at_ms: now - 9000, pid: 512, version: "0.2.0", last_event_at_ms: now - 8000 } },
    { kind: "service-stop", id: "b0000000-0000-4000-8000-000000000004", at_ms: now - 2000, mode: "service",
      version: "0.2.0", pid: 702, reason: "signal SIGTERM" },
  ];
  for (const token of [quiet, busy]) {
    const sent = await call("POST", "/api/v1/device/events", token,
      { events: token === busy ? events : [], heartbeat: { at_ms: now, version: "0.2.0" } });
    assert.equal(sent.status, 200);
  }
  // The quiet device is not heard from for more than two intervals; the other keeps syncing.
  for (let i = 0; i < 8; i++) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    await call("POST", "/api/v1/device/events", busy, { events: [] });
  }

  const page = await browser.newPage();
  await page.goto(`${base}/admin#devices`);
  await page.getByLabel("Admin token").fill(ADMIN_TOKEN);
  await page.getByLabel("Your name or e-mail").fill("alice@example.com");
  await page.getByRole("button", { name: "Log in" }).click();
  await page.locator("#devices-note").filter({ hasText: "every 1 s" }).waitFor();
  const row = (host) => page.locator("#device-rows tr").filter({ hasText: host });
  await row("svc-laptop").waitFor();
  assert.match(await row("svc-laptop").textContent(), /stopped .*signal SIGTERM/);
  assert.match(await row("svc-laptop").textContent(), /active/);
  assert.match(await row("quiet-laptop").textContent(), /silent/);

  const kinds = async () => page.locator("#event-rows tr").evaluateAll((rows) => rows.map((r) => r.dataset.kind));
  // The events table fills after the device table (its own request).
  await page.waitForFunction(() => document.querySelectorAll('#event-rows tr[data-kind^="service-"]').length >= 4);
  const shown = await kinds();
  assert.equal(shown.filter((k) => k === "service-start").length, 2, `${shown}`);
  assert.equal(shown.filter((k) => k === "service-stop").length, 2, `${shown}`);
  const unclean = page.locator("#event-rows tr").filter({ hasText: "after an unclean end" });
  assert.equal(await unclean.count(), 1);
  assert.match(await unclean.textContent(), /pid 512/);
  mkdirSync(join(root, "artifacts"), { recursive: true });
  await page.locator("#devices").screenshot({ path: join(root, "artifacts", "admin-page-devices.png") });
  await page.getByRole("link", { name: "Events" }).click();
  await page.getByLabel("Kind").selectOption("service-stop");
  await page.waitForFunction(() =>
    [...document.querySelectorAll("#event-rows tr")].every((r) => r.dataset.kind === "service-stop"));
  assert.deepEqual(await kinds(), ["service-stop", "service-stop"]);
  await page.close();
});

// `warden-server user add` on the running server's database, as an operator would.
function addAccount(name, role) {
  const password = join(dataDir, `${name}-password`);
  writeFileSync(password, "correct horse battery staple\n", { mode: 0o600 });
  execFileSync(process.env.WARDEN_SERVER_BIN,
    ["--data-dir", dataDir, "user", "add", name, "--role", role, "--password-file", password],
    { env: Object.fromEntries(Object.entries(process.env).filter(([name]) => name !== "WARDEN_DATABASE_URL")),
      stdio: ["ignore", "pipe", "inherit"] });
}

async function signIn(page, name) {
  await page.getByLabel("Account name").fill(name);
  await page.getByLabel("Password").fill("correct horse battery staple");
  await page.getByRole("button", { name: "Sign in" }).click();
}

test("an approver signs in with an account and decides as that account; the token no longer decides", async () => {
  addAccount("ana@corp.example", "approver");
  addAccount("erin", "developer");
  // Accounts exist: the shared enroll secret no longer enrolls anyone.
  const bySecret = await call("POST", "/api/v1/enroll", null,
    { secret: ENROLL_SECRET, hostname: "erin-laptop", user: "erin", platform: "linux", agent_version: "0.1.0" });
  assert.equal(bySecret.body.code, "enrollment_code_required");
  // Erin signs in and makes a code for her own device: the page offers her nothing else.
  const erinContext = await browser.newContext();
  const erinPage = await erinContext.newPage();
  await erinPage.goto(`${base}/admin`);
  await signIn(erinPage, "erin");
  await erinPage.getByRole("button", { name: "Make enrollment code" }).click();
  await erinPage.getByLabel("Enrollment command").waitFor();
  const command = await erinPage.getByLabel("Enrollment command").inputValue();
  assert.match(command, /^sudo warden enroll --code 'WARDEN-ENROLL-1\.[A-Za-z0-9_-]+'$/);
  assert.equal(await erinPage.getByRole("heading", { name: "Overview" }).isVisible(), false);
  assert.equal(await erinPage.getByLabel("For (account or e-mail; empty: you)").isVisible(), false);
  mkdirSync(join(root, "artifacts"), { recursive: true });
  await erinPage.screenshot({ path: join(root, "artifacts", "console-enroll-code.png") });
  await erinContext.close();
  const code = JSON.parse(Buffer.from(command.split("'")[1].slice("WARDEN-ENROLL-1.".length), "base64url"));
  assert.equal(code.user, "erin");
  assert.equal(code.server, base);
  const enrolled = await call("POST", "/api/v1/enroll", null,
    { code: code.code, hostname: "erin-laptop", platform: "linux", agent_version: "0.1.0" });
  assert.equal(enrolled.status, 201);
  assert.equal(enrolled.body.user, "erin");
  const device = enrolled.body.device_token;
  const filed = await call("POST", "/api/v1/device/exceptions", device,
    { tool: "claude-code", justification: "Reproducing a customer bug with the vendor SDK", duration_seconds: 3600 });
  assert.equal(filed.status, 201);
  const byToken = await call("POST", `/api/v1/admin/exceptions/${filed.body.id}/approve`, ADMIN_TOKEN, { approver: "ana@corp.example" });
  assert.equal(byToken.status, 403);
  assert.equal(byToken.body.code, "sign_in_required");

  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/admin#requests`);
  await signIn(page, "ana@corp.example");
  const request = page.getByRole("article", { name: "Request by erin for claude-code" });
  await request.waitFor();
  // A reload keeps the session; so does a new tab of the same browser (the cookie), which asks the
  // server for its CSRF token.
  await page.reload();
  await request.waitFor();
  const other = await context.newPage();
  await other.goto(`${base}/admin#requests`);
  await other.getByRole("article", { name: "Request by erin for claude-code" }).waitFor();
  await other.close();
  await request.getByLabel("Comment to the developer").fill("Fine for the repro");
  await request.getByRole("button", { name: "Approve" }).click();
  await page.getByRole("status").filter({ hasText: "Approved" }).waitFor();
  const mine = await call("GET", "/api/v1/device/exceptions", device);
  assert.equal(mine.body.requests[0].decided_by, "ana@corp.example");
  const cookies = await context.cookies();
  const cookie = cookies.find((c) => c.name === "warden_session");
  assert.ok(cookie && cookie.httpOnly && cookie.sameSite === "Strict", JSON.stringify(cookies));
  await page.getByRole("button", { name: "Log out" }).click();
  await page.getByRole("button", { name: "Sign in" }).waitFor();
  const after = await page.evaluate(() => fetch("/api/v1/admin/overview").then((r) => r.status));
  assert.equal(after, 401, "the session ended with the log-out");
  await context.close();
});

test("a signed-in approver makes an auditor API token on the page; it reads, never decides, and dies when revoked", async () => {
  addAccount("ivy@corp.example", "approver");
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/admin#policy`);
  await signIn(page, "ivy@corp.example");
  await page.getByLabel("Name", { exact: true }).fill("siem-export");
  // An approver's token is an auditor at most: asking for admin is refused.
  await page.getByLabel("Role").selectOption("admin");
  await page.getByRole("button", { name: "Make API token" }).click();
  await page.getByRole("status").filter({ hasText: "No token" }).waitFor();
  await page.getByLabel("Role").selectOption("auditor");
  await page.getByRole("button", { name: "Make API token" }).click();
  await page.getByRole("status").filter({ hasText: "API token siem-export made (auditor)" }).waitFor();
  const token = await page.getByLabel("API token", { exact: true }).inputValue();
  assert.match(token, /^wapi_[0-9a-f]{64}$/);
  const row = page.locator("#token-rows tr", { hasText: "siem-export" });
  assert.equal(await row.locator("td").nth(5).textContent(), "active");

  const read = await call("GET", "/api/v1/admin/overview", token);
  assert.equal(read.status, 200);
  const pending = await call("GET", "/api/v1/admin/exceptions", token);
  assert.equal(pending.status, 200);
  const decided = await call("POST", "/api/v1/admin/exceptions/any/approve", token, {});
  assert.deepEqual([decided.status, decided.body.code], [403, "role_forbids"]);
  const audit = await call("GET", "/api/v1/admin/admin-audit", token);
  assert.ok(audit.body.some((e) => e.action === "api-token-created" && e.actor === "ivy@corp.example"));

  await page.reload();
  await row.locator("td").nth(4).filter({ hasNotText: "never" }).waitFor();
  await row.getByRole("button", { name: "Revoke" }).click();
  await page.getByRole("status").filter({ hasText: "API token siem-export revoked" }).waitFor();
  await row.locator("td").nth(5).filter({ hasText: "revoked" }).waitFor();
  const after = await call("GET", "/api/v1/admin/overview", token);
  assert.deepEqual([after.status, after.body.code], [401, "unknown_token"]);
  await context.close();
});
