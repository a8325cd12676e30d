// The activity window: recent AI-tool launches with time, tool, action, reason and
// folder; filters by tool and action; opened on one event by a pop-up's Details.
import { asCommandError, events, ipc } from "./ipc";
import { errorBanner, h, mainRegion, replace } from "./dom";
import { outcomeLabel, when } from "./format";
import type { ActivityRow, MaskingLine, WindowContext } from "./types";

interface Filters {
  tool: string;
  action: string;
}

const state: { rows: ActivityRow[]; masking: MaskingLine | null; filters: Filters; focus: string | null; error: string | null } = {
  rows: [],
  masking: null,
  filters: { tool: "", action: "" },
  focus: null,
  error: null,
};

const actionWords: Record<string, string> = { allow: "Allowed", warn: "Warned", block: "Blocked" };

export function filterRows(rows: ActivityRow[], filters: Filters): ActivityRow[] {
  return rows.filter(
    (row) => (!filters.tool || (row.tool ?? "") === filters.tool) && (!filters.action || row.action === filters.action),
  );
}

function row(event: ActivityRow): HTMLElement {
  const focused = event.id === state.focus;
  return h(
    "li",
    { class: `event action-${event.action}${focused ? " focused" : ""}`, id: `event-${event.id}`, tabindex: focused ? -1 : null, "data-event": event.id },
    h(
      "div",
      { class: "tool-head" },
      h("h3", {}, event.toolName),
      h("span", { class: `badge ${event.action}` }, actionWords[event.action] ?? event.action),
    ),
    h("p", { class: "meta" }, h("time", { datetime: new Date(event.atMs).toISOString() }, when(event.atMs)), ` · ${outcomeLabel(event.outcome)} · process ${event.pid}`),
    h("p", { class: "reason" }, event.reason),
    h("p", { class: "meta" }, `Folder: ${event.cwd ?? "unknown"}`),
    h("p", { class: "meta mono" }, event.exe),
    event.action !== "allow" && event.tool
      ? h(
          "div",
          { class: "row-actions" },
          h("button", { type: "button", class: "secondary", onclick: () => void ipc.openView("exceptions", { tool: event.tool ?? undefined, event: event.id }).catch(fail) }, "Request exception"),
          h("button", { type: "button", class: "secondary", onclick: () => void ipc.openAssistant(event.cwd).catch(fail) }, "Open the assistant here"),
        )
      : null,
  );
}

/** The masking gateway's latest request: "3 secrets masked in a request to Internal Assistant". */
export function maskingNote(line: MaskingLine | null): HTMLElement | null {
  if (!line) return null;
  const secrets = line.masked24h === 1 ? "1 secret" : `${line.masked24h} secrets`;
  const requests = line.requests24h === 1 ? "1 request" : `${line.requests24h} requests`;
  return h(
    "p",
    { class: "masking", role: "note" },
    h("strong", {}, "Masking gateway: "),
    `${line.summary} · `,
    h("time", { datetime: new Date(line.atMs).toISOString() }, when(line.atMs)),
    ` (last 24 h: ${secrets} masked in ${requests})`,
  );
}

function fail(thrown: unknown): void {
  const error = asCommandError(thrown);
  state.error = `Could not do that: ${error.message} (${error.code})`;
  render();
}

function select(id: string, label: string, value: string, options: [string, string][], onChange: (v: string) => void): HTMLElement {
  return h(
    "div",
    { class: "field inline" },
    h("label", { for: id }, label),
    h(
      "select",
      { id, onchange: (e: Event) => onChange((e.target as HTMLSelectElement).value) },
      options.map(([v, text]) => {
        const option = h("option", { value: v }, text);
        option.selected = v === value;
        return option;
      }),
    ),
  );
}

export function render(): void {
  const main = mainRegion();
  const tools = [...new Map(state.rows.filter((r) => r.tool).map((r) => [r.tool as string, r.toolName])).entries()].sort((a, b) =>
    a[1].localeCompare(b[1]),
  );
  const shown = filterRows(state.rows, state.filters);
  const filtering = state.filters.tool || state.filters.action;
  replace(
    main,
    h("h1", {}, "Recent activity"),
    state.error ? errorBanner(state.error) : null,
    maskingNote(state.masking),
    h(
      "form",
      { class: "filters", role: "search", "aria-label": "Filter events", onsubmit: (e: Event) => e.preventDefault() },
      select("filter-tool", "Tool", state.filters.tool, [["", "All tools"], ...tools], (v) => {
        state.filters.tool = v;
        render();
      }),
      select("filter-action", "Action", state.filters.action, [["", "All actions"], ["block", "Blocked"], ["warn", "Warned"], ["allow", "Allowed"]], (v) => {
        state.filters.action = v;
        render();
      }),
    ),
    h("p", { class: "count", role: "status" }, `${shown.length} of ${state.rows.length} events`),
    shown.length
      ? h("ol", { class: "events", "aria-label": "Launch events, newest first" }, shown.map(row))
      : h("p", { class: "empty" }, filtering ? "No events match these filters." : "No AI tool launches seen yet. When an AI tool starts, it appears here."),
  );
  if (state.focus) {
    const focused = document.getElementById(`event-${state.focus}`);
    focused?.scrollIntoView?.({ block: "center" });
    focused?.focus();
  }
}

async function reload(): Promise<void> {
  try {
    state.rows = await ipc.recentActivity();
    // An older runtime without a gateway answers nothing here: the line is simply not shown.
    state.masking = await ipc.maskingLine().catch(() => null);
    state.error = null;
  } catch (thrown) {
    const error = asCommandError(thrown);
    state.error = `Could not load the activity: ${error.message} (${error.code})`;
  }
  render();
}

function applyContext(context: WindowContext): void {
  state.focus = context.event ?? null;
  if (state.focus) state.filters = { tool: "", action: "" };
}

export async function mountActivity(): Promise<void> {
  try {
    applyContext(await ipc.windowContext());
  } catch {
    state.focus = null;
  }
  await reload();
  await events.onActivity(() => void reload());
  await events.onContext((context) => {
    applyContext(context);
    void reload();
  });
}

export const activityState = state;

if (!import.meta.env?.VITEST) void mountActivity();
