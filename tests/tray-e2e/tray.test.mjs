// End-to-end test of the real tray app: under Xvfb + openbox + trayer + dunst on a
// private session bus (desktop-session.sh), the real windows driven through tauri-driver
// + WebKitWebDriver, a fake banned tool (a copy of /bin/sleep at Claude Code's native
// install path) launched for real, and the pop-up's actions invoked through dunst's own
// context menu. Screenshots go to artifacts/tray/ and their paths are printed.
//
// Needs: WARDEN_TRAY_BIN (the built warden-tray), WARDEN_E2E_SCRATCH (the scratch dir the
// desktop session uses), DISPLAY and DBUS_SESSION_BUS_ADDRESS from desktop-session.sh.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync } from "node:fs";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

const root = resolve(import.meta.dirname, "../..");
const bin = process.env.WARDEN_TRAY_BIN;
const scratch = process.env.WARDEN_E2E_SCRATCH;
const artifacts = join(root, "artifacts/tray");
const home = join(scratch, "home");
const repo = join(scratch, "work/payments");
const workdir = join(repo, "services/api");
const fakeClaude = join(home, ".local/share/claude/versions/2.1.37");
const fakeAider = join(home, ".local/bin/aider");
const assistantLog = join(scratch, "assistant-argv.log");
const started = [];
let driver;
let session;
let port;

const env = {
  ...process.env,
  HOME: home,
  XDG_CONFIG_HOME: join(home, ".config"),
  XDG_DATA_HOME: join(home, ".local/share"),
  XDG_CACHE_HOME: join(home, ".cache"),
  XDG_STATE_HOME: join(home, ".local/state"),
  XDG_RUNTIME_DIR: join(scratch, "run"),
};

