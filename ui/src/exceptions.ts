// The exception window: a form to ask for an exception (tool, justification, scope,
// duration) with inline validation, and the list of my requests with live status.
import { asCommandError, events, ipc } from "./ipc";
import { errorBanner, h, mainRegion, replace } from "./dom";
import { humanDuration, requestStatusText, when } from "./format";
import { checkDraft, durationSeconds } from "./validation";
import type { ExceptionDraft, ExceptionRequest, FieldProblem, FormRules, Scope, WindowContext } from "./types";

type Field = FieldProblem["field"];

const page: {
  rules: FormRules | null;
  requests: ExceptionRequest[];
  context: WindowContext;
  attempted: boolean;
} = { rules: null, requests: [], context: {}, attempted: false };

function byId<T extends HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`missing #${id}`);
  return element as T;
}

/** Reads the form into a draft. */
export function readDraft(): ExceptionDraft {
  const scope = (document.querySelector<HTMLInputElement>('input[name="scope"]:checked')?.value ?? "repository") as Scope;
  return {
    tool: byId<HTMLSelectElement>("tool").value,
    justification: byId<HTMLTextAreaElement>("justification").value,
    scope,
    repository: scope === "repository" ? byId<HTMLInputElement>("repository").value.trim() : null,
    durationSeconds: durationSeconds(byId<HTMLInputElement>("duration").value, byId<HTMLSelectElement>("duration-unit").value as "hours" | "days"),
  };
}

const inputOf: Record<Field, string> = { tool: "tool", justification: "justification", repository: "repository", duration: "duration" };

/** Shows each problem under its field; clears fields without problems. */
export function showProblems(problems: FieldProblem[]): void {
  for (const field of Object.keys(inputOf) as Field[]) {
    const message = problems.find((p) => p.field === field)?.message;
    const input = byId(inputOf[field]);
    const error = byId(`${field}-error`);
    error.textContent = message ?? "";
    error.hidden = !message;
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }
}

function field(id: Field, label: string, control: HTMLElement, hint?: string): HTMLElement {
  const describedBy = [hint ? `${id}-hint` : "", `${id}-error`].filter(Boolean).join(" ");
  control.setAttribute("aria-describedby", describedBy);
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null,
    control,
    h("p", { class: "field-error", id: `${id}-error`, hidden: true }),
  );
}

function renderForm(rules: FormRules, context: WindowContext): HTMLElement {
  const prefillTool = context.tool && rules.tools.some((t) => t.id === context.tool) ? context.tool : "";
  const toolSelect = h(
    "select",
    { id: "tool", name: "tool", required: true },
    h("option", { value: "" }, "Choose a tool…"),
    rules.tools.map((tool) => {
      const option = h("option", { value: tool.id }, `${tool.name} (${tool.status === "blocked" ? "blocked" : "warned"})`);
      option.selected = tool.id === prefillTool;
      return option;
    }),
  );
  const justification = h("textarea", { id: "justification", name: "justification", rows: 4, required: true, minlength: rules.minJustification });
  const counter = h("p", { class: "hint", id: "justification-count", "aria-live": "polite" }, `0 / ${rules.minJustification} characters`);
  justification.addEventListener("input", () => {
    counter.textContent = `${[...justification.value.trim()].length} / ${rules.minJustification} characters`;
  });
  const repository = h("input", { id: "repository", name: "repository", type: "text", value: context.repository ?? "", autocomplete: "off", spellcheck: "false" });
  const scopeRadio = (value: Scope, label: string, checked: boolean) => {
    const input = h("input", { type: "radio", name: "scope", id: `scope-${value}`, value });
    input.checked = checked;
    input.addEventListener("change", () => {
      repository.disabled = value !== "repository";
      if (page.attempted) validate();
    });
    return h("div", { class: "radio" }, input, h("label", { for: `scope-${value}` }, label));
  };
  const maxDays = Math.floor(rules.maxDurationSeconds / 86_400);
  const duration = h("input", { id: "duration", name: "duration", type: "number", min: 1, step: 1, value: Math.min(7, Math.max(1, maxDays)), inputmode: "numeric" });
  const unit = h("select", { id: "duration-unit", "aria-label": "Duration unit" }, h("option", { value: "days" }, "days"), h("option", { value: "hours" }, "hours"));
  const form = h(
    "form",
    { id: "request-form", novalidate: true, "aria-labelledby": "form-heading" },
    h("h2", { id: "form-heading" }, "Request an exception"),
    h("p", { id: "form-status", class: "banner", role: "status", hidden: true }),
    field("tool", "Tool", toolSelect),
    field("justification", "Why do you need it?", justification, `At least ${rules.minJustification} characters; an approver reads this.`),
    counter,
    h(
      "fieldset",
      { class: "field" },
      h("legend", {}, "Where"),
      scopeRadio("repository", "Only in this repository", true),
      scopeRadio("everywhere", "Everywhere on this computer", false),
      h("label", { for: "repository" }, "Repository folder"),
      repository,
      h("p", { class: "field-error", id: "repository-error", hidden: true }),
    ),
    h(
      "div",
      { class: "field" },
      h("label", { for: "duration" }, "For how long"),
      h("p", { class: "hint", id: "duration-hint" }, `Up to ${humanDuration(rules.maxDurationSeconds)}.`),
      h("div", { class: "inline" }, duration, unit),
      h("p", { class: "field-error", id: "duration-error", hidden: true }),
    ),
    h("button", { type: "submit", class: "primary" }, "Send request"),
  );
  duration.setAttribute("aria-describedby", "duration-hint duration-error");
  repository.setAttribute("aria-describedby", "repository-error");
  for (const control of [toolSelect, justification, repository, duration, unit]) {
    control.addEventListener("input", () => page.attempted && validate());
    control.addEventListener("change", () => page.attempted && validate());
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void submit();
  });
  return form;
}

