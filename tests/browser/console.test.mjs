// The governance console's fleet views in a real browser: `warden-seed` writes 100,000 launch
// events over 89 days from 500 devices (with inventories and exception requests) into a SQLite
// file, a real `warden-server` serves it, and Debian's Chromium checks each page's numbers and
// each export against the counts the seed knows. Screenshots go to artifacts/console-*.png.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { launchChromium, startServer, stopServer } from "./harness.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const artifacts = join(root, "artifacts");
const ADMIN_TOKEN = "wadm_console-test-token-0123456789abcdef";
const DEVICES = 500, EVENTS = 100_000;

let server, base, dataDir, browser, page, truth;
const pageErrors = [];

async function api(path) {
  const response = await fetch(base + path, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  assert.equal(response.status, 200, `${path}: ${response.status}`);
  return response.headers.get("content-type").startsWith("application/json") ? response.json() : response.text();
}

// Clicks an export button and returns the downloaded file's text.
async function exported(name) {
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name }).click()]);
  return readFileSync(await download.path(), "utf8");
}

function csvRows(text) {
  const [header, ...lines] = text.trim().split("\n");
  const names = header.split(",");
  return lines.map((line) => Object.fromEntries(line.split(",").map((value, i) => [names[i], value])));
}

async function shot(locator, name) {
  const path = join(artifacts, `console-${name}.png`);
  await locator.screenshot({ path });
  console.log(`screenshot: ${path}`);
}

const stat = (name) => page.locator(`#overview-cards li[data-stat="${name}"] strong`);

before(async () => {
  assert.ok(process.env.WARDEN_SERVER_BIN && process.env.WARDEN_SEED_BIN,
    "WARDEN_SERVER_BIN and WARDEN_SEED_BIN must name the built binaries (cargo xtask test sets them)");
  mkdirSync(artifacts, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), "warden-console-"));
  const database = `sqlite://${join(dataDir, "warden.db")}?mode=rwc`;
  truth = JSON.parse(execFileSync(process.env.WARDEN_SEED_BIN,
    ["--database", database, "--devices", String(DEVICES), "--events", String(EVENTS), "--seed", "7"],
    { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], maxBuffer: 1 << 24 }));
  assert.equal(truth.events, EVENTS);
  // A day-long sync interval: only the seed's long-silent devices count as silent.
  const started = await startServer(["--database", database, "--sync-interval-seconds", "43200", "--sweep-seconds", "1"],
    ADMIN_TOKEN, "console-test-enroll-secret");
  server = started.child;
  base = started.url;
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  page.on("pageerror", (error) => pageErrors.push(String(error)));
  page.on("console", (message) => { if (message.type() === "error") pageErrors.push(message.text()); });
  await page.goto(`${base}/admin#overview`);
  await page.getByLabel("Admin token").fill(ADMIN_TOKEN);
  await page.getByLabel("Your name or e-mail").fill("auditor@corp.example");
  await page.getByRole("button", { name: "Log in" }).click();
  await stat("devices").waitFor();
});

