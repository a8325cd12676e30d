// Tray app benchmark (not a test): run by bench.sh inside a throwaway desktop. The same
// binary is measured twice in one run, one mode after the other:
//   personal — no service: the tray runs Warden's runtime (agent + local API) in-process;
//   client   — `wardend` (WARDEN_WARDEND_BIN) runs as root with a scratch state and socket, and
//              the tray is its client (WARDEN_SOCKET): no agent in the tray.
// For each mode:
//   1. launch → tray icon: from spawning warden-tray to its icon embedded in trayer;
//   2. idle footprint with no window open over WARDEN_BENCH_IDLE_S seconds (default 60): PSS
//      summed over the tray and its descendants (/proc/PID/smaps_rollup; mean and peak of
//      one sample a second), RSS, and CPU (utime + stime of the same processes);
//   3. blocked launch → pop-up shown: from spawning a fake Claude Code to the Notify call on
//      the session bus (dbus-monitor's timestamp), p50/p95 over WARDEN_BENCH_LAUNCHES, with
//      `notify-send` spawned directly in the same run as the floor.
// Prints a Markdown table.
import { spawn, execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

const root = resolve(import.meta.dirname, "../..");
const bin = process.env.WARDEN_TRAY_BIN;
const wardend = process.env.WARDEN_WARDEND_BIN;
const scratch = process.env.WARDEN_E2E_SCRATCH;
const idleSeconds = Number(process.env.WARDEN_BENCH_IDLE_S ?? 60);
const launches = Number(process.env.WARDEN_BENCH_LAUNCHES ?? 40);
const home = join(scratch, "home");
const fake = join(home, ".local/share/claude/versions/2.1.37");
const env = {
  ...process.env,
  HOME: home,
  XDG_CONFIG_HOME: join(home, ".config"),
  XDG_DATA_HOME: join(home, ".local/share"),
  XDG_CACHE_HOME: join(home, ".cache"),
  XDG_STATE_HOME: join(home, ".local/state"),
  XDG_RUNTIME_DIR: join(scratch, "run"),
};
const ticks = Number(execFileSync("getconf", ["CLK_TCK"]).toString());
const page = Number(execFileSync("getconf", ["PAGESIZE"]).toString());

mkdirSync(join(home, ".local/share/claude/versions"), { recursive: true });
mkdirSync(env.XDG_RUNTIME_DIR, { recursive: true, mode: 0o700 });
copyFileSync("/bin/sleep", fake);
chmodSync(fake, 0o755);
// Same narrowing as the e2e test: only this run's fake tool is Claude Code.
const policy =
  readFileSync(join(root, "crates/warden-policy/src/default-policy.toml"), "utf8")
    .replace('default_action = "warn"', 'default_action = "allow"')
    .split("[[risky_flags]]")[0] +
  `\n[[catalog]]\nid = "claude-code"\nname = "Claude Code"\nvendor = "Anthropic"\nkind = "cli"\nexecutables = ["${home}/.local/share/claude/versions/*"]\n`;
writeFileSync(join(scratch, "policy.toml"), policy);

const trayerWidth = () =>
  Math.max(
    ...execFileSync("xdotool", ["search", "--onlyvisible", "--class", "trayer"], { env }).toString().trim().split("\n").map((w) => {
      const shell = execFileSync("xdotool", ["getwindowgeometry", "--shell", w], { env }).toString();
      return Number(/WIDTH=(\d+)/.exec(shell)[1]);
    }),
  );

/** The app's process and all its descendants. */
function tree(pid) {
  const children = new Map();
  for (const entry of readdirSync("/proc").filter((e) => /^\d+$/.test(e))) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {}
  }
  const all = [pid];
  for (let i = 0; i < all.length; i++) all.push(...(children.get(all[i]) ?? []));
  return all;
}

function sample(pids) {
  let rss = 0;
  let pss = 0;
  let cpu = 0;
  for (const pid of pids) {
    try {
      // Proportional set size: shared library pages divided among the processes mapping them.
      pss += Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"))[1]) * 1024;
      rss += Number(readFileSync(`/proc/${pid}/statm`, "utf8").split(" ")[1]) * page;
      const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
      cpu += Number(fields[11]) + Number(fields[12]);
    } catch {}
  }
  return { rss, pss, cpu };
}

const notifyTimes = () =>
  [...readFileSync(join(scratch, "dbus-monitor.log"), "utf8").matchAll(/method call time=([\d.]+) .*member=Notify/g)].map((m) => Number(m[1]) * 1000);

async function latency(start) {
  const before = notifyTimes().length;
  // Wall-clock milliseconds with sub-millisecond precision, the clock dbus-monitor stamps with.
  const t0 = performance.timeOrigin + performance.now();
  start();
  for (let i = 0; i < 400; i++) {
    const times = notifyTimes();
    if (times.length > before) return times[before] - t0;
    await sleep(5);
  }
  throw new Error(`no Notify within 2 s (t0 ${t0})`);
}

const percentile = (values, p) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.ceil((p / 100) * values.length) - 1)];