async function freePort() {
  const server = createServer();
  await new Promise((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address();
  await new Promise((done) => server.close(done));
  return port;
}

async function webdriver(method, path, body) {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await response.json();
  if (!response.ok) throw new Error(`${method} ${path}: ${JSON.stringify(answer.value)}`);
  return answer.value;
}
const wd = (method, path, body) => webdriver(method, `/session/${session}${path}`, body);
const ELEMENT = "element-6066-11e4-a23a-4f8f4a1e6b17";

async function until(what, check, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(150);
  }
  throw new Error(`timed out waiting for ${what} (last: ${last})`);
}

/** Runs JavaScript in the current window and returns its value. */
const script = (body, ...args) => wd("POST", "/execute/sync", { script: body, args });

async function windowTitled(part) {
  return until(`a window titled …${part}…`, async () => {
    const seen = [];
    for (const handle of await wd("GET", "/window/handles")) {
      await wd("POST", "/window", { handle });
      const title = await wd("GET", "/title");
      if (title.toLowerCase().includes(part.toLowerCase())) return handle;
      seen.push(title);
    }
    throw new Error(`windows seen: ${JSON.stringify(seen)}`);
  });
}

async function shotWindow(name) {
  // Resizing makes WebKit paint the window even when the window manager has not raised
  // it yet, so the screenshot shows the current page, not its first frame.
  const rect = await wd("GET", "/window/rect");
  await wd("POST", "/window/rect", { width: rect.width + 1, height: rect.height });
  await sleep(300);
  const png = await wd("GET", "/screenshot");
  const path = join(artifacts, `${name}.png`);
  writeFileSync(path, Buffer.from(png, "base64"));
  console.log(`screenshot: ${path}`);
}

function shotScreen(name) {
  const path = join(artifacts, `${name}.png`);
  execFileSync("import", ["-window", "root", path], { env });
  console.log(`screenshot: ${path}`);
}

const notifyCalls = () => readFileSync(join(scratch, "dbus-monitor.log"), "utf8").split("member=Notify").slice(1);

/** Launches the fake Claude Code in the repository and waits until it is gone (killed). */
async function launchBannedTool() {
  const before = notifyCalls().length;
  const child = spawn(fakeClaude, ["60"], { cwd: workdir, env, stdio: "ignore" });
  const exit = await new Promise((done) => child.on("exit", (code, signal) => done({ code, signal })));
  const popup = await until("the Notify call for the block", () => notifyCalls().length > before && notifyCalls().at(-1));
  return { exit, popup };
}

/** Picks an action from the newest pop-up's context menu in dunst, as a user would. */
async function chooseAction(label) {
  writeFileSync(join(scratch, "choice"), label);
  await until("dunst to show the pop-up", () => execFileSync("dunstctl", ["count", "displayed"], { env }).toString().trim() !== "0");
  execFileSync("dunstctl", ["context"], { env });
}

before(async () => {
  assert.ok(bin && existsSync(bin), `WARDEN_TRAY_BIN must name the built warden-tray (got ${bin})`);
  assert.ok(scratch, "run inside desktop-session.sh with WARDEN_E2E_SCRATCH set");
  mkdirSync(artifacts, { recursive: true });
  mkdirSync(join(repo, ".git"), { recursive: true });
  mkdirSync(workdir, { recursive: true });
  mkdirSync(join(home, ".local/share/claude/versions"), { recursive: true });
  mkdirSync(env.XDG_RUNTIME_DIR, { recursive: true, mode: 0o700 });
  copyFileSync("/bin/sleep", fakeClaude);
  chmodSync(fakeClaude, 0o755);
  mkdirSync(join(home, ".local/bin"), { recursive: true });
  copyFileSync("/bin/sleep", fakeAider);
  chmodSync(fakeAider, 0o755);
  // The sanctioned assistant's command: records its argv and the folder it started in.
  const recorder = join(scratch, "record-assistant");
  writeFileSync(recorder, `#!/bin/sh\necho "$PWD $*" >> '${assistantLog}'\n`);
  chmodSync(recorder, 0o755);
  // The embedded policy, narrowed so this test can only ever stop its own fake tool: the
  // agent sees every process on the machine, and other people's AI tools (or other
  // tests' fake ones) must not be killed or warned about. Claude Code keeps its id and
  // name, but only the copy under this test's scratch home counts as Claude Code.
  const defaults = readFileSync(join(root, "crates/warden-policy/src/default-policy.toml"), "utf8");
  const policy =
    defaults
      .replace('command = ["qwen"]', `command = ["${recorder}", "--from-warden"]`)
      .replace("allow_quit = false", "allow_quit = true")
      .replace('default_action = "warn"', 'default_action = "allow"')
      .split("[[risky_flags]]")[0] +
    `\n[[catalog]]\nid = "claude-code"\nname = "Claude Code"\nvendor = "Anthropic"\nkind = "cli"\n` +
    `executables = ["${home}/.local/share/claude/versions/*"]\ninstall_paths = [".local/share/claude/versions"]\n` +
    `\n[[catalog]]\nid = "aider"\nname = "Aider"\nvendor = "Aider AI"\nkind = "cli"\nexecutables = ["${fakeAider}"]\n` +
    `\n[tools.aider]\naction = "warn"\nmessage = "Aider sends code to cloud models; it is not approved here."\n`;
  assert.ok(policy.includes(recorder) && policy.includes('default_action = "allow"'), "the policy was narrowed");
  writeFileSync(join(scratch, "policy.toml"), policy);

  port = await freePort();
  driver = spawn("tauri-driver", ["--port", String(port)], { env, stdio: ["ignore", "inherit", "inherit"] });
  started.push(driver);
  await until("tauri-driver", async () => (await fetch(`http://127.0.0.1:${port}/status`)).ok);
  const created = await webdriver("POST", "/session", {
    capabilities: {
      alwaysMatch: {
        "tauri:options": {
          application: bin,
          args: ["--open", "catalog", "--policy", join(scratch, "policy.toml"), "--state-dir", join(scratch, "state"), "--popup-window-ms", "0"],
        },
      },
    },
  });
  session = created.sessionId;
});

after(async () => {
  if (session) await wd("DELETE", "").catch(() => {});
  for (const child of started) child.kill();
});

test("catalog window: the sanctioned assistant first, Claude Code blocked", async () => {
  await windowTitled("approved AI tools");
  const first = await until("the catalog", () => script("return document.querySelector('li.tool')?.dataset.tool"));
  assert.equal(first, "qwen-code");
  const claude = await script("return document.querySelector('[data-tool=\"claude-code\"] .badge').textContent");
  assert.equal(claude, "Blocked");
  await shotWindow("catalog-window");
});

test("tray icon and menu are shown by the tray host", async () => {
  const geometry = (window) => {
    const shell = execFileSync("xdotool", ["getwindowgeometry", "--shell", window], { env }).toString();
    return Object.fromEntries(shell.trim().split("\n").map((line) => line.split("=")).map(([k, v]) => [k, Number(v)]));
  };
  // trayer's panel grows from its empty width once the app's icon is embedded.
  const panel = () =>
    execFileSync("xdotool", ["search", "--onlyvisible", "--class", "trayer"], { env }).toString().trim().split("\n")
      .map(geometry)
      .find((g) => g.WIDTH >= 20 && g.HEIGHT >= 20);
  const { X: x, Y: y, WIDTH: width, HEIGHT: height } = await until("the tray icon in trayer", panel);
  execFileSync("xdotool", ["mousemove", String(x + width - 16), String(y + height / 2), "click", "1"], { env });
  await sleep(800);
  shotScreen("tray-menu");
  execFileSync("xdotool", ["key", "Escape"], { env });
});

test("a banned tool is killed and a real pop-up with the right actions reaches dunst", async () => {
  const { exit, popup } = await launchBannedTool();
  assert.equal(exit.signal, "SIGKILL", "the fake Claude Code was stopped");
  assert.match(popup, /string "Claude Code was blocked: company policy requires it"/);
  assert.match(popup, /string "Claude Code is classified as high-risk software[^"]*Use Internal Assistant instead\."/);
  const actions = [...popup.matchAll(/string "([^"]*)"/g)].map((m) => m[1]);
  for (const [key, label] of [["default", "Open Internal Assistant"], ["request-exception", "Request exception"], ["details", "Details"]]) {
    const at = actions.indexOf(key);
    assert.ok(at >= 0 && actions[at + 1] === label, `action ${key} "${label}" in ${actions}`);
  }
  await until("dunst to show it", () => execFileSync("dunstctl", ["count", "displayed"], { env }).toString().trim() !== "0");
  shotScreen("notification");
});

test("Request exception opens the form pre-filled with the tool and the repository; filing needs a server", async () => {
  await chooseAction("Request exception");
  await windowTitled("exception requests");
  const tool = await until("the pre-filled tool", () => script("return document.getElementById('tool')?.value"));
  assert.equal(tool, "claude-code");
  const repository = await until("the repository", () => script("return document.getElementById('repository')?.value"));
  assert.equal(repository, repo);
  // Submit a too-short reason: the real app shows the inline error; then a valid request.
  await script("document.getElementById('justification').value = 'short'; document.querySelector('#request-form button[type=submit]').click()");
  assert.match(await until("the inline error", () => script("return document.getElementById('justification-error').textContent")), /at least 20 characters/);
  await script(
    "const j = document.getElementById('justification'); j.value = 'Reproducing a payments bug reported by a customer'; j.dispatchEvent(new Event('input')); document.querySelector('#request-form button[type=submit]').click()",
  );
  // Personal mode, not enrolled with a server: the runtime has no server to file it with and
  // says so with its stable code; nothing typed is lost (requests live in the runtime's one
  // outbox, never in a file of the tray's).
  const refused = await until("the runtime's answer", () => script("const s = document.getElementById('form-status'); return s && !s.hidden && s.textContent"));
  assert.match(refused, /\(not-enrolled\)/);
  assert.equal(await script("return document.getElementById('justification').value"), "Reproducing a payments bug reported by a customer");
  assert.ok(!existsSync(join(scratch, "state/exception-requests.json")), "no second outbox");
  await shotWindow("exceptions-window");
});

test("Open ‹assistant› runs the policy's command in the blocked tool's folder", async () => {
  await launchBannedTool();
  await until("dunst to show the pop-up", () => execFileSync("dunstctl", ["count", "displayed"], { env }).toString().trim() !== "0");
  execFileSync("dunstctl", ["action"], { env }); // the default action, as a click on the pop-up
  const line = await until("the assistant to start", () => existsSync(assistantLog) && readFileSync(assistantLog, "utf8").trim());
  assert.equal(line, `${workdir} --from-warden`);
});

test("Details opens the activity window on that event", async () => {
  await launchBannedTool();
  await chooseAction("Details");
  await windowTitled("recent activity");
  const focused = await until("the focused event", () => script("return document.querySelector('li.event.focused h3')?.textContent"));
  assert.equal(focused, "Claude Code");
  const count = await script("return document.querySelectorAll('li.event').length");
  assert.ok(count >= 3, `the activity lists the launches (${count})`);
  await shotWindow("activity-window");
});

test("a second launch focuses the first instance (About window), which reports the policy and the personal mode", async () => {
  execFileSync(bin, ["--open", "about"], { env, timeout: 20_000 });
  await windowTitled("About Warden");
  const policy = await until("the about facts", () => script("return document.querySelector('dl.facts')?.textContent"));
  assert.match(policy, /Default policy: internal assistant only/);
  assert.match(policy, /proc-connector|poll/);
  const status = await script("return document.querySelector('p.lead')?.textContent");
  assert.match(status, /^Personal mode: Warden runs as you in this tray and is not tamper-proof/);
  await shotWindow("about-window");
});

test("a warned tool keeps running; its pop-up offers Silence for a day, which silences the next warning", async () => {
  const before = notifyCalls().length;
  const aider = spawn(fakeAider, ["60"], { cwd: workdir, env, stdio: "ignore" });
  started.push(aider);
  const popup = await until("the warning's Notify call", () => notifyCalls().length > before && notifyCalls().at(-1));
  assert.match(popup, /string "Aider is not approved: it keeps running"/);
  assert.match(popup, /string "silence-day"\s+string "Silence for a day"/);
  await sleep(500);
  assert.equal(aider.exitCode, null, "the warned tool is still running");
  assert.equal(aider.signalCode, null);
  aider.kill();
  await chooseAction("Silence for a day");
  await until("dunst to report the chosen action", () =>
    /member=ActionInvoked\s+uint32 \d+\s+string "silence-day"/.test(readFileSync(join(scratch, "dbus-monitor.log"), "utf8")),
  );
  await sleep(300);
  const events = () => script("return document.querySelectorAll('li.event').length");
  await windowTitled("recent activity");
  const listed = await events();
  const silenced = notifyCalls().length;
  const again = spawn(fakeAider, ["60"], { cwd: workdir, env, stdio: "ignore" });
  started.push(again);
  await until("the second launch in the activity window", async () => (await events()) > listed);
  assert.equal(notifyCalls().length, silenced, "no pop-up for a silenced tool");
  again.kill();
});

