// The catalog window: every known AI tool with the policy's status, the reason, the
// alternative, whether it is installed here, the controls the Warden service writes into the
// tool's own settings, and a way to ask for an exception.
import { asCommandError, ipc } from "./ipc";
import { errorBanner, h, mainRegion, replace } from "./dom";
import { statusLabel } from "./format";
import type { CatalogView, ToolRow } from "./types";

function installedText(installed: boolean | null): string {
  if (installed === null) return "Not scanned yet";
  return installed ? "Installed on this computer" : "Not installed";
}

function toolCard(tool: ToolRow): HTMLElement {
  const headingId = `tool-${tool.id}`;
  return h(
    "li",
    { class: `tool status-${tool.status}`, "aria-labelledby": headingId, "data-tool": tool.id },
    h(
      "div",
      { class: "tool-head" },
      h("h3", { id: headingId }, tool.name, h("span", { class: "vendor" }, ` by ${tool.vendor}`)),
      h("span", { class: `badge ${tool.status}` }, tool.isAssistant ? "Sanctioned assistant" : statusLabel(tool.status)),
    ),
    h("p", { class: "reason" }, tool.reason),
    tool.alternative ? h("p", { class: "alternative" }, `Use instead: ${tool.alternative}`) : null,
    h("p", { class: "meta" }, `${installedText(tool.installed)} · ${tool.kind.replace("-", " ")} · ${tool.hosting}`),
    tool.controls?.length
      ? h("p", { class: "controls" }, `Set in ${tool.name}'s own settings: ${tool.controls.join("; ")}`)
      : null,
    tool.link ? h("p", { class: "meta" }, h("a", { href: tool.link, target: "_blank", rel: "noreferrer" }, "Policy details")) : null,
    tool.requestable
      ? h(
          "button",
          {
            type: "button",
            class: "secondary",
            "data-action": "request",
            onclick: () => void ipc.openView("exceptions", { tool: tool.id }).catch(showError),
          },
          `Request an exception for ${tool.name}`,
        )
      : null,
  );
}

let banner: HTMLElement | null = null;

function showError(thrown: unknown): void {
  const error = asCommandError(thrown);
  banner?.remove();
  banner = errorBanner(`Could not do that: ${error.message} (${error.code})`);
  mainRegion().prepend(banner);
}

export function renderCatalog(view: CatalogView): HTMLElement[] {
  const assistant = view.assistant;
  const others = view.tools;
  return [
    h("h1", {}, "Approved AI tools"),
    h("p", { class: "lead" }, `Policy: ${view.policyName}`),
    assistant
      ? h(
          "section",
          { class: "assistant", "aria-labelledby": "assistant-heading" },
          h("h2", { id: "assistant-heading" }, `Use ${assistant.name}`),
          h("p", {}, `${assistant.name} is the sanctioned AI assistant: your code stays inside the company network.`),
          h(
            "button",
            { type: "button", class: "primary", "data-action": "open-assistant", onclick: () => void ipc.openAssistant(null).catch(showError) },
            `Open ${assistant.name}`,
          ),
        )
      : h("p", { class: "empty" }, "This policy names no sanctioned assistant."),
    h("h2", { id: "tools-heading" }, "All known AI tools"),
    others.length
      ? h("ul", { class: "tools", "aria-labelledby": "tools-heading" }, others.map(toolCard))
      : h("p", { class: "empty" }, "The catalog lists no AI tools."),
  ];
}

export async function mountCatalog(): Promise<void> {
  const main = mainRegion();
  try {
    replace(main, renderCatalog(await ipc.catalogView()));
  } catch (thrown) {
    replace(main, h("h1", {}, "Approved AI tools"));
    showError(thrown);
  }
}

if (!import.meta.env?.VITEST) void mountCatalog();
