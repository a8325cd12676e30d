// Warden admin page: plain JavaScript over the server's admin API (/api/v1/admin/*).
// The token lives in sessionStorage only (gone when the tab closes).
"use strict";

const $ = (id) => document.getElementById(id);
// Either an account's session (a cookie the page cannot read, and its CSRF token) or the admin token.
const session = {
  get token() { return sessionStorage.getItem("warden.token") || ""; },
  get csrf() { return sessionStorage.getItem("warden.csrf") || ""; },
  get approver() { return sessionStorage.getItem("warden.approver") || ""; },
  // The signed-in account's role ("" with the admin token).
  get role() { return sessionStorage.getItem("warden.role") || ""; },
};

// The headers that say who calls: the admin token, or the session's CSRF token (the cookie rides along).
function authHeaders() {
  if (session.token) return { authorization: `Bearer ${session.token}` };
  return session.csrf ? { "x-csrf-token": session.csrf } : {};
}

function status(text, ok = true) {
  const el = $("status");
  el.textContent = text;
  el.className = ok ? "ok" : "error";
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { ...authHeaders(), ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const error = new Error((data && data.message) || `${response.status} ${response.statusText}`);
    error.data = data;
    error.status = response.status;
    throw error;
  }
  return data;
}

const when = (seconds) => (seconds ? new Date(seconds * 1000).toLocaleString() : "");
function duration(seconds) {
  if (seconds % 86400 === 0) return `${seconds / 86400} d`;
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}
function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text ?? "";
  if (className) td.className = className;
  return td;
}
function button(text, className, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  if (className) b.className = className;
  b.addEventListener("click", onClick);
  return b;
}
function el(tag, text, className) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (className) e.className = className;
  return e;
}

function renderPending(requests) {
  const list = $("pending-list");
  list.replaceChildren();
  if (requests.length === 0) {
    list.append(el("p", "No pending requests.", "meta"));
    return;
  }
  for (const r of requests) {
    const box = el("article", undefined, "request");
    box.setAttribute("aria-label", `Request by ${r.user} for ${r.tool}`);
    box.dataset.id = r.id;
    box.append(el("h3", `${r.user} on ${r.hostname || r.device_id} asks for ${r.tool}`));
    box.append(el("p", `Scope: ${r.scope || "everywhere"} · requested ${duration(r.requested_seconds)} · filed ${when(r.created_at)} · ` +
      `blocked ${r.blocked_last_7_days} time(s) in the last 7 days`, "meta"));
    box.append(el("p", r.justification, "justification"));
    const form = el("div", undefined, "decide");
    const commentId = `comment-${r.id}`, hoursId = `hours-${r.id}`;
    const commentLabel = el("label", "Comment to the developer");
    commentLabel.htmlFor = commentId;
    const comment = el("textarea");
    comment.id = commentId;
    comment.rows = 2;
    const commentBox = el("div");
    commentBox.append(commentLabel, comment);
    const hoursLabel = el("label", "Grant (hours)");
    hoursLabel.htmlFor = hoursId;
    const hours = el("input");
    hours.id = hoursId;
    hours.type = "number";
    hours.min = "0.01";
    hours.step = "any";
    hours.max = String(r.requested_seconds / 3600);
    hours.value = String(+(r.requested_seconds / 3600).toFixed(2));
    const hoursBox = el("div");
    hoursBox.append(hoursLabel, hours);
    // Conditions the approval carries: enforced at every launch on the device, and written into
    // the tool's own managed settings while the exception is in force.
    const guard = el("fieldset", undefined, "guardrails");
    guard.append(el("legend", "Conditions (approve only)"));
    const check = (name, text) => {
      const label = el("label");
      const input = el("input");
      input.type = "checkbox";
      input.name = name;
      label.append(input, " " + text);
      guard.append(label);
      return input;
    };
    const viaGateway = check("through_gateway", "Only through the company gateway (secrets masked)");
    const noRisky = check("no_risky_modes", "No risky modes (bypass permissions, YOLO, no sandbox)");
    const mcpId = `mcp-${r.id}`;
    const mcpLabel = el("label", "Only these MCP servers (comma-separated names; empty: as the policy says)");
    mcpLabel.htmlFor = mcpId;
    const mcp = el("input");
    mcp.id = mcpId;
    mcp.name = "mcp_servers";
    guard.append(mcpLabel, mcp);
    const guardrails = () => {
      const g = {};
      if (viaGateway.checked) g.through_gateway = true;
      if (noRisky.checked) g.no_risky_modes = true;
      const names = mcp.value.split(",").map((n) => n.trim()).filter(Boolean);
      if (names.length) g.mcp_servers = names;
      return g;
    };
    const decide = async (verb) => {
      try {
        const body = { approver: session.approver, comment: comment.value };
        if (verb === "approve") {
          body.duration_seconds = Math.max(1, Math.round(parseFloat(hours.value) * 3600));
          body.guardrails = guardrails();
        }
        const result = await api("POST", `/api/v1/admin/exceptions/${encodeURIComponent(r.id)}/${verb}`, body);
        status(`${result.state === "approved" ? "Approved" : "Denied"}: ${r.user}'s request for ${r.tool}` +
          (result.expires_at ? ` until ${when(result.expires_at)}` : ""));
        await refresh();
      } catch (error) {
        status(`Could not ${verb}: ${error.message}`, false);
      }
    };
    form.append(commentBox, hoursBox, guard, button("Approve", "primary", () => decide("approve")), button("Deny", "danger", () => decide("deny")));
    box.append(form);
    list.append(box);
  }
}