/** One mode: launch → icon, idle footprint, block → pop-up (with the notify-send floor). */
async function measure(args, extraEnv) {
  // 1. Launch → tray icon.
  const emptyWidth = trayerWidth();
  const spawned = performance.now();
  const app = spawn(bin, [...args, "--popup-window-ms", "0"], { env: { ...env, ...extraEnv }, stdio: ["ignore", "ignore", "pipe"] });
  let appLog = "";
  app.stderr.on("data", (d) => (appLog += d));
  while (trayerWidth() <= emptyWidth) {
    if (performance.now() - spawned > 10_000) throw new Error(`no tray icon after 10 s: ${appLog}`);
    await sleep(5);
  }
  const toIcon = performance.now() - spawned;
  await sleep(3000); // let the runtime, the first answers and the inventory scan settle

  // 2. Idle footprint, no window open.
  const first = sample(tree(app.pid));
  let peakPss = first.pss;
  let sumPss = 0;
  let samples = 0;
  const idleStart = performance.now();
  while (performance.now() - idleStart < idleSeconds * 1000) {
    await sleep(1000);
    const now = sample(tree(app.pid));
    peakPss = Math.max(peakPss, now.pss);
    sumPss += now.pss;
    samples += 1;
  }
  const last = sample(tree(app.pid));
  const processes = tree(app.pid).length;
  const cpuPercent = ((last.cpu - first.cpu) / ticks / ((performance.now() - idleStart) / 1000)) * 100;

  // 3. Blocked launch → pop-up, and the notify-send floor, interleaved in the same run.
  const warden = [];
  const floor = [];
  for (let i = 0; i < launches; i++) {
    warden.push(await latency(() => spawn(fake, ["30"], { env, stdio: "ignore" })));
    floor.push(await latency(() => spawn("notify-send", ["-a", "bench", "floor", `run ${i}`], { env, stdio: "ignore" })));
    await sleep(100);
  }
  app.kill();
  await new Promise((done) => app.on("exit", done));
  await sleep(500);
  return { toIcon, processes, meanPss: sumPss / Math.max(samples, 1), peakPss, rss: last.rss, cpuPercent, warden, floor };
}

// Personal mode: the tray embeds the runtime (the "embedded agent" figure).
const personal = await measure(["--policy", join(scratch, "policy.toml"), "--state-dir", join(scratch, "state")], {});

// Client mode: wardend as root with the same narrowed policy; the tray finds it by WARDEN_SOCKET.
if (!wardend) throw new Error("WARDEN_WARDEND_BIN must name the built wardend");
const socket = join(scratch, "service/warden.sock");
writeFileSync(join(scratch, "warden.toml"), `gate = []\n[policy]\nfile = "${join(scratch, "policy.toml")}"\n`);
const service = spawn(wardend, ["--config", join(scratch, "warden.toml"), "--state-dir", join(scratch, "service/state"), "--socket", socket, "--no-gate"], {
  env,
  stdio: ["ignore", "ignore", "pipe"],
});
let serviceLog = "";
service.stderr.on("data", (d) => (serviceLog += d));
for (let i = 0; !serviceLog.includes("local API on"); i++) {
  if (i > 400) throw new Error(`wardend did not start: ${serviceLog}`);
  await sleep(50);
}
let client;
try {
  client = await measure([], { WARDEN_SOCKET: socket });
} finally {
  service.kill();
}

const ms = (v) => `${v.toFixed(1)} ms`;
const mb = (v) => `${(v / 1048576).toFixed(1)} MB`;
const modes = [["client of wardend (no agent)", client], ["personal mode (embedded runtime)", personal]];
console.log(`| measure | ${modes.map(([name]) => name).join(" | ")} | ratio client / personal | goal |`);
console.log(`| --- | --- | --- | --- | --- |`);
const row = (name, f, ratio, goal) =>
  console.log(`| ${name} | ${modes.map(([, m]) => f(m)).join(" | ")} | ${ratio === null ? "—" : `${ratio.toFixed(2)}×`} | ${goal} |`);
row("launch → tray icon embedded in trayer", (m) => ms(m.toIcon), client.toIcon / personal.toIcon, "≤ 1000 ms");
row(`idle PSS, all processes, no window (mean / peak over ${idleSeconds} s)`, (m) => `${mb(m.meanPss)} / ${mb(m.peakPss)} (${m.processes} process(es))`, client.meanPss / personal.meanPss, "≤ 60 MB");
row("idle RSS at the end (for comparison with earlier runs)", (m) => mb(m.rss), client.rss / personal.rss, "—");
row(`idle CPU over ${idleSeconds} s`, (m) => `${m.cpuPercent.toFixed(3)} % of one core`, personal.cpuPercent > 0 ? client.cpuPercent / personal.cpuPercent : null, "≤ 0.05 % (client)");
row(`blocked launch → Notify on the bus, p50 / p95 / max (n=${launches})`, (m) => `${ms(percentile(m.warden, 50))} / ${ms(percentile(m.warden, 95))} / ${ms(Math.max(...m.warden))}`, percentile(client.warden, 95) / percentile(personal.warden, 95), "p95 ≤ 50 ms (client)");
row("peer: spawn notify-send → Notify, p50 / p95 (same run)", (m) => `${ms(percentile(m.floor, 50))} / ${ms(percentile(m.floor, 95))}`, null, "—");
