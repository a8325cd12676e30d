// Warden console's fleet views: the overview with its charts (uPlot), tools and one tool's
// footprint, the exception report, device search and detail, event paging, and CSV/JSON export.
// Loaded before app.js, whose helpers ($, api, cell, el, button, when, status) it calls at run time.
"use strict";

const VERDICTS = [
  ["sanctioned", "sanctioned assistant", "#1e7b34"],
  ["allowed", "allowed", "#2458c6"],
  ["warned", "warned", "#c28a00"],
  ["blocked", "blocked", "#b3261e"],
  ["exception", "by exception", "#7b3fb8"],
];
const VIEW_OF_ANCHOR = { pending: "requests", history: "requests", report: "requests", inventory: "devices", "device-detail": "devices" };
const fleet = { overview: null, tools: null, footprint: null, report: null, cursors: [null], charts: [] };

// ---- views: one group of sections at a time, chosen by the address's #anchor ----
function currentView() {
  const anchor = location.hash.slice(1) || "overview";
  return VIEW_OF_ANCHOR[anchor] || anchor;
}
function showView() {
  const view = currentView();
  for (const section of document.querySelectorAll("main > section[data-view]")) {
    const detail = section.id === "device-detail" && !section.dataset.device;
    section.hidden = section.dataset.view !== view || detail;
  }
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.getAttribute("href") === `#${view}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (view === "overview" && fleet.overview) drawCharts(fleet.overview);
}
window.addEventListener("hashchange", showView);

// ---- export: every table as the API's CSV, or the API's JSON ----
const day = (d) => new Date(d * 86400 * 1000).toISOString().slice(0, 10);
const query = (params) => {
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v !== null && v !== undefined));
  return q.toString() ? `?${q}` : "";
};
const EXPORTS = {
  overview: ["launches per day", () => `/api/v1/admin/overview${query(overviewParams())}`],
  alerts: ["alerts", () => "/api/v1/admin/alerts?limit=1000"],
  tools: ["tools", () => "/api/v1/admin/tools"],
  footprint: ["devices with this tool", () => `/api/v1/admin/tools/${encodeURIComponent(fleet.footprint.tool)}`],
  report: ["exception report", () => `/api/v1/admin/exceptions/report${query(reportParams())}`],
  devices: ["devices", () => "/api/v1/admin/devices"],
  "admin-audit": ["admin actions", () => "/api/v1/admin/admin-audit?limit=1000"],
  requests: ["exception requests", () => "/api/v1/admin/exceptions?limit=1000"],
  inventory: ["installed tools", () => "/api/v1/admin/inventory"],
  events: ["events", () => eventsPath(fleet.cursors[fleet.cursors.length - 1], 1000)],
};
async function download(path, format, name) {
  const url = format === "csv" ? `${path}${path.includes("?") ? "&" : "?"}format=csv` : path;
  const response = await fetch(url, { headers: authHeaders() });
  if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = `${name.replaceAll(" ", "-")}.${format}`;
  document.body.append(link);
  link.click();
  link.remove();
}
function exportButtons() {
  for (const holder of document.querySelectorAll(".exports[data-export]")) {
    const [name, path] = EXPORTS[holder.dataset.export];
    holder.replaceChildren(...["csv", "json"].map((format) => {
      const b = button(format.toUpperCase(), "", () =>
        download(path(), format, name).catch((error) => status(`Could not export ${name}: ${error.message}`, false)));
      b.setAttribute("aria-label", `Export ${name} as ${format.toUpperCase()}`);
      return b;
    }));
  }
}

// ---- overview ----
function overviewParams() {
  return { days: $("overview-days").value, tool: $("overview-tool").value };
}
function drawChart(target, title, xs, series) {
  const width = Math.max(target.clientWidth || 0, 640);
  const chart = new uPlot({
    title, width, height: 260,
    scales: { x: { time: true } },
    axes: [{}, { label: "launches" }],
    series: [{}, ...series.map(([label, color]) => ({ label, stroke: color, width: 2, points: { show: false } }))],
  }, [xs, ...series.map(([, , values]) => values)], target);
  fleet.charts.push(chart);
}
function drawCharts(overview) {
  for (const chart of fleet.charts) chart.destroy();
  fleet.charts = [];
  $("launches-chart").replaceChildren();
  $("adoption-chart").replaceChildren();
  const days = [];
  for (let d = overview.since_day; d <= overview.until_day; d += 1) days.push(d);
  const xs = days.map((d) => d * 86400);
  const perDay = Object.fromEntries(VERDICTS.map(([v]) => [v, days.map(() => 0)]));
  for (const l of overview.launches) perDay[l.verdict][l.day - overview.since_day] += l.count;
  drawChart($("launches-chart"), "Launches per day", xs, VERDICTS.map(([v, label, color]) => [label, color, perDay[v]]));
  drawChart($("adoption-chart"), "Sanctioned assistant vs. blocked attempts", xs, [
    ["sanctioned assistant", "#1e7b34", overview.adoption.map((p) => p.sanctioned)],
    ["blocked attempts", "#b3261e", overview.adoption.map((p) => p.blocked)],
  ]);
}
function card(stat, value, label) {
  const item = el("li");
  item.dataset.stat = stat;
  item.append(el("strong", String(value)), el("span", ` ${label}`));
  return item;
}
function renderOverview(overview, alerts) {
  fleet.overview = overview;
  const totals = Object.fromEntries(overview.totals.map((t) => [t.verdict, t.count]));
  $("overview-cards").replaceChildren(
    card("devices", overview.devices.enrolled, "devices enrolled"),
    card("silent", overview.devices.silent, "silent"),
    card("pending", overview.pending_requests, "pending requests"),
    card("alerts", overview.recent_alerts, "alerts in 24 h"),
    ...VERDICTS.map(([v, label]) => card(v, totals[v] || 0, `launches ${label}`)),
  );
  const select = $("overview-tool");
  const chosen = select.value;
  const tools = [...new Set(overview.launches.map((l) => l.tool).filter(Boolean)), chosen].filter(Boolean).sort();
  select.replaceChildren(el("option", "every tool"), ...[...new Set(tools)].map((t) => el("option", t)));
  select.options[0].value = "";
  select.value = chosen;
  const badge = $("alert-badge");
  badge.hidden = overview.recent_alerts === 0;
  badge.textContent = String(overview.recent_alerts);
  badge.setAttribute("aria-label", `${overview.recent_alerts} alerts in the last 24 hours`);
  const body = $("alert-rows");
  body.replaceChildren();
  for (const a of alerts.alerts) {
    const row = body.insertRow();
    row.dataset.rule = a.rule;
    cell(row, when(a.raised_at));
    cell(row, a.rule, "state-denied");
    cell(row, a.subject);
    cell(row, a.detail);
  }
  if (!alerts.alerts.length) cell(body.insertRow(), "No alerts.", "meta").colSpan = 4;
  if (currentView() === "overview") drawCharts(overview);
}

// ---- tools and one tool's footprint ----
function renderTools(summaries) {
  fleet.tools = summaries;
  $("tools-note").textContent = summaries.policy_activated_at
    ? `The active policy was activated ${when(summaries.policy_activated_at)}; the trend compares the 30 days before with the time since.`
    : "No policy activation recorded yet: no trend.";
  const body = $("tool-rows");
  body.replaceChildren();
  const wanted = $("tools-search").value.trim().toLowerCase();
  for (const t of summaries.tools.filter((t) => t.tool.includes(wanted))) {
    const row = body.insertRow();
    row.dataset.tool = t.tool;
    const name = row.insertCell();
    name.append(button(t.tool, "link", () => openFootprint(t.tool)));
    for (const [field, value] of [["installed", t.installed_devices], ["used-7d", t.used_7d], ["used-30d", t.used_30d],
      ["used-90d", t.used_90d], ["blocked-30d", t.blocked_30d]]) cell(row, String(value)).dataset.field = field;
    cell(row, `${t.launches_per_day_before.toFixed(1)} → ${t.launches_per_day_since.toFixed(1)}`);
    cell(row, t.versions.map((v) => `${v.version || "?"} (${v.devices})`).join(", "));
  }
  if (!body.rows.length) cell(body.insertRow(), "No AI tool installed or launched.", "meta").colSpan = 8;
}
async function openFootprint(tool) {
  const footprint = await api("GET", `/api/v1/admin/tools/${encodeURIComponent(tool)}`);
  fleet.footprint = footprint;
  $("footprint").hidden = false;
  $("footprint-title").textContent = `Where ${tool} is and was`;
  const last = footprint.last_launch_at_ms ? new Date(footprint.last_launch_at_ms).toLocaleString() : "never";
  $("footprint-summary").textContent = `${tool}: installed on ${footprint.installed_now} device(s) now, removed from ` +
    `${footprint.removed}, launched on ${footprint.used_30d} in the last 30 days; last launch ${last}.`;
  renderFootprint();
  $("footprint").scrollIntoView();
}
function renderFootprint() {
  const body = $("footprint-rows");
  body.replaceChildren();
  const state = $("footprint-status").value;
  const wanted = $("footprint-search").value.trim().toLowerCase();
  for (const d of fleet.footprint.devices) {
    if (state && d.status !== state) continue;
    if (wanted && !`${d.hostname} ${d.user} ${d.device_id}`.toLowerCase().includes(wanted)) continue;
    const row = body.insertRow();
    row.dataset.status = d.status;
    cell(row, d.hostname);
    cell(row, d.user);
    cell(row, d.status, d.status === "installed" ? "state-denied" : "");
    cell(row, d.versions);
    cell(row, when(d.first_seen_at));
    cell(row, when(d.removed_at));
    cell(row, `${d.launches} (${d.blocked})`);
    cell(row, d.last_launch_at_ms ? new Date(d.last_launch_at_ms).toLocaleString() : "");
  }
  if (!body.rows.length) cell(body.insertRow(), "No device matches.", "meta").colSpan = 8;
}

// ---- exception report ----
function reportParams() {
  return { state: $("report-state").value, tool: $("report-tool").value.trim(), approver: $("report-approver").value.trim() };
}
function renderReport(report) {
  fleet.report = report;
  const p50 = report.decision_seconds_p50, p90 = report.decision_seconds_p90;
  const hours = (s) => `${(s / 3600).toFixed(1)} h`;
  $("report-summary").textContent = `${report.total} request(s)` +
    (p50 !== undefined ? `; decided in ${hours(p50)} (median), ${hours(p90)} (90th percentile)` : "");
  $("report-summary").dataset.total = String(report.total);
  const holder = $("report-tallies");
  holder.replaceChildren();
  for (const [key, title] of [["by_state", "By state"], ["by_tool", "By tool"], ["by_approver", "By approver"],
    ["top_scopes", "Asked for most: scopes"], ["top_justifications", "Asked for most: justifications"]]) {
    const table = el("table");
    table.dataset.tally = key;
    table.createCaption().textContent = title;
    for (const t of report[key]) {
      const row = table.insertRow();
      cell(row, t.value);
      cell(row, String(t.count));
    }
    if (!report[key].length) cell(table.insertRow(), "none", "meta");
    holder.append(table);
  }
}

// ---- search on the tables app.js fills: rows whose text lacks the words are hidden ----
const SEARCHES = [["devices-search", "device-rows"], ["history-search", "history-rows"], ["inventory-search", "inventory-rows"]];
function filterRows(input, body) {
  const wanted = $(input).value.trim().toLowerCase();
  for (const row of $(body).rows) {
    row.hidden = Boolean(wanted) && !row.textContent.toLowerCase().includes(wanted);
  }
}
function filterTables() {
  for (const [input, body] of SEARCHES) filterRows(input, body);
}

// ---- devices: one device's detail ----
async function openDevice(id, hostname) {
  const [history, events, requests] = await Promise.all([
    api("GET", `/api/v1/admin/devices/${encodeURIComponent(id)}/inventory`),
    api("GET", `/api/v1/admin/events${query({ device: id, limit: 20 })}`),
    api("GET", "/api/v1/admin/exceptions?limit=1000"),
  ]);
  const section = $("device-detail");
  section.dataset.device = id;
  $("device-detail-title").textContent = `${hostname} (${id})`;
  const now = history.changes[0];
  $("device-tools").replaceChildren(...(now ? now.report.tools : []).map((t) =>
    el("li", `${t.tool} ${t.version || ""} — ${t.kind}: ${t.path}`)));
  if (!now || !now.report.tools.length) $("device-tools").append(el("li", "none reported", "meta"));
  const mine = requests.filter((r) => r.device_id === id);
  $("device-exceptions").replaceChildren(...mine.map((r) => el("li", `${r.tool}: ${r.state}, filed ${when(r.created_at)}`)));
  if (!mine.length) $("device-exceptions").append(el("li", "none", "meta"));
  $("device-events").replaceChildren(...events.events.map(({ event, at_ms }) =>
    el("li", `${new Date(at_ms).toLocaleString()} ${event.kind} ${event.tool || ""} ${describe(event)[0]}`)));
  if (!events.events.length) $("device-events").append(el("li", "none", "meta"));
  showView();
  section.scrollIntoView();
}

// ---- events: filters and keyset pages ----
function eventsPath(cursor, limit = 50) {
  return `/api/v1/admin/events${query({
    limit, kind: $("event-kind").value, verdict: $("event-verdict").value,
    tool: $("event-tool").value.trim(), user: $("event-user").value.trim(), cursor,
  })}`;
}
function pageOfEvents(page) {
  $("events-older").disabled = !page.next;
  $("events-older").dataset.next = page.next || "";
  $("events-newest").disabled = fleet.cursors.length === 1;
  $("events-page").textContent = `page ${fleet.cursors.length}`;
}

async function refreshFleet() {
  const [overview, alerts, tools, report] = await Promise.all([
    api("GET", `/api/v1/admin/overview${query(overviewParams())}`),
    api("GET", "/api/v1/admin/alerts?limit=50"),
    api("GET", "/api/v1/admin/tools"),
    api("GET", `/api/v1/admin/exceptions/report${query(reportParams())}`),
  ]);
  renderOverview(overview, alerts);
  renderTools(tools);
  renderReport(report);
  if (fleet.footprint) await openFootprint(fleet.footprint.tool);
}

function wireFleet(reload, reloadEvents) {
  exportButtons();
  const failed = (error) => status(`Could not load: ${error.message}`, false);
  for (const id of ["overview-days", "overview-tool"]) {
    $(id).addEventListener("change", () => Promise.all([
      api("GET", `/api/v1/admin/overview${query(overviewParams())}`), api("GET", "/api/v1/admin/alerts?limit=50"),
    ]).then(([o, a]) => renderOverview(o, a)).catch(failed));
  }
  $("tools-search").addEventListener("input", () => renderTools(fleet.tools));
  $("footprint-status").addEventListener("change", renderFootprint);
  $("footprint-search").addEventListener("input", renderFootprint);
  for (const id of ["report-state", "report-tool", "report-approver"]) {
    $(id).addEventListener("change", () =>
      api("GET", `/api/v1/admin/exceptions/report${query(reportParams())}`).then(renderReport).catch(failed));
  }
  for (const [input, body] of SEARCHES) $(input).addEventListener("input", () => filterRows(input, body));
  for (const id of ["event-kind", "event-verdict", "event-tool", "event-user"]) {
    $(id).addEventListener("change", () => { fleet.cursors = [null]; reloadEvents().catch(failed); });
  }
  $("events-older").addEventListener("click", () => {
    fleet.cursors.push($("events-older").dataset.next);
    reloadEvents().catch(failed);
  });
  $("events-newest").addEventListener("click", () => { fleet.cursors = [null]; reloadEvents().catch(failed); });
  showView();
  return reload;
}
