// Benchmark (not a test): how long an approver waits in the console, in Debian's Chromium against
// the release `warden-server` on a seeded fleet (warden-seed: 500 devices, 100,000 events), on
// SQLite and on PostgreSQL in the same run. Two timings, each over ROUNDS fresh browser contexts:
//   sign-in  — from opening /admin#requests to the first pending request shown (the sign-in request,
//              then every list the console loads);
//   approval — from clicking Approve to the page saying "Approved" (the decision and the reload).
// Run by `cargo xtask bench-pages`, which builds the binaries and starts a throwaway PostgreSQL.

import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { launchChromium, startServer, stopServer } from "./harness.mjs";

const ROUNDS = Number(process.env.ROUNDS || 12);
const PASSWORD = "correct horse battery staple";

function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function measure(backend, database, scratch) {
  const env = { ...process.env };
  delete env.WARDEN_DATABASE_URL;
  const truth = JSON.parse(execFileSync(process.env.WARDEN_SEED_BIN,
    ["--database", database, "--devices", "500", "--events", "100000", "--seed", "7"],
    { encoding: "utf8", env, stdio: ["ignore", "pipe", "inherit"], maxBuffer: 1 << 24 }));
  const passwordFile = join(scratch, `password-${backend}`);
  writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
  execFileSync(process.env.WARDEN_SERVER_BIN,
    ["--database", database, "user", "add", "ana@corp.example", "--role", "approver", "--password-file", passwordFile],
    { env, stdio: ["ignore", "ignore", "inherit"] });
  const { child, url } = await startServer(["--database", database, "--sync-interval-seconds", "43200"],
    "wadm_bench-pages-token-0123456789abcdefgh", "bench-pages-enroll-secret");
  const browser = await launchChromium();
  const signIn = [], approve = [];
  try {
    for (let round = 0; round < Math.min(ROUNDS, truth.pending_requests); round++) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      const page = await context.newPage();
      const started = performance.now();
      await page.goto(`${url}/admin#requests`);
      await page.getByLabel("Account name").fill("ana@corp.example");
      await page.getByLabel("Password").fill(PASSWORD);
      await page.getByRole("button", { name: "Sign in" }).click();
      const card = page.locator("#pending-list article").first();
      await card.waitFor();
      signIn.push(performance.now() - started);
      await card.getByLabel("Comment to the developer").fill("Benchmark approval");
      const clicked = performance.now();
      await card.getByRole("button", { name: "Approve" }).click();
      await page.getByRole("status").filter({ hasText: "Approved" }).waitFor();
      approve.push(performance.now() - clicked);
      await context.close();
    }
  } finally {
    await browser.close();
    await stopServer(child);
  }
  return { backend, signIn, approve };
}

const scratch = mkdtempSync(join(tmpdir(), "warden-bench-pages-"));
const rows = [];
try {
  rows.push(await measure("SQLite", `sqlite://${join(scratch, "warden.db")}?mode=rwc`, scratch));
  if (process.env.WARDEN_BENCH_POSTGRES_URL) {
    rows.push(await measure("PostgreSQL", process.env.WARDEN_BENCH_POSTGRES_URL, scratch));
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
console.log("| backend | page | rounds | p50 ms | p95 ms | max ms |");
console.log("|---|---|---:|---:|---:|---:|");
for (const { backend, signIn, approve } of rows) {
  for (const [name, values] of [["sign-in → first pending request shown", signIn], ["Approve → \"Approved\"", approve]]) {
    const f = (v) => v.toFixed(0);
    console.log(`| ${backend} | ${name} | ${values.length} | ${f(percentile(values, 50))} | ${f(percentile(values, 95))} | ${f(Math.max(...values))} |`);
  }
}