function validate(): FieldProblem[] {
  if (!page.rules) return [];
  const problems = checkDraft(readDraft(), page.rules);
  showProblems(problems);
  return problems;
}

function setStatus(message: string, kind: "ok" | "error"): void {
  const status = byId("form-status");
  status.textContent = message;
  status.className = `banner ${kind}`;
  status.setAttribute("role", kind === "error" ? "alert" : "status");
  status.hidden = false;
}

async function submit(): Promise<void> {
  page.attempted = true;
  const problems = validate();
  if (problems.length) {
    byId(inputOf[problems[0].field]).focus();
    return;
  }
  try {
    const request = await ipc.submitException(readDraft());
    page.attempted = false;
    byId<HTMLTextAreaElement>("justification").value = "";
    byId("justification-count").textContent = `0 / ${page.rules?.minJustification ?? 0} characters`;
    setStatus(`Request for ${request.toolName} saved. ${requestStatusText(request.status)}.`, "ok");
    await reloadRequests();
  } catch (thrown) {
    const error = asCommandError(thrown);
    if (error.code === "invalid-request" && error.problems?.length) {
      showProblems(error.problems);
      byId(inputOf[error.problems[0].field]).focus();
    } else {
      setStatus(`The request was not saved: ${error.message} (${error.code}). Nothing you typed was lost.`, "error");
    }
  }
}

export function renderRequests(requests: ExceptionRequest[]): HTMLElement {
  return h(
    "section",
    { id: "my-requests", "aria-labelledby": "requests-heading" },
    h("h2", { id: "requests-heading" }, "My requests"),
    requests.length
      ? h(
          "ul",
          { class: "requests" },
          requests.map((r) =>
            h(
              "li",
              { class: `request state-${r.status.state}`, "data-request": r.id },
              h("div", { class: "tool-head" }, h("h3", {}, r.toolName), h("span", { class: `badge ${r.status.state}` }, requestStatusText(r.status))),
              h("p", { class: "meta" }, `${r.scope === "repository" ? `In ${r.repository}` : "Everywhere"} · ${humanDuration(r.durationSeconds)} · asked ${when(r.createdAtMs)}`),
              h("p", { class: "reason" }, r.justification),
            ),
          ),
        )
      : h("p", { class: "empty" }, "You have not requested any exceptions."),
  );
}

async function reloadRequests(): Promise<void> {
  const slot = document.getElementById("requests-slot");
  if (!slot) return;
  try {
    page.requests = await ipc.exceptionRequests();
    replace(slot, renderRequests(page.requests));
  } catch (thrown) {
    const error = asCommandError(thrown);
    replace(slot, errorBanner(`Could not load your requests: ${error.message} (${error.code})`));
  }
}

function applyContext(context: WindowContext): void {
  page.context = context;
  if (!page.rules || !document.getElementById("request-form")) return;
  const tool = byId<HTMLSelectElement>("tool");
  if (context.tool && page.rules.tools.some((t) => t.id === context.tool)) tool.value = context.tool;
  if (context.repository) {
    byId<HTMLInputElement>("repository").value = context.repository;
    byId<HTMLInputElement>("scope-repository").checked = true;
    byId<HTMLInputElement>("repository").disabled = false;
  }
  byId("justification").focus();
}

export async function mountExceptions(): Promise<void> {
  const main = mainRegion();
  try {
    const [rules, context] = await Promise.all([ipc.exceptionForm(), ipc.windowContext()]);
    page.rules = rules;
    page.context = context;
    replace(
      main,
      h("h1", {}, "Exception requests"),
      rules.tools.length ? renderForm(rules, context) : h("p", { class: "empty" }, "The policy allows no exceptions for any tool."),
      h("div", { id: "requests-slot" }),
    );
  } catch (thrown) {
    const error = asCommandError(thrown);
    replace(main, h("h1", {}, "Exception requests"), errorBanner(`Could not load the form: ${error.message} (${error.code})`), h("div", { id: "requests-slot" }));
  }
  await reloadRequests();
  if (page.rules && (page.context.tool || page.context.repository)) applyContext(page.context);
  await events.onRequests(() => void reloadRequests());
  await events.onContext((context) => applyContext(context));
  // Statuses change on the server; look again now and then while the window is open.
  setInterval(() => void reloadRequests(), 30_000);
}

if (!import.meta.env?.VITEST) void mountExceptions();
