// People sign in through the company's identity provider: a real OpenID Connect provider (the npm
// package `oidc-provider`, on loopback, its development login form) in front of a real
// `warden-server`, driven in Debian's Chromium. Two approvers (group `sec-approvers`) and one
// developer (no group); roles come from the groups claim, devices are enrolled with codes the
// people make for themselves, nobody approves their own request, and a decision is recorded
// under the verified identity. Every request the browser makes stays on loopback.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Provider from "oidc-provider";
import { launchChromium, startServer, stopServer } from "./harness.mjs";

const ADMIN_TOKEN = "wadm_oidc-test-token-0123456789abcdefghij";
const ENROLL_SECRET = "oidc-test-enroll-secret";
const CLIENT_SECRET = "oidc-test-client-secret-0123456789";
const GROUPS = { ana: ["sec-approvers"], raj: ["sec-approvers", "engineering"], dev: ["engineering"] };
let idp, issuer, server, base, dataDir, browser;

before(async () => {
  // The provider's port is needed before the server starts (its issuer), the server's before the
  // provider is made (the registered redirect URI): the listener first, the provider after.
  let handler = (_req, res) => res.writeHead(503).end();
  idp = http.createServer((req, res) => handler(req, res));
  await new Promise((resolve) => idp.listen(0, "127.0.0.1", resolve));
  issuer = `http://127.0.0.1:${idp.address().port}`;

  dataDir = mkdtempSync(join(tmpdir(), "warden-oidc-"));
  const secretFile = join(dataDir, "client-secret");
  writeFileSync(secretFile, CLIENT_SECRET, { mode: 0o600 });
  const started = await startServer(["--data-dir", join(dataDir, "server"), "--oidc-issuer", issuer,
    "--oidc-client-id", "warden", "--oidc-client-secret-file", secretFile, "--oidc-role", "sec-approvers=approver",
    "--oidc-label", "Sign in with Corp SSO"], ADMIN_TOKEN, ENROLL_SECRET);
  server = started.child;
  base = started.url;

  const provider = new Provider(issuer, {
    clients: [{
      client_id: "warden", client_secret: CLIENT_SECRET, grant_types: ["authorization_code"],
      response_types: ["code"], redirect_uris: [`${base}/api/v1/session/oidc/callback`],
    }],
    claims: { openid: ["sub"], email: ["email"], profile: ["name"], groups: ["groups"] },
    scopes: ["openid", "email", "profile", "groups"],
    // The groups claim in the ID token itself, as the server reads it.
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: true } },
    cookies: { keys: ["oidc-test-cookie-key"] },
    ttl: { Interaction: 600, Session: 3600, Grant: 3600, AccessToken: 600, IdToken: 600 },
    findAccount: async (_ctx, id) => ({
      accountId: id,
      claims: async () => ({ sub: id, email: `${id}@corp.example`, name: id, groups: GROUPS[id] ?? [] }),
    }),
  });
  handler = provider.callback();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await stopServer(server);
  await new Promise((resolve) => idp?.close(resolve));
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

// A browser of one person, allowed to reach loopback only (the provider's page would fetch a web font).
async function person() {
  const context = await browser.newContext();
  await context.route("**/*", (route) => {
    const host = new URL(route.request().url()).hostname;
    return host === "127.0.0.1" ? route.continue() : route.abort();
  });
  return context;
}

// Signs `login` in through the provider's form; resolves on the console.
async function signIn(page, login) {
  await page.goto(`${base}/admin`);
  await page.getByRole("link", { name: "Sign in with Corp SSO" }).click();
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill("any password");
  await page.getByRole("button", { name: "Sign-in" }).click();
  await page.getByRole("button", { name: "Continue" }).click();
  await page.getByRole("button", { name: "Log out" }).waitFor();
}