function renderHistory(requests) {
  const body = $("history-rows");
  body.replaceChildren();
  for (const r of requests) {
    const row = body.insertRow();
    cell(row, when(r.created_at));
    cell(row, `${r.user} (${r.hostname || r.device_id})`);
    cell(row, r.tool);
    cell(row, r.state, `state-${r.state}`);
    cell(row, r.decided_by);
    cell(row, r.comment);
    cell(row, r.state === "approved" ? when(r.expires_at) : "");
    cell(row, r.conditions || "");
    const action = cell(row, "");
    if (r.state === "approved") {
      action.append(button("Revoke", "danger", async () => {
        const reason = prompt(`Why revoke ${r.user}'s exception for ${r.tool}?`);
        if (!reason) return;
        try {
          await api("POST", `/api/v1/admin/exceptions/${encodeURIComponent(r.id)}/revoke`, { approver: session.approver, comment: reason });
          status(`Revoked ${r.user}'s exception for ${r.tool}`);
          await refresh();
        } catch (error) { status(`Could not revoke: ${error.message}`, false); }
      }));
    }
  }
  if (requests.length === 0) cell(body.insertRow(), "Nothing decided yet.", "meta").colSpan = 9;
}

function serviceText(service) {
  if (!service) return "";
  const at = new Date(service.at_ms).toLocaleString();
  return service.status === "running" ? `running ${service.version} since ${at}` : `stopped ${at}: ${service.reason || ""}`;
}

function renderDevices(list) {
  const { devices, sync_interval_seconds: interval } = list;
  $("devices-note").textContent = `Devices sync every ${duration(interval)}; one not heard from for more than ` +
    `${duration(2 * interval)} (two sync intervals) is flagged silent.`;
  const body = $("device-rows");
  body.replaceChildren();
  for (const d of devices) {
    const row = body.insertRow();
    row.dataset.id = d.id;
    row.insertCell().append(button(d.hostname, "link", () =>
      openDevice(d.id, d.hostname).catch((error) => status(`Could not load ${d.hostname}: ${error.message}`, false))));
    cell(row, d.user);
    cell(row, `${d.platform} ${d.agent_version}`.trim());
    cell(row, when(d.last_seen_at));
    cell(row, serviceText(d.service), d.service && d.service.status === "stopped" ? "state-denied" : "");
    const state = d.revoked_at ? `revoked ${when(d.revoked_at)}${d.revoked_by ? ` by ${d.revoked_by}` : ""}`
      : d.silent ? "silent" : "active";
    cell(row, state, d.revoked_at || d.silent ? "state-revoked" : "");
    const action = cell(row, "");
    if (!d.revoked_at) {
      action.append(button(`Revoke ${d.hostname}`, "danger", async () => {
        if (!confirm(`Revoke ${d.hostname}? Its token stops working at once.`)) return;
        try { await api("POST", `/api/v1/admin/devices/${encodeURIComponent(d.id)}/revoke`, { actor: session.approver }); status(`Revoked ${d.hostname}`); await refresh(); }
        catch (error) { status(`Could not revoke: ${error.message}`, false); }
      }));
    }
  }
  if (devices.length === 0) cell(body.insertRow(), "No device has enrolled yet.", "meta").colSpan = 7;
}

