// What both browser tests share: a real `warden-server` child on a free loopback port (stopped by
// its PID), and Debian's Chromium launched headless through playwright-core.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chromium } from "playwright-core";

const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run"];

export function launchChromium() {
  return chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: CHROMIUM_ARGS });
}

// Starts `$WARDEN_SERVER_BIN` with `args` on 127.0.0.1:0 and this admin token and enroll secret;
// resolves to { child, url, banner } once it listens.
export function startServer(args, adminToken, enrollSecret) {
  const bin = process.env.WARDEN_SERVER_BIN;
  assert.ok(bin, "WARDEN_SERVER_BIN must name the built warden-server (cargo xtask test sets it)");
  const env = { ...process.env, WARDEN_ADMIN_TOKEN: adminToken, WARDEN_ENROLL_SECRET: enrollSecret };
  delete env.WARDEN_DATABASE_URL; // only what `args` says
  const child = spawn(bin, ["--listen", "127.0.0.1:0", ...args], { env, stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), 60000);
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const match = out.match(/Listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (match) { clearTimeout(timer); resolve({ child, url: match[1], banner: out }); }
    });
    child.on("exit", (code) => reject(new Error(`server exited with ${code}:\n${out}`)));
  });
}

// Stops a server `startServer` started (our own child, by PID) and waits for it to exit.
export async function stopServer(child) {
  if (child && child.exitCode === null) {
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await exited;
  }
}