// The signed-in page's own API call (the session cookie rides along; the CSRF token from the page).
function asPage(page, method, path, body) {
  return page.evaluate(async ([method, path, body]) => {
    const response = await fetch(path, {
      method,
      headers: { "content-type": "application/json", "x-csrf-token": sessionStorage.getItem("warden.csrf") || "" },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: response.status, body: await response.json().catch(() => null) };
  }, [method, path, body]);
}

// Enrolls a device with a code its person made, and files a request from it; returns the request.
async function deviceRequest(page, hostname) {
  const made = await asPage(page, "POST", "/api/v1/admin/enrollment-codes", {});
  assert.equal(made.status, 201, JSON.stringify(made.body));
  const code = JSON.parse(Buffer.from(made.body.enrollment_code.split(".")[1], "base64url"));
  const enrolled = await (await fetch(`${base}/api/v1/enroll`, {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ code: code.code, hostname, platform: "linux" }),
  })).json();
  const filed = await (await fetch(`${base}/api/v1/device/exceptions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${enrolled.device_token}` },
    body: JSON.stringify({ tool: "claude-code", justification: "Reproducing a customer bug with the vendor SDK",
      duration_seconds: 3600 }),
  })).json();
  return { user: enrolled.user, request: filed };
}

test("approvers sign in through the identity provider and decide as themselves", async () => {
  // The developer: no approver group, so the page offers only enrollment codes.
  const devContext = await person();
  const devPage = await devContext.newPage();
  await signIn(devPage, "dev");
  await devPage.getByRole("button", { name: "Make enrollment code" }).waitFor();
  assert.equal(await devPage.getByRole("heading", { name: "Overview" }).isVisible(), false);
  const dev = await deviceRequest(devPage, "dev-laptop");
  assert.equal(dev.user, "dev@corp.example");
  assert.equal((await asPage(devPage, "POST", `/api/v1/admin/exceptions/${dev.request.id}/approve`, {})).body.code,
    "role_forbids");
  await devContext.close();

  // Ana, an approver by her group: her own request she cannot approve, however she names herself.
  const anaContext = await person();
  const anaPage = await anaContext.newPage();
  await signIn(anaPage, "ana");
  const ana = await deviceRequest(anaPage, "ana-laptop");
  const own = await asPage(anaPage, "POST", `/api/v1/admin/exceptions/${ana.request.id}/approve`,
    { approver: "raj@corp.example" });
  assert.deepEqual([own.status, own.body.code], [403, "self_approval"]);

  // Dev's request she approves on the page; it is recorded under her verified identity.
  await anaPage.goto(`${base}/admin#requests`);
  const card = anaPage.getByRole("article", { name: "Request by dev@corp.example for claude-code" });
  await card.getByLabel("Comment to the developer").fill("Fine for the repro");
  await card.getByRole("button", { name: "Approve" }).click();
  await anaPage.getByRole("status").filter({ hasText: "Approved" }).waitFor();
  const cookie = (await anaContext.cookies()).find((c) => c.name === "warden_session");
  assert.ok(cookie && cookie.httpOnly && cookie.sameSite === "Strict");
  await anaContext.close();

  // Raj, the other approver, decides Ana's.
  const rajContext = await person();
  const rajPage = await rajContext.newPage();
  await signIn(rajPage, "raj");
  const decided = await asPage(rajPage, "POST", `/api/v1/admin/exceptions/${ana.request.id}/approve`, {});
  assert.equal(decided.status, 200, JSON.stringify(decided.body));
  assert.equal(decided.body.decided_by, "raj@corp.example");
  await rajContext.close();

  const audit = await (await fetch(`${base}/api/v1/admin/exceptions/${dev.request.id}/audit`,
    { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json();
  assert.deepEqual(audit.map((e) => [e.to_state, e.actor]),
    [["pending", "dev@corp.example"], ["approved", "ana@corp.example"]]);
  // The break-glass token cannot decide now that accounts exist.
  const byToken = await fetch(`${base}/api/v1/admin/exceptions/${ana.request.id}/revoke`, {
    method: "POST", headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ approver: "ana@corp.example", comment: "no" }),
  });
  assert.equal((await byToken.json()).code, "sign_in_required");
});

test("a forged or replayed callback signs nobody in", async () => {
  for (const query of ["code=x&state=never-issued", "error=access_denied&error_description=cancelled", ""]) {
    const response = await fetch(`${base}/api/v1/session/oidc/callback?${query}`, { redirect: "manual" });
    assert.ok([403, 422].includes(response.status), `${query}: ${response.status}`);
    assert.equal(response.headers.get("set-cookie"), null, query);
  }
});