// What one event says, by kind: [what happened, details]. A kind this page does not know yet
// is still listed, with its raw payload.
function describe(event) {
  switch (event.kind) {
    case "launch":
      return [`${event.action} → ${event.outcome}`, event.cwd || event.exe];
    case "service-start": {
      const what = `${event.mode} ${event.version} started (pid ${event.pid})`;
      const previous = event.unclean_end;
      if (!previous) return [what, event.source || ""];
      return [`${what} after an unclean end`, `the run started ${new Date(previous.started_at_ms).toLocaleString()} ` +
        `(pid ${previous.pid}) recorded no stop; its last event: ${new Date(previous.last_event_at_ms).toLocaleString()}`];
    }
    case "service-stop":
      return [`${event.mode} ${event.version} stopped (pid ${event.pid})`, event.reason];
    case "incident":
      return [event.code, event.detail];
    case "exception-ended":
      return [`exception ${event.ended}: ${event.outcome}`, `${event.exception}, grace ${duration(event.grace_seconds)}`];
    case "control-drift":
      return [`${event.vendor} control ${event.change}${event.restored ? ", restored" : ", NOT restored"}`,
        `${event.path}${event.detail ? `: ${event.detail}` : ""}`];
    case "masking": {
      // Counts per rule only: the device never sends a masked value.
      const counts = Object.entries(event.masked || {});
      const total = counts.reduce((sum, [, n]) => sum + n, 0);
      const kept = (event.kept_masked_in || []).length;
      return [`${total} masked in a request to ${event.destination}`,
        `${event.path} → ${event.status}${counts.length ? `: ${counts.map(([rule, n]) => `${rule} ${n}`).join(", ")}` : ""}` +
        (kept ? `; ${kept} kept masked in ${[...new Set(event.kept_masked_in)].join(", ")}` : "")];
    }
    case "connect":
      return [`connect ${event.host}:${event.port}/${event.protocol} ${event.action} → ${event.outcome}` +
        (event.count > 1 ? ` (×${event.count})` : ""), `${event.exe || "pid " + event.pid} (${event.tool || "no catalog tool"})`];
    default:
      return [event.kind, JSON.stringify(event)];
  }
}

function renderEvents(events, hosts) {
  const body = $("event-rows");
  body.replaceChildren();
  for (const { device_id, event, at_ms, person, clock_ahead } of events) {
    const row = body.insertRow();
    row.dataset.kind = event.kind;
    const [what, detail] = describe(event);
    // Filed under the server's time when the device's clock was ahead; the claimed time is kept.
    cell(row, new Date(at_ms || event.at_ms).toLocaleString() +
      (clock_ahead ? ` (device clock ahead: it said ${new Date(event.at_ms).toLocaleString()})` : ""));
    cell(row, hosts.get(device_id) || device_id);
    cell(row, event.kind, event.kind === "service-stop" || (event.unclean_end) ? "state-denied" : "");
    cell(row, person || event.user);
    cell(row, event.tool);
    cell(row, what, event.action === "block" ? "state-denied" : "");
    cell(row, detail);
  }
  if (events.length === 0) cell(body.insertRow(), "No events yet.", "meta").colSpan = 7;
}

function renderAdminAudit(entries) {
  const body = $("admin-audit-rows");
  body.replaceChildren();
  for (const e of entries) {
    const row = body.insertRow();
    row.dataset.action = e.action;
    cell(row, when(e.at));
    cell(row, e.actor);
    cell(row, e.action);
    cell(row, e.subject);
    cell(row, e.detail);
  }
  if (!entries.length) cell(body.insertRow(), "No admin action yet.", "meta").colSpan = 5;
}

// API tokens are a signed-in person's (the admin token makes none): the list shows with a session.
function renderTokens(list) {
  $("api-tokens-glass").hidden = Boolean(list);
  $("api-tokens-body").hidden = !list;
  if (!list) return;
  const body = $("token-rows");
  body.replaceChildren();
  for (const t of list.tokens) {
    const row = body.insertRow();
    row.dataset.token = t.id;
    cell(row, t.name);
    cell(row, t.owner);
    cell(row, t.role);
    cell(row, when(t.expires_at));
    cell(row, t.last_used_at ? when(t.last_used_at) : "never");
    const live = !t.revoked_at && t.expires_at * 1000 > Date.now();
    cell(row, t.revoked_at ? `revoked ${when(t.revoked_at)}` : live ? "active" : "expired");
    const action = row.insertCell();
    if (!t.revoked_at) {
      action.append(button("Revoke", "deny", async () => {
        try {
          await api("POST", `/api/v1/admin/api-tokens/${encodeURIComponent(t.id)}/revoke`);
          status(`API token ${t.name} revoked`);
          await refresh();
        } catch (error) {
          status(`Not revoked: ${error.message}`, false);
        }
      }));
    }
  }
  if (!list.tokens.length) cell(body.insertRow(), "No API token yet.", "meta").colSpan = 7;
}