after(async () => {
  await browser?.close();
  await stopServer(server);
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

test("the chart library served is the npm package's own file", async () => {
  const served = await fetch(`${base}/admin/vendor/uPlot.iife.min.js`).then((r) => r.text());
  assert.equal(served, readFileSync(join(here, "node_modules", "uplot", "dist", "uPlot.iife.min.js"), "utf8"));
});

test("the overview's numbers and charts match the seed, filters narrow them, the export matches", async () => {
  // Every silent device raised one alert on the server's sweep (every second here).
  for (let tries = 0; ; tries += 1) {
    const alerts = await api("/api/v1/admin/alerts?rule=silent-device&limit=1000");
    if (alerts.alerts.length === truth.silent_devices) break;
    assert.ok(tries < 100, `expected ${truth.silent_devices} silent-device alerts, have ${alerts.alerts.length}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await page.locator("#overview-days").selectOption("90");
  await page.waitForFunction((n) => document.querySelector('#overview-cards li[data-stat="blocked"] strong')?.textContent === String(n),
    truth.verdicts_90d.blocked);
  for (const [verdict, count] of Object.entries(truth.verdicts_90d)) {
    assert.equal(await stat(verdict).textContent(), String(count), `launches ${verdict} over 90 days`);
  }
  assert.equal(await stat("devices").textContent(), String(DEVICES - truth.revoked_devices));
  assert.equal(await stat("silent").textContent(), String(truth.silent_devices));
  assert.equal(await stat("pending").textContent(), String(truth.pending_requests));
  assert.equal(await page.locator("#alert-badge").textContent(), String(truth.silent_devices), "the alert badge");
  assert.equal(await page.locator("#launches-chart canvas").count(), 1, "the launches chart is drawn");
  assert.equal(await page.locator("#adoption-chart canvas").count(), 1, "the adoption chart is drawn");
  await shot(page.locator("#overview"), "overview");

  const csv = csvRows(await exported("Export launches per day as CSV"));
  const sums = {};
  for (const row of csv) sums[row.verdict] = (sums[row.verdict] || 0) + Number(row.count);
  assert.deepEqual(sums, truth.verdicts_90d, "the CSV export adds up to the seed's counts");
  const json = JSON.parse(await exported("Export launches per day as JSON"));
  assert.deepEqual(json.launches.length, csv.length, "the JSON and CSV exports hold the same rows");

  await page.locator("#overview-tool").selectOption("claude-code");
  await page.waitForFunction((n) => Number(document.querySelector('#overview-cards li[data-stat="blocked"] strong')?.textContent) < n,
    truth.verdicts_90d.blocked);
  const narrowed = await api("/api/v1/admin/overview?days=90&tool=claude-code");
  const blocked = narrowed.totals.find((t) => t.verdict === "blocked").count;
  assert.equal(await stat("blocked").textContent(), String(blocked));
  assert.equal(await stat("sanctioned").textContent(), "0", "the sanctioned assistant is not Claude Code");
  await page.locator("#overview-tool").selectOption("");
});

test("the tools page answers where each tool is installed and used, and whether Claude Code is gone", async () => {
  await page.getByRole("link", { name: "Tools" }).click();
  for (const [tool, expected] of Object.entries(truth.tools)) {
    const row = page.locator(`#tool-rows tr[data-tool="${tool}"]`);
    await row.waitFor();
    const field = (name) => row.locator(`td[data-field="${name}"]`).textContent();
    assert.equal(await field("installed"), String(expected.installed_devices), `${tool} installed`);
    assert.equal(await field("used-7d"), String(expected.used_7d), `${tool} used 7 d`);
    assert.equal(await field("used-30d"), String(expected.used_30d), `${tool} used 30 d`);
    assert.equal(await field("used-90d"), String(expected.used_90d), `${tool} used 90 d`);
    assert.equal(await field("blocked-30d"), String(expected.blocked_30d), `${tool} blocked 30 d`);
  }
  await page.locator("#tools-search").fill("claude");
  assert.equal(await page.locator("#tool-rows tr").count(), 1, "the search narrows the tools");
  await page.getByRole("button", { name: "claude-code", exact: true }).click();
  const claude = truth.tools["claude-code"];
  const summary = page.locator("#footprint-summary");
  await summary.filter({ hasText: `installed on ${claude.installed_devices} device(s) now, removed from ${claude.removed_devices}` }).waitFor();
  const devices = csvRows(await exported("Export devices with this tool as CSV"));
  assert.equal(devices.filter((d) => d.status === "installed").length, claude.installed_devices);
  assert.equal(devices.filter((d) => d.status === "removed").length, claude.removed_devices);
  await page.locator("#footprint-status").selectOption("removed");
  assert.equal(await page.locator("#footprint-rows tr").count(), claude.removed_devices, "the status filter narrows the list");
  await shot(page.locator("#tools"), "tools");
  await page.locator("#footprint-status").selectOption("");
});

test("the exception report counts requests by state and approver, and its filters narrow it", async () => {
  await page.getByRole("link", { name: "Requests" }).click();
  const total = page.locator("#report-summary");
  await page.waitForFunction((n) => document.querySelector("#report-summary")?.dataset.total === String(n), truth.exceptions);
  const tally = async (name) => Object.fromEntries(await page.locator(`table[data-tally="${name}"] tr`).evaluateAll((rows) =>
    rows.map((r) => [r.cells[0].textContent, Number(r.cells[1]?.textContent)])));
  assert.deepEqual(await tally("by_state"), truth.exceptions_by_state);
  assert.deepEqual(await tally("by_approver"), truth.exceptions_by_approver);
  const [scope, count] = truth.top_scope;
  assert.equal((await tally("top_scopes"))[scope], count);
  await page.locator("#report-state").selectOption("pending");
  await page.waitForFunction((n) => document.querySelector("#report-summary")?.dataset.total === String(n), truth.pending_requests);
  const report = JSON.parse(await exported("Export exception report as JSON"));
  assert.equal(report.total, truth.pending_requests, "the export is the filtered report");
  assert.deepEqual(report, await api("/api/v1/admin/exceptions/report?state=pending"), "the export matches the API");
  await page.locator("#history-search").fill("ana@corp.example");
  const visible = await page.locator("#history-rows tr").evaluateAll((rows) =>
    rows.filter((r) => !r.hidden).map((r) => r.textContent));
  assert.ok(visible.length > 0 && visible.every((text) => text.includes("ana@corp.example")), "the history search narrows it");
  await page.locator("#history-search").fill("");
  await shot(page.locator("#report"), "exception-report");
  await page.locator("#report-state").selectOption("");
  assert.ok(await total.isVisible());
});

test("events page through a million-event-ready cursor, filtered by outcome", async () => {
  await page.getByRole("link", { name: "Events" }).click();
  await page.locator("#event-verdict").selectOption("blocked");
  await page.waitForFunction(() => [...document.querySelectorAll("#event-rows tr")].length === 50 &&
    [...document.querySelectorAll("#event-rows tr")].every((r) => r.dataset.kind === "launch" && r.textContent.includes("killed")));
  const first = await page.locator("#event-rows tr").first().textContent();
  await page.getByRole("button", { name: "Older", exact: true }).click();
  await page.locator("#events-page").filter({ hasText: "page 2" }).waitFor();
  assert.notEqual(await page.locator("#event-rows tr").first().textContent(), first, "page 2 holds other events");
  const csv = csvRows(await exported("Export events as CSV"));
  assert.equal(csv.length, 1000);
  assert.ok(csv.every((row) => row.verdict === "blocked"), "the export keeps the filter");
  await shot(page.locator("#events"), "events");
});

test("devices are searched and one opens with its tools, requests and events", async () => {
  await page.getByRole("link", { name: "Devices" }).click();
  await page.locator("#devices-search").fill("host-00042");
  await page.waitForFunction(() => [...document.querySelectorAll("#device-rows tr")].filter((r) => !r.hidden).length === 1);
  await page.getByRole("button", { name: "host-00042", exact: true }).click();
  await page.locator("#device-detail-title").filter({ hasText: "host-00042" }).waitFor();
  assert.ok(await page.locator("#device-events li").count() > 0, "recent events listed");
  await shot(page.locator("#device-detail"), "device");
  assert.deepEqual(pageErrors.filter((e) => !e.includes("favicon") && !e.includes("404")), [], "no script error on the page");
});