function renderPolicy(active) {
  $("policy-summary").textContent = `Version ${active.version}: “${active.name}”, uploaded by ${active.uploaded_by} ${when(active.uploaded_at)}`;
  $("policy-source").textContent = active.source || "";
}

function renderInventory(inventory) {
  const tools = $("inventory-rows"), servers = $("mcp-rows");
  tools.replaceChildren();
  servers.replaceChildren();
  for (const d of inventory.devices) {
    for (const t of d.report.tools) {
      const row = tools.insertRow();
      cell(row, d.hostname);
      cell(row, t.user || "(system)");
      cell(row, t.tool);
      cell(row, t.version || "");
      cell(row, `${t.kind}${t.place ? ` (${t.place})` : ""}: ${t.path}`);
      cell(row, when(d.reported_at));
    }
    for (const m of d.report.mcp_servers) {
      const row = servers.insertRow();
      cell(row, d.hostname);
      cell(row, m.user);
      cell(row, `${m.client} (${m.scope})`);
      cell(row, m.name);
      cell(row, m.command && m.command.length ? m.command.join(" ") : (m.url || ""));
      cell(row, m.denied ? `DENIED: ${m.denied}` : "allowed", m.denied ? "state-denied" : "");
    }
  }
  if (!tools.rows.length) cell(tools.insertRow(), "No device has reported an AI tool.", "meta").colSpan = 6;
  if (!servers.rows.length) cell(servers.insertRow(), "No device has reported an MCP server.", "meta").colSpan = 6;
}

// Host names by device id, for the events table.
let hosts = new Map();

async function refreshEvents() {
  const page = await api("GET", eventsPath(fleet.cursors[fleet.cursors.length - 1]));
  renderEvents(page.events, hosts);
  pageOfEvents(page);
}

async function refresh() {
  const [requests, devices, active, inventory, adminAudit, tokens] = await Promise.all([
    api("GET", "/api/v1/admin/exceptions?limit=500"),
    api("GET", "/api/v1/admin/devices"),
    api("GET", "/api/v1/admin/policies/active"),
    api("GET", "/api/v1/admin/inventory"),
    api("GET", "/api/v1/admin/admin-audit?limit=50"),
    session.token ? null : api("GET", "/api/v1/admin/api-tokens"),
  ]);
  hosts = new Map(devices.devices.map((d) => [d.id, d.hostname]));
  renderPending(requests.filter((r) => r.state === "pending"));
  renderHistory(requests.filter((r) => r.state !== "pending"));
  renderDevices(devices);
  renderInventory(inventory);
  renderPolicy(active);
  renderAdminAudit(adminAudit);
  renderTokens(tokens);
  filterTables();
  await Promise.all([refreshEvents(), refreshFleet()]);
}

let wired = false;

// A session cookie from another tab of this browser (this tab keeps its CSRF token across reloads):
// ask who it belongs to — only when this browser signed in before, so a fresh visit asks nothing.
async function restoreSession() {
  // Back from the identity provider: the server set the session cookie.
  if (new URLSearchParams(location.search).has("signed-in")) {
    localStorage.setItem("warden.signed-in", "1");
    history.replaceState(null, "", `/admin${location.hash}`);
  }
  if (session.token || session.csrf || !localStorage.getItem("warden.signed-in")) return;
  const response = await fetch("/api/v1/session");
  if (!response.ok) {
    localStorage.removeItem("warden.signed-in");
    return;
  }
  const me = await response.json();
  sessionStorage.setItem("warden.csrf", me.csrf_token);
  sessionStorage.setItem("warden.approver", me.account);
  sessionStorage.setItem("warden.role", me.role);
}

// A developer signs in only to enroll their own devices: the page shows just that.
function showDeveloperPage() {
  for (const section of document.querySelectorAll("main > section")) section.hidden = section.id !== "enroll-device";
  for (const link of document.querySelectorAll("#nav a")) link.hidden = true;
  $("enroll-user-box").hidden = true;
  status(`Signed in as ${session.approver}: make a code to enroll your device`);
}

async function start() {
  await restoreSession().catch(() => {});
  const loggedIn = Boolean((session.token || session.csrf) && session.approver);
  $("sign-in").hidden = loggedIn;
  $("login").hidden = loggedIn;
  $("app").hidden = !loggedIn;
  $("nav").hidden = !loggedIn;
  if (!loggedIn) return;
  if (session.role === "developer") {
    showDeveloperPage();
    return;
  }
  for (const link of document.querySelectorAll("#nav a")) link.hidden = false;
  $("enroll-user-box").hidden = false;
  if (!wired) {
    wireFleet(refresh, refreshEvents);
    wired = true;
  }
  showView();
  try {
    await refresh();
    status(`Logged in as ${session.approver}`);
  } catch (error) {
    if (error.status === 401 || error.status === 403) {
      sessionStorage.removeItem("warden.token");
      sessionStorage.removeItem("warden.csrf");
      await start();
      status("That admin token was not accepted.", false);
    } else {
      status(`Could not load: ${error.message}`, false);
    }
  }
}

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  sessionStorage.setItem("warden.token", $("token").value.trim());
  sessionStorage.setItem("warden.approver", $("approver").value.trim());
  await start();
});
$("sign-in").addEventListener("submit", async (event) => {
  event.preventDefault();
  const response = await fetch("/api/v1/session", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: $("account-name").value.trim(), password: $("account-password").value }),
  });
  const answer = await response.json().catch(() => null);
  if (!response.ok) {
    status((answer && answer.message) || `Could not sign in (${response.status})`, false);
    return;
  }
  $("account-password").value = "";
  sessionStorage.setItem("warden.csrf", answer.csrf_token);
  sessionStorage.setItem("warden.approver", answer.account);
  sessionStorage.setItem("warden.role", answer.role);
  localStorage.setItem("warden.signed-in", "1");
  await start();
});
$("logout").addEventListener("click", async () => {
  if (session.csrf) await fetch("/api/v1/session", { method: "DELETE", headers: authHeaders() }).catch(() => {});
  localStorage.removeItem("warden.signed-in");
  sessionStorage.clear();
  await start();
  status("Logged out");
});
$("enroll-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const user = $("enroll-user").value.trim();
  try {
    const issued = await api("POST", "/api/v1/admin/enrollment-codes", {
      ...(user ? { user } : {}),
      valid_hours: Number($("enroll-hours").value) || 24,
    });
    $("enroll-command").value = `sudo warden enroll --code '${issued.enrollment_code}'`;
    $("enroll-expiry").textContent = when(issued.expires_at);
    $("enroll-result").hidden = false;
    status(`Enrollment code made for ${issued.user}`);
  } catch (error) {
    status(`No code: ${error.message}`, false);
  }
});
$("token-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const issued = await api("POST", "/api/v1/admin/api-tokens", {
      name: $("token-name").value.trim(),
      role: $("token-role").value,
      valid_days: Number($("token-days").value) || 90,
    });
    $("token-value").value = issued.token;
    $("token-result").hidden = false;
    status(`API token ${issued.name} made (${issued.role})`);
    await refresh();
  } catch (error) {
    status(`No token: ${error.message}`, false);
  }
});
$("policy-file").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (file) $("policy-text").value = await file.text();
});
$("upload").addEventListener("submit", async (event) => {
  event.preventDefault();
  const result = $("upload-result");
  const file = $("policy-file").files[0];
  try {
    const stored = await api("POST", "/api/v1/admin/policies", {
      source: $("policy-text").value,
      file_name: file ? file.name : "policy.toml",
      uploaded_by: session.approver,
    });
    result.className = "ok";
    result.textContent = `Version ${stored.version} is now active.`;
    await refresh();
  } catch (error) {
    result.className = "error";
    const where = error.data && error.data.location;
    result.textContent = where
      ? `Not uploaded: line ${where.line}, column ${where.column}: ${error.message}`
      : `Not uploaded: ${error.message}`;
  }
});
// The identity provider's button, when the server has one configured.
fetch("/api/v1/session/methods").then((r) => r.json()).then((methods) => {
  if (!methods.oidc) return;
  $("oidc-sign-in").textContent = methods.oidc.label;
  $("oidc-box").hidden = false;
}).catch(() => {});
start();
